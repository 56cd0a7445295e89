//! Recovered senders of recently served blocks. `tandem_getBlock` with full txs names each tx's
//! sender, and recovering a signature is the cost of that answer (an 800-tx block: ~3 answers/s
//! in a debug build). Stored blocks keep only the signed txs, so the RPC keeps the senders of
//! the last few blocks it served, by block hash (the hash commits to the body: the same hash is
//! the same txs).

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex, PoisonError},
};

use lru::LruCache;
use tandem_proto::{Address, B256, SigningDomain, Tx};

/// Blocks whose senders are kept: at most ~860 txs × 21 bytes each, so well under 2 MiB.
const BLOCKS: NonZeroUsize = NonZeroUsize::new(64).expect("64 is not zero");

/// Each tx's sender (`None`: the signature does not recover), per block hash.
pub(crate) type Senders = Arc<[Option<Address>]>;

/// Bounded (least recently used out) map of block hash → senders, shared by every request.
pub(crate) struct SenderCache {
    blocks: Mutex<LruCache<B256, Senders>>,
}

impl Default for SenderCache {
    fn default() -> Self {
        Self {
            blocks: Mutex::new(LruCache::new(BLOCKS)),
        }
    }
}

impl SenderCache {
    /// The senders of `txs`, the body of block `hash`: kept ones, or recovered (outside the
    /// lock, so concurrent reads of other blocks do not wait) and kept.
    pub(crate) fn of_block(&self, hash: B256, txs: &[Tx], domain: &SigningDomain) -> Senders {
        if let Some(kept) = self.lock().get(&hash) {
            return Arc::clone(kept);
        }
        let senders: Senders = txs
            .iter()
            .map(|tx| tx.recover_sender(domain).ok())
            .collect();
        self.lock().put(hash, Arc::clone(&senders));
        senders
    }

    /// A panic while holding the lock leaves a cache no worse than a partial one.
    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<B256, Senders>> {
        self.blocks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use tandem_proto::{SigningKey, TxPayload};

    use super::*;

    fn signed(key: &SigningKey, domain: &SigningDomain, nonce: u64) -> Tx {
        Tx::sign(
            TxPayload {
                chain_id: domain.chain_id,
                nonce,
                to: Address::repeat_byte(0x55),
                amount: 1,
                max_fee_per_mana: 1,
                mana_limit: tandem_state::TX_MANA,
            },
            domain,
            key,
        )
    }

    /// Senders are recovered once per block and then served from the cache; a block pushed out
    /// of the bound is recovered again.
    #[test]
    fn senders_are_kept_per_block_within_the_bound() {
        let domain = SigningDomain {
            chain_id: 7,
            rollup: Address::repeat_byte(9),
        };
        let key = crate::accounts::devnet_key(0);
        let txs = vec![signed(&key, &domain, 0), signed(&key, &domain, 1)];
        let cache = SenderCache::default();
        let first = cache.of_block(B256::repeat_byte(1), &txs, &domain);
        assert_eq!(&*first, &[Some(key.address()), Some(key.address())]);
        // Kept: the same allocation, no second recovery.
        let again = cache.of_block(B256::repeat_byte(1), &txs, &domain);
        assert!(Arc::ptr_eq(&first, &again));
        for n in 0..BLOCKS.get() {
            cache.of_block(
                B256::with_last_byte(u8::try_from(n % 200).unwrap() + 2),
                &[],
                &domain,
            );
        }
        let recovered = cache.of_block(B256::repeat_byte(1), &txs, &domain);
        assert!(
            !Arc::ptr_eq(&first, &recovered),
            "evicted blocks are recovered again"
        );
        assert_eq!(recovered, first);
    }
}
