//! The CI part of fuzzing: every committed corpus input and crash regression goes through its
//! target as in the fuzzer (with the same allocation checks), the committed seeds are exactly
//! what the crates' encoders make today and all decode, and a few thousand deterministic
//! mutations of each seed run too, so a decoder change that breaks a target's assertions fails
//! here without a fuzzer installed.

use std::{
    fs,
    path::{Path, PathBuf},
};

use tandem_fuzz::{Outcome, Target, alloc::PeakAlloc, run, seeds};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

fn dir(kind: &str, target: Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target.name())
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|entry| {
            let path = entry.expect("readable corpus dir").path();
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .expect("utf-8 file names")
                .to_owned();
            (name, fs::read(&path).expect("readable corpus file"))
        })
        .filter(|(name, _)| !name.starts_with('.') && name != "README.md")
        .collect();
    files.sort();
    files
}

#[test]
fn committed_seeds_are_what_the_encoders_make_and_decode() {
    for target in Target::ALL {
        let committed: Vec<_> = files(&dir("corpus", *target))
            .into_iter()
            .filter(|(name, _)| name.starts_with("seed-"))
            .collect();
        let mut made: Vec<_> = seeds::all()
            .into_iter()
            .filter(|seed| seed.target == *target)
            .map(|seed| (format!("seed-{}", seed.name), seed.bytes))
            .collect();
        made.sort();
        assert!(!made.is_empty(), "{target}: no seeds");
        assert!(
            committed == made,
            "{target}: committed seeds are outdated; run `cargo run -p tandem-fuzz --bin tandem-fuzz-seeds`"
        );
        for (name, bytes) in &made {
            assert_eq!(
                run(*target, bytes),
                Outcome::Decoded,
                "{target}: seed {name} does not decode"
            );
        }
    }
}

#[test]
fn corpus_and_regressions_replay() {
    let mut replayed = 0;
    for target in Target::ALL {
        for kind in ["corpus", "regressions"] {
            for (name, bytes) in files(&dir(kind, *target)) {
                // A panic names the input through the test's output.
                eprintln!("{kind}/{target}/{name}");
                run(*target, &bytes);
                replayed += 1;
            }
        }
    }
    assert!(replayed > 0, "no corpus found");
}

/// SplitMix64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Bit flips, interesting bytes, truncations, insertions and splices, a few at a time, keeping
/// the selector byte most of the time so the mutations stay on the seed's decoder.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(3) {
        let at = 1 + rng.below(bytes.len().saturating_sub(1));
        match rng.below(6) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            1 if at < bytes.len() => bytes[at] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)],
            2 => bytes.truncate(at),
            3 => {
                let run = rng.below(8) + 1;
                let byte = rng.next() as u8;
                for _ in 0..run {
                    bytes.insert(at.min(bytes.len()), byte);
                }
            }
            4 if at < bytes.len() => {
                let len = rng.below(bytes.len() - at) + 1;
                let chunk = bytes[at..at + len].to_vec();
                let to = rng.below(bytes.len());
                bytes.splice(to..to, chunk);
            }
            _ if at + 4 <= bytes.len() => {
                // A length or count field set to an extreme.
                bytes[at..at + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
            }
            _ => bytes.push(rng.next() as u8),
        }
    }
    bytes
}

#[test]
fn mutated_seeds_hold_every_assertion() {
    const MUTATIONS_PER_SEED: usize = 2_000;
    let mut rng = Rng(0x7a4d_656d);
    for seed in seeds::all() {
        let mut refused = 0;
        for _ in 0..MUTATIONS_PER_SEED {
            let input = mutate(&mut rng, &seed.bytes);
            if run(seed.target, &input) == Outcome::Refused {
                refused += 1;
            }
        }
        // The mutations must reach the refusal paths, not only re-run the seed.
        assert!(
            refused > 0,
            "{}: no mutation of seed {} was refused",
            seed.target,
            seed.name
        );
    }
}
