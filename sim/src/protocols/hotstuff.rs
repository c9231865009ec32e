//! `hotstuff`: chained HotStuff (Yin, Malkhi, Reiter, Gueta, Abraham, PODC 2019).
//!
//! # Protocol
//! - **Views and leaders.** The leader of view `v` is `committee[v mod n]`
//!   (round-robin). Each view the leader proposes one block that extends the block
//!   of its highest quorum certificate (`highQC`) and carries that QC (`justify`).
//! - **Votes (linear).** A replica votes for the proposal of view `v` at most once
//!   and only if it passes the safety rule: the block extends the locked block, or
//!   its justify QC is of a higher view than the lock. The vote goes only to the
//!   leader of view `v + 1`, which forms a QC from `2f + 1` votes (`n = 3f + 1`,
//!   `f = (n - 1) / 3`) and proposes the next block with it.
//! - **Chaining.** A replica accepting block `b*` with `justify = QC(b'')`, where
//!   `b''.parent = b'` and `b'.parent = b`, sets `highQC = QC(b'')`, locks on `b'`
//!   and, when `b`, `b'`, `b''` were proposed in three consecutive views, commits
//!   `b` and every uncommitted ancestor in height order. Heights are chain heights
//!   (genesis = 0, so committed heights are dense from 1). Replicas only vote for a
//!   block whose parent is the block its justify certifies (what honest leaders
//!   propose), which makes every accepted chain link a direct parent link.
//! - **Pacemaker.** Each view has a timer of `view_timeout_ms * 2^k` where `k` is
//!   the number of consecutive timeouts without a new QC (capped at
//!   `max_backoff_exp`). On a timeout the replica broadcasts a NEW-VIEW for the
//!   next view (a timeout message: it carries its `highQC` and last vote, see
//!   below) and stays in its view, repeating the NEW-VIEW every
//!   `view_timeout_ms`, until a QC or a timeout certificate moves it on (the
//!   DiemBFT pacemaker). A NEW-VIEW for `w` says its sender is done with every
//!   view below `w`; `2f + 1` members at `w` or higher form a timeout
//!   certificate and every replica that sees them enters `w`, so replicas that
//!   drifted apart line up again. A replica that sees `f + 1` others at `w` or
//!   higher announces `w` too (Bracha's amplification: at least one correct
//!   replica gave up, and replicas that left a view by voting for a withheld
//!   proposal still complete the certificate). Timeouts are only broadcast on
//!   a timeout: the normal case stays linear. A replica suspects a leader whose
//!   view timed out until it hears from it again (a proposal, vote or NEW-VIEW;
//!   not a transaction forward, which a withholding leader keeps sending); the views of a suspected leader time out after
//!   `view_timeout_ms / SUSPECT_TIMEOUT_DIVISOR` (times the backoff), so a crashed
//!   member costs one short wait per rotation instead of a full timeout. The leader of `v` proposes once it holds a QC of view `v - 1`, or once
//!   `2f + 1` distinct replicas took part in entering `v` (a vote for view `v - 1`
//!   sent to it counts as that voter's NEW-VIEW, as in the paper where the vote
//!   plays the NEW-VIEW's role in chained HotStuff). A leader that proposes without
//!   a QC of the previous view has completed a view change and counts it
//!   ([`Ctx::view_change`]): one count per view change, not one per replica.
//! - **Votes carried by NEW-VIEW.** A NEW-VIEW carries the sender's last vote if it
//!   is newer than its `highQC`, so the next leader can still form the QC whose
//!   votes were sent to a crashed leader. Without it, round-robin chained HotStuff
//!   needs four consecutive honest leaders to commit (three certified consecutive
//!   views plus the leader that assembles the third QC) and never commits at
//!   `n = 4` with one crashed node. The QC is the same `2f + 1` signed votes, so
//!   safety is unchanged and messages stay linear.
//! - **Mempool.** A gateway verifies its clients' transactions, keeps them in its
//!   own pool and forwards them in batches (every `mempool_batch_ms` or a full
//!   block) to the leaders of the next `mempool_fanout` views. Every gateway leads
//!   a view every `n` views, so its own transactions are proposed even if the
//!   leaders it forwarded to crash. A leader excludes transactions already in its
//!   uncommitted ancestor chain; committed transactions leave every pool and are
//!   remembered (bounded) so late forwards are dropped.
//!   Admission control: a gateway takes a new client transaction only while it
//!   has fewer than `ADMIT_BACKLOG_BLOCKS * block_max_tx / n` of its own
//!   uncommitted (at least one block's worth); beyond the shard's capacity (one
//!   block per view) the excess is dropped at the edge, so throughput plateaus
//!   with a bounded latency instead of the backlog growing without bound.
//! - **Batching.** A ready leader proposes at once if it has pending transactions
//!   or its chain has uncommitted transactions (empty blocks drive the pipeline);
//!   otherwise it proposes when the first transaction arrives, or after
//!   `batch_timeout_ms` with an empty block (which keeps idle views from timing
//!   out). In a pipelined protocol the batch is what arrived during the last view.
//! - **Sync and recovery.** Proposals, QCs or NEW-VIEWs that reference an unknown
//!   block trigger a block request to the sender (after `view_timeout / 8`, in
//!   case the block's own proposal is only overtaken by jitter), answered with the
//!   lowest [`MAX_SYNC_BLOCKS`] ancestors above the requester's committed height
//!   (their bytes and the QCs inside them are charged and verified), so that each
//!   answer links; a replica still missing blocks asks again. A recovered replica keeps its durable state (view,
//!   last vote, lock, highQC, block tree, committed chain), drops its pool and
//!   tallies, and catches up through sync; it derives commits from the synced
//!   blocks' QCs itself.
//! - **Byzantine leaders.** `equivocate`: proposes two different blocks for its
//!   view to the two halves of the committee and votes for both. `withhold` (and
//!   `selfish-mine`): sends its proposal only to `f` peers and sends no votes and
//!   no NEW-VIEWs. `silent`: sends nothing at all. Byzantine replicas never call
//!   [`Ctx::commit`].
//!
//! # Costs and sizes
//! Proposals, votes, NEW-VIEWs and transaction batches are signed
//! ([`Ctx::charge_sign`]) and verified on receipt ([`Ctx::charge_verify`]); a QC is
//! verified as `2f + 1` individual signatures (as in the paper's evaluation) or,
//! with `aggregate_qc = true`, as one aggregate signature. Blocks are hashed on
//! creation and receipt. Sizes: proposal = header + signature + QC (`2f + 1` ×
//! (64 B signature + 4 B signer id), or one 64 B aggregate plus a signer bitmap) +
//! block bytes; vote = header + signature (112 B).
//!
//! # Parameters (`[protocol.hotstuff]`)
//! - `view_timeout_ms = 1000`: base view timeout; covers a WAN view (proposal
//!   one-way + vote one-way, up to about 2 × 145 ms with the default regions) with
//!   margin.
//! - `max_backoff_exp = 6`: the timeout doubles per consecutive timeout up to 64×.
//! - `aggregate_qc = false`: QCs as `2f + 1` signatures (true: one aggregate).
//! - `mempool_fanout = 2`: upcoming leaders a gateway forwards its batches to.
//! - `mempool_batch_ms = 10`: longest a gateway holds transactions before forwarding.

use crate::idset::IdSet;
use crate::kernel::NS_PER_MS;
use crate::protocol::{
    BlockRef, ByzantineBehaviour, Ctx, Message, NodeId, Protocol, Replica, TimerId, TxRef,
};
use crate::scenario::{Scenario, ScenarioError};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};

/// Bytes of a message header: type, view, sender, block digest.
pub const MSG_HEADER_BYTES: u64 = 48;
/// Bytes of one signature.
pub const SIG_BYTES: u64 = 64;
/// Bytes identifying a signer inside a QC of individual signatures.
pub const SIGNER_ID_BYTES: u64 = 4;
/// Bytes of a QC besides its signatures: block digest and view.
pub const QC_HEADER_BYTES: u64 = 40;
/// Bytes of a vote: header plus signature.
pub const VOTE_BYTES: u64 = MSG_HEADER_BYTES + SIG_BYTES;
/// Bytes of a block request.
pub const BLOCK_REQUEST_BYTES: u64 = MSG_HEADER_BYTES + 8;
/// Per-block bytes in a sync response besides the block and its QC: view, height.
pub const SYNC_BLOCK_OVERHEAD_BYTES: u64 = 16;
/// Most transactions one replica's pool holds; further arrivals are dropped.
pub const MAX_POOL_TXS: usize = 200_000;
/// Admission control: a gateway accepts a new client transaction only while its
/// own uncommitted client transactions number fewer than
/// `ADMIT_BACKLOG_BLOCKS * block_max_tx / n` (at least one block's worth), so
/// the shard's backlog stays about this many blocks. Chained HotStuff commits
/// one block per view; beyond that capacity the excess is shed at the edge (a
/// full mempool) instead of queueing without bound, which made the latency
/// outgrow the run and the measured throughput fall as the offered load rose.
pub const ADMIT_BACKLOG_BLOCKS: usize = 16;
/// Ids of recently committed transactions remembered to drop late forwards.
pub const MAX_RECENT_COMMITTED: usize = 262_144;
/// Most proposals buffered while their parent is being synced.
pub const MAX_PENDING_PROPOSALS: usize = 64;
/// A missing block is requested after `view_timeout / SYNC_DELAY_DIVISOR`.
pub const SYNC_DELAY_DIVISOR: u64 = 8;
/// Most blocks in one sync response.
pub const MAX_SYNC_BLOCKS: usize = 64;
/// Most ancestors a sync request walks to find the lowest missing blocks.
pub const MAX_SYNC_WALK_BLOCKS: usize = 64 * MAX_SYNC_BLOCKS;
/// Most open vote tallies (distinct `(view, block)` pairs) a leader keeps.
pub const MAX_VOTE_TALLIES: usize = 256;
/// NEW-VIEW messages further than this many views ahead are ignored.
pub const MAX_FUTURE_VIEWS: u64 = 1_000;
/// A replica still votes for a proposal this many views behind its current view
/// (if it has not voted since; see `accept_block`).
pub const LATE_VOTE_VIEWS: u64 = 2;
/// Committed blocks whose metadata is retained for serving sync requests.
pub const RETAIN_COMMITTED_BLOCKS: usize = 1 << 20;
/// The block tree is pruned of dead forks when it grows past this many blocks.
pub const TREE_PRUNE_MIN_BLOCKS: usize = 1_024;
/// The view of a suspected leader (one whose last view timed out on this replica
/// and that has sent it nothing since) times out after
/// `view_timeout / SUSPECT_TIMEOUT_DIVISOR` (times the backoff). A live leader
/// is rarely suspected when its view comes: it votes in every other view, and
/// those votes reach every other member within one rotation.
pub const SUSPECT_TIMEOUT_DIVISOR: u64 = 8;

/// `[protocol.hotstuff]` parameters (see the module docs for the defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HotStuffParams {
    /// Base view timeout, ms.
    pub view_timeout_ms: f64,
    /// Cap on the exponent of the timeout backoff (timeout × 2^k).
    pub max_backoff_exp: u32,
    /// QCs as one aggregate signature instead of `2f + 1` signatures.
    pub aggregate_qc: bool,
    /// Upcoming leaders a gateway forwards its transaction batches to.
    pub mempool_fanout: u32,
    /// Longest a gateway holds client transactions before forwarding, ms.
    pub mempool_batch_ms: f64,
}

impl Default for HotStuffParams {
    fn default() -> Self {
        HotStuffParams {
            view_timeout_ms: 1_000.0,
            max_backoff_exp: 6,
            aggregate_qc: false,
            mempool_fanout: 2,
            mempool_batch_ms: 10.0,
        }
    }
}

/// A quorum certificate: `2f + 1` votes for `block` proposed in `view`
/// (`block = None`, `view = 0` is the genesis QC).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Qc {
    /// View the certified block was proposed in.
    pub view: u64,
    /// The certified block (`None` = genesis).
    pub block: Option<BlockRef>,
}

impl Qc {
    const GENESIS: Qc = Qc {
        view: 0,
        block: None,
    };
}

/// One block of a sync response with the metadata a replica needs to link it.
#[derive(Copy, Clone, Debug)]
pub struct SyncedBlock {
    /// The block (its parent is in the block store).
    pub block: BlockRef,
    /// View it was proposed in.
    pub view: u64,
    /// View of its justify QC (the QC of its parent).
    pub justify_view: u64,
}

/// HotStuff's messages.
#[derive(Clone, Debug)]
pub enum HsMsg {
    /// The leader's block for `view`, justified by `justify`.
    Proposal {
        /// View.
        view: u64,
        /// The block (its parent is `justify.block`).
        block: BlockRef,
        /// QC of the parent.
        justify: Qc,
        /// Size on the wire.
        size_bytes: u64,
    },
    /// A vote for `block` of `view`, sent to the leader of `view + 1`.
    Vote {
        /// View of the block.
        view: u64,
        /// The block.
        block: BlockRef,
    },
    /// Pacemaker: the sender entered `view` after a timeout.
    NewView {
        /// The view entered.
        view: u64,
        /// The sender's highest QC.
        high_qc: Qc,
        /// The sender's last vote `(view, block)` if newer than `high_qc`.
        last_vote: Option<(u64, BlockRef)>,
        /// Size on the wire.
        size_bytes: u64,
    },
    /// A gateway's batch of client transactions for upcoming leaders.
    TxBatch {
        /// The transactions.
        txs: Vec<TxRef>,
        /// Size on the wire.
        size_bytes: u64,
    },
    /// Ask for `want` and its ancestors above `have_height`.
    BlockRequest {
        /// The block wanted.
        want: BlockRef,
        /// The requester's committed height.
        have_height: u64,
    },
    /// Blocks answering a request, highest first.
    BlockResponse {
        /// The blocks.
        blocks: Vec<SyncedBlock>,
        /// Size on the wire.
        size_bytes: u64,
    },
}

impl Message for HsMsg {
    fn size_bytes(&self) -> u64 {
        match self {
            HsMsg::Proposal { size_bytes, .. }
            | HsMsg::NewView { size_bytes, .. }
            | HsMsg::TxBatch { size_bytes, .. }
            | HsMsg::BlockResponse { size_bytes, .. } => *size_bytes,
            HsMsg::Vote { .. } => VOTE_BYTES,
            HsMsg::BlockRequest { .. } => BLOCK_REQUEST_BYTES,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            HsMsg::Proposal { .. } => "proposal",
            HsMsg::Vote { .. } => "vote",
            HsMsg::NewView { .. } => "new-view",
            HsMsg::TxBatch { .. } => "tx-batch",
            HsMsg::BlockRequest { .. } => "block-request",
            HsMsg::BlockResponse { .. } => "block-response",
        }
    }
}

/// HotStuff's timers.
#[derive(Copy, Clone, Debug)]
pub enum HsTimer {
    /// The view timer of a view.
    View(u64),
    /// A ready leader's wait for a fuller batch in a view.
    Batch(u64),
    /// A gateway forwards its pending transactions.
    Flush,
    /// Request a still-unknown block from a peer.
    Sync(BlockRef, NodeId),
}

/// The protocol factory.
pub struct HotStuff {
    cfg: Config,
}

#[derive(Clone, Debug)]
struct Config {
    block_max_tx: usize,
    block_max_bytes: u64,
    batch_timeout_ns: u64,
    view_timeout_ns: u64,
    max_backoff_exp: u32,
    aggregate_qc: bool,
    mempool_fanout: u64,
    mempool_batch_ns: u64,
}

fn ms_to_ns(ms: f64) -> u64 {
    (ms * NS_PER_MS as f64) as u64
}

impl Protocol for HotStuff {
    type Replica = HotStuffReplica;
    const NAME: &'static str = "hotstuff";

    fn from_scenario(s: &Scenario) -> Result<Self, ScenarioError> {
        let p: HotStuffParams = s.protocol_params(Self::NAME)?;
        let bad = |path: &str, message: String| ScenarioError::InvalidValue {
            source_name: s.name.clone(),
            path: format!("protocol.hotstuff.{path}"),
            message,
        };
        if !(p.view_timeout_ms.is_finite() && p.view_timeout_ms > 0.0) {
            return Err(bad(
                "view_timeout_ms",
                format!("must be a finite number > 0, got {}", p.view_timeout_ms),
            ));
        }
        if !(p.mempool_batch_ms.is_finite() && p.mempool_batch_ms >= 0.0) {
            return Err(bad(
                "mempool_batch_ms",
                format!("must be a finite number >= 0, got {}", p.mempool_batch_ms),
            ));
        }
        if p.max_backoff_exp > 20 {
            return Err(bad(
                "max_backoff_exp",
                format!("must be at most 20, got {}", p.max_backoff_exp),
            ));
        }
        Ok(HotStuff {
            cfg: Config {
                block_max_tx: s.block_max_tx as usize,
                block_max_bytes: s.block_max_bytes,
                batch_timeout_ns: ms_to_ns(s.batch_timeout_ms),
                view_timeout_ns: ms_to_ns(p.view_timeout_ms),
                max_backoff_exp: p.max_backoff_exp,
                aggregate_qc: p.aggregate_qc,
                mempool_fanout: u64::from(p.mempool_fanout),
                mempool_batch_ns: ms_to_ns(p.mempool_batch_ms),
            },
        })
    }

    fn max_faulty(&self, committee_size: usize) -> usize {
        committee_size.saturating_sub(1) / 3
    }

    fn replica(&self, _shard: u32, me: NodeId, committee: &[NodeId]) -> HotStuffReplica {
        HotStuffReplica::new(self.cfg.clone(), me, committee)
    }
}

/// What a replica knows about a block it received.
#[derive(Copy, Clone, Debug)]
struct BlockInfo {
    view: u64,
    height: u64,
    parent: Option<BlockRef>,
    justify_view: u64,
}

/// Signers of one tally, as a bitset over committee positions.
#[derive(Clone, Debug, Default)]
struct Signers {
    bits: Vec<u64>,
    count: usize,
}

impl Signers {
    /// Add signer `i`; returns the new count (unchanged for a duplicate).
    fn add(&mut self, i: usize) -> usize {
        let w = i / 64;
        if self.bits.len() <= w {
            self.bits.resize(w + 1, 0);
        }
        let m = 1u64 << (i % 64);
        if self.bits[w] & m == 0 {
            self.bits[w] |= m;
            self.count += 1;
        }
        self.count
    }
}

/// One node of chained HotStuff.
pub struct HotStuffReplica {
    cfg: Config,
    me: NodeId,
    committee: Vec<NodeId>,
    quorum: usize,
    f: usize,
    // Durable state (kept across a crash).
    cur_view: u64,
    last_voted_view: u64,
    last_vote: Option<(u64, BlockRef)>,
    locked: Qc,
    high_qc: Qc,
    tree: FxHashMap<BlockRef, BlockInfo>,
    chain: VecDeque<BlockRef>,
    chain_base: u64,
    committed_height: u64,
    last_committed: Option<BlockRef>,
    prune_mark: usize,
    // Volatile state.
    pool: VecDeque<TxRef>,
    in_pool: FxHashSet<u32>,
    /// This gateway's own client transactions not yet committed (admission).
    own_pending: FxHashSet<u32>,
    own_limit: usize,
    recent_committed: IdSet,
    recent_order: VecDeque<u32>,
    outbox: Vec<TxRef>,
    outbox_bytes: u64,
    flush_timer: Option<TimerId>,
    votes: BTreeMap<(u64, BlockRef), Signers>,
    new_views: BTreeMap<u64, Signers>,
    /// Highest view each committee member announced in a NEW-VIEW (view sync).
    peer_views: Vec<u64>,
    /// Members whose last view as leader timed out here and that sent nothing since.
    suspected: Vec<bool>,
    proposed_view: u64,
    view_timer: Option<TimerId>,
    batch_timer: Option<(u64, TimerId)>,
    batch_expired_view: u64,
    consecutive_timeouts: u32,
    pending_props: BTreeMap<u64, (NodeId, BlockRef, Qc)>,
    pending_qc: Option<Qc>,
    sync_pending: Option<(BlockRef, u64)>,
    sync_timer: Option<TimerId>,
    // Scratch buffers (reused, no per-proposal allocation in steady state).
    exclude: FxHashSet<u32>,
    scratch_txs: Vec<TxRef>,
    scratch_chain: Vec<BlockRef>,
}

type C<'a> = Ctx<'a, HsMsg, HsTimer>;

impl HotStuffReplica {
    fn new(cfg: Config, me: NodeId, committee: &[NodeId]) -> Self {
        let n = committee.len();
        let f = n.saturating_sub(1) / 3;
        let own_limit = (ADMIT_BACKLOG_BLOCKS * cfg.block_max_tx / n.max(1)).max(cfg.block_max_tx);
        HotStuffReplica {
            cfg,
            me,
            committee: committee.to_vec(),
            quorum: 2 * f + 1,
            f,
            cur_view: 1,
            last_voted_view: 0,
            last_vote: None,
            locked: Qc::GENESIS,
            high_qc: Qc::GENESIS,
            tree: FxHashMap::default(),
            chain: VecDeque::new(),
            chain_base: 1,
            committed_height: 0,
            last_committed: None,
            prune_mark: TREE_PRUNE_MIN_BLOCKS,
            pool: VecDeque::new(),
            in_pool: FxHashSet::default(),
            own_pending: FxHashSet::default(),
            own_limit,
            recent_committed: IdSet::new(),
            recent_order: VecDeque::new(),
            outbox: Vec::new(),
            outbox_bytes: 0,
            flush_timer: None,
            votes: BTreeMap::new(),
            new_views: BTreeMap::new(),
            peer_views: vec![0; n],
            suspected: vec![false; n],
            proposed_view: 0,
            view_timer: None,
            batch_timer: None,
            batch_expired_view: 0,
            consecutive_timeouts: 0,
            pending_props: BTreeMap::new(),
            pending_qc: None,
            sync_pending: None,
            sync_timer: None,
            exclude: FxHashSet::default(),
            scratch_txs: Vec::new(),
            scratch_chain: Vec::new(),
        }
    }

    // ----- helpers -------------------------------------------------------

    fn leader_of(&self, view: u64) -> NodeId {
        self.committee[(view % self.committee.len() as u64) as usize]
    }

    fn index_of(&self, node: NodeId) -> Option<usize> {
        self.committee.binary_search(&node).ok()
    }

    fn known(&self, b: Option<BlockRef>) -> bool {
        b.is_none_or(|b| self.tree.contains_key(&b))
    }

    fn height_of(&self, b: Option<BlockRef>) -> Option<u64> {
        match b {
            None => Some(0),
            Some(b) => self.tree.get(&b).map(|i| i.height),
        }
    }

    fn view_of(&self, b: Option<BlockRef>) -> Option<u64> {
        match b {
            None => Some(0),
            Some(b) => self.tree.get(&b).map(|i| i.view),
        }
    }

    fn qc_sigs(&self, qc: &Qc) -> u64 {
        match qc.block {
            None => 0,
            Some(_) if self.cfg.aggregate_qc => 1,
            Some(_) => self.quorum as u64,
        }
    }

    fn qc_bytes(&self, qc: &Qc) -> u64 {
        match qc.block {
            None => 8,
            Some(_) if self.cfg.aggregate_qc => {
                QC_HEADER_BYTES + SIG_BYTES + (self.committee.len() as u64).div_ceil(8)
            }
            Some(_) => QC_HEADER_BYTES + self.quorum as u64 * (SIG_BYTES + SIGNER_ID_BYTES),
        }
    }

    /// Whether this node may send (a `silent` node sends nothing).
    fn speaks(ctx: &C<'_>) -> bool {
        ctx.byzantine() != Some(ByzantineBehaviour::Silent)
    }

    /// Whether this node sends votes and NEW-VIEWs.
    fn votes_out(ctx: &C<'_>) -> bool {
        !matches!(
            ctx.byzantine(),
            Some(
                ByzantineBehaviour::Silent
                    | ByzantineBehaviour::Withhold
                    | ByzantineBehaviour::SelfishMine
            )
        )
    }

    /// Whether `b` descends from (or is) `anc`, walking known parents.
    fn extends(&self, b: BlockRef, anc: Option<BlockRef>) -> bool {
        let Some(target_h) = self.height_of(anc) else {
            return false;
        };
        let mut cur = Some(b);
        while let Some(c) = cur {
            if Some(c) == anc {
                return true;
            }
            match self.tree.get(&c) {
                Some(i) if i.height > target_h => cur = i.parent,
                _ => return false,
            }
        }
        anc.is_none()
    }

    // ----- pacemaker -----------------------------------------------------

    fn arm_view_timer(&mut self, ctx: &mut C<'_>) {
        if let Some(t) = self.view_timer.take() {
            ctx.cancel_timer(t);
        }
        let exp = self.consecutive_timeouts.min(self.cfg.max_backoff_exp);
        let leader = self.leader_of(self.cur_view);
        let base = if self.index_of(leader).is_some_and(|i| self.suspected[i]) {
            self.cfg.view_timeout_ns / SUSPECT_TIMEOUT_DIVISOR
        } else {
            self.cfg.view_timeout_ns
        };
        let after = base.saturating_mul(1u64 << exp);
        self.view_timer = Some(ctx.set_timer(after, HsTimer::View(self.cur_view)));
    }

    fn enter_view(&mut self, ctx: &mut C<'_>, view: u64) {
        if view <= self.cur_view {
            return;
        }
        self.cur_view = view;
        // Tallies of NEW-VIEWs for passed views are useless now.
        let keep = self.new_views.split_off(&view);
        self.new_views = keep;
        self.arm_view_timer(ctx);
        if self.leader_of(view) == self.me {
            self.try_propose(ctx, view);
        }
    }

    fn on_view_timeout(&mut self, ctx: &mut C<'_>, view: u64) {
        if view != self.cur_view {
            return;
        }
        self.view_timer = None;
        let me = self.index_of(self.me);
        let announced = me.map_or(0, |i| self.peer_views[i]);
        if announced > view {
            // Still waiting for a timeout certificate: repeat the announcement
            // (it may have been lost in a partition), at the base interval.
            let ann = announced;
            self.send_new_view(ctx, ann, true);
            self.view_timer =
                Some(ctx.set_timer(self.cfg.view_timeout_ns, HsTimer::View(self.cur_view)));
            return;
        }
        self.consecutive_timeouts = self.consecutive_timeouts.saturating_add(1);
        let leader = self.leader_of(view);
        if leader != self.me {
            if let Some(i) = self.index_of(leader) {
                self.suspected[i] = true;
            }
        }
        // Time out: announce `view + 1` to everyone and wait for a timeout
        // certificate (2f + 1 announcements) or a QC before leaving `view`.
        self.announce(ctx, view + 1);
        if self.cur_view == view && self.view_timer.is_none() {
            self.view_timer = Some(ctx.set_timer(self.cfg.view_timeout_ns, HsTimer::View(view)));
        }
    }

    /// Broadcast this replica's timeout announcement (a NEW-VIEW for `view`: it is
    /// done with every view below `view`) and apply the view-sync rules.
    fn announce(&mut self, ctx: &mut C<'_>, view: u64) {
        let Some(i) = self.index_of(self.me) else {
            return;
        };
        if view <= self.peer_views[i] {
            return;
        }
        self.peer_views[i] = view;
        self.send_new_view(ctx, view, true);
        self.view_sync(ctx);
    }

    /// Send this replica's NEW-VIEW for `view` to the view's leader (or count it,
    /// if it is the leader) and, with `broadcast`, to every other member too.
    fn send_new_view(&mut self, ctx: &mut C<'_>, view: u64, broadcast: bool) {
        let leader = self.leader_of(view);
        let last_vote = self.last_vote.filter(|(v, _)| *v > self.high_qc.view);
        if leader == self.me {
            if let Some((v, b)) = last_vote {
                self.add_vote(ctx, v, b, self.me);
            }
            self.add_new_view(ctx, view, self.me);
        }
        if !Self::votes_out(ctx) || (leader == self.me && !broadcast) {
            return;
        }
        let size_bytes = MSG_HEADER_BYTES
            + SIG_BYTES
            + self.qc_bytes(&self.high_qc)
            + if last_vote.is_some() { VOTE_BYTES } else { 0 };
        ctx.charge_sign();
        let msg = HsMsg::NewView {
            view,
            high_qc: self.high_qc,
            last_vote,
            size_bytes,
        };
        if broadcast {
            for i in 0..self.committee.len() {
                let to = self.committee[i];
                if to != self.me {
                    ctx.send(to, msg.clone());
                }
            }
        } else {
            ctx.send(leader, msg);
        }
    }

    /// Record a member's timeout announcement (a NEW-VIEW for `view`).
    fn note_peer_view(&mut self, ctx: &mut C<'_>, from: NodeId, view: u64) {
        let Some(i) = self.index_of(from) else {
            return;
        };
        if view <= self.peer_views[i] || view > self.cur_view + MAX_FUTURE_VIEWS {
            return;
        }
        self.peer_views[i] = view;
        self.view_sync(ctx);
    }

    /// View synchronisation with timeout certificates (the DiemBFT pacemaker with
    /// Bracha's amplification). A NEW-VIEW for `w` announces that its sender is
    /// done with every view below `w`; a replica announces on its own timeout and
    /// stays in its view until:
    /// - **TC:** `2f + 1` members (itself included) announced `w` or higher: a
    ///   timeout certificate, so it enters `w` (so do all the others that see the
    ///   same announcements, at about the same time: the groups line up);
    /// - **join:** `f + 1` other members announced `w` or higher (at least one
    ///   correct replica gave up on the views below `w`): it announces `w` too,
    ///   so that the certificate forms even if some correct replicas left the
    ///   failed view by voting for a withheld proposal.
    ///
    /// Views only grow, so this never affects safety (votes are still checked
    /// against the lock).
    fn view_sync(&mut self, ctx: &mut C<'_>) {
        let Some(me) = self.index_of(self.me) else {
            return;
        };
        let mut others: Vec<u64> = self
            .peer_views
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != me)
            .map(|(_, &v)| v)
            .collect();
        others.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&join) = others.get(self.f) {
            if join > self.peer_views[me] && join > self.high_qc.view + 1 {
                self.peer_views[me] = join;
                self.send_new_view(ctx, join, true);
            }
        }
        let mut all = self.peer_views.clone();
        all.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&tc) = all.get(self.quorum - 1) {
            if tc > self.cur_view {
                self.enter_view(ctx, tc);
                self.try_propose(ctx, tc);
            }
        }
    }

    /// Whether `2f + 1` members announced `view` or higher (a timeout certificate).
    fn has_tc(&self, view: u64) -> bool {
        self.peer_views.iter().filter(|&&v| v >= view).count() >= self.quorum
    }

    fn add_new_view(&mut self, ctx: &mut C<'_>, view: u64, from: NodeId) {
        let Some(i) = self.index_of(from) else {
            return;
        };
        let count = self.new_views.entry(view).or_default().add(i);
        if count >= self.quorum {
            if view > self.cur_view {
                self.enter_view(ctx, view);
            } else {
                self.try_propose(ctx, view);
            }
        }
    }

    // ----- QCs, locking and commits ----------------------------------------

    /// A QC arrived (in a proposal, a NEW-VIEW or formed from votes) from `src`.
    fn observe_qc(&mut self, ctx: &mut C<'_>, qc: Qc, src: NodeId) {
        match qc.block {
            Some(b) if !self.tree.contains_key(&b) => {
                if qc.view > self.high_qc.view {
                    if self.pending_qc.is_none_or(|p| p.view < qc.view) {
                        self.pending_qc = Some(qc);
                    }
                    self.request_sync(ctx, b, src);
                }
            }
            _ => {
                self.process_qc(ctx, qc);
                if qc.view + 1 > self.cur_view {
                    self.enter_view(ctx, qc.view + 1);
                }
            }
        }
    }

    /// The chained-HotStuff update for a QC on a known block `b''`: raise
    /// `highQC`, lock on `b'`, commit `b` on a three-chain of consecutive views.
    fn process_qc(&mut self, ctx: &mut C<'_>, qc: Qc) {
        if qc.view > self.high_qc.view {
            self.high_qc = qc;
            self.consecutive_timeouts = 0;
            // Vote tallies below the new highQC cannot matter any more.
            self.votes = self.votes.split_off(&(qc.view, BlockRef(0)));
        }
        let Some(b2) = qc.block else {
            return;
        };
        let Some(&i2) = self.tree.get(&b2) else {
            return;
        };
        let Some(b1) = i2.parent else {
            return;
        };
        if i2.justify_view > self.locked.view {
            self.locked = Qc {
                view: i2.justify_view,
                block: Some(b1),
            };
        }
        let Some(&i1) = self.tree.get(&b1) else {
            return;
        };
        let Some(b0) = i1.parent else {
            return;
        };
        let Some(&i0) = self.tree.get(&b0) else {
            return;
        };
        if i2.view == i1.view + 1 && i1.view == i0.view + 1 {
            self.commit_upto(ctx, b0, i0);
        }
    }

    fn commit_upto(&mut self, ctx: &mut C<'_>, b: BlockRef, info: BlockInfo) {
        if info.height <= self.committed_height {
            return;
        }
        self.scratch_chain.clear();
        let mut cur = b;
        loop {
            self.scratch_chain.push(cur);
            let i = self.tree[&cur];
            if i.height == self.committed_height + 1 {
                assert!(
                    i.parent == self.last_committed,
                    "hotstuff safety broken locally: node {} commits block {:?} at height {} whose parent is not the committed block {:?}",
                    self.me,
                    cur,
                    i.height,
                    self.last_committed
                );
                break;
            }
            match i.parent {
                Some(p) => cur = p,
                None => panic!(
                    "hotstuff: block {cur:?} at height {} has no parent",
                    i.height
                ),
            }
        }
        let byzantine = ctx.byzantine().is_some();
        while let Some(blk) = self.scratch_chain.pop() {
            let height = self.tree[&blk].height;
            let n_txs = ctx.block_txs(blk).len() as u64;
            ctx.charge_execute(n_txs);
            if !byzantine {
                ctx.commit(height, blk);
            }
            for t in ctx.block_txs(blk) {
                let id = t.id;
                self.in_pool.remove(&id);
                self.own_pending.remove(&id);
                if self.recent_committed.insert(id) {
                    self.recent_order.push_back(id);
                    if self.recent_order.len() > MAX_RECENT_COMMITTED {
                        if let Some(old) = self.recent_order.pop_front() {
                            self.recent_committed.remove(old);
                        }
                    }
                }
            }
            self.chain.push_back(blk);
            if self.chain.len() > RETAIN_COMMITTED_BLOCKS {
                self.chain.pop_front();
                self.chain_base += 1;
            }
            self.committed_height = height;
            self.last_committed = Some(blk);
        }
        self.compact_pool();
        if self.tree.len() > self.prune_mark {
            self.prune_tree();
        }
    }

    /// Drop dead forks at or below the committed height and committed blocks
    /// older than the retained chain.
    fn prune_tree(&mut self) {
        let (base, ch) = (self.chain_base, self.committed_height);
        let chain = &self.chain;
        self.tree.retain(|b, i| {
            i.height > ch || (i.height >= base && chain.get((i.height - base) as usize) == Some(b))
        });
        self.prune_mark = (2 * self.tree.len()).max(TREE_PRUNE_MIN_BLOCKS);
    }

    // ----- mempool -------------------------------------------------------

    fn compact_pool(&mut self) {
        while self
            .pool
            .front()
            .is_some_and(|t| !self.in_pool.contains(&t.id))
        {
            self.pool.pop_front();
        }
        if self.pool.len() > 2 * self.in_pool.len() + 1_024 {
            let in_pool = &self.in_pool;
            self.pool.retain(|t| in_pool.contains(&t.id));
        }
    }

    /// Add a transaction to the pool; false if known, committed or the pool is full.
    fn pool_add(&mut self, tx: TxRef) -> bool {
        if self.in_pool.len() >= MAX_POOL_TXS
            || self.recent_committed.contains(tx.id)
            || !self.in_pool.insert(tx.id)
        {
            return false;
        }
        self.pool.push_back(tx);
        true
    }

    /// A leader waiting for transactions (empty pool, nothing in flight) proposes
    /// as soon as one arrives: in a pipelined protocol the batch is what arrived
    /// during the previous view.
    fn maybe_full_batch(&mut self, ctx: &mut C<'_>) {
        if let Some((view, t)) = self.batch_timer {
            if !self.in_pool.is_empty() {
                ctx.cancel_timer(t);
                self.batch_timer = None;
                self.batch_expired_view = view;
                self.try_propose(ctx, view);
            }
        }
    }

    fn flush_outbox(&mut self, ctx: &mut C<'_>) {
        if let Some(t) = self.flush_timer.take() {
            ctx.cancel_timer(t);
        }
        if self.outbox.is_empty() {
            return;
        }
        let size_bytes = MSG_HEADER_BYTES + SIG_BYTES + self.outbox_bytes;
        ctx.charge_sign();
        let mut targets: Vec<NodeId> = Vec::with_capacity(self.cfg.mempool_fanout as usize);
        for k in 1..=self.cfg.mempool_fanout {
            let l = self.leader_of(self.cur_view + k);
            if l != self.me && !targets.contains(&l) {
                targets.push(l);
            }
        }
        let txs = std::mem::take(&mut self.outbox);
        self.outbox_bytes = 0;
        if let Some((&last, rest)) = targets.split_last() {
            for &to in rest {
                ctx.send(
                    to,
                    HsMsg::TxBatch {
                        txs: txs.clone(),
                        size_bytes,
                    },
                );
            }
            ctx.send(last, HsMsg::TxBatch { txs, size_bytes });
        }
    }

    // ----- proposing -----------------------------------------------------

    fn try_propose(&mut self, ctx: &mut C<'_>, view: u64) {
        if self.leader_of(view) != self.me || self.proposed_view >= view || view < self.cur_view {
            return;
        }
        if self.high_qc.view >= view {
            return;
        }
        let ready = self.high_qc.view + 1 == view
            || self.has_tc(view)
            || self
                .new_views
                .get(&view)
                .is_some_and(|s| s.count >= self.quorum);
        if !ready || !self.known(self.high_qc.block) {
            return;
        }
        if self
            .pending_qc
            .is_some_and(|q| q.view > self.high_qc.view && q.view + 1 == view)
        {
            return; // a higher QC's block is on its way: extend it, not an older one
        }
        // Transactions already in the uncommitted chain being extended.
        self.exclude.clear();
        let mut inflight = 0usize;
        let mut cur = self.high_qc.block;
        while let Some(b) = cur {
            let Some(i) = self.tree.get(&b) else { break };
            if i.height <= self.committed_height {
                break;
            }
            for t in ctx.block_txs(b) {
                self.exclude.insert(t.id);
            }
            inflight += ctx.block_txs(b).len();
            cur = i.parent;
        }
        self.compact_pool();
        self.scratch_txs.clear();
        let mut bytes = crate::store::BLOCK_HEADER_BYTES;
        for t in &self.pool {
            if self.scratch_txs.len() >= self.cfg.block_max_tx {
                break;
            }
            if !self.in_pool.contains(&t.id) || self.exclude.contains(&t.id) {
                continue;
            }
            let sz = u64::from(t.size_bytes);
            if !self.scratch_txs.is_empty() && bytes + sz > self.cfg.block_max_bytes {
                break;
            }
            bytes += sz;
            self.scratch_txs.push(*t);
        }
        if self.scratch_txs.is_empty() && inflight == 0 && self.batch_expired_view != view {
            if self.batch_timer.is_none_or(|(v, _)| v != view) {
                if let Some((_, t)) = self.batch_timer.take() {
                    ctx.cancel_timer(t);
                }
                let id = ctx.set_timer(self.cfg.batch_timeout_ns, HsTimer::Batch(view));
                self.batch_timer = Some((view, id));
            }
            return;
        }
        if let Some((_, t)) = self.batch_timer.take() {
            ctx.cancel_timer(t);
        }
        if self.high_qc.view + 1 != view {
            // Proposing without a QC of the previous view: this leader completes a
            // view change after timeouts (one count per completed view change).
            ctx.view_change();
        }
        self.proposed_view = view;
        let justify = self.high_qc;
        let parent = justify.block;
        match ctx.byzantine() {
            Some(ByzantineBehaviour::Silent) => {}
            Some(ByzantineBehaviour::Equivocate) => {
                let half = self.scratch_txs.len() / 2;
                let a = ctx.make_block(&self.scratch_txs[..half], parent);
                let b = ctx.make_block(&self.scratch_txs[half..], parent);
                let others: Vec<NodeId> = self
                    .committee
                    .iter()
                    .copied()
                    .filter(|&x| x != self.me)
                    .collect();
                let split = others.len() / 2;
                for (blk, targets) in [(a, &others[..split]), (b, &others[split..])] {
                    let size_bytes = self.proposal_bytes(ctx, blk, &justify);
                    ctx.charge_hash(ctx.block_size_bytes(blk));
                    ctx.charge_sign();
                    for &to in targets {
                        ctx.send(
                            to,
                            HsMsg::Proposal {
                                view,
                                block: blk,
                                justify,
                                size_bytes,
                            },
                        );
                    }
                    self.insert_block(blk, view, justify);
                    // Votes for both of its own blocks.
                    self.send_vote(ctx, view, blk);
                }
                self.last_voted_view = self.last_voted_view.max(view);
                self.enter_view(ctx, view + 1);
            }
            behaviour => {
                let blk = ctx.make_block(&self.scratch_txs, parent);
                let size_bytes = self.proposal_bytes(ctx, blk, &justify);
                ctx.charge_hash(ctx.block_size_bytes(blk));
                ctx.charge_sign();
                let msg = HsMsg::Proposal {
                    view,
                    block: blk,
                    justify,
                    size_bytes,
                };
                if matches!(
                    behaviour,
                    Some(ByzantineBehaviour::Withhold | ByzantineBehaviour::SelfishMine)
                ) {
                    let targets: Vec<NodeId> = self
                        .committee
                        .iter()
                        .copied()
                        .filter(|&x| x != self.me)
                        .take(self.f)
                        .collect();
                    for to in targets {
                        ctx.send(to, msg.clone());
                    }
                } else {
                    ctx.broadcast(msg);
                }
                self.accept_block(ctx, view, blk, justify, self.me);
            }
        }
    }

    fn proposal_bytes(&self, ctx: &C<'_>, blk: BlockRef, justify: &Qc) -> u64 {
        MSG_HEADER_BYTES + SIG_BYTES + self.qc_bytes(justify) + ctx.block_size_bytes(blk)
    }

    // ----- receiving blocks ----------------------------------------------

    /// Record a block whose parent (`justify.block`) is known.
    fn insert_block(&mut self, blk: BlockRef, view: u64, justify: Qc) -> BlockInfo {
        let height = self.height_of(justify.block).map_or(0, |h| h + 1);
        let info = BlockInfo {
            view,
            height,
            parent: justify.block,
            justify_view: justify.view,
        };
        self.tree.insert(blk, info);
        info
    }

    fn send_vote(&mut self, ctx: &mut C<'_>, view: u64, blk: BlockRef) {
        if !Self::votes_out(ctx) {
            return;
        }
        ctx.charge_sign();
        let to = self.leader_of(view + 1);
        if to == self.me {
            self.add_vote(ctx, view, blk, self.me);
        } else {
            ctx.send(to, HsMsg::Vote { view, block: blk });
        }
    }

    fn on_proposal(
        &mut self,
        ctx: &mut C<'_>,
        from: NodeId,
        view: u64,
        blk: BlockRef,
        justify: Qc,
        size: u64,
    ) {
        if from != self.leader_of(view)
            || ctx.block_creator(blk) != from
            || self.tree.contains_key(&blk)
        {
            return;
        }
        ctx.charge_verify(1 + self.qc_sigs(&justify));
        ctx.charge_hash(size);
        self.handle_proposal(ctx, from, view, blk, justify);
    }

    fn handle_proposal(
        &mut self,
        ctx: &mut C<'_>,
        from: NodeId,
        view: u64,
        blk: BlockRef,
        justify: Qc,
    ) {
        if ctx.block_parent(blk) != justify.block || justify.view >= view {
            return;
        }
        if !self.known(justify.block) {
            if let Some(p) = justify.block {
                self.pending_props.insert(view, (from, blk, justify));
                while self.pending_props.len() > MAX_PENDING_PROPOSALS {
                    self.pending_props.pop_first();
                }
                self.request_sync(ctx, p, from);
            }
            return;
        }
        self.accept_block(ctx, view, blk, justify, from);
    }

    /// A verified proposal with a known parent: record it, run the chained
    /// update on its justify, vote if safe and move to the next view.
    fn accept_block(
        &mut self,
        ctx: &mut C<'_>,
        view: u64,
        blk: BlockRef,
        justify: Qc,
        from: NodeId,
    ) {
        if self.tree.contains_key(&blk) {
            return;
        }
        if self.view_of(justify.block) != Some(justify.view) {
            return; // the QC's view does not match the block it names
        }
        self.insert_block(blk, view, justify);
        self.observe_qc(ctx, justify, from);
        let safe = self.extends(blk, self.locked.block) || justify.view > self.locked.view;
        // A proposal of a view this replica already timed out of still gets its
        // vote if it has not voted in that view or later (`last_voted_view`): votes
        // stay one per view and monotonic, which is all the safety argument uses,
        // and a withholding or slow leader no longer splits the replicas into
        // those that moved on early and those that did not.
        let recent = view + LATE_VOTE_VIEWS >= self.cur_view;
        if view > self.last_voted_view && recent && safe {
            self.last_voted_view = view;
            self.last_vote = Some((view, blk));
            self.send_vote(ctx, view, blk);
            self.enter_view(ctx, view + 1);
        } else if view > self.cur_view {
            self.enter_view(ctx, view);
        }
        self.retry_pending(ctx);
    }

    fn retry_pending(&mut self, ctx: &mut C<'_>) {
        loop {
            let next = self
                .pending_props
                .iter()
                .find(|(_, (_, _, qc))| self.known(qc.block))
                .map(|(&v, _)| v);
            let Some(v) = next else { break };
            if let Some((from, blk, qc)) = self.pending_props.remove(&v) {
                self.handle_proposal(ctx, from, v, blk, qc);
            }
        }
        if let Some(qc) = self.pending_qc {
            if self.known(qc.block) {
                self.pending_qc = None;
                self.observe_qc(ctx, qc, self.me);
                let v = self.cur_view;
                self.try_propose(ctx, v);
            }
        }
    }

    // ----- votes ---------------------------------------------------------

    fn add_vote(&mut self, ctx: &mut C<'_>, view: u64, blk: BlockRef, from: NodeId) {
        if view < self.high_qc.view
            || (view == self.high_qc.view && self.high_qc.block == Some(blk))
        {
            return;
        }
        let Some(i) = self.index_of(from) else {
            return;
        };
        let key = (view, blk);
        if !self.votes.contains_key(&key) && self.votes.len() >= MAX_VOTE_TALLIES {
            self.votes.pop_first();
        }
        let count = self.votes.entry(key).or_default().add(i);
        if count == self.quorum {
            self.observe_qc(
                ctx,
                Qc {
                    view,
                    block: Some(blk),
                },
                from,
            );
            self.try_propose(ctx, view + 1);
        }
        // A vote for view `v` sent to the leader of `v + 1` is also the voter's
        // NEW-VIEW for `v + 1` (its highQC is at least the voted block's justify).
        if self.leader_of(view + 1) == self.me && view + 1 >= self.cur_view {
            self.add_new_view(ctx, view + 1, from);
        }
    }

    // ----- sync ----------------------------------------------------------

    /// Ask `from` for `want` (and its missing ancestors) unless it shows up by
    /// itself first: the request leaves after [`SYNC_DELAY_DIVISOR`]-th of the view
    /// timeout, since with jitter a QC or a child often overtakes its block's own
    /// proposal.
    fn request_sync(&mut self, ctx: &mut C<'_>, want: BlockRef, from: NodeId) {
        if from == self.me {
            return;
        }
        let now = ctx.now();
        if let Some((w, at)) = self.sync_pending {
            if w == want && now < at.saturating_add(self.cfg.view_timeout_ns) {
                return;
            }
        }
        self.sync_pending = Some((want, now));
        if let Some(t) = self.sync_timer.take() {
            ctx.cancel_timer(t);
        }
        let after = self.cfg.view_timeout_ns / SYNC_DELAY_DIVISOR;
        self.sync_timer = Some(ctx.set_timer(after, HsTimer::Sync(want, from)));
    }

    fn on_sync_timer(&mut self, ctx: &mut C<'_>, want: BlockRef, from: NodeId) {
        self.sync_timer = None;
        if self.tree.contains_key(&want) || !Self::speaks(ctx) {
            return;
        }
        ctx.send(
            from,
            HsMsg::BlockRequest {
                want,
                have_height: self.committed_height,
            },
        );
    }

    fn on_block_request(
        &mut self,
        ctx: &mut C<'_>,
        from: NodeId,
        want: BlockRef,
        have_height: u64,
    ) {
        if !Self::speaks(ctx) {
            return;
        }
        // The blocks just above the requester's committed height, so that the
        // answer links to what it has (the highest ones could not be linked
        // while more than MAX_SYNC_BLOCKS are missing, and were dropped).
        let mut path: Vec<(BlockRef, BlockInfo)> = Vec::new();
        let mut cur = Some(want);
        while let Some(b) = cur {
            let Some(&i) = self.tree.get(&b) else { break };
            if i.height <= have_height || path.len() >= MAX_SYNC_WALK_BLOCKS {
                break;
            }
            path.push((b, i));
            cur = i.parent;
        }
        let lowest = &path[path.len().saturating_sub(MAX_SYNC_BLOCKS)..];
        let mut blocks = Vec::with_capacity(lowest.len());
        let mut size_bytes = MSG_HEADER_BYTES;
        for &(b, i) in lowest {
            let qc = Qc {
                view: i.justify_view,
                block: i.parent,
            };
            size_bytes += ctx.block_size_bytes(b)
                + SYNC_BLOCK_OVERHEAD_BYTES
                + SIG_BYTES
                + self.qc_bytes(&qc);
            blocks.push(SyncedBlock {
                block: b,
                view: i.view,
                justify_view: i.justify_view,
            });
        }
        if !blocks.is_empty() {
            ctx.send(from, HsMsg::BlockResponse { blocks, size_bytes });
        }
    }

    fn on_block_response(&mut self, ctx: &mut C<'_>, from: NodeId, blocks: &[SyncedBlock]) {
        self.sync_pending = None;
        for sb in blocks.iter().rev() {
            if self.tree.contains_key(&sb.block) {
                continue;
            }
            let parent = ctx.block_parent(sb.block);
            let qc = Qc {
                view: sb.justify_view,
                block: parent,
            };
            ctx.charge_verify(1 + self.qc_sigs(&qc));
            ctx.charge_hash(ctx.block_size_bytes(sb.block));
            if !self.known(parent) {
                if let Some(p) = parent {
                    self.request_sync(ctx, p, from);
                }
                return;
            }
            if self.view_of(parent) != Some(sb.justify_view) || sb.view <= sb.justify_view {
                return;
            }
            self.insert_block(sb.block, sb.view, qc);
            // The synced block's justify is a verified QC: derive locks and commits.
            self.process_qc(ctx, qc);
        }
        self.retry_pending(ctx);
        // Still behind (more than one response was missing): ask again.
        let missing = self
            .pending_props
            .values()
            .next_back()
            .and_then(|(_, _, qc)| qc.block)
            .or(self.pending_qc.and_then(|q| q.block))
            .filter(|&b| !self.tree.contains_key(&b));
        if let Some(b) = missing {
            self.request_sync(ctx, b, from);
        }
    }
}

impl Replica for HotStuffReplica {
    type Msg = HsMsg;
    type Timer = HsTimer;

    fn on_start(&mut self, ctx: &mut C<'_>) {
        self.arm_view_timer(ctx);
        if self.leader_of(self.cur_view) == self.me {
            let v = self.cur_view;
            self.try_propose(ctx, v);
        }
    }

    fn on_client_tx(&mut self, ctx: &mut C<'_>, tx: TxRef) {
        ctx.charge_verify(1);
        if self.own_pending.len() >= self.own_limit || !self.pool_add(tx) {
            return;
        }
        self.own_pending.insert(tx.id);
        if Self::speaks(ctx) {
            self.outbox.push(tx);
            self.outbox_bytes += u64::from(tx.size_bytes);
            if self.outbox.len() >= self.cfg.block_max_tx
                || self.outbox_bytes >= self.cfg.block_max_bytes
            {
                self.flush_outbox(ctx);
            } else if self.flush_timer.is_none() {
                self.flush_timer = Some(ctx.set_timer(self.cfg.mempool_batch_ns, HsTimer::Flush));
            }
        }
        self.maybe_full_batch(ctx);
    }

    fn on_message(&mut self, ctx: &mut C<'_>, from: NodeId, msg: HsMsg) {
        let Some(i) = self.index_of(from) else {
            return;
        };
        // A consensus message shows the sender takes part: its views get the full
        // timeout again. Transaction forwards and sync answers do not count (a
        // withholding leader keeps forwarding transactions).
        if matches!(
            msg,
            HsMsg::Proposal { .. } | HsMsg::Vote { .. } | HsMsg::NewView { .. }
        ) {
            self.suspected[i] = false;
        }
        match msg {
            HsMsg::Proposal {
                view,
                block,
                justify,
                size_bytes,
            } => self.on_proposal(ctx, from, view, block, justify, size_bytes),
            HsMsg::Vote { view, block } => {
                if self.leader_of(view + 1) == self.me {
                    ctx.charge_verify(1);
                    self.add_vote(ctx, view, block, from);
                }
            }
            HsMsg::NewView {
                view,
                high_qc,
                last_vote,
                ..
            } => {
                let fresh = view > self.peer_views[i] && view <= self.cur_view + MAX_FUTURE_VIEWS;
                let for_me = self.leader_of(view) == self.me
                    && !(view < self.cur_view && self.proposed_view >= view)
                    && view <= self.cur_view + MAX_FUTURE_VIEWS;
                if for_me {
                    // The next leader's part first: the QC and the carried vote
                    // must be in before a timeout certificate makes it propose.
                    ctx.charge_verify(1 + self.qc_sigs(&high_qc) + u64::from(last_vote.is_some()));
                    self.observe_qc(ctx, high_qc, from);
                    if let Some((v, b)) = last_vote {
                        self.add_vote(ctx, v, b, from);
                    }
                } else if fresh {
                    ctx.charge_verify(1);
                    if high_qc.view > self.high_qc.view {
                        ctx.charge_verify(self.qc_sigs(&high_qc));
                        self.observe_qc(ctx, high_qc, from);
                    }
                }
                if fresh {
                    self.note_peer_view(ctx, from, view);
                }
                if for_me {
                    self.add_new_view(ctx, view, from);
                }
            }
            HsMsg::TxBatch { txs, .. } => {
                ctx.charge_verify(1);
                for tx in txs {
                    self.pool_add(tx);
                }
                self.maybe_full_batch(ctx);
            }
            HsMsg::BlockRequest { want, have_height } => {
                self.on_block_request(ctx, from, want, have_height)
            }
            HsMsg::BlockResponse { blocks, .. } => self.on_block_response(ctx, from, &blocks),
        }
    }

    fn on_timer(&mut self, ctx: &mut C<'_>, timer: HsTimer) {
        match timer {
            HsTimer::View(v) => self.on_view_timeout(ctx, v),
            HsTimer::Batch(v) => {
                if self.batch_timer.is_some_and(|(bv, _)| bv == v) {
                    self.batch_timer = None;
                }
                self.batch_expired_view = v;
                self.try_propose(ctx, v);
            }
            HsTimer::Flush => {
                self.flush_timer = None;
                self.flush_outbox(ctx);
            }
            HsTimer::Sync(want, from) => self.on_sync_timer(ctx, want, from),
        }
    }

    fn on_recover(&mut self, ctx: &mut C<'_>) {
        // Durable: views, last vote, lock, highQC, block tree and committed chain.
        // Volatile: pool, forwards, tallies, buffered proposals, timers.
        self.pool.clear();
        self.in_pool.clear();
        self.own_pending.clear();
        self.outbox.clear();
        self.outbox_bytes = 0;
        self.flush_timer = None;
        self.votes.clear();
        self.new_views.clear();
        self.peer_views.iter_mut().for_each(|v| *v = 0);
        self.suspected.iter_mut().for_each(|s| *s = false);
        self.view_timer = None;
        self.batch_timer = None;
        self.consecutive_timeouts = 0;
        self.pending_props.clear();
        self.pending_qc = None;
        self.sync_pending = None;
        self.sync_timer = None;
        self.arm_view_timer(ctx);
    }
}
