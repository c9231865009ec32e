//! A shard's ledger (state, lock table, chain tip, optional block log) and the whole
//! sharded [`Ledger`].

use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::block::{receipts_root_of_bytes, BlockHeader};
use crate::codec::{Encode, MAX_BLOCK_TXS};
use crate::exec::{execute, Ctx, Receipt, RejectReason, Write};
use crate::genesis::{Genesis, GenesisIndex};
use crate::merkle;
use crate::routing::{org_shard, shards_of};
use crate::state::{Key, State, Value};
use crate::types::{Hash32, ShardId};
use crate::xshard::{ShardOp, Vote, XId};

/// Most cross-shard txs one shard may hold prepared at once; further prepares vote
/// `No(TooManyPending)`.
pub const MAX_PENDING_XIDS: usize = 1 << 20;
/// Default cap on a shard's in-memory block log (bytes); past it the log stops and is
/// marked overflowed (exporting then fails).
pub const DEFAULT_LOG_MAX_BYTES: usize = 1 << 32;
/// In debug builds, `apply_block` recomputes the state root from scratch while the state
/// holds at most this many keys.
pub const DEBUG_ROOT_CHECK_MAX_KEYS: usize = 4096;

/// Result of applying one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedBlock {
    /// The new header.
    pub header: BlockHeader,
    /// Its hash.
    pub hash: Hash32,
    /// One receipt per op, in order.
    pub receipts: Vec<Receipt>,
}

/// Counters of a shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Single-shard ops accepted (incl. break-glass).
    pub accepted: u64,
    /// Single-shard ops rejected.
    pub rejected: u64,
    /// Prepares received.
    pub prepares: u64,
    /// Prepares voted yes.
    pub votes_yes: u64,
    /// Prepares voted no.
    pub votes_no: u64,
    /// Commits applied.
    pub commits: u64,
    /// Aborts applied.
    pub aborts: u64,
    /// Commit/Abort of unknown xids.
    pub unknown_xid: u64,
}

/// An append-only, in-memory log of a shard's blocks in the export frame format
/// (`u32 len | block bytes | 32-byte header hash`, see [`crate::log`]).
#[derive(Clone, Debug)]
pub struct BlockLog {
    bytes: Vec<u8>,
    blocks: u64,
    max_bytes: usize,
    overflowed: bool,
}

impl BlockLog {
    /// An empty log holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            bytes: Vec::new(),
            blocks: 0,
            max_bytes,
            overflowed: false,
        }
    }
    fn append(&mut self, header: &BlockHeader, ops: &[ShardOp], hash: &Hash32) {
        if self.overflowed {
            return;
        }
        let len = header.encoded_len() + ops.iter().map(|o| o.encoded_len()).sum::<usize>();
        if self.bytes.len() + 4 + len + 32 > self.max_bytes {
            self.overflowed = true;
            return;
        }
        self.bytes.extend_from_slice(&(len as u32).to_le_bytes());
        let start = self.bytes.len();
        header.encode_to(&mut self.bytes);
        for op in ops {
            op.encode_to(&mut self.bytes);
        }
        assert_eq!(
            self.bytes.len() - start,
            len,
            "encoded_len disagrees with the encoding"
        );
        self.bytes.extend_from_slice(hash);
        self.blocks += 1;
    }
    /// The framed blocks.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Blocks logged (including genesis).
    pub fn blocks(&self) -> u64 {
        self.blocks
    }
    /// Whether the log hit its byte cap and stopped.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

struct Staged {
    writes: Vec<Write>,
    locked: Vec<Key>,
    money_out: i128,
}

/// One shard: state, lock table, pending cross-shard parts, chain tip, optional block log.
pub struct ShardLedger {
    shard: ShardId,
    shard_count: u32,
    genesis: Arc<GenesisIndex>,
    state: State,
    locks: FxHashMap<Key, XId>,
    pending: FxHashMap<XId, Staged>,
    clearing_out: i128,
    tip: BlockHeader,
    tip_hash: Hash32,
    log: Option<BlockLog>,
    stats: ShardStats,
    writes: Vec<Write>,
    touched: Vec<Key>,
    leaf_buf: Vec<Hash32>,
    receipt_buf: Vec<u8>,
}

impl ShardLedger {
    /// Shard `shard` of `shard_count`, at genesis. `log_max_bytes: None` disables the block log.
    pub fn new(
        genesis: Arc<GenesisIndex>,
        shard: ShardId,
        shard_count: u32,
        log_max_bytes: Option<usize>,
    ) -> Self {
        assert!(
            shard.0 < shard_count,
            "shard {} out of range 0..{shard_count}",
            shard.0
        );
        let mut state = State::new();
        for o in &genesis.genesis.orgs {
            if org_shard(o.id, shard_count) == shard {
                state.put(Key::Account(o.id), Value::Balance(o.opening_balance_cents));
            }
        }
        let tip = BlockHeader {
            shard,
            height: 0,
            prev_hash: genesis.hash,
            tx_root: merkle::root(&[]),
            receipts_root: receipts_root_of_bytes(&[]),
            state_root: state.root(),
            timestamp_ms: 0,
            op_count: 0,
        };
        let tip_hash = tip.hash();
        let mut log = log_max_bytes.map(BlockLog::new);
        if let Some(l) = log.as_mut() {
            l.append(&tip, &[], &tip_hash);
        }
        Self {
            shard,
            shard_count,
            genesis,
            state,
            locks: FxHashMap::default(),
            pending: FxHashMap::default(),
            clearing_out: 0,
            tip,
            tip_hash,
            log,
            stats: ShardStats::default(),
            writes: Vec::new(),
            touched: Vec::new(),
            leaf_buf: Vec::new(),
            receipt_buf: Vec::new(),
        }
    }

    /// This shard's id.
    pub fn shard(&self) -> ShardId {
        self.shard
    }
    /// The latest header (the genesis header before any block).
    pub fn tip(&self) -> &BlockHeader {
        &self.tip
    }
    /// Hash of the latest header.
    pub fn tip_hash(&self) -> Hash32 {
        self.tip_hash
    }
    /// Current state root.
    pub fn state_root(&self) -> Hash32 {
        self.state.root()
    }
    /// The state (read-only).
    pub fn state(&self) -> &State {
        &self.state
    }
    /// Counters.
    pub fn stats(&self) -> ShardStats {
        self.stats
    }
    /// The block log, if enabled.
    pub fn log(&self) -> Option<&BlockLog> {
        self.log.as_ref()
    }
    /// Number of keys currently locked by prepared cross-shard txs.
    pub fn locked_keys(&self) -> usize {
        self.locks.len()
    }
    /// Number of prepared, undecided cross-shard txs.
    pub fn pending_xids(&self) -> usize {
        self.pending.len()
    }
    /// Whether `xid` is prepared (voted yes, undecided) here.
    pub fn is_prepared(&self, xid: XId) -> bool {
        self.pending.contains_key(&xid)
    }
    /// Money on this shard: balances plus the clearing balance of committed cross-shard
    /// parts (see [`crate::xshard`]). Summed over all shards it is constant.
    pub fn money(&self) -> i128 {
        self.state.balances_sum() as i128 + self.clearing_out
    }
    /// Asserts the incremental state root and balance sum match a full recomputation,
    /// and that the lock table matches the pending set.
    pub fn check_invariants(&self) {
        self.state.check_invariants();
        let locked: usize = self.pending.values().map(|s| s.locked.len()).sum();
        assert_eq!(
            locked,
            self.locks.len(),
            "lock table disagrees with pending cross-shard parts"
        );
    }

    /// Applies one block of `ops` at `timestamp_ms`: hashes the ops, executes them in order,
    /// updates the state root incrementally, builds and chains the header, and appends the
    /// block to the log if enabled.
    pub fn apply_block(&mut self, ops: Vec<ShardOp>, timestamp_ms: u64) -> AppliedBlock {
        assert!(
            ops.len() <= MAX_BLOCK_TXS,
            "block of {} ops exceeds MAX_BLOCK_TXS",
            ops.len()
        );
        self.leaf_buf.clear();
        self.leaf_buf.extend(ops.iter().map(ShardOp::id));
        let tx_root = merkle::root(&self.leaf_buf);
        self.receipt_buf.clear();
        let mut receipts = Vec::with_capacity(ops.len());
        for op in &ops {
            let r = self.apply_op(op, timestamp_ms);
            r.encode_to(&mut self.receipt_buf);
            receipts.push(r);
        }
        let header = BlockHeader {
            shard: self.shard,
            height: self.tip.height + 1,
            prev_hash: self.tip_hash,
            tx_root,
            receipts_root: receipts_root_of_bytes(&self.receipt_buf),
            state_root: self.state.root(),
            timestamp_ms,
            op_count: ops.len() as u32,
        };
        let hash = header.hash();
        self.tip = header;
        self.tip_hash = hash;
        if let Some(l) = self.log.as_mut() {
            l.append(&header, &ops, &hash);
        }
        if cfg!(debug_assertions) && self.state.len() <= DEBUG_ROOT_CHECK_MAX_KEYS {
            self.check_invariants();
        }
        AppliedBlock {
            header,
            hash,
            receipts,
        }
    }

    fn run(
        &mut self,
        tx: &crate::types::Tx,
        now_ms: u64,
        prepare: bool,
    ) -> (Result<Receipt, RejectReason>, i128) {
        self.writes.clear();
        self.touched.clear();
        let mut cx = Ctx {
            state: &self.state,
            locks: &self.locks,
            writes: &mut self.writes,
            touched: if prepare {
                Some(&mut self.touched)
            } else {
                None
            },
            money_out: 0,
            g: &self.genesis,
            shard: self.shard,
            shard_count: self.shard_count,
            now_ms,
        };
        let r = execute(tx, &mut cx);
        (r, cx.money_out)
    }

    fn apply_writes(state: &mut State, writes: &[Write]) {
        for (k, v) in writes {
            match v {
                Some(v) => state.put(*k, *v),
                None => state.remove(k),
            }
        }
    }

    /// Applies one op (see [`crate::xshard`] for the protocol).
    fn apply_op(&mut self, op: &ShardOp, now_ms: u64) -> Receipt {
        match op {
            ShardOp::Tx(tx) => {
                let set = shards_of(tx, self.shard_count);
                let receipt = if !set.contains(self.shard) {
                    Receipt::Rejected(RejectReason::WrongShard)
                } else if set.is_cross_shard() {
                    Receipt::Rejected(RejectReason::CrossShardTx)
                } else {
                    let (r, money_out) = self.run(tx, now_ms, false);
                    match r {
                        Ok(receipt) => {
                            assert_eq!(
                                money_out, 0,
                                "a single-shard tx created or destroyed money"
                            );
                            Self::apply_writes(&mut self.state, &self.writes);
                            receipt
                        }
                        Err(reason) => Receipt::Rejected(reason),
                    }
                };
                if receipt.is_success() {
                    self.stats.accepted += 1;
                } else {
                    self.stats.rejected += 1;
                }
                receipt
            }
            ShardOp::Prepare { xid, tx } => {
                self.stats.prepares += 1;
                let vote = self.prepare(*xid, tx, now_ms);
                match vote {
                    Vote::Yes => self.stats.votes_yes += 1,
                    Vote::No(_) => self.stats.votes_no += 1,
                }
                Receipt::Vote(vote)
            }
            ShardOp::Commit { xid } => match self.pending.remove(xid) {
                None => {
                    self.stats.unknown_xid += 1;
                    Receipt::Rejected(RejectReason::UnknownXId)
                }
                Some(st) => {
                    Self::apply_writes(&mut self.state, &st.writes);
                    for k in &st.locked {
                        self.locks.remove(k);
                    }
                    self.clearing_out += st.money_out;
                    self.stats.commits += 1;
                    Receipt::Committed
                }
            },
            ShardOp::Abort { xid } => match self.pending.remove(xid) {
                None => {
                    self.stats.unknown_xid += 1;
                    Receipt::Rejected(RejectReason::UnknownXId)
                }
                Some(st) => {
                    for k in &st.locked {
                        self.locks.remove(k);
                    }
                    self.stats.aborts += 1;
                    Receipt::Aborted
                }
            },
        }
    }

    fn prepare(&mut self, xid: XId, tx: &crate::types::Tx, now_ms: u64) -> Vote {
        if self.pending.contains_key(&xid) {
            return Vote::No(RejectReason::DuplicateXId);
        }
        if !shards_of(tx, self.shard_count).contains(self.shard) {
            return Vote::No(RejectReason::NotInvolved);
        }
        if self.pending.len() >= MAX_PENDING_XIDS {
            return Vote::No(RejectReason::TooManyPending);
        }
        let (r, money_out) = self.run(tx, now_ms, true);
        match r {
            Ok(Receipt::Accepted | Receipt::AcceptedBreakGlass) => {
                let mut locked = std::mem::take(&mut self.touched);
                locked.sort_unstable();
                locked.dedup();
                for k in &locked {
                    let prev = self.locks.insert(*k, xid);
                    assert!(
                        prev.is_none(),
                        "prepare locked a key already locked by {prev:?}"
                    );
                }
                self.pending.insert(
                    xid,
                    Staged {
                        writes: self.writes.clone(),
                        locked,
                        money_out,
                    },
                );
                Vote::Yes
            }
            Ok(Receipt::Rejected(reason)) | Err(reason) => Vote::No(reason),
            Ok(other) => panic!("execution returned a non-execution receipt {other:?}"),
        }
    }
}

/// Ledger construction options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Keep each shard's block log in memory (needed for export), capped at this many bytes
    /// per shard; `None` disables logging (large simulations).
    pub log_max_bytes: Option<usize>,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            log_max_bytes: Some(DEFAULT_LOG_MAX_BYTES),
        }
    }
}

/// The whole sharded ledger.
pub struct Ledger {
    /// The shards, indexed by shard id.
    pub shards: Vec<ShardLedger>,
    genesis: Arc<GenesisIndex>,
}

impl Ledger {
    /// A ledger of `shard_count ≥ 1` shards at genesis, with block logging on.
    pub fn new(genesis: &Genesis, shard_count: u32) -> Self {
        Self::with_config(genesis, shard_count, LedgerConfig::default())
    }
    /// A ledger with explicit options.
    pub fn with_config(genesis: &Genesis, shard_count: u32, config: LedgerConfig) -> Self {
        assert!(shard_count >= 1, "a ledger needs at least one shard");
        let g = GenesisIndex::new(genesis);
        let shards = (0..shard_count)
            .map(|s| ShardLedger::new(g.clone(), ShardId(s), shard_count, config.log_max_bytes))
            .collect();
        Self { shards, genesis: g }
    }
    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
    /// The genesis tables.
    pub fn genesis(&self) -> &Arc<GenesisIndex> {
        &self.genesis
    }
    /// Applies one block per shard in parallel (rayon). Shards with no ops produce no block
    /// (`None`). Results are identical to [`Ledger::apply_blocks_sequential`].
    pub fn apply_blocks_parallel(
        &mut self,
        per_shard_ops: Vec<Vec<ShardOp>>,
        timestamp_ms: u64,
    ) -> Vec<Option<AppliedBlock>> {
        assert_eq!(
            per_shard_ops.len(),
            self.shards.len(),
            "one op list per shard"
        );
        self.shards
            .par_iter_mut()
            .zip(per_shard_ops.into_par_iter())
            .map(|(s, ops)| {
                if ops.is_empty() {
                    None
                } else {
                    Some(s.apply_block(ops, timestamp_ms))
                }
            })
            .collect()
    }
    /// Applies one block per shard, one shard after another.
    pub fn apply_blocks_sequential(
        &mut self,
        per_shard_ops: Vec<Vec<ShardOp>>,
        timestamp_ms: u64,
    ) -> Vec<Option<AppliedBlock>> {
        assert_eq!(
            per_shard_ops.len(),
            self.shards.len(),
            "one op list per shard"
        );
        self.shards
            .iter_mut()
            .zip(per_shard_ops)
            .map(|(s, ops)| {
                if ops.is_empty() {
                    None
                } else {
                    Some(s.apply_block(ops, timestamp_ms))
                }
            })
            .collect()
    }
    /// Total money: account balances plus clearing balances over all shards. Equals
    /// [`Genesis::total_money`] at every instant.
    pub fn total_money(&self) -> u128 {
        let t: i128 = self.shards.iter().map(ShardLedger::money).sum();
        assert!(t >= 0, "total money is negative");
        t as u128
    }
    /// State roots of all shards.
    pub fn state_roots(&self) -> Vec<Hash32> {
        self.shards.iter().map(ShardLedger::state_root).collect()
    }
}
