//! Snappy compression of gossip payloads, applied by gossipsub itself so message ids are computed
//! over the decompressed bytes (a re-compressed copy of a message is still a duplicate).

use std::io;

use libp2p::gossipsub::{DataTransform, Message, RawMessage, TopicHash};

use crate::{metrics, topics::Topics};

/// Decompresses inbound and compresses outbound gossip, refusing anything whose declared
/// decompressed size exceeds its topic's limit before allocating for it.
pub(crate) struct SnappyTransform {
    topics: Topics,
}

impl SnappyTransform {
    pub(crate) const fn new(topics: Topics) -> Self {
        Self { topics }
    }
}

impl DataTransform for SnappyTransform {
    fn inbound_transform(&self, raw: RawMessage) -> Result<Message, io::Error> {
        // Gossipsub only hands us messages on topics we subscribed to, all of them ours.
        let kind = self.topics.kind_of(&raw.topic).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "message on an unknown topic")
        })?;
        let refuse = |reason: String| {
            metrics::gossip_undecodable(kind);
            io::Error::new(io::ErrorKind::InvalidData, reason)
        };
        let len = snap::raw::decompress_len(&raw.data)
            .map_err(|err| refuse(format!("{kind}: bad snappy header: {err}")))?;
        if len > kind.max_message_size() {
            return Err(refuse(format!(
                "{kind}: decompresses to {len} bytes, limit {}",
                kind.max_message_size()
            )));
        }
        let data = snap::raw::Decoder::new()
            .decompress_vec(&raw.data)
            .map_err(|err| refuse(format!("{kind}: bad snappy data: {err}")))?;
        Ok(Message {
            source: raw.source,
            data,
            sequence_number: raw.sequence_number,
            topic: raw.topic,
        })
    }

    fn outbound_transform(&self, topic: &TopicHash, data: Vec<u8>) -> Result<Vec<u8>, io::Error> {
        if let Some(kind) = self.topics.kind_of(topic)
            && data.len() > kind.max_message_size()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{kind}: {} bytes exceeds the limit of {}",
                    data.len(),
                    kind.max_message_size()
                ),
            ));
        }
        snap::raw::Encoder::new()
            .compress_vec(&data)
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::GossipKind;

    fn raw(topic: TopicHash, data: Vec<u8>) -> RawMessage {
        RawMessage {
            source: None,
            data,
            sequence_number: None,
            topic,
            signature: None,
            key: None,
            validated: false,
        }
    }

    proptest::proptest! {
        #[test]
        fn inbound_never_panics(kind in 0usize..4, bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            let topics = Topics::new(1);
            let transform = SnappyTransform::new(topics.clone());
            let topic = topics.hash(GossipKind::ALL[kind]).clone();
            let _ = transform.inbound_transform(raw(topic, bytes));
        }
    }

    #[test]
    fn round_trip_and_limits() {
        let topics = Topics::new(1);
        let transform = SnappyTransform::new(topics.clone());
        let attestation = topics.hash(GossipKind::CheckpointAttestation).clone();
        let payload = vec![7u8; 4000];
        let compressed = transform
            .outbound_transform(&attestation, payload.clone())
            .unwrap();
        assert!(compressed.len() < payload.len());
        let message = transform
            .inbound_transform(raw(attestation.clone(), compressed))
            .unwrap();
        assert_eq!(message.data, payload);

        // Too large to send, and a bomb that would decompress past the limit is refused unread.
        assert!(
            transform
                .outbound_transform(&attestation, vec![0; 6 * 1024])
                .is_err()
        );
        let bomb = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 64 * 1024])
            .unwrap();
        assert!(bomb.len() < 5 * 1024);
        assert!(
            transform
                .inbound_transform(raw(attestation.clone(), bomb))
                .is_err()
        );
        assert!(
            transform
                .inbound_transform(raw(attestation, vec![0xff; 10]))
                .is_err()
        );
    }
}
