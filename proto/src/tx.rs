//! The L2 transaction: a signed transfer of the fee asset between accounts.

use alloy_primitives::{Address, B256, keccak256};
use alloy_sol_types::{SolValue, sol};

use crate::signing::{
    SIGNATURE_LENGTH, Signature, SignatureError, SignatureKind, SigningDomain, SigningKey,
};

sol! {
    /// What a tx's sender signs. Its ABI encoding is the tx's signing payload.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct TxPayload {
        /// L2 chain id; must equal the node's chain id.
        uint64 chain_id;
        /// The sender's account nonce this tx consumes.
        uint64 nonce;
        /// Recipient of `amount`.
        address to;
        /// Amount transferred.
        uint128 amount;
        /// Highest fee per unit of mana the sender accepts.
        uint128 max_fee_per_mana;
        /// Most mana the tx may use.
        uint64 mana_limit;
    }
}

/// Length of a tx in the packed encoding used for bodies on L1 and for the tx hash.
pub const PACKED_TX_LENGTH: usize = 8 + 8 + 20 + 16 + 16 + 8 + SIGNATURE_LENGTH;

/// A signed L2 transaction. The sender is not carried: it is recovered from the signature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Tx {
    /// The signed fields.
    pub payload: TxPayload,
    /// The sender's signature over [`Tx::payload_hash`] under the chain's [`SigningDomain`].
    pub signature: Signature,
}

impl Tx {
    /// Signs `payload` with `key`.
    pub fn sign(payload: TxPayload, domain: &SigningDomain, key: &SigningKey) -> Self {
        let signature = key.sign(domain, SignatureKind::Tx, keccak256(payload.abi_encode()));
        Self { payload, signature }
    }

    /// Hash of the signed fields (what the signature commits to, before domain separation).
    pub fn payload_hash(&self) -> B256 {
        keccak256(self.payload.abi_encode())
    }

    /// The tx hash: keccak256 of the packed encoding, signature included.
    pub fn hash(&self) -> B256 {
        // On the stack: hashing every tx of a proposal is on the gossip hot path.
        let mut packed = [0u8; PACKED_TX_LENGTH];
        let p = &self.payload;
        let fields: [&[u8]; 7] = [
            &p.chain_id.to_be_bytes(),
            &p.nonce.to_be_bytes(),
            p.to.as_slice(),
            &p.amount.to_be_bytes(),
            &p.max_fee_per_mana.to_be_bytes(),
            &p.mana_limit.to_be_bytes(),
            self.signature.as_bytes(),
        ];
        let mut at = 0;
        for field in fields {
            packed[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        keccak256(packed)
    }

    /// Recovers the sender. Costly (an EC recovery): do it once and keep a [`RecoveredTx`].
    pub fn recover_sender(&self, domain: &SigningDomain) -> Result<Address, SignatureError> {
        self.signature
            .recover(domain.digest(SignatureKind::Tx, self.payload_hash()))
    }

    /// Recovers the sender and computes the hash once, for pools and executors.
    pub fn into_recovered(self, domain: &SigningDomain) -> Result<RecoveredTx, SignatureError> {
        let sender = self.recover_sender(domain)?;
        let hash = self.hash();
        Ok(RecoveredTx {
            tx: self,
            sender,
            hash,
        })
    }

    /// Appends the fixed-length packed encoding (big-endian integers, raw signature).
    pub fn encode_packed(&self, out: &mut Vec<u8>) {
        let p = &self.payload;
        out.extend_from_slice(&p.chain_id.to_be_bytes());
        out.extend_from_slice(&p.nonce.to_be_bytes());
        out.extend_from_slice(p.to.as_slice());
        out.extend_from_slice(&p.amount.to_be_bytes());
        out.extend_from_slice(&p.max_fee_per_mana.to_be_bytes());
        out.extend_from_slice(&p.mana_limit.to_be_bytes());
        out.extend_from_slice(self.signature.as_bytes());
    }

    /// Decodes one packed tx from exactly [`PACKED_TX_LENGTH`] bytes.
    pub fn decode_packed(bytes: &[u8; PACKED_TX_LENGTH]) -> Self {
        let mut cursor = PackedCursor { bytes, at: 0 };
        let payload = TxPayload {
            chain_id: u64::from_be_bytes(cursor.take()),
            nonce: u64::from_be_bytes(cursor.take()),
            to: Address::from(cursor.take::<20>()),
            amount: u128::from_be_bytes(cursor.take()),
            max_fee_per_mana: u128::from_be_bytes(cursor.take()),
            mana_limit: u64::from_be_bytes(cursor.take()),
        };
        let signature = Signature::from_bytes(cursor.take());
        Self { payload, signature }
    }
}

/// Reads fixed-size fields from a buffer whose length was checked up front.
struct PackedCursor<'a> {
    bytes: &'a [u8; PACKED_TX_LENGTH],
    at: usize,
}

impl PackedCursor<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut field = [0u8; N];
        field.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        field
    }
}

/// A tx whose signature was checked, with its sender and hash computed once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecoveredTx {
    tx: Tx,
    sender: Address,
    hash: B256,
}

impl RecoveredTx {
    /// The tx.
    pub const fn tx(&self) -> &Tx {
        &self.tx
    }

    /// The recovered sender.
    pub const fn sender(&self) -> Address {
        self.sender
    }

    /// The tx hash.
    pub const fn hash(&self) -> B256 {
        self.hash
    }

    /// Gives back the tx.
    pub fn into_tx(self) -> Tx {
        self.tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_round_trip_and_hash_covers_signature() {
        let domain = SigningDomain {
            chain_id: 1,
            rollup: Address::repeat_byte(9),
        };
        let key = SigningKey::from_bytes(&[5; 32]).unwrap();
        let tx = Tx::sign(
            TxPayload {
                chain_id: 1,
                nonce: 3,
                to: Address::repeat_byte(4),
                amount: 1_000,
                max_fee_per_mana: 7,
                mana_limit: 21_000,
            },
            &domain,
            &key,
        );
        let mut packed = Vec::new();
        tx.encode_packed(&mut packed);
        assert_eq!(packed.len(), PACKED_TX_LENGTH);
        let decoded = Tx::decode_packed(packed.as_slice().try_into().unwrap());
        assert_eq!(decoded, tx);
        assert_eq!(tx.hash(), keccak256(&packed));
        assert_eq!(tx.recover_sender(&domain), Ok(key.address()));

        let mut other_signature = tx.clone();
        other_signature.signature = key.sign_digest(B256::repeat_byte(1));
        assert_ne!(other_signature.hash(), tx.hash());
        assert_ne!(other_signature.recover_sender(&domain), Ok(key.address()));
    }
}
