//! Slashing protection under kill -9: a child process signs duties in a loop (re-signing the
//! last few duties of the previous child with other digests first) and prints every signature
//! it got; the parent kills it with SIGKILL, 20 times, at random points or right between
//! "recorded" and "published", then reopens the record and re-signs every recent duty with the
//! conflicting and the identical digest. Never may one duty get two different signatures, and
//! every signature a child published must be in the record.
//!
//! A SIGKILL does not lose what the process wrote to the OS, so this checks the order (record,
//! then publish) and RocksDB's atomicity, not the fsync itself; the fsync is what makes the
//! same hold across a power cut.

mod common;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use alloy::primitives::hex;
use common::{domain, key, sign};
use tandem_proto::{Signature, time::Slot};
use tandem_validator::{Duty, ProtectedSigner, ValidatorError};

const CHILD_DIR_ENV: &str = "TANDEM_VALIDATOR_CRASH_CHILD_DIR";
const CHILD_RUN_ENV: &str = "TANDEM_VALIDATOR_CRASH_CHILD_RUN";
const CHILD_START_ENV: &str = "TANDEM_VALIDATOR_CRASH_CHILD_START";
const CHILD_HANDSHAKE_ENV: &str = "TANDEM_VALIDATOR_CRASH_CHILD_HANDSHAKE";
const TEST_NAME: &str = "no_duty_gets_two_signatures_across_kill_9";
const KILLS: u64 = 20;
/// Duties a new child re-signs from before the last one any child was seen signing.
const RESIGN_WINDOW: u64 = 6;
/// Duties past the last seen one that the parent probes after a kill.
const PROBE_AHEAD: u64 = 4;

/// The `i`th duty of the sequence every child walks: per slot two blocks, the checkpoint
/// proposal and the attestation.
fn duty(i: u64) -> Duty {
    let slot = Slot(i / 4);
    match i % 4 {
        0 => Duty::BlockProposal { slot, index: 0 },
        1 => Duty::BlockProposal { slot, index: 1 },
        2 => Duty::CheckpointProposal { slot },
        _ => Duty::Attestation { slot },
    }
}

/// The digest variant run `run` signs duty `i` with: consecutive runs disagree on every duty.
fn variant(run: u64, i: u64) -> u64 {
    (run + i) % 2
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name).unwrap().parse().unwrap()
}

/// The signer: walks the duties from `start` on, forever.
fn child(dir: &Path) -> ! {
    let run = env_u64(CHILD_RUN_ENV);
    let start = env_u64(CHILD_START_ENV);
    let handshake = std::env::var_os(CHILD_HANDSHAKE_ENV).is_some();
    let signer = ProtectedSigner::open(dir, domain(), [key(0)]).expect("child opens the record");
    let me = key(0).address();
    let stdin = std::io::stdin();
    for i in start.. {
        let variant = variant(run, i);
        match sign(&signer, me, duty(i), variant).1 {
            Ok(signature) => {
                if handshake {
                    // Recorded, not yet published: the parent may kill us here.
                    println!("recorded {i} {variant}");
                    let mut line = String::new();
                    stdin.lock().read_line(&mut line).expect("stdin");
                }
                println!("signed {i} {variant} {}", hex::encode(signature.as_bytes()));
            }
            Err(err) if err.is_slashing_refusal() => println!("refused {i}"),
            Err(err) => panic!("child failed to sign: {err}"),
        }
    }
    unreachable!("the duty sequence is endless")
}

enum Line {
    Recorded(u64, u64),
    Signed(u64, u64, Signature),
    Refused,
}

fn parse(line: &str) -> Option<Line> {
    // The test harness starts the child's first line with "test <name> ... ".
    let line = line.rsplit_once(" ... ").map_or(line, |(_, rest)| rest);
    let mut words = line.split(' ');
    let tag = words.next()?;
    let mut number = || words.next().and_then(|w| w.parse::<u64>().ok());
    match tag {
        "recorded" => Some(Line::Recorded(number()?, number()?)),
        "signed" => {
            let (i, variant) = (number()?, number()?);
            let bytes = hex::decode(line.rsplit(' ').next()?).ok()?;
            Some(Line::Signed(i, variant, Signature::from_slice(&bytes)?))
        }
        "refused" => Some(Line::Refused),
        _ => None,
    }
}

/// Every signature seen for each duty; inserting a second, different one fails the test.
#[derive(Default)]
struct Seen {
    signatures: HashMap<u64, (u64, Signature)>,
    published: Vec<(u64, u64)>,
    last: u64,
}

impl Seen {
    fn add(&mut self, i: u64, variant: u64, signature: Signature, who: &str) {
        self.last = self.last.max(i);
        let first = *self.signatures.entry(i).or_insert((variant, signature));
        assert_eq!(
            first,
            (variant, signature),
            "{} got two signatures (the second from the {who})",
            duty(i)
        );
    }
}

fn spawn(dir: &Path, run: u64, start: u64, handshake: bool) -> (Child, ChildStdin) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_RUN_ENV, run.to_string())
        .env(CHILD_START_ENV, start.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if handshake {
        command.env(CHILD_HANDSHAKE_ENV, "1");
    }
    let mut child = command.spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

#[test]
fn no_duty_gets_two_signatures_across_kill_9() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let me = key(0).address();
    let mut seen = Seen::default();
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next_random = |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let mut killed_between_record_and_publish = 0;
    for run in 0..KILLS {
        let start = seen.last.saturating_sub(RESIGN_WINDOW);
        let handshake = run % 2 == 1;
        let (mut child, mut stdin) = spawn(dir.path(), run, start, handshake);
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(parsed) = parse(&line) {
                    let _ = lines_tx.send(parsed);
                }
            }
        });
        let next = || {
            lines
                .recv_timeout(Duration::from_secs(60))
                .expect("the child signs")
        };
        let mut unpublished = None;
        if handshake {
            // Let it publish a few, then kill it between recording and publishing one.
            let mut allowed = next_random(4);
            loop {
                match next() {
                    Line::Recorded(i, variant) if allowed == 0 => {
                        unpublished = Some((i, variant));
                        break;
                    }
                    Line::Recorded(..) => {
                        allowed -= 1;
                        stdin.write_all(b"\n").unwrap();
                    }
                    Line::Signed(i, variant, signature) => {
                        seen.add(i, variant, signature, "child");
                        seen.published.push((i, variant));
                    }
                    Line::Refused => {}
                }
            }
        } else {
            // Wait until it holds the lock and signs, then kill it a random while later:
            // most of a signing is the fsync, so that is where most kills land.
            loop {
                if let Line::Signed(i, variant, signature) = next() {
                    seen.add(i, variant, signature, "child");
                    seen.published.push((i, variant));
                    break;
                }
            }
        }
        // While the child runs, nobody else may open its record.
        match ProtectedSigner::open(dir.path(), domain(), [key(0)]) {
            Err(ValidatorError::RecordLocked { holder_pid, .. }) => {
                assert_eq!(holder_pid, Some(child.id()), "run {run}");
            }
            other => panic!("run {run}: a second open must fail, got {other:?}"),
        }
        if !handshake {
            std::thread::sleep(Duration::from_millis(1 + next_random(30)));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        drop(stdin);
        reader.join().unwrap();
        for line in lines.try_iter() {
            if let Line::Signed(i, variant, signature) = line {
                seen.add(i, variant, signature, "child");
                seen.published.push((i, variant));
            }
        }

        let signer = ProtectedSigner::open(dir.path(), domain(), [key(0)])
            .unwrap_or_else(|err| panic!("run {run}: the record does not reopen: {err}"));
        // Every published signature is recorded: the same digest gets it back.
        for &(i, variant) in &seen.published {
            let (_, again) = sign(&signer, me, duty(i), variant);
            assert_eq!(
                again.ok(),
                Some(seen.signatures[&i].1),
                "run {run}: the published {} is not in the record",
                duty(i)
            );
        }
        // Killed between record and publish: recorded, so the other digest is refused.
        if let Some((i, variant)) = unpublished {
            let (_, other) = sign(&signer, me, duty(i), 1 - variant);
            assert!(
                matches!(other, Err(ValidatorError::ConflictingDuty { .. })),
                "run {run}: {} was recorded before the kill, yet {other:?}",
                duty(i)
            );
            killed_between_record_and_publish += 1;
        }
        // Both digests of every recent duty: at most one signature each, ever.
        let probe_to = seen.last + PROBE_AHEAD;
        for i in start..=probe_to {
            for variant in [0, 1] {
                match sign(&signer, me, duty(i), variant).1 {
                    Ok(signature) => seen.add(i, variant, signature, "parent"),
                    Err(err) if err.is_slashing_refusal() => {}
                    Err(err) => panic!("run {run}: {err}"),
                }
            }
            if let Some(&(variant, _)) = seen.signatures.get(&i) {
                let (_, other) = sign(&signer, me, duty(i), 1 - variant);
                assert!(
                    other
                        .as_ref()
                        .is_err_and(ValidatorError::is_slashing_refusal),
                    "run {run}: {} signed twice: {other:?}",
                    duty(i)
                );
            }
        }
    }
    assert_eq!(killed_between_record_and_publish, KILLS / 2);
    assert!(
        seen.published.len() as u64 >= KILLS,
        "the children published too little: {}",
        seen.published.len()
    );
}
