use tandem_proto::{SigningDomain, SigningKey, Tx, TxPayload};

use super::*;
use crate::exec::TX_MANA;

const DOMAIN: SigningDomain = SigningDomain {
    chain_id: 1,
    rollup: Address::ZERO,
};
const RICH: Account = Account {
    balance: u128::MAX / 2,
    nonce: 0,
};

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32]).unwrap()
}

fn tx(key: &SigningKey, nonce: u64, fee: u128) -> RecoveredTx {
    let payload = TxPayload {
        chain_id: 1,
        nonce,
        to: Address::repeat_byte(9),
        amount: 1,
        max_fee_per_mana: fee,
        mana_limit: TX_MANA,
    };
    Tx::sign(payload, &DOMAIN, key)
        .into_recovered(&DOMAIN)
        .unwrap()
}

fn pool(max_txs: usize) -> TxPool {
    TxPool::new(PoolConfig {
        max_txs,
        max_bytes: usize::MAX,
        ..PoolConfig::default()
    })
}

#[test]
fn best_orders_by_fee_and_holds_gaps() {
    let (a, b) = (key(1), key(2));
    let mut pool = pool(100);
    for t in [
        tx(&a, 0, 5),
        tx(&a, 1, 50),
        tx(&a, 3, 99),
        tx(&b, 0, 10),
        tx(&b, 1, 1),
    ] {
        pool.add(t, &RICH).unwrap();
    }
    let order: Vec<(Address, u64)> = pool
        .best(|_| 0)
        .map(|t| (t.sender(), t.tx().payload.nonce))
        .collect();
    // b0 (10) beats a0 (5); then a0, whose successor a1 (50) now leads; a3 waits on the gap.
    assert_eq!(
        order,
        vec![
            (b.address(), 0),
            (a.address(), 0),
            (a.address(), 1),
            (b.address(), 1)
        ]
    );

    let mut best = pool.best(|_| 0);
    let first = best.next().unwrap();
    best.skip_sender(first.sender());
    assert!(best.all(|t| t.sender() != b.address()));
}

#[test]
fn duplicates_replacements_and_stale_nonces() {
    let a = key(1);
    let mut pool = pool(100);
    let original = tx(&a, 0, 100);
    assert_eq!(pool.add(original.clone(), &RICH), Ok(AddOutcome::Added));
    assert_eq!(
        pool.add(original.clone(), &RICH),
        Ok(AddOutcome::AlreadyKnown)
    );
    assert_eq!(
        pool.add(tx(&a, 0, 105), &RICH),
        Err(PoolError::ReplacementUnderpriced {
            required: 110,
            offered: 105
        })
    );
    assert_eq!(
        pool.add(tx(&a, 0, 110), &RICH),
        Ok(AddOutcome::Replaced(original.hash()))
    );
    assert_eq!(pool.len(), 1);
    let used = Account { nonce: 1, ..RICH };
    assert_eq!(
        pool.add(tx(&a, 0, 500), &used),
        Err(PoolError::Invalid(TxError::NonceTooLow {
            expected: 1,
            got: 0
        }))
    );
    let poor = Account {
        balance: 10,
        nonce: 0,
    };
    assert!(matches!(
        pool.add(tx(&a, 5, 1), &poor),
        Err(PoolError::Invalid(TxError::InsufficientBalance { .. }))
    ));
}

#[test]
fn one_funded_sender_cannot_fill_the_pool() {
    let rich = key(1);
    let mut pool = pool(1_000);
    let refused: Vec<PoolError> = (0..200)
        .filter_map(|nonce| pool.add(tx(&rich, nonce, 7), &RICH).err())
        .collect();
    assert_eq!(pool.len(), 64);
    assert_eq!(refused.len(), 200 - 64);
    assert!(refused.iter().all(|e| *e == PoolError::SenderFull(64)));
    // Everyone else still gets in.
    for i in 2..10 {
        assert_eq!(pool.add(tx(&key(i), 0, 1), &RICH), Ok(AddOutcome::Added));
    }
}

#[test]
fn nonce_gaps_are_capped() {
    let a = key(1);
    let mut pool = pool(1_000);
    // 16 missing nonces below: allowed; 17: refused.
    assert_eq!(pool.add(tx(&a, 16, 1), &RICH), Ok(AddOutcome::Added));
    assert_eq!(
        pool.add(tx(&a, 18, 1), &RICH),
        Err(PoolError::NonceGapTooLarge { gap: 17, max: 16 })
    );
    // Filling the gap makes room: nonces present below do not count as missing.
    for nonce in 0..5 {
        pool.add(tx(&a, nonce, 1), &RICH).unwrap();
    }
    assert_eq!(pool.add(tx(&a, 20, 1), &RICH), Ok(AddOutcome::Added));
    // Relative to the account nonce, not to zero.
    let ahead = Account { nonce: 100, ..RICH };
    assert_eq!(pool.add(tx(&key(2), 116, 1), &ahead), Ok(AddOutcome::Added));
}

/// What a tx at fee 10 can cost: amount 1 + 10,000 mana × fee 10 = 100,001.
const COST_AT_FEE_10: u128 = 1 + 10 * TX_MANA as u128;

/// An account (nonce 0) whose balance covers `txs` txs at fee 10.
fn affording(txs: u128) -> Account {
    Account {
        balance: txs * COST_AT_FEE_10,
        nonce: 0,
    }
}

#[test]
fn balance_must_cover_every_pending_tx_together() {
    let a = key(1);
    let mut pool = pool(100);
    let cost = COST_AT_FEE_10;
    let account = affording(3);
    for nonce in 0..3 {
        assert_eq!(pool.add(tx(&a, nonce, 10), &account), Ok(AddOutcome::Added));
    }
    assert_eq!(
        pool.add(tx(&a, 3, 10), &account),
        Err(PoolError::PendingExceedBalance {
            balance: 3 * cost,
            needed: 4 * cost
        })
    );
    // A replacement counts instead of the replaced tx, not on top of it: with a fee of 11
    // it needs 10,000 more than the balance has.
    assert!(matches!(
        pool.add(tx(&a, 2, 11), &account),
        Err(PoolError::PendingExceedBalance { .. })
    ));
    let roomier = Account {
        balance: 3 * cost + u128::from(TX_MANA),
        nonce: 0,
    };
    assert!(matches!(
        pool.add(tx(&a, 2, 11), &roomier),
        Ok(AddOutcome::Replaced(_))
    ));
}

#[test]
fn eviction_takes_a_senders_highest_nonce_never_a_middle_one() {
    let (a, b) = (key(1), key(2));
    let mut pool = pool(4);
    // a: nonce 0 cheap, 1 and 2 expensive; b: one tx in between.
    pool.add(tx(&a, 0, 1), &RICH).unwrap();
    pool.add(tx(&a, 1, 50), &RICH).unwrap();
    let a2 = tx(&a, 2, 50);
    pool.add(a2.clone(), &RICH).unwrap();
    let b0 = tx(&b, 0, 20);
    pool.add(b0.clone(), &RICH).unwrap();
    // Full: a's cheap nonce 0 is not evictable (it would strand 1 and 2); among the tails
    // (a2 at 50, b0 at 20) b0 is the cheapest.
    pool.add(tx(&key(3), 0, 30), &RICH).unwrap();
    assert!(!pool.contains(&b0.hash()));
    assert_eq!(
        pool.best(|_| 0)
            .filter(|t| t.sender() == a.address())
            .count(),
        3
    );
    // Next: the cheapest tail is c0 (30) < a2 (50).
    pool.add(tx(&key(4), 0, 40), &RICH).unwrap();
    assert!(pool.contains(&a2.hash()));
    assert_eq!(pool.sender_len(&key(3).address()), 0);
    // a's nonces are still contiguous whatever goes.
    for fee in [60u128, 70, 80] {
        let _ = pool.add(tx(&key(fee as u8), 0, fee), &RICH);
        let nonces: Vec<u64> = pool
            .best(|_| 0)
            .filter(|t| t.sender() == a.address())
            .map(|t| t.tx().payload.nonce)
            .collect();
        assert_eq!(nonces, (0..nonces.len() as u64).collect::<Vec<_>>());
    }
}

#[test]
fn protected_txs_survive_a_replacement_storm() {
    let mut pool = pool(32);
    // A proposal references 8 txs of 8 senders; they are protected.
    let proposal: Vec<RecoveredTx> = (1..=8).map(|i| tx(&key(i), 0, 5)).collect();
    for t in &proposal {
        pool.add(t.clone(), &RICH).unwrap();
    }
    let mut guards: Vec<_> = proposal
        .iter()
        .map(|t| pool.protections().protect(vec![t.hash()]))
        .collect();
    // The senders try to replace them with ever higher fees, and a flood of others fills
    // the pool with richer txs.
    for round in 1..=5u128 {
        for i in 1..=8 {
            assert_eq!(
                pool.add(tx(&key(i), 0, 5 + round * 100), &RICH),
                Err(PoolError::ReplacingProtected)
            );
        }
    }
    for i in 9..=60u8 {
        let _ = pool.add(tx(&key(i), 0, 10_000), &RICH);
    }
    for t in &proposal {
        assert!(
            pool.contains(&t.hash()),
            "protected tx {} is gone",
            t.hash()
        );
    }
    assert_eq!(pool.len(), 32);
    // Released, they can be replaced.
    drop(guards.remove(0));
    assert!(matches!(
        pool.add(tx(&key(1), 0, 20_000), &RICH),
        Ok(AddOutcome::Replaced(_))
    ));
}

#[test]
fn eviction_takes_the_cheapest_unprotected() {
    let mut pool = pool(2);
    let cheap = tx(&key(1), 0, 1);
    let mid = tx(&key(2), 0, 5);
    pool.add(cheap.clone(), &RICH).unwrap();
    pool.add(mid.clone(), &RICH).unwrap();
    let _guard = pool.protections().protect(vec![cheap.hash()]);
    pool.add(tx(&key(3), 0, 9), &RICH).unwrap();
    assert!(pool.contains(&cheap.hash()), "protected tx survives");
    assert!(!pool.contains(&mid.hash()), "cheapest unprotected evicted");
    // An incoming tx cheaper than everything unprotected is refused.
    assert_eq!(pool.add(tx(&key(4), 0, 2), &RICH), Err(PoolError::PoolFull));
    assert_eq!(pool.len(), 2);
}

#[test]
fn mined_removed_and_pruned_reinserted() {
    let a = key(1);
    let mut pool = pool(100);
    let txs: Vec<_> = (0..3).map(|n| tx(&a, n, 7)).collect();
    for t in &txs {
        pool.add(t.clone(), &RICH).unwrap();
    }
    pool.on_block_applied(&txs[..2], |_| 2);
    assert_eq!(pool.len(), 1);
    assert!(pool.contains(&txs[2].hash()));
    // The block is pruned: its txs come back against the rolled-back account.
    assert_eq!(pool.reinsert(txs[..2].iter().cloned(), |_| RICH), 2);
    assert_eq!(pool.len(), 3);
    assert_eq!(pool.best(|_| 0).count(), 3);
}

/// The nonces `sender` holds, in order.
fn nonces_of(pool: &TxPool, sender: &SigningKey) -> Vec<u64> {
    pool.by_sender
        .get(&sender.address())
        .map(|txs| txs.nonces.keys().copied().collect())
        .unwrap_or_default()
}

#[test]
fn a_gap_filling_nonce_is_admitted_at_the_sender_cap_and_evicts_the_highest() {
    let a = key(1);
    let mut pool = pool(1_000);
    // 64 nonces 16..=79 pass the gap check one by one: the sender is at its cap.
    for nonce in 16..80 {
        assert_eq!(pool.add(tx(&a, nonce, 7), &RICH), Ok(AddOutcome::Added));
    }
    assert_eq!(
        pool.add(tx(&a, 80, 7), &RICH),
        Err(PoolError::SenderFull(64))
    );
    // Nonce 0 (what makes the rest executable) gets in; the highest (79) makes room.
    assert_eq!(pool.add(tx(&a, 0, 7), &RICH), Ok(AddOutcome::Added));
    let expected: Vec<u64> = std::iter::once(0).chain(16..79).collect();
    assert_eq!(nonces_of(&pool, &a), expected);
    assert_eq!(
        pool.best(|_| 0)
            .map(|t| t.tx().payload.nonce)
            .collect::<Vec<_>>(),
        vec![0]
    );
    // 1..=15 follow the same way; then the sender's txs are all executable.
    for nonce in 1..16 {
        assert_eq!(pool.add(tx(&a, nonce, 7), &RICH), Ok(AddOutcome::Added));
    }
    assert_eq!(nonces_of(&pool, &a), (0..64).collect::<Vec<_>>());
    assert_eq!(pool.best(|_| 0).count(), 64);
    // A protected highest nonce is not evicted: then the lower one waits.
    let b = key(2);
    for nonce in 1..65 {
        pool.add(tx(&b, nonce, 7), &RICH).unwrap();
    }
    let _guard = pool.protections().protect(vec![tx(&b, 64, 7).hash()]);
    assert_eq!(
        pool.add(tx(&b, 0, 7), &RICH),
        Err(PoolError::SenderFull(64))
    );
}

#[test]
fn a_lower_nonce_evicts_higher_ones_the_balance_cannot_also_cover() {
    let a = key(1);
    let mut pool = pool(100);
    let cost = COST_AT_FEE_10;
    let account = affording(3);
    for nonce in 1..4 {
        assert_eq!(pool.add(tx(&a, nonce, 10), &account), Ok(AddOutcome::Added));
    }
    assert_eq!(pool.add(tx(&a, 0, 10), &account), Ok(AddOutcome::Added));
    assert_eq!(nonces_of(&pool, &a), vec![0, 1, 2]);
    // Above the highest, nothing can be evicted for it.
    assert_eq!(
        pool.add(tx(&a, 3, 10), &account),
        Err(PoolError::PendingExceedBalance {
            balance: 3 * cost,
            needed: 4 * cost
        })
    );
}

#[test]
fn a_pruned_block_comes_back_whole_even_past_the_sender_cap() {
    let a = key(1);
    let mut pool = pool(1_000);
    // Block B mined nonces 0..=63; the sender then sent 64..=127 (account nonce 64).
    let mined: Vec<_> = (0..64).map(|n| tx(&a, n, 7)).collect();
    let after_b = Account { nonce: 64, ..RICH };
    for nonce in 64..128 {
        assert_eq!(pool.add(tx(&a, nonce, 7), &after_b), Ok(AddOutcome::Added));
    }
    // B is pruned on every node: the state rolls back to nonce 0 and B's txs return. All 64
    // come back, nothing of 64..=127 is lost, and the sender's txs are executable in order.
    assert_eq!(pool.reinsert(mined.iter().cloned(), |_| RICH), 64);
    assert_eq!(nonces_of(&pool, &a), (0..128).collect::<Vec<_>>());
    assert_eq!(
        pool.best(|_| 0)
            .map(|t| t.tx().payload.nonce)
            .collect::<Vec<_>>(),
        (0..128).collect::<Vec<_>>()
    );
    // New txs of that sender still respect its cap (above its highest nothing gets in)...
    assert_eq!(
        pool.add(tx(&a, 128, 7), &RICH),
        Err(PoolError::SenderFull(128))
    );
    // ...and when its balance cannot cover everything, the returning txs win over the
    // sender's highest ones.
    let b = key(2);
    let cost = 1 + 7 * u128::from(TX_MANA);
    let poor = Account {
        balance: 4 * cost,
        nonce: 2,
    };
    for nonce in 2..6 {
        pool.add(tx(&b, nonce, 7), &poor).unwrap();
    }
    let rolled_back = Account { nonce: 0, ..poor };
    assert_eq!(
        pool.reinsert([tx(&b, 0, 7), tx(&b, 1, 7)], |_| rolled_back),
        2
    );
    assert_eq!(nonces_of(&pool, &b), vec![0, 1, 2, 3]);
}
