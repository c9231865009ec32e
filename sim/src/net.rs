//! The network model: regions, a one-way latency matrix, jitter, per-node
//! bandwidth with FIFO uplink/downlink queues, loss, partitions and per-link
//! overrides.
//!
//! A message of `size` bytes sent by `a` to `b` at time `t`:
//! 1. queues on `a`'s uplink: it starts transmitting at `s = max(t, uplink free)`
//!    and the last byte leaves at `s + size * 8 / upload_mbps` (serialisation delay);
//! 2. is dropped if a partition separates `a` from `b` or the link's loss draw says so
//!    (it still used `a`'s uplink: the sender cannot know);
//! 3. propagates for the one-way latency `L` between the nodes' regions plus jitter
//!    (plus any latency fault): the first byte reaches `b` at `s + L`;
//! 4. queues on `b`'s downlink in order of first-byte arrival: reception starts at
//!    `r = max(s + L, downlink free)` and ends at
//!    `max(r + size * 8 / download_mbps, last byte sent + L)`.
//!
//! The transfer is pipelined (cut-through): on idle links a message takes
//! `L + size * 8 / min(upload, download)`, not the sum of both serialisations.
//! A 200 MB imaging blob therefore occupies a 100 Mbps link for 16 s and every
//! message behind it on the same uplink or downlink waits.

use crate::kernel::TimeNs;
use crate::protocol::NodeId;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use simrand::Stream;

/// The default regions (AWS regions of the latency measurements in WORKLOADS.md).
pub const DEFAULT_REGIONS: [&str; 6] = [
    "us-east",
    "us-west",
    "eu-west",
    "eu-central",
    "ap-tokyo",
    "ap-sydney",
];

/// Round-trip times between the default regions, ms.
///
/// Source (WORKLOADS.md, "Consortium network"): AWS inter-region measurements,
/// 2017 averages — US-East↔US-West 73, US-East↔EU-West 81, US-East↔EU-Central 89,
/// EU-West↔EU-Central 19.6, US-East↔Tokyo 145, US-East↔Sydney 230. The remaining
/// pairs are estimates (est.) consistent with the same public inter-region
/// measurements: US-West↔EU-West 140, US-West↔EU-Central 150, US-West↔Tokyo 110,
/// US-West↔Sydney 160, EU-West↔Tokyo 220, EU-West↔Sydney 280, EU-Central↔Tokyo 230,
/// EU-Central↔Sydney 290, Tokyo↔Sydney 105. The diagonal is the intra-region RTT
/// (between zones: 0.25 to 3.4 ms, public measurements; default 1 ms).
pub const DEFAULT_RTT_MS: [[f64; 6]; 6] = [
    [1.0, 73.0, 81.0, 89.0, 145.0, 230.0],
    [73.0, 1.0, 140.0, 150.0, 110.0, 160.0],
    [81.0, 140.0, 1.0, 19.6, 220.0, 280.0],
    [89.0, 150.0, 19.6, 1.0, 230.0, 290.0],
    [145.0, 110.0, 220.0, 230.0, 1.0, 105.0],
    [230.0, 160.0, 280.0, 290.0, 105.0, 1.0],
];

/// Default per-node bandwidth, Mbps: a hospital's connection (100 Mbps; ONC
/// broadband guidance, SHLB Coalition — physician office 4, small practice 10,
/// large practice 25, hospital 100, large centres up to 1 Gbps).
pub const DEFAULT_BANDWIDTH_MBPS: f64 = 100.0;
/// Messages of at most this many bytes fit in one packet (an Ethernet MTU) and skip the
/// receiver's downlink queue (see [`crate::protocol::Message::skips_downlink_queue`]):
/// a real interface interleaves packets from concurrent transfers, so a 144-byte vote
/// arriving during a 10 MB transfer waits for at most one packet of it, not for all of it.
/// Such a message still pays its own downlink serialisation; larger messages queue FIFO.
pub const SINGLE_PACKET_BYTES: u64 = 1_500;

/// Whether a message of `bytes` fits in one packet ([`SINGLE_PACKET_BYTES`]).
#[inline]
pub fn fits_one_packet(bytes: u64) -> bool {
    bytes <= SINGLE_PACKET_BYTES
}

/// Jitter added to every message's propagation delay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Jitter {
    /// No jitter.
    None,
    /// Uniform in `[0, max_ms]`.
    Uniform {
        /// Upper bound, ms.
        max_ms: f64,
    },
    /// Lognormal with the given median (ms) and log-space sigma.
    Lognormal {
        /// Median, ms.
        median_ms: f64,
        /// Sigma of the underlying normal.
        sigma: f64,
    },
    /// Exponential with the given mean (ms).
    Exponential {
        /// Mean, ms.
        mean_ms: f64,
    },
}

impl Default for Jitter {
    /// Exponential with mean 0.5 ms (est.: queueing noise on a cloud path).
    fn default() -> Self {
        Jitter::Exponential { mean_ms: 0.5 }
    }
}

impl Jitter {
    /// Whether the parameters are finite and non-negative.
    pub fn validate(&self) -> Result<(), String> {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        match *self {
            Jitter::None => Ok(()),
            Jitter::Uniform { max_ms } if ok(max_ms) => Ok(()),
            Jitter::Lognormal { median_ms, sigma } if ok(median_ms) && ok(sigma) => Ok(()),
            Jitter::Exponential { mean_ms } if ok(mean_ms) => Ok(()),
            _ => Err(format!(
                "jitter parameters must be finite and >= 0, got {self:?}"
            )),
        }
    }

    /// `ln(median_ms)` of a lognormal jitter (what [`Jitter::sample_ns`] takes as
    /// `log_median_ms`, computed once per run instead of once per message).
    fn log_median_ms(&self) -> f64 {
        match *self {
            Jitter::Lognormal { median_ms, .. } if median_ms > 0.0 => libm::log(median_ms),
            _ => 0.0,
        }
    }

    #[inline]
    fn sample_ns(&self, log_median_ms: f64, rng: &mut Stream) -> u64 {
        let ms = match *self {
            Jitter::None => return 0,
            Jitter::Uniform { max_ms } => rng.uniform() * max_ms,
            Jitter::Lognormal { median_ms, sigma } => {
                if median_ms <= 0.0 {
                    return 0;
                }
                rng.lognormal(log_median_ms, sigma)
            }
            Jitter::Exponential { mean_ms } => rng.exponential(mean_ms),
        };
        (ms * 1e6) as u64
    }
}

/// Per-node network placement and bandwidth overrides (`[[network.nodes]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeNetOverride {
    /// The node.
    pub node: NodeId,
    /// Region name (one of `network.regions`).
    #[serde(default)]
    pub region: Option<String>,
    /// Upload bandwidth, Mbps.
    #[serde(default)]
    pub upload_mbps: Option<f64>,
    /// Download bandwidth, Mbps.
    #[serde(default)]
    pub download_mbps: Option<f64>,
}

/// A per-link override (`[[network.links]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkOverride {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// One-way latency replacing the region matrix value, ms.
    #[serde(default)]
    pub latency_ms: Option<f64>,
    /// Loss probability replacing `network.loss` on this link.
    #[serde(default)]
    pub loss: Option<f64>,
    /// Apply to both directions (default true).
    #[serde(default = "yes")]
    pub symmetric: bool,
}

fn yes() -> bool {
    true
}

/// The `[network]` table of a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Region names.
    pub regions: Vec<String>,
    /// One-way latency matrix between regions, ms (square, `regions.len()`);
    /// the diagonal is the intra-region one-way latency. Default: [`DEFAULT_RTT_MS`] / 2.
    pub latency_ms: Vec<Vec<f64>>,
    /// Regions nodes are placed in, round-robin by node id (default: all regions).
    /// `[[network.nodes]]` overrides single nodes.
    pub placement: Vec<String>,
    /// Jitter distribution.
    pub jitter: Jitter,
    /// Default upload bandwidth per node, Mbps.
    pub upload_mbps: f64,
    /// Default download bandwidth per node, Mbps.
    pub download_mbps: f64,
    /// Default loss probability per message.
    pub loss: f64,
    /// Upload bandwidth per region, Mbps, in the order of `regions` (empty: every
    /// node uses `upload_mbps`). `[[network.nodes]]` still overrides single nodes.
    pub region_upload_mbps: Vec<f64>,
    /// Download bandwidth per region, Mbps, in the order of `regions` (empty: every
    /// node uses `download_mbps`).
    pub region_download_mbps: Vec<f64>,
    /// Per-node overrides.
    pub nodes: Vec<NodeNetOverride>,
    /// Per-link overrides.
    pub links: Vec<LinkOverride>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            regions: DEFAULT_REGIONS.iter().map(|s| s.to_string()).collect(),
            latency_ms: DEFAULT_RTT_MS
                .iter()
                .map(|row| row.iter().map(|rtt| rtt / 2.0).collect())
                .collect(),
            placement: Vec::new(),
            jitter: Jitter::default(),
            upload_mbps: DEFAULT_BANDWIDTH_MBPS,
            download_mbps: DEFAULT_BANDWIDTH_MBPS,
            loss: 0.0,
            region_upload_mbps: Vec::new(),
            region_download_mbps: Vec::new(),
            nodes: Vec::new(),
            links: Vec::new(),
        }
    }
}

/// The resolved, immutable network topology of a run.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Region names.
    pub regions: Vec<String>,
    latency_ns: Vec<u64>,
    /// Region index of each node.
    pub node_region: Vec<u16>,
    up_ns_per_byte: Vec<f64>,
    down_ns_per_byte: Vec<f64>,
}

fn ns_per_byte(mbps: f64) -> f64 {
    // bits / (mbps * 1e6 bit/s) seconds = bytes * 8000 / mbps ns
    8_000.0 / mbps
}

impl Topology {
    /// Resolve `cfg` for `n_nodes` nodes operated by organisations in
    /// `org_regions` (pass `&[]` for no organisations). Errors are messages naming
    /// the field.
    ///
    /// Placement: node `g` is operated by organisation `g % org_regions.len()`.
    /// Unless `network.placement` is given, a node sits in its organisation's region
    /// when that names a network region (exactly, or as a prefix: an organisation
    /// in `us-east-1` sits in `us-east`); otherwise nodes are spread round-robin over
    /// the network regions. `[[network.nodes]]` overrides single nodes.
    pub fn new(
        cfg: &NetworkConfig,
        n_nodes: usize,
        org_regions: &[String],
    ) -> Result<Topology, String> {
        let r = cfg.regions.len();
        if r == 0 || r > u16::MAX as usize {
            return Err("network.regions: need at least one region".into());
        }
        if cfg.latency_ms.len() != r || cfg.latency_ms.iter().any(|row| row.len() != r) {
            return Err(format!(
                "network.latency_ms: must be a square {r}x{r} matrix (one row and column per region in network.regions)"
            ));
        }
        let mut latency_ns = Vec::with_capacity(r * r);
        for (i, row) in cfg.latency_ms.iter().enumerate() {
            for (j, &ms) in row.iter().enumerate() {
                if !ms.is_finite() || ms < 0.0 {
                    return Err(format!(
                        "network.latency_ms[{i}][{j}]: must be finite and >= 0, got {ms}"
                    ));
                }
                latency_ns.push((ms * 1e6) as u64);
            }
        }
        let region_index = |name: &str, field: &str| -> Result<u16, String> {
            cfg.regions
                .iter()
                .position(|x| x == name)
                .map(|i| i as u16)
                .ok_or_else(|| {
                    format!(
                        "{field}: unknown region {name:?}; allowed: {}",
                        cfg.regions.join(", ")
                    )
                })
        };
        let placement: Vec<u16> = if cfg.placement.is_empty() {
            (0..r as u16).collect()
        } else {
            cfg.placement
                .iter()
                .map(|p| region_index(p, "network.placement"))
                .collect::<Result<_, _>>()?
        };
        let check_bw = |x: f64, field: &str| -> Result<f64, String> {
            if x.is_finite() && x > 0.0 {
                Ok(x)
            } else {
                Err(format!(
                    "{field}: bandwidth must be a positive number of Mbps, got {x}"
                ))
            }
        };
        let up = check_bw(cfg.upload_mbps, "network.upload_mbps")?;
        let down = check_bw(cfg.download_mbps, "network.download_mbps")?;
        let org_region: Vec<Option<u16>> = org_regions
            .iter()
            .map(|o| {
                cfg.regions
                    .iter()
                    .position(|r| r == o)
                    .or_else(|| cfg.regions.iter().position(|r| o.starts_with(r.as_str())))
                    .map(|i| i as u16)
            })
            .collect();
        let use_orgs = cfg.placement.is_empty()
            && !org_region.is_empty()
            && org_region.iter().all(Option::is_some);
        let mut node_region: Vec<u16> = (0..n_nodes)
            .map(|i| {
                if use_orgs {
                    org_region[i % org_region.len()].unwrap_or(0)
                } else {
                    placement[i % placement.len()]
                }
            })
            .collect();
        let mut up_ns_per_byte = vec![ns_per_byte(up); n_nodes];
        let mut down_ns_per_byte = vec![ns_per_byte(down); n_nodes];
        for (list, field, out) in [
            (
                &cfg.region_upload_mbps,
                "network.region_upload_mbps",
                &mut up_ns_per_byte,
            ),
            (
                &cfg.region_download_mbps,
                "network.region_download_mbps",
                &mut down_ns_per_byte,
            ),
        ] {
            if list.is_empty() {
                continue;
            }
            if list.len() != r {
                return Err(format!(
                    "{field}: need one bandwidth per region ({r}, the length of network.regions), got {}",
                    list.len()
                ));
            }
            let per: Vec<f64> = list
                .iter()
                .map(|&x| check_bw(x, field).map(ns_per_byte))
                .collect::<Result<_, _>>()?;
            for (i, o) in out.iter_mut().enumerate() {
                *o = per[node_region[i] as usize];
            }
        }
        for o in &cfg.nodes {
            let i = o.node as usize;
            if i >= n_nodes {
                return Err(format!(
                    "network.nodes: node {} does not exist (nodes are 0..{})",
                    o.node, n_nodes
                ));
            }
            if let Some(reg) = &o.region {
                node_region[i] = region_index(reg, "network.nodes.region")?;
            }
            if let Some(u) = o.upload_mbps {
                up_ns_per_byte[i] = ns_per_byte(check_bw(u, "network.nodes.upload_mbps")?);
            }
            if let Some(d) = o.download_mbps {
                down_ns_per_byte[i] = ns_per_byte(check_bw(d, "network.nodes.download_mbps")?);
            }
        }
        Ok(Topology {
            regions: cfg.regions.clone(),
            latency_ns,
            node_region,
            up_ns_per_byte,
            down_ns_per_byte,
        })
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.node_region.len()
    }

    /// Base one-way latency from `a` to `b` (region matrix), ns.
    #[inline]
    pub fn latency_ns(&self, a: NodeId, b: NodeId) -> u64 {
        let r = self.regions.len();
        let ra = self.node_region[a as usize] as usize;
        let rb = self.node_region[b as usize] as usize;
        self.latency_ns[ra * r + rb]
    }

    /// Uplink serialisation time of `bytes` at node `a`, ns.
    #[inline]
    pub fn uplink_ns(&self, a: NodeId, bytes: u64) -> u64 {
        (bytes as f64 * self.up_ns_per_byte[a as usize]) as u64
    }

    /// Downlink serialisation time of `bytes` at node `b`, ns.
    #[inline]
    pub fn downlink_ns(&self, b: NodeId, bytes: u64) -> u64 {
        (bytes as f64 * self.down_ns_per_byte[b as usize]) as u64
    }
}

/// What a link fault applies to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// Every link into or out of a node.
    Node(NodeId),
    /// One directed link.
    Link(NodeId, NodeId),
    /// Every link of the network.
    All,
}

impl LinkTarget {
    #[inline]
    fn matches(self, a: NodeId, b: NodeId) -> bool {
        match self {
            LinkTarget::Node(n) => a == n || b == n,
            LinkTarget::Link(x, y) => a == x && b == y,
            LinkTarget::All => true,
        }
    }
}

struct LinkFault {
    id: u32,
    target: LinkTarget,
    loss: f64,
    extra_latency_ns: u64,
}

struct Partition {
    id: u32,
    inside: Vec<bool>,
    one_way: bool,
}

/// Why a message did not arrive.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Lost to the link's loss probability.
    Loss,
    /// A partition separates sender and receiver.
    Partition,
}

/// Per-type message counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Messages sent.
    pub count: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// Most distinct kind names [`KindCounters`] tracks by address; later ones are
/// merged by their text (a protocol has about ten kinds).
pub const MAX_KIND_ENTRIES: usize = 64;

/// Message counters per kind name. A protocol's kinds are `&'static str` constants, so
/// a kind is found by comparing the name's address over a short list instead of hashing
/// and comparing its text on every message. The same text may sit at two addresses
/// (two codegen units); [`KindCounters::totals`] merges such entries.
#[derive(Clone, Debug, Default)]
pub struct KindCounters {
    entries: Vec<(&'static str, KindStats)>,
}

impl KindCounters {
    /// Counts one message of `bytes` for `kind`.
    #[inline]
    pub fn add(&mut self, kind: &'static str, bytes: u64) {
        let k = match self
            .entries
            .iter_mut()
            .position(|(k, _)| std::ptr::eq(*k, kind))
        {
            Some(i) => &mut self.entries[i].1,
            None => self.entry_slow(kind),
        };
        k.count += 1;
        k.bytes += bytes;
    }

    #[cold]
    fn entry_slow(&mut self, kind: &'static str) -> &mut KindStats {
        let i = if self.entries.len() < MAX_KIND_ENTRIES {
            self.entries.push((kind, KindStats::default()));
            self.entries.len() - 1
        } else {
            match self.entries.iter().position(|(k, _)| *k == kind) {
                Some(i) => i,
                None => {
                    self.entries.push((kind, KindStats::default()));
                    self.entries.len() - 1
                }
            }
        };
        &mut self.entries[i].1
    }

    /// Totals per kind name, in name order.
    pub fn totals(&self) -> std::collections::BTreeMap<&'static str, KindStats> {
        let mut out = std::collections::BTreeMap::<&'static str, KindStats>::new();
        for (k, v) in &self.entries {
            let t = out.entry(k).or_default();
            t.count += v.count;
            t.bytes += v.bytes;
        }
        out
    }
}

/// Network counters.
#[derive(Clone, Debug, Default)]
pub struct NetStats {
    /// Messages sent per node.
    pub sent_msgs: Vec<u64>,
    /// Bytes sent per node.
    pub sent_bytes: Vec<u64>,
    /// Messages delivered per node.
    pub recv_msgs: Vec<u64>,
    /// Bytes delivered per node.
    pub recv_bytes: Vec<u64>,
    /// Per message type (keyed by the protocol's static kind name).
    pub by_kind: KindCounters,
    /// Messages dropped by loss.
    pub dropped_loss: u64,
    /// Messages dropped by partitions.
    pub dropped_partition: u64,
}

/// The mutable network state of a run.
pub struct Network {
    /// The topology.
    pub topo: Topology,
    jitter: Jitter,
    /// [`Jitter::log_median_ms`] of `jitter`.
    jitter_log_median_ms: f64,
    jitter_rng: Stream,
    loss_rng: Stream,
    up_free: Vec<TimeNs>,
    down_free: Vec<TimeNs>,
    base_loss: f64,
    overrides: FxHashMap<(NodeId, NodeId), (Option<u64>, Option<f64>)>,
    faults: Vec<LinkFault>,
    partitions: Vec<Partition>,
    /// Counters.
    pub stats: NetStats,
}

impl Network {
    /// A network over `topo` configured by `cfg`, drawing from streams
    /// `net/jitter` and `net/loss` of `seed`.
    pub fn new(topo: Topology, cfg: &NetworkConfig, seed: u64) -> Network {
        let n = topo.nodes();
        let mut overrides = FxHashMap::default();
        for l in &cfg.links {
            let v = (l.latency_ms.map(|ms| (ms * 1e6) as u64), l.loss);
            overrides.insert((l.from, l.to), v);
            if l.symmetric {
                overrides.insert((l.to, l.from), v);
            }
        }
        Network {
            topo,
            jitter: cfg.jitter.clone(),
            jitter_log_median_ms: cfg.jitter.log_median_ms(),
            jitter_rng: Stream::new(seed, "net/jitter"),
            loss_rng: Stream::new(seed, "net/loss"),
            up_free: vec![0; n],
            down_free: vec![0; n],
            base_loss: cfg.loss,
            overrides,
            faults: Vec::new(),
            partitions: Vec::new(),
            stats: NetStats {
                sent_msgs: vec![0; n],
                sent_bytes: vec![0; n],
                recv_msgs: vec![0; n],
                recv_bytes: vec![0; n],
                ..NetStats::default()
            },
        }
    }

    /// Start a link fault `id` (loss raised to at least `loss`, latency + `extra_latency_ns`).
    pub fn add_link_fault(
        &mut self,
        id: u32,
        target: LinkTarget,
        loss: f64,
        extra_latency_ns: u64,
    ) {
        self.faults.push(LinkFault {
            id,
            target,
            loss,
            extra_latency_ns,
        });
    }

    /// End link fault `id`.
    pub fn remove_link_fault(&mut self, id: u32) {
        self.faults.retain(|f| f.id != id);
    }

    /// Start partition `id`: `members` cannot exchange messages with the other
    /// nodes (if `one_way`, only messages from members to non-members are cut).
    pub fn add_partition(&mut self, id: u32, members: &[NodeId], one_way: bool) {
        let mut inside = vec![false; self.topo.nodes()];
        for &m in members {
            inside[m as usize] = true;
        }
        self.partitions.push(Partition {
            id,
            inside,
            one_way,
        });
    }

    /// Heal partition `id`.
    pub fn remove_partition(&mut self, id: u32) {
        self.partitions.retain(|p| p.id != id);
    }

    /// Whether a partition currently cuts `a -> b`.
    #[inline]
    pub fn blocked(&self, a: NodeId, b: NodeId) -> bool {
        self.partitions.iter().any(|p| {
            let ia = p.inside[a as usize];
            let ib = p.inside[b as usize];
            ia != ib && (!p.one_way || ia)
        })
    }

    /// Send `bytes` from `a` to `b` leaving at `depart`: returns the times the
    /// first and the last byte reach `b`'s network interface (before its downlink),
    /// or why it was dropped. Counts the message for `kind`.
    #[inline(always)]
    pub fn send(
        &mut self,
        a: NodeId,
        b: NodeId,
        depart: TimeNs,
        bytes: u64,
        kind: &'static str,
    ) -> Result<(TimeNs, TimeNs), Drop> {
        let (ai, _) = (a as usize, b as usize);
        self.stats.sent_msgs[ai] += 1;
        self.stats.sent_bytes[ai] += bytes;
        self.stats.by_kind.add(kind, bytes);

        let start = depart.max(self.up_free[ai]);
        let on_wire = start + self.topo.uplink_ns(a, bytes);
        self.up_free[ai] = on_wire;

        if !self.partitions.is_empty() && self.blocked(a, b) {
            self.stats.dropped_partition += 1;
            return Err(Drop::Partition);
        }
        let mut latency = self.topo.latency_ns(a, b);
        let mut loss = self.base_loss;
        if !self.overrides.is_empty() {
            if let Some(&(lat, l)) = self.overrides.get(&(a, b)) {
                if let Some(lat) = lat {
                    latency = lat;
                }
                if let Some(l) = l {
                    loss = l;
                }
            }
        }
        for f in &self.faults {
            if f.target.matches(a, b) {
                loss = 1.0 - (1.0 - loss) * (1.0 - f.loss);
                latency += f.extra_latency_ns;
            }
        }
        if loss > 0.0 && self.loss_rng.bernoulli(loss) {
            self.stats.dropped_loss += 1;
            return Err(Drop::Loss);
        }
        let delay = latency
            + self
                .jitter
                .sample_ns(self.jitter_log_median_ms, &mut self.jitter_rng);
        Ok((start + delay, on_wire + delay))
    }

    /// Count a message of `bytes` received by `b` (every delivery, and a client request
    /// that fits in one packet, which needs no downlink event).
    #[inline]
    pub fn count_received(&mut self, b: NodeId, bytes: u64) {
        self.stats.recv_msgs[b as usize] += 1;
        self.stats.recv_bytes[b as usize] += bytes;
    }

    /// Like [`Network::receive`] for a message that skips the downlink queue
    /// ([`crate::protocol::Message::skips_downlink_queue`]): fully received at
    /// `max(t + downlink serialisation, last_byte_ns)`; the downlink stays as it was.
    #[inline]
    pub fn receive_unqueued(
        &mut self,
        b: NodeId,
        t: TimeNs,
        last_byte_ns: TimeNs,
        bytes: u64,
    ) -> TimeNs {
        self.count_received(b, bytes);
        (t + self.topo.downlink_ns(b, bytes)).max(last_byte_ns)
    }

    /// The first byte of a message of `bytes` reached `b`'s interface at `t` and
    /// its last byte arrives at `last_byte_ns`: queue it on the downlink and return
    /// the time it is fully received.
    #[inline]
    pub fn receive(&mut self, b: NodeId, t: TimeNs, last_byte_ns: TimeNs, bytes: u64) -> TimeNs {
        let bi = b as usize;
        let start = t.max(self.down_free[bi]);
        let done = (start + self.topo.downlink_ns(b, bytes)).max(last_byte_ns);
        self.down_free[bi] = done;
        self.count_received(b, bytes);
        done
    }
}
