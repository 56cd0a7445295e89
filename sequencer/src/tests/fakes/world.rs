//! A real world state in a temp dir, with a plain pool.

use std::sync::Mutex;

use futures::FutureExt;
use tandem_proto::{B256, RecoveredTx};
use tandem_state::{
    ExecutedBlock, Fork, PoolConfig, StateTip, TxPool, WorldState, WorldStateConfig,
};

use super::spec;
use crate::{
    deps::{DepFuture, WorldView},
    error::SequencerResult,
};

/// A real world state in a temp dir with a plain pool; its tip can be overridden for tests of
/// prepare alone.
pub(crate) struct FakeWorld {
    pub(crate) world: WorldState,
    pub(crate) pool: Mutex<TxPool>,
    pub(crate) tip_override: Mutex<Option<StateTip>>,
    pub(crate) submitted: Mutex<Vec<B256>>,
}

impl FakeWorld {
    pub(crate) fn open(dir: &std::path::Path) -> Self {
        Self {
            world: WorldState::open(&dir.join("world"), spec(), WorldStateConfig::default())
                .unwrap(),
            pool: Mutex::new(TxPool::new(PoolConfig::default())),
            tip_override: Mutex::new(None),
            submitted: Mutex::default(),
        }
    }

    pub(crate) fn add_txs(&self, txs: impl IntoIterator<Item = RecoveredTx>) {
        let mut pool = self.pool.lock().unwrap();
        for tx in txs {
            let account = self.world.account(&tx.sender());
            pool.add(tx, &account).unwrap();
        }
    }
}

impl WorldView for FakeWorld {
    fn tip(&self) -> StateTip {
        self.tip_override
            .lock()
            .unwrap()
            .unwrap_or_else(|| self.world.tip())
    }

    fn fork(&self, number: u64) -> SequencerResult<Fork> {
        Ok(self.world.fork(number)?)
    }

    fn candidates(&self, fork: &Fork, max: usize) -> Vec<RecoveredTx> {
        self.pool
            .lock()
            .unwrap()
            .best(|address| fork.account(address).nonce)
            .take(max)
            .collect()
    }

    fn submit_executed(&self, block: ExecutedBlock, _txs: Vec<RecoveredTx>) -> DepFuture<'_, ()> {
        self.submitted.lock().unwrap().push(block.block().hash());
        async { Ok(()) }.boxed()
    }
}
