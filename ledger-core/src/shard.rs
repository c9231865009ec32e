//! A shard's ledger (state, lock table, chain tip, optional block log) and the whole
//! sharded [`Ledger`].

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::block::{receipts_root_of_bytes, BlockHeader};
use crate::codec::{Encode, MAX_BLOCK_TXS};
use crate::exec::{execute, hot_keys, Ctx, EscrowPart, Receipt, RejectReason, Write};
use crate::genesis::{Genesis, GenesisIndex};
use crate::merkle;
use crate::routing::{org_shard, shards_of};
use crate::state::{Key, State, Value};
use crate::types::{AmountCents, Hash32, OrgId, ShardId};
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
/// Ops whose state entries are warmed together before they execute (see
/// [`State::warm`]): enough keys for the CPU to overlap their misses, few enough that
/// their entries are still in the core's cache when the ops run.
pub const WARM_WINDOW_OPS: usize = 64;
/// Most recycled staging buffers a shard keeps for reuse by later prepares.
pub const MAX_SPARE_STAGING: usize = 1024;

/// How a cross-shard `Prepare` treats the accounts its part debits and credits (see
/// [`crate::xshard`]). Every other key (claims, consents, records, audit trails, packages,
/// indexes) is always locked no-wait, so contention on a hot *patient* still aborts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AccountLocking {
    /// No-wait lock: the prepare locks every account its part touches, like any other key,
    /// and stages absolute balances. Another prepare or single-shard tx touching a locked
    /// account is refused with `KeyLocked`, so two payments from one insurer in the same
    /// block serialise: the second aborts.
    Lock,
    /// Escrow (the default): accounts are never locked. A prepare that debits an account
    /// checks its *available* balance (the stored balance, from which every hold is already
    /// deducted), moves the amount into a hold and votes yes; commit finalises the debit (the
    /// held amount becomes in-flight money on the shard's clearing balance) and abort
    /// releases the hold back into the balance. Credits are applied at commit. Single-shard
    /// txs see only the available balance. Debits and credits commute, so concurrent
    /// payments from one hot account all commit while its funds last.
    #[default]
    Escrow,
}

impl AccountLocking {
    /// Stable one-byte code (recorded in exported log manifests).
    pub fn code(self) -> u8 {
        match self {
            AccountLocking::Lock => 0,
            AccountLocking::Escrow => 1,
        }
    }
    /// The mode of a code.
    pub fn from_code(code: u8) -> Option<AccountLocking> {
        match code {
            0 => Some(AccountLocking::Lock),
            1 => Some(AccountLocking::Escrow),
            _ => None,
        }
    }
}

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

#[derive(Clone)]
struct Staged {
    writes: Vec<Write>,
    locked: Vec<Key>,
    /// Lock mode: debits minus credits of the staged absolute balance writes.
    money_out: i128,
    /// Escrow mode: the held debit and the credit due at commit.
    escrow: EscrowPart,
}

/// One shard: state, lock table, pending cross-shard parts, chain tip, optional block log.
///
/// Aligned to 128 bytes (two cache lines, the prefetch pair) so that shards stored side by
/// side in a `Vec` and applied on different threads never share a cache line.
#[derive(Clone)]
#[repr(align(128))]
pub struct ShardLedger {
    shard: ShardId,
    shard_count: u32,
    genesis: Arc<GenesisIndex>,
    state: State,
    locks: FxHashMap<Key, XId>,
    pending: FxHashMap<XId, Staged>,
    clearing_out: i128,
    locking: AccountLocking,
    held: u128,
    escrow_part: EscrowPart,
    spare: Vec<(Vec<Write>, Vec<Key>)>,
    tip: BlockHeader,
    tip_hash: Hash32,
    log: Option<BlockLog>,
    stats: ShardStats,
    writes: Vec<Write>,
    touched: Vec<Key>,
    leaf_buf: Vec<Hash32>,
    receipt_buf: Vec<u8>,
    /// Key hashes of the window of ops about to run (cache warming).
    hash_buf: Vec<u64>,
    /// Key hashes of the window after it.
    next_hash_buf: Vec<u64>,
}

impl ShardLedger {
    /// Shard `shard` of `shard_count`, at genesis, with the default [`AccountLocking`].
    /// `log_max_bytes: None` disables the block log.
    pub fn new(
        genesis: Arc<GenesisIndex>,
        shard: ShardId,
        shard_count: u32,
        log_max_bytes: Option<usize>,
    ) -> Self {
        Self::with_config(
            genesis,
            shard,
            shard_count,
            LedgerConfig {
                log_max_bytes,
                ..LedgerConfig::default()
            },
        )
    }

    /// Shard `shard` of `shard_count`, at genesis, with explicit options.
    pub fn with_config(
        genesis: Arc<GenesisIndex>,
        shard: ShardId,
        shard_count: u32,
        config: LedgerConfig,
    ) -> Self {
        let log_max_bytes = config.log_max_bytes;
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
            locking: config.account_locking,
            held: 0,
            escrow_part: EscrowPart::default(),
            spare: Vec::new(),
            tip,
            tip_hash,
            log,
            stats: ShardStats::default(),
            writes: Vec::new(),
            touched: Vec::new(),
            leaf_buf: Vec::new(),
            receipt_buf: Vec::new(),
            hash_buf: Vec::new(),
            next_hash_buf: Vec::new(),
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
    /// The account-locking mode of this shard.
    pub fn account_locking(&self) -> AccountLocking {
        self.locking
    }
    /// Money currently held in escrow by prepared, undecided cross-shard debits.
    pub fn held_cents(&self) -> u128 {
        self.held
    }
    /// Money on this shard: balances plus escrow holds plus the clearing balance of
    /// committed cross-shard parts (see [`crate::xshard`]). Summed over all shards it is
    /// constant at every instant.
    pub fn money(&self) -> i128 {
        self.state.balances_sum() as i128 + self.held as i128 + self.clearing_out
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
        let held: u128 = self
            .pending
            .values()
            .filter_map(|s| s.escrow.debit)
            .map(|(_, a)| a as u128)
            .sum();
        assert_eq!(
            held, self.held,
            "escrow hold total disagrees with pending debits"
        );
        if self.locking == AccountLocking::Escrow {
            assert!(
                self.locks.keys().all(|k| !matches!(k, Key::Account(_))),
                "an account is locked under escrow"
            );
        }
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
        // The first window's index slots start loading now, while the ops are hashed.
        Self::key_hashes(&ops[..ops.len().min(WARM_WINDOW_OPS)], &mut self.hash_buf);
        self.state.warm_index(&self.hash_buf);
        self.leaf_buf.clear();
        self.leaf_buf.extend(ops.iter().map(ShardOp::id));
        let tx_root = merkle::root(&self.leaf_buf);
        self.receipt_buf.clear();
        let mut receipts = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            if i % WARM_WINDOW_OPS == 0 {
                // This window's entries (its index slots were prefetched a window ago),
                // then the next window's index slots, which load while this one runs.
                self.state.warm_entries(&self.hash_buf);
                let next =
                    ops.len().min(i + WARM_WINDOW_OPS)..ops.len().min(i + 2 * WARM_WINDOW_OPS);
                Self::key_hashes(&ops[next], &mut self.next_hash_buf);
                self.state.warm_index(&self.next_hash_buf);
                std::mem::swap(&mut self.hash_buf, &mut self.next_hash_buf);
            }
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

    /// The hashes of the state keys `ops` look up first, into `out` (replacing its
    /// contents), for warming the cache (see [`State::warm_index`]). A pure speed hint.
    fn key_hashes(ops: &[ShardOp], out: &mut Vec<u64>) {
        out.clear();
        for op in ops {
            if let ShardOp::Tx(tx) | ShardOp::Prepare { tx, .. } = op {
                hot_keys(tx, |k| out.push(State::key_hash(&k)));
            }
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
        self.escrow_part = EscrowPart::default();
        let escrow = prepare && self.locking == AccountLocking::Escrow;
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
            escrow: if escrow {
                Some(&mut self.escrow_part)
            } else {
                None
            },
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
                    if let Some((_, amount)) = st.escrow.debit {
                        // The hold leaves the shard as in-flight money.
                        self.held -= amount as u128;
                        self.clearing_out += amount as i128;
                    }
                    if let Some((o, amount)) = st.escrow.credit {
                        let credited = self.credit_account(o, amount);
                        self.clearing_out -= credited as i128;
                    }
                    self.recycle(st);
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
                    if let Some((o, amount)) = st.escrow.debit {
                        // Release the hold back into the balance.
                        self.held -= amount as u128;
                        let credited = self.credit_account(o, amount);
                        self.clearing_out += (amount - credited) as i128;
                    }
                    self.recycle(st);
                    self.stats.aborts += 1;
                    Receipt::Aborted
                }
            },
        }
    }

    /// Balance of an account that must exist (accounts are created at genesis and never
    /// removed).
    fn balance_of(&self, o: OrgId) -> AmountCents {
        match self.state.get(&Key::Account(o)) {
            Some(Value::Balance(b)) => *b,
            other => panic!("account {o:?} holds {other:?} instead of a balance"),
        }
    }

    /// Adds up to `amount` to `o`'s balance and returns what was credited: everything,
    /// unless the balance would exceed `u64::MAX` (impossible while the protocol is followed,
    /// as genesis caps the total money at `u64::MAX`); the caller keeps the rest on the
    /// clearing balance so money is conserved either way.
    fn credit_account(&mut self, o: OrgId, amount: AmountCents) -> AmountCents {
        let b = self.balance_of(o);
        let credited = amount.min(AmountCents::MAX - b);
        self.state
            .put(Key::Account(o), Value::Balance(b + credited));
        credited
    }

    /// Returns a decided part's buffers to the spare pool.
    fn recycle(&mut self, st: Staged) {
        if self.spare.len() < MAX_SPARE_STAGING {
            let (mut w, mut l) = (st.writes, st.locked);
            w.clear();
            l.clear();
            self.spare.push((w, l));
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
                let (mut writes, mut locked) = self.spare.pop().unwrap_or_default();
                locked.extend_from_slice(&self.touched);
                locked.sort_unstable();
                locked.dedup();
                for k in &locked {
                    let prev = self.locks.insert(*k, xid);
                    assert!(
                        prev.is_none(),
                        "prepare locked a key already locked by {prev:?}"
                    );
                }
                writes.extend_from_slice(&self.writes);
                let escrow = self.escrow_part;
                if let Some((o, amount)) = escrow.debit {
                    // Move the amount from the balance into a hold (checked by execution).
                    let b = self.balance_of(o);
                    assert!(b >= amount, "escrow hold exceeds the available balance");
                    self.state.put(Key::Account(o), Value::Balance(b - amount));
                    self.held += amount as u128;
                }
                self.pending.insert(
                    xid,
                    Staged {
                        writes,
                        locked,
                        money_out,
                        escrow,
                    },
                );
                Vote::Yes
            }
            Ok(Receipt::Rejected(reason)) | Err(reason) => Vote::No(reason),
            Ok(other) => panic!("execution returned a non-execution receipt {other:?}"),
        }
    }
}

/// Ledger construction options. Build with `LedgerConfig { field: .., ..Default::default() }`
/// so that new options keep old call sites compiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Keep each shard's block log in memory (needed for export), capped at this many bytes
    /// per shard; `None` disables logging (large simulations). Default:
    /// `Some(DEFAULT_LOG_MAX_BYTES)`.
    pub log_max_bytes: Option<usize>,
    /// How cross-shard prepares treat account debits and credits. Default:
    /// [`AccountLocking::Escrow`].
    pub account_locking: AccountLocking,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            log_max_bytes: Some(DEFAULT_LOG_MAX_BYTES),
            account_locking: AccountLocking::default(),
        }
    }
}

/// The whole sharded ledger (`Clone` so benches can start every measured block from
/// the same warmed state).
#[derive(Clone)]
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
        Self::from_genesis(genesis.clone(), shard_count, config)
    }
    /// [`Ledger::with_config`] keeping `genesis` itself (no copy of its tables).
    pub fn from_genesis(genesis: Genesis, shard_count: u32, config: LedgerConfig) -> Self {
        assert!(shard_count >= 1, "a ledger needs at least one shard");
        let g = GenesisIndex::from_genesis(genesis);
        let shards = (0..shard_count)
            .map(|s| ShardLedger::with_config(g.clone(), ShardId(s), shard_count, config))
            .collect();
        Self { shards, genesis: g }
    }
    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
    /// The account-locking mode of every shard.
    pub fn account_locking(&self) -> AccountLocking {
        self.shards[0].account_locking()
    }
    /// The genesis tables.
    pub fn genesis(&self) -> &Arc<GenesisIndex> {
        &self.genesis
    }
    /// Applies one block per shard in parallel on the current rayon pool. Shards with no ops
    /// produce no block (`None`). Results are identical to
    /// [`Ledger::apply_blocks_sequential`].
    ///
    /// Shard `i` always runs on pool worker `i % threads` (a `rayon::broadcast`, not work
    /// stealing): round after round the same core applies the same shards, so each shard's
    /// state, lock table and buffers stay in that core's cache instead of following whichever
    /// worker stole the job this round.
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
        let threads = rayon::current_num_threads().max(1);
        let busy = per_shard_ops.iter().filter(|ops| !ops.is_empty()).count();
        if threads == 1 || busy <= 1 {
            return self.apply_blocks_sequential(per_shard_ops, timestamp_ms);
        }
        type Part<'a> = Vec<(usize, &'a mut ShardLedger, Vec<ShardOp>)>;
        let mut parts: Vec<Part<'_>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, (s, ops)) in self.shards.iter_mut().zip(per_shard_ops).enumerate() {
            parts[i % threads].push((i, s, ops));
        }
        let parts: Vec<std::sync::Mutex<Part<'_>>> =
            parts.into_iter().map(std::sync::Mutex::new).collect();
        let done: Vec<Vec<(usize, Option<AppliedBlock>)>> = rayon::broadcast(|ctx| {
            assert_eq!(ctx.num_threads(), threads, "rayon pool resized mid-call");
            let mine =
                std::mem::take(&mut *parts[ctx.index()].lock().expect("a shard worker panicked"));
            mine.into_iter()
                .map(|(i, s, ops)| {
                    let applied = (!ops.is_empty()).then(|| s.apply_block(ops, timestamp_ms));
                    (i, applied)
                })
                .collect()
        });
        let mut out: Vec<Option<AppliedBlock>> = (0..self.shards.len()).map(|_| None).collect();
        for (i, applied) in done.into_iter().flatten() {
            out[i] = applied;
        }
        out
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
