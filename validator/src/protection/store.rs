//! The signing record on disk: a locked directory holding a RocksDB with one entry per signed
//! duty (digest and signature), written with fsync.
//!
//! Layout of `<dir>`: `lock` (an OS file lock, held while the record is open; it holds the
//! holder's pid for the error message of a second opener) and `db/` (RocksDB, column families
//! `duties` and `meta`). A duty's key is signer ‖ kind ‖ slot ‖ index ([`Duty::key`]); its value
//! is version ‖ digest ‖ signature. `meta` holds the signing domain, the pruning watermark and,
//! per registered key, the first slot the record signs for it.
//!
//! Reads (`get`, `latest_attestation`) need no lock of ours: RocksDB serves them concurrently
//! with writes. Check-then-write is serialised by the signer ([`super::ProtectedSigner`]).

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

#[cfg(test)]
use rocksdb::statistics::Ticker;
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch};
use tandem_proto::{Address, B256, SIGNATURE_LENGTH, Signature, SigningDomain, time::Slot};

use super::{
    OpenMode,
    duty::{Duty, last_attestation_key},
};
use crate::error::{ValidatorError, ValidatorResult};

const CF_DUTIES: &str = "duties";
const CF_META: &str = "meta";
const KEY_DOMAIN: &[u8] = b"domain";
const KEY_WATERMARK: &[u8] = b"watermark";
/// Prefix of a registered key's entry in `meta` (followed by the address).
const KEY_REGISTERED: &[u8] = b"registered/";

/// Version byte of a duty record's value.
const RECORD_VERSION: u8 = 1;
const RECORD_LENGTH: usize = 1 + 32 + SIGNATURE_LENGTH;
const DOMAIN_LENGTH: usize = 8 + 20;

/// Name of the lock file inside the record's directory.
pub(crate) const LOCK_FILE: &str = "lock";
/// Name of the RocksDB directory inside the record's directory.
pub(crate) const DB_DIR: &str = "db";
/// The file RocksDB writes last when it creates a database: without it there is no database.
const DB_MARKER: &str = "CURRENT";

/// What the record holds for one signed duty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedDuty {
    /// The digest that was signed.
    pub digest: B256,
    /// The signature over it.
    pub signature: Signature,
}

impl SignedDuty {
    fn encode(&self) -> [u8; RECORD_LENGTH] {
        let mut bytes = [0u8; RECORD_LENGTH];
        bytes[0] = RECORD_VERSION;
        bytes[1..33].copy_from_slice(self.digest.as_slice());
        bytes[33..].copy_from_slice(self.signature.as_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> ValidatorResult<Self> {
        if bytes.len() != RECORD_LENGTH || bytes[0] != RECORD_VERSION {
            return Err(ValidatorError::Corrupt(
                "a duty record has the wrong length or version",
            ));
        }
        Ok(Self {
            digest: B256::from_slice(&bytes[1..33]),
            signature: Signature::from_slice(&bytes[33..])
                .ok_or(ValidatorError::Corrupt("a duty record's signature"))?,
        })
    }
}

fn encode_domain(domain: &SigningDomain) -> [u8; DOMAIN_LENGTH] {
    let mut bytes = [0u8; DOMAIN_LENGTH];
    bytes[..8].copy_from_slice(&domain.chain_id.to_be_bytes());
    bytes[8..].copy_from_slice(domain.rollup.as_slice());
    bytes
}

fn decode_domain(bytes: &[u8]) -> ValidatorResult<SigningDomain> {
    let bytes: &[u8; DOMAIN_LENGTH] = bytes
        .try_into()
        .map_err(|_| ValidatorError::Corrupt("the record's signing domain"))?;
    let mut chain_id = [0u8; 8];
    chain_id.copy_from_slice(&bytes[..8]);
    Ok(SigningDomain {
        chain_id: u64::from_be_bytes(chain_id),
        rollup: Address::from_slice(&bytes[8..]),
    })
}

fn decode_slot(bytes: &[u8], what: &'static str) -> ValidatorResult<Slot> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| ValidatorError::Corrupt(what))?;
    Ok(Slot(u64::from_be_bytes(bytes)))
}

fn registered_key(signer: Address) -> Vec<u8> {
    [KEY_REGISTERED, signer.as_slice()].concat()
}

/// Takes the OS lock on `<dir>/lock`, or names the holder.
fn lock(dir: &Path) -> ValidatorResult<File> {
    let path = dir.join(LOCK_FILE);
    let io = |source| ValidatorError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut contents = String::new();
            let holder_pid = file
                .read_to_string(&mut contents)
                .ok()
                .and_then(|_| contents.trim().parse().ok());
            return Err(ValidatorError::RecordLocked { path, holder_pid });
        }
        Err(TryLockError::Error(source)) => return Err(io(source)),
    }
    // The pid is only for the message a second opener prints; the lock is what protects.
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

/// Creates `dir` and its missing ancestors; returns the directories whose entries changed and
/// must be fsynced once the record is complete: `dir` itself (it gets `lock` and `db`) and the
/// parent of every directory created here.
fn create_dirs(dir: &Path) -> ValidatorResult<Vec<PathBuf>> {
    let io = |source| ValidatorError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut to_sync = vec![dir.to_path_buf()];
    let mut missing = dir;
    while !missing.exists() {
        match missing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => {
                to_sync.push(parent.to_path_buf());
                missing = parent;
            }
            // A relative path's first component: its parent is the working directory.
            _ => {
                to_sync.push(PathBuf::from("."));
                break;
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    Ok(to_sync)
}

/// Makes the entries of each directory durable (`fsync` on the directory), so a power cut
/// after creation cannot lose the record's directory or its `db` entry.
fn sync_dirs(
    dirs: &[PathBuf],
    mut sync: impl FnMut(&Path) -> std::io::Result<()>,
) -> ValidatorResult<()> {
    for dir in dirs {
        sync(dir).map_err(|source| ValidatorError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

/// `fsync` of a directory.
fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The opened record. Field order matters: the database closes before the lock is released.
pub(crate) struct RecordStore {
    db: DB,
    /// The options the database was opened with: unit tests read its statistics.
    #[cfg(test)]
    options: Options,
    dir: PathBuf,
    watermark: Slot,
    /// Directories fsynced when this open created the record (empty otherwise).
    #[cfg(test)]
    synced_dirs: Vec<PathBuf>,
    _lock: File,
}

impl std::fmt::Debug for RecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStore")
            .field("dir", &self.dir)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

fn synced() -> rocksdb::WriteOptions {
    let mut options = rocksdb::WriteOptions::default();
    options.set_sync(true);
    options
}

/// A key the record knows, and the first slot it may sign for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registration {
    pub(crate) signer: Address,
    pub(crate) first_slot: Slot,
    /// Registered by this open (init mode).
    pub(crate) new: bool,
}

impl RecordStore {
    /// Locks `dir` and opens the record for `domain` and `keys`: as it is
    /// ([`OpenMode::Existing`]), or creating it and registering unknown keys
    /// ([`OpenMode::Initialize`]). Returns the store and every key's registration.
    pub(crate) fn open(
        dir: &Path,
        domain: &SigningDomain,
        keys: &[Address],
        mode: OpenMode,
    ) -> ValidatorResult<(Self, Vec<Registration>)> {
        let missing = || ValidatorError::RecordMissing {
            path: dir.to_path_buf(),
        };
        let created_dirs = match mode {
            OpenMode::Existing if !dir.is_dir() => return Err(missing()),
            OpenMode::Existing => Vec::new(),
            OpenMode::Initialize { .. } => create_dirs(dir)?,
        };
        let lock = lock(dir)?;
        let db_path = dir.join(DB_DIR);
        let db_existed = db_path.join(DB_MARKER).is_file();
        let initialize = matches!(mode, OpenMode::Initialize { .. });
        if !db_existed && !initialize {
            return Err(missing());
        }
        let mut options = Options::default();
        options.create_if_missing(initialize);
        options.create_missing_column_families(initialize);
        // The WAL-sync ticker is how unit tests see the fsync happen.
        #[cfg(test)]
        options.enable_statistics();
        let tables = [CF_DUTIES, CF_META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, &db_path, tables)?;
        let mut store = Self {
            db,
            #[cfg(test)]
            options,
            dir: dir.to_path_buf(),
            watermark: Slot(0),
            #[cfg(test)]
            synced_dirs: Vec::new(),
            _lock: lock,
        };
        let meta = store.meta()?;
        let mut batch = WriteBatch::default();
        match store.db.get_cf(meta, KEY_DOMAIN)? {
            Some(bytes) => {
                let stored = decode_domain(&bytes)?;
                if stored != *domain {
                    return Err(ValidatorError::DomainMismatch {
                        path: dir.to_path_buf(),
                        stored,
                        configured: *domain,
                    });
                }
            }
            // The domain is written with the first registrations, in one batch: a record
            // without one never finished its creation, and nothing was signed with it.
            None if !initialize => return Err(missing()),
            None => batch.put_cf(meta, KEY_DOMAIN, encode_domain(domain)),
        }
        let mut registrations = Vec::with_capacity(keys.len());
        for &signer in keys {
            let key = registered_key(signer);
            let registration = match (store.db.get_cf(meta, &key)?, mode) {
                (Some(bytes), _) => Registration {
                    signer,
                    first_slot: decode_slot(&bytes, "a key's first slot")?,
                    new: false,
                },
                (None, OpenMode::Existing) => {
                    return Err(ValidatorError::UnregisteredKey {
                        path: dir.to_path_buf(),
                        signer,
                    });
                }
                (None, OpenMode::Initialize { first_slot }) => {
                    batch.put_cf(meta, key, first_slot.0.to_be_bytes());
                    Registration {
                        signer,
                        first_slot,
                        new: true,
                    }
                }
            };
            registrations.push(registration);
        }
        if !batch.is_empty() {
            store.db.write_opt(batch, &synced())?;
        }
        let watermark = match store.db.get_cf(meta, KEY_WATERMARK)? {
            Some(bytes) => decode_slot(&bytes, "the record's watermark")?,
            None => Slot(0),
        };
        store.watermark = watermark;
        if !db_existed {
            sync_dirs(&created_dirs, |dir| {
                fsync_dir(dir)?;
                #[cfg(test)]
                store.synced_dirs.push(dir.to_path_buf());
                Ok(())
            })?;
        }
        Ok((store, registrations))
    }

    fn duties(&self) -> ValidatorResult<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(CF_DUTIES)
            .ok_or(ValidatorError::Corrupt("the duties table is missing"))
    }

    fn meta(&self) -> ValidatorResult<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(CF_META)
            .ok_or(ValidatorError::Corrupt("the meta table is missing"))
    }

    /// The pruning watermark stored when the record was opened (duties of slots below it were
    /// pruned); the signer keeps the current one.
    pub(crate) const fn stored_watermark(&self) -> Slot {
        self.watermark
    }

    /// WAL fsyncs since the record was opened (RocksDB's `rocksdb.wal.synced`).
    #[cfg(test)]
    pub(crate) fn wal_syncs(&self) -> u64 {
        self.options.get_ticker_count(Ticker::WalFileSynced)
    }

    /// The directories fsynced because this open created the record.
    #[cfg(test)]
    pub(crate) fn synced_dirs(&self) -> &[PathBuf] {
        &self.synced_dirs
    }

    /// What `signer` signed for `duty`, if anything.
    pub(crate) fn get(&self, signer: Address, duty: Duty) -> ValidatorResult<Option<SignedDuty>> {
        self.db
            .get_cf(self.duties()?, duty.key(signer))?
            .map(|bytes| SignedDuty::decode(&bytes))
            .transpose()
    }

    /// The latest slot `signer` attested, if any.
    pub(crate) fn latest_attestation(&self, signer: Address) -> ValidatorResult<Option<Slot>> {
        let upper = last_attestation_key(signer);
        let mut iter = self.db.iterator_cf(
            self.duties()?,
            IteratorMode::From(&upper, Direction::Reverse),
        );
        match iter.next().transpose()? {
            Some((key, _)) => match Duty::from_key(&key) {
                Some((owner, Duty::Attestation { slot })) if owner == signer => Ok(Some(slot)),
                // The reverse seek landed on another signer's or another kind's key: this
                // signer has no attestation.
                Some(_) => Ok(None),
                None => Err(ValidatorError::Corrupt("a duty key does not decode")),
            },
            None => Ok(None),
        }
    }

    /// Records every `(duty, signed)` of `signer` in one batch and fsyncs the write-ahead log
    /// before returning: all of them are durable, or none.
    pub(crate) fn put_all(
        &self,
        signer: Address,
        duties: &[(Duty, SignedDuty)],
    ) -> ValidatorResult<()> {
        let table = self.duties()?;
        let mut batch = WriteBatch::default();
        for (duty, signed) in duties {
            batch.put_cf(table, duty.key(signer), signed.encode());
        }
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// Deletes every duty of a slot below `watermark` and stores the watermark, in one synced
    /// batch; returns how many records were deleted. The caller keeps the watermark from going
    /// down (and from racing a signature).
    pub(crate) fn prune_below(&self, watermark: Slot) -> ValidatorResult<u64> {
        let duties = self.duties()?;
        let mut batch = WriteBatch::default();
        let mut deleted = 0u64;
        for entry in self.db.iterator_cf(duties, IteratorMode::Start) {
            let (key, _) = entry?;
            let (_, duty) = Duty::from_key(&key)
                .ok_or(ValidatorError::Corrupt("a duty key does not decode"))?;
            if duty.slot() < watermark {
                batch.delete_cf(duties, key);
                deleted = deleted.saturating_add(1);
            }
        }
        batch.put_cf(self.meta()?, KEY_WATERMARK, watermark.0.to_be_bytes());
        self.db.write_opt(batch, &synced())?;
        Ok(deleted)
    }
}
