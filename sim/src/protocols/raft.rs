//! `raft`: Raft consensus (Ongaro & Ousterhout, "In Search of an Understandable
//! Consensus Algorithm", USENIX ATC 2014; the rules of the extended paper's Figure 2).
//!
//! **Crash-fault tolerant only.** Raft tolerates `⌊(n−1)/2⌋` crashed or cut-off
//! replicas per shard but *no* Byzantine replica: a lying leader could commit
//! anything. [`Raft::max_faulty`] is therefore 0 and a scenario that marks any node
//! Byzantine (`[[faults]] kind = "byzantine"`) is refused with an error that says so
//! and points to `pbft` or `hotstuff`.
//!
//! # What is modelled
//! - **Terms and elections**: followers that hear nothing from a leader for a random
//!   election timeout (drawn from the node's own stream) become candidates, bump the
//!   term, vote for themselves and send `request_vote`; a vote is granted at most
//!   once per term (`votedFor`) and only to a candidate whose log is at least as
//!   up to date (last term, then last index). A majority makes a leader (at most
//!   one per term); each new leader calls [`Ctx::view_change`] once. A leader that
//!   has not heard from a majority for an election timeout steps down
//!   ("check quorum"), so a leader cut off in a minority stops accepting work.
//! - **Log replication**: the leader batches client transactions into entries —
//!   one entry is one block (`block_max_tx`, `block_max_bytes`, `batch_timeout_ms`)
//!   — and sends `append` (AppendEntries) with the `prevLogIndex`/`prevLogTerm`
//!   consistency check. Followers truncate a conflicting suffix and reply with a
//!   conflict hint (the conflicting term and its first index) so the leader
//!   backtracks `nextIndex` by a term at a time, not an entry at a time. Appends are
//!   pipelined (up to `pipeline_window` unacknowledged messages and
//!   `max_inflight_bytes` per follower); after a rejection or a retransmission
//!   timeout a follower is *probed* with one append at a time until one succeeds
//!   (as etcd does), so a cut-off or lagging follower cannot flood the uplink;
//!   idle followers get `heartbeat`s. A new leader appends a no-op entry of its term;
//!   the commit index only advances over entries of the current term (the
//!   Figure 8 rule). Followers learn the commit index from appends and heartbeats
//!   (a heartbeat carries `min(commitIndex, matchIndex[f])`, as etcd does).
//! - **Heights**: every replica applies entries in log order and calls
//!   [`Ctx::commit`] for each *block* entry; no-op entries carry no height, so
//!   heights are dense from 1 and, by Log Matching, identical on all replicas.
//! - **Durability** ([`Replica::on_recover`]): `currentTerm`, `votedFor` and the log
//!   are persistent, and so is the applied ledger (the block log is written when a
//!   block is applied); the commit index restarts at the last applied entry and is
//!   re-learned from the leader. Leader state, votes received, the client
//!   transactions a gateway held and the forward buffer are volatile and lost.
//! - **Clients**: a gateway replica verifies the client's signature, keeps the
//!   transaction in its bounded pending pool until it sees it applied, and forwards
//!   it (batched for `forward_batch_ms`) to the leader it knows; when it learns of a
//!   new leader it re-forwards everything still pending. The leader drops
//!   transactions it already queued or holds in its retained log.
//! - **Catch-up and compaction**: a lagging follower is brought up to date by the
//!   backtracking above and appends of up to `max_append_entries` entries /
//!   `max_append_bytes` bytes, charged by size on the links. Each replica keeps at
//!   most `log_retain_entries` applied entries in memory; a follower that needs a
//!   compacted entry gets an `install_snapshot` of `snapshot_bytes` instead, sent in
//!   `snapshot_chunk_bytes` chunks one at a time (the paper's Figure 13; it then
//!   skips the heights the snapshot covers: it never executed those blocks itself).
//!
//! # Costs
//! Consortium Raft still authenticates its channels (TLS / MACs), so by default every
//! message sent and received is charged as hashing its bytes plus a fixed `mac_ns`;
//! with `require_signatures = true` messages instead carry a 64-byte signature,
//! signed on send and verified on receipt. Client transactions are signed by their
//! clients and verified once by the gateway. Appending entries to the log charges
//! `persist_ns` (a write to a durable log), a new block is hashed once by the leader
//! (its transaction root) and applying an entry charges its transactions' execution.
//! Sizes: append header 64 B plus 16 B and the block's bytes per entry, votes and
//! responses 50 B, heartbeats 48 B.
//!
//! # Parameters (`[protocol.raft]`, see [`RaftParams`])
//! Election timeout 150–300 ms, heartbeat 50 ms and retransmission 300 ms are the
//! paper's LAN figures; they are multiplied by `max(1, RTT / rtt_reference_ms)` where
//! RTT is the largest round-trip time between two regions of the shard's committee
//! (so a committee spread over continents, RTT 290 ms, gets 870–1740 ms timeouts).
//! Set `rtt_reference_ms = 0` to use the figures as given.
//!
//! Message complexity is linear in the committee size: one `append` and one
//! `append_resp` per follower per block, plus gateway forwards.
//!
//! Not modelled: pre-vote (a healed minority node with a higher term disrupts the
//! leader once, as in basic Raft), membership changes, read-only queries.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rustc_hash::FxHashSet;
use serde::Deserialize;

use crate::kernel::NS_PER_MS;
use crate::net::Topology;
use crate::protocol::{BlockRef, Ctx, Message, NodeId, Protocol, Replica, TimeNs, TimerId, TxRef};
use crate::scenario::{Scenario, ScenarioError};

/// Header of an `append` (term, prevLogIndex, prevLogTerm, leaderCommit, leader id,
/// entry count, MAC), bytes.
pub const APPEND_HEADER_BYTES: u64 = 64;
/// Per-entry framing inside an `append` (term, index), bytes, besides the block.
pub const ENTRY_HEADER_BYTES: u64 = 16;
/// An `append_resp` (term, success, match/hint index, conflict term, MAC), bytes.
pub const APPEND_RESP_BYTES: u64 = 50;
/// A `request_vote` (term, candidate, last log index and term, MAC), bytes.
pub const REQUEST_VOTE_BYTES: u64 = 50;
/// A `vote` (term, granted, MAC), bytes.
pub const VOTE_BYTES: u64 = 50;
/// A `heartbeat` (term, leader, commit index, MAC), bytes.
pub const HEARTBEAT_BYTES: u64 = 48;
/// A `heartbeat_resp` (term, MAC), bytes.
pub const HEARTBEAT_RESP_BYTES: u64 = 40;
/// Header of an `install_snapshot` besides the snapshot data, bytes.
pub const SNAPSHOT_HEADER_BYTES: u64 = 64;
/// A `snapshot_resp`, bytes.
pub const SNAPSHOT_RESP_BYTES: u64 = 50;
/// Header of a gateway `forward` batch besides the transactions, bytes.
pub const FORWARD_HEADER_BYTES: u64 = 32;
/// The log may hold up to this many times `log_retain_entries` applied entries
/// while a snapshot is being sent (so the follower can continue from it by appends).
pub const LOG_HARD_LIMIT_FACTOR: u64 = 2;
/// An ed25519 signature, bytes (added to every message with `require_signatures`).
pub const SIGNATURE_BYTES: u64 = 64;

/// `[protocol.raft]` parameters. Times in ms are the unscaled figures (see the
/// module docs for the RTT scaling).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftParams {
    /// Lower bound of the random election timeout, ms (default 150).
    pub election_timeout_min_ms: f64,
    /// Upper bound of the random election timeout, ms (default 300).
    pub election_timeout_max_ms: f64,
    /// A leader sends a heartbeat to a follower it sent nothing for this long, ms (default 50).
    pub heartbeat_ms: f64,
    /// Unacknowledged appends to a follower are re-sent after this long without
    /// progress, ms (default 300).
    pub retransmit_ms: f64,
    /// Timeouts are multiplied by `max(1, committee RTT / rtt_reference_ms)`; 0
    /// disables the scaling (default 50).
    pub rtt_reference_ms: f64,
    /// Most unacknowledged appends in flight per follower (default 16).
    pub pipeline_window: u32,
    /// Most bytes of unacknowledged appends in flight per follower (default 1 MiB).
    pub max_inflight_bytes: u64,
    /// Most entries in one append (default 64).
    pub max_append_entries: u32,
    /// Most bytes of entries in one append; a single larger block is still sent
    /// alone (default 256 KiB).
    pub max_append_bytes: u64,
    /// The leader stops proposing while this many entries are uncommitted (default 1024).
    pub max_uncommitted_entries: u32,
    /// A gateway batches forwarded transactions for this long, ms (default 2).
    pub forward_batch_ms: f64,
    /// Most client transactions a gateway holds pending, and most a leader queues
    /// (default 200 000); more are dropped.
    pub max_pending_txs: u32,
    /// Applied entries kept in memory before the prefix is compacted (default 4096).
    pub log_retain_entries: u32,
    /// Size of an `install_snapshot` (the shard's state), bytes (default 4 MiB, est.).
    pub snapshot_bytes: u64,
    /// An `install_snapshot` is sent in chunks of this many bytes, one at a time
    /// (default 64 KiB), so it shares the uplink with replication.
    pub snapshot_chunk_bytes: u64,
    /// Sign every message (64 B, charged sign/verify) instead of MACs (default false).
    pub require_signatures: bool,
    /// Fixed MAC cost per message sent or received, ns, besides hashing its bytes
    /// (default 300).
    pub mac_ns: u64,
    /// Cost of persisting appended entries or a term/vote change, ns (default 50 000:
    /// a write to an NVMe-backed log).
    pub persist_ns: u64,
}

impl Default for RaftParams {
    fn default() -> Self {
        RaftParams {
            election_timeout_min_ms: 150.0,
            election_timeout_max_ms: 300.0,
            heartbeat_ms: 50.0,
            retransmit_ms: 300.0,
            rtt_reference_ms: 50.0,
            pipeline_window: 16,
            max_inflight_bytes: 1024 * 1024,
            max_append_entries: 64,
            max_append_bytes: 256 * 1024,
            max_uncommitted_entries: 1024,
            forward_batch_ms: 2.0,
            max_pending_txs: 200_000,
            log_retain_entries: 4096,
            snapshot_bytes: 4 * 1024 * 1024,
            snapshot_chunk_bytes: 64 * 1024,
            require_signatures: false,
            mac_ns: 300,
            persist_ns: 50_000,
        }
    }
}

/// One log entry: a block, or a new leader's no-op.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Term in which a leader created the entry.
    pub term: u64,
    /// The block (`None` for a no-op).
    pub block: Option<BlockRef>,
}

/// A stored entry: the entry plus the height of the last block at or before it.
#[derive(Copy, Clone, Debug)]
struct Stored {
    term: u64,
    block: Option<BlockRef>,
    height: u64,
}

/// Raft's messages.
#[derive(Clone, Debug)]
pub enum RaftMsg {
    /// RequestVote.
    RequestVote {
        /// Candidate's term.
        term: u64,
        /// Index of the candidate's last entry.
        last_log_index: u64,
        /// Term of the candidate's last entry.
        last_log_term: u64,
    },
    /// A reply to RequestVote.
    Vote {
        /// The voter's current term.
        term: u64,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries carrying entries.
    Append {
        /// Leader's term.
        term: u64,
        /// Index of the entry before the first one carried.
        prev_index: u64,
        /// Term of that entry.
        prev_term: u64,
        /// Leader's commit index.
        leader_commit: u64,
        /// The entries (shared between the copies sent to several followers).
        entries: Arc<[Entry]>,
        /// Size on the wire.
        size_bytes: u64,
    },
    /// A reply to AppendEntries.
    AppendResp {
        /// The follower's current term.
        term: u64,
        /// Whether the entries were accepted.
        success: bool,
        /// On success the follower's last matching index; on failure the index the
        /// leader should try next (conflict index).
        index: u64,
        /// On failure, the term of the follower's conflicting entry (0: none; the
        /// follower's log is too short).
        conflict_term: u64,
    },
    /// An empty AppendEntries: leadership and commit index only.
    Heartbeat {
        /// Leader's term.
        term: u64,
        /// `min(commitIndex, matchIndex[follower])`.
        commit: u64,
    },
    /// A reply to a heartbeat.
    HeartbeatResp {
        /// The follower's current term.
        term: u64,
    },
    /// InstallSnapshot: one chunk of the snapshot (Figure 13's `offset`/`done`).
    Snapshot {
        /// Leader's term.
        term: u64,
        /// Last index the snapshot covers.
        last_index: u64,
        /// Its term.
        last_term: u64,
        /// Height of the last block it covers.
        last_height: u64,
        /// That block.
        last_block: Option<BlockRef>,
        /// Offset of this chunk in the snapshot.
        offset: u64,
        /// Whole snapshot size, bytes (this chunk is the last when it reaches it).
        total_bytes: u64,
        /// Size on the wire (header plus chunk).
        size_bytes: u64,
    },
    /// A reply to InstallSnapshot.
    SnapshotResp {
        /// The follower's current term.
        term: u64,
        /// The snapshot's last index.
        last_index: u64,
        /// Whether the follower now holds everything up to `last_index`.
        installed: bool,
        /// Otherwise the offset of the next chunk it expects.
        next_offset: u64,
    },
    /// A gateway forwards client transactions to the leader.
    Forward {
        /// The transactions.
        txs: Arc<[TxRef]>,
        /// Size on the wire.
        size_bytes: u64,
    },
}

impl RaftMsg {
    fn base_bytes(&self) -> u64 {
        match self {
            RaftMsg::RequestVote { .. } => REQUEST_VOTE_BYTES,
            RaftMsg::Vote { .. } => VOTE_BYTES,
            RaftMsg::Append { size_bytes, .. }
            | RaftMsg::Snapshot { size_bytes, .. }
            | RaftMsg::Forward { size_bytes, .. } => *size_bytes,
            RaftMsg::AppendResp { .. } => APPEND_RESP_BYTES,
            RaftMsg::Heartbeat { .. } => HEARTBEAT_BYTES,
            RaftMsg::HeartbeatResp { .. } => HEARTBEAT_RESP_BYTES,
            RaftMsg::SnapshotResp { .. } => SNAPSHOT_RESP_BYTES,
        }
    }
}

/// A message plus whether it carries a signature (set from `require_signatures`).
#[derive(Clone, Debug)]
pub struct RaftEnvelope {
    /// The message.
    pub msg: RaftMsg,
    /// Signed (adds [`SIGNATURE_BYTES`]).
    pub signed: bool,
}

impl Message for RaftEnvelope {
    fn size_bytes(&self) -> u64 {
        self.msg.base_bytes() + if self.signed { SIGNATURE_BYTES } else { 0 }
    }

    fn kind(&self) -> &'static str {
        match self.msg {
            RaftMsg::RequestVote { .. } => "request_vote",
            RaftMsg::Vote { .. } => "vote",
            RaftMsg::Append { .. } => "append",
            RaftMsg::AppendResp { .. } => "append_resp",
            RaftMsg::Heartbeat { .. } => "heartbeat",
            RaftMsg::HeartbeatResp { .. } => "heartbeat_resp",
            RaftMsg::Snapshot { .. } => "install_snapshot",
            RaftMsg::SnapshotResp { .. } => "snapshot_resp",
            RaftMsg::Forward { .. } => "forward",
        }
    }
}

/// Raft's timers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RaftTimer {
    /// Election deadline check (re-armed lazily to the current deadline).
    Election,
    /// Leader's heartbeat / retransmission tick, for the term it was armed in.
    Heartbeat(u64),
    /// Leader proposes a partial batch.
    Batch,
    /// Gateway flushes its forward buffer.
    Forward,
}

/// Timing of one shard, ns (scaled figures).
#[derive(Copy, Clone, Debug)]
struct Timing {
    election_min_ns: u64,
    election_max_ns: u64,
    heartbeat_ns: u64,
    retransmit_ns: u64,
    forward_ns: u64,
    batch_ns: u64,
}

/// The protocol factory.
pub struct Raft {
    params: RaftParams,
    block_max_tx: usize,
    block_max_bytes: u64,
    batch_timeout_ms: f64,
    timing: Vec<Timing>,
}

/// Per committee, the timeouts scaled by the committee's worst round trip between
/// two of its members' regions (`rtt / rtt_reference_ms`, at least 1).
fn committee_timing(
    p: &RaftParams,
    batch_timeout_ms: f64,
    topo: &Topology,
    committees: &[Vec<NodeId>],
) -> Vec<Timing> {
    committees
        .iter()
        .map(|committee| {
            // One representative node per region of the committee, then the worst pair.
            let mut reps: BTreeMap<u16, NodeId> = BTreeMap::new();
            for &node in committee {
                reps.entry(topo.node_region[node as usize]).or_insert(node);
            }
            let mut max_rtt_ns = 0u64;
            for &a in reps.values() {
                for &b in reps.values() {
                    max_rtt_ns = max_rtt_ns.max(topo.latency_ns(a, b) + topo.latency_ns(b, a));
                }
            }
            let rtt_ms = max_rtt_ns as f64 / NS_PER_MS as f64;
            let scale = if p.rtt_reference_ms > 0.0 {
                (rtt_ms / p.rtt_reference_ms).max(1.0)
            } else {
                1.0
            };
            Timing {
                election_min_ns: ms_to_ns(p.election_timeout_min_ms * scale),
                election_max_ns: ms_to_ns(p.election_timeout_max_ms * scale),
                heartbeat_ns: ms_to_ns(p.heartbeat_ms * scale).max(1),
                retransmit_ns: ms_to_ns(p.retransmit_ms * scale).max(1),
                forward_ns: ms_to_ns(p.forward_batch_ms),
                batch_ns: ms_to_ns(batch_timeout_ms),
            }
        })
        .collect()
}

fn ms_to_ns(ms: f64) -> u64 {
    (ms * NS_PER_MS as f64) as u64
}

impl Raft {
    /// The scaled timeouts of `shard`, ms: `(election min, election max, heartbeat, retransmit)`.
    pub fn timeouts_ms(&self, shard: u32) -> (f64, f64, f64, f64) {
        let t = self.timing[shard as usize];
        let ms = |ns: u64| ns as f64 / NS_PER_MS as f64;
        (
            ms(t.election_min_ns),
            ms(t.election_max_ns),
            ms(t.heartbeat_ns),
            ms(t.retransmit_ns),
        )
    }
}

impl Protocol for Raft {
    type Replica = RaftReplica;
    const NAME: &'static str = "raft";

    fn from_scenario(s: &Scenario) -> Result<Self, ScenarioError> {
        let bad = |path: &str, message: String| ScenarioError::InvalidValue {
            source_name: s.name.clone(),
            path: path.to_string(),
            message,
        };
        for (i, f) in s.faults.iter().enumerate() {
            if let crate::faults::FaultSpec::Byzantine { nodes, .. } = f {
                return Err(bad(
                    &format!("faults[{i}] (byzantine)"),
                    format!(
                        "raft tolerates crash faults only, not Byzantine nodes (nodes {nodes:?} are marked Byzantine); \
                         use consensus = \"pbft\" or \"hotstuff\" for Byzantine fault tolerance"
                    ),
                ));
            }
        }
        let p: RaftParams = s.protocol_params(Self::NAME)?;
        let pos = |x: f64| x.is_finite() && x > 0.0;
        if !pos(p.election_timeout_min_ms)
            || !p.election_timeout_max_ms.is_finite()
            || p.election_timeout_max_ms < p.election_timeout_min_ms
        {
            return Err(bad(
                "protocol.raft.election_timeout_min_ms",
                format!(
                    "need 0 < election_timeout_min_ms <= election_timeout_max_ms, got {} and {}",
                    p.election_timeout_min_ms, p.election_timeout_max_ms
                ),
            ));
        }
        if !pos(p.heartbeat_ms) || p.heartbeat_ms >= p.election_timeout_min_ms {
            return Err(bad(
                "protocol.raft.heartbeat_ms",
                format!(
                    "must be positive and below election_timeout_min_ms ({}), got {}",
                    p.election_timeout_min_ms, p.heartbeat_ms
                ),
            ));
        }
        if !pos(p.retransmit_ms) {
            return Err(bad(
                "protocol.raft.retransmit_ms",
                format!("must be positive, got {}", p.retransmit_ms),
            ));
        }
        if !(p.rtt_reference_ms.is_finite() && p.rtt_reference_ms >= 0.0) {
            return Err(bad(
                "protocol.raft.rtt_reference_ms",
                "must be finite and >= 0".into(),
            ));
        }
        if !(p.forward_batch_ms.is_finite() && p.forward_batch_ms >= 0.0) {
            return Err(bad(
                "protocol.raft.forward_batch_ms",
                "must be finite and >= 0".into(),
            ));
        }
        for (name, v) in [
            ("pipeline_window", u64::from(p.pipeline_window)),
            ("max_append_entries", u64::from(p.max_append_entries)),
            ("max_append_bytes", p.max_append_bytes),
            ("max_inflight_bytes", p.max_inflight_bytes),
            (
                "max_uncommitted_entries",
                u64::from(p.max_uncommitted_entries),
            ),
            ("max_pending_txs", u64::from(p.max_pending_txs)),
            ("log_retain_entries", u64::from(p.log_retain_entries)),
            ("snapshot_bytes", p.snapshot_bytes),
            ("snapshot_chunk_bytes", p.snapshot_chunk_bytes),
        ] {
            if v == 0 {
                return Err(bad(
                    &format!("protocol.raft.{name}"),
                    "must be at least 1".into(),
                ));
            }
        }
        // Until the simulator calls `prepare` with the run's real placement (node
        // regions by operating organisation, committees as assigned), estimate with
        // the placement the network config alone gives and sequential committees; the
        // fault suite's liveness bound uses this estimate.
        let topo = Topology::new(&s.network, s.total_nodes() as usize, &[])
            .map_err(|m| bad("network", m))?;
        let nps = s.nodes_per_shard;
        let committees: Vec<Vec<NodeId>> = (0..s.shards)
            .map(|shard| (shard * nps..(shard + 1) * nps).collect())
            .collect();
        let timing = committee_timing(&p, s.batch_timeout_ms, &topo, &committees);
        Ok(Raft {
            params: p,
            block_max_tx: s.block_max_tx as usize,
            block_max_bytes: s.block_max_bytes,
            batch_timeout_ms: s.batch_timeout_ms,
            timing,
        })
    }

    fn max_faulty(&self, _committee_size: usize) -> usize {
        // Crash faults only: no Byzantine node is tolerated.
        0
    }

    fn prepare(&mut self, topology: &Topology, committees: &[Vec<NodeId>]) {
        self.timing = committee_timing(&self.params, self.batch_timeout_ms, topology, committees);
    }

    fn replica(&self, shard: u32, me: NodeId, committee: &[NodeId]) -> RaftReplica {
        let n = committee.len();
        RaftReplica {
            me,
            peers: committee.iter().copied().filter(|&p| p != me).collect(),
            majority: n / 2 + 1,
            p: self.params.clone(),
            timing: self.timing[shard as usize],
            block_max_tx: self.block_max_tx,
            block_max_bytes: self.block_max_bytes,
            current_term: 0,
            voted_for: None,
            log: VecDeque::new(),
            snapshot_index: 0,
            snapshot_term: 0,
            snapshot_height: 0,
            snapshot_block: None,
            last_applied: 0,
            commit_index: 0,
            role: Role::Follower,
            leader_id: None,
            election_deadline_ns: 0,
            election_timeout_ns: 0,
            election_armed: false,
            votes: 0,
            voters: Vec::with_capacity(n),
            lead: Vec::new(),
            leader_since_ns: 0,
            queue: VecDeque::new(),
            queue_bytes: 0,
            known: FxHashSet::default(),
            batch_timer: None,
            batch_due: false,
            mine: BTreeMap::new(),
            fwd_buf: Vec::new(),
            fwd_timer: None,
            snap_recv: None,
            scratch_txs: Vec::new(),
            scratch_idx: Vec::with_capacity(n),
            cache: None,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Role {
    Follower,
    Candidate,
    Leader,
}

/// Leader's view of one follower.
#[derive(Clone, Debug)]
struct Progress {
    node: NodeId,
    next_index: u64,
    match_index: u64,
    /// Unacknowledged appends: `(last index carried, bytes)`, oldest first.
    inflight: VecDeque<(u64, u64)>,
    inflight_bytes: u64,
    /// Probe mode (after a rejection or a timeout): one append at a time until one succeeds.
    probing: bool,
    last_sent_ns: TimeNs,
    last_ack_ns: TimeNs,
    last_progress_ns: TimeNs,
    /// A snapshot being sent (chunk by chunk).
    snap: Option<SnapSend>,
    /// A snapshot chunk awaits its reply.
    snap_outstanding: bool,
}

/// Leader's state of a snapshot transfer to one follower.
#[derive(Copy, Clone, Debug)]
struct SnapSend {
    last_index: u64,
    last_term: u64,
    last_height: u64,
    last_block: Option<BlockRef>,
    offset: u64,
}

impl Progress {
    fn reset_inflight(&mut self) {
        self.inflight.clear();
        self.inflight_bytes = 0;
    }
}

/// One Raft node.
pub struct RaftReplica {
    me: NodeId,
    peers: Vec<NodeId>,
    majority: usize,
    p: RaftParams,
    timing: Timing,
    block_max_tx: usize,
    block_max_bytes: u64,
    // Persistent state.
    current_term: u64,
    voted_for: Option<NodeId>,
    log: VecDeque<Stored>,
    snapshot_index: u64,
    snapshot_term: u64,
    snapshot_height: u64,
    snapshot_block: Option<BlockRef>,
    last_applied: u64,
    // Volatile state.
    commit_index: u64,
    role: Role,
    leader_id: Option<NodeId>,
    election_deadline_ns: TimeNs,
    election_timeout_ns: u64,
    election_armed: bool,
    votes: usize,
    voters: Vec<NodeId>,
    lead: Vec<Progress>,
    leader_since_ns: TimeNs,
    queue: VecDeque<TxRef>,
    queue_bytes: u64,
    known: FxHashSet<u32>,
    batch_timer: Option<TimerId>,
    batch_due: bool,
    mine: BTreeMap<u32, TxRef>,
    fwd_buf: Vec<TxRef>,
    fwd_timer: Option<TimerId>,
    /// Snapshot being received: `(last index, next offset)`.
    snap_recv: Option<(u64, u64)>,
    scratch_txs: Vec<TxRef>,
    scratch_idx: Vec<u64>,
    /// Last entries batch built: `(first index, count, entries, size)`.
    cache: Option<(u64, usize, Arc<[Entry]>, u64)>,
}

type C<'a> = Ctx<'a, RaftEnvelope, RaftTimer>;

impl RaftReplica {
    /// Current term.
    pub fn current_term(&self) -> u64 {
        self.current_term
    }

    /// Whether this node believes it is the leader.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// Index of the last applied entry.
    pub fn last_applied(&self) -> u64 {
        self.last_applied
    }

    // ----- log helpers -----

    fn first_index(&self) -> u64 {
        self.snapshot_index + 1
    }

    fn last_index(&self) -> u64 {
        self.snapshot_index + self.log.len() as u64
    }

    fn last_term(&self) -> u64 {
        self.log.back().map_or(self.snapshot_term, |e| e.term)
    }

    fn last_height(&self) -> u64 {
        self.log.back().map_or(self.snapshot_height, |e| e.height)
    }

    fn stored(&self, idx: u64) -> Option<&Stored> {
        if idx <= self.snapshot_index {
            return None;
        }
        self.log.get((idx - self.first_index()) as usize)
    }

    /// Term of entry `idx` (0 for index 0; `None` if compacted away or beyond the log).
    fn term_at(&self, idx: u64) -> Option<u64> {
        if idx == self.snapshot_index {
            Some(self.snapshot_term)
        } else {
            self.stored(idx).map(|e| e.term)
        }
    }

    fn push_entry(&mut self, e: Entry) {
        let height = self.last_height() + u64::from(e.block.is_some());
        self.log.push_back(Stored {
            term: e.term,
            block: e.block,
            height,
        });
    }

    /// The last block at or before index `idx` (in the retained log or the snapshot).
    fn last_block_at(&self, idx: u64) -> Option<BlockRef> {
        if idx > self.snapshot_index {
            let end = ((idx - self.snapshot_index) as usize).min(self.log.len());
            if let Some(b) = self.log.range(..end).rev().find_map(|e| e.block) {
                return Some(b);
            }
        }
        self.snapshot_block
    }

    fn last_block(&self) -> Option<BlockRef> {
        self.log
            .iter()
            .rev()
            .find_map(|e| e.block)
            .or(self.snapshot_block)
    }

    // ----- costs and sending -----

    fn env(&self, msg: RaftMsg) -> RaftEnvelope {
        RaftEnvelope {
            msg,
            signed: self.p.require_signatures,
        }
    }

    fn charge_auth_send(&self, ctx: &mut C<'_>, bytes: u64) {
        ctx.charge_hash(bytes);
        if self.p.require_signatures {
            ctx.charge_sign();
        } else {
            ctx.charge_ns(self.p.mac_ns);
        }
    }

    fn charge_auth_recv(&self, ctx: &mut C<'_>, bytes: u64) {
        ctx.charge_hash(bytes);
        if self.p.require_signatures {
            ctx.charge_verify(1);
        } else {
            ctx.charge_ns(self.p.mac_ns);
        }
    }

    fn send(&self, ctx: &mut C<'_>, to: NodeId, msg: RaftMsg) {
        let e = self.env(msg);
        self.charge_auth_send(ctx, e.size_bytes());
        ctx.send(to, e);
    }

    fn persist(&self, ctx: &mut C<'_>) {
        ctx.charge_ns(self.p.persist_ns);
    }

    // ----- timers -----

    fn draw_timeout(&self, ctx: &mut C<'_>) -> u64 {
        ctx.rng()
            .range_inclusive(self.timing.election_min_ns, self.timing.election_max_ns)
    }

    /// Restart the election countdown from now (lazily: the armed timer re-arms itself).
    fn reset_election(&mut self, ctx: &mut C<'_>) {
        self.election_deadline_ns = ctx.now() + self.election_timeout_ns;
        self.arm_election(ctx);
    }

    fn arm_election(&mut self, ctx: &mut C<'_>) {
        if !self.election_armed {
            self.election_armed = true;
            let after = self.election_deadline_ns.saturating_sub(ctx.now()).max(1);
            ctx.set_timer(after, RaftTimer::Election);
        }
    }

    // ----- role changes -----

    fn become_follower(&mut self, ctx: &mut C<'_>, term: u64) {
        if term > self.current_term {
            self.current_term = term;
            self.voted_for = None;
            self.persist(ctx);
        }
        if self.role == Role::Leader {
            self.drop_leader_state(ctx);
        }
        self.role = Role::Follower;
        self.votes = 0;
        if self.election_timeout_ns == 0 {
            self.election_timeout_ns = self.draw_timeout(ctx);
        }
        self.reset_election(ctx);
    }

    fn drop_leader_state(&mut self, ctx: &mut C<'_>) {
        self.lead.clear();
        self.queue.clear();
        self.queue_bytes = 0;
        self.known.clear();
        self.batch_due = false;
        self.cache = None;
        if let Some(t) = self.batch_timer.take() {
            ctx.cancel_timer(t);
        }
    }

    fn start_election(&mut self, ctx: &mut C<'_>) {
        self.current_term += 1;
        self.voted_for = Some(self.me);
        self.persist(ctx);
        self.role = Role::Candidate;
        self.leader_id = None;
        self.votes = 1;
        self.voters.clear();
        self.voters.push(self.me);
        self.election_timeout_ns = self.draw_timeout(ctx);
        self.reset_election(ctx);
        if self.votes >= self.majority {
            self.become_leader(ctx);
            return;
        }
        let msg = RaftMsg::RequestVote {
            term: self.current_term,
            last_log_index: self.last_index(),
            last_log_term: self.last_term(),
        };
        for i in 0..self.peers.len() {
            let to = self.peers[i];
            self.send(ctx, to, msg.clone());
        }
    }

    fn become_leader(&mut self, ctx: &mut C<'_>) {
        self.role = Role::Leader;
        self.leader_id = Some(self.me);
        self.leader_since_ns = ctx.now();
        ctx.view_change();
        let now = ctx.now();
        let next = self.last_index() + 1;
        self.lead = self
            .peers
            .iter()
            .map(|&node| Progress {
                node,
                next_index: next,
                match_index: 0,
                inflight: VecDeque::new(),
                inflight_bytes: 0,
                probing: false,
                last_sent_ns: 0,
                last_ack_ns: now,
                last_progress_ns: now,
                snap: None,
                snap_outstanding: false,
            })
            .collect();
        // Dedupe set: everything in the retained log.
        self.known.clear();
        for i in 0..self.log.len() {
            if let Some(b) = self.log[i].block {
                for tx in ctx.block_txs(b) {
                    self.known.insert(tx.id);
                }
            }
        }
        // The no-op of the new term (lets earlier entries commit, Figure 8).
        self.push_entry(Entry {
            term: self.current_term,
            block: None,
        });
        self.persist(ctx);
        // Own pending client transactions go to the proposal queue.
        let mine: Vec<TxRef> = self.mine.values().copied().collect();
        self.fwd_buf.clear();
        for tx in mine {
            self.enqueue(ctx, tx);
        }
        let term = self.current_term;
        ctx.set_timer(self.timing.heartbeat_ns, RaftTimer::Heartbeat(term));
        for f in 0..self.lead.len() {
            self.replicate(ctx, f);
        }
        self.advance_commit(ctx);
    }

    // ----- leader: proposals -----

    fn enqueue(&mut self, ctx: &mut C<'_>, tx: TxRef) {
        if self.known.contains(&tx.id) || self.queue.len() >= self.p.max_pending_txs as usize {
            return;
        }
        self.known.insert(tx.id);
        self.queue.push_back(tx);
        self.queue_bytes += u64::from(tx.size_bytes);
        if self.queue.len() >= self.block_max_tx || self.queue_bytes >= self.block_max_bytes {
            self.propose_ready(ctx);
        } else if self.batch_timer.is_none() && !self.batch_due {
            self.batch_timer = Some(ctx.set_timer(self.timing.batch_ns, RaftTimer::Batch));
        }
    }

    fn can_propose(&self) -> bool {
        self.last_index() - self.commit_index < u64::from(self.p.max_uncommitted_entries)
    }

    /// Propose full blocks while possible, then a partial one if its batch timer expired.
    fn propose_ready(&mut self, ctx: &mut C<'_>) {
        while self.role == Role::Leader && self.can_propose() {
            let full =
                self.queue.len() >= self.block_max_tx || self.queue_bytes >= self.block_max_bytes;
            if !(full || (self.batch_due && !self.queue.is_empty())) {
                break;
            }
            self.propose_one(ctx);
        }
        if self.role == Role::Leader
            && !self.queue.is_empty()
            && self.batch_timer.is_none()
            && !self.batch_due
        {
            self.batch_timer = Some(ctx.set_timer(self.timing.batch_ns, RaftTimer::Batch));
        }
    }

    fn propose_one(&mut self, ctx: &mut C<'_>) {
        if let Some(t) = self.batch_timer.take() {
            ctx.cancel_timer(t);
        }
        self.batch_due = false;
        self.scratch_txs.clear();
        let mut bytes = 0u64;
        while let Some(&tx) = self.queue.front() {
            let sz = u64::from(tx.size_bytes);
            if self.scratch_txs.len() >= self.block_max_tx
                || (!self.scratch_txs.is_empty() && bytes + sz > self.block_max_bytes)
            {
                break;
            }
            self.queue.pop_front();
            bytes += sz;
            self.scratch_txs.push(tx);
        }
        self.queue_bytes -= bytes;
        if self.scratch_txs.is_empty() {
            return;
        }
        let parent = self.last_block();
        let block = ctx.make_block(&self.scratch_txs, parent);
        ctx.charge_hash(ctx.block_size_bytes(block));
        self.push_entry(Entry {
            term: self.current_term,
            block: Some(block),
        });
        self.persist(ctx);
        for f in 0..self.lead.len() {
            self.replicate(ctx, f);
        }
        self.advance_commit(ctx);
    }

    // ----- leader: replication -----

    /// Send appends to follower `f` while its pipeline has room and it lacks entries.
    fn replicate(&mut self, ctx: &mut C<'_>, f: usize) {
        loop {
            let pr = &self.lead[f];
            let full = if pr.probing {
                !pr.inflight.is_empty()
            } else {
                pr.inflight.len() >= self.p.pipeline_window as usize
                    || pr.inflight_bytes >= self.p.max_inflight_bytes
            };
            if pr.snap.is_some() {
                if !pr.snap_outstanding {
                    self.send_snapshot_chunk(ctx, f);
                }
                return;
            }
            if full || pr.next_index > self.last_index() {
                return;
            }
            self.send_append(ctx, f);
        }
    }

    fn send_append(&mut self, ctx: &mut C<'_>, f: usize) {
        let next = self.lead[f].next_index;
        let to = self.lead[f].node;
        let now = ctx.now();
        if next <= self.snapshot_index {
            // The follower needs compacted entries: send a snapshot of the state
            // machine at the last applied entry instead.
            let li = self.last_applied;
            let (last_term, last_height, last_block) = match self.stored(li) {
                Some(e) => (e.term, e.height, self.last_block_at(li)),
                None => (
                    self.snapshot_term,
                    self.snapshot_height,
                    self.snapshot_block,
                ),
            };
            self.lead[f].snap = Some(SnapSend {
                last_index: li.max(self.snapshot_index),
                last_term,
                last_height,
                last_block,
                offset: 0,
            });
            self.lead[f].reset_inflight();
            self.send_snapshot_chunk(ctx, f);
            return;
        }
        let (entries, size) = self.entries_from(ctx, next);
        let count = entries.len() as u64;
        let prev_index = next - 1;
        let prev_term = match self.term_at(prev_index) {
            Some(t) => t,
            None => {
                panic!("leader lacks the term of index {prev_index} although it is not compacted")
            }
        };
        let msg = RaftMsg::Append {
            term: self.current_term,
            prev_index,
            prev_term,
            leader_commit: self.commit_index,
            entries,
            size_bytes: APPEND_HEADER_BYTES + size,
        };
        self.send(ctx, to, msg);
        let pr = &mut self.lead[f];
        pr.next_index = next + count;
        if pr.inflight.is_empty() {
            pr.last_progress_ns = now;
        }
        pr.inflight.push_back((next + count - 1, size));
        pr.inflight_bytes += size;
        pr.last_sent_ns = now;
    }

    fn send_snapshot_chunk(&mut self, ctx: &mut C<'_>, f: usize) {
        let Some(sn) = self.lead[f].snap else {
            return;
        };
        let total = self.p.snapshot_bytes;
        let chunk = self
            .p
            .snapshot_chunk_bytes
            .min(total.saturating_sub(sn.offset));
        let msg = RaftMsg::Snapshot {
            term: self.current_term,
            last_index: sn.last_index,
            last_term: sn.last_term,
            last_height: sn.last_height,
            last_block: sn.last_block,
            offset: sn.offset,
            total_bytes: total,
            size_bytes: SNAPSHOT_HEADER_BYTES + chunk,
        };
        let to = self.lead[f].node;
        self.send(ctx, to, msg);
        let now = ctx.now();
        let pr = &mut self.lead[f];
        pr.snap_outstanding = true;
        pr.last_sent_ns = now;
        pr.last_progress_ns = now;
    }

    /// Entries from `first` (bounded by count and bytes) and their bytes; reuses the
    /// last batch built when it is the same range (the common broadcast case).
    fn entries_from(&mut self, ctx: &C<'_>, first: u64) -> (Arc<[Entry]>, u64) {
        let last = self.last_index();
        let mut count = 0usize;
        let mut bytes = 0u64;
        let mut idx = first;
        while idx <= last && count < self.p.max_append_entries as usize {
            let e = self.stored(idx).copied();
            let Some(e) = e else { break };
            let sz = ENTRY_HEADER_BYTES + e.block.map_or(0, |b| ctx.block_size_bytes(b));
            if count > 0 && bytes + sz > self.p.max_append_bytes {
                break;
            }
            bytes += sz;
            count += 1;
            idx += 1;
        }
        if let Some((f0, c0, arc, b0)) = &self.cache {
            if *f0 == first && *c0 == count {
                return (arc.clone(), *b0);
            }
        }
        let off = (first - self.first_index()) as usize;
        let arc: Arc<[Entry]> = self
            .log
            .range(off..off + count)
            .map(|s| Entry {
                term: s.term,
                block: s.block,
            })
            .collect();
        self.cache = Some((first, count, arc.clone(), bytes));
        (arc, bytes)
    }

    fn advance_commit(&mut self, ctx: &mut C<'_>) {
        if self.role != Role::Leader {
            return;
        }
        self.scratch_idx.clear();
        self.scratch_idx.push(self.last_index());
        for pr in &self.lead {
            self.scratch_idx.push(pr.match_index);
        }
        self.scratch_idx.sort_unstable_by(|a, b| b.cmp(a));
        let n = self.scratch_idx[self.majority - 1];
        if n > self.commit_index && self.term_at(n) == Some(self.current_term) {
            self.commit_index = n;
            self.apply(ctx);
            self.propose_ready(ctx);
        }
    }

    fn last_index_of_term(&self, term: u64) -> Option<u64> {
        for (i, e) in self.log.iter().enumerate().rev() {
            if e.term == term {
                return Some(self.first_index() + i as u64);
            }
            if e.term < term {
                return None;
            }
        }
        None
    }

    // ----- applying -----

    fn apply(&mut self, ctx: &mut C<'_>) {
        while self.last_applied < self.commit_index {
            let idx = self.last_applied + 1;
            let e = match self.stored(idx) {
                Some(e) => *e,
                None => panic!(
                    "entry {idx} to apply is missing (snapshot {})",
                    self.snapshot_index
                ),
            };
            if let Some(b) = e.block {
                let n = ctx.block_txs(b).len() as u64;
                ctx.charge_execute(n);
                ctx.commit(e.height, b);
                if !self.mine.is_empty() {
                    for tx in ctx.block_txs(b) {
                        self.mine.remove(&tx.id);
                    }
                }
            }
            self.last_applied = idx;
        }
        self.compact(ctx);
    }

    /// Drop applied entries beyond `log_retain_entries` from memory (they are
    /// covered by the snapshot); the leader forgets their transactions in its
    /// dedupe set.
    fn compact(&mut self, ctx: &C<'_>) {
        let retain = u64::from(self.p.log_retain_entries);
        // A leader keeps the entries after a snapshot it is sending, so the follower
        // can continue by appends, up to a hard bound of LOG_HARD_LIMIT_FACTOR x retain.
        let floor = self
            .lead
            .iter()
            .filter_map(|p| p.snap.map(|s| s.last_index))
            .min();
        while self.last_applied - self.snapshot_index > retain {
            if let Some(fl) = floor {
                if self.snapshot_index >= fl
                    && self.last_applied - self.snapshot_index <= retain * LOG_HARD_LIMIT_FACTOR
                {
                    break;
                }
            }
            let Some(e) = self.log.pop_front() else { break };
            self.snapshot_index += 1;
            self.snapshot_term = e.term;
            self.snapshot_height = e.height;
            if let Some(b) = e.block {
                self.snapshot_block = Some(b);
                if self.role == Role::Leader {
                    for tx in ctx.block_txs(b) {
                        self.known.remove(&tx.id);
                    }
                }
            }
            self.cache = None;
        }
    }

    // ----- gateway -----

    fn forward_pending(&mut self, ctx: &mut C<'_>, leader: NodeId) {
        // Re-forward everything still pending to a newly learned leader.
        self.fwd_buf.clear();
        let mut batch: Vec<TxRef> = Vec::new();
        let all: Vec<TxRef> = self.mine.values().copied().collect();
        for tx in all {
            batch.push(tx);
            if batch.len() >= self.block_max_tx {
                self.send_forward(ctx, leader, &batch);
                batch.clear();
            }
        }
        if !batch.is_empty() {
            self.send_forward(ctx, leader, &batch);
        }
    }

    fn send_forward(&self, ctx: &mut C<'_>, leader: NodeId, txs: &[TxRef]) {
        let bytes: u64 = txs.iter().map(|t| u64::from(t.size_bytes)).sum();
        let msg = RaftMsg::Forward {
            txs: Arc::from(txs),
            size_bytes: FORWARD_HEADER_BYTES + bytes,
        };
        self.send(ctx, leader, msg);
    }

    fn flush_forward(&mut self, ctx: &mut C<'_>) {
        if let Some(t) = self.fwd_timer.take() {
            ctx.cancel_timer(t);
        }
        if self.fwd_buf.is_empty() {
            return;
        }
        match self.leader_id {
            Some(l) if l != self.me => {
                let buf = std::mem::take(&mut self.fwd_buf);
                self.send_forward(ctx, l, &buf);
                self.fwd_buf = buf;
                self.fwd_buf.clear();
            }
            // No leader known: the transactions stay in `mine` and are forwarded
            // when a leader is learned.
            _ => self.fwd_buf.clear(),
        }
    }

    /// Note the leader of the current term; a change re-forwards pending transactions.
    fn learn_leader(&mut self, ctx: &mut C<'_>, leader: NodeId) {
        if self.leader_id != Some(leader) {
            self.leader_id = Some(leader);
            if !self.mine.is_empty() {
                self.forward_pending(ctx, leader);
            }
        }
    }

    // ----- message handlers -----

    fn on_request_vote(&mut self, ctx: &mut C<'_>, from: NodeId, term: u64, lli: u64, llt: u64) {
        if term > self.current_term {
            // Adopt the term but keep the election countdown running: only a
            // granted vote restarts it (below; Raft section 5.2). Restarting it on
            // every higher-term request let a candidate with a stale log, which
            // can never win, hold every up-to-date replica back from campaigning
            // for ever (found by the swarm test after a healed partition).
            let deadline = self.election_deadline_ns;
            let was_leader = self.role == Role::Leader;
            self.become_follower(ctx, term);
            if !was_leader {
                self.election_deadline_ns = deadline;
            }
            self.leader_id = None;
        }
        let up_to_date =
            llt > self.last_term() || (llt == self.last_term() && lli >= self.last_index());
        let granted = term == self.current_term
            && self.voted_for.is_none_or(|v| v == from)
            && up_to_date
            && self.role == Role::Follower;
        if granted {
            if self.voted_for != Some(from) {
                self.voted_for = Some(from);
                self.persist(ctx);
            }
            self.reset_election(ctx);
        }
        let msg = RaftMsg::Vote {
            term: self.current_term,
            granted,
        };
        self.send(ctx, from, msg);
    }

    fn on_vote(&mut self, ctx: &mut C<'_>, from: NodeId, term: u64, granted: bool) {
        if term > self.current_term {
            self.become_follower(ctx, term);
            self.leader_id = None;
            return;
        }
        if self.role != Role::Candidate
            || term != self.current_term
            || !granted
            || self.voters.contains(&from)
        {
            return;
        }
        self.voters.push(from);
        self.votes += 1;
        if self.votes >= self.majority {
            self.become_leader(ctx);
        }
    }

    /// Common checks of a message from a leader of `term`: returns false if stale.
    fn accept_leader(&mut self, ctx: &mut C<'_>, from: NodeId, term: u64) -> bool {
        if term < self.current_term {
            return false;
        }
        if term > self.current_term || self.role != Role::Follower {
            assert!(
                !(term == self.current_term && self.role == Role::Leader),
                "two leaders in term {term}: node {} and node {from}",
                self.me
            );
            self.become_follower(ctx, term);
        } else {
            self.reset_election(ctx);
        }
        self.learn_leader(ctx, from);
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        ctx: &mut C<'_>,
        from: NodeId,
        term: u64,
        prev_index: u64,
        prev_term: u64,
        leader_commit: u64,
        entries: &[Entry],
    ) {
        if !self.accept_leader(ctx, from, term) {
            let msg = RaftMsg::AppendResp {
                term: self.current_term,
                success: false,
                index: 0,
                conflict_term: 0,
            };
            self.send(ctx, from, msg);
            return;
        }
        // Consistency check on prevLogIndex / prevLogTerm.
        if prev_index > self.last_index() {
            let msg = RaftMsg::AppendResp {
                term: self.current_term,
                success: false,
                index: self.last_index() + 1,
                conflict_term: 0,
            };
            self.send(ctx, from, msg);
            return;
        }
        if prev_index >= self.snapshot_index {
            let mine = self.term_at(prev_index).unwrap_or(0);
            if mine != prev_term {
                // First index of the conflicting term (fast backtracking hint).
                let mut first = prev_index;
                while first > self.first_index() && self.term_at(first - 1) == Some(mine) {
                    first -= 1;
                }
                let msg = RaftMsg::AppendResp {
                    term: self.current_term,
                    success: false,
                    index: first.max(self.commit_index + 1),
                    conflict_term: mine,
                };
                self.send(ctx, from, msg);
                return;
            }
        }
        // Append, truncating a conflicting suffix.
        let mut wrote = false;
        for (k, e) in entries.iter().enumerate() {
            let idx = prev_index + 1 + k as u64;
            if idx <= self.snapshot_index {
                continue;
            }
            if idx <= self.last_index() {
                if self.term_at(idx) == Some(e.term) {
                    continue;
                }
                assert!(
                    idx > self.commit_index,
                    "node {} would truncate committed entry {idx} (commit index {})",
                    self.me,
                    self.commit_index
                );
                self.log.truncate((idx - self.first_index()) as usize);
            }
            self.push_entry(*e);
            wrote = true;
        }
        if wrote {
            self.persist(ctx);
        }
        let last_new = prev_index + entries.len() as u64;
        if leader_commit > self.commit_index {
            self.commit_index = leader_commit.min(last_new).max(self.commit_index);
            self.apply(ctx);
        }
        let msg = RaftMsg::AppendResp {
            term: self.current_term,
            success: true,
            index: last_new,
            conflict_term: 0,
        };
        self.send(ctx, from, msg);
    }

    fn on_append_resp(
        &mut self,
        ctx: &mut C<'_>,
        from: NodeId,
        term: u64,
        success: bool,
        index: u64,
        ct: u64,
    ) {
        if term > self.current_term {
            self.become_follower(ctx, term);
            self.leader_id = None;
            return;
        }
        if self.role != Role::Leader || term != self.current_term {
            return;
        }
        let Some(f) = self.lead.iter().position(|p| p.node == from) else {
            return;
        };
        let now = ctx.now();
        {
            let pr = &mut self.lead[f];
            pr.last_ack_ns = now;
            pr.last_progress_ns = now;
        }
        if success {
            let pr = &mut self.lead[f];
            if index > pr.match_index {
                pr.match_index = index;
            }
            if pr.next_index <= index {
                pr.next_index = index + 1;
            }
            while let Some(&(last, bytes)) = pr.inflight.front() {
                if last > index {
                    break;
                }
                pr.inflight.pop_front();
                pr.inflight_bytes -= bytes;
            }
            pr.probing = false;
            self.advance_commit(ctx);
        } else {
            let hint = if ct != 0 {
                match self.last_index_of_term(ct) {
                    Some(i) => i + 1,
                    None => index,
                }
            } else {
                index
            };
            let pr = &mut self.lead[f];
            let next = hint.max(pr.match_index + 1).max(1);
            if next < pr.next_index {
                pr.next_index = next;
                pr.reset_inflight();
                pr.probing = true;
            }
        }
        self.replicate(ctx, f);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_snapshot(
        &mut self,
        ctx: &mut C<'_>,
        from: NodeId,
        term: u64,
        last_index: u64,
        last_term: u64,
        last_height: u64,
        last_block: Option<BlockRef>,
        offset: u64,
        chunk_bytes: u64,
        total_bytes: u64,
    ) {
        let reply = |me: &Self, ctx: &mut C<'_>, installed: bool, next_offset: u64| {
            let msg = RaftMsg::SnapshotResp {
                term: me.current_term,
                last_index,
                installed,
                next_offset,
            };
            me.send(ctx, from, msg);
        };
        if !self.accept_leader(ctx, from, term) {
            reply(self, ctx, false, 0);
            return;
        }
        if last_index <= self.last_applied {
            // Already hold all of it.
            self.snap_recv = None;
            reply(self, ctx, true, 0);
            return;
        }
        let expected = match self.snap_recv {
            Some((li, off)) if li == last_index => off,
            _ => 0,
        };
        if offset != expected {
            reply(self, ctx, false, expected);
            return;
        }
        let next = offset + chunk_bytes;
        self.persist(ctx);
        if next < total_bytes {
            self.snap_recv = Some((last_index, next));
            reply(self, ctx, false, next);
            return;
        }
        // Last chunk: install.
        self.snap_recv = None;
        if self.term_at(last_index) == Some(last_term) && last_index > self.snapshot_index {
            // Keep the suffix after the snapshot.
            let drop = (last_index - self.snapshot_index) as usize;
            self.log.drain(..drop);
        } else {
            self.log.clear();
        }
        self.snapshot_index = last_index;
        self.snapshot_term = last_term;
        self.snapshot_height = last_height;
        self.snapshot_block = last_block;
        self.last_applied = last_index;
        self.commit_index = self.commit_index.max(last_index);
        self.apply(ctx);
        reply(self, ctx, true, 0);
    }

    fn on_snapshot_resp(
        &mut self,
        ctx: &mut C<'_>,
        from: NodeId,
        term: u64,
        last_index: u64,
        installed: bool,
        next_offset: u64,
    ) {
        if term > self.current_term {
            self.become_follower(ctx, term);
            self.leader_id = None;
            return;
        }
        if self.role != Role::Leader || term != self.current_term {
            return;
        }
        let Some(f) = self.lead.iter().position(|p| p.node == from) else {
            return;
        };
        let now = ctx.now();
        let pr = &mut self.lead[f];
        pr.last_ack_ns = now;
        pr.last_progress_ns = now;
        if installed {
            pr.snap = None;
            pr.snap_outstanding = false;
            pr.reset_inflight();
            pr.probing = false;
            pr.match_index = pr.match_index.max(last_index);
            pr.next_index = pr.match_index + 1;
            self.advance_commit(ctx);
        } else {
            match &mut pr.snap {
                Some(sn) if sn.last_index == last_index => {
                    sn.offset = next_offset;
                    pr.snap_outstanding = false;
                }
                _ => return,
            }
        }
        self.replicate(ctx, f);
    }

    fn on_heartbeat_tick(&mut self, ctx: &mut C<'_>, term: u64) {
        if self.role != Role::Leader || term != self.current_term {
            return;
        }
        let now = ctx.now();
        // Check quorum: step down if a majority has been silent for an election timeout.
        let window = self.timing.election_max_ns;
        if now >= self.leader_since_ns + window {
            let live = 1 + self
                .lead
                .iter()
                .filter(|p| now.saturating_sub(p.last_ack_ns) < window)
                .count();
            if live < self.majority {
                self.drop_leader_state(ctx);
                self.role = Role::Follower;
                self.leader_id = None;
                self.reset_election(ctx);
                return;
            }
        }
        for f in 0..self.lead.len() {
            let pr = &self.lead[f];
            if (!pr.inflight.is_empty() || pr.snap_outstanding)
                && now.saturating_sub(pr.last_progress_ns) >= self.timing.retransmit_ns
            {
                // Lost appends (or a lost snapshot): probe from the last known match.
                let pr = &mut self.lead[f];
                pr.next_index = pr.match_index + 1;
                pr.reset_inflight();
                pr.probing = true;
                // A lost snapshot chunk is re-sent from the last acknowledged offset;
                // a transfer that never started takes the newest snapshot.
                pr.snap_outstanding = false;
                if let Some(sn) = &mut pr.snap {
                    if sn.offset == 0 {
                        pr.snap = None;
                    }
                }
                self.replicate(ctx, f);
            }
            let pr = &self.lead[f];
            if now.saturating_sub(pr.last_sent_ns) >= self.timing.heartbeat_ns {
                let to = pr.node;
                let commit = self.commit_index.min(pr.match_index);
                self.send(ctx, to, RaftMsg::Heartbeat { term, commit });
                self.lead[f].last_sent_ns = now;
            }
        }
        ctx.set_timer(self.timing.heartbeat_ns, RaftTimer::Heartbeat(term));
    }
}

impl Replica for RaftReplica {
    type Msg = RaftEnvelope;
    type Timer = RaftTimer;

    fn on_start(&mut self, ctx: &mut C<'_>) {
        self.election_timeout_ns = self.draw_timeout(ctx);
        self.reset_election(ctx);
    }

    fn on_client_tx(&mut self, ctx: &mut C<'_>, tx: TxRef) {
        // The client's signature on its transaction.
        ctx.charge_verify(1);
        if self.mine.len() >= self.p.max_pending_txs as usize {
            return;
        }
        self.mine.insert(tx.id, tx);
        match (self.role, self.leader_id) {
            (Role::Leader, _) => self.enqueue(ctx, tx),
            (_, Some(l)) if l != self.me => {
                self.fwd_buf.push(tx);
                if self.fwd_buf.len() >= self.block_max_tx {
                    self.flush_forward(ctx);
                } else if self.fwd_timer.is_none() {
                    self.fwd_timer =
                        Some(ctx.set_timer(self.timing.forward_ns, RaftTimer::Forward));
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut C<'_>, from: NodeId, env: RaftEnvelope) {
        self.charge_auth_recv(ctx, env.size_bytes());
        match env.msg {
            RaftMsg::RequestVote {
                term,
                last_log_index,
                last_log_term,
            } => self.on_request_vote(ctx, from, term, last_log_index, last_log_term),
            RaftMsg::Vote { term, granted } => self.on_vote(ctx, from, term, granted),
            RaftMsg::Append {
                term,
                prev_index,
                prev_term,
                leader_commit,
                entries,
                ..
            } => self.on_append(
                ctx,
                from,
                term,
                prev_index,
                prev_term,
                leader_commit,
                &entries,
            ),
            RaftMsg::AppendResp {
                term,
                success,
                index,
                conflict_term,
            } => self.on_append_resp(ctx, from, term, success, index, conflict_term),
            RaftMsg::Heartbeat { term, commit } => {
                if self.accept_leader(ctx, from, term) {
                    let c = commit.min(self.last_index());
                    if c > self.commit_index {
                        self.commit_index = c;
                        self.apply(ctx);
                    }
                }
                let msg = RaftMsg::HeartbeatResp {
                    term: self.current_term,
                };
                self.send(ctx, from, msg);
            }
            RaftMsg::HeartbeatResp { term } => {
                if term > self.current_term {
                    self.become_follower(ctx, term);
                    self.leader_id = None;
                } else if self.role == Role::Leader && term == self.current_term {
                    let now = ctx.now();
                    if let Some(pr) = self.lead.iter_mut().find(|p| p.node == from) {
                        pr.last_ack_ns = now;
                    }
                }
            }
            RaftMsg::Snapshot {
                term,
                last_index,
                last_term,
                last_height,
                last_block,
                offset,
                total_bytes,
                size_bytes,
            } => {
                let chunk = size_bytes - SNAPSHOT_HEADER_BYTES;
                self.on_snapshot(
                    ctx,
                    from,
                    term,
                    last_index,
                    last_term,
                    last_height,
                    last_block,
                    offset,
                    chunk,
                    total_bytes,
                )
            }
            RaftMsg::SnapshotResp {
                term,
                last_index,
                installed,
                next_offset,
            } => self.on_snapshot_resp(ctx, from, term, last_index, installed, next_offset),
            RaftMsg::Forward { txs, .. } => {
                if self.role == Role::Leader {
                    for &tx in txs.iter() {
                        self.enqueue(ctx, tx);
                    }
                }
                // Not the leader (any more): drop; the gateway re-forwards when it
                // learns the new leader.
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut C<'_>, timer: RaftTimer) {
        match timer {
            RaftTimer::Election => {
                self.election_armed = false;
                if self.role == Role::Leader {
                    return;
                }
                if ctx.now() < self.election_deadline_ns {
                    self.arm_election(ctx);
                } else {
                    self.start_election(ctx);
                }
            }
            RaftTimer::Heartbeat(term) => self.on_heartbeat_tick(ctx, term),
            RaftTimer::Batch => {
                self.batch_timer = None;
                if self.role == Role::Leader && !self.queue.is_empty() {
                    self.batch_due = true;
                    self.propose_ready(ctx);
                }
            }
            RaftTimer::Forward => {
                self.fwd_timer = None;
                self.flush_forward(ctx);
            }
        }
    }

    fn on_recover(&mut self, ctx: &mut C<'_>) {
        // Persistent: current_term, voted_for, the log (and its snapshot), the applied
        // ledger. Everything else is volatile.
        self.role = Role::Follower;
        self.leader_id = None;
        self.commit_index = self.last_applied;
        self.votes = 0;
        self.voters.clear();
        self.lead.clear();
        self.queue.clear();
        self.queue_bytes = 0;
        self.known.clear();
        self.batch_timer = None;
        self.batch_due = false;
        self.mine.clear();
        self.fwd_buf.clear();
        self.fwd_timer = None;
        self.snap_recv = None;
        self.cache = None;
        self.election_armed = false;
        self.election_timeout_ns = self.draw_timeout(ctx);
        self.reset_election(ctx);
    }
}
