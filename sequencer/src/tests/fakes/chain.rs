//! The archiver, scripted.

use std::{collections::BTreeMap, sync::Mutex};

use futures::FutureExt;
use tandem_archiver::{
    ArchiverError, L1Ref, ProposedBlock, ProposedCheckpoint, ProposedCheckpointInput, StoredHeader,
};
use tandem_proto::{
    B256, BlockHeader, BlockId, CheckpointId, ConsensusPayload, L2TipId, L2Tips, time::Slot,
};
use tokio::sync::watch;

use crate::{
    deps::{ChainStore, DepFuture},
    error::SequencerResult,
};

fn tip_id(number: u64, hash: B256, checkpoint: u64) -> L2TipId {
    L2TipId {
        block: BlockId { number, hash },
        checkpoint: CheckpointId {
            number: checkpoint,
            hash: B256::with_last_byte(checkpoint as u8),
        },
    }
}

/// The archiver, scripted.
pub(crate) struct FakeChain {
    pub(crate) tips: watch::Sender<L2Tips>,
    /// The last synced L1 block, as the archiver publishes it (set `synced_slot` first).
    pub(crate) l1_synced: watch::Sender<Option<L1Ref>>,
    pub(crate) headers: Mutex<BTreeMap<u64, StoredHeader>>,
    pub(crate) proposed: Mutex<BTreeMap<u64, ProposedCheckpoint>>,
    pub(crate) checkpointed_hashes: Mutex<BTreeMap<u64, B256>>,
    pub(crate) synced_slot: Mutex<Option<Slot>>,
    pub(crate) refuse_blocks: Mutex<bool>,
    /// Reads of L1 data (sync, checkpointed hashes) fail.
    pub(crate) fail_reads: Mutex<bool>,
    /// How many of the next `synced_l2_slot` reads fail.
    pub(crate) failing_sync_reads: Mutex<u32>,
    /// Storing a block takes this long on a blocking thread (real time, no clock time).
    pub(crate) store_delay: Mutex<Option<std::time::Duration>>,
    /// Storing a block takes this much clock time.
    pub(crate) store_clock_delay: Mutex<Option<std::time::Duration>>,
    /// Storing the block at this 0-based position among the stored ones takes this much clock
    /// time (once: a release overrunning a sub-slot deadline).
    pub(crate) store_clock_delay_at: Mutex<Option<(usize, std::time::Duration)>>,
    pub(crate) stored_blocks: Mutex<Vec<ProposedBlock>>,
    pub(crate) stored_checkpoints: Mutex<Vec<ProposedCheckpointInput>>,
}

impl FakeChain {
    pub(crate) fn new(tips: L2Tips) -> Self {
        Self {
            tips: watch::channel(tips).0,
            l1_synced: watch::channel(None).0,
            headers: Mutex::default(),
            proposed: Mutex::default(),
            checkpointed_hashes: Mutex::default(),
            synced_slot: Mutex::new(None),
            refuse_blocks: Mutex::new(false),
            fail_reads: Mutex::new(false),
            failing_sync_reads: Mutex::new(0),
            store_delay: Mutex::new(None),
            store_clock_delay: Mutex::new(None),
            store_clock_delay_at: Mutex::new(None),
            stored_blocks: Mutex::default(),
            stored_checkpoints: Mutex::default(),
        }
    }

    /// A header `number` in `checkpoint`, of `slot`.
    pub(crate) fn put_header(&self, number: u64, checkpoint: u64, slot: u64) -> StoredHeader {
        let header = BlockHeader {
            block_number: number,
            checkpoint_number: checkpoint,
            slot,
            ..BlockHeader::default()
        };
        let stored = StoredHeader {
            hash: header.hash(),
            archive_root: B256::with_last_byte(0xa0 + number as u8),
            header,
        };
        self.headers.lock().unwrap().insert(number, stored.clone());
        stored
    }

    pub(crate) fn put_proposed(
        &self,
        number: u64,
        start: u64,
        count: u64,
        slot: u64,
    ) -> ProposedCheckpoint {
        let mut payload = ConsensusPayload::default();
        payload.header.slot = slot;
        payload.archive = B256::with_last_byte(0xc0 + number as u8);
        let proposed = ProposedCheckpoint {
            number,
            payload,
            start_block: start,
            block_count: count,
            total_mana_used: 0,
            proposer_signature: Default::default(),
        };
        self.proposed
            .lock()
            .unwrap()
            .insert(number, proposed.clone());
        proposed
    }

    /// Tips: proposed tip block `number` (hash from its stored header), in checkpoint `cp`;
    /// proposed checkpoint `proposed` and checkpointed `checkpointed`.
    pub(crate) fn set_tips(&self, number: u64, cp: u64, proposed: u64, checkpointed: u64) {
        let hash = self.headers.lock().unwrap()[&number].hash;
        let last_of = |c: u64| tip_id(number, hash, c);
        self.tips.send_replace(L2Tips {
            proposed: last_of(cp),
            proposed_checkpoint: last_of(proposed),
            checkpointed: last_of(checkpointed),
            finalized: last_of(0),
        });
    }
}

impl ChainStore for FakeChain {
    fn tips(&self) -> L2Tips {
        *self.tips.borrow()
    }

    fn watch_tips(&self) -> watch::Receiver<L2Tips> {
        self.tips.subscribe()
    }

    fn watch_l1_synced(&self) -> watch::Receiver<Option<L1Ref>> {
        self.l1_synced.subscribe()
    }

    fn header(&self, number: u64) -> SequencerResult<Option<StoredHeader>> {
        Ok(self.headers.lock().unwrap().get(&number).cloned())
    }

    fn proposed_checkpoint(&self, number: u64) -> SequencerResult<Option<ProposedCheckpoint>> {
        Ok(self.proposed.lock().unwrap().get(&number).cloned())
    }

    fn checkpointed_header_hash(&self, number: u64) -> SequencerResult<Option<B256>> {
        if *self.fail_reads.lock().unwrap() {
            return Err(ArchiverError::Stopped.into());
        }
        Ok(self
            .checkpointed_hashes
            .lock()
            .unwrap()
            .get(&number)
            .copied())
    }

    fn synced_l2_slot(&self) -> SequencerResult<Option<Slot>> {
        let mut failing = self.failing_sync_reads.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            return Err(ArchiverError::Stopped.into());
        }
        Ok(*self.synced_slot.lock().unwrap())
    }

    fn add_block(&self, block: ProposedBlock) -> DepFuture<'_, ()> {
        let delay = *self.store_delay.lock().unwrap();
        let clock_delay = *self.store_clock_delay.lock().unwrap();
        let position = self.stored_blocks.lock().unwrap().len();
        let once = self
            .store_clock_delay_at
            .lock()
            .unwrap()
            .and_then(|(at, delay)| (at == position).then_some(delay));
        async move {
            if let Some(delay) = once {
                tokio::time::sleep(delay).await;
            }
            if let Some(delay) = clock_delay {
                tokio::time::sleep(delay).await;
            }
            if let Some(delay) = delay {
                tokio::task::spawn_blocking(move || std::thread::sleep(delay))
                    .await
                    .unwrap();
            }
            if *self.refuse_blocks.lock().unwrap() {
                return Err(ArchiverError::Stopped.into());
            }
            self.stored_blocks.lock().unwrap().push(block);
            Ok(())
        }
        .boxed()
    }

    fn add_proposed_checkpoint(&self, input: ProposedCheckpointInput) -> DepFuture<'_, ()> {
        async move {
            self.stored_checkpoints.lock().unwrap().push(input);
            Ok(())
        }
        .boxed()
    }
}
