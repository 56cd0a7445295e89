//! Verdicts of recent slots by hash: kept for a few slots behind the newest one seen, so the
//! cache stays bounded however many proposals arrive.

use std::collections::{BTreeMap, HashMap};

use tandem_proto::{B256, time::Slot};

/// Values by hash, dropped once their slot is more than `retained` slots behind the newest.
#[derive(Debug)]
pub(crate) struct RecentBySlot<V> {
    retained: u64,
    by_hash: HashMap<B256, (Slot, V)>,
    by_slot: BTreeMap<Slot, Vec<B256>>,
}

impl<V: Clone> RecentBySlot<V> {
    pub(crate) fn new(retained: u64) -> Self {
        Self {
            retained,
            by_hash: HashMap::new(),
            by_slot: BTreeMap::new(),
        }
    }

    pub(crate) fn insert(&mut self, slot: Slot, hash: B256, value: V) {
        self.by_hash.insert(hash, (slot, value));
        self.by_slot.entry(slot).or_default().push(hash);
        if let Some((newest, _)) = self.by_slot.last_key_value() {
            let keep = Slot(newest.0.saturating_sub(self.retained));
            let kept = self.by_slot.split_off(&keep);
            for hash in std::mem::replace(&mut self.by_slot, kept)
                .into_values()
                .flatten()
            {
                self.by_hash.remove(&hash);
            }
        }
    }

    pub(crate) fn get(&self, hash: &B256) -> Option<V> {
        self.by_hash.get(hash).map(|(_, value)| value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_slots_are_forgotten() {
        let mut recent = RecentBySlot::new(2);
        recent.insert(Slot(10), B256::repeat_byte(1), "a");
        recent.insert(Slot(11), B256::repeat_byte(2), "b");
        recent.insert(Slot(12), B256::repeat_byte(3), "c");
        assert_eq!(recent.get(&B256::repeat_byte(1)), Some("a"));
        recent.insert(Slot(13), B256::repeat_byte(4), "d");
        assert_eq!(recent.get(&B256::repeat_byte(1)), None);
        assert_eq!(recent.get(&B256::repeat_byte(2)), Some("b"));
        // An old slot arriving late is kept only while within the window.
        recent.insert(Slot(5), B256::repeat_byte(5), "e");
        assert_eq!(recent.get(&B256::repeat_byte(5)), None);
    }
}
