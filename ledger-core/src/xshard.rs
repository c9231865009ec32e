//! Atomic cross-shard commit (two-phase, no-wait locking).
//!
//! # Protocol
//! A transaction touching more than one shard (see [`crate::routing::shards_of`]) is run as:
//! 1. `Prepare { xid, tx }` in a block of **every** involved shard. Each shard validates its
//!    own part from its own state, locks every key its part reads or writes in its lock
//!    table, stages its writes, and answers `Vote(Yes)`, or `Vote(No(reason))` with nothing
//!    locked or staged.
//! 2. If every involved shard voted yes, `Commit { xid }` on each; otherwise `Abort { xid }`
//!    on each shard that voted yes. Commit applies the staged writes and releases the locks;
//!    abort drops them and releases the locks.
//!
//! Everything is op-by-op inside consensus-ordered blocks: a shard never needs another
//! shard's state. Commit/Abort of an xid with nothing prepared is rejected
//! (`UnknownXId`), never a panic.
//!
//! # Deadlock policy: no-wait
//! A `Prepare` that touches a key locked by another prepared xid votes `No(KeyLocked)`,
//! and a single-shard tx that touches a locked key is `Rejected(KeyLocked)` — nobody ever
//! waits for a lock, so no wait-for cycle (deadlock) can form. The price is aborts under
//! contention; the abort rate is a measured outcome.
//!
//! # Accounts: escrow or lock ([`crate::AccountLocking`])
//! Under `Lock`, accounts are locked like every other key, so many concurrent payments from
//! one insurer's account serialize: the second aborts while the first is prepared. Under
//! `Escrow` (the default) accounts are never locked: a prepare that debits an account checks
//! the available balance (balance minus holds — holds are deducted from the stored balance
//! when taken), moves the amount into a hold and votes yes; commit finalises the debit,
//! abort releases the hold; credits are applied at commit. Non-commutative keys (claims,
//! consents, records, packages) stay locked, so a hot *patient* still aborts.
//!
//! # Money in flight
//! Each shard keeps a clearing balance: when a committed part debits (credits) accounts, the
//! shard's clearing balance rises (falls) by the same amount. Sum of account balances plus
//! escrow holds plus clearing balances over all shards is constant at every instant, even
//! while a tx is committed on one shard and not yet on another.

use crate::exec::{Receipt, RejectReason};
use crate::routing::shards_of;
use crate::shard::Ledger;
use crate::types::Tx;

/// A cross-shard transaction id, chosen by the coordinator (unique per ledger).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct XId(pub u64);

/// One operation in a shard's block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardOp {
    /// A single-shard transaction, executed and applied at once.
    Tx(Tx),
    /// Phase 1 of a cross-shard tx: validate this shard's part, lock, stage, vote.
    Prepare {
        /// Transaction id.
        xid: XId,
        /// The whole transaction (each shard executes its own part).
        tx: Tx,
    },
    /// Phase 2, success: apply the staged part, release its locks.
    Commit {
        /// Transaction id.
        xid: XId,
    },
    /// Phase 2, failure: drop the staged part, release its locks.
    Abort {
        /// Transaction id.
        xid: XId,
    },
}

/// A shard's vote on a `Prepare`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vote {
    /// Part valid, keys locked, writes staged.
    Yes,
    /// Part invalid (nothing locked or staged).
    No(RejectReason),
}

/// Outcome of one transaction driven by the [`Coordinator`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    /// A single-shard tx and its receipt.
    Single(Receipt),
    /// A cross-shard tx committed on every involved shard.
    Committed,
    /// A cross-shard tx aborted everywhere; the reason of the first `No` vote (lowest shard).
    Aborted(RejectReason),
}

/// Counters of a coordinator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorStats {
    /// Single-shard txs routed.
    pub single: u64,
    /// Cross-shard txs committed.
    pub committed: u64,
    /// Cross-shard txs aborted.
    pub aborted: u64,
}

enum Placement {
    Single {
        shard: usize,
        pos: usize,
    },
    Cross {
        xid: XId,
        parts: [(usize, usize); 3],
        n: usize,
    },
}

/// A synchronous two-phase-commit driver for tests, the demo and benches: each round is one
/// block per shard of single-shard txs and prepares, then one block per involved shard of
/// commits and aborts. (The simulator runs the same ops through consensus instead.)
#[derive(Debug, Default)]
pub struct Coordinator {
    next_xid: u64,
    /// Counters.
    pub stats: CoordinatorStats,
}

impl Coordinator {
    /// A coordinator whose first xid is `first_xid`.
    pub fn new(first_xid: u64) -> Self {
        Self {
            next_xid: first_xid,
            stats: CoordinatorStats::default(),
        }
    }

    /// Allocates a fresh xid.
    pub fn next_xid(&mut self) -> XId {
        let x = XId(self.next_xid);
        self.next_xid += 1;
        x
    }

    /// Runs `txs` as one round at `timestamp_ms` (shards in parallel) and returns one
    /// outcome per tx, in order. Within a round, ops apply in the order of `txs` on each shard.
    pub fn run_round(
        &mut self,
        ledger: &mut Ledger,
        txs: &[Tx],
        timestamp_ms: u64,
    ) -> Vec<TxOutcome> {
        let n = ledger.shard_count();
        let mut per_shard: Vec<Vec<crate::xshard::ShardOp>> = (0..n).map(|_| Vec::new()).collect();
        let mut places = Vec::with_capacity(txs.len());
        for tx in txs {
            let set = shards_of(tx, n as u32);
            if set.is_cross_shard() {
                let xid = self.next_xid();
                let mut parts = [(0usize, 0usize); 3];
                for (i, s) in set.iter().enumerate() {
                    let s = s.0 as usize;
                    parts[i] = (s, per_shard[s].len());
                    per_shard[s].push(ShardOp::Prepare {
                        xid,
                        tx: tx.clone(),
                    });
                }
                places.push(Placement::Cross {
                    xid,
                    parts,
                    n: set.len(),
                });
            } else {
                let s = set.as_slice()[0].0 as usize;
                places.push(Placement::Single {
                    shard: s,
                    pos: per_shard[s].len(),
                });
                per_shard[s].push(ShardOp::Tx(tx.clone()));
            }
        }
        let applied = ledger.apply_blocks_parallel(per_shard, timestamp_ms);
        let receipt = |s: usize, pos: usize| -> Receipt {
            applied[s]
                .as_ref()
                .expect("a shard with ops produced a block")
                .receipts[pos]
        };
        let mut outcomes = Vec::with_capacity(txs.len());
        let mut phase2: Vec<Vec<ShardOp>> = (0..n).map(|_| Vec::new()).collect();
        for p in &places {
            match *p {
                Placement::Single { shard, pos } => {
                    self.stats.single += 1;
                    outcomes.push(TxOutcome::Single(receipt(shard, pos)));
                }
                Placement::Cross { xid, parts, n } => {
                    let mut no = None;
                    for &(s, pos) in &parts[..n] {
                        match receipt(s, pos) {
                            Receipt::Vote(Vote::Yes) => {}
                            Receipt::Vote(Vote::No(r)) => {
                                no.get_or_insert(r);
                            }
                            other => {
                                panic!("prepare on shard {s} answered {other:?} instead of a vote")
                            }
                        }
                    }
                    for &(s, pos) in &parts[..n] {
                        match (no, receipt(s, pos)) {
                            (None, _) => phase2[s].push(ShardOp::Commit { xid }),
                            (Some(_), Receipt::Vote(Vote::Yes)) => {
                                phase2[s].push(ShardOp::Abort { xid })
                            }
                            _ => {}
                        }
                    }
                    match no {
                        None => {
                            self.stats.committed += 1;
                            outcomes.push(TxOutcome::Committed)
                        }
                        Some(r) => {
                            self.stats.aborted += 1;
                            outcomes.push(TxOutcome::Aborted(r))
                        }
                    }
                }
            }
        }
        let applied2 = ledger.apply_blocks_parallel(phase2, timestamp_ms);
        for (s, b) in applied2.iter().enumerate() {
            if let Some(b) = b {
                for r in &b.receipts {
                    assert!(
                        matches!(r, Receipt::Committed | Receipt::Aborted),
                        "phase-2 op on shard {s} was refused: {r:?}"
                    );
                }
            }
        }
        outcomes
    }
}
