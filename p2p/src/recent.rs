//! Block proposals accepted (or published) recently, shared with the req/resp server: a peer
//! missing one — dropped from its full queue, or gossiped before it joined — can fetch it by
//! (slot, index) or archive even before any node stored it. Pruned with the pool.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use tandem_proto::{B256, BlockProposal, time::Slot};

use crate::reqresp::BlockQuery;

/// Recent block proposals by (slot, index) and by archive root. They share the `Arc` the
/// handlers hold, so keeping them costs no copy.
#[derive(Debug, Default)]
pub(crate) struct RecentProposals {
    by_key: BTreeMap<(Slot, u32), Vec<Arc<BlockProposal>>>,
    by_archive: HashMap<B256, Arc<BlockProposal>>,
}

impl RecentProposals {
    pub(crate) fn insert(&mut self, proposal: Arc<BlockProposal>) {
        let key = (
            Slot(proposal.header.slot),
            proposal.header.index_within_checkpoint,
        );
        let entry = self.by_key.entry(key).or_default();
        if entry
            .iter()
            .any(|known| known.archive_root == proposal.archive_root)
        {
            return;
        }
        self.by_archive
            .entry(proposal.archive_root)
            .or_insert_with(|| Arc::clone(&proposal));
        entry.push(proposal);
    }

    pub(crate) fn find(&self, query: &BlockQuery) -> Vec<Arc<BlockProposal>> {
        match query {
            BlockQuery::SlotIndex { slot, index } => self
                .by_key
                .get(&(*slot, *index))
                .cloned()
                .unwrap_or_default(),
            BlockQuery::Archive(archive) => {
                self.by_archive.get(archive).cloned().into_iter().collect()
            }
        }
    }

    /// Forgets proposals of slots before `keep_from`.
    pub(crate) fn prune(&mut self, keep_from: Slot) {
        self.by_key = self.by_key.split_off(&(keep_from, 0));
        self.by_archive
            .retain(|_, proposal| Slot(proposal.header.slot) >= keep_from);
    }
}
