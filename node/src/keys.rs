//! Validator keys in encrypted Ethereum keystores (scrypt + AES-128-CTR, the geth format),
//! through alloy's local signer: the same code path the publisher signs L1 txs with.

use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use clap::Args;
use eyre::{WrapErr, bail, eyre};
use tandem_proto::SigningKey;

/// Environment variable holding the keystore password when no password file is given.
pub(crate) const PASSWORD_ENV: &str = "TANDEM_KEYSTORE_PASSWORD";

#[derive(Debug, Args)]
pub(crate) struct NewKeyArgs {
    /// Where to write the keystore (refuses to overwrite).
    #[arg(long)]
    out: PathBuf,
    /// File holding the password; otherwise the TANDEM_KEYSTORE_PASSWORD variable.
    #[arg(long)]
    password_file: Option<PathBuf>,
}

/// Prints the peer id of the p2p key under `data_dir`, creating the key if it does not exist.
pub(crate) fn print_p2p_id(data_dir: &Path) -> eyre::Result<()> {
    let path = crate::config::P2pConfig::node_key_path(data_dir);
    let key = tandem_p2p::load_or_create_node_key(&path)?;
    println!("{}", key.public().to_peer_id());
    Ok(())
}

pub(crate) fn new_key(args: &NewKeyArgs) -> eyre::Result<()> {
    let password = match &args.password_file {
        Some(file) => read_password_file(file)?,
        None => std::env::var(PASSWORD_ENV)
            .map_err(|_| eyre!("give --password-file or set {PASSWORD_ENV}"))?,
    };
    if password.is_empty() {
        bail!("the keystore password is empty");
    }
    let key = create_keystore(&args.out, &password)?;
    println!("{}", key.address());
    Ok(())
}

/// Creates a random key in a keystore at `path` and returns it; refuses an existing file (a
/// key is never overwritten: funds or a registration may hang on it).
pub(crate) fn create_keystore(path: &Path, password: &str) -> eyre::Result<SigningKey> {
    if path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a key",
            path.display()
        );
    }
    let (dir, name) = split_path(path)?;
    std::fs::create_dir_all(dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
    let (signer, _uuid) =
        PrivateKeySigner::new_keystore(dir, &mut rand::thread_rng(), password, Some(name))
            .map_err(|err| eyre!("writing keystore {}: {err}", path.display()))?;
    signing_key(&signer, path)
}

fn split_path(path: &Path) -> eyre::Result<(&Path, &str)> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| eyre!("{} is not a file path", path.display()))?;
    Ok((dir, name))
}

fn signing_key(signer: &PrivateKeySigner, path: &Path) -> eyre::Result<SigningKey> {
    SigningKey::from_bytes(&signer.to_bytes().0)
        .wrap_err_with(|| format!("{}: invalid key", path.display()))
}

/// Reads a password file; one trailing newline (as editors add) is not part of the password.
pub(crate) fn read_password_file(path: &Path) -> eyre::Result<String> {
    let text = std::fs::read_to_string(path)
        .wrap_err_with(|| format!("reading password file {}", path.display()))?;
    Ok(text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_string())
}

/// Decrypts a keystore into alloy's signer (for L1 txs).
pub(crate) fn load_signer(keystore: &Path, password_file: &Path) -> eyre::Result<PrivateKeySigner> {
    let password = read_password_file(password_file)?;
    PrivateKeySigner::decrypt_keystore(keystore, password)
        .map_err(|err| eyre!("{}: cannot decrypt keystore: {err}", keystore.display()))
}

/// Decrypts a keystore into the protocol signing key (proposals, attestations).
pub(crate) fn load_keystore(keystore: &Path, password_file: &Path) -> eyre::Result<SigningKey> {
    signing_key(&load_signer(keystore, password_file)?, keystore)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_keystore_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let keystore = dir.path().join("key.json");
        std::fs::write(&keystore, "precious").unwrap();
        let err = create_keystore(&keystore, "pw").unwrap_err().to_string();
        assert!(err.contains("refusing to overwrite a key"), "{err}");
        assert_eq!(std::fs::read_to_string(&keystore).unwrap(), "precious");
    }

    #[test]
    fn keystore_round_trip_and_wrong_password() {
        let dir = tempfile::tempdir().unwrap();
        let keystore = dir.path().join("keys/validator.json");
        let password = dir.path().join("password");
        std::fs::write(&password, "correct horse\n").unwrap();
        let key = create_keystore(&keystore, "correct horse").unwrap();
        let loaded = load_keystore(&keystore, &password).unwrap();
        assert_eq!(loaded.address(), key.address());
        assert_eq!(
            load_signer(&keystore, &password).unwrap().address(),
            key.address()
        );

        std::fs::write(&password, "wrong").unwrap();
        let err = load_keystore(&keystore, &password).unwrap_err().to_string();
        assert!(err.contains("cannot decrypt"), "{err}");
    }
}
