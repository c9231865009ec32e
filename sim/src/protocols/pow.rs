//! Proof-of-work (Nakamoto consensus).
//!
//! # Model
//! - **Mining**: miner `i` with hash rate `h_i` (its share of
//!   `network_hashrate_hs`) finds a block after an exponentially distributed time
//!   of mean `D / h_i`, where `D` is the difficulty (expected hashes per block) of
//!   the block it would mine next. Draws come from the named stream
//!   `pow/mine/<node>`. Mining is memoryless, so a miner keeps its pending draw
//!   when it switches tips and only redraws when the difficulty changes.
//! - **Difficulty** is retargeted every `retarget_window` blocks from the
//!   timestamps of the chain being extended (clamped to ×4 either way, as Bitcoin).
//! - **Fork choice**: most cumulative work; on a tie the first block seen stays.
//! - **Relay** over a random peer graph (`peer_degree` outbound connections per
//!   node, bidirectional): `relay = "inv"` announces with `inv`, the peer requests
//!   with `getdata` and receives the full `block` (Bitcoin before 2016);
//!   `relay = "compact"` pushes a BIP152 `cmpctblock` and a peer that misses
//!   transactions fetches them with `getblocktxn`/`blocktxn`. Each hop pays the
//!   network model's latency, the sender's uplink and receiver's downlink
//!   serialisation, and the receiver's validation CPU (`validate_ms` +
//!   `validate_ms_per_mb` per MB) before the block is relayed further.
//! - **Confirmation**: a node commits the block `confirmations` deep in its chain;
//!   transactions' latency to first inclusion (mining) and to k-confirmation are
//!   both reported. A reorganisation deeper than `confirmations` that reverts a
//!   block an honest node had committed is a safety violation and stops the run.
//! - **Stale blocks**: a block is counted stale once the best published chain is
//!   `confirmations` blocks past its height and it is not on that chain; the exact
//!   count over the final chain is in `summary.json` `chain.stale_blocks`.
//! - **Selfish mining** (Eyal & Sirer 2014) is the Byzantine behaviour
//!   `selfish-mine`: the node withholds blocks it mines and publishes them to
//!   match or override the honest chain. `silent` nodes neither mine nor relay.
//! - **Energy**: total hashes are the sum of the difficulty of every block mined
//!   (the expected hashes to find them); energy is that times `joules_per_hash`
//!   (default 1e-10 J/hash: an Antminer S9 of 2016 at about 0.1 J/GH; the
//!   assumption is only a proxy — real networks mix hardware generations).
//!
//! Shared state between replicas (block tree, status table, pool) is described in
//! [`super::chain`].

use super::chain::{
    self, BlockIdx, BlockTree, ChainStats, PeerGraph, Status, StatusTable, TxPool, GENESIS,
};
use crate::faults::FaultSpec;
use crate::protocol::{
    ByzantineBehaviour, Ctx, Message, NodeId, Protocol, Replica, TimerId, TxRef,
};
use crate::scenario::{Scenario, ScenarioError};
use serde::Deserialize;
use serde_json::{json, Value};
use simrand::Stream;
use std::cell::RefCell;
use std::rc::Rc;

/// Bitcoin P2P message header, bytes.
pub const P2P_HEADER_BYTES: u64 = 24;
/// `inv`/`getdata` with one entry, bytes (header + count + type + hash).
pub const INV_BYTES: u64 = P2P_HEADER_BYTES + 1 + 36;
/// Bytes of a short transaction id in a compact block (BIP152).
pub const SHORT_ID_BYTES: u64 = 6;
/// Fixed part of a compact block: header, nonce and a prefilled coinbase, bytes.
pub const COMPACT_FIXED_BYTES: u64 = 80 + 8 + 250;
/// Messages up to this size skip the receiver's downlink queue (see
/// [`crate::protocol::Message::skips_downlink_queue`]).
pub const SMALL_MESSAGE_BYTES: u64 = 64 * 1024;
/// Most retarget windows listed in `summary.json` `chain.window_mean_interval_s`.
pub const MAX_WINDOWS_REPORTED: usize = 1000;
/// Most blocks one proof-of-work run may mine (a named limit on growth).
pub const MAX_POW_BLOCKS: u64 = 1_000_000;

/// `[protocol.pow]` parameters.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowParams {
    /// Target block interval, ms (Bitcoin 600 000).
    pub block_interval_ms: f64,
    /// Confirmation depth k: a block is final once k blocks are built on it (default 6).
    pub confirmations: u32,
    /// Number of mining nodes, a seeded random subset of the nodes (stream
    /// `pow/miners`; `large_miner` is always one of them; 0: every node mines).
    pub miners: u32,
    /// Standard deviation of a miner's hash power as a fraction of the mean
    /// (normal, truncated at 1 % of the mean; default 0.25 as SimBlock's
    /// 100 000 / 400 000).
    pub hash_power_stdev: f64,
    /// Share of the total hash power held by node `large_miner` (0: none).
    pub large_miner_share: f64,
    /// The node holding `large_miner_share` (default 0).
    pub large_miner: u32,
    /// Total hash rate of the network, hashes/s (default 1.5e18, Bitcoin in 2016);
    /// only scales the difficulty and the energy figures.
    pub network_hashrate_hs: f64,
    /// Energy per hash, J (default 1e-10: 0.1 J/GH, an Antminer S9 of 2016).
    pub joules_per_hash: f64,
    /// Retarget the difficulty every this many blocks (0: never; Bitcoin 2016).
    pub retarget_window: u32,
    /// Initial difficulty as a multiple of the one that yields the target interval
    /// at the initial hash rate (default 1).
    pub difficulty_initial_factor: f64,
    /// Outbound connections per node (connections are bidirectional; default 8).
    pub peer_degree: u32,
    /// `"fixed"` (every node opens `peer_degree`) or `"bitcoin-2015"` (outbound
    /// counts 1..20 drawn from the 2015 measured distribution, as SimBlock).
    pub degree_distribution: String,
    /// `"inv"` (inv, getdata, full block: Bitcoin before 2016), `"inv-compact"`
    /// (inv, getdata, compact block: BIP152 low-bandwidth mode, as SimBlock) or
    /// `"compact"` (compact block pushed without inv: BIP152 high-bandwidth mode).
    pub relay: String,
    /// Size of a compact block, bytes (0: computed from the block size, short ids
    /// of `tx_bytes_avg`-byte transactions; SimBlock uses a fixed 18 000).
    pub compact_block_bytes: u64,
    /// Block size on the wire, bytes: blocks are padded to at least this
    /// (modelling the rest of the network's transactions; 0: only the simulated
    /// workload's transactions plus the header).
    pub block_size_bytes: u64,
    /// Block header bytes (Bitcoin 80).
    pub header_bytes: u64,
    /// Average transaction size, bytes, for the short-id count of a compact
    /// block (default 500).
    pub tx_bytes_avg: u64,
    /// Probability that a compact block misses transactions and needs a
    /// `getblocktxn` round trip (default 0.13, SimBlock's measured rate).
    pub compact_failure_rate: f64,
    /// Fraction of the block's bytes fetched on such a failure (default 0.05).
    pub compact_missing_fraction: f64,
    /// Fixed validation CPU per block, ms (default 5).
    pub validate_ms: f64,
    /// Validation CPU per MB of block, ms (default 50).
    pub validate_ms_per_mb: f64,
    /// Stop mining once a block at this height is mined (0: never; SimBlock's
    /// END_BLOCK_HEIGHT). The run ends when the last block has propagated.
    pub stop_at_height: u32,
    /// A block requested and not received within this long is requested again
    /// from another peer, ms (default 20 000; only armed when the scenario has
    /// faults or loss).
    pub request_timeout_ms: f64,
}

impl Default for PowParams {
    fn default() -> Self {
        PowParams {
            block_interval_ms: 600_000.0,
            confirmations: 6,
            miners: 0,
            hash_power_stdev: 0.25,
            large_miner_share: 0.0,
            large_miner: 0,
            network_hashrate_hs: 1.5e18,
            joules_per_hash: 1e-10,
            retarget_window: 2016,
            difficulty_initial_factor: 1.0,
            peer_degree: 8,
            degree_distribution: "fixed".into(),
            relay: "inv".into(),
            compact_block_bytes: 0,
            block_size_bytes: 0,
            header_bytes: 80,
            tx_bytes_avg: 500,
            compact_failure_rate: 0.13,
            compact_missing_fraction: 0.05,
            validate_ms: 5.0,
            validate_ms_per_mb: 50.0,
            stop_at_height: 0,
            request_timeout_ms: 20_000.0,
        }
    }
}

/// Messages.
#[derive(Clone, Debug)]
pub enum PowMsg {
    /// Announce a block.
    Inv(BlockIdx),
    /// Request a block.
    GetData(BlockIdx),
    /// A full block (size on the wire).
    Block(BlockIdx, u64),
    /// A compact block (size on the wire).
    Cmpct(BlockIdx, u64),
    /// Request the transactions a compact block missed.
    GetBlockTxn(BlockIdx),
    /// The missing transactions (size on the wire).
    BlockTxn(BlockIdx, u64),
    /// Ask a peer for its tip (after recovering from a crash).
    GetTip,
}

impl Message for PowMsg {
    fn size_bytes(&self) -> u64 {
        match *self {
            PowMsg::Inv(_) | PowMsg::GetData(_) | PowMsg::GetTip => INV_BYTES,
            PowMsg::Block(_, s) | PowMsg::Cmpct(_, s) | PowMsg::BlockTxn(_, s) => s,
            PowMsg::GetBlockTxn(_) => P2P_HEADER_BYTES + 32 + 16,
        }
    }
    fn skips_downlink_queue(&self) -> bool {
        // Announcements and requests are tens of bytes, compact blocks tens of KB:
        // they still pay their own downlink serialisation but do not queue behind
        // other transfers (a node downloads a block from one peer at a time).
        // Full blocks (up to MBs) queue on the downlink.
        self.size_bytes() <= SMALL_MESSAGE_BYTES
    }
    fn kind(&self) -> &'static str {
        match self {
            PowMsg::Inv(_) => "inv",
            PowMsg::GetData(_) => "getdata",
            PowMsg::Block(..) => "block",
            PowMsg::Cmpct(..) => "cmpctblock",
            PowMsg::GetBlockTxn(_) => "getblocktxn",
            PowMsg::BlockTxn(..) => "blocktxn",
            PowMsg::GetTip => "gettip",
        }
    }
}

/// Timers.
#[derive(Copy, Clone, Debug)]
pub enum PowTimer {
    /// This miner found a block.
    Mine,
    /// A requested block did not arrive.
    RequestTimeout(BlockIdx),
}

/// Resolved configuration shared by every replica.
struct Cfg {
    p: PowParams,
    relay: Relay,
    k: u32,
    initial_difficulty: u128,
    interval_ns: f64,
    timeouts: bool,
    block_max_tx: usize,
    block_max_bytes: u64,
}

/// Block relay mode.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Relay {
    Inv,
    InvCompact,
    Compact,
}

impl Cfg {
    fn compact_bytes(&self, size: u64) -> u64 {
        if self.p.compact_block_bytes > 0 {
            return self.p.compact_block_bytes;
        }
        let ids = size.div_ceil(self.p.tx_bytes_avg);
        P2P_HEADER_BYTES + COMPACT_FIXED_BYTES + ids * SHORT_ID_BYTES
    }
}

/// State shared by the replicas of one run.
struct Shared {
    tree: BlockTree,
    status: StatusTable,
    stats: ChainStats,
    pool: TxPool,
    graph: PeerGraph,
    /// Best published block.
    best: BlockIdx,
    /// Heights up to which stale blocks were counted.
    settled: u32,
    total_hashes: f64,
    stopped: bool,
    /// Hash share of each node (0 for non-miners).
    share: Vec<f64>,
    /// Nodes that were ever marked selfish.
    selfish: Vec<bool>,
}

/// The proof-of-work protocol factory.
pub struct Pow {
    cfg: Rc<Cfg>,
    shared: Rc<RefCell<Shared>>,
}

/// An invalid-value error of scenario `s` at `path` (shared with proof-of-stake).
pub(crate) fn bad(s: &Scenario, path: &str, message: String) -> ScenarioError {
    ScenarioError::InvalidValue {
        source_name: s.name.clone(),
        path: path.to_string(),
        message,
    }
}

/// Checks shared by proof-of-work and proof-of-stake: one chain, at least two
/// nodes, and only the Byzantine behaviours that mean something for a chain.
pub(crate) fn check_chain_scenario(
    s: &Scenario,
    name: &str,
    allowed: &[ByzantineBehaviour],
) -> Result<(), ScenarioError> {
    if s.shards != 1 {
        return Err(bad(
            s,
            "shards",
            format!(
                "{name} runs one chain over all nodes; set shards = 1 (got {}); permissionless chains are not sharded here",
                s.shards
            ),
        ));
    }
    if s.nodes_per_shard < 2 {
        return Err(bad(
            s,
            "nodes_per_shard",
            format!("{name} needs at least 2 nodes, got {}", s.nodes_per_shard),
        ));
    }
    for (i, f) in s.faults.iter().enumerate() {
        if let FaultSpec::Byzantine { behaviour, .. } = f {
            if !allowed.contains(behaviour) {
                return Err(bad(
                    s,
                    &format!("faults[{i}] (byzantine)"),
                    format!(
                        "behaviour {behaviour:?} means nothing for {name}; allowed: {}",
                        allowed
                            .iter()
                            .map(|b| format!("{b:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Build the peer graph from a degree and a distribution name.
pub(crate) fn build_graph(
    s: &Scenario,
    section: &str,
    degree: u32,
    distribution: &str,
    n: usize,
) -> Result<PeerGraph, ScenarioError> {
    let mut rng = Stream::new(s.seed, &format!("{section}/peers"));
    match distribution {
        "fixed" => {
            if degree == 0 {
                return Err(bad(
                    s,
                    &format!("protocol.{section}.peer_degree"),
                    "must be at least 1".into(),
                ));
            }
            Ok(PeerGraph::random(n, &mut rng, |_| degree as usize))
        }
        "bitcoin-2015" => Ok(PeerGraph::random(n, &mut rng, |r| {
            let u = r.uniform();
            chain::BITCOIN_2015_OUTBOUND_CDF
                .iter()
                .position(|&c| u < c)
                .unwrap_or(19)
                + 1
        })),
        other => Err(bad(
            s,
            &format!("protocol.{section}.degree_distribution"),
            format!("unknown distribution {other:?}; allowed: fixed, bitcoin-2015"),
        )),
    }
}

impl Protocol for Pow {
    type Replica = PowReplica;
    const NAME: &'static str = "pow";

    fn from_scenario(s: &Scenario) -> Result<Self, ScenarioError> {
        check_chain_scenario(
            s,
            "pow",
            &[ByzantineBehaviour::SelfishMine, ByzantineBehaviour::Silent],
        )?;
        let p: PowParams = s.protocol_params(Self::NAME)?;
        let n = s.total_nodes() as usize;
        let pos = |x: f64| x.is_finite() && x > 0.0;
        let field = |f: &str| format!("protocol.pow.{f}");
        if !pos(p.block_interval_ms) {
            return Err(bad(
                s,
                &field("block_interval_ms"),
                format!("must be positive, got {}", p.block_interval_ms),
            ));
        }
        for (name, v) in [
            ("network_hashrate_hs", p.network_hashrate_hs),
            ("difficulty_initial_factor", p.difficulty_initial_factor),
        ] {
            if !pos(v) {
                return Err(bad(s, &field(name), format!("must be positive, got {v}")));
            }
        }
        for (name, v) in [
            ("hash_power_stdev", p.hash_power_stdev),
            ("joules_per_hash", p.joules_per_hash),
            ("validate_ms", p.validate_ms),
            ("validate_ms_per_mb", p.validate_ms_per_mb),
            ("request_timeout_ms", p.request_timeout_ms),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(
                    s,
                    &field(name),
                    format!("must be a finite number >= 0, got {v}"),
                ));
            }
        }
        for (name, v) in [
            ("large_miner_share", p.large_miner_share),
            ("compact_failure_rate", p.compact_failure_rate),
            ("compact_missing_fraction", p.compact_missing_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(s, &field(name), format!("must be in [0, 1], got {v}")));
            }
        }
        if p.large_miner_share >= 1.0 {
            return Err(bad(
                s,
                &field("large_miner_share"),
                "must be below 1 (other miners need some hash power)".into(),
            ));
        }
        if p.large_miner as usize >= n {
            return Err(bad(
                s,
                &field("large_miner"),
                format!("node {} does not exist (nodes are 0..{n})", p.large_miner),
            ));
        }
        if p.miners as usize > n {
            return Err(bad(
                s,
                &field("miners"),
                format!("at most the node count {n}, got {}", p.miners),
            ));
        }
        if p.retarget_window == 1 {
            return Err(bad(
                s,
                &field("retarget_window"),
                "must be 0 (off) or at least 2".into(),
            ));
        }
        if p.tx_bytes_avg == 0 {
            return Err(bad(s, &field("tx_bytes_avg"), "must be at least 1".into()));
        }
        let relay = match p.relay.as_str() {
            "inv" => Relay::Inv,
            "inv-compact" => Relay::InvCompact,
            "compact" => Relay::Compact,
            other => {
                return Err(bad(
                    s,
                    &field("relay"),
                    format!("unknown relay {other:?}; allowed: inv, inv-compact, compact"),
                ))
            }
        };
        let blocks_est =
            (s.duration_s * 1e3 / p.block_interval_ms / p.difficulty_initial_factor.min(1.0))
                .ceil()
                .max(1.0) as u64
                * 2;
        let blocks_est = if p.stop_at_height > 0 {
            blocks_est.min(u64::from(p.stop_at_height) * 2)
        } else {
            blocks_est
        };
        if blocks_est > MAX_POW_BLOCKS || blocks_est * n as u64 > chain::MAX_STATUS_ENTRIES {
            return Err(ScenarioError::TooLarge {
                estimated_mib: blocks_est * n as u64 / (1024 * 1024),
                limit_mib: chain::MAX_STATUS_ENTRIES / (1024 * 1024),
                what: format!(
                    "about {blocks_est} blocks x {n} nodes of block status (duration_s / block_interval_ms; set protocol.pow.stop_at_height or a shorter duration)"
                ),
            });
        }
        let graph = build_graph(s, "pow", p.peer_degree, &p.degree_distribution, n)?;
        // Hash power.
        let miners: Vec<usize> = if p.miners == 0 || p.miners as usize >= n {
            (0..n).collect()
        } else {
            // A seeded random subset (evenly spaced ids would share regions with
            // the round-robin placement).
            let m = p.miners as usize;
            let mut rng = Stream::new(s.seed, "pow/miners");
            let mut ids: Vec<usize> = (0..n).collect();
            for i in 0..m {
                let j = i + rng.below((n - i) as u64) as usize;
                ids.swap(i, j);
            }
            let mut v = ids[..m].to_vec();
            let lm = p.large_miner as usize;
            if p.large_miner_share > 0.0 && !v.contains(&lm) {
                v[0] = lm;
            }
            v.sort_unstable();
            v
        };
        let mut rng = Stream::new(s.seed, "pow/hash-power");
        let mut share = vec![0.0; n];
        for &m in &miners {
            share[m] = rng.normal(1.0, p.hash_power_stdev).max(0.01);
        }
        if p.large_miner_share > 0.0 {
            let lm = p.large_miner as usize;
            share[lm] = 0.0;
            let rest: f64 = share.iter().sum();
            if rest <= 0.0 {
                return Err(bad(
                    s,
                    &field("miners"),
                    "the large miner is the only miner; add miners".into(),
                ));
            }
            for x in share.iter_mut() {
                *x *= (1.0 - p.large_miner_share) / rest;
            }
            share[lm] = p.large_miner_share;
        } else {
            let total: f64 = share.iter().sum();
            for x in share.iter_mut() {
                *x /= total;
            }
        }
        let interval_ns = p.block_interval_ms * 1e6;
        let initial_difficulty = (p.network_hashrate_hs * p.block_interval_ms / 1e3
            * p.difficulty_initial_factor)
            .max(1.0) as u128;
        let timeouts = !s.faults.is_empty() || s.network.loss > 0.0 || !s.network.links.is_empty();
        let k = p.confirmations;
        let cfg = Cfg {
            p,
            relay,
            k,
            initial_difficulty,
            interval_ns,
            timeouts,
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
            total_hashes: 0.0,
            stopped: false,
            share,
            selfish: vec![false; n],
        };
        Ok(Pow {
            cfg: Rc::new(cfg),
            shared: Rc::new(RefCell::new(shared)),
        })
    }

    fn max_faulty(&self, committee_size: usize) -> usize {
        // Nakamoto consensus is not a permissioned BFT protocol: its security
        // rests on hash power, not on a count of nodes, so any number of nodes may
        // carry a Byzantine behaviour (their hash shares decide the outcome).
        committee_size
    }

    fn replica(&self, _shard: u32, me: NodeId, _committee: &[NodeId]) -> PowReplica {
        let share = self.shared.borrow().share[me as usize];
        PowReplica {
            me,
            cfg: Rc::clone(&self.cfg),
            shared: Rc::clone(&self.shared),
            hashrate: share * self.cfg.p.network_hashrate_hs,
            mine_rng: Stream::indexed(0, "unused", 0),
            seeded: false,
            tip: GENESIS,
            timer: None,
            committed: 0,
            orphans: Vec::new(),
            private: Vec::new(),
            racing: false,
        }
    }

    fn extras(&self) -> Option<Value> {
        let sh = self.shared.borrow();
        let tree = &sh.tree;
        let main = chain::main_chain(tree, sh.best);
        let mined = tree.len() as u64 - 1;
        let stale = mined - main.len() as u64;
        let mean_interval_s = main
            .last()
            .map(|&b| tree.get(b).created_ns as f64 / 1e9 / main.len() as f64);
        let selfish_share: f64 = sh
            .share
            .iter()
            .zip(&sh.selfish)
            .filter(|(_, s)| **s)
            .map(|(x, _)| x)
            .sum();
        let selfish_main = main
            .iter()
            .filter(|&&b| sh.selfish[tree.get(b).miner as usize])
            .count();
        let last_diff = main
            .last()
            .map_or(self.cfg.initial_difficulty, |&b| tree.get(b).difficulty);
        // Mean block interval of each retarget window of the main chain (capped).
        let w = self.cfg.p.retarget_window as usize;
        let window_means: Vec<f64> = if w == 0 {
            Vec::new()
        } else {
            main.chunks(w)
                .filter(|c| c.len() == w)
                .take(MAX_WINDOWS_REPORTED)
                .map(|c| {
                    let first = tree.get(c[0]).parent;
                    let last = c[c.len() - 1];
                    (tree.get(last).created_ns - tree.get(first).created_ns) as f64 / 1e9 / w as f64
                })
                .collect()
        };
        Some(json!({
            "protocol": "pow",
            "window_mean_interval_s": window_means,
            "relay": self.cfg.p.relay,
            "confirmations": self.cfg.k,
            "blocks_mined": mined,
            "main_chain_blocks": main.len(),
            "stale_blocks": stale,
            "stale_rate": if mined == 0 { 0.0 } else { stale as f64 / mined as f64 },
            "reorgs": sh.stats.reorgs,
            "node_reorgs": sh.stats.node_reorgs,
            "max_reorg_depth": sh.stats.max_reorg_depth,
            "mean_block_interval_s": mean_interval_s,
            "target_block_interval_s": self.cfg.p.block_interval_ms / 1e3,
            "initial_difficulty": self.cfg.initial_difficulty as f64,
            "final_difficulty": last_diff as f64,
            "total_hashes": sh.total_hashes,
            "joules_per_hash": self.cfg.p.joules_per_hash,
            "energy_joules": sh.total_hashes * self.cfg.p.joules_per_hash,
            "energy_kwh": sh.total_hashes * self.cfg.p.joules_per_hash / 3.6e6,
            "propagation": sh.stats.propagation_json(),
            "mean_peer_degree": sh.graph.mean_degree(),
            "announcements_suppressed": sh.stats.announcements_suppressed,
            "duplicate_blocks": sh.stats.duplicate_blocks,
            "txs_returned_to_pool": sh.pool.returned,
            "pool_pending": sh.pool.len(),
            "selfish": {
                "hash_share": selfish_share,
                "main_chain_share": if main.is_empty() { 0.0 } else { selfish_main as f64 / main.len() as f64 },
            },
        }))
    }
}

/// A proof-of-work node.
pub struct PowReplica {
    me: NodeId,
    cfg: Rc<Cfg>,
    shared: Rc<RefCell<Shared>>,
    hashrate: f64,
    mine_rng: Stream,
    seeded: bool,
    /// Best valid block this node knows (for a selfish miner: of the public chain).
    tip: BlockIdx,
    /// Pending mining timer and the difficulty it was drawn for.
    timer: Option<(TimerId, u128)>,
    /// Highest height committed.
    committed: u32,
    /// Received blocks whose parent is not valid here yet.
    orphans: Vec<BlockIdx>,
    /// Selfish mining: withheld blocks, oldest first.
    private: Vec<BlockIdx>,
    /// Selfish mining: a published private branch ties the public one.
    racing: bool,
}

type PowCtx<'a, 'b> = Ctx<'a, PowMsg, PowTimer>;

/// Difficulty of the block mined on top of `parent`.
fn next_difficulty(tree: &BlockTree, cfg: &Cfg, parent: BlockIdx) -> u128 {
    let prev = if parent == GENESIS {
        cfg.initial_difficulty
    } else {
        tree.get(parent).difficulty
    };
    let w = cfg.p.retarget_window;
    let h = tree.get(parent).height + 1;
    if w == 0 || h % w != 0 {
        return prev;
    }
    let first = tree.ancestor_at(parent, h - w);
    let actual = (tree.get(parent).created_ns - tree.get(first).created_ns).max(1) as f64;
    let target = cfg.interval_ns * f64::from(w - 1);
    let factor = (target / actual).clamp(0.25, 4.0);
    ((prev as f64) * factor).max(1.0) as u128
}

impl PowReplica {
    fn selfish(&self, ctx: &PowCtx<'_, '_>) -> bool {
        ctx.byzantine() == Some(ByzantineBehaviour::SelfishMine)
    }

    fn silent(&self, ctx: &PowCtx<'_, '_>) -> bool {
        ctx.byzantine() == Some(ByzantineBehaviour::Silent)
    }

    /// The block this miner builds on.
    fn mining_parent(&self) -> BlockIdx {
        self.private.last().copied().unwrap_or(self.tip)
    }

    /// (Re)arm the mining timer if the difficulty it was drawn for changed.
    fn arm_mining(&mut self, ctx: &mut PowCtx<'_, '_>) {
        if self.hashrate <= 0.0 || self.silent(ctx) {
            return;
        }
        let d = {
            let sh = self.shared.borrow();
            if sh.stopped {
                return;
            }
            next_difficulty(&sh.tree, &self.cfg, self.mining_parent())
        };
        if let Some((id, td)) = self.timer {
            if td == d {
                return;
            }
            ctx.cancel_timer(id);
        }
        if !self.seeded {
            // The stream is derived from the master seed through the node's own stream.
            let seed = ctx.rng().next_u64();
            self.mine_rng = Stream::indexed(seed, "pow/mine", u64::from(self.me));
            self.seeded = true;
        }
        let mean_ns = d as f64 / self.hashrate * 1e9;
        let after = self.mine_rng.exponential(mean_ns).max(1.0) as u64;
        let id = ctx.set_timer(after, PowTimer::Mine);
        self.timer = Some((id, d));
    }

    fn mine(&mut self, ctx: &mut PowCtx<'_, '_>) {
        self.timer = None;
        if self.silent(ctx) {
            return;
        }
        let parent = self.mining_parent();
        let selfish = self.selfish(ctx);
        let now = ctx.now();
        let b = {
            let mut sh = self.shared.borrow_mut();
            if sh.stopped {
                return;
            }
            let d = next_difficulty(&sh.tree, &self.cfg, parent);
            let p = &self.cfg.p;
            // Transactions: the oldest pending ones that fit (see chain.rs on the pool).
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
                .add(parent, d, self.me, now, 0, store, size, txs.len() as u32);
            sh.status.push_block();
            sh.stats.push_block();
            sh.status.set(b, self.me, Status::Valid);
            sh.total_hashes += d as f64;
            if selfish {
                sh.selfish[self.me as usize] = true;
            }
            if self.cfg.p.stop_at_height > 0 && sh.tree.get(b).height >= self.cfg.p.stop_at_height {
                sh.stopped = true;
            }
            let h = sh.tree.get(b).height;
            if h <= sh.settled {
                sh.tree.blocks[b as usize].stale_counted = true;
                drop(sh);
                ctx.stale_block();
            }
            b
        };
        let store = self.shared.borrow().tree.get(b).store;
        if let Some(r) = store {
            ctx.include(r);
        }
        if selfish {
            self.private.push(b);
            if self.racing {
                // Eyal-Sirer state 0': a block found during a tie race is published at once.
                self.racing = false;
                self.publish_private(ctx, usize::MAX);
            }
        } else {
            self.publish(ctx, b);
            self.adopt(ctx, b);
        }
        self.arm_mining(ctx);
    }

    /// Make `b` public: update the best published chain and relay it.
    fn publish(&mut self, ctx: &mut PowCtx<'_, '_>, b: BlockIdx) {
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
                let h = sh.tree.get(b).height;
                let settle_to = h.saturating_sub(self.cfg.k.max(1));
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

    /// Publish withheld blocks up to height `max_height` (all with `usize::MAX`).
    fn publish_private(&mut self, ctx: &mut PowCtx<'_, '_>, max_height: usize) {
        let mut out = Vec::new();
        {
            let sh = self.shared.borrow();
            while let Some(&b) = self.private.first() {
                if sh.tree.get(b).height as usize > max_height {
                    break;
                }
                out.push(self.private.remove(0));
            }
        }
        for b in out {
            self.publish(ctx, b);
            let better = self.shared.borrow().tree.better(b, self.tip);
            if better
                || self.shared.borrow().tree.get(b).height
                    == self.shared.borrow().tree.get(self.tip).height
            {
                // In a tie the selfish miner keeps mining on its own branch.
                self.set_tip(ctx, b);
            }
        }
    }

    /// Announce or push valid block `b` to every peer that does not have it.
    fn relay(&mut self, ctx: &mut PowCtx<'_, '_>, b: BlockIdx) {
        if self.silent(ctx) {
            return;
        }
        let mut guard = self.shared.borrow_mut();
        let sh = &mut *guard;
        let size = sh.tree.get(b).size_bytes;
        let msg = if self.cfg.relay == Relay::Compact {
            PowMsg::Cmpct(b, self.cfg.compact_bytes(size))
        } else {
            PowMsg::Inv(b)
        };
        for &p in sh.graph.of(self.me) {
            if sh.status.get(b, p) == Status::Unknown {
                ctx.send(p, msg.clone());
            } else {
                sh.stats.announcements_suppressed += 1;
            }
        }
    }

    /// Request `b` and its unknown ancestors from `from`, oldest first.
    fn request(&mut self, ctx: &mut PowCtx<'_, '_>, from: NodeId, b: BlockIdx) {
        let mut want = Vec::new();
        {
            let mut sh = self.shared.borrow_mut();
            let mut x = b;
            while x != GENESIS && sh.status.get(x, self.me) == Status::Unknown {
                want.push(x);
                sh.status.set(x, self.me, Status::Requested);
                x = sh.tree.get(x).parent;
            }
        }
        for &x in want.iter().rev() {
            ctx.send(from, PowMsg::GetData(x));
            if self.cfg.timeouts {
                let after = (self.cfg.p.request_timeout_ms * 1e6) as u64;
                ctx.set_timer(after, PowTimer::RequestTimeout(x));
            }
        }
    }

    /// A full block arrived.
    fn receive_block(&mut self, ctx: &mut PowCtx<'_, '_>, from: NodeId, b: BlockIdx) {
        let parent_valid = {
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
                drop(sh);
                if pv == Status::Unknown {
                    self.request(ctx, from, parent);
                }
                return;
            }
            true
        };
        debug_assert!(parent_valid);
        let mut todo = vec![b];
        while let Some(x) = todo.pop() {
            self.connect(ctx, x);
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

    /// Validate `b` (its parent is valid here), relay it and run fork choice.
    fn connect(&mut self, ctx: &mut PowCtx<'_, '_>, b: BlockIdx) {
        let (size, created) = {
            let sh = self.shared.borrow();
            let blk = sh.tree.get(b);
            (blk.size_bytes, blk.published_ns)
        };
        let cpu_ms = self.cfg.p.validate_ms + self.cfg.p.validate_ms_per_mb * size as f64 / 1e6;
        ctx.charge_ns((cpu_ms * 1e6) as u64);
        {
            let mut sh = self.shared.borrow_mut();
            sh.status.set(b, self.me, Status::Valid);
            sh.stats.received(b, created, ctx.now());
        }
        self.relay(ctx, b);
        let better = self.shared.borrow().tree.better(b, self.tip);
        if !better {
            return;
        }
        self.adopt(ctx, b);
        if self.selfish(ctx) {
            self.selfish_react(ctx);
        }
        self.arm_mining(ctx);
    }

    /// Eyal-Sirer reaction to the public chain growing.
    fn selfish_react(&mut self, ctx: &mut PowCtx<'_, '_>) {
        self.racing = false;
        let Some(&last) = self.private.last() else {
            return;
        };
        let (priv_h, pub_h) = {
            let sh = self.shared.borrow();
            (sh.tree.get(last).height, sh.tree.get(self.tip).height)
        };
        if priv_h < pub_h {
            // The honest chain is ahead: give up the private branch.
            self.private.clear();
        } else if priv_h == pub_h {
            // Match: publish everything and race.
            self.publish_private(ctx, usize::MAX);
            self.racing = true;
        } else if priv_h == pub_h + 1 {
            // Lead of one left: publish all, the honest block is orphaned.
            self.publish_private(ctx, usize::MAX);
        } else {
            // Comfortable lead: reveal just enough to match the public height.
            self.publish_private(ctx, pub_h as usize);
        }
    }

    /// Switch to tip `b` (more work than the current one, or the selfish tie rule).
    fn adopt(&mut self, ctx: &mut PowCtx<'_, '_>, b: BlockIdx) {
        self.set_tip(ctx, b);
    }

    fn set_tip(&mut self, ctx: &mut PowCtx<'_, '_>, b: BlockIdx) {
        let old = self.tip;
        if old == b {
            return;
        }
        let (fork_h, new_h, counted) = {
            let mut guard = self.shared.borrow_mut();
            let sh = &mut *guard;
            let f = sh.tree.fork_point(old, b);
            let fork_h = sh.tree.get(f).height;
            let mut counted = false;
            if f != old {
                sh.stats.node_reorgs += 1;
                let depth = sh.tree.get(old).height - fork_h;
                sh.stats.max_reorg_depth = sh.stats.max_reorg_depth.max(depth);
                if !sh.tree.blocks[old as usize].reorged {
                    sh.tree.blocks[old as usize].reorged = true;
                    sh.stats.reorgs += 1;
                    counted = true;
                }
            }
            (fork_h, sh.tree.get(b).height, counted)
        };
        if counted {
            ctx.reorg();
        }
        self.tip = b;
        // Commit the block `confirmations` deep; after a reorganisation below the
        // committed height, re-commit the new branch (a different block at a
        // committed height is the k-confirmation safety violation the simulator flags).
        let target = new_h.saturating_sub(self.cfg.k);
        let start = if fork_h < self.committed {
            fork_h + 1
        } else {
            self.committed + 1
        };
        if target >= start {
            let mut blocks = Vec::with_capacity((target - start + 1) as usize);
            {
                let sh = self.shared.borrow();
                let mut x = sh.tree.ancestor_at(b, target);
                loop {
                    let blk = sh.tree.get(x);
                    if blk.height < start || x == GENESIS {
                        break;
                    }
                    if let Some(r) = blk.store {
                        blocks.push((blk.height, r));
                    }
                    x = blk.parent;
                }
            }
            for &(h, r) in blocks.iter().rev() {
                ctx.commit(u64::from(h), r);
            }
            self.committed = self.committed.max(target);
        }
    }
}

impl Replica for PowReplica {
    type Msg = PowMsg;
    type Timer = PowTimer;

    fn on_start(&mut self, ctx: &mut PowCtx<'_, '_>) {
        self.arm_mining(ctx);
    }

    fn on_client_tx(&mut self, _ctx: &mut PowCtx<'_, '_>, tx: TxRef) {
        self.shared.borrow_mut().pool.add(tx);
    }

    fn on_message(&mut self, ctx: &mut PowCtx<'_, '_>, from: NodeId, msg: PowMsg) {
        if self.silent(ctx) {
            return;
        }
        match msg {
            PowMsg::Inv(b) => {
                let unknown = self.shared.borrow().status.get(b, self.me) == Status::Unknown;
                if unknown {
                    self.request(ctx, from, b);
                }
            }
            PowMsg::GetData(b) => {
                let (valid, size) = {
                    let sh = self.shared.borrow();
                    (
                        sh.status.get(b, self.me) == Status::Valid,
                        sh.tree.get(b).size_bytes,
                    )
                };
                if valid {
                    // A parent fetched to connect an orphan always travels in full.
                    let orphan_fetch = self.cfg.relay == Relay::InvCompact && {
                        let sh = self.shared.borrow();
                        let children = sh.tree.by_height.get(sh.tree.get(b).height as usize + 1);
                        children.is_some_and(|c| {
                            c.iter().any(|&x| {
                                sh.tree.get(x).parent == b && sh.status.get(x, from) >= Status::Have
                            })
                        })
                    };
                    if self.cfg.relay == Relay::InvCompact && !orphan_fetch {
                        ctx.send(from, PowMsg::Cmpct(b, self.cfg.compact_bytes(size)));
                    } else {
                        ctx.send(from, PowMsg::Block(b, size));
                    }
                }
            }
            PowMsg::Block(b, _) | PowMsg::BlockTxn(b, _) => self.receive_block(ctx, from, b),
            PowMsg::Cmpct(b, _) => {
                let (st, parent_valid) = {
                    let sh = self.shared.borrow();
                    let parent = sh.tree.get(b).parent;
                    (
                        sh.status.get(b, self.me),
                        sh.status.get(parent, self.me) == Status::Valid,
                    )
                };
                let solicited = self.cfg.relay == Relay::InvCompact && st == Status::Requested;
                if st != Status::Unknown && !solicited {
                    self.shared.borrow_mut().stats.duplicate_blocks += 1;
                    return;
                }
                if !parent_valid {
                    // Kept as an orphan; its parent is fetched in full.
                    self.receive_block(ctx, from, b);
                    return;
                }
                if self.cfg.p.compact_failure_rate > 0.0
                    && ctx.rng().bernoulli(self.cfg.p.compact_failure_rate)
                {
                    self.shared
                        .borrow_mut()
                        .status
                        .set(b, self.me, Status::Requested);
                    ctx.send(from, PowMsg::GetBlockTxn(b));
                    return;
                }
                self.receive_block(ctx, from, b);
            }
            PowMsg::GetBlockTxn(b) => {
                let size = self.shared.borrow().tree.get(b).size_bytes;
                let bytes = ((size as f64 * self.cfg.p.compact_missing_fraction) as u64).max(1)
                    + P2P_HEADER_BYTES
                    + 32;
                ctx.send(from, PowMsg::BlockTxn(b, bytes));
            }
            PowMsg::GetTip => {
                let t = self.tip;
                if t != GENESIS {
                    ctx.send(from, PowMsg::Inv(t));
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut PowCtx<'_, '_>, timer: PowTimer) {
        match timer {
            PowTimer::Mine => self.mine(ctx),
            PowTimer::RequestTimeout(b) => {
                let provider = {
                    let mut sh = self.shared.borrow_mut();
                    if sh.status.get(b, self.me) != Status::Requested {
                        return;
                    }
                    sh.status.set(b, self.me, Status::Unknown);
                    sh.graph
                        .of(self.me)
                        .iter()
                        .copied()
                        .find(|&p| sh.status.get(b, p) == Status::Valid)
                };
                if let Some(p) = provider {
                    self.request(ctx, p, b);
                }
            }
        }
    }

    fn on_recover(&mut self, ctx: &mut PowCtx<'_, '_>) {
        // Volatile state is gone: pending requests, orphans, the mining timer.
        self.timer = None;
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
        let peers: Vec<NodeId> = self.shared.borrow().graph.of(self.me).to_vec();
        for p in peers {
            ctx.send(p, PowMsg::GetTip);
        }
        self.arm_mining(ctx);
    }
}
