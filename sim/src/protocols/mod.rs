//! The consensus protocols and their registry.
//!
//! # Adding a protocol
//! 1. Create `sim/src/protocols/<name>.rs` with a factory type implementing
//!    [`crate::protocol::Protocol`] (`const NAME`, `from_scenario`, `max_faulty`,
//!    `replica`) and a replica type implementing [`crate::protocol::Replica`].
//!    Read parameters with `scenario.protocol_params::<YourParams>(NAME)` from the
//!    `[protocol.<name>]` table (a `#[serde(deny_unknown_fields, default)]` struct).
//! 2. Add `pub mod <name>;` below and one [`entry`] line to [`REGISTRY`].
//! 3. Run it: `sim::run(&scenario_with_consensus_name, &RunOptions::default())`, or
//!    from the CLI `ledgersim run --set consensus=<name>`. The shared checks in
//!    `sim/tests/` (determinism, safety invariant) apply to every registered protocol.

use crate::error::SimError;
use crate::protocol::Protocol;
use crate::run::{RunOptions, RunResult};
use crate::scenario::{Scenario, ScenarioError};

pub mod chain;
pub mod hotstuff;
pub mod pbft;
pub mod pos;
pub mod pow;
pub mod raft;
pub mod sequencer;

/// One registered protocol.
pub struct ProtocolEntry {
    /// Name used in scenarios (`consensus = "..."`).
    pub name: &'static str,
    /// One-line description (shown by `--help` listings).
    pub summary: &'static str,
    /// Run a scenario with this protocol.
    pub run: fn(&Scenario, &RunOptions) -> Result<RunResult, SimError>,
    /// Build the protocol from the scenario and return how many faulty nodes a
    /// committee of the scenario's size tolerates.
    pub max_faulty: fn(&Scenario) -> Result<usize, ScenarioError>,
}

/// Make the registry entry of protocol `P`.
pub const fn entry<P: Protocol>(summary: &'static str) -> ProtocolEntry {
    ProtocolEntry {
        name: P::NAME,
        summary,
        run: crate::run::run_protocol::<P>,
        max_faulty: max_faulty_of::<P>,
    }
}

fn max_faulty_of<P: Protocol>(s: &Scenario) -> Result<usize, ScenarioError> {
    Ok(P::from_scenario(s)?.max_faulty(s.nodes_per_shard as usize))
}

/// Every protocol, by scenario name.
pub const REGISTRY: &[ProtocolEntry] = &[
    entry::<sequencer::Sequencer>(
        "BASELINE ONLY, no fault tolerance: a single leader per shard orders and broadcasts blocks",
    ),
    entry::<pbft::Pbft>(
        "PBFT (Castro & Liskov): three-phase BFT with checkpoints and view changes, n >= 3f+1",
    ),
    entry::<hotstuff::HotStuff>(
        "chained HotStuff: rotating leaders, linear votes, three-chain commit, BFT (n = 3f + 1)",
    ),
    entry::<raft::Raft>(
        "Raft: leader election and log replication; crash faults only (no Byzantine nodes)",
    ),
    entry::<pow::Pow>(
        "proof-of-work (Nakamoto): hash-power race, most-work chain, inv/compact relay over a peer graph, k confirmations",
    ),
    entry::<pos::Pos>(
        "proof-of-stake: stake-weighted slot leaders (Ouroboros-style), longest chain, Casper-FFG 2/3-stake finality",
    ),
];

/// Look up a protocol by name.
pub fn get(name: &str) -> Result<&'static ProtocolEntry, ScenarioError> {
    REGISTRY
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ScenarioError::UnknownProtocol {
            name: name.to_string(),
            allowed: names().into_iter().map(String::from).collect(),
        })
}

/// Registered names.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.name).collect()
}

/// Full validation: the basic checks plus the protocol exists, accepts its
/// parameters and tolerates the Byzantine nodes the faults mark per shard.
pub fn validate(s: &Scenario) -> Result<(), ScenarioError> {
    s.validate_basic()?;
    let e = get(&s.consensus)?;
    let tolerated = (e.max_faulty)(s)?;
    let nps = s.nodes_per_shard.max(1);
    let mut byz_per_shard = vec![std::collections::BTreeSet::new(); s.shards as usize];
    for f in &s.faults {
        if let crate::faults::FaultSpec::Byzantine { nodes, .. } = f {
            for &n in nodes {
                if let Some(set) = byz_per_shard.get_mut((n / nps) as usize) {
                    set.insert(n);
                }
            }
        }
    }
    for (shard, set) in byz_per_shard.iter().enumerate() {
        if set.len() > tolerated {
            return Err(ScenarioError::InvalidValue {
                source_name: s.name.clone(),
                path: "faults".into(),
                message: format!(
                    "{} Byzantine nodes in shard {shard}, but {} tolerates at most {tolerated} of {} nodes",
                    set.len(),
                    s.consensus,
                    s.nodes_per_shard
                ),
            });
        }
    }
    Ok(())
}
