//! Crash safety: a child process writes to the store (proposed blocks, proposed checkpoints, L1
//! checkpoints, prunes) and is killed with SIGKILL at random points, 20 times. After each kill
//! the store must open (its consistency check runs at open), the tips must hold, and no L1
//! checkpoint the child reported as written may be missing.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::{Chain, genesis};
use tandem_archiver::{ArchiverStore, L1Outcome};
use tandem_proto::archive::ArchiveTree;

const CHILD_ENV: &str = "TANDEM_ARCHIVER_CRASH_CHILD_DIR";
const TEST_NAME: &str = "store_survives_kill_9_at_random_points";
const KILLS: u32 = 20;

/// The writer: continues the chain from whatever the store holds, forever.
fn child(dir: &Path) -> ! {
    let mut store = ArchiverStore::open(dir, &genesis()).expect("child opens the store");
    // Drop whatever was not on "L1" when the previous child died.
    store.prune_uncheckpointed(u64::MAX).expect("prune");
    let tips = store.tips();
    let mut archive = ArchiveTree::new();
    for number in 0..=tips.checkpointed.block.number {
        archive
            .append(store.block(number).unwrap().unwrap().block.hash())
            .unwrap();
    }
    let mut chain = Chain {
        archive,
        last_block: tips.checkpointed.block.number,
        ..Chain::new()
    };
    let mut number = tips.checkpointed.checkpoint.number;
    loop {
        number += 1;
        let checkpoint = chain.checkpoint(number, number + 10, 1 + (number % 3) as u32, 1);
        for block in &checkpoint.blocks {
            store.add_proposed_block(block.clone()).expect("block");
        }
        store
            .add_proposed_checkpoint(checkpoint.proposed())
            .expect("proposed checkpoint");
        let outcome = store
            .add_l1_checkpoint(checkpoint.l1(number))
            .expect("l1 checkpoint");
        assert_eq!(outcome, L1Outcome::Promoted);
        println!("checkpointed {number}");
    }
}

#[test]
fn store_survives_kill_9_at_random_points() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // A small deterministic generator for the kill delays (5–120 ms).
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut max_reported = 0;
    for kill in 0..KILLS {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis(5 + (seed >> 33) % 115);
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(number) = line.strip_prefix("checkpointed ") {
                    let _ = lines_tx.send(number.parse::<u64>().unwrap());
                }
            }
        });
        // Wait for the first write of this run, then let it work a random while.
        let started = Instant::now();
        let first = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the child writes");
        max_reported = max_reported.max(first);
        std::thread::sleep(delay.saturating_sub(started.elapsed().min(delay)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        max_reported = lines_rx.try_iter().fold(max_reported, u64::max);

        let store = ArchiverStore::open(dir.path(), &genesis())
            .unwrap_or_else(|err| panic!("kill {kill}: store does not open: {err}"));
        let tips = store.tips();
        tips.check_invariants().unwrap();
        assert!(
            tips.checkpointed.checkpoint.number >= max_reported,
            "kill {kill}: checkpoint {max_reported} was reported written, the store has {}",
            tips.checkpointed.checkpoint.number
        );
        let record = store
            .checkpoint(tips.checkpointed.checkpoint.number)
            .unwrap()
            .unwrap();
        assert_eq!(
            store
                .block(record.last_block())
                .unwrap()
                .unwrap()
                .archive_root,
            record.payload.archive
        );
    }
    assert!(
        max_reported >= u64::from(KILLS),
        "the children wrote too little: {max_reported}"
    );
}
