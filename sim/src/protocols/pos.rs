//! Proof-of-stake: Ouroboros-Praos-style slot leaders, longest-chain fork choice
//! and Casper-FFG-style checkpoint finality.
//!
//! # Model
//! - **Slots** of `slot_ms`. In every slot each validator is a leader
//!   independently with probability `1 - (1 - f)^α`, where `α` is its stake share
//!   and `f` the active-slot coefficient (Ouroboros Praos): slots with no leader
//!   and slots with several leaders both happen. A validator draws the gap to its
//!   next leader slot geometrically from its own named stream `pos/leader/<node>`
//!   (the stand-in for its private VRF).
//! - **Blocks** are pushed to the peers of a random peer graph, each hop paying
//!   latency, bandwidth and validation CPU, exactly as proof-of-work's compact
//!   relay (without the compact step); a peer missing the parent fetches it.
//! - **Fork choice**: the longest chain that contains the node's latest justified
//!   checkpoint; on a tie the first block seen stays.
//! - **Finality** (Casper FFG): epochs of `epoch_slots` slots. `vote_offset_slots`
//!   into epoch `e` every validator broadcasts a vote (source = its latest
//!   justified checkpoint, target = the last block of its chain at or before the
//!   first slot of `e`). A checkpoint with votes of 2/3 of all stake from a
//!   justified source is justified; a justified checkpoint whose direct child
//!   epoch's checkpoint is justified with it as source is finalized, and the node
//!   commits its chain up to it. With more than 1/3 of stake offline blocks keep
//!   coming (online leaders still lead) but nothing is justified, so finality stops.
//! - Transactions' latency to first inclusion and to finality are both reported.

use super::chain::{
    self, BlockIdx, BlockTree, ChainStats, PeerGraph, Status, StatusTable, TxPool, GENESIS,
};
use super::pow::{bad, build_graph, check_chain_scenario};
use crate::protocol::{ByzantineBehaviour, Ctx, Message, NodeId, Protocol, Replica, TxRef};
use crate::scenario::{Scenario, ScenarioError};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{json, Value};
use simrand::Stream;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Bytes of a finality vote (epochs, two block hashes, validator index, BLS signature).
pub const VOTE_BYTES: u64 = 200;
/// Most slots one run may span (a named limit on growth).
pub const MAX_SLOTS: u64 = 50_000_000;

/// `[protocol.pos]` parameters.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PosParams {
    /// Slot length, ms (default 1000).
    pub slot_ms: f64,
    /// Active-slot coefficient `f`: the probability that a validator holding all
    /// the stake leads a slot (default 0.2; Cardano uses 0.05 with 1 s slots).
    pub active_slot_coeff: f64,
    /// Slots per finality epoch (default 32, as Ethereum).
    pub epoch_slots: u32,
    /// Slots into an epoch at which validators cast their finality vote (default 4).
    pub vote_offset_slots: u32,
    /// Stake of each node (relative; empty: equal stakes).
    pub stakes: Vec<f64>,
    /// Outbound connections per node (default 8).
    pub peer_degree: u32,
    /// `"fixed"` or `"bitcoin-2015"` (see proof-of-work).
    pub degree_distribution: String,
    /// Block header bytes (default 200).
    pub header_bytes: u64,
    /// Blocks are padded to at least this many bytes (0: header plus transactions).
    pub block_size_bytes: u64,
    /// Fixed validation CPU per block, ms (default 5).
    pub validate_ms: f64,
    /// Validation CPU per MB of block, ms (default 50).
    pub validate_ms_per_mb: f64,
}

impl Default for PosParams {
    fn default() -> Self {
        PosParams {
            slot_ms: 1000.0,
            active_slot_coeff: 0.2,
            epoch_slots: 32,
            vote_offset_slots: 4,
            stakes: Vec::new(),
            peer_degree: 8,
            degree_distribution: "fixed".into(),
            header_bytes: 200,
            block_size_bytes: 0,
            validate_ms: 5.0,
            validate_ms_per_mb: 50.0,
        }
    }
}

/// A checkpoint: epoch and block.
pub type Checkpoint = (u64, BlockIdx);

/// Messages.
#[derive(Clone, Debug)]
pub enum PosMsg {
    /// A block (size on the wire).
    Block(BlockIdx, u64),
    /// Request a block.
    GetData(BlockIdx),
    /// A finality vote.
    Vote {
        /// Voter.
        voter: NodeId,
        /// Source checkpoint (justified at the voter).
        source: Checkpoint,
        /// Target checkpoint.
        target: Checkpoint,
    },
    /// Ask for the peer's tip (after a crash).
    GetTip,
}

impl Message for PosMsg {
    fn size_bytes(&self) -> u64 {
        match *self {
            PosMsg::Block(_, s) => s,
            PosMsg::GetData(_) | PosMsg::GetTip => 61,
            PosMsg::Vote { .. } => VOTE_BYTES,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            PosMsg::Block(..) => "block",
            PosMsg::GetData(_) => "getdata",
            PosMsg::Vote { .. } => "vote",
            PosMsg::GetTip => "gettip",
        }
    }
}

/// Timers.
#[derive(Copy, Clone, Debug)]
pub enum PosTimer {
    /// This validator leads `slot`.
    Lead(u64),
    /// Cast the finality vote of `epoch`.
    Vote(u64),
}

struct Cfg {
    p: PosParams,
    slot_ns: u64,
    stake: Vec<f64>,
    block_max_tx: usize,
    block_max_bytes: u64,
}

struct Shared {
    tree: BlockTree,
    status: StatusTable,
    stats: ChainStats,
    pool: TxPool,
    graph: PeerGraph,
    best: BlockIdx,
    settled: u32,
    /// Highest epoch any node justified / finalized.
    max_justified_epoch: u64,
    max_finalized_epoch: u64,
    /// Height finalized by any node.
    max_finalized_height: u32,
    /// Delay from block creation to its first finalization anywhere, µs.
    finality_delay_us: Histogram<u64>,
    first_finalized: Vec<bool>,
    /// Leaders per slot that produced a block (slot -> count).
    leaders: BTreeMap<u64, u32>,
    last_slot: u64,
}

/// The proof-of-stake protocol factory.
pub struct Pos {
    cfg: Rc<Cfg>,
    shared: Rc<RefCell<Shared>>,
}

impl Protocol for Pos {
    type Replica = PosReplica;
    const NAME: &'static str = "pos";

    fn from_scenario(s: &Scenario) -> Result<Self, ScenarioError> {
        check_chain_scenario(s, "pos", &[ByzantineBehaviour::Silent])?;
        let p: PosParams = s.protocol_params(Self::NAME)?;
        let n = s.total_nodes() as usize;
        let field = |f: &str| format!("protocol.pos.{f}");
        if !(p.slot_ms.is_finite() && p.slot_ms >= 1.0) {
            return Err(bad(
                s,
                &field("slot_ms"),
                format!("must be at least 1 ms, got {}", p.slot_ms),
            ));
        }
        if !(p.active_slot_coeff > 0.0 && p.active_slot_coeff <= 1.0) {
            return Err(bad(
                s,
                &field("active_slot_coeff"),
                format!("must be in (0, 1], got {}", p.active_slot_coeff),
            ));
        }
        if p.epoch_slots < 2 {
            return Err(bad(
                s,
                &field("epoch_slots"),
                format!("must be at least 2, got {}", p.epoch_slots),
            ));
        }
        if p.vote_offset_slots >= p.epoch_slots {
            return Err(bad(
                s,
                &field("vote_offset_slots"),
                format!(
                    "must be below epoch_slots ({}), got {}",
                    p.epoch_slots, p.vote_offset_slots
                ),
            ));
        }
        for (name, v) in [
            ("validate_ms", p.validate_ms),
            ("validate_ms_per_mb", p.validate_ms_per_mb),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(
                    s,
                    &field(name),
                    format!("must be a finite number >= 0, got {v}"),
                ));
            }
        }
        let stake: Vec<f64> = if p.stakes.is_empty() {
            vec![1.0 / n as f64; n]
        } else {
            if p.stakes.len() != n {
                return Err(bad(
                    s,
                    &field("stakes"),
                    format!("need one stake per node ({n}), got {}", p.stakes.len()),
                ));
            }
            if p.stakes.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(bad(
                    s,
                    &field("stakes"),
                    "stakes must be finite and >= 0".into(),
                ));
            }
            let total: f64 = p.stakes.iter().sum();
            if total <= 0.0 {
                return Err(bad(
                    s,
                    &field("stakes"),
                    "total stake must be positive".into(),
                ));
            }
            p.stakes.iter().map(|x| x / total).collect()
        };
        let slots = (s.duration_s * 1e3 / p.slot_ms).ceil() as u64;
        if slots > MAX_SLOTS {
            return Err(bad(s, "duration_s", format!("{slots} slots exceed the limit of {MAX_SLOTS}; raise protocol.pos.slot_ms or shorten the run")));
        }
        let expected_blocks = (slots as f64 * p.active_slot_coeff * 1.5).ceil() as u64 + 16;
        if expected_blocks * n as u64 > chain::MAX_STATUS_ENTRIES {
            return Err(ScenarioError::TooLarge {
                estimated_mib: expected_blocks * n as u64 / (1024 * 1024),
                limit_mib: chain::MAX_STATUS_ENTRIES / (1024 * 1024),
                what: format!("about {expected_blocks} blocks x {n} nodes of block status"),
            });
        }
        let graph = build_graph(s, "pos", p.peer_degree, &p.degree_distribution, n)?;
        let slot_ns = (p.slot_ms * 1e6) as u64;
        let cfg = Cfg {
            p,
            slot_ns,
            stake,
            block_max_tx: s.block_max_tx as usize,
            block_max_bytes: s.block_max_bytes,
        };
        let shared = Shared {
            tree: BlockTree::new(),
            status: StatusTable::new(n),
            stats: ChainStats::new(n),
            pool: TxPool::default(),
            graph,
            best: GENESIS,
            settled: 0,
            max_justified_epoch: 0,
            max_finalized_epoch: 0,
            max_finalized_height: 0,
            finality_delay_us: match Histogram::new_with_bounds(
                1,
                crate::metrics::MAX_LATENCY_US,
                3,
            ) {
                Ok(h) => h,
                Err(e) => panic!("static histogram bounds are valid: {e}"),
            },
            first_finalized: vec![true],
            leaders: BTreeMap::new(),
            last_slot: 0,
        };
        Ok(Pos {
            cfg: Rc::new(cfg),
            shared: Rc::new(RefCell::new(shared)),
        })
    }

    fn max_faulty(&self, committee_size: usize) -> usize {
        // Safety of FFG rests on stake (< 1/3 Byzantine stake), not on a node
        // count; only `silent` validators are accepted, whose stake simply goes
        // missing from the votes.
        committee_size
    }

    fn replica(&self, _shard: u32, me: NodeId, _committee: &[NodeId]) -> PosReplica {
        PosReplica {
            me,
            cfg: Rc::clone(&self.cfg),
            shared: Rc::clone(&self.shared),
            leader_rng: None,
            tip: GENESIS,
            justified: (0, GENESIS),
            justified_set: BTreeSet::from([(0, GENESIS)]),
            finalized: (0, GENESIS),
            committed: 0,
            tallies: BTreeMap::new(),
            voted: BTreeSet::new(),
            orphans: Vec::new(),
        }
    }

    fn extras(&self) -> Option<Value> {
        let sh = self.shared.borrow();
        let tree = &sh.tree;
        let main = chain::main_chain(tree, sh.best);
        let produced = tree.len() as u64 - 1;
        let stale = produced - main.len() as u64;
        let slots = sh.last_slot;
        let led = sh.leaders.len() as u64;
        let multi = sh.leaders.values().filter(|&&c| c > 1).count();
        let h = &sh.finality_delay_us;
        let q = |x: f64| {
            if h.is_empty() {
                Value::Null
            } else {
                json!(h.value_at_quantile(x) as f64 / 1e3)
            }
        };
        Some(json!({
            "protocol": "pos",
            "blocks_produced": produced,
            "main_chain_blocks": main.len(),
            "stale_blocks": stale,
            "stale_rate": if produced == 0 { 0.0 } else { stale as f64 / produced as f64 },
            "reorgs": sh.stats.reorgs,
            "node_reorgs": sh.stats.node_reorgs,
            "max_reorg_depth": sh.stats.max_reorg_depth,
            "slots": slots,
            "slots_with_blocks": led,
            "empty_slot_rate": if slots == 0 { 0.0 } else { 1.0 - led as f64 / slots as f64 },
            "multi_leader_slots": multi,
            "epoch_slots": self.cfg.p.epoch_slots,
            "justified_epoch": sh.max_justified_epoch,
            "finalized_epoch": sh.max_finalized_epoch,
            "finalized_height": sh.max_finalized_height,
            "block_finality_delay_ms": {"p50": q(0.5), "p90": q(0.9), "max": q(1.0), "count": h.len()},
            "propagation": sh.stats.propagation_json(),
            "mean_peer_degree": sh.graph.mean_degree(),
            "announcements_suppressed": sh.stats.announcements_suppressed,
            "txs_returned_to_pool": sh.pool.returned,
        }))
    }
}

/// A proof-of-stake validator.
pub struct PosReplica {
    me: NodeId,
    cfg: Rc<Cfg>,
    shared: Rc<RefCell<Shared>>,
    leader_rng: Option<Stream>,
    tip: BlockIdx,
    justified: Checkpoint,
    justified_set: BTreeSet<Checkpoint>,
    finalized: Checkpoint,
    committed: u32,
    /// Stake behind each (source, target) link, keyed by target epoch first.
    tallies: BTreeMap<(u64, BlockIdx, u64, BlockIdx), f64>,
    /// (target epoch, voter) pairs counted.
    voted: BTreeSet<(u64, NodeId)>,
    orphans: Vec<BlockIdx>,
}

type PosCtx<'a> = Ctx<'a, PosMsg, PosTimer>;

/// Two thirds of the stake, with a little slack for floating-point sums.
const SUPERMAJORITY: f64 = 2.0 / 3.0 - 1e-9;

impl PosReplica {
    fn silent(&self, ctx: &PosCtx<'_>) -> bool {
        ctx.byzantine() == Some(ByzantineBehaviour::Silent)
    }

    fn slot_at(&self, t: u64) -> u64 {
        t / self.cfg.slot_ns
    }

    /// Arm the timer of this validator's next leader slot after slot `after`.
    fn arm_leader(&mut self, ctx: &mut PosCtx<'_>, after: u64) {
        let alpha = self.cfg.stake[self.me as usize];
        if alpha <= 0.0 {
            return;
        }
        let p = 1.0 - (1.0 - self.cfg.p.active_slot_coeff).powf(alpha);
        if p <= 0.0 {
            return;
        }
        if self.leader_rng.is_none() {
            let seed = ctx.rng().next_u64();
            self.leader_rng = Some(Stream::indexed(seed, "pos/leader", u64::from(self.me)));
        }
        let Some(rng) = self.leader_rng.as_mut() else {
            return;
        };
        let skip = if p >= 1.0 {
            0
        } else {
            (rng.uniform_open0().ln() / (1.0 - p).ln()).floor().max(0.0) as u64
        };
        let slot = after + 1 + skip;
        let at = slot * self.cfg.slot_ns;
        ctx.set_timer(at.saturating_sub(ctx.now()), PosTimer::Lead(slot));
    }

    fn arm_vote(&mut self, ctx: &mut PosCtx<'_>, epoch: u64) {
        let e = u64::from(self.cfg.p.epoch_slots);
        let at = (epoch * e + u64::from(self.cfg.p.vote_offset_slots)) * self.cfg.slot_ns;
        ctx.set_timer(at.saturating_sub(ctx.now()), PosTimer::Vote(epoch));
    }

    fn lead(&mut self, ctx: &mut PosCtx<'_>, slot: u64) {
        self.arm_leader(ctx, slot);
        if self.silent(ctx) {
            return;
        }
        let now = ctx.now();
        let b = {
            let mut guard = self.shared.borrow_mut();
            let sh = &mut *guard;
            // Praos: slots strictly increase along a chain.
            let mut parent = self.tip;
            while parent != GENESIS && sh.tree.get(parent).slot >= slot {
                parent = sh.tree.get(parent).parent;
            }
            let p = &self.cfg.p;
            let txs: Vec<TxRef> = sh.pool.select_for(
                &sh.tree,
                parent,
                sh.best,
                self.cfg.block_max_tx,
                self.cfg.block_max_bytes.saturating_sub(p.header_bytes),
                |r| ctx.block_txs(r),
            );
            let tx_bytes: u64 = txs.iter().map(|t| u64::from(t.size_bytes)).sum();
            let size = (p.header_bytes + tx_bytes).max(p.block_size_bytes);
            let store = ctx.make_block(&txs, None);
            let b = sh
                .tree
                .add(parent, 1, self.me, now, slot, store, size, txs.len() as u32);
            sh.status.push_block();
            sh.stats.push_block();
            sh.first_finalized.push(false);
            sh.status.set(b, self.me, Status::Valid);
            *sh.leaders.entry(slot).or_insert(0) += 1;
            sh.last_slot = sh.last_slot.max(slot);
            b
        };
        ctx.charge_sign();
        let store = self.shared.borrow().tree.get(b).store;
        if let Some(r) = store {
            ctx.include(r);
        }
        self.publish(ctx, b);
        self.choose_tip(ctx, Some(b));
    }

    fn publish(&mut self, ctx: &mut PosCtx<'_>, b: BlockIdx) {
        let stale = {
            let mut guard = self.shared.borrow_mut();
            let sh = &mut *guard;
            sh.tree.blocks[b as usize].published = true;
            sh.tree.blocks[b as usize].published_ns = ctx.now();
            let mut stale = 0;
            if sh.tree.better(b, sh.best) {
                let old = sh.best;
                chain::move_pool(&sh.tree, &mut sh.pool, old, b, |r| ctx.block_txs(r));
                sh.best = b;
                let settle_to = sh.tree.get(b).height.saturating_sub(self.cfg.p.epoch_slots);
                if settle_to > sh.settled {
                    stale = chain::settle_stale(&mut sh.tree, b, sh.settled + 1, settle_to);
                    sh.settled = settle_to;
                }
            }
            stale
        };
        for _ in 0..stale {
            ctx.stale_block();
        }
        self.relay(ctx, b);
    }

    fn relay(&mut self, ctx: &mut PosCtx<'_>, b: BlockIdx) {
        if self.silent(ctx) {
            return;
        }
        let mut guard = self.shared.borrow_mut();
        let sh = &mut *guard;
        let size = sh.tree.get(b).size_bytes;
        for &p in sh.graph.of(self.me) {
            if sh.status.get(b, p) == Status::Unknown {
                ctx.send(p, PosMsg::Block(b, size));
            } else {
                sh.stats.announcements_suppressed += 1;
            }
        }
    }

    fn receive_block(&mut self, ctx: &mut PosCtx<'_>, from: NodeId, b: BlockIdx) {
        {
            let mut sh = self.shared.borrow_mut();
            if sh.status.get(b, self.me) >= Status::Have {
                sh.stats.duplicate_blocks += 1;
                return;
            }
            let parent = sh.tree.get(b).parent;
            let pv = sh.status.get(parent, self.me);
            if pv != Status::Valid {
                sh.status.set(b, self.me, Status::Have);
                self.orphans.push(b);
                if pv == Status::Unknown {
                    sh.status.set(parent, self.me, Status::Requested);
                    drop(sh);
                    ctx.send(from, PosMsg::GetData(parent));
                }
                return;
            }
        }
        let mut todo = vec![b];
        while let Some(x) = todo.pop() {
            let (size, created) = {
                let sh = self.shared.borrow();
                (sh.tree.get(x).size_bytes, sh.tree.get(x).published_ns)
            };
            // Leader proof and block signature, then the block body.
            ctx.charge_verify(2);
            let ms = self.cfg.p.validate_ms + self.cfg.p.validate_ms_per_mb * size as f64 / 1e6;
            ctx.charge_ns((ms * 1e6) as u64);
            {
                let mut sh = self.shared.borrow_mut();
                sh.status.set(x, self.me, Status::Valid);
                sh.stats.received(x, created, ctx.now());
            }
            self.relay(ctx, x);
            self.choose_tip(ctx, Some(x));
            let mut i = 0;
            while i < self.orphans.len() {
                let o = self.orphans[i];
                if self.shared.borrow().tree.get(o).parent == x {
                    self.orphans.swap_remove(i);
                    todo.push(o);
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Fork choice: the longest valid chain through the latest justified
    /// checkpoint. `hint` is a newly valid block (cheap path); `None` rescans.
    fn choose_tip(&mut self, ctx: &mut PosCtx<'_>, hint: Option<BlockIdx>) {
        let new_tip = {
            let sh = self.shared.borrow();
            let j = self.justified.1;
            let tip_ok = sh.tree.is_ancestor(j, self.tip);
            match hint {
                Some(b) if tip_ok => {
                    (sh.tree.is_ancestor(j, b) && sh.tree.better(b, self.tip)).then_some(b)
                }
                _ => {
                    // Rescan: the highest valid descendant of the justified block.
                    let mut found = None;
                    'outer: for h in (sh.tree.get(j).height as usize..sh.tree.by_height.len()).rev()
                    {
                        for &x in &sh.tree.by_height[h] {
                            if sh.status.get(x, self.me) == Status::Valid
                                && sh.tree.is_ancestor(j, x)
                            {
                                found = Some(x);
                                break 'outer;
                            }
                        }
                    }
                    found.filter(|&x| x != self.tip)
                }
            }
        };
        let Some(b) = new_tip else {
            return;
        };
        let counted = {
            let mut guard = self.shared.borrow_mut();
            let sh = &mut *guard;
            let old = self.tip;
            let f = sh.tree.fork_point(old, b);
            let mut counted = false;
            if f != old {
                sh.stats.node_reorgs += 1;
                let depth = sh.tree.get(old).height - sh.tree.get(f).height;
                sh.stats.max_reorg_depth = sh.stats.max_reorg_depth.max(depth);
                if !sh.tree.blocks[old as usize].reorged {
                    sh.tree.blocks[old as usize].reorged = true;
                    sh.stats.reorgs += 1;
                    counted = true;
                }
            }
            counted
        };
        if counted {
            ctx.reorg();
        }
        self.tip = b;
    }

    fn vote(&mut self, ctx: &mut PosCtx<'_>, epoch: u64) {
        self.arm_vote(ctx, epoch + 1);
        if self.silent(ctx) || self.cfg.stake[self.me as usize] <= 0.0 {
            return;
        }
        let boundary = epoch * u64::from(self.cfg.p.epoch_slots);
        let target = {
            let sh = self.shared.borrow();
            let mut x = self.tip;
            while x != GENESIS && sh.tree.get(x).slot > boundary {
                x = sh.tree.get(x).parent;
            }
            x
        };
        let source = self.justified;
        if target == source.1 || epoch <= source.0 {
            // Nothing new on this chain since the justified checkpoint.
            return;
        }
        ctx.charge_sign();
        let msg = PosMsg::Vote {
            voter: self.me,
            source,
            target: (epoch, target),
        };
        ctx.broadcast(msg);
        self.tally(ctx, self.me, source, (epoch, target));
    }

    fn tally(
        &mut self,
        ctx: &mut PosCtx<'_>,
        voter: NodeId,
        source: Checkpoint,
        target: Checkpoint,
    ) {
        if !self.voted.insert((target.0, voter)) {
            return; // one vote per validator per target epoch
        }
        let w = self.cfg.stake[voter as usize];
        let key = (target.0, target.1, source.0, source.1);
        *self.tallies.entry(key).or_insert(0.0) += w;
        self.check_justification(ctx);
    }

    /// Justify every supermajority link from a justified source; finalize.
    fn check_justification(&mut self, ctx: &mut PosCtx<'_>) {
        let mut changed = false;
        loop {
            let next = self.tallies.iter().find_map(|(&(te, tb, se, sb), &w)| {
                (w >= SUPERMAJORITY
                    && self.justified_set.contains(&(se, sb))
                    && !self.justified_set.contains(&(te, tb)))
                .then_some(((se, sb), (te, tb)))
            });
            let Some((source, target)) = next else {
                break;
            };
            changed = true;
            self.justified_set.insert(target);
            if target.0 > self.justified.0 {
                self.justified = target;
            }
            {
                let mut sh = self.shared.borrow_mut();
                sh.max_justified_epoch = sh.max_justified_epoch.max(target.0);
            }
            if target.0 == source.0 + 1 && source.0 >= self.finalized.0 && source != self.finalized
            {
                self.finalize(ctx, source);
            }
        }
        // Old tallies are never needed again.
        let keep_from = self.finalized.0;
        self.tallies.retain(|k, _| k.0 > keep_from);
        self.voted.retain(|k| k.0 > keep_from);
        if changed {
            self.choose_tip(ctx, None);
        }
    }

    fn finalize(&mut self, ctx: &mut PosCtx<'_>, cp: Checkpoint) {
        self.finalized = cp;
        let now = ctx.now();
        let mut blocks = Vec::new();
        {
            let mut guard = self.shared.borrow_mut();
            let sh = &mut *guard;
            sh.max_finalized_epoch = sh.max_finalized_epoch.max(cp.0);
            let h = sh.tree.get(cp.1).height;
            sh.max_finalized_height = sh.max_finalized_height.max(h);
            let mut x = cp.1;
            while x != GENESIS && sh.tree.get(x).height > self.committed {
                let blk = sh.tree.get(x);
                if let Some(r) = blk.store {
                    blocks.push((blk.height, r));
                }
                if !sh.first_finalized[x as usize] {
                    sh.first_finalized[x as usize] = true;
                    let d = now.saturating_sub(blk.created_ns) / 1_000;
                    sh.finality_delay_us
                        .saturating_record(d.clamp(1, crate::metrics::MAX_LATENCY_US));
                }
                x = blk.parent;
            }
            self.committed = self.committed.max(h);
        }
        for &(h, r) in blocks.iter().rev() {
            ctx.commit(u64::from(h), r);
        }
    }
}

impl Replica for PosReplica {
    type Msg = PosMsg;
    type Timer = PosTimer;

    fn on_start(&mut self, ctx: &mut PosCtx<'_>) {
        self.arm_leader(ctx, 0);
        self.arm_vote(ctx, 1);
    }

    fn on_client_tx(&mut self, _ctx: &mut PosCtx<'_>, tx: TxRef) {
        self.shared.borrow_mut().pool.add(tx);
    }

    fn on_message(&mut self, ctx: &mut PosCtx<'_>, from: NodeId, msg: PosMsg) {
        if self.silent(ctx) {
            return;
        }
        match msg {
            PosMsg::Block(b, _) => self.receive_block(ctx, from, b),
            PosMsg::GetData(b) => {
                let (valid, size) = {
                    let sh = self.shared.borrow();
                    (
                        sh.status.get(b, self.me) == Status::Valid,
                        sh.tree.get(b).size_bytes,
                    )
                };
                if valid {
                    ctx.send(from, PosMsg::Block(b, size));
                }
            }
            PosMsg::Vote {
                voter,
                source,
                target,
            } => {
                ctx.charge_verify(1);
                self.tally(ctx, voter, source, target);
            }
            PosMsg::GetTip => {
                if self.tip != GENESIS {
                    let size = self.shared.borrow().tree.get(self.tip).size_bytes;
                    ctx.send(from, PosMsg::Block(self.tip, size));
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut PosCtx<'_>, timer: PosTimer) {
        match timer {
            PosTimer::Lead(slot) => self.lead(ctx, slot),
            PosTimer::Vote(epoch) => self.vote(ctx, epoch),
        }
    }

    fn on_recover(&mut self, ctx: &mut PosCtx<'_>) {
        {
            let mut sh = self.shared.borrow_mut();
            for b in 1..sh.tree.len() as BlockIdx {
                let s = sh.status.get(b, self.me);
                if s == Status::Requested || s == Status::Have {
                    sh.status.set(b, self.me, Status::Unknown);
                }
            }
        }
        self.orphans.clear();
        let now_slot = self.slot_at(ctx.now());
        self.arm_leader(ctx, now_slot);
        let e = now_slot / u64::from(self.cfg.p.epoch_slots) + 1;
        self.arm_vote(ctx, e);
        let peers: Vec<NodeId> = self.shared.borrow().graph.of(self.me).to_vec();
        for p in peers {
            ctx.send(p, PosMsg::GetTip);
        }
    }
}
