//! Accounts: a balance of the fee asset and a nonce.

use tandem_proto::{Address, B256, keccak256};

use crate::smt::LeafValue;

/// Length of an encoded account.
pub(crate) const ACCOUNT_ENCODED_LEN: usize = 24;

/// One account's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Account {
    /// Balance of the fee asset.
    pub balance: u128,
    /// Number of txs the account has sent.
    pub nonce: u64,
}

impl Account {
    /// `balance (16 bytes BE) || nonce (8 bytes BE)`: the stored and hashed form.
    pub fn encode(&self) -> [u8; ACCOUNT_ENCODED_LEN] {
        let mut out = [0u8; ACCOUNT_ENCODED_LEN];
        out[..16].copy_from_slice(&self.balance.to_be_bytes());
        out[16..].copy_from_slice(&self.nonce.to_be_bytes());
        out
    }

    /// Decodes [`Account::encode`]; `None` for any other length.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; ACCOUNT_ENCODED_LEN] = bytes.try_into().ok()?;
        let mut balance = [0u8; 16];
        balance.copy_from_slice(&bytes[..16]);
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&bytes[16..]);
        Some(Self {
            balance: u128::from_be_bytes(balance),
            nonce: u64::from_be_bytes(nonce),
        })
    }
}

/// The leaf carries the address so the tree can be walked back to accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccountLeaf {
    pub(crate) address: Address,
    pub(crate) account: Account,
}

impl LeafValue for AccountLeaf {
    fn leaf_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(20 + ACCOUNT_ENCODED_LEN);
        bytes.extend_from_slice(self.address.as_slice());
        bytes.extend_from_slice(&self.account.encode());
        bytes
    }
}

/// Position of an address in the tree: `keccak256(address)`, so keys spread evenly.
pub(crate) fn account_key(address: &Address) -> B256 {
    keccak256(address.as_slice())
}
