//! The builder, with the pool's admission and order, against a reference model: every
//! submitted tx is included exactly when the model says so.

use proptest::prelude::*;
mod common;

use std::collections::HashMap;

use common::*;
use tandem_proto::{Address, B256, RecoveredTx};
use tandem_state::{Account, PoolConfig, TX_MANA, TxPool, build_block};

/// A trivial model: balances and nonces in a map, same rules.
#[derive(Default)]
struct Model(HashMap<Address, Account>);

impl Model {
    fn apply(&mut self, tx: &RecoveredTx) -> bool {
        let p = &tx.tx().payload;
        let fee = FEE * u128::from(TX_MANA);
        let sender = self.0.get(&tx.sender()).copied().unwrap_or_default();
        if sender.nonce != p.nonce || sender.balance < p.amount + fee {
            return false;
        }
        self.0.insert(
            tx.sender(),
            Account {
                balance: sender.balance - p.amount - fee,
                nonce: sender.nonce + 1,
            },
        );
        for (to, credit) in [(p.to, p.amount), (FEE_RECIPIENT, fee)] {
            let mut account = self.0.get(&to).copied().unwrap_or_default();
            account.balance += credit;
            self.0.insert(to, account);
        }
        true
    }
}

impl Model {
    fn nonce(&self, address: &Address) -> u64 {
        self.0.get(address).map_or(0, |account| account.nonce)
    }

    /// What pool admission and the builder do with `chunk`, submitted in order into an empty
    /// pool (all fees equal, so the pool orders by arrival) and built into one block: the txs
    /// that must be included, in order. Applies them.
    fn block(&mut self, chunk: &[RecoveredTx], config: &PoolConfig) -> Vec<B256> {
        use std::collections::{BTreeMap, BinaryHeap, HashSet};
        let mut pool: HashMap<Address, BTreeMap<u64, (usize, RecoveredTx)>> = HashMap::new();
        for (seq, tx) in chunk.iter().enumerate() {
            let sender = tx.sender();
            let nonce = tx.tx().payload.nonce;
            let account_nonce = self.nonce(&sender);
            let held = pool.entry(sender).or_default();
            if nonce < account_nonce || held.contains_key(&nonce) {
                continue;
            }
            let present = held.range(account_nonce..nonce).count() as u64;
            if nonce - account_nonce - present > config.max_nonce_gap {
                continue;
            }
            if held.len() >= config.max_txs_per_sender {
                // Lower nonces win: the sender's highest makes room, if it is above this one.
                match held.keys().next_back().copied() {
                    Some(highest) if highest > nonce => {
                        held.remove(&highest);
                    }
                    _ => continue,
                }
            }
            held.insert(nonce, (seq, tx.clone()));
        }
        let mut ready: BinaryHeap<std::cmp::Reverse<(usize, Address, u64)>> = pool
            .iter()
            .filter_map(|(sender, held)| {
                held.get(&self.nonce(sender))
                    .map(|(seq, _)| std::cmp::Reverse((*seq, *sender, self.nonce(sender))))
            })
            .collect();
        let mut skipped = HashSet::new();
        let mut included = Vec::new();
        while let Some(std::cmp::Reverse((_, sender, nonce))) = ready.pop() {
            if skipped.contains(&sender) {
                continue;
            }
            if let Some((seq, _)) = pool[&sender].get(&(nonce + 1)) {
                ready.push(std::cmp::Reverse((*seq, sender, nonce + 1)));
            }
            let tx = &pool[&sender][&nonce].1;
            if self.apply(tx) {
                included.push(tx.hash());
            } else {
                skipped.insert(sender);
            }
        }
        included
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The builder (with the pool's admission and order) includes exactly the txs the model
    /// includes, in the model's order, and the states agree: a builder that drops or adds a
    /// tx fails this.
    #[test]
    fn builder_matches_a_trivial_model(
        transfers in proptest::collection::vec((0u64..6, 0u64..8, 0u128..400_000_000, any::<bool>()), 1..60),
        max_txs_per_sender in 1usize..5,
        reversed in any::<bool>(),
    ) {
        let mut nonces = [0u64; 6];
        let mut txs = Vec::new();
        for (from, to, amount, skip_nonce) in &transfers {
            let to = if *to < 6 { key(*to).address() } else { Address::repeat_byte(*to as u8) };
            // Sometimes a nonce is left out: later txs of that sender wait behind the gap.
            if *skip_nonce && nonces[*from as usize] % 5 == 4 {
                nonces[*from as usize] += 1;
            }
            txs.push(transfer(&key(*from), nonces[*from as usize], to, *amount));
            nonces[*from as usize] += 1;
        }
        // A small per-sender cap, and chunks submitted highest nonce first or not: lower nonces
        // arriving at the cap evict the sender's highest.
        let config = PoolConfig {
            max_txs_per_sender,
            ..PoolConfig::default()
        };
        let mut roots = Vec::new();
        for reverse_genesis in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut chain = spec(6);
            if reverse_genesis {
                // Accounts first touched in another order: the root must not care.
                chain.genesis_allocation.reverse();
            }
            let mut state = open(dir.path(), chain);
            let mut model = Model::default();
            for i in 0..6 {
                model.0.insert(key(i).address(), state.account(&key(i).address()));
            }
            // Blocks from chunks of up to 7 submitted txs; failures happen mid-block and must
            // change nothing.
            for (index, chunk) in txs.chunks(7).enumerate() {
                let mut chunk = chunk.to_vec();
                if reversed {
                    chunk.reverse();
                }
                let chunk = chunk.as_slice();
                let mut fork = state.fork(state.tip().number).unwrap();
                let mut pool = TxPool::new(config);
                for tx in chunk {
                    let account = Account { balance: u128::MAX / 4, nonce: fork.account(&tx.sender()).nonce };
                    let _ = pool.add(tx.clone(), &account);
                }
                let mut best = pool.best(|a| fork.account(a).nonce);
                let built = build_block(&fork, &globals(index as u32), &mut best, &limits(), &clock()).unwrap();
                drop(best);
                let expected = model.block(chunk, &config);
                let got: Vec<B256> = built.txs.iter().map(RecoveredTx::hash).collect();
                prop_assert_eq!(got, expected, "block {}", index);
                let (executed, _) = fork.commit(built).unwrap();
                state.apply_block(&executed).unwrap();
            }
            for (address, account) in &model.0 {
                prop_assert_eq!(state.account(address), *account);
            }
            roots.push(state.tip().state_root);
        }
        prop_assert_eq!(roots[0], roots[1]);
    }
}
