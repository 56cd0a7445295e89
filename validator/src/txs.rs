//! Gossiped txs into the pool, through the state service (never waiting: a full queue drops).

use tandem_p2p::{TxHandler, Verified};
use tandem_proto::RecoveredTx;

use crate::state::StateHandle;

/// p2p's tx handler: queues every accepted gossiped tx for the pool.
#[derive(Debug, Clone)]
pub struct TxGossipHandler {
    state: StateHandle,
}

impl TxGossipHandler {
    /// A handler feeding `state`'s pool.
    pub const fn new(state: StateHandle) -> Self {
        Self { state }
    }
}

impl TxHandler for TxGossipHandler {
    fn on_tx(&self, tx: Verified<RecoveredTx>) {
        self.state.offer_gossip_tx(RecoveredTx::clone(&tx));
    }
}
