//! The sans-IO protocol interface every consensus protocol implements.
//!
//! A protocol is a per-node state machine ([`Replica`]) driven by the simulator
//! through four inputs (start, client transaction, message, timer) plus recovery
//! after a crash. It never touches time, threads, sockets or randomness directly:
//! everything goes through the [`Ctx`] handed to each call — the current virtual
//! time, sending, timers, CPU charges, the node's own random stream, the shared
//! immutable block store, and the commit/metrics hooks.
//!
//! # Time and CPU inside a handler
//! A handler starts at `max(arrival, the time a core of the node is free)`. Every
//! `charge_*` call advances the node's virtual clock ([`Ctx::now`]) by the cost from
//! the node's [`crate::node::CpuCosts`] (scaled by a slow-node fault). A message sent
//! or a timer set mid-handler takes effect at the clock at that point, so a leader
//! that signs then broadcasts sends after the signature; the node's core stays busy
//! until the handler's total cost has elapsed, which is what makes a busy leader the
//! bottleneck.
//!
//! # Adding a protocol
//! See [`crate::protocols`]: implement [`Protocol`] (the factory) and [`Replica`],
//! then add one line to [`crate::protocols::REGISTRY`].

use crate::kernel::EventId;
use crate::node::ChargeModel;
use crate::scenario::{Scenario, ScenarioError};
use crate::store::BlockStore;
use simrand::Stream;

pub use crate::kernel::TimeNs;

/// A node index, global over all shards (shard `s` owns a contiguous range).
pub type NodeId = u32;

/// A client transaction (or cross-shard operation) as seen by a protocol: a handle
/// into the simulator's operation arena plus its size on the wire.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxRef {
    /// Index into the simulator's operation arena.
    pub id: u32,
    /// Bytes on the wire: encoded transaction plus any payload carried with it.
    pub size_bytes: u32,
}

/// A handle into the simulator's immutable block store.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct BlockRef(pub u32);

/// A protocol message. Sizes are explicit: they drive serialisation delay and
/// the byte counters.
pub trait Message: Clone {
    /// Size on the wire in bytes (headers, signatures and carried payload).
    fn size_bytes(&self) -> u64;
    /// A short static name of the message type (`"prepare"`, `"block"`, …) used
    /// for per-type message and byte counts.
    fn kind(&self) -> &'static str;
    /// Whether this message skips the receiver's downlink queue: it is delivered
    /// when its last byte arrives plus its own downlink serialisation, without
    /// waiting behind (or delaying) other messages on that downlink, and costs one
    /// kernel event per delivery instead of two. Default: when it fits in one packet
    /// ([`crate::net::SINGLE_PACKET_BYTES`]); a real interface interleaves packets of
    /// concurrent transfers, so a vote does not wait for a whole block ahead of it.
    fn skips_downlink_queue(&self) -> bool {
        crate::net::fits_one_packet(self.size_bytes())
    }
}

/// Handle of a pending timer, for [`Ctx::cancel_timer`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    slot: u32,
    gen: u32,
}

/// Table of live timers: maps a [`TimerId`] to its kernel event so that a
/// cancelled timer is removed from the queue (and never fires). Slots are reused.
#[derive(Default)]
pub(crate) struct TimerIds {
    entries: Vec<(u32, Option<EventId>)>,
    free: Vec<u32>,
}

impl TimerIds {
    /// Allocate a timer id (its event is attached by [`TimerIds::attach`]).
    pub(crate) fn alloc(&mut self) -> TimerId {
        match self.free.pop() {
            Some(slot) => TimerId {
                slot,
                gen: self.entries[slot as usize].0,
            },
            None => {
                let slot = self.entries.len() as u32;
                self.entries.push((0, None));
                TimerId { slot, gen: 0 }
            }
        }
    }

    /// Attach the kernel event of a freshly set timer.
    pub(crate) fn attach(&mut self, id: TimerId, ev: EventId) {
        let e = &mut self.entries[id.slot as usize];
        assert_eq!(e.0, id.gen, "timer id attached after release");
        e.1 = Some(ev);
    }

    /// Release a timer: on fire (returns whether it was still live) or on cancel
    /// (returns its event to cancel in the queue).
    pub(crate) fn release(&mut self, id: TimerId) -> Option<Option<EventId>> {
        let e = self.entries.get_mut(id.slot as usize)?;
        if e.0 != id.gen {
            return None;
        }
        e.0 = e.0.wrapping_add(1);
        let ev = e.1.take();
        self.free.push(id.slot);
        Some(ev)
    }
}

/// Byzantine behaviours a scenario can assign to nodes. The simulator only
/// reports the mark through [`Ctx::byzantine`]; each protocol decides what a
/// behaviour means for it (and may ignore ones that make no sense for it).
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ByzantineBehaviour {
    /// Send conflicting proposals/votes to different peers.
    Equivocate,
    /// Withhold messages (votes, blocks) it should send.
    Withhold,
    /// Proof-of-work/stake: keep mined blocks private and release strategically.
    SelfishMine,
    /// Stay silent entirely while appearing alive (no messages at all).
    Silent,
}

/// The per-node state machine of a consensus protocol.
///
/// All methods are called by the simulator with a [`Ctx`]; none may block or use
/// wall-clock time or OS randomness.
pub trait Replica {
    /// The protocol's message type.
    type Msg: Message;
    /// The protocol's timer payload (returned to [`Replica::on_timer`]).
    type Timer: Copy + std::fmt::Debug;

    /// Called once at time 0 on every node.
    fn on_start(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Timer>);
    /// A client transaction arrived at this node (it is the shard's gateway for it).
    fn on_client_tx(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Timer>, tx: TxRef);
    /// A message from `from` arrived.
    fn on_message(
        &mut self,
        ctx: &mut Ctx<'_, Self::Msg, Self::Timer>,
        from: NodeId,
        msg: Self::Msg,
    );
    /// A timer set with [`Ctx::set_timer`] fired (cancelled timers never fire;
    /// timers set before a crash never fire after it).
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Timer>, timer: Self::Timer);
    /// Whether the simulator should call [`Replica::prefetch_for`] (a protocol whose
    /// replicas do not implement it leaves this `false`, and the simulator skips the
    /// look at the next event altogether).
    const PREFETCH_HINTS: bool = false;
    /// A hint: `msg` is likely the next message this replica handles. A replica may
    /// prefetch the state handling it will touch (see `ledger_core::prefetch`); it must
    /// not change anything. The default does nothing.
    #[inline]
    fn prefetch_for(&self, msg: &Self::Msg) {
        let _ = msg;
    }
    /// Called when a crashed node restarts. The simulator does not touch replica
    /// state; the replica must itself discard what it would not have kept durable
    /// (volatile state, pending timers are already gone) and re-arm its timers.
    fn on_recover(&mut self, ctx: &mut Ctx<'_, Self::Msg, Self::Timer>);
}

/// The factory of a protocol: built once per run from the scenario, creates the
/// replicas of each shard's committee.
pub trait Protocol: Sized {
    /// The replica type.
    type Replica: Replica;
    /// The name used in scenarios (`consensus = "..."`).
    const NAME: &'static str;

    /// Build from the scenario (typically reading `scenario.protocol_params(NAME)`
    /// and the shared block/batch limits). Errors are bad input.
    fn from_scenario(scenario: &Scenario) -> Result<Self, ScenarioError>;

    /// How many Byzantine (or crashed, for crash-fault-tolerant protocols) nodes a
    /// committee of `committee_size` tolerates; validation rejects scenarios that
    /// mark more Byzantine nodes in one shard than this.
    fn max_faulty(&self, committee_size: usize) -> usize;

    /// Called once by the simulator before any replica is created, with the run's
    /// resolved topology (node regions as the run places them) and the committee
    /// of each shard, for protocols whose parameters depend on where their replicas
    /// sit (Raft scales its timeouts with the committee's worst round trip). The
    /// default does nothing.
    fn prepare(&mut self, _topology: &crate::net::Topology, _committees: &[Vec<NodeId>]) {}

    /// Create the replica of node `me` in `shard`, whose committee is `committee`
    /// (sorted node ids, including `me`).
    fn replica(&self, shard: u32, me: NodeId, committee: &[NodeId]) -> Self::Replica;

    /// Protocol-specific figures of the finished run (for example block
    /// propagation times and total hashes of proof-of-work), written to
    /// `summary.json` under the key `chain`. Called once after the run; the
    /// default (BFT protocols) has none.
    fn extras(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A message queued by a handler, leaving at `depart_ns`.
pub(crate) struct Outgoing<M> {
    pub(crate) to: NodeId,
    pub(crate) depart_ns: TimeNs,
    pub(crate) msg: M,
}

/// A timer operation requested by a handler.
pub(crate) enum TimerOp<T> {
    /// Arm: fire `timer` at `at_ns`; the id was pre-allocated.
    Set {
        at_ns: TimeNs,
        timer: T,
        id: TimerId,
    },
    /// Cancel a pending timer.
    Cancel(TimerId),
}

/// Side effects of one handler call, drained by the simulator afterwards.
/// Buffers are reused across calls (no per-event allocation in steady state).
pub(crate) struct Effects<M, T> {
    pub(crate) out: Vec<Outgoing<M>>,
    pub(crate) timers: Vec<TimerOp<T>>,
    pub(crate) commits: Vec<(u64, BlockRef, TimeNs)>,
    pub(crate) includes: Vec<(BlockRef, TimeNs)>,
    pub(crate) view_changes: u64,
    pub(crate) stale_blocks: u64,
    pub(crate) reorgs: u64,
}

impl<M, T> Default for Effects<M, T> {
    fn default() -> Self {
        Effects {
            out: Vec::new(),
            timers: Vec::new(),
            commits: Vec::new(),
            includes: Vec::new(),
            view_changes: 0,
            stale_blocks: 0,
            reorgs: 0,
        }
    }
}

/// What a handler may do and know. Created by the simulator for one call.
pub struct Ctx<'a, M, T> {
    pub(crate) start_ns: TimeNs,
    pub(crate) cpu_ns: u64,
    pub(crate) me: NodeId,
    pub(crate) shard: u32,
    pub(crate) committee: &'a [NodeId],
    pub(crate) charges: &'a ChargeModel,
    pub(crate) rng: &'a mut Stream,
    pub(crate) byzantine: Option<ByzantineBehaviour>,
    pub(crate) blocks: &'a mut BlockStore,
    pub(crate) fx: &'a mut Effects<M, T>,
    pub(crate) timer_ids: &'a mut TimerIds,
}

impl<'a, M: Message, T: Copy> Ctx<'a, M, T> {
    /// Current virtual time of this node: handler start plus CPU charged so far.
    #[inline]
    pub fn now(&self) -> TimeNs {
        self.start_ns + self.cpu_ns
    }

    /// This node's id.
    #[inline]
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// This node's shard.
    #[inline]
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// The sorted node ids of this shard's committee (including this node).
    #[inline]
    pub fn committee(&self) -> &[NodeId] {
        self.committee
    }

    /// Send `msg` to `to`; it leaves at [`Ctx::now`] and queues on this node's
    /// uplink. Sending to oneself delivers locally without network cost.
    #[inline]
    pub fn send(&mut self, to: NodeId, msg: M) {
        let depart_ns = self.now();
        self.fx.out.push(Outgoing { to, depart_ns, msg });
    }

    /// Send `msg` to every committee member except this node (in id order, so the
    /// uplink serialises copies in that order).
    pub fn broadcast(&mut self, msg: M) {
        let depart_ns = self.now();
        for &to in self.committee {
            if to != self.me {
                self.fx.out.push(Outgoing {
                    to,
                    depart_ns,
                    msg: msg.clone(),
                });
            }
        }
    }

    /// Fire `timer` on this node `after_ns` from [`Ctx::now`].
    #[inline]
    pub fn set_timer(&mut self, after_ns: TimeNs, timer: T) -> TimerId {
        let id = self.timer_ids.alloc();
        self.fx.timers.push(TimerOp::Set {
            at_ns: self.now().saturating_add(after_ns),
            timer,
            id,
        });
        id
    }

    /// Cancel a timer (no effect if it already fired or was cancelled).
    #[inline]
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.fx.timers.push(TimerOp::Cancel(id));
    }

    /// Charge the verification of `n_sigs` signatures.
    #[inline]
    pub fn charge_verify(&mut self, n_sigs: u64) {
        self.cpu_ns += self.charges.verify(n_sigs);
    }

    /// Charge one signature.
    #[inline]
    pub fn charge_sign(&mut self) {
        self.cpu_ns += self.charges.sign();
    }

    /// Charge hashing `bytes` bytes.
    #[inline]
    pub fn charge_hash(&mut self, bytes: u64) {
        self.cpu_ns += self.charges.hash(bytes);
    }

    /// Charge executing `n_txs` transactions.
    #[inline]
    pub fn charge_execute(&mut self, n_txs: u64) {
        self.cpu_ns += self.charges.execute(n_txs);
    }

    /// Charge an arbitrary amount of CPU time (scaled by a slow-node fault), for
    /// protocol-specific work such as proof-of-work mining attempts.
    #[inline]
    pub fn charge_ns(&mut self, ns: u64) {
        self.cpu_ns += self.charges.raw(ns);
    }

    /// This node's own random stream (`node/<id>` under the master seed).
    #[inline]
    pub fn rng(&mut self) -> &mut Stream {
        self.rng
    }

    /// The Byzantine behaviour assigned to this node right now, if any.
    #[inline]
    pub fn byzantine(&self) -> Option<ByzantineBehaviour> {
        self.byzantine
    }

    /// Create an immutable block of `txs` on top of `parent`. Its digest commits to
    /// the parent digest, the creator, the transactions and a store-wide sequence
    /// number, so two proposals with the same contents are still distinct blocks.
    pub fn make_block(&mut self, txs: &[TxRef], parent: Option<BlockRef>) -> BlockRef {
        self.blocks.make_block(self.me, txs, parent)
    }

    /// The transactions of a block.
    #[inline]
    pub fn block_txs(&self, b: BlockRef) -> &[TxRef] {
        self.blocks.txs(b)
    }

    /// A block's size on the wire: header plus its transactions.
    #[inline]
    pub fn block_size_bytes(&self, b: BlockRef) -> u64 {
        self.blocks.size_bytes(b)
    }

    /// A block's deterministic 32-byte digest.
    #[inline]
    pub fn block_digest(&self, b: BlockRef) -> [u8; 32] {
        self.blocks.digest(b)
    }

    /// A block's parent, if it has one.
    #[inline]
    pub fn block_parent(&self, b: BlockRef) -> Option<BlockRef> {
        self.blocks.parent(b)
    }

    /// The node that created a block.
    #[inline]
    pub fn block_creator(&self, b: BlockRef) -> NodeId {
        self.blocks.creator(b)
    }

    /// This node decides `block` at `height` (heights start at 1 and are dense per
    /// shard). The simulator checks that honest replicas of a shard never commit
    /// different blocks at one height (a violation stops the run), executes the
    /// block in the ledger on the first commit of `(shard, height)` (in height
    /// order) and completes its transactions; later commits only count.
    #[inline]
    pub fn commit(&mut self, height: u64, block: BlockRef) {
        let t = self.now();
        self.fx.commits.push((height, block, t));
    }

    /// Count a view change / leader election / epoch change.
    #[inline]
    pub fn view_change(&mut self) {
        self.fx.view_changes += 1;
    }

    /// Longest-chain protocols: `block` was included in this node's chain (the
    /// first inclusion of each transaction is its latency-to-inclusion).
    #[inline]
    pub fn include(&mut self, block: BlockRef) {
        let t = self.now();
        self.fx.includes.push((block, t));
    }

    /// Longest-chain protocols: count a block that ended up off the main chain.
    /// Call it once per stale block, from one node (e.g. the node that orphaned it
    /// first), since the counter is global.
    #[inline]
    pub fn stale_block(&mut self) {
        self.fx.stale_blocks += 1;
    }

    /// Longest-chain protocols: count a chain reorganisation.
    #[inline]
    pub fn reorg(&mut self) {
        self.fx.reorgs += 1;
    }
}
