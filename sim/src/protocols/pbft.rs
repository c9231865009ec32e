//! `pbft`: Practical Byzantine Fault Tolerance (Castro & Liskov, OSDI 1999 /
//! TOCS 2002), one instance per shard.
//!
//! # Normal case
//! The primary of view `v` is `committee[v mod n]`. It batches client
//! transactions into blocks (`block_max_tx`, `block_max_bytes`,
//! `batch_timeout_ms`) and sends `PRE-PREPARE(v, seq, digest, block)`; a backup
//! accepts it if it is in view `v`, `h < seq <= h + L` (watermarks), the digest
//! matches the block and it has no other pre-prepare for `(v, seq)`, then
//! broadcasts `PREPARE`. A replica is *prepared* with the pre-prepare and `q - 1`
//! matching prepares from distinct backups (its own included), then broadcasts
//! `COMMIT`; with `q` matching commits the sequence number is committed and
//! replicas execute (call `ctx.commit(seq, block)`) strictly in sequence order.
//! Heights are sequence numbers: dense, from 1. Up to `pipeline_window`
//! sequence numbers may be outstanding at the primary.
//!
//! # Quorums for any `n >= 4`
//! `f = (n - 1) / 3` and `q = ceil((n + f + 1) / 2)`, which is `2f + 1` when
//! `n = 3f + 1`; for other `n` (e.g. 5 or 6) it is the smallest quorum whose
//! pairwise intersections still contain `f + 1` replicas (one honest), so safety
//! holds for every `n`.
//!
//! # Client requests and failure detection
//! Clients submit to a gateway replica. A backup gateway forwards pending
//! transactions to the primary in batches (`forward_batch_ms`,
//! `forward_batch_max`) and keeps them in a bounded pending pool with a request
//! timer (`request_timeout_ms`). If the oldest one is not executed when the
//! timer fires, the backup starts a view change: this is how a crashed, silent,
//! withholding or equivocating primary is detected. The primary deduplicates
//! transactions already queued, in a pre-prepare, or recently executed.
//!
//! Only gateways hold request timers, and clients may use `f` or fewer of them
//! (at n = 16, f = 5, the default workload's clients use a handful), so the
//! `f + 1` join rule below cannot be relied on alone. A backup that receives a
//! view-change for a higher view from a peer also joins (moves to `view + 1`)
//! once it has itself accepted no pre-prepare from the primary for
//! `request_timeout_ms` (its own evidence; the `Suspect` timer re-checks).
//! Caveat: during an idle period (no load, so no pre-prepares) one faulty
//! backup's view-change can thus trigger a needless view change (liveness
//! cost only; safety is unaffected).
//!
//! # Checkpoints and garbage collection
//! Every `checkpoint_interval` (K) sequence numbers a replica broadcasts
//! `CHECKPOINT(seq, state digest)`; with `q` matching ones the checkpoint is
//! stable: the low watermark `h` moves to it and every log slot at or below it
//! (pre-prepares, prepares, commits) is dropped. The log holds at most
//! `watermark_window` (L) slots ([`MAX_LOG_SLOTS`] caps L).
//!
//! # View change
//! `VIEW-CHANGE(v + 1, stable checkpoint, P)` carries the prepared certificates
//! above the checkpoint (each: pre-prepare digest + `q - 1` signed prepares,
//! never the block body), so at n = 16 with ~50 prepared slots it is ~78 KB.
//! The new primary collects `q` of them and sends
//! `NEW-VIEW(v + 1, V, O)` where `V` names the view-changes by
//! `(sender, digest)` (every replica got them by broadcast; a replica missing
//! one asks the primary once for the full new-view, `NEW-VIEW-REQUEST`, as in
//! the TOCS version of PBFT) and `O` re-issues, for every sequence number between
//! the highest stable checkpoint and the highest prepared one, the block of the
//! prepared certificate with the highest view, or an empty (null) block. Backups
//! recompute `O` from `V` and reject a new-view that does not match. If no
//! new-view arrives (or nothing new executes in it) within
//! `view_change_timeout_ms * 2^k` (k = consecutive failed view changes, capped at
//! [`MAX_BACKOFF_EXP`]), a replica moves to the next view. A replica that sees
//! view-changes from `f + 1` others for higher views joins the smallest of them.
//! The new primary counts one view change (`ctx.view_change()`) per installed
//! view, so the metric is once per view per shard.
//!
//! # State transfer
//! A replica that is behind (after a crash, a missed pre-prepare, or a stable
//! checkpoint above its state) sends `STATE-REQUEST(from)`. Every peer answers
//! with the digests of its executed blocks from `from` on (at most
//! [`MAX_STATE_REPLY_BLOCKS`]), its stable checkpoint and its view; one
//! designated peer also carries the block bodies and, if the requester's view
//! is lower, its last new-view in full (their bytes are in the message size).
//! A block is adopted once `f + 1` peers vouch for it (so at least one honest);
//! a view is adopted only through a verified new-view. Requests that bring
//! nothing back off exponentially (up to `2^`[`MAX_CATCHUP_BACKOFF_EXP`]), and
//! buffered pre-prepares of a view below the replica's view-change target do
//! not trigger requests (such a view can no longer be installed).
//!
//! # Durability
//! The log, view, executed state, history and the primary's next sequence
//! number survive a crash (they are written before messages that depend on them
//! leave); pending requests, timers, collected view-changes and the state
//! transfer in progress are volatile.
//!
//! # Byzantine behaviours ([`ByzantineBehaviour`])
//! - `Equivocate`: as primary, sends pre-prepares for two different blocks of
//!   the same transactions to the two halves of the backups, plus commits for
//!   each to its half; as backup, sends prepares and commits for a fake block to
//!   half of its peers.
//! - `Withhold`: as primary, sends each pre-prepare to only `f` backups (too few
//!   to prepare) and no new-view; as backup, sends no prepares or commits.
//! - `Silent` (and `SelfishMine`, meaningless here): sends nothing at all.
//!
//! Byzantine replicas never call `ctx.commit`.
//!
//! # Costs
//! Each message is signed once by its sender (`charge_sign`) and its signature
//! verified by each receiver (`charge_verify`, plus the signatures inside
//! view-change / new-view certificates); the primary hashes each block it
//! creates and each backup hashes each block it receives (`charge_hash`).

use crate::idset::IdSet;
use crate::kernel::{TimeNs, NS_PER_MS};
use crate::protocol::{
    BlockRef, ByzantineBehaviour, Ctx, Message, NodeId, Protocol, Replica, TimerId, TxRef,
};
use crate::scenario::{Scenario, ScenarioError};
use ledger_core::prefetch::{prefetch, prefetch_lines};
use rustc_hash::FxHashSet;
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Bytes of a message header (type, view, sequence number, sender, lengths).
pub const HEADER_BYTES: u64 = 48;
/// Bytes of a signature (ed25519).
pub const SIG_BYTES: u64 = 64;
/// Bytes of a digest.
pub const DIGEST_BYTES: u64 = 32;
/// Size of a prepare, commit or checkpoint message: header + digest + signature.
pub const VOTE_BYTES: u64 = HEADER_BYTES + DIGEST_BYTES + SIG_BYTES;
/// Bytes per block entry of a state-transfer reply without the body (seq + digest).
pub const STATE_ENTRY_BYTES: u64 = 8 + DIGEST_BYTES;
/// Largest allowed watermark window L (log slots kept between checkpoints).
pub const MAX_LOG_SLOTS: u64 = 8_192;
/// Most client transactions a replica holds pending (queued at the primary, or
/// forwarded and waiting at a backup); beyond it new ones are dropped.
pub const MAX_PENDING_TXS: usize = 200_000;
/// Transaction ids remembered as executed, to drop late duplicate forwards.
pub const MAX_RECENT_DONE: usize = 1 << 16;
/// Executed transactions [`RecentDone`] may hold back before folding them into
/// its bitmap.
pub const MAX_RECENT_DONE_BACKLOG_TXS: usize = 16_384;
/// Executed blocks kept to serve state transfer (the rest is a snapshot).
pub const MAX_HISTORY_BLOCKS: usize = 1 << 16;
/// Most blocks in one state-transfer reply.
pub const MAX_STATE_REPLY_BLOCKS: u64 = 512;
/// Votes kept per log slot and kind, in units of the committee size.
pub const MAX_VOTE_VIEWS: usize = 4;
/// Checkpoint sequence numbers above the low watermark kept while collecting.
pub const MAX_PENDING_CHECKPOINTS: usize = 32;
/// View-changes are kept for at most this many views above the current one.
pub const MAX_VC_VIEWS_AHEAD: u64 = 64;
/// Pre-prepares of a future view buffered until its new-view arrives.
pub const MAX_FUTURE_PRE_PREPARES: usize = 1_024;
/// Cap on the exponent of the view-change timeout backoff.
pub const MAX_BACKOFF_EXP: u32 = 6;
/// Cap on the exponent of the backoff between fruitless state requests.
pub const MAX_CATCHUP_BACKOFF_EXP: u32 = 5;
/// Bytes identifying one view-change inside a compact NEW-VIEW (sender + digest).
pub const VC_REF_BYTES: u64 = 4 + DIGEST_BYTES;

/// `[protocol.pbft]` parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PbftParams {
    /// Checkpoint every K sequence numbers (default 128).
    pub checkpoint_interval: u64,
    /// Watermark window L: sequence numbers accepted above the stable checkpoint
    /// (default 2K = 256; at most [`MAX_LOG_SLOTS`], at least K).
    pub watermark_window: u64,
    /// Most sequence numbers the primary keeps outstanding (default 8).
    pub pipeline_window: u64,
    /// A backup starts a view change when a forwarded request is not executed
    /// within this time, ms (default 2000: several WAN round trips plus batching).
    pub request_timeout_ms: f64,
    /// Base view-change timeout, ms, doubled per consecutive failed view change
    /// (default 2000).
    pub view_change_timeout_ms: f64,
    /// A backup gateway flushes forwarded transactions after this long, ms (default 2).
    pub forward_batch_ms: f64,
    /// ... or when this many are buffered (default 256).
    pub forward_batch_max: usize,
    /// Delay before a replica that sees it is behind asks for state, ms (default 100).
    pub state_transfer_delay_ms: f64,
}

impl Default for PbftParams {
    fn default() -> Self {
        PbftParams {
            checkpoint_interval: 128,
            watermark_window: 256,
            pipeline_window: 8,
            request_timeout_ms: 2_000.0,
            view_change_timeout_ms: 2_000.0,
            forward_batch_ms: 2.0,
            forward_batch_max: 256,
            state_transfer_delay_ms: 100.0,
        }
    }
}

/// A view-change message.
#[derive(Debug)]
pub struct ViewChangeMsg {
    /// The view being moved to.
    pub new_view: u64,
    /// Sender.
    pub from: NodeId,
    /// Sender's last stable checkpoint.
    pub stable_seq: u64,
    /// Its state digest.
    pub stable_digest: [u8; 32],
    /// Prepared certificates above it: `(seq, view, block)`.
    pub prepared: Vec<(u64, u64, BlockRef)>,
    /// Size on the wire.
    pub size_bytes: u64,
}

/// A new-view message.
#[derive(Debug)]
pub struct NewViewMsg {
    /// The new view.
    pub view: u64,
    /// The `q` view-change messages it is built from.
    pub vcs: Vec<Arc<ViewChangeMsg>>,
    /// Re-issued pre-prepares `(seq, block)` (null requests are empty blocks).
    pub o: Vec<(u64, BlockRef)>,
    /// Size on the wire of the compact form: `V` as `(sender, digest)` pairs
    /// (every replica received the view-changes by broadcast) plus `O`.
    pub size_bytes: u64,
    /// Size on the wire of the full form, which carries the `q` view-change
    /// messages themselves (sent to a replica that lacks some of them).
    pub full_size_bytes: u64,
}

/// A state-transfer reply.
#[derive(Debug)]
pub struct StateReplyMsg {
    /// Sender's view.
    pub view: u64,
    /// Sender's stable checkpoint.
    pub snapshot_seq: u64,
    /// Its state digest.
    pub snapshot_digest: [u8; 32],
    /// Executed blocks `(seq, block)` from the requested sequence number on.
    pub entries: Vec<(u64, BlockRef)>,
    /// The sender's last installed new-view (to let the requester join the view).
    pub new_view: Option<Arc<NewViewMsg>>,
    /// Size on the wire.
    pub size_bytes: u64,
}

/// PBFT messages.
#[derive(Clone, Debug)]
pub enum PbftMsg {
    /// Backup gateway forwards client transactions to the primary.
    Forward {
        /// The transactions.
        txs: Arc<[TxRef]>,
        /// Size on the wire.
        size_bytes: u64,
    },
    /// PRE-PREPARE(v, seq, digest, block).
    PrePrepare {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// The block.
        block: BlockRef,
        /// The block whose digest the primary claims for `block` (a handle stands for
        /// its block's digest, as in PREPARE: `block` itself unless forged). A handle
        /// keeps every event that carries a message small (32 bytes fewer to copy).
        digest_of: BlockRef,
        /// Size on the wire (header + signature + block).
        size_bytes: u64,
    },
    /// PREPARE(v, seq, digest) (the block handle stands for its digest).
    Prepare {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// Block voted for.
        block: BlockRef,
    },
    /// COMMIT(v, seq, digest).
    Commit {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// Block voted for.
        block: BlockRef,
    },
    /// CHECKPOINT(seq, state digest).
    Checkpoint {
        /// Sequence number.
        seq: u64,
        /// State digest after executing `seq` (boxed: checkpoints are rare, and the
        /// largest variant sets the size of every message and event).
        digest: Box<[u8; 32]>,
    },
    /// VIEW-CHANGE.
    ViewChange(Arc<ViewChangeMsg>),
    /// NEW-VIEW.
    NewView {
        /// The new-view.
        nv: Arc<NewViewMsg>,
        /// Whether the view-change messages themselves are on the wire
        /// (`nv.full_size_bytes`) or only their digests (`nv.size_bytes`).
        with_vcs: bool,
    },
    /// A backup that lacks some view-change messages referenced by a compact
    /// NEW-VIEW asks the new primary for the full one.
    NewViewRequest {
        /// The view.
        view: u64,
    },
    /// Ask for executed blocks from `from_seq` on.
    StateRequest {
        /// First sequence number wanted.
        from_seq: u64,
        /// The peer asked to carry the block bodies (and a newer new-view).
        body_server: NodeId,
        /// The requester's installed view (a peer in a higher view sends its new-view).
        view: u64,
    },
    /// Answer to a state request.
    StateReply(Arc<StateReplyMsg>),
}

impl Message for PbftMsg {
    fn size_bytes(&self) -> u64 {
        match self {
            PbftMsg::Forward { size_bytes, .. } | PbftMsg::PrePrepare { size_bytes, .. } => {
                *size_bytes
            }
            PbftMsg::Prepare { .. } | PbftMsg::Commit { .. } | PbftMsg::Checkpoint { .. } => {
                VOTE_BYTES
            }
            PbftMsg::ViewChange(m) => m.size_bytes,
            PbftMsg::NewView { nv, with_vcs } => {
                if *with_vcs {
                    nv.full_size_bytes
                } else {
                    nv.size_bytes
                }
            }
            PbftMsg::NewViewRequest { .. } | PbftMsg::StateRequest { .. } => {
                HEADER_BYTES + SIG_BYTES
            }
            PbftMsg::StateReply(m) => m.size_bytes,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            PbftMsg::Forward { .. } => "forward",
            PbftMsg::PrePrepare { .. } => "pre-prepare",
            PbftMsg::Prepare { .. } => "prepare",
            PbftMsg::Commit { .. } => "commit",
            PbftMsg::Checkpoint { .. } => "checkpoint",
            PbftMsg::ViewChange(_) => "view-change",
            PbftMsg::NewView { .. } => "new-view",
            PbftMsg::NewViewRequest { .. } => "new-view-request",
            PbftMsg::StateRequest { .. } => "state-request",
            PbftMsg::StateReply(_) => "state-reply",
        }
    }
}

/// PBFT timers.
#[derive(Copy, Clone, Debug)]
pub enum PbftTimer {
    /// Primary: propose a partial batch.
    Batch,
    /// Backup gateway: flush forwarded transactions.
    Forward,
    /// Backup gateway: check that forwarded requests got executed.
    Request,
    /// View change to this view did not complete in time.
    ViewChange(u64),
    /// Still changing to this view: send this replica's VIEW-CHANGE again (it
    /// may have been lost, e.g. to a partition that has healed since).
    ViewChangeResend(u64),
    /// Check whether this replica is behind and ask for state.
    CatchUp,
    /// A peer suspects the primary: check whether the primary has been silent
    /// for `request_timeout_ms` (then join the view change).
    Suspect,
}

/// The protocol factory.
pub struct Pbft {
    params: PbftParams,
    block_max_tx: usize,
    block_max_bytes: u64,
    batch_timeout_ns: u64,
}

impl Pbft {
    /// `f` for a committee of `n`.
    pub fn faults_tolerated(n: usize) -> usize {
        n.saturating_sub(1) / 3
    }

    /// Quorum size for a committee of `n`: `ceil((n + f + 1) / 2)` (= 2f+1 when n = 3f+1).
    pub fn quorum(n: usize) -> usize {
        let f = Self::faults_tolerated(n);
        (n + f + 2) / 2
    }
}

fn ms_to_ns(ms: f64) -> u64 {
    (ms * NS_PER_MS as f64) as u64
}

impl Protocol for Pbft {
    type Replica = PbftReplica;
    const NAME: &'static str = "pbft";

    fn from_scenario(s: &Scenario) -> Result<Self, ScenarioError> {
        let params: PbftParams = s.protocol_params(Self::NAME)?;
        let bad = |path: &str, message: String| ScenarioError::InvalidValue {
            source_name: s.name.clone(),
            path: format!("protocol.pbft.{path}"),
            message,
        };
        if params.checkpoint_interval == 0 {
            return Err(bad("checkpoint_interval", "must be at least 1".into()));
        }
        if params.watermark_window < params.checkpoint_interval
            || params.watermark_window > MAX_LOG_SLOTS
        {
            return Err(bad(
                "watermark_window",
                format!(
                    "must be in checkpoint_interval..={MAX_LOG_SLOTS}, got {}",
                    params.watermark_window
                ),
            ));
        }
        if params.pipeline_window == 0 || params.pipeline_window > params.watermark_window {
            return Err(bad(
                "pipeline_window",
                "must be in 1..=watermark_window".into(),
            ));
        }
        if params.forward_batch_max == 0 {
            return Err(bad("forward_batch_max", "must be at least 1".into()));
        }
        for (name, v) in [
            ("request_timeout_ms", params.request_timeout_ms),
            ("view_change_timeout_ms", params.view_change_timeout_ms),
            ("forward_batch_ms", params.forward_batch_ms),
            ("state_transfer_delay_ms", params.state_transfer_delay_ms),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(name, format!("must be a finite number >= 0, got {v}")));
            }
        }
        if params.request_timeout_ms <= 0.0 || params.view_change_timeout_ms <= 0.0 {
            return Err(bad(
                "request_timeout_ms",
                "timeouts must be positive".into(),
            ));
        }
        Ok(Pbft {
            params,
            block_max_tx: s.block_max_tx as usize,
            block_max_bytes: s.block_max_bytes,
            batch_timeout_ns: ms_to_ns(s.batch_timeout_ms),
        })
    }

    fn max_faulty(&self, committee_size: usize) -> usize {
        Self::faults_tolerated(committee_size)
    }

    fn replica(&self, _shard: u32, me: NodeId, committee: &[NodeId]) -> PbftReplica {
        let n = committee.len();
        let p = &self.params;
        PbftReplica {
            me,
            committee: committee.to_vec(),
            n,
            f: Pbft::faults_tolerated(n),
            q: Pbft::quorum(n),
            k: p.checkpoint_interval,
            l: p.watermark_window,
            window: p.pipeline_window,
            request_timeout_ns: ms_to_ns(p.request_timeout_ms).max(1),
            vc_timeout_ns: ms_to_ns(p.view_change_timeout_ms).max(1),
            forward_batch_ns: ms_to_ns(p.forward_batch_ms),
            forward_batch_max: p.forward_batch_max,
            state_delay_ns: ms_to_ns(p.state_transfer_delay_ms),
            block_max_tx: self.block_max_tx,
            block_max_bytes: self.block_max_bytes,
            batch_timeout_ns: self.batch_timeout_ns,
            view: 0,
            vc_target: None,
            vc_timer: None,
            vc_attempts: 0,
            nv_done: 0,
            last_nv: None,
            log: SlotLog::new(p.watermark_window),
            hi_committed: 0,
            h: 0,
            stable_digest: [0; 32],
            last_exec: 0,
            state_digest: [0; 32],
            history: VecDeque::new(),
            checkpoints: BTreeMap::new(),
            next_seq: 1,
            pending: VecDeque::new(),
            pending_bytes: 0,
            queued: IdSet::new(),
            batch_timer: None,
            fwd_buf: Vec::new(),
            fwd_timer: None,
            waiting: IdSet::new(),
            waiting_order: VecDeque::new(),
            req_timer: None,
            recent_done: RecentDone::default(),
            vcs: BTreeMap::new(),
            catchup_timer: None,
            catchup_attempt: 0,
            catchup_mark: 0,
            catchup_fruitless: 0,
            last_primary_ns: 0,
            suspect_timer: None,
            nv_fetch: None,
            vouch: BTreeMap::new(),
            snapshots: Vec::new(),
            future_pp: Vec::new(),
            max_log_len: 0,
            dropped_txs: 0,
        }
    }
}

#[derive(Copy, Clone, Debug)]
struct Vote {
    from: NodeId,
    view: u64,
    block: BlockRef,
}

/// Votes a slot holds inline before moving them to the heap: every replica's vote of
/// one view for committees of up to eight (4 and 7 are the common sizes), so the
/// votes of a normal-case slot cost no allocation and sit next to the slot's state.
const INLINE_VOTES: usize = 8;

/// The prepares (or commits) of one log slot: a vector that keeps its first
/// [`INLINE_VOTES`] entries inline and moves to a heap vector when a vote arrives
/// beyond them (larger committees, or votes of several views during a view change).
/// Reads see one slice either way, in insertion order.
#[derive(Debug)]
struct Votes {
    /// Entries used in `inline` (while not spilled).
    len: u8,
    inline: [Vote; INLINE_VOTES],
    /// All the votes once more than [`INLINE_VOTES`] were held; `None` before.
    /// Boxed so the rare case costs the slot 8 bytes, not a 24-byte vector.
    #[allow(clippy::box_collection)]
    spilled: Option<Box<Vec<Vote>>>,
}

impl Default for Votes {
    fn default() -> Self {
        const NONE: Vote = Vote {
            from: 0,
            view: 0,
            block: BlockRef(0),
        };
        Votes {
            len: 0,
            inline: [NONE; INLINE_VOTES],
            spilled: None,
        }
    }
}

impl std::ops::Deref for Votes {
    type Target = [Vote];

    #[inline]
    fn deref(&self) -> &[Vote] {
        match &self.spilled {
            None => &self.inline[..usize::from(self.len)],
            Some(v) => v,
        }
    }
}

impl Votes {
    #[inline]
    fn push(&mut self, v: Vote) {
        match &mut self.spilled {
            Some(heap) => heap.push(v),
            None if usize::from(self.len) < INLINE_VOTES => {
                self.inline[usize::from(self.len)] = v;
                self.len += 1;
            }
            None => self.spill(v),
        }
    }

    /// Move the inline votes and `v` to the heap.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, v: Vote) {
        let mut heap = Vec::with_capacity(2 * INLINE_VOTES);
        heap.extend_from_slice(&self.inline);
        heap.push(v);
        self.spilled = Some(Box::new(heap));
        self.len = 0;
    }

    /// Keep the votes `keep` accepts, in order.
    fn retain(&mut self, mut keep: impl FnMut(&Vote) -> bool) {
        match &mut self.spilled {
            Some(heap) => heap.retain(keep),
            None => {
                let mut kept = 0;
                for i in 0..usize::from(self.len) {
                    let v = self.inline[i];
                    if keep(&v) {
                        self.inline[kept] = v;
                        kept += 1;
                    }
                }
                self.len = kept as u8;
            }
        }
    }

    /// Remove every vote (and any heap buffer).
    #[inline]
    fn clear(&mut self) {
        self.len = 0;
        self.spilled = None;
    }
}

/// One log slot; cache-line aligned (six lines, the votes inline) so a vote
/// touches as few lines of the ring as possible. Laid out in declaration order
/// (`repr(C)`): what every message checks first (`seq`, `used`, the certificates)
/// shares the first line, then the prepares, then the commits.
#[derive(Default, Debug)]
#[repr(C, align(64))]
struct Slot {
    /// Sequence number this slot holds (valid while `used`).
    seq: u64,
    /// Whether the slot is in the log.
    used: bool,
    /// Block with a commit certificate.
    committed: Option<BlockRef>,
    /// View in which this replica sent its commit.
    sent_commit: Option<u64>,
    /// Accepted pre-prepare `(view, block)` (the latest view's).
    pp: Option<(u64, BlockRef)>,
    /// Latest prepared certificate `(view, block)`.
    prepared: Option<(u64, BlockRef)>,
    prepares: Votes,
    commits: Votes,
}

impl Slot {
    /// Reset to an empty slot for `seq`.
    fn reset(&mut self, seq: u64) {
        self.seq = seq;
        self.used = true;
        self.pp = None;
        self.prepares.clear();
        self.commits.clear();
        self.prepared = None;
        self.sent_commit = None;
        self.committed = None;
    }

    /// Take the slot out of the log (any spilled vote buffers are freed).
    fn release(&mut self) {
        self.used = false;
        self.prepares.clear();
        self.commits.clear();
    }

    fn has_body(&self, b: BlockRef) -> bool {
        self.pp.is_some_and(|(_, x)| x == b) || self.prepared.is_some_and(|(_, x)| x == b)
    }
}

/// The message log: slots for sequence numbers in `(h, h + L]` (the watermark
/// window) in a ring indexed by `seq mod capacity`, where capacity is `L`
/// rounded up to a power of two, so any `L` consecutive sequence numbers map to
/// distinct slots. Same contents as a `BTreeMap<u64, Slot>` restricted to the
/// window, without the tree search on every vote.
#[derive(Debug)]
struct SlotLog {
    ring: Vec<Slot>,
    mask: u64,
    /// Slots in use.
    len: usize,
}

impl SlotLog {
    /// A log for a watermark window of `l` slots (`1 <= l <= MAX_LOG_SLOTS`).
    fn new(l: u64) -> Self {
        assert!(
            (1..=MAX_LOG_SLOTS).contains(&l),
            "pbft watermark window {l} outside 1..={MAX_LOG_SLOTS}"
        );
        let cap = l.next_power_of_two();
        SlotLog {
            ring: (0..cap).map(|_| Slot::default()).collect(),
            mask: cap - 1,
            len: 0,
        }
    }

    #[inline]
    fn index(&self, seq: u64) -> usize {
        (seq & self.mask) as usize
    }

    /// The slot of `seq`, if present.
    #[inline]
    fn get(&self, seq: u64) -> Option<&Slot> {
        let s = &self.ring[self.index(seq)];
        (s.used && s.seq == seq).then_some(s)
    }

    /// The slot of `seq`, if present.
    #[inline]
    fn get_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let i = self.index(seq);
        let s = &mut self.ring[i];
        (s.used && s.seq == seq).then_some(s)
    }

    /// The slot of `seq`, created empty if absent. The caller keeps `seq`
    /// inside the window, so the ring position is free or already `seq`'s.
    #[inline]
    fn entry(&mut self, seq: u64) -> &mut Slot {
        let i = self.index(seq);
        let s = &mut self.ring[i];
        if !s.used {
            s.reset(seq);
            self.len += 1;
        }
        assert_eq!(
            s.seq, seq,
            "pbft log slot of seq {seq} is held by seq {}",
            s.seq
        );
        s
    }

    /// Drop every slot at or below `seq`, given that all slots are in
    /// `(old_h, old_h + l]`.
    fn drop_through(&mut self, old_h: u64, l: u64, seq: u64) {
        let hi = seq.min(old_h + l);
        if hi - old_h >= self.ring.len() as u64 {
            for s in &mut self.ring {
                s.release();
            }
            self.len = 0;
            return;
        }
        for x in old_h + 1..=hi {
            let i = self.index(x);
            let s = &mut self.ring[i];
            if s.used && s.seq == x {
                s.release();
                self.len -= 1;
            }
        }
    }

    /// Slots in sequence order among `from..=to`.
    fn range(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, &Slot)> + '_ {
        let to = to.min(from.saturating_add(self.ring.len() as u64 - 1));
        (from..=to).filter_map(move |x| self.get(x).map(|s| (x, s)))
    }

    /// Drop everything.
    #[cfg(test)]
    fn clear(&mut self) {
        for s in &mut self.ring {
            s.release();
        }
        self.len = 0;
    }
}

fn add_vote(votes: &mut Votes, cap: usize, v: Vote) -> bool {
    if votes.iter().any(|x| x.from == v.from && x.view == v.view) {
        return false;
    }
    if votes.len() >= cap {
        // Drop the votes of the oldest view (bounded; never the incoming one's view if older).
        let Some(min_view) = votes.iter().map(|x| x.view).min() else {
            return false;
        };
        if min_view >= v.view {
            return false;
        }
        votes.retain(|x| x.view != min_view);
    }
    votes.push(v);
    true
}

fn count_matching(votes: &[Vote], view: u64, block: BlockRef) -> usize {
    votes
        .iter()
        .filter(|x| x.view == view && x.block == block)
        .count()
}

/// Transaction ids executed recently: the last [`MAX_RECENT_DONE`] distinct
/// ones, in execution order, to drop late duplicate requests.
///
/// Executed blocks are queued (one handle per block) and folded into the
/// bitmap, block by block exactly as an eager insert-then-evict would, only
/// when a lookup could be affected (an id not above the largest one seen) or
/// the backlog reaches [`MAX_RECENT_DONE_BACKLOG_TXS`]. Lookups of fresh ids,
/// which are above every executed one, need no fold; folding many blocks at
/// once touches each bitmap line once instead of once per block. Answers are
/// those of the eager set.
#[derive(Default, Debug)]
struct RecentDone {
    set: IdSet,
    order: VecDeque<u32>,
    backlog: VecDeque<BlockRef>,
    backlog_txs: usize,
    /// Largest id in the backlog (meaningful while it is non-empty).
    backlog_hi: u32,
}

impl RecentDone {
    /// Record the execution of `block`; `txs_of` gives a block's transactions.
    fn record<'b>(&mut self, block: BlockRef, txs_of: impl Fn(BlockRef) -> &'b [TxRef]) {
        let txs = txs_of(block);
        // Folding an empty block changes nothing (the set is within bounds
        // after every fold).
        let Some(hi) = txs.iter().map(|t| t.id).max() else {
            return;
        };
        self.backlog_hi = if self.backlog.is_empty() {
            hi
        } else {
            self.backlog_hi.max(hi)
        };
        self.backlog.push_back(block);
        self.backlog_txs += txs.len();
        if self.backlog_txs >= MAX_RECENT_DONE_BACKLOG_TXS {
            self.fold(txs_of);
        }
    }

    /// Fold the backlog into the set, block by block.
    fn fold<'b>(&mut self, txs_of: impl Fn(BlockRef) -> &'b [TxRef]) {
        for b in self.backlog.drain(..) {
            let order = &mut self.order;
            self.set
                .insert_each(txs_of(b).iter().map(|tx| tx.id), |id| order.push_back(id));
            let excess = self.order.len().saturating_sub(MAX_RECENT_DONE);
            if excess > 0 {
                self.set.remove_each(self.order.drain(..excess));
            }
        }
        self.backlog_txs = 0;
    }

    /// Whether `id` is among the recently executed transactions.
    #[inline]
    fn contains<'b>(&mut self, id: u32, txs_of: impl Fn(BlockRef) -> &'b [TxRef]) -> bool {
        if !self.backlog.is_empty() {
            if id > self.backlog_hi && id > self.set.max_bound() {
                // Neither in the backlog nor in the set, folded or not.
                return false;
            }
            self.fold(txs_of);
        }
        self.set.contains(id)
    }
}

/// One PBFT replica.
pub struct PbftReplica {
    me: NodeId,
    committee: Vec<NodeId>,
    n: usize,
    f: usize,
    q: usize,
    k: u64,
    l: u64,
    window: u64,
    request_timeout_ns: u64,
    vc_timeout_ns: u64,
    forward_batch_ns: u64,
    forward_batch_max: usize,
    state_delay_ns: u64,
    block_max_tx: usize,
    block_max_bytes: u64,
    batch_timeout_ns: u64,
    // View state (durable).
    view: u64,
    vc_target: Option<u64>,
    vc_timer: Option<TimerId>,
    vc_attempts: u32,
    nv_done: u64,
    last_nv: Option<Arc<NewViewMsg>>,
    // Log (durable).
    log: SlotLog,
    /// Highest sequence number with a commit certificate seen in the log (a
    /// slot is only dropped once executed, so `hi_committed > last_exec` iff
    /// some slot above `last_exec` is committed).
    hi_committed: u64,
    h: u64,
    stable_digest: [u8; 32],
    last_exec: u64,
    state_digest: [u8; 32],
    history: VecDeque<(u64, BlockRef)>,
    checkpoints: BTreeMap<u64, Vec<(NodeId, [u8; 32])>>,
    next_seq: u64,
    // Requests (volatile).
    pending: VecDeque<(TxRef, TimeNs)>,
    /// Sum of `size_bytes` over `pending` (lets `try_propose` skip its scan).
    pending_bytes: u64,
    queued: IdSet,
    batch_timer: Option<TimerId>,
    fwd_buf: Vec<TxRef>,
    fwd_timer: Option<TimerId>,
    /// Ids of the transactions this backup gateway forwarded and waits to see
    /// executed (a bitmap: most executed transactions are not this replica's).
    waiting: IdSet,
    /// The waiting transactions in request-timer order (every waiting id has
    /// an entry; entries of executed ones are dropped lazily).
    waiting_order: VecDeque<(TxRef, TimeNs)>,
    req_timer: Option<TimerId>,
    recent_done: RecentDone,
    // View change / state transfer (volatile).
    vcs: BTreeMap<u64, Vec<Arc<ViewChangeMsg>>>,
    catchup_timer: Option<TimerId>,
    catchup_attempt: u32,
    catchup_mark: u64,
    /// Consecutive state requests that brought nothing (backoff exponent).
    catchup_fruitless: u32,
    /// When the current primary was last heard from (accepted pre-prepare or
    /// view installation).
    last_primary_ns: TimeNs,
    suspect_timer: Option<TimerId>,
    /// View whose full new-view was asked of its primary.
    nv_fetch: Option<u64>,
    vouch: BTreeMap<u64, Vec<(NodeId, BlockRef)>>,
    snapshots: Vec<(NodeId, u64, [u8; 32])>,
    future_pp: Vec<(NodeId, PbftMsg)>,
    // Statistics.
    max_log_len: usize,
    dropped_txs: u64,
}

type C<'a> = Ctx<'a, PbftMsg, PbftTimer>;

/// `blake3(state || block_digest)`: one 64-byte block, hashed in one call (a
/// streaming `Hasher` would set up its 1.9 KB chunk state for it on every block).
fn fold_digest(state: &[u8; 32], block_digest: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(state);
    buf[32..].copy_from_slice(block_digest);
    *blake3::hash(&buf).as_bytes()
}

/// The `O` set a new-view must carry for view-change messages `vcs`:
/// `(min_s, entries)` with `entries[i] = (seq, Some(block))` for a prepared
/// certificate (highest view wins) or `(seq, None)` for a null request.
fn compute_o(vcs: &[Arc<ViewChangeMsg>], l: u64) -> (u64, Vec<(u64, Option<BlockRef>)>) {
    let min_s = vcs.iter().map(|v| v.stable_seq).max().unwrap_or(0);
    let mut best: BTreeMap<u64, (u64, BlockRef)> = BTreeMap::new();
    for vc in vcs {
        for &(seq, view, block) in &vc.prepared {
            if seq <= min_s || seq > min_s + l {
                continue;
            }
            let e = best.entry(seq).or_insert((view, block));
            if view > e.0 {
                *e = (view, block);
            }
        }
    }
    let max_s = best.keys().next_back().copied().unwrap_or(min_s);
    let entries = (min_s + 1..=max_s)
        .map(|s| (s, best.get(&s).map(|&(_, b)| b)))
        .collect();
    (min_s, entries)
}

impl PbftReplica {
    /// Slots currently in the log (bounded by the watermark window).
    pub fn log_len(&self) -> usize {
        self.log.len
    }

    /// Largest log length seen so far.
    pub fn max_log_len(&self) -> usize {
        self.max_log_len
    }

    /// The replica's current view.
    pub fn view(&self) -> u64 {
        self.view
    }

    /// Highest executed sequence number.
    pub fn last_executed(&self) -> u64 {
        self.last_exec
    }

    /// Low watermark (last stable checkpoint).
    pub fn low_watermark(&self) -> u64 {
        self.h
    }

    fn primary_of(&self, view: u64) -> NodeId {
        self.committee[(view % self.n as u64) as usize]
    }

    fn is_primary(&self) -> bool {
        self.primary_of(self.view) == self.me
    }

    /// In a working view (not changing views, new-view processed).
    fn active(&self) -> bool {
        self.vc_target.is_none() && self.nv_done == self.view
    }

    fn vote_cap(&self) -> usize {
        self.n * MAX_VOTE_VIEWS
    }

    fn byz(ctx: &C<'_>) -> Option<ByzantineBehaviour> {
        ctx.byzantine()
    }

    fn silent(ctx: &C<'_>) -> bool {
        matches!(
            ctx.byzantine(),
            Some(ByzantineBehaviour::Silent | ByzantineBehaviour::SelfishMine)
        )
    }

    fn slot(&mut self, seq: u64) -> &mut Slot {
        assert!(
            self.in_watermarks(seq),
            "pbft node {} touches log slot {seq} outside the watermarks ({}, {}]",
            self.me,
            self.h,
            self.h + self.l
        );
        self.log.entry(seq)
    }

    fn note_log_len(&mut self) {
        self.max_log_len = self.max_log_len.max(self.log.len);
        assert!(
            self.log.len as u64 <= self.l,
            "pbft log of node {} holds {} slots, above the watermark window {}",
            self.me,
            self.log.len,
            self.l
        );
    }

    fn in_watermarks(&self, seq: u64) -> bool {
        seq > self.h && seq <= self.h + self.l
    }

    // ----- client requests -------------------------------------------------

    fn enqueue(&mut self, ctx: &mut C<'_>, tx: TxRef) {
        if self.push_pending(ctx, tx) {
            self.try_propose(ctx);
        }
    }

    /// Queue `tx` at the primary unless it is a duplicate or the pool is
    /// full; `true` if queued (the caller then owes a `try_propose`).
    #[inline]
    fn push_pending(&mut self, ctx: &C<'_>, tx: TxRef) -> bool {
        if self.queued.contains(tx.id) || self.recent_done.contains(tx.id, |b| ctx.block_txs(b)) {
            return false;
        }
        if self.pending.len() >= MAX_PENDING_TXS {
            self.dropped_txs += 1;
            return false;
        }
        self.queued.insert(tx.id);
        self.pending.push_back((tx, ctx.now()));
        self.pending_bytes += u64::from(tx.size_bytes);
        true
    }

    /// Whether `try_propose` could propose a block now (a full batch or an
    /// expired batch timeout). When it is `false`, `try_propose` would only
    /// re-arm the batch timer, so a run of enqueues within one handler may
    /// defer that to a single call at its end: the timer ends up with the
    /// same due time, set in the same handler, so the event order is the same.
    #[inline]
    fn propose_may_fire(&self, ctx: &C<'_>) -> bool {
        self.pending.len() >= self.block_max_tx
            || self.pending_bytes >= self.block_max_bytes
            || self
                .pending
                .front()
                .is_some_and(|&(_, at)| ctx.now() >= at + self.batch_timeout_ns)
    }

    /// [`Self::enqueue`] for a batch of transactions (a FORWARD): proposes at
    /// exactly the points where per-transaction enqueues would, and re-arms
    /// the batch timer once.
    fn enqueue_batch(&mut self, ctx: &mut C<'_>, txs: &[TxRef]) {
        let mut deferred = false;
        for &tx in txs {
            if !self.push_pending(ctx, tx) {
                continue;
            }
            if self.propose_may_fire(ctx) {
                self.try_propose(ctx);
                deferred = false;
            } else {
                deferred = true;
            }
        }
        if deferred {
            self.try_propose(ctx);
        }
    }

    fn add_waiting(&mut self, ctx: &mut C<'_>, tx: TxRef) {
        if self.waiting.contains(tx.id) || self.recent_done.contains(tx.id, |b| ctx.block_txs(b)) {
            return;
        }
        if self.waiting.len() >= MAX_PENDING_TXS {
            self.dropped_txs += 1;
            return;
        }
        self.waiting.insert(tx.id);
        self.waiting_order.push_back((tx, ctx.now()));
        self.fwd_buf.push(tx);
        if self.req_timer.is_none() {
            self.req_timer = Some(ctx.set_timer(self.request_timeout_ns, PbftTimer::Request));
        }
    }

    /// The waiting transactions, sorted by id (each once).
    fn waiting_txs(&self) -> Vec<TxRef> {
        let mut txs: Vec<TxRef> = self
            .waiting_order
            .iter()
            .map(|&(tx, _)| tx)
            .filter(|tx| self.waiting.contains(tx.id))
            .collect();
        txs.sort_unstable();
        txs.dedup();
        debug_assert_eq!(
            txs.len(),
            self.waiting.len(),
            "waiting_order covers waiting"
        );
        txs
    }

    fn flush_forward(&mut self, ctx: &mut C<'_>) {
        if let Some(t) = self.fwd_timer.take() {
            ctx.cancel_timer(t);
        }
        if self.fwd_buf.is_empty() || !self.active() {
            return;
        }
        if Self::silent(ctx) {
            self.fwd_buf.clear();
            return;
        }
        let primary = self.primary_of(self.view);
        let txs: Arc<[TxRef]> = Arc::from(self.fwd_buf.as_slice());
        let size_bytes =
            HEADER_BYTES + SIG_BYTES + txs.iter().map(|t| u64::from(t.size_bytes)).sum::<u64>();
        self.fwd_buf.clear();
        ctx.charge_sign();
        ctx.send(primary, PbftMsg::Forward { txs, size_bytes });
    }

    fn buffer_forward(&mut self, ctx: &mut C<'_>) {
        if self.fwd_buf.len() >= self.forward_batch_max {
            self.flush_forward(ctx);
        } else if !self.fwd_buf.is_empty() && self.fwd_timer.is_none() {
            self.fwd_timer = Some(ctx.set_timer(self.forward_batch_ns, PbftTimer::Forward));
        }
    }

    fn try_propose(&mut self, ctx: &mut C<'_>) {
        if !self.is_primary() || !self.active() || Self::silent(ctx) {
            return;
        }
        while !self.pending.is_empty()
            && self.next_seq <= self.last_exec + self.window
            && self.in_watermarks(self.next_seq)
        {
            let (mut n, mut bytes) = (0, 0);
            if self.pending.len() <= self.block_max_tx && self.pending_bytes <= self.block_max_bytes
            {
                // Everything pending fits one block: the scan below would take it all.
                (n, bytes) = (self.pending.len(), self.pending_bytes);
            } else {
                for (tx, _) in &self.pending {
                    let sz = u64::from(tx.size_bytes);
                    if n >= self.block_max_tx || (n > 0 && bytes + sz > self.block_max_bytes) {
                        break;
                    }
                    n += 1;
                    bytes += sz;
                }
            }
            let full =
                n < self.pending.len() || n >= self.block_max_tx || bytes >= self.block_max_bytes;
            let oldest = self.pending.front().map_or(0, |p| p.1);
            if !full && ctx.now() < oldest + self.batch_timeout_ns {
                break;
            }
            let txs: Vec<TxRef> = self.pending.drain(..n).map(|(t, _)| t).collect();
            self.pending_bytes -= bytes;
            self.propose(ctx, &txs);
        }
        if let Some(t) = self.batch_timer.take() {
            ctx.cancel_timer(t);
        }
        // Waiting for the batch timeout (not for the window: an execution
        // re-runs this).
        let window_open =
            self.next_seq <= self.last_exec + self.window && self.in_watermarks(self.next_seq);
        if let Some(&(_, at)) = self.pending.front() {
            let due = (at + self.batch_timeout_ns).saturating_sub(ctx.now());
            if window_open && due > 0 {
                self.batch_timer = Some(ctx.set_timer(due, PbftTimer::Batch));
            }
        }
    }

    fn propose(&mut self, ctx: &mut C<'_>, txs: &[TxRef]) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let view = self.view;
        let block = ctx.make_block(txs, None);
        let size = ctx.block_size_bytes(block);
        ctx.charge_hash(size);
        ctx.charge_sign();
        let size_bytes = HEADER_BYTES + DIGEST_BYTES + SIG_BYTES + size;
        self.slot(seq).pp = Some((view, block));
        self.note_log_len();
        let pp = |b: BlockRef| PbftMsg::PrePrepare {
            view,
            seq,
            block: b,
            digest_of: b,
            size_bytes,
        };
        match Self::byz(ctx) {
            None => ctx.broadcast(pp(block)),
            Some(ByzantineBehaviour::Withhold) => {
                let mut sent = 0;
                for i in 0..self.n {
                    let to = self.committee[i];
                    if to != self.me && sent < self.f {
                        ctx.send(to, pp(block));
                        sent += 1;
                    }
                }
            }
            Some(ByzantineBehaviour::Equivocate) => {
                let other = ctx.make_block(txs, None);
                ctx.charge_hash(size);
                ctx.charge_sign();
                let mut i = 0;
                for j in 0..self.n {
                    let to = self.committee[j];
                    if to == self.me {
                        continue;
                    }
                    let b = if i % 2 == 0 { block } else { other };
                    ctx.send(to, pp(b));
                    ctx.send(
                        to,
                        PbftMsg::Commit {
                            view,
                            seq,
                            block: b,
                        },
                    );
                    i += 1;
                }
            }
            Some(_) => {}
        }
    }

    // ----- normal case ---------------------------------------------------------

    /// Send a vote (prepare or commit) following this node's behaviour.
    fn send_vote(&mut self, ctx: &mut C<'_>, commit: bool, view: u64, seq: u64, block: BlockRef) {
        let mk = |b: BlockRef| {
            if commit {
                PbftMsg::Commit {
                    view,
                    seq,
                    block: b,
                }
            } else {
                PbftMsg::Prepare {
                    view,
                    seq,
                    block: b,
                }
            }
        };
        match Self::byz(ctx) {
            None => {
                ctx.charge_sign();
                ctx.broadcast(mk(block));
            }
            Some(ByzantineBehaviour::Equivocate) => {
                ctx.charge_sign();
                ctx.charge_sign();
                let fake = ctx.make_block(&[], None);
                let mut i = 0;
                for j in 0..self.n {
                    let to = self.committee[j];
                    if to == self.me {
                        continue;
                    }
                    ctx.send(to, mk(if i % 2 == 0 { block } else { fake }));
                    i += 1;
                }
            }
            Some(_) => {}
        }
    }

    fn accept_pre_prepare(&mut self, ctx: &mut C<'_>, view: u64, seq: u64, block: BlockRef) {
        if !self.in_watermarks(seq) {
            if seq > self.h + self.l {
                self.arm_catchup(ctx);
            }
            return;
        }
        let me = self.me;
        let primary = self.primary_of(view);
        let cap = self.vote_cap();
        let slot = self.slot(seq);
        if let Some((v, _)) = slot.pp {
            if v >= view {
                return; // duplicate or conflicting pre-prepare for (v, seq)
            }
        }
        slot.pp = Some((view, block));
        let send = me != primary;
        if send {
            add_vote(
                &mut slot.prepares,
                cap,
                Vote {
                    from: me,
                    view,
                    block,
                },
            );
        }
        self.note_log_len();
        if send {
            self.send_vote(ctx, false, view, seq, block);
        }
        self.check_prepared(ctx, seq);
    }

    fn check_prepared(&mut self, ctx: &mut C<'_>, seq: u64) {
        if !self.active() {
            return;
        }
        let view = self.view;
        let (me, q, cap) = (self.me, self.q, self.vote_cap());
        let Some(slot) = self.log.get_mut(seq) else {
            return;
        };
        let Some((v, b)) = slot.pp else {
            return;
        };
        if v != view || slot.sent_commit == Some(view) {
            return;
        }
        if count_matching(&slot.prepares, v, b) + 1 < q {
            return;
        }
        slot.prepared = Some((v, b));
        slot.sent_commit = Some(v);
        add_vote(
            &mut slot.commits,
            cap,
            Vote {
                from: me,
                view: v,
                block: b,
            },
        );
        self.send_vote(ctx, true, v, seq, b);
        self.check_committed(ctx, seq);
    }

    fn check_committed(&mut self, ctx: &mut C<'_>, seq: u64) {
        let q = self.q;
        let Some(slot) = self.log.get_mut(seq) else {
            return;
        };
        if slot.committed.is_some() {
            return;
        }
        // Every added commit is followed by this check, so before the last
        // one no (view, block) had `q` matching commits: only the last vote's
        // group can have reached `q` now.
        let found = slot
            .commits
            .last()
            .filter(|v| count_matching(&slot.commits, v.view, v.block) >= q)
            .map(|v| v.block);
        debug_assert_eq!(
            found.is_some(),
            slot.commits
                .iter()
                .any(|v| count_matching(&slot.commits, v.view, v.block) >= q),
            "a commit quorum formed without being checked"
        );
        if let Some(b) = found {
            slot.committed = Some(b);
            self.hi_committed = self.hi_committed.max(seq);
            self.try_execute(ctx);
        }
    }

    fn try_execute(&mut self, ctx: &mut C<'_>) {
        loop {
            let s = self.last_exec + 1;
            let Some(slot) = self.log.get(s) else {
                break;
            };
            let Some(b) = slot.committed else {
                break;
            };
            if !slot.has_body(b) {
                break;
            }
            self.execute(ctx, s, b);
        }
        if self.behind() {
            self.arm_catchup(ctx);
        }
        self.try_propose(ctx);
    }

    fn execute(&mut self, ctx: &mut C<'_>, seq: u64, block: BlockRef) {
        assert_eq!(seq, self.last_exec + 1, "pbft executes out of order");
        let txs = ctx.block_txs(block);
        let n_txs = txs.len();
        // Removing from an empty set is a no-op: skip the per-transaction
        // lookups where this replica holds nothing (queued is the primary's,
        // waiting a gateway's).
        if !self.waiting.is_empty() {
            self.waiting.remove_each(txs.iter().map(|tx| tx.id));
        }
        if !self.queued.is_empty() {
            self.queued.remove_each(txs.iter().map(|tx| tx.id));
        }
        self.recent_done.record(block, |b| ctx.block_txs(b));
        ctx.charge_execute(n_txs as u64);
        ctx.charge_hash(2 * DIGEST_BYTES);
        let d = ctx.block_digest(block);
        self.state_digest = fold_digest(&self.state_digest, &d);
        self.last_exec = seq;
        self.history.push_back((seq, block));
        while self.history.len() > MAX_HISTORY_BLOCKS {
            self.history.pop_front();
        }
        if ctx.byzantine().is_none() {
            ctx.commit(seq, block);
        }
        if self.view == self.nv_done && self.vc_target.is_none() {
            // Progress in the current view: the view-change backoff resets.
            self.vc_attempts = 0;
            if let Some(t) = self.vc_timer.take() {
                ctx.cancel_timer(t);
            }
        }
        if seq % self.k == 0 {
            let digest = self.state_digest;
            self.record_checkpoint(self.me, seq, digest);
            if !Self::silent(ctx) && ctx.byzantine() != Some(ByzantineBehaviour::Withhold) {
                ctx.charge_sign();
                ctx.broadcast(PbftMsg::Checkpoint {
                    seq,
                    digest: Box::new(digest),
                });
            }
            self.check_stable(ctx, seq);
        }
    }

    fn behind(&self) -> bool {
        debug_assert_eq!(
            self.hi_committed > self.last_exec,
            self.log
                .range(self.last_exec + 1, self.h + self.l)
                .any(|(_, s)| s.committed.is_some()),
            "hi_committed out of step with the log"
        );
        self.hi_committed > self.last_exec
            || self
                .checkpoints
                .range(self.last_exec + 1..)
                .any(|(_, v)| v.len() >= self.q)
    }

    // ----- checkpoints ---------------------------------------------------------

    fn record_checkpoint(&mut self, from: NodeId, seq: u64, digest: [u8; 32]) {
        if seq <= self.h {
            return;
        }
        if !self.checkpoints.contains_key(&seq) && self.checkpoints.len() >= MAX_PENDING_CHECKPOINTS
        {
            // Keep the highest ones: they tell a lagging replica how far behind it is.
            let lowest = *self.checkpoints.keys().next().expect("non-empty map");
            if lowest > seq {
                return;
            }
            self.checkpoints.remove(&lowest);
        }
        let v = self.checkpoints.entry(seq).or_default();
        if !v.iter().any(|(n, _)| *n == from) {
            v.push((from, digest));
        }
    }

    fn check_stable(&mut self, ctx: &mut C<'_>, seq: u64) {
        let Some(v) = self.checkpoints.get(&seq) else {
            return;
        };
        let mine = if seq <= self.last_exec && seq % self.k == 0 {
            v.iter().find(|(n, _)| *n == self.me).map(|x| x.1)
        } else {
            None
        };
        match mine {
            Some(d) => {
                if v.iter().filter(|(_, x)| *x == d).count() >= self.q {
                    self.make_stable(seq, d);
                    self.try_propose(ctx);
                }
            }
            None => {
                if seq > self.last_exec && v.len() >= self.q {
                    self.arm_catchup(ctx);
                }
            }
        }
    }

    fn make_stable(&mut self, seq: u64, digest: [u8; 32]) {
        if seq <= self.h {
            return;
        }
        self.log.drop_through(self.h, self.l, seq);
        self.h = seq;
        self.stable_digest = digest;
        self.checkpoints = self.checkpoints.split_off(&(seq + 1));
    }

    // ----- view change ---------------------------------------------------------

    fn start_view_change(&mut self, ctx: &mut C<'_>, new_view: u64) {
        if new_view <= self.view || self.vc_target.is_some_and(|t| t >= new_view) {
            return;
        }
        self.vc_target = Some(new_view);
        // Pre-prepares of views below the target can no longer be used.
        self.future_pp
            .retain(|(_, m)| matches!(m, PbftMsg::PrePrepare { view, .. } if *view >= new_view));
        for t in [
            self.batch_timer.take(),
            self.req_timer.take(),
            self.vc_timer.take(),
            self.suspect_timer.take(),
        ]
        .into_iter()
        .flatten()
        {
            ctx.cancel_timer(t);
        }
        let prepared: Vec<(u64, u64, BlockRef)> = self
            .log
            .range(self.h + 1, self.h + self.l)
            .filter_map(|(s, sl)| sl.prepared.map(|(v, b)| (s, v, b)))
            .collect();
        let q = self.q as u64;
        let size_bytes = HEADER_BYTES
            + SIG_BYTES
            + q * VOTE_BYTES
            + prepared.len() as u64
                * (HEADER_BYTES + DIGEST_BYTES + SIG_BYTES + (q - 1) * VOTE_BYTES);
        let vc = Arc::new(ViewChangeMsg {
            new_view,
            from: self.me,
            stable_seq: self.h,
            stable_digest: self.stable_digest,
            prepared,
            size_bytes,
        });
        self.store_vc(vc.clone());
        if !Self::silent(ctx) {
            ctx.charge_sign();
            ctx.broadcast(PbftMsg::ViewChange(vc));
        }
        let backoff = 1u64 << self.vc_attempts.min(MAX_BACKOFF_EXP);
        self.vc_timer = Some(ctx.set_timer(
            self.vc_timeout_ns * backoff,
            PbftTimer::ViewChange(new_view),
        ));
        ctx.set_timer(
            self.request_timeout_ns,
            PbftTimer::ViewChangeResend(new_view),
        );
        self.maybe_send_new_view(ctx, new_view);
    }

    fn store_vc(&mut self, vc: Arc<ViewChangeMsg>) {
        if vc.new_view <= self.view || vc.new_view > self.view + MAX_VC_VIEWS_AHEAD {
            return;
        }
        let v = self.vcs.entry(vc.new_view).or_default();
        if !v.iter().any(|x| x.from == vc.from) {
            v.push(vc);
        }
    }

    fn on_view_change(&mut self, ctx: &mut C<'_>, vc: Arc<ViewChangeMsg>) {
        ctx.charge_verify(1 + self.q as u64 + vc.prepared.len() as u64 * (self.q as u64 - 1));
        if vc.new_view <= self.view {
            return;
        }
        let target = vc.new_view;
        self.store_vc(vc);
        // Join rule: f + 1 replicas (other than me) want views above mine.
        let mut senders: Vec<(NodeId, u64)> = Vec::new();
        for (&v, list) in self.vcs.range(self.view + 1..) {
            for x in list {
                if x.from == self.me {
                    continue;
                }
                match senders.iter_mut().find(|(n, _)| *n == x.from) {
                    Some(e) => e.1 = e.1.max(v),
                    None => senders.push((x.from, v)),
                }
            }
        }
        if senders.len() > self.f {
            senders.sort_by_key(|s| std::cmp::Reverse(s.1));
            let join = senders[self.f].1;
            if self.vc_target.is_none_or(|t| t < join) {
                self.start_view_change(ctx, join);
            }
        }
        self.check_suspect(ctx);
        self.maybe_send_new_view(ctx, target);
    }

    /// A peer wants a higher view. Only gateways that forwarded requests have a
    /// request timer, and there may be `f` or fewer of them (clients pick few
    /// gateways), so the `f + 1` join rule alone may never fire. A backup
    /// therefore also joins (moves to `view + 1`) when it has itself not heard
    /// from the primary (no pre-prepare accepted in this view) for
    /// `request_timeout_ms`: its own evidence, like a request timer on a
    /// request the client re-sent to all replicas.
    fn check_suspect(&mut self, ctx: &mut C<'_>) {
        if !self.active() || self.is_primary() || Self::silent(ctx) {
            return;
        }
        let me = self.me;
        let suspected = self
            .vcs
            .range(self.view + 1..)
            .any(|(_, l)| l.iter().any(|x| x.from != me));
        if !suspected {
            return;
        }
        let due = self.last_primary_ns + self.request_timeout_ns;
        let now = ctx.now();
        if now >= due {
            self.start_view_change(ctx, self.view + 1);
        } else if self.suspect_timer.is_none() {
            self.suspect_timer = Some(ctx.set_timer(due - now, PbftTimer::Suspect));
        }
    }

    fn maybe_send_new_view(&mut self, ctx: &mut C<'_>, v: u64) {
        if self.primary_of(v) != self.me || self.vc_target != Some(v) || self.nv_done >= v {
            return;
        }
        let Some(list) = self.vcs.get(&v) else {
            return;
        };
        if list.len() < self.q {
            return;
        }
        let vcs: Vec<Arc<ViewChangeMsg>> = list[..self.q].to_vec();
        let (_, entries) = compute_o(&vcs, self.l);
        let o: Vec<(u64, BlockRef)> = entries
            .into_iter()
            .map(|(s, b)| (s, b.unwrap_or_else(|| ctx.make_block(&[], None))))
            .collect();
        let o_bytes = o.len() as u64 * (HEADER_BYTES + DIGEST_BYTES + SIG_BYTES);
        let size_bytes = HEADER_BYTES + SIG_BYTES + vcs.len() as u64 * VC_REF_BYTES + o_bytes;
        let full_size_bytes =
            HEADER_BYTES + SIG_BYTES + vcs.iter().map(|x| x.size_bytes).sum::<u64>() + o_bytes;
        let nv = Arc::new(NewViewMsg {
            view: v,
            vcs,
            o,
            size_bytes,
            full_size_bytes,
        });
        if Self::byz(ctx).is_none() || Self::byz(ctx) == Some(ByzantineBehaviour::Equivocate) {
            ctx.charge_sign();
            ctx.broadcast(PbftMsg::NewView {
                nv: nv.clone(),
                with_vcs: false,
            });
        }
        ctx.view_change();
        self.install_new_view(ctx, nv);
    }

    fn valid_new_view(&self, ctx: &C<'_>, nv: &NewViewMsg) -> bool {
        if nv.vcs.len() < self.q {
            return false;
        }
        let mut from: Vec<NodeId> = nv.vcs.iter().map(|x| x.from).collect();
        from.sort_unstable();
        from.dedup();
        if from.len() < self.q
            || nv
                .vcs
                .iter()
                .any(|x| x.new_view != nv.view || !self.committee.contains(&x.from))
        {
            return false;
        }
        let (_, entries) = compute_o(&nv.vcs, self.l);
        if entries.len() != nv.o.len() {
            return false;
        }
        entries.iter().zip(&nv.o).all(|(&(s, want), &(s2, got))| {
            s == s2
                && match want {
                    Some(b) => b == got,
                    None => ctx.block_txs(got).is_empty(),
                }
        })
    }

    /// Signatures to verify for the view-change messages of `nv` this replica
    /// has not received (and verified) itself; `None` if all are at hand.
    fn missing_vc_verifications(&self, nv: &NewViewMsg) -> Option<u64> {
        let have = self.vcs.get(&nv.view);
        let q = self.q as u64;
        let cost: u64 = nv
            .vcs
            .iter()
            .filter(|x| !have.is_some_and(|l| l.iter().any(|y| Arc::ptr_eq(x, y))))
            .map(|x| 1 + q + x.prepared.len() as u64 * (q - 1))
            .sum();
        (cost > 0).then_some(cost)
    }

    fn on_new_view(&mut self, ctx: &mut C<'_>, from: NodeId, nv: Arc<NewViewMsg>, with_vcs: bool) {
        ctx.charge_verify(1);
        if from != self.primary_of(nv.view)
            || nv.view < self.view
            || self.nv_done >= nv.view
            || self.vc_target.is_some_and(|t| t > nv.view)
        {
            return;
        }
        if let Some(cost) = self.missing_vc_verifications(&nv) {
            if !with_vcs {
                // The compact form names view-changes this replica never got:
                // fetch the full new-view once from the new primary.
                if self.nv_fetch != Some(nv.view) && !Self::silent(ctx) {
                    self.nv_fetch = Some(nv.view);
                    ctx.charge_sign();
                    ctx.send(from, PbftMsg::NewViewRequest { view: nv.view });
                }
                return;
            }
            ctx.charge_verify(cost);
        }
        if !self.valid_new_view(ctx, &nv) {
            return;
        }
        self.install_new_view(ctx, nv);
    }

    fn install_new_view(&mut self, ctx: &mut C<'_>, nv: Arc<NewViewMsg>) {
        let was_primary = self.is_primary();
        self.view = nv.view;
        self.nv_done = nv.view;
        self.vc_target = None;
        self.nv_fetch = None;
        self.catchup_fruitless = 0;
        self.last_primary_ns = ctx.now();
        if let Some(t) = self.suspect_timer.take() {
            ctx.cancel_timer(t);
        }
        if let Some(t) = self.vc_timer.take() {
            ctx.cancel_timer(t);
        }
        self.vcs = self.vcs.split_off(&(self.view + 1));
        let (min_s, _) = compute_o(&nv.vcs, self.l);
        let max_s = nv.o.last().map_or(min_s, |x| x.0);
        // Keep the view-change timer running until something executes in this view.
        let backoff = 1u64 << self.vc_attempts.min(MAX_BACKOFF_EXP);
        self.vc_timer = Some(ctx.set_timer(
            self.vc_timeout_ns * backoff,
            PbftTimer::ViewChange(self.view),
        ));
        self.vc_attempts += 1;
        for &(seq, b) in &nv.o {
            self.accept_pre_prepare(ctx, self.view, seq, b);
        }
        // Pre-prepares of this view that arrived before the new-view.
        let future = std::mem::take(&mut self.future_pp);
        for (from, m) in future {
            if let PbftMsg::PrePrepare { view, .. } = m {
                if view == self.view {
                    self.on_message_inner(ctx, from, m);
                } else if view > self.view {
                    self.future_pp.push((from, m));
                }
            }
        }
        let o_txs: FxHashSet<u32> =
            nv.o.iter()
                .flat_map(|&(_, b)| ctx.block_txs(b).iter().map(|t| t.id))
                .collect();
        if self.is_primary() {
            self.next_seq = max_s.max(self.h) + 1;
            self.queued.clear();
            for &id in &o_txs {
                self.queued.insert(id);
            }
            for &(tx, _) in &self.pending {
                self.queued.insert(tx.id);
            }
            // Take over my own forwarded-but-unexecuted requests.
            let mine = self.waiting_txs();
            self.waiting.clear();
            self.waiting_order.clear();
            self.fwd_buf.clear();
            if let Some(t) = self.req_timer.take() {
                ctx.cancel_timer(t);
            }
            for tx in mine {
                if !o_txs.contains(&tx.id) {
                    self.enqueue(ctx, tx);
                }
            }
        } else {
            if was_primary {
                let old: Vec<TxRef> = self.pending.drain(..).map(|(t, _)| t).collect();
                self.pending_bytes = 0;
                self.queued.clear();
                for tx in old {
                    if !o_txs.contains(&tx.id) {
                        self.add_waiting(ctx, tx);
                    }
                }
            }
            // Re-forward what the old primary did not get executed.
            let mut again = self.waiting_txs();
            again.retain(|t| !o_txs.contains(&t.id));
            let now = ctx.now();
            self.fwd_buf.clear();
            self.waiting_order.clear();
            for tx in again {
                self.waiting_order.push_back((tx, now));
                self.fwd_buf.push(tx);
            }
            for &(_, b) in &nv.o {
                for t in ctx.block_txs(b) {
                    if self.waiting.contains(t.id) {
                        self.waiting_order.push_back((*t, now));
                    }
                }
            }
            if let Some(t) = self.req_timer.take() {
                ctx.cancel_timer(t);
            }
            if !self.waiting.is_empty() {
                self.req_timer = Some(ctx.set_timer(self.request_timeout_ns, PbftTimer::Request));
            }
            self.flush_forward(ctx);
        }
        self.last_nv = Some(nv);
        if min_s > self.last_exec {
            self.arm_catchup(ctx);
        }
        self.try_execute(ctx);
    }

    // ----- state transfer ------------------------------------------------------

    fn arm_catchup(&mut self, ctx: &mut C<'_>) {
        if self.catchup_timer.is_none() {
            self.catchup_mark = self.last_exec;
            self.catchup_timer =
                Some(ctx.set_timer(self.state_delay_ns.max(1), PbftTimer::CatchUp));
        }
    }

    fn request_state(&mut self, ctx: &mut C<'_>) {
        if Self::silent(ctx) {
            return;
        }
        self.catchup_attempt = self.catchup_attempt.wrapping_add(1);
        let others = self.n - 1;
        let mut k = self.catchup_attempt as usize % others;
        let mut body_server = self.me;
        for &c in &self.committee {
            if c == self.me {
                continue;
            }
            if k == 0 {
                body_server = c;
                break;
            }
            k -= 1;
        }
        ctx.charge_sign();
        ctx.broadcast(PbftMsg::StateRequest {
            from_seq: self.last_exec + 1,
            body_server,
            view: self.nv_done,
        });
        self.vouch = self.vouch.split_off(&(self.last_exec + 1));
        self.snapshots.clear();
    }

    fn on_state_request(
        &mut self,
        ctx: &mut C<'_>,
        from: NodeId,
        from_seq: u64,
        body_server: NodeId,
        their_view: u64,
    ) {
        ctx.charge_verify(1);
        if Self::silent(ctx) {
            return;
        }
        let mut entries = Vec::new();
        let mut body_bytes = 0;
        if let Some(&(first, _)) = self.history.front() {
            if from_seq >= first {
                let start = (from_seq - first) as usize;
                for &(s, b) in self
                    .history
                    .iter()
                    .skip(start)
                    .take(MAX_STATE_REPLY_BLOCKS as usize)
                {
                    entries.push((s, b));
                    if body_server == self.me {
                        body_bytes += ctx.block_size_bytes(b);
                    }
                }
            }
        }
        // A new-view is self-certifying: one copy (from the body server, and
        // only to a replica in a lower view) is enough. It goes in full, as the
        // requester missed the view change.
        let nv = self
            .last_nv
            .clone()
            .filter(|nv| nv.view == self.view && nv.view > their_view && body_server == self.me);
        let size_bytes = HEADER_BYTES
            + SIG_BYTES
            + DIGEST_BYTES
            + q_bytes(self.q)
            + entries.len() as u64 * STATE_ENTRY_BYTES
            + body_bytes
            + nv.as_ref().map_or(0, |x| x.full_size_bytes);
        ctx.charge_sign();
        ctx.send(
            from,
            PbftMsg::StateReply(Arc::new(StateReplyMsg {
                view: self.view,
                snapshot_seq: self.h,
                snapshot_digest: self.stable_digest,
                entries,
                new_view: nv,
                size_bytes,
            })),
        );
    }

    fn on_state_reply(&mut self, ctx: &mut C<'_>, from: NodeId, r: Arc<StateReplyMsg>) {
        ctx.charge_verify(1);
        // Join a higher view through its (verified) new-view.
        if let Some(nv) = &r.new_view {
            if nv.view > self.view
                && self.nv_done < nv.view
                && self.vc_target.is_none_or(|t| t <= nv.view)
                && self.valid_new_view(ctx, nv)
            {
                let cost = self.missing_vc_verifications(nv).unwrap_or(0);
                ctx.charge_verify(1 + cost);
                self.install_new_view(ctx, nv.clone());
            }
        }
        let limit = self.last_exec + MAX_STATE_REPLY_BLOCKS;
        for &(s, b) in &r.entries {
            if s <= self.last_exec || s > limit {
                continue;
            }
            let v = self.vouch.entry(s).or_default();
            if !v.iter().any(|x| x.0 == from) && v.len() < self.n {
                v.push((from, b));
            }
        }
        if r.snapshot_seq > self.last_exec
            && !self.snapshots.iter().any(|x| x.0 == from)
            && self.snapshots.len() < self.n
        {
            self.snapshots
                .push((from, r.snapshot_seq, r.snapshot_digest));
        }
        let mut progressed = false;
        loop {
            let s = self.last_exec + 1;
            let Some(v) = self.vouch.get(&s) else {
                break;
            };
            let mut chosen = None;
            for &(_, b) in v {
                if v.iter().filter(|x| x.1 == b).count() > self.f {
                    chosen = Some(b);
                    break;
                }
            }
            let Some(b) = chosen else {
                break;
            };
            ctx.charge_hash(ctx.block_size_bytes(b));
            self.execute(ctx, s, b);
            self.vouch.remove(&s);
            progressed = true;
        }
        // Too far behind for the peers' history: jump to a vouched checkpoint.
        if !self.vouch.contains_key(&(self.last_exec + 1)) {
            let mut best: Option<(u64, [u8; 32])> = None;
            for &(_, s, d) in &self.snapshots {
                let c = self
                    .snapshots
                    .iter()
                    .filter(|x| x.1 == s && x.2 == d)
                    .count();
                if c > self.f && s > self.last_exec && best.is_none_or(|b| s > b.0) {
                    best = Some((s, d));
                }
            }
            if let Some((s, d)) = best {
                if r.entries.is_empty() {
                    self.last_exec = s;
                    self.state_digest = d;
                    self.history.clear();
                    self.make_stable(s, d);
                    self.snapshots.clear();
                    progressed = true;
                }
            }
        }
        if progressed {
            self.vouch = self.vouch.split_off(&(self.last_exec + 1));
            self.try_execute(ctx);
        }
    }

    fn on_message_inner(&mut self, ctx: &mut C<'_>, from: NodeId, msg: PbftMsg) {
        match msg {
            PbftMsg::Forward { txs, .. } => {
                ctx.charge_verify(1);
                if self.is_primary() && self.active() {
                    self.enqueue_batch(ctx, &txs);
                }
            }
            PbftMsg::PrePrepare {
                view,
                seq,
                block,
                digest_of,
                size_bytes,
            } => {
                ctx.charge_verify(1);
                ctx.charge_hash(size_bytes.saturating_sub(HEADER_BYTES + DIGEST_BYTES + SIG_BYTES));
                let forged =
                    digest_of != block && ctx.block_digest(digest_of) != ctx.block_digest(block);
                if forged || from != self.primary_of(view) {
                    return;
                }
                if view > self.view || (view == self.view && self.nv_done < view) {
                    if self.future_pp.len() < MAX_FUTURE_PRE_PREPARES
                        && view <= self.view + MAX_VC_VIEWS_AHEAD
                    {
                        self.future_pp.push((
                            from,
                            PbftMsg::PrePrepare {
                                view,
                                seq,
                                block,
                                digest_of,
                                size_bytes: 0,
                            },
                        ));
                    }
                    self.arm_catchup(ctx);
                    return;
                }
                if view < self.view || !self.active() {
                    return;
                }
                self.last_primary_ns = ctx.now();
                self.accept_pre_prepare(ctx, view, seq, block);
            }
            PbftMsg::Prepare { view, seq, block } => {
                ctx.charge_verify(1);
                if !self.in_watermarks(seq)
                    || from == self.primary_of(view)
                    || view + MAX_VOTE_VIEWS as u64 <= self.view
                {
                    return;
                }
                let cap = self.vote_cap();
                if add_vote(
                    &mut self.slot(seq).prepares,
                    cap,
                    Vote { from, view, block },
                ) {
                    self.note_log_len();
                    self.check_prepared(ctx, seq);
                }
            }
            PbftMsg::Commit { view, seq, block } => {
                ctx.charge_verify(1);
                if !self.in_watermarks(seq) || seq <= self.last_exec {
                    if seq > self.h + self.l {
                        self.arm_catchup(ctx);
                    }
                    return;
                }
                let cap = self.vote_cap();
                if add_vote(&mut self.slot(seq).commits, cap, Vote { from, view, block }) {
                    self.note_log_len();
                    self.check_committed(ctx, seq);
                }
            }
            PbftMsg::Checkpoint { seq, digest } => {
                ctx.charge_verify(1);
                self.record_checkpoint(from, seq, *digest);
                self.check_stable(ctx, seq);
            }
            PbftMsg::ViewChange(vc) => self.on_view_change(ctx, vc),
            PbftMsg::NewView { nv, with_vcs } => self.on_new_view(ctx, from, nv, with_vcs),
            PbftMsg::NewViewRequest { view } => {
                ctx.charge_verify(1);
                if Self::silent(ctx) || ctx.byzantine() == Some(ByzantineBehaviour::Withhold) {
                    return;
                }
                if let Some(nv) = self.last_nv.clone() {
                    if nv.view == view && self.primary_of(view) == self.me {
                        ctx.charge_sign();
                        ctx.send(from, PbftMsg::NewView { nv, with_vcs: true });
                    }
                }
            }
            PbftMsg::StateRequest {
                from_seq,
                body_server,
                view,
            } => self.on_state_request(ctx, from, from_seq, body_server, view),
            PbftMsg::StateReply(r) => self.on_state_reply(ctx, from, r),
        }
    }
}

fn q_bytes(q: usize) -> u64 {
    q as u64 * VOTE_BYTES
}

impl Replica for PbftReplica {
    type Msg = PbftMsg;
    type Timer = PbftTimer;

    const PREFETCH_HINTS: bool = true;

    #[inline]
    fn prefetch_for(&self, msg: &PbftMsg) {
        // The log slot a vote or pre-prepare reads first: its header line, and the
        // votes it adds to.
        let (seq, votes) = match msg {
            PbftMsg::Prepare { seq, .. } => (*seq, Some(false)),
            PbftMsg::Commit { seq, .. } => (*seq, Some(true)),
            PbftMsg::PrePrepare { seq, .. } => (*seq, None),
            _ => return,
        };
        let slot = &self.log.ring[self.log.index(seq)];
        prefetch(slot);
        match votes {
            Some(false) => prefetch_lines(&slot.prepares),
            Some(true) => prefetch_lines(&slot.commits),
            None => {}
        }
    }

    fn on_start(&mut self, _ctx: &mut C<'_>) {}

    fn on_client_tx(&mut self, ctx: &mut C<'_>, tx: TxRef) {
        ctx.charge_verify(1);
        if Self::silent(ctx) {
            return;
        }
        if self.is_primary() && self.active() {
            self.enqueue(ctx, tx);
        } else {
            self.add_waiting(ctx, tx);
            self.buffer_forward(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut C<'_>, from: NodeId, msg: PbftMsg) {
        self.on_message_inner(ctx, from, msg);
    }

    fn on_timer(&mut self, ctx: &mut C<'_>, timer: PbftTimer) {
        match timer {
            PbftTimer::Batch => {
                self.batch_timer = None;
                self.try_propose(ctx);
            }
            PbftTimer::Forward => {
                self.fwd_timer = None;
                self.flush_forward(ctx);
            }
            PbftTimer::Request => {
                self.req_timer = None;
                while let Some(&(tx, _)) = self.waiting_order.front() {
                    if self.waiting.contains(tx.id) {
                        break;
                    }
                    self.waiting_order.pop_front();
                }
                let Some(&(_, at)) = self.waiting_order.front() else {
                    return;
                };
                if self.vc_target.is_some() {
                    return; // the view-change timer is in charge
                }
                let due = at + self.request_timeout_ns;
                if ctx.now() >= due {
                    if !self.is_primary() {
                        self.start_view_change(ctx, self.view + 1);
                    }
                } else {
                    self.req_timer = Some(ctx.set_timer(due - ctx.now(), PbftTimer::Request));
                }
            }
            PbftTimer::ViewChangeResend(v) => {
                // Channels are not reliable (loss, partitions): while the view
                // change to v is pending, re-send our VIEW-CHANGE every request
                // timeout, so that a partition healing mid-way does not leave the
                // others waiting for a message that was dropped until our
                // (exponentially backed-off) view-change timer moves us on.
                if self.vc_target == Some(v) && !Self::silent(ctx) {
                    let mine = self
                        .vcs
                        .get(&v)
                        .and_then(|l| l.iter().find(|x| x.from == self.me).cloned());
                    if let Some(vc) = mine {
                        ctx.broadcast(PbftMsg::ViewChange(vc));
                        ctx.set_timer(self.request_timeout_ns, PbftTimer::ViewChangeResend(v));
                    }
                }
            }
            PbftTimer::ViewChange(v) => {
                self.vc_timer = None;
                // Stuck: no new-view for v, or v installed but nothing executed
                // while requests wait.
                let stuck = self.vc_target == Some(v)
                    || (self.vc_target.is_none()
                        && self.view == v
                        && self.vc_attempts > 0
                        && !self.waiting.is_empty());
                if stuck {
                    self.vc_attempts += 1;
                    let next = v + 1;
                    self.vc_target = None;
                    self.start_view_change(ctx, next);
                }
            }
            PbftTimer::Suspect => {
                self.suspect_timer = None;
                self.check_suspect(ctx);
            }
            PbftTimer::CatchUp => {
                self.catchup_timer = None;
                let progressed = self.last_exec > self.catchup_mark;
                if progressed {
                    self.catchup_fruitless = 0;
                }
                // Pre-prepares of a view this replica could still install.
                let floor = self
                    .vc_target
                    .unwrap_or(self.nv_done + 1)
                    .max(self.nv_done + 1);
                let future_view = self
                    .future_pp
                    .iter()
                    .any(|(_, m)| matches!(m, PbftMsg::PrePrepare { view, .. } if *view >= floor));
                if progressed && self.behind() {
                    // Still progressing on its own: look again later.
                    self.arm_catchup(ctx);
                } else if self.behind() || future_view {
                    self.request_state(ctx);
                    // Back off while requests bring nothing (bounded).
                    let exp = self.catchup_fruitless.min(MAX_CATCHUP_BACKOFF_EXP);
                    self.catchup_fruitless = self.catchup_fruitless.saturating_add(1);
                    self.catchup_mark = self.last_exec;
                    self.catchup_timer = Some(
                        ctx.set_timer((4 * self.state_delay_ns.max(1)) << exp, PbftTimer::CatchUp),
                    );
                }
            }
        }
    }

    fn on_recover(&mut self, ctx: &mut C<'_>) {
        // Volatile state is gone (timers already are).
        self.pending.clear();
        self.pending_bytes = 0;
        self.queued.clear();
        self.fwd_buf.clear();
        self.waiting.clear();
        self.waiting_order.clear();
        self.vcs.clear();
        self.vouch.clear();
        self.snapshots.clear();
        self.future_pp.clear();
        self.batch_timer = None;
        self.fwd_timer = None;
        self.req_timer = None;
        self.vc_timer = None;
        self.catchup_timer = None;
        self.suspect_timer = None;
        self.nv_fetch = None;
        self.catchup_fruitless = 0;
        if let Some(v) = self.vc_target.take() {
            // Resume the interrupted view change.
            self.start_view_change(ctx, v);
        }
        self.request_state(ctx);
        self.catchup_timer =
            Some(ctx.set_timer(4 * self.state_delay_ns.max(1), PbftTimer::CatchUp));
    }
}

#[cfg(test)]
mod tests {
    use super::{
        BlockRef, RecentDone, Slot, SlotLog, TxRef, Vote, Votes, INLINE_VOTES, MAX_RECENT_DONE,
        MAX_RECENT_DONE_BACKLOG_TXS,
    };
    use crate::idset::IdSet;
    use std::collections::{BTreeMap, VecDeque};

    /// The lazily folded recent-done set answers every lookup as the eager
    /// one (insert each executed id, then evict the oldest beyond
    /// `MAX_RECENT_DONE`) does: across evictions, duplicate executions, empty
    /// blocks, backlog-limit folds and lookups of old, recent and fresh ids.
    #[test]
    fn recent_done_matches_the_eager_set() {
        let mut blocks: Vec<Vec<TxRef>> = Vec::new();
        let mut lazy = RecentDone::default();
        let (mut eager, mut order) = (IdSet::new(), VecDeque::new());
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next_id = 0u32;
        let total = 3 * MAX_RECENT_DONE + MAX_RECENT_DONE_BACKLOG_TXS;
        while (next_id as usize) < total {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // A block of up to 150 ids, shuffled a little, sometimes with a
            // re-executed old id or an empty body.
            let n = (x % 151) as u32;
            let mut txs: Vec<TxRef> = (0..n)
                .map(|i| TxRef {
                    id: next_id + (i ^ ((x >> 20) as u32 % 4)).min(n - 1),
                    size_bytes: 1,
                })
                .collect();
            next_id += n;
            if x % 7 == 0 && next_id > 10 {
                txs.push(TxRef {
                    id: next_id - 1 - (x >> 30) as u32 % next_id.min(100_000),
                    size_bytes: 1,
                });
            }
            blocks.push(txs);
            let b = BlockRef(blocks.len() as u32 - 1);
            let txs_of = |b: BlockRef| blocks[b.0 as usize].as_slice();
            for tx in txs_of(b) {
                if eager.insert(tx.id) {
                    order.push_back(tx.id);
                }
            }
            while order.len() > MAX_RECENT_DONE {
                let id = order.pop_front().expect("non-empty");
                eager.remove(id);
            }
            lazy.record(b, txs_of);
            // Mostly fresh-id lookups (no fold), sometimes old or recent ones.
            for k in 0..3u64 {
                let probe = match (x >> (40 + k)) % 4 {
                    0 => next_id + 5,
                    1 => next_id.saturating_sub(1 + (x >> 8) as u32 % 200),
                    2 => next_id.saturating_sub((x >> 12) as u32 % (2 * MAX_RECENT_DONE as u32)),
                    _ => next_id + 1_000,
                };
                if (x >> 50) % 5 != 0 || k == 0 {
                    assert_eq!(
                        lazy.contains(probe, txs_of),
                        eager.contains(probe),
                        "id {probe} after block {}",
                        b.0
                    );
                }
            }
            assert!(lazy.backlog_txs < MAX_RECENT_DONE_BACKLOG_TXS);
        }
        let txs_of = |b: BlockRef| blocks[b.0 as usize].as_slice();
        for probe in 0..next_id + 10 {
            assert_eq!(lazy.contains(probe, txs_of), eager.contains(probe));
        }
        assert_eq!(lazy.order, order);
    }

    /// The ring log holds exactly what a `BTreeMap<u64, Slot>` restricted to
    /// the watermark window `(h, h + l]` would, across slot creation, vote
    /// updates, watermark advances (small steps, and jumps past the whole
    /// window as after a state-transfer snapshot) and window sizes that are
    /// and are not powers of two.
    #[test]
    fn ring_log_matches_a_btree_map() {
        for l in [1u64, 3, 8, 10, 256, 300] {
            let mut ring = SlotLog::new(l);
            let mut model: BTreeMap<u64, u64> = BTreeMap::new(); // seq -> votes
            let mut h = 0u64;
            let mut x: u64 = 0x2545_F491_4F6C_DD1D ^ l;
            for step in 0..20_000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 10 {
                    0 => {
                        // Advance the low watermark (sometimes past the window).
                        let jump = if x % 97 == 0 {
                            3 * l + 5
                        } else {
                            1 + (x >> 8) % l
                        };
                        let new_h = h + jump;
                        ring.drop_through(h, l, new_h);
                        model = model.split_off(&(new_h + 1));
                        h = new_h;
                    }
                    1 if step % 1000 == 0 => {
                        ring.clear();
                        model.clear();
                    }
                    _ => {
                        let seq = h + 1 + (x >> 16) % l;
                        let slot = ring.entry(seq);
                        slot.prepares.push(Vote {
                            from: 0,
                            view: 0,
                            block: BlockRef(0),
                        });
                        *model.entry(seq).or_default() += 1;
                    }
                }
                assert_eq!(ring.len, model.len(), "l = {l}, step {step}");
                let got: Vec<(u64, usize)> = ring
                    .range(h + 1, h + l)
                    .map(|(s, sl)| (s, sl.prepares.len()))
                    .collect();
                let want: Vec<(u64, usize)> =
                    model.iter().map(|(&s, &n)| (s, n as usize)).collect();
                assert_eq!(got, want, "l = {l}, step {step}");
                let probe = h + (x >> 24) % (2 * l + 2);
                assert_eq!(
                    ring.get(probe).map(|s| s.prepares.len()),
                    model.get(&probe).map(|&n| n as usize)
                );
            }
        }
    }

    /// The slot layout the doc comment promises: six cache lines with the votes inline.
    #[test]
    fn slot_is_six_cache_lines_header_first() {
        assert_eq!(std::mem::size_of::<Slot>(), 6 * 64);
        // The fields every message checks first share the first line.
        let pp_end =
            std::mem::offset_of!(Slot, pp) + std::mem::size_of::<Option<(u64, BlockRef)>>();
        assert!(pp_end <= 64, "slot header ends at byte {pp_end}");
    }

    /// Votes beyond the inline ones move to the heap and keep their order; a
    /// cleared list is inline again.
    #[test]
    fn votes_spill_in_order_and_clear() {
        let mut v = Votes::default();
        let vote = |i: u32| Vote {
            from: i,
            view: u64::from(i % 3),
            block: BlockRef(i),
        };
        for i in 0..20 {
            v.push(vote(i));
            assert_eq!(v.len(), i as usize + 1);
            assert!(v.iter().enumerate().all(|(j, x)| x.from == j as u32));
            assert_eq!(v.spilled.is_some(), i as usize >= INLINE_VOTES);
        }
        v.retain(|x| x.view != 1);
        let kept: Vec<u32> = v.iter().map(|x| x.from).collect();
        let want: Vec<u32> = (0..20).filter(|i| i % 3 != 1).collect();
        assert_eq!(kept, want);
        v.clear();
        assert!(v.is_empty() && v.spilled.is_none());
        for i in 0..5 {
            v.push(vote(i));
        }
        v.retain(|x| x.from % 2 == 0);
        assert_eq!(v.iter().map(|x| x.from).collect::<Vec<_>>(), vec![0, 2, 4]);
    }

    /// A reused slot starts empty.
    #[test]
    fn reused_slot_is_reset() {
        let mut ring = SlotLog::new(4);
        let s = ring.entry(3);
        s.committed = Some(BlockRef(7));
        s.commits.push(Vote {
            from: 1,
            view: 2,
            block: BlockRef(7),
        });
        ring.drop_through(0, 4, 3);
        assert!(ring.get(3).is_none());
        let s: &Slot = ring.entry(7);
        assert!(s.committed.is_none() && s.commits.is_empty() && s.pp.is_none());
        assert_eq!(ring.len, 1);
    }
}
