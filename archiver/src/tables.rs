//! Typed tables: one type per column family (or meta singleton) with its key and value codec,
//! so the store never handles raw bytes or column-family names. The same typed reads work on
//! the live database (the writer) and on a snapshot (readers).

use std::{path::Path, sync::Arc};

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, DBIteratorWithThreadMode, DBPinnableSlice,
    IteratorMode, Options, SnapshotWithThreadMode, WriteBatch, WriteOptions,
};
use tandem_proto::{B256, L2Tips, Signature, Tx};

use crate::{
    codec::{self, HeaderRecord},
    error::{ArchiverError, ArchiverResult},
    records::{
        AwaitingCheckpoint, CheckpointRecord, L1Ref, ProposedCheckpoint, RecordError, StoredHeader,
    },
};

/// Key bytes without allocating.
pub(crate) enum KeyBytes {
    Number([u8; 8]),
    Hash([u8; 32]),
    Name(&'static [u8]),
}

impl AsRef<[u8]> for KeyBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            Self::Number(bytes) => bytes,
            Self::Hash(bytes) => bytes,
            Self::Name(bytes) => bytes,
        }
    }
}

/// One table: where it lives and how its keys and values encode.
pub(crate) trait Table {
    /// Column family.
    const CF: &'static str;
    /// Key.
    type Key;
    /// Value.
    type Value;
    fn key(key: &Self::Key) -> KeyBytes;
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, RecordError>;
    fn encode(value: &Self::Value) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self::Value, RecordError>;
}

fn number_key(number: u64) -> KeyBytes {
    KeyBytes::Number(number.to_be_bytes())
}

fn decode_number(bytes: &[u8], what: &'static str) -> Result<u64, RecordError> {
    Ok(u64::from_be_bytes(
        bytes.try_into().map_err(|_| RecordError(what))?,
    ))
}

fn decode_hash(bytes: &[u8], what: &'static str) -> Result<B256, RecordError> {
    B256::try_from(bytes).map_err(|_| RecordError(what))
}

/// Defines a table keyed by a big-endian `u64` (ordered iteration follows numbers).
macro_rules! number_table {
    ($(#[$doc:meta])* $name:ident, $cf:literal, $value:ty, $encode:expr, $decode:expr) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl Table for $name {
            const CF: &'static str = $cf;
            type Key = u64;
            type Value = $value;
            fn key(key: &u64) -> KeyBytes {
                number_key(*key)
            }
            fn decode_key(bytes: &[u8]) -> Result<u64, RecordError> {
                decode_number(bytes, $cf)
            }
            fn encode(value: &$value) -> Vec<u8> {
                $encode(value)
            }
            fn decode(bytes: &[u8]) -> Result<$value, RecordError> {
                $decode(bytes)
            }
        }
    };
}

/// Defines a table keyed by a 32-byte hash, whose value is a block number.
macro_rules! hash_index {
    ($(#[$doc:meta])* $name:ident, $cf:literal) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl Table for $name {
            const CF: &'static str = $cf;
            type Key = B256;
            type Value = u64;
            fn key(key: &B256) -> KeyBytes {
                KeyBytes::Hash(key.0)
            }
            fn decode_key(bytes: &[u8]) -> Result<B256, RecordError> {
                decode_hash(bytes, $cf)
            }
            fn encode(value: &u64) -> Vec<u8> {
                value.to_be_bytes().to_vec()
            }
            fn decode(bytes: &[u8]) -> Result<u64, RecordError> {
                decode_number(bytes, $cf)
            }
        }
    };
}

/// Defines a singleton in the meta column family.
macro_rules! meta {
    ($(#[$doc:meta])* $name:ident, $key:literal, $value:ty, $encode:expr, $decode:expr) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl Table for $name {
            const CF: &'static str = "meta";
            type Key = ();
            type Value = $value;
            fn key(_: &()) -> KeyBytes {
                KeyBytes::Name($key)
            }
            fn decode_key(_: &[u8]) -> Result<(), RecordError> {
                Ok(())
            }
            fn encode(value: &$value) -> Vec<u8> {
                $encode(value)
            }
            fn decode(bytes: &[u8]) -> Result<$value, RecordError> {
                $decode(bytes)
            }
        }
    };
}

number_table!(
    /// Block number → header and the archive after it (with its frontier, to extend it).
    Headers, "blocks", HeaderRecord, codec::encode_header, codec::decode_header
);

/// The `blocks` table read without restoring archive frontiers (what readers need).
pub(crate) struct HeaderViews;
impl Table for HeaderViews {
    const CF: &'static str = Headers::CF;
    type Key = u64;
    type Value = StoredHeader;
    fn key(key: &u64) -> KeyBytes {
        number_key(*key)
    }
    fn decode_key(bytes: &[u8]) -> Result<u64, RecordError> {
        decode_number(bytes, Self::CF)
    }
    fn encode(_: &StoredHeader) -> Vec<u8> {
        // Read-only view: the writer writes through `Headers`.
        unreachable!("HeaderViews is never written")
    }
    fn decode(bytes: &[u8]) -> Result<StoredHeader, RecordError> {
        codec::decode_header_only(bytes)
    }
}

number_table!(
    /// Block number → its txs, packed.
    BlockTxs, "block_txs", Vec<Tx>, |txs: &Vec<Tx>| codec::encode_txs(txs.iter()), codec::decode_txs
);
number_table!(
    /// Block number → the proposer's signature from its block proposal.
    BlockSignatures, "block_signatures", Signature, codec::encode_signature, codec::decode_signature
);
hash_index!(
    /// Block hash → block number.
    BlockHashes, "block_hashes"
);
hash_index!(
    /// Archive root after a block → block number.
    Archives, "archives"
);

/// Tx hash → (block number, position) of checkpointed txs (uncheckpointed ones are indexed in
/// memory: see `txindex`).
pub(crate) struct TxLocations;
impl Table for TxLocations {
    const CF: &'static str = "txs";
    type Key = B256;
    type Value = (u64, u32);
    fn key(key: &B256) -> KeyBytes {
        KeyBytes::Hash(key.0)
    }
    fn decode_key(bytes: &[u8]) -> Result<B256, RecordError> {
        decode_hash(bytes, Self::CF)
    }
    fn encode(value: &(u64, u32)) -> Vec<u8> {
        let mut out = value.0.to_be_bytes().to_vec();
        out.extend_from_slice(&value.1.to_be_bytes());
        out
    }
    fn decode(bytes: &[u8]) -> Result<(u64, u32), RecordError> {
        let mut r = codec::Reader::new(bytes, "tx index");
        let location = (r.u64()?, r.u32()?);
        r.finish()?;
        Ok(location)
    }
}

number_table!(
    /// Checkpoint number → the checkpoint as mined on L1 (0 is genesis).
    Checkpoints, "checkpoints", CheckpointRecord, codec::encode_checkpoint, codec::decode_checkpoint
);
number_table!(
    /// Slot → number of the L1 checkpoint of that slot.
    SlotCheckpoints, "slots", u64, |n: &u64| n.to_be_bytes().to_vec(), |b: &[u8]| decode_number(b, "slots")
);
number_table!(
    /// Checkpoint number → proposed checkpoint (validated, not on L1 yet).
    ProposedCheckpoints, "proposed_checkpoints", ProposedCheckpoint, codec::encode_proposed, codec::decode_proposed
);
number_table!(
    /// Checkpoint number → L1 checkpoint known from L1 but not applied yet.
    AwaitingCheckpoints, "l1_awaiting", AwaitingCheckpoint, codec::encode_awaiting, codec::decode_awaiting
);

meta!(
    /// Genesis block hash the store was created with.
    MetaGenesis, b"genesis", B256, |h: &B256| h.to_vec(), |b: &[u8]| decode_hash(b, "genesis")
);
meta!(
    /// Highest finalized checkpoint.
    MetaFinalized, b"finalized", u64, |n: &u64| n.to_be_bytes().to_vec(), |b: &[u8]| decode_number(b, "finalized")
);
meta!(
    /// Last L1 block whose events are in the store.
    MetaL1Synced, b"l1_synced", L1Ref, codec::encode_l1_ref, codec::decode_l1_ref
);
meta!(
    /// The tips, written in every batch that moves them: a snapshot always sees the tips of
    /// its own data.
    MetaTips, b"tips", L2Tips, codec::encode_tips, codec::decode_tips
);
meta!(
    /// Number of prunes ever committed (each [`crate::PruneEvent`] carries its own).
    MetaPruneSeq, b"prune_seq", u64, |n: &u64| n.to_be_bytes().to_vec(), |b: &[u8]| decode_number(b, "prune_seq")
);

/// Every column family the store opens.
const FAMILIES: [&str; 11] = [
    Headers::CF,
    BlockTxs::CF,
    BlockSignatures::CF,
    BlockHashes::CF,
    Archives::CF,
    TxLocations::CF,
    Checkpoints::CF,
    SlotCheckpoints::CF,
    ProposedCheckpoints::CF,
    AwaitingCheckpoints::CF,
    MetaTips::CF,
];

/// Typed reads, on the live database or a snapshot.
pub(crate) trait Reads {
    fn db(&self) -> &DB;
    fn get_raw(&self, cf: &ColumnFamily, key: &[u8])
    -> ArchiverResult<Option<DBPinnableSlice<'_>>>;
    fn iter_raw<'s>(
        &'s self,
        cf: &ColumnFamily,
        mode: IteratorMode<'_>,
    ) -> DBIteratorWithThreadMode<'s, DB>;

    fn cf<T: Table>(&self) -> &ColumnFamily {
        // Every table's family is created at open (see `FAMILIES`).
        self.db()
            .cf_handle(T::CF)
            .expect("column family created at open")
    }

    /// The value at `key`.
    fn get<T: Table>(&self, key: &T::Key) -> ArchiverResult<Option<T::Value>> {
        match self.get_raw(self.cf::<T>(), T::key(key).as_ref())? {
            Some(bytes) => Ok(Some(T::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The encoded value at `key`, not decoded (to hash or copy it as stored).
    fn get_encoded<T: Table>(&self, key: &T::Key) -> ArchiverResult<Option<DBPinnableSlice<'_>>> {
        self.get_raw(self.cf::<T>(), T::key(key).as_ref())
    }

    /// The value at `key`, which must exist (it is referenced by something stored).
    fn require<T: Table>(&self, key: &T::Key, what: &'static str) -> ArchiverResult<T::Value> {
        self.get::<T>(key)?.ok_or(ArchiverError::Corrupt(what))
    }

    /// The entry with the highest key.
    fn last<T: Table>(&self) -> ArchiverResult<Option<(T::Key, T::Value)>> {
        self.entries::<T>(IteratorMode::End).next().transpose()
    }

    /// All entries in `mode` order.
    fn entries<T: Table>(
        &self,
        mode: IteratorMode<'_>,
    ) -> impl Iterator<Item = ArchiverResult<(T::Key, T::Value)>> + use<'_, Self, T> {
        self.iter_raw(self.cf::<T>(), mode).map(|item| {
            let (key, value) = item?;
            Ok((T::decode_key(&key)?, T::decode(&value)?))
        })
    }
}

/// The live database (a cheap handle: batches keep their own).
pub(crate) struct Db(Arc<DB>);

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Opens (creating if missing) the store's database.
    pub(crate) fn open(path: &Path) -> ArchiverResult<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // WAL on (the default) and point-in-time recovery: a torn tail of the log after a crash
        // is dropped, and since every change is one batch the store reopens at a batch boundary.
        options.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        // One writer; and the hash memtable of the tx index does not take concurrent writes.
        options.set_allow_concurrent_memtable_write(false);
        let families = FAMILIES.into_iter().map(|name| {
            let mut options = Options::default();
            if name == TxLocations::CF {
                // Checkpointing writes one entry per tx, with random keys: a hash-bucketed
                // memtable inserts them in O(1) where the default skiplist pays a deep search
                // per key. Only point lookups are made on this table (no iteration).
                options.set_prefix_extractor(rocksdb::SliceTransform::create_fixed_prefix(8));
                options.set_memtable_factory(rocksdb::MemtableFactory::HashLinkList {
                    bucket_count: 1 << 20,
                });
            }
            ColumnFamilyDescriptor::new(name, options)
        });
        Ok(Self(Arc::new(DB::open_cf_descriptors(
            &options, path, families,
        )?)))
    }

    pub(crate) fn batch(&self) -> Batch {
        Batch {
            db: self.0.clone(),
            inner: WriteBatch::default(),
        }
    }

    /// Writes `batch` atomically; `sync` waits for the WAL to reach the disk.
    pub(crate) fn write(&self, batch: Batch, sync: bool) -> ArchiverResult<()> {
        let started = std::time::Instant::now();
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.0.write_opt(batch.inner, &options)?;
        metrics::histogram!("archiver_write_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// A task that makes every write so far durable, runnable on another thread.
    pub(crate) fn wal_sync(&self) -> WalSync {
        WalSync(self.0.clone())
    }

    pub(crate) fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            db: &self.0,
            snapshot: self.0.snapshot(),
        }
    }
}

impl Reads for Db {
    fn db(&self) -> &DB {
        &self.0
    }
    fn get_raw(
        &self,
        cf: &ColumnFamily,
        key: &[u8],
    ) -> ArchiverResult<Option<DBPinnableSlice<'_>>> {
        Ok(self.0.get_pinned_cf(cf, key)?)
    }
    fn iter_raw<'s>(
        &'s self,
        cf: &ColumnFamily,
        mode: IteratorMode<'_>,
    ) -> DBIteratorWithThreadMode<'s, DB> {
        self.0.iterator_cf(cf, mode)
    }
}

/// Makes every write made before it was created durable (fsyncs the WAL). Blocking: run it on
/// a blocking thread.
#[derive(Clone)]
pub struct WalSync(Arc<DB>);

impl std::fmt::Debug for WalSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WalSync")
    }
}

impl WalSync {
    /// Fsyncs the WAL.
    pub fn run(self) -> ArchiverResult<()> {
        let started = std::time::Instant::now();
        self.0.flush_wal(true)?;
        metrics::histogram!("archiver_wal_sync_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// A consistent read view of the database.
pub(crate) struct Snapshot<'a> {
    db: &'a DB,
    snapshot: SnapshotWithThreadMode<'a, DB>,
}

impl Reads for Snapshot<'_> {
    fn db(&self) -> &DB {
        self.db
    }
    fn get_raw(
        &self,
        cf: &ColumnFamily,
        key: &[u8],
    ) -> ArchiverResult<Option<DBPinnableSlice<'_>>> {
        Ok(self.snapshot.get_pinned_cf(cf, key)?)
    }
    fn iter_raw<'s>(
        &'s self,
        cf: &ColumnFamily,
        mode: IteratorMode<'_>,
    ) -> DBIteratorWithThreadMode<'s, DB> {
        self.snapshot.iterator_cf(cf, mode)
    }
}

/// A write batch with typed puts and deletes.
pub(crate) struct Batch {
    db: Arc<DB>,
    inner: WriteBatch,
}

impl Batch {
    pub(crate) fn put<T: Table>(&mut self, key: &T::Key, value: &T::Value) {
        self.put_encoded::<T>(key, &T::encode(value));
    }

    /// Puts a value already encoded with `T`'s codec (to encode without building the value).
    pub(crate) fn put_encoded<T: Table>(&mut self, key: &T::Key, bytes: &[u8]) {
        let cf = self
            .db
            .cf_handle(T::CF)
            .expect("column family created at open");
        self.inner.put_cf(cf, T::key(key).as_ref(), bytes);
    }

    /// Puts many entries of one table (its column family looked up once).
    pub(crate) fn put_all<T: Table>(
        &mut self,
        entries: impl IntoIterator<Item = (T::Key, T::Value)>,
    ) {
        let cf = self
            .db
            .cf_handle(T::CF)
            .expect("column family created at open");
        for (key, value) in entries {
            self.inner
                .put_cf(cf, T::key(&key).as_ref(), T::encode(&value));
        }
    }

    pub(crate) fn delete<T: Table>(&mut self, key: &T::Key) {
        let cf = self
            .db
            .cf_handle(T::CF)
            .expect("column family created at open");
        self.inner.delete_cf(cf, T::key(key).as_ref());
    }
}
