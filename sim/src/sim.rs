//! The simulation engine: ties the kernel, network, nodes, faults, clients,
//! protocol replicas, ledger execution and metrics together.
//!
//! [`Simulation`] is generic over the replica type and monomorphised per
//! protocol; the hot loop has no dynamic dispatch and, once warmed up, no
//! per-event allocation (effect buffers and the event slab are reused).

use crate::arena::{RetiringArena, Slot};
use crate::client::{self, ClientTx, CrossShardShaper, Op, Phase, TxStatus};
use crate::committee::Committees;
use crate::error::SimError;

/// The result of the simulator's internal steps: the error boxed, so that `Ok` is one
/// word returned in a register (a `Result<(), SimError>` is 80 bytes returned through
/// memory and copied when held in a local, on every event).
type SimResult<T = ()> = Result<T, Box<SimError>>;

/// A kernel limit hit by the run of `seed`.
fn kernel_error(seed: u64, source: crate::kernel::KernelError) -> Box<SimError> {
    Box::new(SimError::Kernel { seed, source })
}

/// Progress is reported (and a cancel request honoured) every this much simulated time.
const PROGRESS_EVERY_NS: TimeNs = NS_PER_S / 10;
use crate::faults::FaultSpec;
use crate::kernel::{EventQueue, Reserved, TimeNs, NS_PER_MS, NS_PER_S};
use crate::ledger::{genesis_of, Executor};
use crate::metrics::Metrics;
use crate::net::{LinkTarget, Network, Topology};
use crate::node::ChargeModel;
use crate::protocol::{
    BlockRef, ByzantineBehaviour, Ctx, Effects, Message, NodeId, Protocol, Replica, TimerId,
    TimerIds, TimerOp, TxRef,
};
use crate::run::RunOptions;
use crate::scenario::{Scenario, ScenarioError};
use crate::store::BlockStore;
use ledger_core::prefetch::prefetch_lines;
use ledger_core::{Receipt, ShardOp, Vote};
use simrand::Stream;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use workloads::{Consortium, Generator, TxRequest};

/// An operation a block has just executed: what handling its receipt needs, copied out
/// of the arena while the entry is in cache.
struct Executed {
    op_id: u32,
    client_tx: u32,
    shard: u32,
    kind: OpKind,
}

/// The variant of a [`ShardOp`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum OpKind {
    Tx,
    Prepare,
    Commit,
    Abort,
}

impl OpKind {
    fn of(op: &ShardOp) -> OpKind {
        match op {
            ShardOp::Tx(_) => OpKind::Tx,
            ShardOp::Prepare { .. } => OpKind::Prepare,
            ShardOp::Commit { .. } => OpKind::Commit,
            ShardOp::Abort { .. } => OpKind::Abort,
        }
    }
}

/// Events of the kernel.
pub(crate) enum Event<M, T> {
    /// A message reaches the receiver's network interface (then its downlink).
    /// (Its size is the message's `size_bytes()`, not a field: the largest variant
    /// sets the size of every event.)
    Wire {
        from: NodeId,
        to: NodeId,
        last_byte_ns: TimeNs,
        msg: M,
    },
    /// A message is fully received by a node.
    Deliver { from: NodeId, to: NodeId, msg: M },
    /// A timer fires.
    Timer {
        node: NodeId,
        epoch: u32,
        id: TimerId,
        timer: T,
    },
    /// A client transaction is fully received by its gateway.
    ClientTx { node: NodeId, tx: TxRef },
    /// A parked workload request is due.
    Submit { slot: u32 },
    /// A node may start its next queued work item.
    Wake { node: NodeId },
    /// Fault `index` starts (`start`) or ends.
    Fault { index: u32, start: bool },
    /// Client resend deadlines are due (see `Simulation::resends`).
    ClientTimeout,
}

enum Work<M, T> {
    Start,
    Msg { from: NodeId, msg: M },
    Timer { id: TimerId, timer: T },
    Tx(TxRef),
    Recover,
}

struct NodeState<M, T> {
    shard: u32,
    cores_free: Vec<TimeNs>,
    inbox: VecDeque<Work<M, T>>,
    wake_pending: bool,
    crashed: bool,
    epoch: u32,
    byzantine: Option<ByzantineBehaviour>,
    rng: Stream,
}

impl<M, T> NodeState<M, T> {
    #[inline]
    fn earliest_core(&self) -> (usize, TimeNs) {
        let mut best = (0, self.cores_free[0]);
        for (i, &t) in self.cores_free.iter().enumerate().skip(1) {
            if t < best.1 {
                best = (i, t);
            }
        }
        best
    }
}

/// Most heights an honest commit may run ahead of the heights decided so far on its
/// shard (a bound on the growth of `ShardCommits::decided` per commit).
const MAX_HEIGHT_JUMP: u64 = 1 << 24;

struct ShardCommits {
    /// The block decided at height `h` is `decided[h - 1]` (heights are dense from 1).
    decided: Vec<Option<BlockRef>>,
    pending: BTreeMap<u64, (BlockRef, TimeNs)>,
    next_exec: u64,
}

/// Counters and digest produced by a finished simulation.
pub(crate) struct Outcome {
    pub(crate) metrics: Metrics,
    pub(crate) net: crate::net::NetStats,
    pub(crate) events: u64,
    pub(crate) sim_time_ns: u64,
    pub(crate) digest: [u8; 32],
    pub(crate) tx_records: Vec<ClientTx>,
    pub(crate) ledger: Option<ledger_core::Ledger>,
    pub(crate) peak_live_ops: usize,
    pub(crate) peak_live_txs: usize,
}

type MsgOf<P> = <<P as Protocol>::Replica as Replica>::Msg;
type TimerOf<P> = <<P as Protocol>::Replica as Replica>::Timer;
type EventOf<P> = Event<MsgOf<P>, TimerOf<P>>;
type WorkOf<P> = Work<MsgOf<P>, TimerOf<P>>;

/// A simulation of protocol `P` over a scenario.
pub struct Simulation<'o, P: Protocol> {
    scenario: Scenario,
    opts: &'o RunOptions,
    seed: u64,
    queue: EventQueue<EventOf<P>>,
    replicas: Vec<P::Replica>,
    nodes: Vec<NodeState<MsgOf<P>, TimerOf<P>>>,
    charges: Vec<ChargeModel>,
    committees: Vec<Vec<NodeId>>,
    net: Network,
    blocks: BlockStore,
    fx: Effects<MsgOf<P>, TimerOf<P>>,
    timer_ids: TimerIds,
    /// Operations by id; an operation retires once executed (see [`crate::arena`]).
    ops: RetiringArena<Op>,
    /// Client transactions by id; one retires once final, unless every transaction is
    /// kept for `metrics.record_transactions`.
    txs: RetiringArena<ClientTx>,
    /// `None` when the scenario offers no load (`offered_tps = 0`, open loop).
    generator: Option<Generator>,
    closed_loop: bool,
    /// The next workload request, kept outside the event queue under its place in the
    /// event order (one request at a time in open loop: no push and pop per request).
    next_request: Option<(Reserved, TxRequest)>,
    /// Further requests due at once (closed loop), each behind an `Event::Submit`.
    parked: Vec<Option<TxRequest>>,
    /// The `cross_shard_fraction` shaper.
    shaper: Option<CrossShardShaper>,
    /// Client resend deadlines `(due, operation, attempt)`, due times non-decreasing
    /// (every timeout is the same length), so only the head needs an event.
    resends: VecDeque<(TimeNs, u32, u8)>,
    /// Whether a `ClientTimeout` event is scheduled.
    resend_armed: bool,
    /// `client_timeout_ms` in ns (0: no resends).
    client_timeout_ns: TimeNs,
    parked_free: Vec<u32>,
    commits: Vec<ShardCommits>,
    executor: Executor,
    metrics: Metrics,
    digest: blake3::Hasher,
    end_ns: TimeNs,
    events: u64,
    trace: Option<std::io::BufWriter<std::fs::File>>,
    max_inbox: usize,
}

/// Cap on each shard's in-memory block log when `metrics.keep_ledger_log` is on
/// (a named limit; past it the log stops and export reports the overflow).
pub const LEDGER_LOG_MAX_BYTES_PER_SHARD: usize = 1 << 30;

/// Most client transactions one run may hold (a named limit; `u32` handles).
pub const MAX_CLIENT_TXS: usize = crate::arena::MAX_ARENA_IDS as usize;

/// Most client transactions reserved for up front when every one is kept for
/// `record_transactions` (offered rate × duration, capped).
pub const RESERVE_MAX_TXS: usize = 1 << 22;

/// Room the operation and transaction arenas start with (they hold what is in flight:
/// `large` peaks at about 13 k transactions and 7 k operations).
const ARENA_START_CAPACITY: usize = 1 << 14;

fn s_to_ns(s: f64) -> u64 {
    (s * NS_PER_S as f64) as u64
}

impl<'o, P: Protocol> Simulation<'o, P> {
    /// Build a simulation of `scenario` (already validated) with protocol `protocol`.
    pub fn new(
        scenario: &Scenario,
        protocol: &mut P,
        opts: &'o RunOptions,
    ) -> Result<Self, SimError> {
        let seed = scenario.seed;
        let shards = scenario.shards;
        let nps = scenario.nodes_per_shard;
        let n = (shards * nps) as usize;
        let bad = |path: &str, m: String| {
            SimError::Scenario(ScenarioError::InvalidValue {
                source_name: scenario.name.clone(),
                path: path.into(),
                message: m,
            })
        };
        let consortium = Consortium::new(&scenario.consortium, seed)
            .map_err(|e| bad("consortium", e.to_string()))?;
        let historic = workloads::historic_records(&scenario.workload.hospital, &consortium);
        let genesis = genesis_of(&consortium, historic).map_err(|m| bad("consortium", m))?;
        let no_load = scenario.offered_tps == 0.0
            && scenario.workload.trace.is_none()
            && scenario.workload.arrival.process != workloads::ArrivalKind::Closed;
        let generator = if no_load {
            None
        } else {
            Some(
                Generator::new(&scenario.workload, &consortium, scenario.offered_tps, seed)
                    .map_err(|e| bad("workload", e.to_string()))?,
            )
        };
        let shaper = scenario
            .cross_shard_fraction
            .and_then(|f| CrossShardShaper::new(f, shards, &consortium, seed));
        let assigned = Committees::assign(
            scenario.committee_assignment,
            shards,
            nps,
            seed,
            &consortium,
        );
        let node_regions = assigned.node_regions(&consortium);
        let topo = Topology::new(&scenario.network, n, &node_regions).map_err(|m| {
            SimError::Scenario(ScenarioError::InvalidValue {
                source_name: scenario.name.clone(),
                path: "network".into(),
                message: m,
            })
        })?;
        let committees = assigned.members;
        protocol.prepare(&topo, &committees);
        let net = Network::new(topo, &scenario.network, seed);
        let mut replicas = Vec::with_capacity(n);
        let mut nodes = Vec::with_capacity(n);
        for me in 0..n as NodeId {
            let s = assigned.shard_of[me as usize];
            replicas.push(protocol.replica(s, me, &committees[s as usize]));
            nodes.push(NodeState {
                shard: s,
                cores_free: vec![0; scenario.node.cores as usize],
                inbox: VecDeque::new(),
                wake_pending: false,
                crashed: false,
                epoch: 0,
                byzantine: None,
                rng: Stream::indexed(seed, "node", u64::from(me)),
            });
        }
        let end_ns = s_to_ns(scenario.duration_s);
        let warmup_ns = s_to_ns(scenario.warmup_s);
        let bucket_ns = s_to_ns(scenario.metrics.timeseries_bucket_s);
        let trace = match &opts.trace_path {
            None => None,
            Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
                |e| SimError::Trace {
                    path: p.display().to_string(),
                    source: e,
                },
            )?)),
        };
        // Room for the expected client transactions and operations up front: the
        // arenas then never reallocate (and copy hundreds of MB) mid-run. Capped,
        // and only address space: untouched capacity costs no memory.
        let expected_txs = ((scenario.offered_tps * scenario.duration_s) as usize)
            .saturating_add(1024)
            .min(RESERVE_MAX_TXS);
        Ok(Simulation {
            scenario: scenario.clone(),
            opts,
            seed,
            queue: EventQueue::new(),
            replicas,
            nodes,
            charges: vec![ChargeModel::new(&scenario.node); n],
            committees,
            net,
            blocks: BlockStore::new(),
            fx: Effects::default(),
            timer_ids: TimerIds::default(),
            ops: RetiringArena::new(ARENA_START_CAPACITY, false),
            txs: if scenario.metrics.record_transactions {
                RetiringArena::new(expected_txs, true)
            } else {
                RetiringArena::new(ARENA_START_CAPACITY, false)
            },
            closed_loop: generator.as_ref().is_some_and(Generator::is_closed_loop),
            generator,
            next_request: None,
            parked: Vec::new(),
            shaper,
            resends: VecDeque::new(),
            resend_armed: false,
            client_timeout_ns: (scenario.client_timeout_ms * NS_PER_MS as f64) as TimeNs,
            parked_free: Vec::new(),
            commits: (0..shards)
                .map(|_| ShardCommits {
                    decided: Vec::new(),
                    pending: BTreeMap::new(),
                    next_exec: 1,
                })
                .collect(),
            executor: Executor::new(
                genesis,
                shards,
                scenario
                    .metrics
                    .keep_ledger_log
                    .then_some(LEDGER_LOG_MAX_BYTES_PER_SHARD),
                scenario.account_locking.to_ledger(),
            ),
            metrics: Metrics::new(end_ns, warmup_ns, bucket_ns),
            digest: blake3::Hasher::new_derive_key("ledgersim sim trace digest v1"),
            end_ns,
            events: 0,
            trace,
            max_inbox: scenario.node.max_inbox as usize,
        })
    }

    #[inline]
    fn schedule(&mut self, at: TimeNs, ev: EventOf<P>) -> SimResult<crate::kernel::EventId> {
        let seed = self.seed;
        self.queue
            .schedule(at, ev)
            .map_err(|e| kernel_error(seed, e))
    }

    fn trace_line(&mut self, t: TimeNs, line: std::fmt::Arguments<'_>) -> SimResult {
        if let Some(w) = &mut self.trace {
            let r = writeln!(w, "{t} {line}");
            if let Err(e) = r {
                return Err(Box::new(SimError::Trace {
                    path: self
                        .opts
                        .trace_path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    source: e,
                }));
            }
        }
        Ok(())
    }

    /// Run to the end of the scenario.
    pub(crate) fn run(mut self) -> Result<Outcome, SimError> {
        self.run_events().map_err(|e| *e)?;
        self.outcome()
    }

    /// Schedule the faults, start the nodes and handle every event up to the end.
    fn run_events(&mut self) -> SimResult {
        // Faults.
        let faults = self.scenario.faults.clone();
        for (i, f) in faults.iter().enumerate() {
            let (at, until) = f.window_s();
            self.schedule(
                s_to_ns(at),
                Event::Fault {
                    index: i as u32,
                    start: true,
                },
            )?;
            if let Some(u) = until {
                self.schedule(
                    s_to_ns(u),
                    Event::Fault {
                        index: i as u32,
                        start: false,
                    },
                )?;
            }
        }
        // Start every node.
        for node in 0..self.nodes.len() as NodeId {
            self.arrive(node, 0, Work::Start)?;
        }
        // First requests.
        let first = match self.generator.as_mut() {
            None => Vec::new(),
            Some(g) if g.is_closed_loop() => g.initial_requests(),
            Some(g) => g.next_request().into_iter().collect(),
        };
        for r in first {
            self.park(r)?;
        }
        let mut next_progress = PROGRESS_EVERY_NS;
        loop {
            // The earliest of the queued events and the next request (`None`).
            let ev = match self.next_request {
                Some((r, _)) => self.queue.pop_payload_before(r),
                None => match self.queue.pop_payload() {
                    Some(ev) => Some(ev),
                    None => break,
                },
            };
            // The time of the event popped, or of the request now due.
            let t = self.queue.now();
            // Let the receiver of the likely next message start loading its state.
            if <P::Replica as Replica>::PREFETCH_HINTS {
                if let Some(Event::Deliver { to, msg, .. }) = self.queue.peek_next() {
                    if let Some(r) = self.replicas.get(*to as usize) {
                        r.prefetch_for(msg);
                    }
                }
            }
            if t > self.end_ns {
                break;
            }
            self.events += 1;
            if t >= next_progress {
                if let Some(flag) = &self.opts.cancel {
                    if flag.load(std::sync::atomic::Ordering::Relaxed) {
                        return Err(Box::new(SimError::Cancelled));
                    }
                }
                if let Some(cb) = &self.opts.progress {
                    cb(
                        t as f64 / NS_PER_S as f64,
                        self.end_ns as f64 / NS_PER_S as f64,
                    );
                }
                next_progress = t + PROGRESS_EVERY_NS;
            }
            match ev {
                Some(ev) => self.handle(t, ev)?,
                None => {
                    let (_, req) = self.next_request.take().expect("the next request was due");
                    if self.trace.is_some() {
                        self.trace_line(t, format_args!("submit request"))?;
                    }
                    self.submit(t, req)?;
                }
            }
        }
        Ok(())
    }

    /// What the run measured (after [`Self::run_events`]).
    fn outcome(mut self) -> Result<Outcome, SimError> {
        if let Some(cb) = &self.opts.progress {
            cb(
                self.end_ns as f64 / NS_PER_S as f64,
                self.end_ns as f64 / NS_PER_S as f64,
            );
        }
        if let Some(w) = &mut self.trace {
            w.flush().map_err(|e| SimError::Trace {
                path: self
                    .opts
                    .trace_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                source: e,
            })?;
        }
        if let Some(sh) = &self.shaper {
            self.metrics.shaper = sh.stats;
        }
        let (peak_live_ops, peak_live_txs) = (self.ops.peak_len(), self.txs.peak_len());
        let tx_records = if self.scenario.metrics.record_transactions {
            std::mem::replace(&mut self.txs, RetiringArena::new(0, true)).into_vec()
        } else {
            Vec::new()
        };
        Ok(Outcome {
            metrics: self.metrics,
            net: self.net.stats,
            events: self.events,
            sim_time_ns: self.end_ns,
            digest: *self.digest.finalize().as_bytes(),
            tx_records,
            peak_live_ops,
            peak_live_txs,
            ledger: self
                .scenario
                .metrics
                .keep_ledger_log
                .then(|| self.executor.into_ledger()),
        })
    }

    fn handle(&mut self, t: TimeNs, ev: EventOf<P>) -> SimResult {
        match ev {
            Event::Wire {
                from,
                to,
                last_byte_ns,
                msg,
            } => {
                let bytes = msg.size_bytes();
                if self.trace.is_some() {
                    self.trace_line(t, format_args!("wire {from}->{to} {} {bytes}B", msg.kind()))?;
                }
                if self.nodes[to as usize].crashed {
                    return Ok(());
                }
                let done = self.net.receive(to, t, last_byte_ns, bytes);
                self.schedule(done, Event::Deliver { from, to, msg })?;
            }
            Event::Deliver { from, to, msg } => self.deliver(t, from, to, msg)?,
            Event::Timer {
                node,
                epoch,
                id,
                timer,
            } => {
                if self.trace.is_some() {
                    self.trace_line(t, format_args!("timer {node} {timer:?}"))?;
                }
                if epoch != self.nodes[node as usize].epoch {
                    self.timer_ids.release(id);
                    return Ok(());
                }
                self.arrive(node, t, Work::Timer { id, timer })?;
            }
            Event::ClientTx { node, tx } => {
                if self.trace.is_some() {
                    self.trace_line(t, format_args!("client-tx {node} op{}", tx.id))?;
                }
                self.arrive(node, t, Work::Tx(tx))?;
            }
            Event::Submit { slot } => {
                if self.trace.is_some() {
                    self.trace_line(t, format_args!("submit request {slot}"))?;
                }
                self.on_submit(t, slot)?
            }
            Event::Wake { node } => {
                if self.trace.is_some() {
                    self.trace_line(t, format_args!("wake {node}"))?;
                }
                let ns = &mut self.nodes[node as usize];
                ns.wake_pending = false;
                if ns.crashed {
                    return Ok(());
                }
                let (_, free) = ns.earliest_core();
                if free > t {
                    ns.wake_pending = true;
                    self.schedule(free, Event::Wake { node })?;
                    return Ok(());
                }
                if let Some(w) = ns.inbox.pop_front() {
                    self.run_handler(node, t, w)?;
                }
                let ns = &mut self.nodes[node as usize];
                if !ns.inbox.is_empty() && !ns.wake_pending && !ns.crashed {
                    ns.wake_pending = true;
                    let (_, free) = ns.earliest_core();
                    self.schedule(free.max(t), Event::Wake { node })?;
                }
            }
            Event::Fault { index, start } => self.on_fault(t, index, start)?,
            Event::ClientTimeout => self.on_client_timeout(t)?,
        }
        Ok(())
    }

    /// Message `msg` from `from` is fully received by `to` at `t`.
    #[inline]
    fn deliver(&mut self, t: TimeNs, from: NodeId, to: NodeId, msg: MsgOf<P>) -> SimResult {
        if self.trace.is_some() {
            self.trace_line(t, format_args!("deliver {from}->{to} {}", msg.kind()))?;
        }
        self.arrive(to, t, Work::Msg { from, msg })
    }

    /// Hold a request until its submission time (requests past the end are dropped).
    fn park(&mut self, r: TxRequest) -> SimResult {
        if r.at_ns > self.end_ns {
            return Ok(());
        }
        let at = r.at_ns.max(self.queue.now());
        if self.next_request.is_none() {
            let seed = self.seed;
            let place = self.queue.reserve(at).map_err(|e| kernel_error(seed, e))?;
            self.next_request = Some((place, r));
            return Ok(());
        }
        let slot = match self.parked_free.pop() {
            Some(s) => {
                self.parked[s as usize] = Some(r);
                s
            }
            None => {
                self.parked.push(Some(r));
                (self.parked.len() - 1) as u32
            }
        };
        self.schedule(at, Event::Submit { slot })?;
        Ok(())
    }

    fn on_submit(&mut self, t: TimeNs, slot: u32) -> SimResult {
        let Some(req) = self.parked[slot as usize].take() else {
            return Ok(());
        };
        self.parked_free.push(slot);
        self.submit(t, req)
    }

    /// Workload request `req` is due at `t`: create its transaction and operations,
    /// hand them to the gateways, and (open loop) line up the next request.
    fn submit(&mut self, t: TimeNs, mut req: TxRequest) -> SimResult {
        if let Some(shaper) = &mut self.shaper {
            shaper.shape(&mut req);
        }
        // Drop what finished (here, outside any block's execution, so no receipt of
        // the block being handled can refer to a retired entry).
        self.ops.retire();
        self.txs.retire();
        let set = ledger_core::shards_of(&req.tx, self.scenario.shards);
        let mut shards = [0u32; ledger_core::routing::MAX_SHARDS_PER_TX];
        let mut n_shards = 0u8;
        for s in set.iter() {
            shards[n_shards as usize] = s.0;
            n_shards += 1;
        }
        if n_shards == 0 {
            return Err(self.violation(t, format!("transaction routed to no shard: {:?}", req.tx)));
        }
        let cross = n_shards > 1;
        let pushed = self.txs.push(ClientTx {
            submit_ns: t,
            included_ns: None,
            done_ns: None,
            status: TxStatus::Pending,
            kind: req.kind,
            client: req.client,
            shards,
            n_shards,
            phase: if cross {
                Phase::Preparing {
                    votes: 0,
                    yes_mask: 0,
                }
            } else {
                Phase::Single
            },
            payload_bytes: req.payload_bytes,
        });
        let Some(client_tx) = pushed else {
            return Err(Box::new(SimError::Workload(format!(
                "more than {MAX_CLIENT_TXS} transactions in one run"
            ))));
        };
        self.metrics.on_submit(t, cross);
        if cross {
            let xid = client::xid_of(client_tx);
            for &s in &shards[..n_shards as usize] {
                let op = ShardOp::Prepare {
                    xid,
                    tx: req.tx.clone(),
                };
                // The payload travels once, with the prepare of the first shard.
                let payload = if s == shards[0] { req.payload_bytes } else { 0 };
                self.submit_op(t, client_tx, req.client, s, op, payload)?;
            }
        } else {
            self.submit_op(
                t,
                client_tx,
                req.client,
                shards[0],
                ShardOp::Tx(req.tx),
                req.payload_bytes,
            )?;
        }
        if !self.closed_loop {
            if let Some(r) = self.generator.as_mut().and_then(Generator::next_request) {
                self.park(r)?;
            }
        }
        Ok(())
    }

    /// Create operation `op` of `client_tx` (submitted by `client`) for `shard` and
    /// deliver it to the shard's gateway for the client (through the gateway's downlink).
    fn submit_op(
        &mut self,
        t: TimeNs,
        client_tx: u32,
        client: u32,
        shard: u32,
        op: ShardOp,
        payload_bytes: u64,
    ) -> SimResult {
        let size = client::op_size_bytes(&op) + payload_bytes;
        let size_bytes = u32::try_from(size).unwrap_or(u32::MAX);
        let Some(op_id) = self.ops.push(Op {
            op,
            client_tx,
            shard,
            size_bytes,
            executed: false,
        }) else {
            return Err(Box::new(SimError::Workload(format!(
                "more than {MAX_CLIENT_TXS} operations in one run"
            ))));
        };
        if self.client_timeout_ns > 0 && self.scenario.client_retries > 0 {
            self.arm_resend(t + self.client_timeout_ns, op_id, 0)?;
        }
        self.send_to_gateway(t, op_id, shard, size_bytes, client, 0)
    }

    /// Send operation `op_id` to the gateway of attempt `attempt`: node
    /// `committee[(client + attempt) mod N]` of the operation's shard. A crashed gateway
    /// loses it (the client's resend, if any, goes to the next one). An operation that
    /// fits in one packet reaches the gateway at once; a larger one queues on the
    /// gateway's downlink (an imaging study's payload).
    /// The caller passes the operation's shard, size and client (it has them at hand;
    /// reading them back from the arena entry just written would wait for its line).
    fn send_to_gateway(
        &mut self,
        t: TimeNs,
        op_id: u32,
        shard: u32,
        size_bytes: u32,
        client: u32,
        attempt: u8,
    ) -> SimResult {
        let committee = &self.committees[shard as usize];
        let gateway = committee[(client as usize + attempt as usize) % committee.len()];
        if self.nodes[gateway as usize].crashed {
            return Ok(()); // the gateway is down: the operation is lost
        }
        let tx = TxRef {
            id: op_id,
            size_bytes,
        };
        if crate::net::fits_one_packet(u64::from(size_bytes)) {
            // One packet: the arrival process gives the time the gateway has it (it does
            // not queue behind transfers on the downlink; see `net::SINGLE_PACKET_BYTES`).
            self.net.count_received(gateway, u64::from(size_bytes));
            if self.trace.is_some() {
                self.trace_line(t, format_args!("client-tx {gateway} op{op_id}"))?;
            }
            return self.arrive(gateway, t, Work::Tx(tx));
        }
        let done = self.net.receive(gateway, t, t, u64::from(size_bytes));
        self.schedule(done, Event::ClientTx { node: gateway, tx })?;
        Ok(())
    }

    /// Queue a resend deadline (due times arrive in non-decreasing order).
    fn arm_resend(&mut self, due: TimeNs, op_id: u32, attempt: u8) -> SimResult {
        self.resends.push_back((due, op_id, attempt));
        if !self.resend_armed && due <= self.end_ns {
            self.resend_armed = true;
            self.schedule(due, Event::ClientTimeout)?;
        }
        Ok(())
    }

    /// Resend every operation whose deadline is due and that has not executed.
    fn on_client_timeout(&mut self, t: TimeNs) -> SimResult {
        self.resend_armed = false;
        while let Some(&(due, op_id, attempt)) = self.resends.front() {
            if due > t {
                break;
            }
            self.resends.pop_front();
            // A retired operation was executed; so was every operation of a final
            // (possibly retired) transaction.
            let Some(op) = self.ops.get(op_id) else {
                continue;
            };
            if op.executed
                || self
                    .txs
                    .get(op.client_tx)
                    .is_none_or(|ct| ct.phase == Phase::Done)
            {
                continue;
            }
            let (shard, size_bytes) = (op.shard, op.size_bytes);
            let client = self.txs[op.client_tx].client;
            let next = attempt + 1;
            self.metrics.client_resends += 1;
            if self.trace.is_some() {
                self.trace_line(t, format_args!("resend op{op_id} attempt {next}"))?;
            }
            self.send_to_gateway(t, op_id, shard, size_bytes, client, next)?;
            if u32::from(next) < self.scenario.client_retries {
                self.resends
                    .push_back((t + self.client_timeout_ns, op_id, next));
            }
        }
        if let Some(&(due, _, _)) = self.resends.front() {
            if due <= self.end_ns {
                self.resend_armed = true;
                self.schedule(due, Event::ClientTimeout)?;
            }
        }
        Ok(())
    }

    /// Work arrives at a node: run it now if a core is free and nothing is
    /// queued, otherwise queue it (FIFO) behind the node's current work.
    fn arrive(&mut self, node: NodeId, t: TimeNs, work: WorkOf<P>) -> SimResult {
        let ns = &mut self.nodes[node as usize];
        if ns.crashed && !matches!(work, Work::Recover) {
            if let Work::Timer { id, .. } = work {
                self.timer_ids.release(id);
            }
            return Ok(());
        }
        let (_, free) = ns.earliest_core();
        if ns.inbox.is_empty() && free <= t {
            return self.run_handler(node, t, work);
        }
        if ns.inbox.len() >= self.max_inbox {
            self.metrics.inbox_overflows += 1;
            if let Work::Timer { id, .. } = work {
                self.timer_ids.release(id);
            }
            return Ok(());
        }
        ns.inbox.push_back(work);
        if !ns.wake_pending {
            ns.wake_pending = true;
            self.schedule(free.max(t), Event::Wake { node })?;
        }
        Ok(())
    }

    fn run_handler(&mut self, node: NodeId, t: TimeNs, work: WorkOf<P>) -> SimResult {
        let ni = node as usize;
        if let Work::Timer { id, .. } = &work {
            // Cancelled after it was queued behind other work?
            if self.timer_ids.release(*id).is_none() {
                return Ok(());
            }
        }
        let (core, free) = self.nodes[ni].earliest_core();
        let start = t.max(free);
        let shard = self.nodes[ni].shard;
        let byzantine = self.nodes[ni].byzantine;
        let mut ctx = Ctx {
            start_ns: start,
            cpu_ns: 0,
            me: node,
            shard,
            committee: &self.committees[shard as usize],
            charges: &self.charges[ni],
            rng: &mut self.nodes[ni].rng,
            byzantine,
            blocks: &mut self.blocks,
            fx: &mut self.fx,
            timer_ids: &mut self.timer_ids,
        };
        let r = &mut self.replicas[ni];
        match work {
            Work::Start => r.on_start(&mut ctx),
            Work::Msg { from, msg } => r.on_message(&mut ctx, from, msg),
            Work::Timer { timer, .. } => r.on_timer(&mut ctx, timer),
            Work::Tx(tx) => r.on_client_tx(&mut ctx, tx),
            Work::Recover => r.on_recover(&mut ctx),
        }
        let cpu = ctx.cpu_ns;
        self.nodes[ni].cores_free[core] = start + cpu;
        self.apply_effects(node, shard)
    }

    /// Carry out what the handler just asked for. Each buffer of `self.fx` is taken out
    /// while it is processed (handlers run by `on_commit` fill fresh ones) and put back
    /// empty, so its capacity is reused; moving the whole `Effects` out and back costs
    /// more per call.
    fn apply_effects(&mut self, node: NodeId, shard: u32) -> SimResult {
        let epoch = self.nodes[node as usize].epoch;
        let mut timers = std::mem::take(&mut self.fx.timers);
        for op in timers.drain(..) {
            match op {
                TimerOp::Set { at_ns, timer, id } => {
                    let ev = self.schedule(
                        at_ns,
                        Event::Timer {
                            node,
                            epoch,
                            id,
                            timer,
                        },
                    )?;
                    self.timer_ids.attach(id, ev);
                }
                TimerOp::Cancel(id) => {
                    if let Some(Some(ev)) = self.timer_ids.release(id) {
                        self.queue.cancel(ev);
                    }
                }
            }
        }
        self.fx.timers = timers;
        let mut out = std::mem::take(&mut self.fx.out);
        for o in out.drain(..) {
            if o.to as usize >= self.nodes.len() {
                return Err(Box::new(SimError::InvariantViolated {
                    seed: self.seed,
                    what: format!(
                        "node {node} sent a message to node {} which does not exist",
                        o.to
                    ),
                    at_ns: o.depart_ns,
                    scenario: self.scenario.name.clone(),
                }));
            }
            if o.to == node {
                self.schedule(
                    o.depart_ns,
                    Event::Deliver {
                        from: node,
                        to: node,
                        msg: o.msg,
                    },
                )?;
                continue;
            }
            let bytes = o.msg.size_bytes();
            let kind = o.msg.kind();
            self.metrics.bucket(o.depart_ns).bytes_sent += bytes;
            match self.net.send(node, o.to, o.depart_ns, bytes, kind) {
                Ok((first, last)) if o.msg.skips_downlink_queue() => {
                    // One event per delivery (a crashed receiver drops it in `arrive`).
                    let done = self.net.receive_unqueued(o.to, first, last, bytes);
                    self.schedule(
                        done,
                        Event::Deliver {
                            from: node,
                            to: o.to,
                            msg: o.msg,
                        },
                    )?;
                }
                Ok((first, last)) => {
                    self.schedule(
                        first,
                        Event::Wire {
                            from: node,
                            to: o.to,
                            last_byte_ns: last,
                            msg: o.msg,
                        },
                    )?;
                }
                Err(_) => {
                    if self.trace.is_some() {
                        self.trace_line(o.depart_ns, format_args!("drop {node}->{} {kind}", o.to))?;
                    }
                }
            }
        }
        self.fx.out = out;
        let view_changes = std::mem::take(&mut self.fx.view_changes);
        if view_changes > 0 {
            let t = self.queue.now();
            self.metrics.view_changes += view_changes;
            self.metrics.bucket(t).view_changes += view_changes;
        }
        self.metrics.stale_blocks += std::mem::take(&mut self.fx.stale_blocks);
        self.metrics.reorgs += std::mem::take(&mut self.fx.reorgs);
        let mut includes = std::mem::take(&mut self.fx.includes);
        for (b, t) in includes.drain(..) {
            for tx in self.blocks.txs(b) {
                // A retired operation (or transaction) was executed, so its first
                // inclusion is already recorded.
                let Some(op) = self.ops.get(tx.id) else {
                    continue;
                };
                if let Some(ct) = self.txs.get_mut(op.client_tx) {
                    if ct.included_ns.is_none() {
                        ct.included_ns = Some(t);
                        if ct.submit_ns >= self.metrics.warmup_ns {
                            let us = ((t - ct.submit_ns) / 1_000)
                                .clamp(1, crate::metrics::MAX_LATENCY_US);
                            self.metrics.inclusion_latency_us.saturating_record(us);
                        }
                    }
                }
            }
        }
        self.fx.includes = includes;
        let mut commits = std::mem::take(&mut self.fx.commits);
        // Indexed, and `Ok(())` returned directly: moving a `Result<(), SimError>` held
        // in a local into the return slot copies the whole error-sized value every call.
        for &(height, block, t) in &commits {
            self.on_commit(node, shard, height, block, t)?;
        }
        commits.clear();
        self.fx.commits = commits;
        Ok(())
    }

    fn on_commit(
        &mut self,
        node: NodeId,
        shard: u32,
        height: u64,
        block: BlockRef,
        t: TimeNs,
    ) -> SimResult {
        let honest = self.nodes[node as usize].byzantine.is_none();
        if self.trace.is_some() {
            self.trace_line(
                t,
                format_args!(
                    "commit node {node} shard {shard} height {height} block {}",
                    block.0
                ),
            )?;
        }
        if !honest {
            return Ok(());
        }
        self.metrics.invariants_checked += 1;
        if height == 0 {
            return Err(self.violation(
                t,
                format!("node {node} committed height 0 on shard {shard} (heights start at 1)"),
            ));
        }
        let sc = &mut self.commits[shard as usize];
        let idx = (height - 1) as usize;
        match sc.decided.get(idx).copied().flatten() {
            Some(b) if b == block => return Ok(()),
            Some(b) => {
                let what = format!(
                    "safety: honest node {node} of shard {shard} committed block {} at height {height}, another honest replica committed block {}",
                    block.0, b.0
                );
                return Err(self.violation(t, what));
            }
            None => {}
        }
        if idx >= sc.decided.len() {
            if height > sc.decided.len() as u64 + MAX_HEIGHT_JUMP {
                let what = format!(
                    "node {node} committed height {height} on shard {shard}, more than {MAX_HEIGHT_JUMP} above the {} heights decided",
                    sc.decided.len()
                );
                return Err(self.violation(t, what));
            }
            sc.decided.resize(idx + 1, None);
        }
        sc.decided[idx] = Some(block);
        if height < sc.next_exec {
            return Err(self.violation(
                t,
                format!("shard {shard} height {height} decided after it was executed"),
            ));
        }
        sc.pending.insert(height, (block, t));
        let digest = self.blocks.digest(block);
        self.digest.update(&shard.to_le_bytes());
        self.digest.update(&height.to_le_bytes());
        self.digest.update(&digest);
        self.digest.update(&t.to_le_bytes());
        // Execute in height order.
        loop {
            let sc = &mut self.commits[shard as usize];
            let next = sc.next_exec;
            let Some((b, _)) = sc.pending.remove(&next) else {
                break;
            };
            sc.next_exec += 1;
            self.execute(shard, next, b, t)?;
        }
        Ok(())
    }

    fn violation(&self, t: TimeNs, what: String) -> Box<SimError> {
        Box::new(SimError::InvariantViolated {
            seed: self.seed,
            what,
            at_ns: t,
            scenario: self.scenario.name.clone(),
        })
    }

    fn execute(&mut self, shard: u32, height: u64, block: BlockRef, t: TimeNs) -> SimResult {
        self.metrics.blocks_committed += 1;
        let mut fresh: Vec<Executed> = Vec::with_capacity(self.blocks.txs(block).len());
        let mut ops: Vec<ShardOp> = Vec::with_capacity(fresh.capacity());
        // Load the block's operations first, in a loop of independent loads whose cache
        // misses overlap, rather than one miss per operation in the loop below.
        let mut warm = 0u32;
        for tx in self.blocks.txs(block) {
            if let Some(op) = self.ops.get(tx.id) {
                // An entry spans two cache lines: load both (its variant, read first
                // below, sits at the start; its shard at the end).
                warm ^= op.shard ^ u32::from(matches!(op.op, ShardOp::Tx(_)));
            }
        }
        std::hint::black_box(warm);
        for tx in self.blocks.txs(block) {
            let Some(op) = self.ops.get_mut(tx.id) else {
                if matches!(self.ops.slot(tx.id), Slot::Retired) {
                    // Executed before and retired since: a duplicate.
                    self.metrics.duplicate_commits += 1;
                    continue;
                }
                return Err(Box::new(SimError::InvariantViolated {
                    seed: self.seed,
                    what: format!("block {} holds unknown operation {}", block.0, tx.id),
                    at_ns: t,
                    scenario: self.scenario.name.clone(),
                }));
            };
            if op.shard != shard {
                let what = format!(
                    "shard {shard} committed operation {} that belongs to shard {}",
                    tx.id, op.shard
                );
                return Err(self.violation(t, what));
            }
            if op.executed {
                self.metrics.duplicate_commits += 1;
                continue;
            }
            op.executed = true;
            // The receipts below read the client transactions after the ledger has
            // applied the block: start loading them now, to arrive meanwhile.
            if let Some(ct) = self.txs.get(op.client_tx) {
                prefetch_lines(ct);
            }
            fresh.push(Executed {
                op_id: tx.id,
                client_tx: op.client_tx,
                shard: op.shard,
                kind: OpKind::of(&op.op),
            });
            ops.push(op.op.clone());
            self.ops.finish(tx.id);
        }
        let applied = self.executor.apply(shard, ops, t / NS_PER_MS);
        if applied.header.height != height {
            return Err(self.violation(
                t,
                format!(
                    "shard {shard}: ledger height {} for consensus height {height}",
                    applied.header.height
                ),
            ));
        }
        self.digest.update(&shard.to_le_bytes());
        self.digest.update(&height.to_le_bytes());
        self.digest.update(&applied.hash);
        self.digest.update(&t.to_le_bytes());
        if self.trace.is_some() {
            let h: String = applied
                .hash
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect();
            self.trace_line(
                t,
                format_args!(
                    "execute shard {shard} height {height} ops {} hash {h}",
                    fresh.len()
                ),
            )?;
        }
        self.metrics.invariants_checked += 1;
        if let Some((now, genesis)) = self.executor.money_mismatch() {
            return Err(self.violation(
                t,
                format!("money not conserved: {now} cents on the ledger, {genesis} at genesis"),
            ));
        }
        for (e, receipt) in fresh.iter().zip(applied.receipts) {
            self.on_receipt(t, e, receipt)?;
        }
        Ok(())
    }

    /// Advance the client transaction of operation `op_id` given its receipt.
    fn on_receipt(&mut self, t: TimeNs, e: &Executed, receipt: Receipt) -> SimResult {
        let (op_id, ct_i, shard) = (e.op_id, e.client_tx, e.shard);
        let is_prepare = e.kind == OpKind::Prepare;
        let ct = &mut self.txs[ct_i];
        match ct.phase {
            Phase::Single => {
                let accepted = receipt.is_success();
                self.finish(
                    t,
                    ct_i,
                    if accepted {
                        TxStatus::Committed
                    } else {
                        TxStatus::Rejected
                    },
                )?;
            }
            Phase::Preparing { votes, yes_mask } if is_prepare => {
                let idx = ct
                    .shard_list()
                    .iter()
                    .position(|&s| s == shard)
                    .unwrap_or(0);
                let yes = matches!(receipt, Receipt::Vote(Vote::Yes));
                let yes_mask = if yes { yes_mask | (1 << idx) } else { yes_mask };
                let votes = votes + 1;
                if votes < ct.n_shards {
                    ct.phase = Phase::Preparing { votes, yes_mask };
                    return Ok(());
                }
                let all = (1u8 << ct.n_shards) - 1;
                let commit = yes_mask == all;
                let xid = client::xid_of(ct_i);
                let targets: Vec<u32> = ct
                    .shard_list()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| commit || yes_mask & (1 << i) != 0)
                    .map(|(_, &s)| s)
                    .collect();
                if targets.is_empty() {
                    // Every shard voted no: nothing is locked, the abort is final now.
                    return self.finish(t, ct_i, TxStatus::Aborted);
                }
                ct.phase = Phase::Deciding {
                    commit,
                    remaining: targets.len() as u8,
                };
                let client = ct.client;
                for s in targets {
                    let op = if commit {
                        ShardOp::Commit { xid }
                    } else {
                        ShardOp::Abort { xid }
                    };
                    self.submit_op(t, ct_i, client, s, op, 0)?;
                }
            }
            Phase::Deciding { commit, remaining } if !is_prepare => {
                self.metrics.invariants_checked += 1;
                let expected = if commit {
                    Receipt::Committed
                } else {
                    Receipt::Aborted
                };
                let is_commit_op = e.kind == OpKind::Commit;
                if receipt != expected || is_commit_op != commit {
                    let what = format!(
                        "atomicity: cross-shard transaction {ct_i} decided {} but shard {shard} answered {receipt:?} to operation {op_id}",
                        if commit { "commit" } else { "abort" }
                    );
                    return Err(self.violation(t, what));
                }
                let ct = &mut self.txs[ct_i];
                if remaining > 1 {
                    ct.phase = Phase::Deciding {
                        commit,
                        remaining: remaining - 1,
                    };
                } else {
                    self.finish(
                        t,
                        ct_i,
                        if commit {
                            TxStatus::Committed
                        } else {
                            TxStatus::Aborted
                        },
                    )?;
                }
            }
            phase => {
                let what =
                    format!("operation {op_id} of transaction {ct_i} executed in phase {phase:?}");
                return Err(self.violation(t, what));
            }
        }
        Ok(())
    }

    fn finish(&mut self, t: TimeNs, ct_i: u32, status: TxStatus) -> SimResult {
        if self.txs[ct_i].cross_shard() {
            // All or nothing: once final, no involved shard may still hold the
            // transaction prepared (locks or escrow holds of a half-decided commit).
            self.metrics.invariants_checked += 1;
            let xid = client::xid_of(ct_i);
            let n = self.txs[ct_i].n_shards as usize;
            for i in 0..n {
                let s = self.txs[ct_i].shards[i];
                if self.executor.is_prepared(s, xid) {
                    let what = format!(
                        "atomicity: cross-shard transaction {ct_i} final ({status:?}) but still prepared on shard {s}"
                    );
                    return Err(self.violation(t, what));
                }
            }
        }
        let ct = &mut self.txs[ct_i];
        ct.status = status;
        ct.phase = Phase::Done;
        ct.done_ns = Some(t);
        let (submit, cross, client) = (ct.submit_ns, ct.cross_shard(), ct.client);
        self.txs.finish(ct_i);
        self.metrics.on_final(
            submit,
            t,
            status == TxStatus::Rejected,
            status == TxStatus::Aborted,
            cross,
        );
        if self.closed_loop {
            if let Some(r) = self
                .generator
                .as_mut()
                .and_then(|g| g.on_complete(client, t))
            {
                self.park(r)?;
            }
        }
        Ok(())
    }

    fn on_fault(&mut self, t: TimeNs, index: u32, start: bool) -> SimResult {
        let f = self.scenario.faults[index as usize].clone();
        if self.trace.is_some() {
            let phase = if start { "start" } else { "end" };
            self.trace_line(t, format_args!("fault {index} {} {phase} {f:?}", f.kind()))?;
        }
        match f {
            FaultSpec::Crash { node, .. } => {
                if start {
                    let ns = &mut self.nodes[node as usize];
                    if !ns.crashed {
                        ns.crashed = true;
                        ns.epoch = ns.epoch.wrapping_add(1);
                        let dropped: Vec<_> = ns.inbox.drain(..).collect();
                        for w in dropped {
                            if let Work::Timer { id, .. } = w {
                                self.timer_ids.release(id);
                            }
                        }
                    }
                } else if self.nodes[node as usize].crashed {
                    let ns = &mut self.nodes[node as usize];
                    ns.crashed = false;
                    for c in ns.cores_free.iter_mut() {
                        *c = (*c).max(t);
                    }
                    self.arrive(node, t, Work::Recover)?;
                }
            }
            FaultSpec::Partition {
                nodes,
                region,
                one_way,
                ..
            } => {
                if start {
                    let mut members = nodes.clone();
                    if let Some(r) = region {
                        if let Some(ri) = self.net.topo.regions.iter().position(|x| *x == r) {
                            for (i, &nr) in self.net.topo.node_region.iter().enumerate() {
                                if nr as usize == ri {
                                    members.push(i as NodeId);
                                }
                            }
                        }
                    }
                    self.net.add_partition(index, &members, one_way);
                } else {
                    self.net.remove_partition(index);
                }
            }
            FaultSpec::Loss {
                node,
                from,
                to,
                loss,
                ..
            } => {
                if start {
                    self.net
                        .add_link_fault(index, target(node, from, to), loss, 0);
                } else {
                    self.net.remove_link_fault(index);
                }
            }
            FaultSpec::Latency {
                node,
                from,
                to,
                extra_ms,
                ..
            } => {
                if start {
                    self.net.add_link_fault(
                        index,
                        target(node, from, to),
                        0.0,
                        (extra_ms * 1e6) as u64,
                    );
                } else {
                    self.net.remove_link_fault(index);
                }
            }
            FaultSpec::Slow { node, factor, .. } => {
                self.charges[node as usize].set_factor(if start { factor } else { 1.0 });
            }
            FaultSpec::Byzantine {
                nodes, behaviour, ..
            } => {
                for n in nodes {
                    self.nodes[n as usize].byzantine = if start { Some(behaviour) } else { None };
                }
            }
        }
        Ok(())
    }
}

fn target(node: Option<NodeId>, from: Option<NodeId>, to: Option<NodeId>) -> LinkTarget {
    match (node, from, to) {
        (Some(n), _, _) => LinkTarget::Node(n),
        (None, Some(a), Some(b)) => LinkTarget::Link(a, b),
        // validate() allows only these forms and "no target" (every link)
        _ => LinkTarget::All,
    }
}
