//! The node's persistent libp2p identity (ed25519), kept in the data directory so its peer id
//! survives restarts (bootnode lists name peers by id).

use std::{fs, io::Write, path::Path};

use libp2p::identity::Keypair;

use crate::error::P2pError;

/// Loads the key at `path`, or creates it (mode 0600) when the file does not exist.
pub fn load_or_create_node_key(path: &Path) -> Result<Keypair, P2pError> {
    let io_error = |source| P2pError::NodeKeyIo {
        path: path.to_owned(),
        source,
    };
    match fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|err| P2pError::NodeKeyInvalid {
                path: path.to_owned(),
                reason: err.to_string(),
            })
            .and_then(|key| {
                if key.key_type() == libp2p::identity::KeyType::Ed25519 {
                    Ok(key)
                } else {
                    Err(P2pError::NodeKeyInvalid {
                        path: path.to_owned(),
                        reason: format!("key type {}", key.key_type()),
                    })
                }
            }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|err| P2pError::NodeKeyInvalid {
                    path: path.to_owned(),
                    reason: err.to_string(),
                })?;
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_error)?;
            }
            // Write to a temporary file and rename, so a crash never leaves half a key.
            let tmp = path.with_extension("tmp");
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp).map_err(io_error)?;
            file.write_all(&bytes).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            fs::rename(&tmp, path).map_err(io_error)?;
            Ok(key)
        }
        Err(err) => Err(io_error(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_persists_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p2p").join("node.key");
        let first = load_or_create_node_key(&path).unwrap();
        let second = load_or_create_node_key(&path).unwrap();
        assert_eq!(first.public().to_peer_id(), second.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(&path, b"not a key").unwrap();
        let err = load_or_create_node_key(&path).unwrap_err();
        assert!(matches!(err, P2pError::NodeKeyInvalid { .. }), "{err}");
        assert!(err.to_string().contains("node.key"));
    }
}
