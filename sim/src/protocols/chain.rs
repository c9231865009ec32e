//! Shared machinery of the longest-chain protocols (proof-of-work in
//! [`super::pow`], proof-of-stake in [`super::pos`]): the block tree, the peer
//! graph, the per-node block status table, the transaction pool and the
//! propagation/fork statistics.
//!
//! # What is shared between replicas, and why
//! Each replica keeps its own view (its tip, its orphans, what it committed), but
//! the *facts* about blocks — parent, height, cumulative work, who mined it, when —
//! live once in a [`BlockTree`] arena, exactly like the simulator's immutable
//! block store. Three further shared structures keep large networks cheap without
//! changing what the protocol does:
//! - **Block status** (unknown / requested / have / valid) of every node for every
//!   block, one byte per (block, node). A node announcing a block skips peers that
//!   already have it or already requested it: that announcement would be ignored on
//!   arrival, so skipping it changes no decision (it only saves an event). The
//!   skipped announcements are counted (`announcements_suppressed`). The one case
//!   where it would matter — a request that never completes because its provider
//!   crashed — is covered by the request timeout, which resets the status.
//! - **Transaction pool**: client transactions enter one network-wide pool when
//!   they reach their gateway (transaction gossip is not simulated; in Bitcoin it
//!   reaches most nodes within seconds, small against block intervals). A
//!   transaction leaves the pool when a block holding it joins the best published
//!   chain, and returns to it when that block is orphaned by a reorganisation.
//! - **Statistics**: per-block propagation (time to reach 50 %, 90 % and all nodes),
//!   per-receipt delays, reorganisations and stale blocks.

use crate::protocol::{BlockRef, NodeId, TxRef};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use simrand::Stream;
use std::collections::BTreeMap;

/// Most `(block, node)` status entries one run may hold (a named limit on growth:
/// one byte each).
pub const MAX_STATUS_ENTRIES: u64 = 400_000_000;

/// Index of a block in the [`BlockTree`] (0 is genesis).
pub type BlockIdx = u32;

/// Genesis.
pub const GENESIS: BlockIdx = 0;

/// A node's knowledge of a block.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    /// Never heard of it.
    Unknown = 0,
    /// Requested from a peer (or a compact block is being completed).
    Requested = 1,
    /// Received but not yet connected (its parent is missing).
    Have = 2,
    /// Validated and connected to the node's tree.
    Valid = 3,
}

impl Status {
    fn from_u8(x: u8) -> Status {
        match x {
            0 => Status::Unknown,
            1 => Status::Requested,
            2 => Status::Have,
            _ => Status::Valid,
        }
    }
}

/// One block of the tree.
#[derive(Clone, Debug)]
pub struct ChainBlock {
    /// Parent index (genesis points to itself).
    pub parent: BlockIdx,
    /// Height (genesis 0).
    pub height: u32,
    /// Cumulative work from genesis (expected hashes for PoW, block count for PoS).
    pub work: u128,
    /// Work of this block alone (its difficulty).
    pub difficulty: u128,
    /// Creator.
    pub miner: NodeId,
    /// Creation time, ns.
    pub created_ns: u64,
    /// Slot (proof-of-stake) or 0.
    pub slot: u64,
    /// Handle in the simulator's block store (genesis: none).
    pub store: Option<BlockRef>,
    /// Size on the wire, bytes.
    pub size_bytes: u64,
    /// Transactions carried.
    pub n_txs: u32,
    /// Published (withheld private blocks of a selfish miner are not, yet).
    pub published: bool,
    /// When it was published, ns (propagation is measured from here).
    pub published_ns: u64,
    /// Counted as stale already.
    pub stale_counted: bool,
    /// Some node abandoned it as its tip (counted as one reorganisation).
    pub reorged: bool,
}

/// The block tree: an arena with parent links, heights and cumulative work.
pub struct BlockTree {
    /// Blocks by index.
    pub blocks: Vec<ChainBlock>,
    /// Block indices by height.
    pub by_height: Vec<Vec<BlockIdx>>,
}

impl BlockTree {
    /// A tree holding only genesis.
    pub fn new() -> Self {
        BlockTree {
            blocks: vec![ChainBlock {
                parent: GENESIS,
                height: 0,
                work: 0,
                difficulty: 0,
                miner: NodeId::MAX,
                created_ns: 0,
                slot: 0,
                store: None,
                size_bytes: 0,
                n_txs: 0,
                published: true,
                published_ns: 0,
                stale_counted: false,
                reorged: false,
            }],
            by_height: vec![vec![GENESIS]],
        }
    }

    /// Add a block on `parent` (returns its index).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        parent: BlockIdx,
        difficulty: u128,
        miner: NodeId,
        created_ns: u64,
        slot: u64,
        store: BlockRef,
        size_bytes: u64,
        n_txs: u32,
    ) -> BlockIdx {
        let p = &self.blocks[parent as usize];
        let height = p.height + 1;
        let work = p.work + difficulty;
        let idx = self.blocks.len() as BlockIdx;
        self.blocks.push(ChainBlock {
            parent,
            height,
            work,
            difficulty,
            miner,
            created_ns,
            slot,
            store: Some(store),
            size_bytes,
            n_txs,
            published: false,
            published_ns: created_ns,
            stale_counted: false,
            reorged: false,
        });
        if self.by_height.len() <= height as usize {
            self.by_height.push(Vec::new());
        }
        self.by_height[height as usize].push(idx);
        idx
    }

    /// The block.
    #[inline]
    pub fn get(&self, b: BlockIdx) -> &ChainBlock {
        &self.blocks[b as usize]
    }

    /// Number of blocks including genesis.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether only genesis exists.
    pub fn is_empty(&self) -> bool {
        self.blocks.len() <= 1
    }

    /// Ancestor of `b` at `height` (`height <= height(b)`).
    pub fn ancestor_at(&self, mut b: BlockIdx, height: u32) -> BlockIdx {
        while self.get(b).height > height {
            b = self.get(b).parent;
        }
        b
    }

    /// Whether `a` is `b` or an ancestor of `b`.
    pub fn is_ancestor(&self, a: BlockIdx, b: BlockIdx) -> bool {
        let ha = self.get(a).height;
        ha <= self.get(b).height && self.ancestor_at(b, ha) == a
    }

    /// The last common ancestor of `a` and `b`.
    pub fn fork_point(&self, mut a: BlockIdx, mut b: BlockIdx) -> BlockIdx {
        let h = self.get(a).height.min(self.get(b).height);
        a = self.ancestor_at(a, h);
        b = self.ancestor_at(b, h);
        while a != b {
            a = self.get(a).parent;
            b = self.get(b).parent;
        }
        a
    }

    /// Fork choice: whether `cand` beats the current tip `cur` (more work; on
    /// equal work the first seen — the current one — stays).
    #[inline]
    pub fn better(&self, cand: BlockIdx, cur: BlockIdx) -> bool {
        self.get(cand).work > self.get(cur).work
    }
}

impl Default for BlockTree {
    fn default() -> Self {
        Self::new()
    }
}

/// An undirected random peer graph in compressed form.
pub struct PeerGraph {
    offsets: Vec<u32>,
    peers: Vec<NodeId>,
}

/// Cumulative distribution of outbound connections 1..=20 of Bitcoin nodes in
/// 2015 (Miller et al., "Discovering Bitcoin's public topology and influential
/// nodes", as used by SimBlock's `DEGREE_DISTRIBUTION_BITCOIN_2015`).
pub const BITCOIN_2015_OUTBOUND_CDF: [f64; 20] = [
    0.025, 0.050, 0.075, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.85, 0.90, 0.95, 0.97,
    0.97, 0.98, 0.99, 0.995, 1.0,
];

impl PeerGraph {
    /// Every node opens `outbound(i)` connections to distinct random other nodes
    /// (drawn from `rng`); connections are bidirectional, so the average degree is
    /// about twice the average outbound count. Neighbour lists are sorted.
    pub fn random(
        n: usize,
        rng: &mut Stream,
        mut outbound: impl FnMut(&mut Stream) -> usize,
    ) -> Self {
        let mut adj: Vec<Vec<NodeId>> = vec![Vec::new(); n];
        for i in 0..n {
            let want = outbound(rng).min(n.saturating_sub(1));
            let mut got = 0;
            let mut tries = 0;
            while got < want && tries < want * 20 + 20 {
                tries += 1;
                let j = rng.below(n as u64) as usize;
                if j == i || adj[i].contains(&(j as NodeId)) {
                    continue;
                }
                adj[i].push(j as NodeId);
                adj[j].push(i as NodeId);
                got += 1;
            }
        }
        let mut offsets = Vec::with_capacity(n + 1);
        let mut peers = Vec::new();
        offsets.push(0);
        for mut a in adj {
            a.sort_unstable();
            a.dedup();
            peers.extend_from_slice(&a);
            offsets.push(peers.len() as u32);
        }
        PeerGraph { offsets, peers }
    }

    /// Neighbours of `i`.
    #[inline]
    pub fn of(&self, i: NodeId) -> &[NodeId] {
        let i = i as usize;
        &self.peers[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Mean degree.
    pub fn mean_degree(&self) -> f64 {
        self.peers.len() as f64 / (self.offsets.len() - 1).max(1) as f64
    }
}

/// Per-(block, node) status, one byte each.
pub struct StatusTable {
    n: usize,
    rows: Vec<Vec<u8>>,
}

impl StatusTable {
    /// A table for `n` nodes (genesis valid everywhere).
    pub fn new(n: usize) -> Self {
        StatusTable {
            n,
            rows: vec![vec![Status::Valid as u8; n]],
        }
    }

    /// Add a row for a new block (unknown everywhere).
    pub fn push_block(&mut self) {
        self.rows.push(vec![0; self.n]);
    }

    /// Status of `b` at `node`.
    #[inline]
    pub fn get(&self, b: BlockIdx, node: NodeId) -> Status {
        Status::from_u8(self.rows[b as usize][node as usize])
    }

    /// Set the status of `b` at `node`.
    #[inline]
    pub fn set(&mut self, b: BlockIdx, node: NodeId, s: Status) {
        self.rows[b as usize][node as usize] = s as u8;
    }
}

/// The network-wide transaction pool (see the module docs).
#[derive(Default)]
pub struct TxPool {
    pending: BTreeMap<u32, TxRef>,
    /// Transactions returned to the pool by reorganisations.
    pub returned: u64,
}

impl TxPool {
    /// A transaction reached the network.
    pub fn add(&mut self, tx: TxRef) {
        self.pending.insert(tx.id, tx);
    }

    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The oldest pending transactions that fit in `max_tx` and `max_bytes`.
    pub fn select(&self, max_tx: usize, max_bytes: u64) -> Vec<TxRef> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for tx in self.pending.values() {
            if out.len() >= max_tx {
                break;
            }
            if bytes + u64::from(tx.size_bytes) > max_bytes {
                continue;
            }
            bytes += u64::from(tx.size_bytes);
            out.push(*tx);
        }
        out
    }

    /// Transactions for a block on `parent` while the best published chain ends at
    /// `best`: the oldest that fit among the pool plus the transactions of the best
    /// chain's blocks that `parent`'s branch lacks, minus those already in
    /// `parent`'s branch (below the fork point both chains hold the same ones).
    pub fn select_for<'a>(
        &self,
        tree: &BlockTree,
        parent: BlockIdx,
        best: BlockIdx,
        max_tx: usize,
        max_bytes: u64,
        txs_of: impl Fn(BlockRef) -> &'a [TxRef],
    ) -> Vec<TxRef> {
        if tree.is_ancestor(best, parent) {
            // Common case: building on the best chain (or past it: a selfish
            // miner's private blocks are not in the best chain yet).
            let mut exclude = std::collections::BTreeSet::new();
            let mut b = parent;
            while b != best {
                if let Some(r) = tree.get(b).store {
                    exclude.extend(txs_of(r).iter().map(|t| t.id));
                }
                b = tree.get(b).parent;
            }
            return self.select_merged(max_tx, max_bytes, &exclude, &[]);
        }
        let f = tree.fork_point(parent, best);
        let mut exclude = std::collections::BTreeSet::new();
        let mut b = parent;
        while b != f {
            if let Some(r) = tree.get(b).store {
                exclude.extend(txs_of(r).iter().map(|t| t.id));
            }
            b = tree.get(b).parent;
        }
        let mut extra: Vec<TxRef> = Vec::new();
        let mut b = best;
        while b != f {
            if let Some(r) = tree.get(b).store {
                extra.extend(txs_of(r).iter().filter(|t| !exclude.contains(&t.id)));
            }
            b = tree.get(b).parent;
        }
        extra.sort_unstable_by_key(|t| t.id);
        extra.dedup_by_key(|t| t.id);
        self.select_merged(max_tx, max_bytes, &exclude, &extra)
    }

    fn select_merged(
        &self,
        max_tx: usize,
        max_bytes: u64,
        exclude: &std::collections::BTreeSet<u32>,
        extra: &[TxRef],
    ) -> Vec<TxRef> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let mut pool = self.pending.values().peekable();
        let mut ext = extra.iter().peekable();
        loop {
            if out.len() >= max_tx {
                break;
            }
            let next = match (pool.peek(), ext.peek()) {
                (None, None) => break,
                (Some(a), Some(b)) if b.id < a.id => ext.next(),
                (Some(_), _) => pool.next(),
                (None, Some(_)) => ext.next(),
            };
            let Some(tx) = next else { break };
            if exclude.contains(&tx.id) || bytes + u64::from(tx.size_bytes) > max_bytes {
                continue;
            }
            bytes += u64::from(tx.size_bytes);
            out.push(*tx);
        }
        out
    }

    /// Remove transactions (they joined the best chain).
    pub fn remove(&mut self, txs: &[TxRef]) {
        for t in txs {
            self.pending.remove(&t.id);
        }
    }

    /// Return transactions of an orphaned block.
    pub fn give_back(&mut self, txs: &[TxRef]) {
        for t in txs {
            if self.pending.insert(t.id, *t).is_none() {
                self.returned += 1;
            }
        }
    }
}

/// Propagation statistics of one block.
#[derive(Clone, Copy, Default)]
struct Reach {
    count: u32,
    t50_ns: Option<u64>,
    t90_ns: Option<u64>,
    t100_ns: Option<u64>,
}

/// Propagation, fork and reorganisation statistics.
pub struct ChainStats {
    n_nodes: u32,
    reach: Vec<Reach>,
    /// Delay from creation to validation at each receiving node, µs.
    pub receipt_delay_us: Histogram<u64>,
    /// Reorganisations counted once per abandoned tip.
    pub reorgs: u64,
    /// Tip switches to a non-descendant, summed over nodes.
    pub node_reorgs: u64,
    /// Deepest reorganisation seen by a node (blocks abandoned).
    pub max_reorg_depth: u32,
    /// Announcements skipped because the peer already had or requested the block.
    pub announcements_suppressed: u64,
    /// Duplicate block deliveries (a node received a block it already had).
    pub duplicate_blocks: u64,
}

impl ChainStats {
    /// Statistics for `n_nodes` nodes.
    pub fn new(n_nodes: usize) -> Self {
        ChainStats {
            n_nodes: n_nodes as u32,
            reach: vec![Reach::default()],
            receipt_delay_us: match Histogram::new_with_bounds(1, crate::metrics::MAX_LATENCY_US, 3)
            {
                Ok(h) => h,
                Err(e) => panic!("static histogram bounds are valid: {e}"),
            },
            reorgs: 0,
            node_reorgs: 0,
            max_reorg_depth: 0,
            announcements_suppressed: 0,
            duplicate_blocks: 0,
        }
    }

    /// A block was created (the creator holds it).
    pub fn push_block(&mut self) {
        self.reach.push(Reach {
            count: 1,
            ..Reach::default()
        });
    }

    /// Node validated block `b` created at `created_ns`, at `now_ns`.
    pub fn received(&mut self, b: BlockIdx, created_ns: u64, now_ns: u64) {
        let d = now_ns.saturating_sub(created_ns);
        self.receipt_delay_us
            .saturating_record((d / 1_000).clamp(1, crate::metrics::MAX_LATENCY_US));
        let n = self.n_nodes;
        let r = &mut self.reach[b as usize];
        r.count += 1;
        if r.t50_ns.is_none() && u64::from(r.count) * 2 >= u64::from(n) {
            r.t50_ns = Some(d);
        }
        if r.t90_ns.is_none() && u64::from(r.count) * 10 >= u64::from(n) * 9 {
            r.t90_ns = Some(d);
        }
        if r.t100_ns.is_none() && r.count >= n {
            r.t100_ns = Some(d);
        }
    }

    /// Per-block propagation summary (SimBlock-style): over the blocks that
    /// reached the given fraction of nodes, the median and mean time to reach it.
    pub fn propagation_json(&self) -> Value {
        let pick = |f: fn(&Reach) -> Option<u64>| -> Value {
            let mut v: Vec<u64> = self.reach.iter().skip(1).filter_map(f).collect();
            v.sort_unstable();
            if v.is_empty() {
                return json!({"blocks": 0, "median_ms": Value::Null, "mean_ms": Value::Null, "max_ms": Value::Null});
            }
            let ms = |ns: u64| (ns as f64 / 1e3).round() / 1e3;
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
            json!({
                "blocks": v.len(),
                "median_ms": ms(v[v.len() / 2]),
                "mean_ms": ms(mean as u64),
                "max_ms": ms(v[v.len() - 1]),
            })
        };
        let h = &self.receipt_delay_us;
        let q = |x: f64| {
            if h.is_empty() {
                Value::Null
            } else {
                json!(h.value_at_quantile(x) as f64 / 1e3)
            }
        };
        json!({
            "to_50pct_nodes": pick(|r| r.t50_ns),
            "to_90pct_nodes": pick(|r| r.t90_ns),
            "to_all_nodes": pick(|r| r.t100_ns),
            "receipt_delay_ms": {
                "p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
                "mean": if h.is_empty() { Value::Null } else { json!((h.mean() / 1e3 * 1e3).round() / 1e3) },
                "count": h.len(),
            },
        })
    }
}

/// The final main chain from `best` back to genesis (indices, genesis excluded),
/// oldest first.
pub fn main_chain(tree: &BlockTree, best: BlockIdx) -> Vec<BlockIdx> {
    let mut v = Vec::with_capacity(tree.get(best).height as usize);
    let mut b = best;
    while b != GENESIS {
        v.push(b);
        b = tree.get(b).parent;
    }
    v.reverse();
    v
}

/// Track the best published chain: move the pool across a reorganisation from
/// `old` to `new` (returning orphaned transactions, removing adopted ones).
/// `txs_of` gives a block's transactions.
pub fn move_pool<'a>(
    tree: &BlockTree,
    pool: &mut TxPool,
    old: BlockIdx,
    new: BlockIdx,
    txs_of: impl Fn(BlockRef) -> &'a [TxRef],
) {
    let f = tree.fork_point(old, new);
    let mut b = old;
    while b != f {
        if let Some(r) = tree.get(b).store {
            pool.give_back(txs_of(r));
        }
        b = tree.get(b).parent;
    }
    let mut b = new;
    while b != f {
        if let Some(r) = tree.get(b).store {
            pool.remove(txs_of(r));
        }
        b = tree.get(b).parent;
    }
}

/// Blocks at heights `<= settle_height` that are not on the chain ending at
/// `best` and not yet counted: mark and return how many (stale blocks).
pub fn settle_stale(tree: &mut BlockTree, best: BlockIdx, from_height: u32, to_height: u32) -> u64 {
    let mut n = 0;
    for h in from_height..=to_height {
        if h as usize >= tree.by_height.len() || h == 0 {
            continue;
        }
        let main = tree.ancestor_at(best, h);
        let ids = tree.by_height[h as usize].clone();
        for b in ids {
            if b != main && !tree.blocks[b as usize].stale_counted {
                tree.blocks[b as usize].stale_counted = true;
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_choice_and_ancestry() {
        let mut t = BlockTree::new();
        let a = t.add(GENESIS, 10, 0, 1, 0, BlockRef(0), 100, 0);
        let b = t.add(a, 10, 0, 2, 0, BlockRef(1), 100, 0);
        let c = t.add(a, 25, 1, 3, 0, BlockRef(2), 100, 0);
        assert!(t.is_ancestor(a, b) && t.is_ancestor(a, c) && !t.is_ancestor(b, c));
        assert_eq!(t.fork_point(b, c), a);
        // c has more work than b despite equal height
        assert!(t.better(c, b) && !t.better(b, c));
        // equal work: the current tip stays
        let d = t.add(a, 25, 2, 4, 0, BlockRef(3), 100, 0);
        assert!(!t.better(d, c));
        let stale = settle_stale(&mut t, c, 1, 2);
        assert_eq!(stale, 2, "b and d are stale at height 2");
        assert_eq!(main_chain(&t, c), vec![a, c]);
    }
}
