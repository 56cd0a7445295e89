//! Ready txs in fee order, for the builder.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashSet},
};

use tandem_proto::{Address, B256, RecoveredTx};

use super::TxPool;

/// Iterator over ready txs in fee order; see [`TxPool::best`].
#[derive(Debug)]
pub struct BestTxs<'a> {
    pub(super) pool: &'a TxPool,
    pub(super) heap: BinaryHeap<(u128, Reverse<u64>, B256)>,
    pub(super) skipped: HashSet<Address>,
}

impl BestTxs<'_> {
    /// Skips the rest of `sender`'s txs (its last tx failed, so later nonces cannot run).
    pub fn skip_sender(&mut self, sender: Address) {
        self.skipped.insert(sender);
    }
}

impl Iterator for BestTxs<'_> {
    type Item = RecoveredTx;

    fn next(&mut self) -> Option<RecoveredTx> {
        loop {
            let (_, _, hash) = self.heap.pop()?;
            let entry = &self.pool.by_hash[&hash];
            let sender = entry.tx.sender();
            if self.skipped.contains(&sender) {
                continue;
            }
            if let Some(next_hash) = self
                .pool
                .by_sender
                .get(&sender)
                .and_then(|txs| txs.nonces.get(&(entry.nonce() + 1)))
            {
                let next = &self.pool.by_hash[next_hash];
                self.heap.push((next.fee(), Reverse(next.seq), *next_hash));
            }
            return Some(entry.tx.clone());
        }
    }
}
