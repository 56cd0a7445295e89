//! Publisher keys and the EIP-1559 txs they sign. Txs are signed locally (not by the node) so the
//! exact raw bytes can be persisted before they are sent.

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::eip2718::Encodable2718,
    primitives::{Address, B256, Bytes, TxKind, U256},
    signers::{SignerSync, local::PrivateKeySigner},
};

use crate::{error::PublisherError, fees::Fees};

/// Gas of a plain transfer: what a cancel costs.
pub const CANCEL_GAS: u64 = 21_000;

/// The L1 keys that pay for propose txs, checked to be distinct from attester keys.
#[derive(Clone)]
pub struct PublisherKeys {
    keys: Vec<PrivateKeySigner>,
}

impl std::fmt::Debug for PublisherKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(PrivateKeySigner::address))
            .finish()
    }
}

impl PublisherKeys {
    /// At least one key, no duplicates, none of them in `attesters`.
    pub fn new(keys: Vec<PrivateKeySigner>, attesters: &[Address]) -> Result<Self, PublisherError> {
        if keys.is_empty() {
            return Err(PublisherError::NoKeys);
        }
        for (i, key) in keys.iter().enumerate() {
            let address = key.address();
            if keys[..i].iter().any(|other| other.address() == address) {
                return Err(PublisherError::DuplicateKey(address));
            }
            if attesters.contains(&address) {
                return Err(PublisherError::KeyIsAttester(address));
            }
        }
        Ok(Self { keys })
    }

    /// Addresses, in configuration order.
    pub fn addresses(&self) -> Vec<Address> {
        self.keys.iter().map(PrivateKeySigner::address).collect()
    }

    pub(crate) fn get(&self, address: Address) -> Option<&PrivateKeySigner> {
        self.keys.iter().find(|key| key.address() == address)
    }
}

/// A signed tx, ready to persist and send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedTx {
    pub(crate) hash: B256,
    pub(crate) raw: Vec<u8>,
}

/// What a tx carries besides its fees.
#[derive(Debug, Clone)]
pub(crate) struct TxBody {
    pub(crate) chain_id: u64,
    pub(crate) nonce: u64,
    pub(crate) to: Address,
    pub(crate) input: Bytes,
    pub(crate) gas_limit: u64,
}

impl TxBody {
    /// The cancel of `nonce`: a 0-value transfer to self.
    pub(crate) fn cancel(chain_id: u64, nonce: u64, from: Address) -> Self {
        Self {
            chain_id,
            nonce,
            to: from,
            input: Bytes::new(),
            gas_limit: CANCEL_GAS,
        }
    }
}

pub(crate) fn sign(
    key: &PrivateKeySigner,
    body: &TxBody,
    fees: Fees,
) -> Result<SignedTx, PublisherError> {
    let tx = TxEip1559 {
        chain_id: body.chain_id,
        nonce: body.nonce,
        gas_limit: body.gas_limit,
        max_fee_per_gas: fees.max_fee_per_gas,
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        to: TxKind::Call(body.to),
        value: U256::ZERO,
        access_list: Default::default(),
        input: body.input.clone(),
    };
    let signature = key.sign_hash_sync(&tx.signature_hash())?;
    let envelope = TxEnvelope::from(tx.into_signed(signature));
    Ok(SignedTx {
        hash: *envelope.tx_hash(),
        raw: envelope.encoded_2718(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::{consensus::Transaction, eips::eip2718::Decodable2718};

    #[test]
    fn keys_must_be_distinct_and_not_attesters() {
        let a = PrivateKeySigner::random();
        let b = PrivateKeySigner::random();
        assert!(matches!(
            PublisherKeys::new(vec![], &[]),
            Err(PublisherError::NoKeys)
        ));
        assert!(matches!(
            PublisherKeys::new(vec![a.clone(), a.clone()], &[]),
            Err(PublisherError::DuplicateKey(_))
        ));
        assert!(matches!(
            PublisherKeys::new(vec![a.clone(), b.clone()], &[b.address()]),
            Err(PublisherError::KeyIsAttester(address)) if address == b.address()
        ));
        let keys = PublisherKeys::new(vec![a.clone(), b.clone()], &[]).unwrap();
        assert_eq!(keys.addresses(), vec![a.address(), b.address()]);
    }

    #[test]
    fn signed_raw_tx_decodes_to_what_was_signed() {
        let key = PrivateKeySigner::random();
        let body = TxBody {
            chain_id: 31_337,
            nonce: 4,
            to: Address::repeat_byte(7),
            input: Bytes::from_static(b"propose"),
            gas_limit: 100_000,
        };
        let fees = Fees {
            max_fee_per_gas: 30,
            max_priority_fee_per_gas: 2,
        };
        let signed = sign(&key, &body, fees).unwrap();
        let decoded = TxEnvelope::decode_2718(&mut signed.raw.as_slice()).unwrap();
        assert_eq!(*decoded.tx_hash(), signed.hash);
        assert_eq!(decoded.nonce(), 4);
        assert_eq!(decoded.max_fee_per_gas(), 30);
        assert_eq!(decoded.input().as_ref(), b"propose");
        let signed_1559 = decoded.as_eip1559().unwrap();
        let signer = signed_1559
            .signature()
            .recover_address_from_prehash(&signed_1559.signature_hash())
            .unwrap();
        assert_eq!(signer, key.address());
        let cancel = TxBody::cancel(31_337, 4, key.address());
        assert_eq!(cancel.gas_limit, CANCEL_GAS);
        assert_eq!(cancel.to, key.address());
    }
}
