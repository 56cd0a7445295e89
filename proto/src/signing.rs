//! secp256k1 signing and signer recovery over domain-separated digests.
//!
//! Every signed object is signed over
//! `keccak256(abi.encode(bytes32 kind_tag, uint256 chain_id, address rollup, bytes32 payload_hash))`,
//! so a signature is bound to its kind (tx, block proposal, checkpoint proposal, attestation), to
//! the L2 chain and to one rollup deployment. The L1 contract recomputes exactly this digest for
//! the proposer signature and every attestation and checks them with `ecrecover`; that is why the
//! signature travels as Ethereum's 65-byte `r || s || v` with `v ∈ {27, 28}`.
//!
//! Recovery uses libsecp256k1 (~5× faster than k256 on this machine; attestation and tx admission
//! are hot paths). High-`s` signatures are refused, as the contract does, so every signed object has
//! exactly one valid encoding.

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::SolValue;
use secp256k1::{
    Message, PublicKey, SecretKey,
    ecdsa::{RecoverableSignature, RecoveryId},
};

/// Length of an encoded signature: `r (32) || s (32) || v (1)`.
pub const SIGNATURE_LENGTH: usize = 65;

/// Half the secp256k1 group order: signatures with `s` above it are refused (malleability).
const SECP256K1_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

/// What a signature is for; each kind has its own tag inside the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureKind {
    /// A user's L2 transaction.
    Tx,
    /// A block proposal gossiped by the slot's proposer.
    BlockProposal,
    /// A checkpoint proposal; also the proposer signature verified by L1.
    CheckpointProposal,
    /// A committee member's attestation, verified by L1.
    CheckpointAttestation,
}

impl SignatureKind {
    /// The tag string hashed into the digest. Changing one is a protocol change.
    pub const fn tag_preimage(self) -> &'static str {
        match self {
            Self::Tx => "tandem.tx.v1",
            Self::BlockProposal => "tandem.block_proposal.v1",
            Self::CheckpointProposal => "tandem.checkpoint_proposal.v1",
            Self::CheckpointAttestation => "tandem.checkpoint_attestation.v1",
        }
    }

    /// `keccak256(tag_preimage)`, the first word of the digest.
    pub fn tag(self) -> B256 {
        keccak256(self.tag_preimage())
    }
}

/// The deployment a signature is bound to: the L2 chain id and the rollup contract on L1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SigningDomain {
    /// L2 chain id (also carried in every tx and block header).
    pub chain_id: u64,
    /// Address of the Rollup contract on L1.
    pub rollup: Address,
}

impl SigningDomain {
    /// The digest that is signed for `payload_hash` of the given kind.
    pub fn digest(&self, kind: SignatureKind, payload_hash: B256) -> B256 {
        let encoded = (
            kind.tag(),
            U256::from(self.chain_id),
            self.rollup,
            payload_hash,
        )
            .abi_encode();
        keccak256(encoded)
    }
}

/// Why a signature could not be turned into a signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// `v` must be 27 or 28.
    #[error("signature v must be 27 or 28, got {0}")]
    InvalidV(u8),
    /// `s` is in the upper half of the curve order.
    #[error("signature s is not in the lower half of the curve order")]
    HighS,
    /// `r`/`s` are not a valid signature, or no public key can be recovered.
    #[error("signature does not recover to a public key")]
    Unrecoverable,
}

/// An Ethereum-style recoverable signature, `r || s || v` with `v ∈ {27, 28}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; SIGNATURE_LENGTH]);

impl Signature {
    /// Wraps 65 raw bytes; validity is checked when recovering.
    pub const fn from_bytes(bytes: [u8; SIGNATURE_LENGTH]) -> Self {
        Self(bytes)
    }

    /// Wraps a slice of exactly 65 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The 65 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LENGTH] {
        &self.0
    }

    /// Recovers the address that signed `digest`.
    pub fn recover(&self, digest: B256) -> Result<Address, SignatureError> {
        let v = self.0[64];
        let parity = match v {
            27 => RecoveryId::Zero,
            28 => RecoveryId::One,
            other => return Err(SignatureError::InvalidV(other)),
        };
        if self.0[32..64] > SECP256K1_HALF_ORDER[..] {
            return Err(SignatureError::HighS);
        }
        let signature = RecoverableSignature::from_compact(&self.0[..64], parity)
            .map_err(|_| SignatureError::Unrecoverable)?;
        let public_key = signature
            .recover_ecdsa(Message::from_digest(digest.0))
            .map_err(|_| SignatureError::Unrecoverable)?;
        Ok(address_of(&public_key))
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Signature({})",
            alloy_primitives::hex::encode_prefixed(self.0)
        )
    }
}

impl Default for Signature {
    /// An all-zero signature; it never recovers (v = 0). Useful only as a value to overwrite.
    fn default() -> Self {
        Self([0; SIGNATURE_LENGTH])
    }
}

/// The Ethereum address of a public key: the last 20 bytes of keccak of its uncompressed form.
fn address_of(public_key: &PublicKey) -> Address {
    let uncompressed = public_key.serialize_uncompressed();
    Address::from_slice(&keccak256(&uncompressed[1..])[12..])
}

/// Why a private key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("private key must be 32 bytes in the range [1, n-1] of secp256k1")]
pub struct InvalidPrivateKey;

/// A secp256k1 private key with its Ethereum address.
#[derive(Clone)]
pub struct SigningKey {
    secret: SecretKey,
    address: Address,
}

impl SigningKey {
    /// Builds a key from 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, InvalidPrivateKey> {
        let secret = SecretKey::from_secret_bytes(*bytes).map_err(|_| InvalidPrivateKey)?;
        let address = address_of(&PublicKey::from_secret_key(&secret));
        Ok(Self { secret, address })
    }

    /// The address that signatures of this key recover to.
    pub const fn address(&self) -> Address {
        self.address
    }

    /// The 32 secret bytes (for keystores; never log them).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_secret_bytes()
    }

    /// Signs a 32-byte digest (RFC 6979 nonce, low-s).
    pub fn sign_digest(&self, digest: B256) -> Signature {
        let signature = RecoverableSignature::sign_ecdsa_recoverable(
            Message::from_digest(digest.0),
            &self.secret,
        );
        let (recovery_id, compact) = signature.serialize_compact();
        let mut bytes = [0u8; SIGNATURE_LENGTH];
        bytes[..64].copy_from_slice(&compact);
        bytes[64] = 27 + recovery_id.to_u8();
        Signature(bytes)
    }

    /// Signs `payload_hash` of `kind` under `domain`.
    pub fn sign(
        &self,
        domain: &SigningDomain,
        kind: SignatureKind,
        payload_hash: B256,
    ) -> Signature {
        self.sign_digest(domain.digest(kind, payload_hash))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32]).expect("valid key")
    }

    #[test]
    fn known_key_has_known_address() {
        // The well-known first anvil/hardhat account.
        let secret = alloy_primitives::hex!(
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
        let key = SigningKey::from_bytes(&secret).unwrap();
        assert_eq!(
            key.address(),
            alloy_primitives::address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
    }

    #[test]
    fn sign_then_recover_gives_signer() {
        let domain = SigningDomain {
            chain_id: 7,
            rollup: Address::repeat_byte(1),
        };
        let key = key(3);
        let payload = keccak256(b"payload");
        let signature = key.sign(&domain, SignatureKind::CheckpointAttestation, payload);
        let digest = domain.digest(SignatureKind::CheckpointAttestation, payload);
        assert_eq!(signature.recover(digest), Ok(key.address()));
    }

    #[test]
    fn digest_binds_kind_chain_and_rollup() {
        let domain = SigningDomain {
            chain_id: 7,
            rollup: Address::repeat_byte(1),
        };
        let payload = keccak256(b"payload");
        let base = domain.digest(SignatureKind::CheckpointAttestation, payload);
        assert_ne!(
            base,
            domain.digest(SignatureKind::CheckpointProposal, payload)
        );
        let other_chain = SigningDomain {
            chain_id: 8,
            ..domain
        };
        assert_ne!(
            base,
            other_chain.digest(SignatureKind::CheckpointAttestation, payload)
        );
        let other_rollup = SigningDomain {
            rollup: Address::repeat_byte(2),
            ..domain
        };
        assert_ne!(
            base,
            other_rollup.digest(SignatureKind::CheckpointAttestation, payload)
        );
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let key = key(9);
        let digest = keccak256(b"x");
        let good = key.sign_digest(digest);

        let mut bad_v = *good.as_bytes();
        bad_v[64] = 1;
        assert_eq!(
            Signature(bad_v).recover(digest),
            Err(SignatureError::InvalidV(1))
        );

        let mut high_s = *good.as_bytes();
        high_s[32] = 0xff;
        assert_eq!(
            Signature(high_s).recover(digest),
            Err(SignatureError::HighS)
        );

        assert_eq!(
            Signature::default().recover(digest),
            Err(SignatureError::InvalidV(0))
        );
        let mut zero_rs = [0u8; 65];
        zero_rs[64] = 27;
        assert_eq!(
            Signature(zero_rs).recover(digest),
            Err(SignatureError::Unrecoverable)
        );
    }

    #[test]
    fn zero_and_overflowing_keys_are_refused() {
        assert!(SigningKey::from_bytes(&[0; 32]).is_err());
        assert!(SigningKey::from_bytes(&[0xff; 32]).is_err());
    }
}
