//! Slashing protection under kill -9: a child process signs duties in a loop (re-signing the
//! last few duties of the previous child with other digests first) and prints every signature
//! it got; the parent kills it with SIGKILL, 20 times, then reopens the record and re-signs
//! every recent duty with the conflicting and the identical digest. Never may one duty get two
//! different signatures, and every signature a child published must be in the record.
//!
//! Where the kills land is not left to luck. The child stops at a chosen phase and waits for
//! the parent, which lets it go on a few times and then kills it there:
//! - `checked`: inside the signer, the duty checked and signed in memory, the record not yet
//!   written (the signer's trace event "writing the signing record"): afterwards the duty must
//!   not be in the record;
//! - `recorded`: inside the signer, the record written and fsynced, the signature not yet
//!   returned (its debug event "recorded new signatures"): afterwards the duty must be in the
//!   record and the other digest refused;
//! - `returned`: the signature returned, not yet published: the same;
//! - `random`: a random few hundred µs after the child announced a signing, unsynchronised
//!   (these land anywhere; counted, not asserted).
//!
//! The child observes the first two through a `tracing` subscriber of its own, so the signer
//! carries no test hook. A SIGKILL does not lose what the process wrote to the OS, so this
//! checks the order (record, then publish) and RocksDB's atomicity, not the fsync itself; the
//! unit tests see the fsync in RocksDB's statistics.

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
use common::duties::{digest, domain, init, key, sign};
use tandem_proto::{Signature, time::Slot};
use tandem_validator::{Duty, OpenMode, ProtectedSigner, ValidatorError};
use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

const CHILD_DIR_ENV: &str = "TANDEM_VALIDATOR_CRASH_CHILD_DIR";
const CHILD_RUN_ENV: &str = "TANDEM_VALIDATOR_CRASH_CHILD_RUN";
const CHILD_START_ENV: &str = "TANDEM_VALIDATOR_CRASH_CHILD_START";
const CHILD_PAUSE_ENV: &str = "TANDEM_VALIDATOR_CRASH_CHILD_PAUSE";
const TEST_NAME: &str = "no_duty_gets_two_signatures_across_kill_9";
const KILLS: u64 = 20;
/// Duties a new child re-signs from before the last one any child was seen signing.
const RESIGN_WINDOW: u64 = 6;
/// Duties past the last seen one that the parent probes after a kill.
const PROBE_AHEAD: u64 = 4;

/// Where a run's kill lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    Checked,
    Recorded,
    Returned,
    Random,
}

const PHASES: [Phase; 4] = [
    Phase::Checked,
    Phase::Recorded,
    Phase::Returned,
    Phase::Random,
];

impl Phase {
    const fn name(self) -> &'static str {
        match self {
            Self::Checked => "checked",
            Self::Recorded => "recorded",
            Self::Returned => "returned",
            Self::Random => "random",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        PHASES.into_iter().find(|phase| phase.name() == name)
    }

    /// The signer's log message emitted at this phase, for the phases inside the signer.
    const fn signer_message(self) -> Option<&'static str> {
        match self {
            Self::Checked => Some("writing the signing record"),
            Self::Recorded => Some("recorded new signatures"),
            Self::Returned | Self::Random => None,
        }
    }
}

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

/// Tells the parent the child stopped at `phase`, and waits for it to say go on (or to kill).
fn pause(phase: Phase) {
    println!("paused {}", phase.name());
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).expect("stdin");
}

/// The child's subscriber: pauses at the signer's event of one phase.
struct PauseAt(&'static str);

struct MessageOf(Option<String>);

impl Visit for MessageOf {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl Subscriber for PauseAt {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "validator::protection"
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = MessageOf(None);
        event.record(&mut message);
        if message.0.as_deref() == Some(self.0) {
            let phase = PHASES
                .into_iter()
                .find(|phase| phase.signer_message() == Some(self.0))
                .expect("a phase inside the signer");
            pause(phase);
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// The signer: walks the duties from `start` on, forever.
fn child(dir: &Path) -> ! {
    let run = env_u64(CHILD_RUN_ENV);
    let start = env_u64(CHILD_START_ENV);
    let phase = std::env::var(CHILD_PAUSE_ENV)
        .ok()
        .and_then(|name| Phase::parse(&name));
    if let Some(message) = phase.and_then(Phase::signer_message) {
        tracing::subscriber::set_global_default(PauseAt(message)).expect("one subscriber");
    }
    let signer = ProtectedSigner::open(dir, domain(), [key(0)], OpenMode::Existing)
        .expect("child opens the record");
    let me = key(0).address();
    for i in start.. {
        let variant = variant(run, i);
        println!("signing {i} {variant}");
        match sign(&signer, me, duty(i), variant).1 {
            Ok(signature) => {
                if phase == Some(Phase::Returned) {
                    pause(Phase::Returned);
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
    Signing(u64, u64),
    Paused(Phase),
    Signed(u64, u64, Signature),
    Refused,
}

fn parse(line: &str) -> Option<Line> {
    // The test harness starts the child's first line with "test <name> ... ".
    let line = line.rsplit_once(" ... ").map_or(line, |(_, rest)| rest);
    let mut words = line.split(' ');
    let tag = words.next()?;
    match tag {
        "paused" => Some(Line::Paused(Phase::parse(words.next()?)?)),
        "refused" => Some(Line::Refused),
        _ => {
            let mut number = || words.next().and_then(|w| w.parse::<u64>().ok());
            let (i, variant) = (number()?, number()?);
            match tag {
                "signing" => Some(Line::Signing(i, variant)),
                "signed" => {
                    let bytes = hex::decode(line.rsplit(' ').next()?).ok()?;
                    Some(Line::Signed(i, variant, Signature::from_slice(&bytes)?))
                }
                _ => None,
            }
        }
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

    fn publish(&mut self, i: u64, variant: u64, signature: Signature) {
        self.add(i, variant, signature, "child");
        self.published.push((i, variant));
    }
}

fn spawn(dir: &Path, run: u64, start: u64, phase: Phase) -> (Child, ChildStdin) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_RUN_ENV, run.to_string())
        .env(CHILD_START_ENV, start.to_string())
        .env(CHILD_PAUSE_ENV, phase.name())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
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
    drop(ProtectedSigner::open(dir.path(), domain(), [key(0)], init(0)).unwrap());
    let me = key(0).address();
    let mut seen = Seen::default();
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next_random = |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let mut kills: HashMap<Phase, u64> = HashMap::new();
    let mut random_kills_inside_a_call = 0;
    for run in 0..KILLS {
        let start = seen.last.saturating_sub(RESIGN_WINDOW);
        let phase = PHASES[(run % 4) as usize];
        let (mut child, mut stdin) = spawn(dir.path(), run, start, phase);
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
        let mut signing = None;
        // The duty the child is stopped in when killed (pausing phases).
        let mut killed_in = None;
        if phase == Phase::Random {
            // Wait until it holds the lock and signed, then kill it a little after it
            // announces its next signing.
            let mut published = false;
            loop {
                match next() {
                    Line::Signed(i, variant, signature) => {
                        seen.publish(i, variant, signature);
                        published = true;
                    }
                    Line::Signing(..) if published => break,
                    Line::Signing(..) | Line::Refused => {}
                    Line::Paused(phase) => panic!("a free-running child paused at {phase:?}"),
                }
            }
            std::thread::sleep(Duration::from_micros(next_random(500)));
        } else {
            // Let it pass a few stops, then kill it at the next one.
            let mut allowed = next_random(4);
            loop {
                match next() {
                    Line::Signing(i, variant) => signing = Some((i, variant)),
                    Line::Paused(paused) => {
                        assert_eq!(paused, phase, "run {run}");
                        if allowed == 0 {
                            killed_in = signing;
                            *kills.entry(paused).or_default() += 1;
                            break;
                        }
                        allowed -= 1;
                        stdin.write_all(b"\n").unwrap();
                    }
                    Line::Signed(i, variant, signature) => seen.publish(i, variant, signature),
                    Line::Refused => {}
                }
            }
        }
        // While the child runs, nobody else may open its record.
        match ProtectedSigner::open(dir.path(), domain(), [key(0)], OpenMode::Existing) {
            Err(ValidatorError::RecordLocked { holder_pid, .. }) => {
                assert_eq!(holder_pid, Some(child.id()), "run {run}");
            }
            other => panic!("run {run}: a second open must fail, got {other:?}"),
        }
        child.kill().unwrap();
        child.wait().unwrap();
        drop(stdin);
        reader.join().unwrap();
        // A random kill follows a `signing` line at once: unless the child printed more, the
        // call was in flight.
        let mut last_line_was_signing = phase == Phase::Random;
        for line in lines.try_iter() {
            last_line_was_signing = matches!(line, Line::Signing(..));
            if let Line::Signed(i, variant, signature) = line {
                seen.publish(i, variant, signature);
            }
        }
        if phase == Phase::Random {
            *kills.entry(Phase::Random).or_default() += 1;
            if last_line_was_signing {
                random_kills_inside_a_call += 1;
            }
        }

        let signer = ProtectedSigner::open(dir.path(), domain(), [key(0)], OpenMode::Existing)
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
        // Killed inside or right after the signer: the record holds exactly what the phase
        // says.
        if let Some((i, variant)) = killed_in {
            let recorded = signer.recorded(me, duty(i)).unwrap();
            match phase {
                Phase::Checked => assert_eq!(
                    recorded,
                    None,
                    "run {run}: killed before the record was written, yet {} is recorded",
                    duty(i)
                ),
                Phase::Recorded | Phase::Returned => {
                    assert_eq!(
                        recorded.map(|r| r.digest),
                        Some(digest(&domain(), duty(i), variant)),
                        "run {run}: killed after recording {}",
                        duty(i)
                    );
                    let (_, other) = sign(&signer, me, duty(i), 1 - variant);
                    assert!(
                        matches!(other, Err(ValidatorError::ConflictingDuty { .. })),
                        "run {run}: {} was recorded before the kill, yet {other:?}",
                        duty(i)
                    );
                }
                Phase::Random => unreachable!("random kills are not stopped in a duty"),
            }
        } else {
            assert_eq!(
                phase,
                Phase::Random,
                "run {run}: a stopped child names its duty"
            );
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
    // Each kill is counted at the phase the child was seen stopped in.
    for phase in PHASES {
        assert_eq!(
            kills.get(&phase).copied(),
            Some(KILLS / 4),
            "kills at {phase:?}: {kills:?}"
        );
    }
    eprintln!(
        "kills per phase: {kills:?}; random kills with a signing call in flight: \
         {random_kills_inside_a_call} of {}",
        KILLS / 4
    );
    assert!(
        seen.published.len() as u64 >= KILLS,
        "the children published too little: {}",
        seen.published.len()
    );
}
