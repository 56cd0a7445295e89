//! The execution rules of a transfer, and tx validation with typed reasons.
//!
//! A tx uses [`TX_MANA`] mana and pays `TX_MANA × fee_per_mana` of the block to the block's fee
//! recipient; it moves `amount` from the sender to `to` and bumps the sender's nonce.

use tandem_proto::{Address, RecoveredTx, SigningDomain, Tx};

use crate::account::Account;

/// Mana used by every transfer.
pub const TX_MANA: u64 = 10_000;

/// Why a tx is invalid, before or during execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Signed for another chain.
    #[error("tx chain id {got} is not {expected}")]
    WrongChain {
        /// This chain.
        expected: u64,
        /// The tx's.
        got: u64,
    },
    /// The signature does not recover.
    #[error("tx signature is invalid: {0}")]
    BadSignature(#[from] tandem_proto::SignatureError),
    /// The mana limit is below what a transfer uses.
    #[error("mana limit {0} is below the {TX_MANA} a transfer uses")]
    ManaLimitTooLow(u64),
    /// The fee cap is zero.
    #[error("max fee per mana is zero")]
    ZeroFeeCap,
    /// The nonce was already used.
    #[error("nonce {got} is below the account nonce {expected}")]
    NonceTooLow {
        /// Account nonce.
        expected: u64,
        /// Tx nonce.
        got: u64,
    },
    /// A previous nonce is missing (executing) — the pool holds such txs instead.
    #[error("nonce {got} is ahead of the account nonce {expected}")]
    NonceGap {
        /// Account nonce.
        expected: u64,
        /// Tx nonce.
        got: u64,
    },
    /// The fee cap is below the block's fee.
    #[error("max fee per mana {max} is below the block fee {required}")]
    FeeTooLow {
        /// Block fee per mana.
        required: u128,
        /// The tx's cap.
        max: u128,
    },
    /// The sender cannot pay amount + fee.
    #[error("balance {balance} cannot cover {needed}")]
    InsufficientBalance {
        /// Sender balance.
        balance: u128,
        /// Amount + fee.
        needed: u128,
    },
    /// A balance would exceed u128.
    #[error("a balance would overflow")]
    BalanceOverflow,
}

/// Checks what needs no state: chain, signature (recovering the sender), mana limit, fee cap.
pub fn validate_stateless(tx: Tx, domain: &SigningDomain) -> Result<RecoveredTx, TxError> {
    let payload = &tx.payload;
    if payload.chain_id != domain.chain_id {
        return Err(TxError::WrongChain {
            expected: domain.chain_id,
            got: payload.chain_id,
        });
    }
    if payload.mana_limit < TX_MANA {
        return Err(TxError::ManaLimitTooLow(payload.mana_limit));
    }
    if payload.max_fee_per_mana == 0 {
        return Err(TxError::ZeroFeeCap);
    }
    Ok(tx.into_recovered(domain)?)
}

/// Most a tx can cost its sender: amount + its fee cap × [`TX_MANA`].
pub fn max_cost(tx: &Tx) -> Option<u128> {
    tx.payload
        .max_fee_per_mana
        .checked_mul(u128::from(TX_MANA))?
        .checked_add(tx.payload.amount)
}

/// Checks a tx against its sender's account for pool admission: nonce not used yet, balance
/// covers the worst case. Future nonces are allowed (the pool holds them).
pub fn validate_stateful(tx: &Tx, sender: &Account) -> Result<(), TxError> {
    if tx.payload.nonce < sender.nonce {
        return Err(TxError::NonceTooLow {
            expected: sender.nonce,
            got: tx.payload.nonce,
        });
    }
    let needed = max_cost(tx).ok_or(TxError::BalanceOverflow)?;
    if sender.balance < needed {
        return Err(TxError::InsufficientBalance {
            balance: sender.balance,
            needed,
        });
    }
    Ok(())
}

/// Account reads and writes during execution.
pub(crate) trait AccountStore {
    fn account(&self, address: &Address) -> Account;
    fn set_account(&mut self, address: Address, account: Account);
}

/// Executes one transfer at `fee_per_mana` paying `fee_recipient`. On error nothing changed.
/// Returns the fee paid.
pub(crate) fn execute_tx(
    store: &mut impl AccountStore,
    tx: &RecoveredTx,
    fee_per_mana: u128,
    fee_recipient: Address,
) -> Result<u128, TxError> {
    let payload = &tx.tx().payload;
    let sender_address = tx.sender();
    let mut sender = store.account(&sender_address);
    if payload.nonce < sender.nonce {
        return Err(TxError::NonceTooLow {
            expected: sender.nonce,
            got: payload.nonce,
        });
    }
    if payload.nonce > sender.nonce {
        return Err(TxError::NonceGap {
            expected: sender.nonce,
            got: payload.nonce,
        });
    }
    if payload.max_fee_per_mana < fee_per_mana {
        return Err(TxError::FeeTooLow {
            required: fee_per_mana,
            max: payload.max_fee_per_mana,
        });
    }
    let fee = fee_per_mana
        .checked_mul(u128::from(TX_MANA))
        .ok_or(TxError::BalanceOverflow)?;
    let needed = payload
        .amount
        .checked_add(fee)
        .ok_or(TxError::BalanceOverflow)?;
    if sender.balance < needed {
        return Err(TxError::InsufficientBalance {
            balance: sender.balance,
            needed,
        });
    }
    // Stage every change locally and write only when all succeeded: a failure leaves no trace.
    // Sender, recipient and fee recipient may be the same account.
    sender.balance -= needed;
    sender.nonce += 1;
    let mut staged: Vec<(Address, Account)> = vec![(sender_address, sender)];
    for (address, credit) in [(payload.to, payload.amount), (fee_recipient, fee)] {
        let position = match staged
            .iter()
            .position(|(staged_address, _)| *staged_address == address)
        {
            Some(position) => position,
            None => {
                staged.push((address, store.account(&address)));
                staged.len() - 1
            }
        };
        let account = &mut staged[position].1;
        account.balance = account
            .balance
            .checked_add(credit)
            .ok_or(TxError::BalanceOverflow)?;
    }
    for (address, account) in staged {
        store.set_account(address, account);
    }
    Ok(fee)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tandem_proto::{SigningKey, TxPayload};

    use super::*;

    #[derive(Default)]
    struct Map(HashMap<Address, Account>);

    impl AccountStore for Map {
        fn account(&self, address: &Address) -> Account {
            self.0.get(address).copied().unwrap_or_default()
        }
        fn set_account(&mut self, address: Address, account: Account) {
            self.0.insert(address, account);
        }
    }

    const DOMAIN: SigningDomain = SigningDomain {
        chain_id: 5,
        rollup: Address::ZERO,
    };

    fn tx(key: &SigningKey, nonce: u64, to: Address, amount: u128, fee: u128) -> RecoveredTx {
        let payload = TxPayload {
            chain_id: 5,
            nonce,
            to,
            amount,
            max_fee_per_mana: fee,
            mana_limit: TX_MANA,
        };
        validate_stateless(Tx::sign(payload, &DOMAIN, key), &DOMAIN).unwrap()
    }

    #[test]
    fn transfer_moves_amount_and_fee() {
        let key = SigningKey::from_bytes(&[1; 32]).unwrap();
        let (to, recipient) = (Address::repeat_byte(2), Address::repeat_byte(3));
        let mut store = Map::default();
        store.set_account(
            key.address(),
            Account {
                balance: 1_000_000,
                nonce: 0,
            },
        );
        let fee = execute_tx(&mut store, &tx(&key, 0, to, 500, 3), 2, recipient).unwrap();
        assert_eq!(fee, 2 * u128::from(TX_MANA));
        assert_eq!(
            store.account(&key.address()),
            Account {
                balance: 1_000_000 - 500 - fee,
                nonce: 1
            }
        );
        assert_eq!(store.account(&to).balance, 500);
        assert_eq!(store.account(&recipient).balance, fee);
    }

    #[test]
    fn failures_change_nothing() {
        let key = SigningKey::from_bytes(&[1; 32]).unwrap();
        let to = Address::repeat_byte(2);
        let mut store = Map::default();
        store.set_account(
            key.address(),
            Account {
                balance: 30_000,
                nonce: 1,
            },
        );
        store.set_account(
            to,
            Account {
                balance: u128::MAX,
                nonce: 0,
            },
        );
        let before = store.0.clone();
        let cases = [
            (
                tx(&key, 0, to, 1, 1),
                TxError::NonceTooLow {
                    expected: 1,
                    got: 0,
                },
            ),
            (
                tx(&key, 2, to, 1, 1),
                TxError::NonceGap {
                    expected: 1,
                    got: 2,
                },
            ),
            (
                tx(&key, 1, to, 1, 1),
                TxError::FeeTooLow {
                    required: 2,
                    max: 1,
                },
            ),
            (
                tx(&key, 1, to, 25_000, 1),
                TxError::InsufficientBalance {
                    balance: 30_000,
                    needed: 35_000,
                },
            ),
            (tx(&key, 1, to, 1, 1), TxError::BalanceOverflow),
        ];
        for (tx, expected) in cases {
            let block_fee = if matches!(expected, TxError::FeeTooLow { .. }) {
                2
            } else {
                1
            };
            assert_eq!(
                execute_tx(&mut store, &tx, block_fee, Address::repeat_byte(9)),
                Err(expected)
            );
            assert_eq!(store.0, before);
        }
    }

    #[test]
    fn self_transfer_and_sender_as_fee_recipient() {
        let key = SigningKey::from_bytes(&[1; 32]).unwrap();
        let me = key.address();
        let mut store = Map::default();
        store.set_account(
            me,
            Account {
                balance: 100_000,
                nonce: 0,
            },
        );
        execute_tx(&mut store, &tx(&key, 0, me, 40, 1), 1, me).unwrap();
        assert_eq!(
            store.account(&me),
            Account {
                balance: 100_000,
                nonce: 1
            }
        );
    }

    #[test]
    fn stateless_checks() {
        let key = SigningKey::from_bytes(&[1; 32]).unwrap();
        let mut payload = TxPayload {
            chain_id: 6,
            nonce: 0,
            to: Address::ZERO,
            amount: 1,
            max_fee_per_mana: 1,
            mana_limit: TX_MANA,
        };
        let wrong_chain = Tx::sign(payload.clone(), &DOMAIN, &key);
        assert_eq!(
            validate_stateless(wrong_chain, &DOMAIN).unwrap_err(),
            TxError::WrongChain {
                expected: 5,
                got: 6
            }
        );
        payload.chain_id = 5;
        payload.mana_limit = TX_MANA - 1;
        let low = Tx::sign(payload.clone(), &DOMAIN, &key);
        assert_eq!(
            validate_stateless(low, &DOMAIN).unwrap_err(),
            TxError::ManaLimitTooLow(TX_MANA - 1)
        );
        payload.mana_limit = TX_MANA;
        let mut forged = Tx::sign(payload, &DOMAIN, &key);
        forged.signature = tandem_proto::Signature::default();
        assert!(matches!(
            validate_stateless(forged, &DOMAIN),
            Err(TxError::BadSignature(_))
        ));
    }
}
