//! The node's data directory: one documented layout, a schema version checked at open, and a
//! lock so two processes never share one directory.
//!
//! ```text
//! <data_dir>/
//!   tandem.lock                      flock held while a node runs; holds its pid
//!   datadir.json                     {"schema_version": N, "deployment": {...}}: the schema is
//!                                    checked at every open, the deployment (L1 chain id,
//!                                    rollup, L2 chain id, genesis hash) at every start
//!   archiver/                        chain store (RocksDB)
//!   state/                           world state (RocksDB)
//!   validator/slashing-protection/   signing record (validators; its own lock inside)
//!   publisher/                       L1 tx store of the publisher (validators)
//!   p2p/node.key                     libp2p identity
//!   logs/                            node logs written by `tandem devnet`
//! ```

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use eyre::{WrapErr, bail, eyre};
use serde::{Deserialize, Serialize};
use tandem_proto::{Address, B256};

/// Version of the layout and of every store's encoding under it. Raise it whenever a store's
/// format changes in a way an older or newer binary would misread; there is no migration, so
/// a mismatch is refused with the versions named.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Name of the schema marker file.
const MARKER: &str = "datadir.json";
/// Name of the lock file.
const LOCK: &str = "tandem.lock";
/// Stores whose presence without a marker means a directory of unknown format.
const STORES: &[&str] = &["archiver", "state", "publisher", "validator"];

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    schema_version: u32,
    /// The binary that created the directory (informational).
    created_by: String,
    /// The deployment the stores belong to, written at the first start that reached L1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deployment: Option<DeploymentBinding>,
}

/// What ties the stores to one rollup: the archiver's checkpoints and L1 position, the
/// publisher's records and the signing record all mean something for this deployment only.
/// The genesis hash alone does not say it (two deployments with the same parameters share it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeploymentBinding {
    pub(crate) l1_chain_id: u64,
    pub(crate) rollup: Address,
    pub(crate) l2_chain_id: u64,
    pub(crate) genesis_hash: B256,
}

impl std::fmt::Display for DeploymentBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rollup {} on L1 chain {} (L2 chain {}, genesis {})",
            self.rollup, self.l1_chain_id, self.l2_chain_id, self.genesis_hash
        )
    }
}

/// An opened, locked data directory. The lock is released when this is dropped.
#[derive(Debug)]
pub(crate) struct DataDir {
    root: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates (if missing) and locks `root`, then checks or writes the schema marker.
    pub(crate) fn open(root: &Path) -> eyre::Result<Self> {
        std::fs::create_dir_all(root)
            .wrap_err_with(|| format!("node.data_dir: creating {}", root.display()))?;
        let lock = lock(root)?;
        check_schema(root)?;
        Ok(Self {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    /// Binds the directory to `deployment` on its first start, and refuses one bound to
    /// another deployment (naming both) rather than resume another rollup's chain.
    pub(crate) fn bind(&self, deployment: &DeploymentBinding) -> eyre::Result<()> {
        let mut marker = read_marker(&self.root)?.ok_or_else(|| {
            eyre!(
                "{}: {MARKER} vanished while the node runs",
                self.root.display()
            )
        })?;
        match &marker.deployment {
            Some(bound) if bound == deployment => Ok(()),
            Some(bound) => bail!(
                "node.data_dir: {} belongs to {bound}, but this configuration runs {deployment}; \
                 its stores would be misread: use another data dir (or remove this one to start \
                 over)",
                self.root.display()
            ),
            None => {
                marker.deployment = Some(deployment.clone());
                write_marker(&self.root, &marker)
            }
        }
    }

    /// The chain store.
    pub(crate) fn archiver(&self) -> PathBuf {
        self.root.join("archiver")
    }

    /// The world state.
    pub(crate) fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// The slashing-protection record.
    pub(crate) fn slashing_protection(&self) -> PathBuf {
        slashing_protection_dir(&self.root)
    }

    /// The publisher's tx store.
    pub(crate) fn publisher(&self) -> PathBuf {
        self.root.join("publisher")
    }

    /// The libp2p identity.
    pub(crate) fn p2p_key(&self) -> PathBuf {
        crate::config::P2pConfig::node_key_path(&self.root)
    }
}

/// Where the slashing-protection record of the node with data dir `root` lives.
pub(crate) fn slashing_protection_dir(root: &Path) -> PathBuf {
    root.join("validator").join("slashing-protection")
}

fn lock(root: &Path) -> eyre::Result<File> {
    lock_file(&root.join(LOCK), root)
}

/// Takes the exclusive lock on `path` (created if missing, our pid written into it) for the
/// directory `root`; refused naming the holder's pid while another process holds it.
pub(crate) fn lock_file(path: &Path, root: &Path) -> eyre::Result<File> {
    let path = path.to_path_buf();
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .wrap_err_with(|| format!("node.data_dir: opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "node.data_dir: {} is in use by another tandem process (pid {}); stop it or use \
                 another data dir",
                root.display(),
                holder.trim()
            );
        }
        Err(std::fs::TryLockError::Error(err)) => {
            return Err(eyre!(err)).wrap_err_with(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| write!(file, "{}", std::process::id()))
        .wrap_err_with(|| format!("writing {}", path.display()))?;
    Ok(file)
}

fn read_marker(root: &Path) -> eyre::Result<Option<Marker>> {
    let path = root.join(MARKER);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).wrap_err_with(|| {
            format!(
                "{}: not a tandem data-dir marker (expected {{\"schema_version\": N}})",
                path.display()
            )
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(eyre!(err)).wrap_err_with(|| format!("reading {}", path.display())),
    }
}

/// Writes the marker atomically (tmp + fsync + rename + directory fsync).
fn write_marker(root: &Path, marker: &Marker) -> eyre::Result<()> {
    let path = root.join(MARKER);
    let text = serde_json::to_string_pretty(marker)?;
    let tmp = root.join(format!("{MARKER}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(root)?.sync_all()
    };
    write().wrap_err_with(|| format!("writing {}", path.display()))
}

fn check_schema(root: &Path) -> eyre::Result<()> {
    match read_marker(root)? {
        Some(marker) => {
            if marker.schema_version != SCHEMA_VERSION {
                bail!(
                    "node.data_dir: {} has schema version {} (written by {}), this binary \
                     reads version {SCHEMA_VERSION} only; there is no automatic migration: use \
                     a binary of that version or a fresh data dir",
                    root.display(),
                    marker.schema_version,
                    marker.created_by
                );
            }
            Ok(())
        }
        None => {
            if let Some(store) = STORES.iter().find(|store| root.join(store).exists()) {
                bail!(
                    "node.data_dir: {} holds {store}/ but no {MARKER}: it was written by an \
                     unknown version; refusing to reinterpret it",
                    root.display()
                );
            }
            write_marker(
                root,
                &Marker {
                    schema_version: SCHEMA_VERSION,
                    created_by: format!("tandem {}", env!("CARGO_PKG_VERSION")),
                    deployment: None,
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_dir_gets_a_marker_and_a_second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("node");
        let first = DataDir::open(&root).unwrap();
        let marker: Marker =
            serde_json::from_str(&std::fs::read_to_string(root.join(MARKER)).unwrap()).unwrap();
        assert_eq!(marker.schema_version, SCHEMA_VERSION);
        let err = DataDir::open(&root).unwrap_err().to_string();
        assert!(
            err.contains("is in use by another tandem process")
                && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DataDir::open(&root).unwrap();
    }

    #[test]
    fn another_schema_version_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MARKER),
            r#"{"schema_version": 7, "created_by": "tandem 9.0.0"}"#,
        )
        .unwrap();
        let err = DataDir::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("has schema version 7 (written by tandem 9.0.0)")
                && err.contains(&format!("reads version {SCHEMA_VERSION} only")),
            "{err}"
        );
    }

    #[test]
    fn stores_without_a_marker_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("archiver")).unwrap();
        let err = DataDir::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("holds archiver/ but no datadir.json"), "{err}");
        assert!(!dir.path().join(MARKER).exists());
    }

    fn binding(rollup: u8) -> DeploymentBinding {
        DeploymentBinding {
            l1_chain_id: 31_337,
            rollup: Address::repeat_byte(rollup),
            l2_chain_id: 1_337,
            genesis_hash: B256::repeat_byte(9),
        }
    }

    #[test]
    fn a_data_dir_is_bound_to_its_first_deployment_and_refuses_another() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        data.bind(&binding(1)).unwrap();
        data.bind(&binding(1)).unwrap();
        drop(data);
        // The binding survives a restart; a re-deployed rollup (same parameters, same genesis,
        // new address) is refused naming both.
        let data = DataDir::open(dir.path()).unwrap();
        let err = data.bind(&binding(2)).unwrap_err().to_string();
        assert!(
            err.contains(&format!("belongs to rollup {}", Address::repeat_byte(1)))
                && err.contains(&format!(
                    "this configuration runs rollup {}",
                    Address::repeat_byte(2)
                )),
            "{err}"
        );
        let other_l1 = DeploymentBinding {
            l1_chain_id: 1,
            ..binding(1)
        };
        assert!(data.bind(&other_l1).is_err());
        data.bind(&binding(1)).unwrap();
    }
}
