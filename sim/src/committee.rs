//! Committees: which node serves which shard, and which organisation operates it.
//!
//! A run has `shards × nodes_per_shard` nodes, `NodeId(0..n)`. The scenario key
//! `committee_assignment` chooses how they are split into one committee per shard:
//!
//! - `sequential` (default): shard `s` is nodes `s·N .. (s+1)·N`; node `i` is operated by
//!   organisation `i mod orgs` (the placement every scenario had before committees existed).
//! - `random`: a Fisher–Yates permutation of the node ids drawn from the named stream
//!   `committee/assign` of the master seed; shard `s` gets permuted positions
//!   `s·N .. (s+1)·N` (each committee sorted by node id). Operators as in `sequential`, so
//!   a committee mixes organisations and regions at random, as OmniLedger's and
//!   RapidChain's randomness-beacon sampling does.
//! - `by_organisation`: each shard is run by its own organisation group, as when each
//!   hospital group runs the shard holding its data. The group of shard `s` is the
//!   organisations homed on `s` by the ledger's routing rule
//!   ([`ledger_core::routing::org_shard`]); a shard that homes no organisation is given a
//!   hospital (round-robin over hospitals, or over all organisations if there are none).
//!   Node ids stay contiguous per shard; shard `s`'s nodes are operated round-robin by its
//!   group, and so sit in their operators' regions: a committee is as local as its group.
//!
//! The node → organisation map drives placement: a node sits in its operator's region
//! (see [`crate::net::Topology::new`]), unless `network.placement` overrides it.

use crate::protocol::NodeId;
use ledger_core::types::OrgKind;
use serde::{Deserialize, Serialize};
use simrand::Stream;
use workloads::Consortium;

/// How nodes are assigned to shard committees (scenario key `committee_assignment`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitteeAssignment {
    /// Contiguous node ids per shard, operators round-robin over organisations.
    #[default]
    Sequential,
    /// A seeded random permutation (stream `committee/assign`).
    Random,
    /// Each shard run by the organisations homed on it (its hospital group).
    ByOrganisation,
}

/// The committees of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committees {
    /// `members[s]`: the nodes of shard `s`, ascending.
    pub members: Vec<Vec<NodeId>>,
    /// `shard_of[node]`: the shard a node serves.
    pub shard_of: Vec<u32>,
    /// `operator[node]`: index of the organisation operating a node (`consortium.orgs()`).
    pub operator: Vec<u32>,
}

impl Committees {
    /// Assign `shards × nodes_per_shard` nodes by `mode` (deterministic in `seed`).
    /// `consortium` must have at least one organisation (a validated consortium has).
    pub fn assign(
        mode: CommitteeAssignment,
        shards: u32,
        nodes_per_shard: u32,
        seed: u64,
        consortium: &Consortium,
    ) -> Committees {
        let n = (shards * nodes_per_shard) as usize;
        let orgs = consortium.orgs().len().max(1) as u32;
        let nps = nodes_per_shard as usize;
        let mut order: Vec<NodeId> = (0..n as NodeId).collect();
        let mut operator: Vec<u32> = (0..n as u32).map(|i| i % orgs).collect();
        match mode {
            CommitteeAssignment::Sequential => {}
            CommitteeAssignment::Random => {
                let mut rng = Stream::new(seed, "committee/assign");
                for i in (1..n).rev() {
                    let j = rng.below(i as u64 + 1) as usize;
                    order.swap(i, j);
                }
            }
            CommitteeAssignment::ByOrganisation => {
                let groups = organisation_groups(shards, consortium);
                for (s, g) in groups.iter().enumerate() {
                    for k in 0..nps {
                        operator[s * nps + k] = g[k % g.len()];
                    }
                }
            }
        }
        let mut members: Vec<Vec<NodeId>> = order.chunks(nps).map(<[NodeId]>::to_vec).collect();
        let mut shard_of = vec![0u32; n];
        for (s, m) in members.iter_mut().enumerate() {
            m.sort_unstable();
            for &node in m.iter() {
                shard_of[node as usize] = s as u32;
            }
        }
        Committees {
            members,
            shard_of,
            operator,
        }
    }

    /// Per node, the region of its operating organisation (for `Topology::new`).
    pub fn node_regions(&self, consortium: &Consortium) -> Vec<String> {
        let orgs = consortium.orgs();
        self.operator
            .iter()
            .map(|&o| {
                orgs.get(o as usize)
                    .map(|x| x.region.clone())
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// Organisation group of every shard for `by_organisation`: the organisations homed on the
/// shard by [`ledger_core::routing::org_shard`], or else one hospital (round-robin over the
/// shards without a homed organisation). Every group is non-empty and sorted.
pub fn organisation_groups(shards: u32, consortium: &Consortium) -> Vec<Vec<u32>> {
    let orgs = consortium.orgs();
    let mut groups: Vec<Vec<u32>> = vec![Vec::new(); shards as usize];
    for (i, o) in orgs.iter().enumerate() {
        let s = ledger_core::routing::org_shard(o.id, shards).0 as usize;
        groups[s].push(i as u32);
    }
    let hospitals: Vec<u32> = orgs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.kind == OrgKind::Hospital)
        .map(|(i, _)| i as u32)
        .collect();
    let fallback: Vec<u32> = if hospitals.is_empty() {
        (0..orgs.len().max(1) as u32).collect()
    } else {
        hospitals
    };
    let mut k = 0usize;
    for g in groups.iter_mut() {
        if g.is_empty() {
            g.push(fallback[k % fallback.len()]);
            k += 1;
        }
    }
    groups
}
