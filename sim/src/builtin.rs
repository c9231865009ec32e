//! Built-in scenarios (the TOML files under `scenarios/`, embedded).

use crate::error::ScenarioError;
use crate::scenario::Scenario;

/// `(name, one-line description, TOML text)` of every built-in scenario.
pub const BUILTINS: &[(&str, &str, &str)] = &[
    (
        "default",
        "hospitals, imaging centres, insurers, pharmacies: 4 PBFT shards of 4 nodes, healthcare mix, 2000 tx/s, 10 s",
        include_str!("../../scenarios/default.toml"),
    ),
    (
        "hospital",
        "EHR writes, audited reads and consents, one diurnal day in 20 s: 2 sequencer shards, 2000 tx/s",
        include_str!("../../scenarios/hospital.toml"),
    ),
    (
        "imaging",
        "imaging studies anchored on-chain (set workload.imaging.mode=onchain for blobs), PBFT, 20 studies/s",
        include_str!("../../scenarios/imaging.toml"),
    ),
    (
        "claims",
        "claims submit/adjudicate/pay over 4 PBFT shards, cross-shard payments, 500 tx/s",
        include_str!("../../scenarios/claims.toml"),
    ),
    (
        "supply-chain",
        "serialized drug packages from commission to dispense, 2 PBFT shards, 500 tx/s",
        include_str!("../../scenarios/supply-chain.toml"),
    ),
    (
        "large",
        "reference large run: 16 shards x 7 PBFT replicas in 4 regions, mixed workload at 20,000 tx/s, 60 s",
        include_str!("../../scenarios/large.toml"),
    ),
    (
        "sharded",
        "8 PBFT committees of 4 (random assignment), 10% cross-shard, client resends",
        include_str!("../../scenarios/sharded.toml"),
    ),
    (
        "shards-64",
        "64 shards x 16 PBFT nodes = 1,024 nodes, 10% cross-shard, 30,000 tx/s",
        include_str!("../../scenarios/shards-64.toml"),
    ),
    (
        "bitcoin",
        "proof-of-work validation: Bitcoin 2015-16 (6,000 nodes, 535 KB blocks every 10 min, full-block relay), one week",
        include_str!("../../scenarios/bitcoin.toml"),
    ),
    (
        "ethereum",
        "proof-of-work validation: Ethereum 2016 (4,000 nodes, 1.5 KB blocks every 14 s, block push), four hours",
        include_str!("../../scenarios/ethereum.toml"),
    ),
    (
        "simblock-6000",
        "SimBlock's default 2019 Bitcoin setup: 6,000 nodes, 100 blocks, compact relay; propagation per block",
        include_str!("../../scenarios/simblock-6000.toml"),
    ),
    (
        "pow-10k",
        "10,000-node proof-of-work network, a day of chain time (144 blocks)",
        include_str!("../../scenarios/pow-10k.toml"),
    ),
    (
        "pos",
        "proof-of-stake: 64 validators, Ouroboros-style slot leaders, Casper-FFG finality, 50 tx/s, 300 s",
        include_str!("../../scenarios/pos.toml"),
    ),
];

/// Names and descriptions of the built-in scenarios.
pub fn list() -> Vec<(&'static str, &'static str)> {
    BUILTINS.iter().map(|(n, d, _)| (*n, *d)).collect()
}

/// The TOML text of built-in scenario `name`.
pub fn text(name: &str) -> Result<&'static str, ScenarioError> {
    BUILTINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, t)| *t)
        .ok_or_else(|| ScenarioError::UnknownBuiltin {
            name: name.to_string(),
            allowed: BUILTINS.iter().map(|(n, _, _)| n.to_string()).collect(),
        })
}

/// Built-in scenario `name`, parsed.
pub fn get(name: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_toml_str(text(name)?, &format!("builtin:{name}"))
}
