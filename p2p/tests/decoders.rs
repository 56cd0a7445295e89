//! Every decoder on the gossip and req/resp paths survives arbitrary bytes: a typed error or a
//! value, never a panic.

mod common;

use common::Net;
use proptest::prelude::*;
use tandem_p2p::{GossipKind, GossipPipeline};
use tandem_proto::{WireMessage, time::Timestamp};

fn pipeline(now: Timestamp) -> (Net, GossipPipeline) {
    let net = Net::new(now);
    let pipeline = net.pipeline();
    (net, pipeline)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(kind in 0usize..4, bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let now = Timestamp::from_secs(1_000_000);
        let (_, mut pipeline) = pipeline(now);
        let _ = pipeline.accept(GossipKind::ALL[kind], &bytes, now);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        kind in 0usize..4,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        truncate in any::<prop::sample::Index>(),
    ) {
        let now = Timestamp::from_secs(1_000_000);
        let (net, mut pipeline) = pipeline(now);
        let proposer = net.proposer(common::TARGET);
        let block = net.block(common::TARGET, 0, vec![net.tx(1)], proposer);
        let checkpoint = net.checkpoint(common::TARGET, block.clone(), 0, proposer);
        let mut bytes = match GossipKind::ALL[kind] {
            GossipKind::Tx => net.tx(3).to_wire_bytes(),
            GossipKind::BlockProposal => block.to_wire_bytes(),
            GossipKind::CheckpointProposal => checkpoint.to_wire_bytes(),
            GossipKind::CheckpointAttestation => {
                net.attestation(&checkpoint, &net.keys[0]).to_wire_bytes()
            }
        };
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= value;
        }
        bytes.truncate(truncate.index(bytes.len() + 1));
        let _ = pipeline.accept(GossipKind::ALL[kind], &bytes, now);
    }
}
