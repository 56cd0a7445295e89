//! The devnet's funded accounts: keys derived from a public seed (like anvil's dev keys), so
//! `tandem spam` can sign for the accounts `tandem devnet` put in the genesis allocation.
//! Test keys only: anyone can derive them.

use tandem_proto::{SigningKey, keccak256};

/// Balance of each devnet account (fee asset units).
pub(crate) const DEVNET_BALANCE: u128 = 1 << 100;

/// Default number of funded devnet accounts.
pub(crate) const DEVNET_ACCOUNTS: usize = 64;

/// The key of devnet account `index`.
pub(crate) fn devnet_key(index: usize) -> SigningKey {
    let mut counter = 0u32;
    loop {
        let seed = keccak256(format!("tandem devnet account {index} {counter}"));
        // Almost every 32-byte string is a valid key; skip the rare one that is not.
        if let Ok(key) = SigningKey::from_bytes(&seed.0) {
            return key;
        }
        counter += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devnet_keys_are_stable_and_distinct() {
        let first = devnet_key(0).address();
        assert_eq!(first, devnet_key(0).address());
        assert_ne!(first, devnet_key(1).address());
    }
}
