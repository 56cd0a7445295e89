//! Every decoder on the gossip path survives arbitrary bytes with a typed error, never a panic,
//! and a mutated message is only ever accepted as exactly the message it was.

mod common;

use common::Net;
use proptest::prelude::*;
use tandem_p2p::{Accepted, GossipKind, GossipPipeline};
use tandem_proto::{WireMessage, time::Timestamp};

fn pipeline(now: Timestamp) -> (Net, GossipPipeline) {
    let net = Net::at(now);
    let pipeline = net.pipeline();
    (net, pipeline)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(kind in 0usize..4, bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let now = Timestamp::from_secs(1_000_000);
        let (_, mut pipeline) = pipeline(now);
        // Random bytes are never a validly signed message.
        prop_assert!(pipeline.accept(GossipKind::ALL[kind], &bytes, now).is_err());
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
        let tx = net.tx(3);
        let attestation = net.attestation(&checkpoint, &net.keys[0]);
        let mut bytes = match GossipKind::ALL[kind] {
            GossipKind::Tx => tx.to_wire_bytes(),
            GossipKind::BlockProposal => block.to_wire_bytes(),
            GossipKind::CheckpointProposal => checkpoint.to_wire_bytes(),
            GossipKind::CheckpointAttestation => attestation.to_wire_bytes(),
        };
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= value;
        }
        bytes.truncate(truncate.index(bytes.len() + 1));
        // Accepted only if the mutation left the signed content as it was (the tx topic may
        // also accept a tx whose payload changed: its signature then recovers someone else).
        match pipeline.accept(GossipKind::ALL[kind], &bytes, now) {
            Err(_) => {}
            Ok(Accepted::Tx(accepted)) => {
                prop_assert!(
                    *accepted.tx() == tx || accepted.signer() != net.outsider.address(),
                    "a changed tx accepted as the original sender's"
                );
            }
            Ok(Accepted::Block(accepted)) => prop_assert_eq!(&**accepted.message(), &block),
            Ok(Accepted::Checkpoint { checkpoint: accepted, last_block, .. }) => {
                prop_assert_eq!(&accepted.payload, &checkpoint.payload);
                prop_assert_eq!(last_block.as_ref().map(|block| &**block.message()), checkpoint.last_block.as_ref());
            }
            Ok(Accepted::Attestation(accepted)) => prop_assert_eq!(&**accepted.message(), &attestation),
            Ok(other) => prop_assert!(false, "unexpected outcome {:?}", other),
        }
    }
}
