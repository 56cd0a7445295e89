//! Throughput of the protocol primitives on one core. Run: `cargo bench -p tandem-proto`.
//! Prints one line per figure; no assertions (targets are checked by reading the numbers).

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use tandem_proto::{
    Address, B256, BlockHeader, BlockProposal, CheckpointAttestation, CheckpointProposal,
    ConsensusPayload, SigningDomain, SigningKey, Tx, TxPayload, WireMessage, archive::ArchiveTree,
};

const MEASURE_FOR: Duration = Duration::from_millis(1500);

/// Runs `op` repeatedly for about [`MEASURE_FOR`] and returns operations per second.
fn per_second(mut op: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < MEASURE_FOR {
        for _ in 0..64 {
            op(count);
            count += 1;
        }
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let domain = SigningDomain {
        chain_id: 1337,
        rollup: Address::repeat_byte(0xaa),
    };
    let key = SigningKey::from_bytes(&[7; 32]).expect("valid key");

    let header = BlockHeader {
        block_number: 42,
        fee_per_mana: 10,
        ..Default::default()
    };
    let rate = per_second(|i| {
        let mut h = header.clone();
        h.block_number = i;
        black_box(h.hash());
    });
    println!("block header hashes/s:            {rate:>12.0}");

    let payload = ConsensusPayload {
        archive: B256::repeat_byte(3),
        ..Default::default()
    };
    let proposal = CheckpointProposal::sign(payload, None, &domain, &key);
    let attestation = CheckpointAttestation::sign(&proposal, &domain, &key);
    let rate = per_second(|_| {
        black_box(attestation.recover_attester(&domain).expect("recovers"));
    });
    println!("attestation signer recoveries/s:  {rate:>12.0}");

    let rate = per_second(|i| {
        black_box(key.sign_digest(B256::left_padding_from(&i.to_be_bytes())));
    });
    println!("signatures/s:                     {rate:>12.0}");

    let mut tree = ArchiveTree::new();
    let rate = per_second(|i| {
        black_box(
            tree.append(B256::left_padding_from(&i.to_be_bytes()))
                .expect("not full"),
        );
    });
    println!("archive appends/s (with root):    {rate:>12.0}");

    let txs: Vec<Tx> = (0..1_000u64)
        .map(|nonce| {
            let payload = TxPayload {
                chain_id: 1337,
                nonce,
                to: Address::repeat_byte(9),
                amount: 1,
                max_fee_per_mana: 10,
                mana_limit: 25_000,
            };
            Tx::sign(payload, &domain, &key)
        })
        .collect();
    let block = BlockProposal::sign(header, B256::ZERO, txs, &domain, &key);
    let proposal =
        CheckpointProposal::sign(ConsensusPayload::default(), Some(block), &domain, &key);
    let encoded = proposal.to_wire_bytes();
    let mb = encoded.len() as f64 / 1e6;
    let rate = per_second(|_| {
        black_box(proposal.to_wire_bytes());
    });
    println!(
        "proposal encode MB/s ({} KB, 1000 txs): {:>8.1}",
        encoded.len() / 1000,
        rate * mb
    );
    let rate = per_second(|_| {
        black_box(CheckpointProposal::from_wire_bytes(&encoded).expect("decodes"));
    });
    println!(
        "proposal decode MB/s ({} KB, 1000 txs): {:>8.1}",
        encoded.len() / 1000,
        rate * mb
    );
}
