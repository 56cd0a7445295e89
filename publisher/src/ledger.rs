//! Nonces and key choice. The chain's pending nonce counts what L1 knows; the ledger adds what
//! only the publisher knows — records persisted (maybe not yet sent) and txs sent before a
//! restart — so a nonce is never handed out twice while a record holds it, and a nonce given back
//! (its txs were never mined and are gone) is reused, closing the gap.

use std::collections::BTreeSet;

use alloy::primitives::Address;

/// Per-key bookkeeping.
#[derive(Debug, Clone)]
struct KeyLedger {
    address: Address,
    live: BTreeSet<u64>,
    last_used: u64,
    balance: Option<u128>,
}

/// Nonces held by live records, per key, and the order keys are tried in.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    keys: Vec<KeyLedger>,
    uses: u64,
}

impl Ledger {
    pub(crate) fn new(addresses: &[Address]) -> Self {
        Self {
            keys: addresses
                .iter()
                .map(|&address| KeyLedger {
                    address,
                    live: BTreeSet::new(),
                    last_used: 0,
                    balance: None,
                })
                .collect(),
            uses: 0,
        }
    }

    fn key_mut(&mut self, address: Address) -> Option<&mut KeyLedger> {
        self.keys.iter_mut().find(|key| key.address == address)
    }

    /// Marks `nonce` of `address` as held (a record restored from the store). Records of keys no
    /// longer configured are ignored by the caller.
    pub(crate) fn hold(&mut self, address: Address, nonce: u64) {
        if let Some(key) = self.key_mut(address) {
            key.live.insert(nonce);
        }
    }

    /// The lowest nonce at or above the chain's pending nonce that no live record holds; it is
    /// held from now on. `None` for an unknown key, or when no nonce is left below `u64::MAX`.
    pub(crate) fn allocate(&mut self, address: Address, chain_pending: u64) -> Option<u64> {
        self.uses = self.uses.saturating_add(1);
        let uses = self.uses;
        let key = self.key_mut(address)?;
        let mut nonce = chain_pending;
        for &held in key.live.range(chain_pending..) {
            if held != nonce {
                break;
            }
            nonce = nonce.checked_add(1)?;
        }
        // EIP-2681: a nonce of 2^64 - 1 can never be used.
        if nonce == u64::MAX {
            return None;
        }
        key.live.insert(nonce);
        key.last_used = uses;
        Some(nonce)
    }

    /// Gives `nonce` back (its record ended).
    pub(crate) fn release(&mut self, address: Address, nonce: u64) {
        if let Some(key) = self.key_mut(address) {
            key.live.remove(&nonce);
        }
    }

    /// Whether a live record of `address` holds a nonce above `nonce` (which then waits for it).
    pub(crate) fn has_higher(&self, address: Address, nonce: u64) -> bool {
        self.keys
            .iter()
            .find(|key| key.address == address)
            .zip(nonce.checked_add(1))
            .is_some_and(|(key, above)| key.live.range(above..).next().is_some())
    }

    /// Records the balance read after a send.
    pub(crate) fn set_balance(&mut self, address: Address, balance: u128) {
        if let Some(key) = self.key_mut(address) {
            key.balance = Some(balance);
        }
    }

    /// Keys in the order a new propose tries them: idle keys first (fewest live records), then the
    /// highest known balance, then the least recently used.
    pub(crate) fn key_order(&self) -> Vec<Address> {
        let mut keys: Vec<&KeyLedger> = self.keys.iter().collect();
        keys.sort_by_key(|key| {
            (
                key.live.len(),
                std::cmp::Reverse(key.balance.unwrap_or(0)),
                key.last_used,
            )
        });
        keys.into_iter().map(|key| key.address).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: Address = Address::repeat_byte(0xa);
    const B: Address = Address::repeat_byte(0xb);

    #[test]
    fn allocates_above_pending_and_skips_held_nonces() {
        let mut ledger = Ledger::new(&[A]);
        assert_eq!(ledger.allocate(A, 5), Some(5));
        assert_eq!(ledger.allocate(A, 5), Some(6));
        // A tx persisted before a restart holds 8; 7 is free.
        ledger.hold(A, 8);
        assert_eq!(ledger.allocate(A, 5), Some(7));
        assert_eq!(ledger.allocate(A, 5), Some(9));
        // 6 was never mined and is gone: it is reused, closing the gap below 7.
        ledger.release(A, 6);
        assert!(ledger.has_higher(A, 6));
        assert_eq!(ledger.allocate(A, 6), Some(6));
        assert!(!ledger.has_higher(A, 9));
        assert_eq!(ledger.allocate(B, 0), None);
    }

    #[test]
    fn the_top_of_the_nonce_range_is_refused_not_wrapped() {
        let mut ledger = Ledger::new(&[A]);
        ledger.hold(A, u64::MAX - 1);
        assert!(!ledger.has_higher(A, u64::MAX));
        assert!(ledger.has_higher(A, u64::MAX - 2));
        assert_eq!(ledger.allocate(A, u64::MAX - 1), None);
        assert_eq!(ledger.allocate(A, u64::MAX), None);
        assert_eq!(ledger.allocate(A, u64::MAX - 2), Some(u64::MAX - 2));
    }

    #[test]
    fn idle_keys_come_first_then_balance_then_least_recently_used() {
        let mut ledger = Ledger::new(&[A, B]);
        assert_eq!(ledger.key_order(), vec![A, B]);
        ledger.allocate(A, 0);
        assert_eq!(ledger.key_order(), vec![B, A]);
        ledger.release(A, 0);
        // Both idle; A was used more recently.
        ledger.allocate(B, 0);
        ledger.release(B, 0);
        assert_eq!(ledger.key_order(), vec![A, B]);
        ledger.set_balance(B, 10);
        ledger.set_balance(A, 5);
        assert_eq!(ledger.key_order(), vec![B, A]);
    }

    proptest! {
        /// Against a model of held nonces: an allocation is never held, never below the chain's
        /// pending nonce, and minimal (every nonce between pending and it is held).
        #[test]
        fn allocation_is_the_lowest_free_nonce(
            ops in proptest::collection::vec((0u8..3, 0u64..20), 1..200),
        ) {
            let mut ledger = Ledger::new(&[A]);
            let mut held = BTreeSet::new();
            for (op, value) in ops {
                match op {
                    0 => {
                        let nonce = ledger.allocate(A, value).unwrap();
                        prop_assert!(nonce >= value);
                        prop_assert!(!held.contains(&nonce));
                        prop_assert!((value..nonce).all(|n| held.contains(&n)));
                        held.insert(nonce);
                    }
                    1 => {
                        ledger.release(A, value);
                        held.remove(&value);
                    }
                    _ => {
                        ledger.hold(A, value);
                        held.insert(value);
                    }
                }
            }
        }
    }
}
