//! Proof that a gossip message passed validation: only this crate can build a [`Verified`].

use std::{ops::Deref, sync::Arc};

use libp2p::PeerId;
use tandem_proto::{Address, time::Timestamp};

/// A message that passed gossip validation, with the signer it recovered to.
#[derive(Debug)]
pub struct Verified<T> {
    message: Arc<T>,
    signer: Address,
    received_at: Timestamp,
    source: Option<PeerId>,
}

impl<T> Clone for Verified<T> {
    fn clone(&self) -> Self {
        Self {
            message: Arc::clone(&self.message),
            signer: self.signer,
            received_at: self.received_at,
            source: self.source,
        }
    }
}

impl<T> Verified<T> {
    pub(crate) fn new(message: T, signer: Address, received_at: Timestamp) -> Self {
        Self {
            message: Arc::new(message),
            signer,
            received_at,
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: PeerId) -> Self {
        self.source = Some(source);
        self
    }

    /// The address the message's signature recovered to (proposer, attester or tx sender).
    pub const fn signer(&self) -> Address {
        self.signer
    }

    /// When this node received it.
    pub const fn received_at(&self) -> Timestamp {
        self.received_at
    }

    /// The peer that forwarded it (`None` for this node's own messages).
    pub const fn source(&self) -> Option<PeerId> {
        self.source
    }

    /// The shared message.
    pub fn message(&self) -> &Arc<T> {
        &self.message
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.message
    }
}
