//! The signing record on disk: a locked directory holding a RocksDB with one entry per signed
//! duty (digest and signature), written with fsync.
//!
//! Layout of `<dir>`: `lock` (an OS file lock, held while the record is open; it holds the
//! holder's pid for the error message of a second opener) and `db/` (RocksDB, column families
//! `duties` and `meta`). A duty's key is signer ‖ kind ‖ slot ‖ index ([`Duty::key`]); its value
//! is version ‖ digest ‖ signature.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch};
use tandem_proto::{Address, B256, SIGNATURE_LENGTH, Signature, SigningDomain, time::Slot};

use super::duty::{Duty, last_attestation_key};
use crate::error::{ValidatorError, ValidatorResult};

const CF_DUTIES: &str = "duties";
const CF_META: &str = "meta";
const KEY_DOMAIN: &[u8] = b"domain";
const KEY_WATERMARK: &[u8] = b"watermark";

/// Version byte of a duty record's value.
const RECORD_VERSION: u8 = 1;
const RECORD_LENGTH: usize = 1 + 32 + SIGNATURE_LENGTH;
const DOMAIN_LENGTH: usize = 8 + 20;

/// Name of the lock file inside the record's directory.
pub(crate) const LOCK_FILE: &str = "lock";
/// Name of the RocksDB directory inside the record's directory.
pub(crate) const DB_DIR: &str = "db";

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

fn decode_slot(bytes: &[u8]) -> ValidatorResult<Slot> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| ValidatorError::Corrupt("the record's watermark"))?;
    Ok(Slot(u64::from_be_bytes(bytes)))
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

/// The opened record. Field order matters: the database closes before the lock is released.
pub(crate) struct RecordStore {
    db: DB,
    dir: PathBuf,
    watermark: Slot,
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

impl RecordStore {
    /// Locks `dir` and opens (or creates) the record for `domain`.
    pub(crate) fn open(dir: &Path, domain: &SigningDomain) -> ValidatorResult<Self> {
        std::fs::create_dir_all(dir).map_err(|source| ValidatorError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = lock(dir)?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let tables = [CF_DUTIES, CF_META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, dir.join(DB_DIR), tables)?;
        let mut store = Self {
            db,
            dir: dir.to_path_buf(),
            watermark: Slot(0),
            _lock: lock,
        };
        let meta = store.meta()?;
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
            None => store
                .db
                .put_cf_opt(meta, KEY_DOMAIN, encode_domain(domain), &synced())?,
        }
        if let Some(bytes) = store.db.get_cf(meta, KEY_WATERMARK)? {
            store.watermark = decode_slot(&bytes)?;
        }
        Ok(store)
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

    /// The record's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Duties of slots below this were pruned.
    pub(crate) const fn watermark(&self) -> Slot {
        self.watermark
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

    /// Records `signed` for (`signer`, `duty`) and fsyncs the write-ahead log before returning.
    pub(crate) fn put(
        &self,
        signer: Address,
        duty: Duty,
        signed: &SignedDuty,
    ) -> ValidatorResult<()> {
        self.db
            .put_cf_opt(self.duties()?, duty.key(signer), signed.encode(), &synced())?;
        Ok(())
    }

    /// Deletes every duty of a slot below `watermark` and refuses such duties from now on.
    /// Returns how many records were deleted. A lower watermark than the current one is a
    /// no-op: the watermark never goes down.
    pub(crate) fn prune_below(&mut self, watermark: Slot) -> ValidatorResult<u64> {
        if watermark <= self.watermark {
            return Ok(0);
        }
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
        self.watermark = watermark;
        Ok(deleted)
    }
}
