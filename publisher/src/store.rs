//! The tx store on RocksDB: one record per tx (key + nonce) and the signed raw txs of its fee
//! ladder. Every write is one fsynced `WriteBatch`, made *before* the tx it describes leaves the
//! process, so after a crash the publisher knows every tx it may have sent.

use std::{
    collections::HashSet,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use alloy::primitives::B256;
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::{
    error::PublisherError,
    record::{RECORD_VERSION, RecordError, TxRecord},
};

const CF_RECORDS: &str = "records";
const CF_RAW_TXS: &str = "raw_txs";
const CF_META: &str = "meta";
const KEY_SCHEMA: &[u8] = b"schema";

/// The publisher's durable tx state.
pub struct TxStore {
    db: DB,
    next_id: AtomicU64,
}

impl std::fmt::Debug for TxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxStore")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

impl TxStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, PublisherError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let tables = [CF_RECORDS, CF_RAW_TXS, CF_META]
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, tables)?;
        let meta = db.cf_handle(CF_META).ok_or(RecordError::Invalid {
            field: "meta table",
        })?;
        match db.get_cf(meta, KEY_SCHEMA)? {
            None => db.put_cf_opt(meta, KEY_SCHEMA, [RECORD_VERSION], &synced())?,
            Some(version) if version.as_slice() == [RECORD_VERSION] => {}
            Some(version) => {
                return Err(
                    RecordError::UnknownVersion(version.first().copied().unwrap_or(0)).into(),
                );
            }
        }
        let store = Self {
            db,
            next_id: AtomicU64::new(0),
        };
        let next = store
            .records()?
            .last()
            .map_or(0, |record| record.id.saturating_add(1));
        store.next_id.store(next, Ordering::SeqCst);
        Ok(store)
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, PublisherError> {
        self.db
            .cf_handle(name)
            .ok_or(PublisherError::Record(RecordError::Invalid { field: name }))
    }

    /// A fresh record id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Every record, oldest first.
    pub fn records(&self) -> Result<Vec<TxRecord>, PublisherError> {
        let cf = self.cf(CF_RECORDS)?;
        let mut records = Vec::new();
        for entry in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (_, value) = entry?;
            records.push(TxRecord::decode(&value)?);
        }
        Ok(records)
    }

    /// Records still being watched, oldest first.
    pub fn live_records(&self) -> Result<Vec<TxRecord>, PublisherError> {
        Ok(self
            .records()?
            .into_iter()
            .filter(|record| record.state.is_live())
            .collect())
    }

    /// Writes `record` and, when given, a new signed raw tx of its ladder; fsynced.
    pub fn write(
        &self,
        record: &TxRecord,
        new_raw_tx: Option<(B256, &[u8])>,
    ) -> Result<(), PublisherError> {
        let mut batch = WriteBatch::default();
        if let Some((hash, raw)) = new_raw_tx {
            batch.put_cf(self.cf(CF_RAW_TXS)?, hash, raw);
        }
        batch.put_cf(
            self.cf(CF_RECORDS)?,
            record.id.to_be_bytes(),
            record.encode(),
        );
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// The signed raw tx with this hash.
    pub fn raw_tx(&self, hash: B256) -> Result<Vec<u8>, PublisherError> {
        self.db
            .get_cf(self.cf(CF_RAW_TXS)?, hash)?
            .ok_or(PublisherError::Record(RecordError::MissingRawTx(hash)))
    }

    /// Deletes the oldest finished records beyond the newest `keep`, with the raw txs no kept
    /// record refers to (two records can hold the very same signed tx: a nonce given back and
    /// signed again with the same fees). Returns how many records were deleted.
    pub fn prune_finished(&self, keep: usize) -> Result<usize, PublisherError> {
        let records = self.records()?;
        let finished = records
            .iter()
            .filter(|record| !record.state.is_live())
            .count();
        let mut excess = finished.saturating_sub(keep);
        if excess == 0 {
            return Ok(0);
        }
        let deleted = excess;
        let (mut doomed, mut kept) = (Vec::new(), HashSet::new());
        for record in &records {
            if excess > 0 && !record.state.is_live() {
                excess -= 1;
                doomed.push(record);
            } else {
                kept.extend(record.attempts.iter().map(|a| a.hash));
            }
        }
        let mut batch = WriteBatch::default();
        for record in doomed {
            batch.delete_cf(self.cf(CF_RECORDS)?, record.id.to_be_bytes());
            for attempt in &record.attempts {
                if !kept.contains(&attempt.hash) {
                    batch.delete_cf(self.cf(CF_RAW_TXS)?, attempt.hash);
                }
            }
        }
        self.db.write_opt(batch, &synced())?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FinalState, TxState, tests::sample};

    #[test]
    fn records_and_raw_txs_survive_reopen_and_ids_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = sample();
        {
            let store = TxStore::open(dir.path()).unwrap();
            record.id = store.next_id();
            assert_eq!(record.id, 0);
            store
                .write(&record, Some((record.attempts[0].hash, b"raw one")))
                .unwrap();
            record.state = TxState::Pending;
            store.write(&record, None).unwrap();
        }
        let store = TxStore::open(dir.path()).unwrap();
        assert_eq!(store.records().unwrap(), vec![record.clone()]);
        assert_eq!(store.live_records().unwrap().len(), 1);
        assert_eq!(store.raw_tx(record.attempts[0].hash).unwrap(), b"raw one");
        assert!(matches!(
            store.raw_tx(B256::repeat_byte(9)),
            Err(PublisherError::Record(RecordError::MissingRawTx(_)))
        ));
        assert_eq!(store.next_id(), 1);
    }

    #[test]
    fn prune_keeps_live_and_newest_finished_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = TxStore::open(dir.path()).unwrap();
        for i in 0..5u64 {
            let mut record = sample();
            record.id = store.next_id();
            record.nonce = i;
            record.attempts[0].hash = B256::with_last_byte(i as u8);
            record.state = if i == 0 {
                TxState::Pending
            } else {
                TxState::Final(FinalState::Landed)
            };
            store
                .write(&record, Some((record.attempts[0].hash, b"raw")))
                .unwrap();
        }
        assert_eq!(store.prune_finished(2).unwrap(), 2);
        let nonces: Vec<u64> = store.records().unwrap().iter().map(|r| r.nonce).collect();
        assert_eq!(nonces, vec![0, 3, 4]);
        assert!(store.raw_tx(B256::with_last_byte(1)).is_err());
        assert!(store.raw_tx(B256::with_last_byte(3)).is_ok());
    }

    #[test]
    fn pruning_keeps_a_raw_tx_another_record_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = TxStore::open(dir.path()).unwrap();
        let shared = B256::repeat_byte(0x5e);
        for state in [TxState::Final(FinalState::NotSent), TxState::Pending] {
            let mut record = sample();
            record.id = store.next_id();
            record.attempts.truncate(1);
            record.attempts[0].hash = shared;
            record.mined = None;
            record.state = state;
            store
                .write(&record, Some((shared, b"same signed tx")))
                .unwrap();
        }
        assert_eq!(store.prune_finished(0).unwrap(), 1);
        assert_eq!(store.records().unwrap().len(), 1);
        assert_eq!(store.raw_tx(shared).unwrap(), b"same signed tx");
    }

    #[test]
    fn a_store_of_another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = TxStore::open(dir.path()).unwrap();
            let meta = store.db.cf_handle(CF_META).unwrap();
            store.db.put_cf(meta, KEY_SCHEMA, [9]).unwrap();
        }
        assert!(matches!(
            TxStore::open(dir.path()),
            Err(PublisherError::Record(RecordError::UnknownVersion(9)))
        ));
    }
}
