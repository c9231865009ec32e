//! Scenarios: what to simulate, deserialised from TOML.
//!
//! Every field has a default, so a scenario can be three lines:
//! ```toml
//! name = "tiny"
//! consensus = "sequencer"
//! offered_tps = 200
//! ```
//! Overrides (`--set dotted.key=value`) are applied to the TOML tree before typed
//! deserialisation; the value is parsed as a TOML scalar (or array/inline table),
//! falling back to a string.

use crate::committee::CommitteeAssignment;
use crate::faults::FaultSpec;
use crate::net::{NetworkConfig, Topology};
use crate::node::CpuCosts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::error::ScenarioError;

/// Upper bound on the estimated memory of one run, MiB (a named limit).
pub const MAX_ESTIMATED_MEMORY_MIB: u64 = 8 * 1024;
/// Estimated bytes held per submitted transaction (operation arena, metrics, ledger state).
pub const ESTIMATED_BYTES_PER_TX: u64 = 400;
/// Most consensus nodes in one run (a named limit).
pub const MAX_NODES: u64 = 100_000;
/// Most resends of one operation by its client (`client_retries`, a named limit).
pub const MAX_CLIENT_RETRIES: u32 = 16;
/// Longest client timeout, ms (`client_timeout_ms`, a named limit: one hour).
pub const MAX_CLIENT_TIMEOUT_MS: f64 = 3_600_000.0;

/// How cross-shard prepares treat organisation accounts (scenario key
/// `account_locking`; see `ledger_core::AccountLocking`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountLockingMode {
    /// Accounts are locked no-wait like every other key: concurrent payments from one
    /// account abort while the first is prepared.
    Lock,
    /// Escrow holds (the default): debits and credits commute, accounts are never locked.
    #[default]
    Escrow,
}

impl AccountLockingMode {
    /// The ledger-core mode.
    pub fn to_ledger(self) -> ledger_core::AccountLocking {
        match self {
            AccountLockingMode::Lock => ledger_core::AccountLocking::Lock,
            AccountLockingMode::Escrow => ledger_core::AccountLocking::Escrow,
        }
    }
}

/// `[metrics]`: what to record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Keep one row per transaction (for `transactions.csv.gz`).
    pub record_transactions: bool,
    /// Width of a time-series bucket, s.
    pub timeseries_bucket_s: f64,
    /// Keep every shard's block log in memory so that the run's ledger can be
    /// exported and verified offline (`RunResult::ledger`, `ledgersim verify`).
    pub keep_ledger_log: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            record_transactions: false,
            timeseries_bucket_s: 1.0,
            keep_ledger_log: false,
        }
    }
}

/// A simulation scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Scenario name (reports, reproduction hints).
    pub name: String,
    /// Master seed.
    pub seed: u64,
    /// Simulated duration, s (including warm-up).
    pub duration_s: f64,
    /// Warm-up excluded from the metrics, s.
    pub warmup_s: f64,
    /// Offered load, transactions per second (whole system).
    pub offered_tps: f64,
    /// Target share of cross-shard transactions. The client-side shaper
    /// ([`crate::client::CrossShardShaper`]) makes each transaction cross-shard or not
    /// so that the running share tracks this target: it re-homes a natively
    /// cross-shard transaction's patient onto its counterparty's shard (or a payment's
    /// payee onto the payer's shard) when the share is above target, and replaces a
    /// single-shard request by a cross-shard payment ($1–$100, submitting organisation
    /// to one on another shard) when below. Claim payments (payer and provider
    /// accounts on their own shards) cannot be re-homed, so their share is a floor.
    /// No effect with one shard. Absent: the workload's natural share.
    pub cross_shard_fraction: Option<f64>,
    /// Number of shards.
    pub shards: u32,
    /// Consensus nodes per shard.
    pub nodes_per_shard: u32,
    /// How nodes are assigned to shard committees: `sequential`, `random` or
    /// `by_organisation` (see [`crate::committee`]).
    pub committee_assignment: CommitteeAssignment,
    /// Account treatment in cross-shard prepares: `lock` or `escrow` (default).
    pub account_locking: AccountLockingMode,
    /// A client resends an operation that has not executed after this long, ms, to
    /// the next gateway node of the shard's committee (0: never resend). Operations are
    /// deduplicated by id at execution.
    pub client_timeout_ms: f64,
    /// Most resends of one operation (at most [`MAX_CLIENT_RETRIES`]).
    pub client_retries: u32,
    /// Consensus protocol name (see [`crate::protocols::REGISTRY`]).
    pub consensus: String,
    /// Most transactions per block.
    pub block_max_tx: u32,
    /// Most bytes per block (transactions plus payload).
    pub block_max_bytes: u64,
    /// A leader proposes a partial block after this long, ms.
    pub batch_timeout_ms: f64,
    /// Per-protocol parameter tables: `[protocol.<name>]`.
    pub protocol: BTreeMap<String, toml::Value>,
    /// Network model.
    pub network: NetworkConfig,
    /// Node CPU model.
    pub node: CpuCosts,
    /// Workload configuration (`[workload]`, the `workloads` crate's).
    pub workload: workloads::WorkloadConfig,
    /// Consortium configuration (`[consortium]`, the `workloads` crate's).
    pub consortium: workloads::ConsortiumConfig,
    /// Scheduled faults.
    pub faults: Vec<FaultSpec>,
    /// Metrics options.
    pub metrics: MetricsConfig,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "default".into(),
            seed: 1,
            duration_s: 10.0,
            warmup_s: 2.0,
            offered_tps: 1_000.0,
            cross_shard_fraction: None,
            shards: 1,
            nodes_per_shard: 4,
            committee_assignment: CommitteeAssignment::default(),
            account_locking: AccountLockingMode::default(),
            client_timeout_ms: 0.0,
            client_retries: 3,
            consensus: "sequencer".into(),
            block_max_tx: 500,
            block_max_bytes: 4 * 1024 * 1024,
            batch_timeout_ms: 50.0,
            protocol: BTreeMap::new(),
            network: NetworkConfig::default(),
            node: CpuCosts::default(),
            workload: workloads::WorkloadConfig::default(),
            consortium: workloads::ConsortiumConfig::default(),
            faults: Vec::new(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Keys of optional (`Option`) fields that a default serialisation omits, per table path.
const OPTIONAL_KEYS: &[(&str, &str)] = &[("", "cross_shard_fraction")];
/// Tables whose contents are not checked here (free-form or checked by their owner).
const FREE_FORM: &[&str] = &[
    "protocol",
    "workload",
    "consortium",
    "faults",
    "network.jitter",
    "network.nodes",
    "network.links",
    "network.latency_ms",
    "network.regions",
    "network.placement",
];

impl Scenario {
    /// Parse a scenario from TOML text; `source_name` labels errors (a file name).
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Scenario, ScenarioError> {
        Self::from_toml_str_with_overrides(text, source_name, &[])
    }

    /// Parse a scenario and apply `(dotted key, value)` overrides to the TOML tree
    /// before typed deserialisation.
    pub fn from_toml_str_with_overrides(
        text: &str,
        source_name: &str,
        overrides: &[(String, String)],
    ) -> Result<Scenario, ScenarioError> {
        let mut tree: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ScenarioError::Syntax {
                    source_name: source_name.to_string(),
                    message: e.to_string().trim().to_string(),
                })?;
        for (k, v) in overrides {
            apply_override_tree(&mut tree, k, v)?;
        }
        let source = if overrides.is_empty() {
            source_name.to_string()
        } else {
            format!("{source_name} (with --set overrides)")
        };
        Self::from_tree(tree, &source)
    }

    /// Apply one `dotted.key = value` override to this scenario (re-checked as a whole).
    pub fn apply_override(&mut self, key: &str, value: &str) -> Result<(), ScenarioError> {
        let mut tree = self.to_tree();
        apply_override_tree(&mut tree, key, value)?;
        *self = Self::from_tree(tree, "--set")?;
        Ok(())
    }

    fn to_tree(&self) -> toml::Table {
        match toml::Table::try_from(self) {
            Ok(t) => t,
            Err(e) => panic!("a Scenario always serialises to TOML: {e}"),
        }
    }

    fn from_tree(tree: toml::Table, source_name: &str) -> Result<Scenario, ScenarioError> {
        let known = Scenario::default().to_tree();
        check_unknown(&tree, &known, "", source_name)?;
        let text = toml::to_string(&tree).map_err(|e| ScenarioError::InvalidValue {
            source_name: source_name.to_string(),
            path: String::new(),
            message: e.to_string(),
        })?;
        toml::from_str::<Scenario>(&text).map_err(|e| {
            let path = e
                .span()
                .map(|s| path_at(&text, s.start))
                .unwrap_or_default();
            serde_error(source_name, path, e.message())
        })
    }

    /// The scenario as TOML text with every default filled in.
    pub fn to_toml_string(&self) -> String {
        match toml::to_string(&self.to_tree()) {
            Ok(s) => s,
            Err(e) => panic!("a Scenario always serialises to TOML: {e}"),
        }
    }

    /// Parameters of protocol `name` from `[protocol.<name>]` (defaults if absent).
    pub fn protocol_params<T: DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, ScenarioError> {
        match self.protocol.get(name) {
            None => Ok(T::default()),
            Some(v) => v.clone().try_into().map_err(|e: toml::de::Error| {
                serde_error(&self.name, format!("protocol.{name}"), e.message())
            }),
        }
    }

    /// Total consensus nodes.
    pub fn total_nodes(&self) -> u64 {
        u64::from(self.shards) * u64::from(self.nodes_per_shard)
    }

    /// Check everything that does not need the protocol (see
    /// [`crate::protocols::validate`] for the full check).
    pub fn validate_basic(&self) -> Result<(), ScenarioError> {
        let bad = |path: &str, message: String| ScenarioError::InvalidValue {
            source_name: self.name.clone(),
            path: path.to_string(),
            message,
        };
        let nonneg = |path: &str, x: f64| -> Result<(), ScenarioError> {
            if x.is_finite() && x >= 0.0 {
                Ok(())
            } else {
                Err(bad(path, format!("must be a finite number >= 0, got {x}")))
            }
        };
        if self.shards == 0 {
            return Err(bad("shards", "must be at least 1".into()));
        }
        if self.nodes_per_shard == 0 {
            return Err(bad("nodes_per_shard", "must be at least 1".into()));
        }
        if self.total_nodes() > MAX_NODES {
            return Err(bad(
                "nodes_per_shard",
                format!("shards * nodes_per_shard must be at most {MAX_NODES}"),
            ));
        }
        nonneg("duration_s", self.duration_s)?;
        if self.duration_s <= 0.0 {
            return Err(bad("duration_s", "must be positive".into()));
        }
        nonneg("warmup_s", self.warmup_s)?;
        if self.warmup_s >= self.duration_s {
            return Err(bad(
                "warmup_s",
                format!("must be less than duration_s ({})", self.duration_s),
            ));
        }
        nonneg("offered_tps", self.offered_tps)?;
        if let Some(f) = self.cross_shard_fraction {
            if !(0.0..=1.0).contains(&f) {
                return Err(bad(
                    "cross_shard_fraction",
                    format!("must be in [0, 1], got {f}"),
                ));
            }
        }
        nonneg("client_timeout_ms", self.client_timeout_ms)?;
        if self.client_timeout_ms > MAX_CLIENT_TIMEOUT_MS {
            return Err(bad(
                "client_timeout_ms",
                format!(
                    "must be at most {MAX_CLIENT_TIMEOUT_MS} (0 disables resends), got {}",
                    self.client_timeout_ms
                ),
            ));
        }
        if self.client_retries > MAX_CLIENT_RETRIES {
            return Err(bad(
                "client_retries",
                format!(
                    "must be in 0..={MAX_CLIENT_RETRIES}, got {}",
                    self.client_retries
                ),
            ));
        }
        if self.block_max_tx == 0 {
            return Err(bad("block_max_tx", "must be at least 1".into()));
        }
        if self.block_max_bytes == 0 {
            return Err(bad("block_max_bytes", "must be at least 1".into()));
        }
        nonneg("batch_timeout_ms", self.batch_timeout_ms)?;
        nonneg("network.loss", self.network.loss)?;
        if self.network.loss > 1.0 {
            return Err(bad("network.loss", "must be in [0, 1]".into()));
        }
        self.network
            .jitter
            .validate()
            .map_err(|m| bad("network.jitter", m))?;
        for (i, l) in self.network.links.iter().enumerate() {
            if l.from as u64 >= self.total_nodes() || l.to as u64 >= self.total_nodes() {
                return Err(bad(
                    &format!("network.links[{i}]"),
                    format!("node out of range 0..{}", self.total_nodes()),
                ));
            }
            if let Some(p) = l.loss {
                if !(0.0..=1.0).contains(&p) {
                    return Err(bad(
                        &format!("network.links[{i}].loss"),
                        "must be in [0, 1]".into(),
                    ));
                }
            }
            if let Some(ms) = l.latency_ms {
                nonneg(&format!("network.links[{i}].latency_ms"), ms)?;
            }
        }
        Topology::new(&self.network, self.total_nodes() as usize, &[])
            .map_err(|m| bad("network", m))?;
        let c = &self.node;
        if !c.hash_ns_per_byte.is_finite() || c.hash_ns_per_byte < 0.0 {
            return Err(bad(
                "node.hash_ns_per_byte",
                "must be finite and >= 0".into(),
            ));
        }
        if c.cores == 0 || c.cores > 1024 {
            return Err(bad("node.cores", "must be in 1..=1024".into()));
        }
        if c.max_inbox == 0 {
            return Err(bad("node.max_inbox", "must be at least 1".into()));
        }
        if !self.metrics.timeseries_bucket_s.is_finite() || self.metrics.timeseries_bucket_s <= 0.0
        {
            return Err(bad(
                "metrics.timeseries_bucket_s",
                "must be positive".into(),
            ));
        }
        let buckets = self.duration_s / self.metrics.timeseries_bucket_s;
        if buckets > 1_000_000.0 {
            return Err(bad(
                "metrics.timeseries_bucket_s",
                "more than 1,000,000 time-series buckets".into(),
            ));
        }
        self.workload
            .validate()
            .map_err(|e| bad("workload", e.to_string()))?;
        self.consortium
            .validate()
            .map_err(|e| bad("consortium", e.to_string()))?;
        for (i, f) in self.faults.iter().enumerate() {
            f.validate(
                self.total_nodes() as usize,
                &self.network.regions,
                self.duration_s,
            )
            .map_err(|m| bad(&format!("faults[{i}] ({})", f.kind()), m))?;
        }
        let txs = self.offered_tps * self.duration_s;
        let est =
            (txs * ESTIMATED_BYTES_PER_TX as f64) as u64 / (1024 * 1024) + self.total_nodes() / 16;
        if est > MAX_ESTIMATED_MEMORY_MIB {
            return Err(ScenarioError::TooLarge {
                estimated_mib: est,
                limit_mib: MAX_ESTIMATED_MEMORY_MIB,
                what: format!(
                    "{:.0} transactions (offered_tps {} x duration_s {}) at about {ESTIMATED_BYTES_PER_TX} bytes each",
                    txs, self.offered_tps, self.duration_s
                ),
            });
        }
        Ok(())
    }
}

/// Turn a serde message into a [`ScenarioError`]; an `unknown field` message
/// becomes [`ScenarioError::UnknownField`] with the closest allowed name.
fn serde_error(source_name: &str, path: String, message: &str) -> ScenarioError {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, tail)) = rest.split_once('`') {
            let allowed: Vec<String> = tail
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            let full = if path.is_empty() || path.ends_with(field) {
                path.clone()
            } else {
                format!("{path}.{field}")
            };
            return ScenarioError::UnknownField {
                source_name: source_name.to_string(),
                path: if full.is_empty() {
                    field.to_string()
                } else {
                    full
                },
                suggestion: suggest(field, &allowed),
                allowed,
            };
        }
    }
    ScenarioError::InvalidValue {
        source_name: source_name.to_string(),
        path,
        message: message.to_string(),
    }
}

/// The allowed name closest to `given` (Jaro-Winkler similarity above 0.8).
fn suggest(given: &str, allowed: &[String]) -> Option<String> {
    allowed
        .iter()
        .map(|a| (strsim::jaro_winkler(a, given), a))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| a.clone())
}

/// Set `key` (dotted) in `tree` to `value` parsed as a TOML value (falling back to a string).
pub fn apply_override_tree(
    tree: &mut toml::Table,
    key: &str,
    value: &str,
) -> Result<(), ScenarioError> {
    let bad = |message: String| ScenarioError::BadOverride {
        key: key.to_string(),
        message,
    };
    let parts: Vec<&str> = key.split('.').collect();
    if key.is_empty() || parts.iter().any(|p| p.trim().is_empty()) {
        return Err(bad(
            "the key must be a dotted path like `network.loss`".into()
        ));
    }
    let parsed: toml::Value = match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.to_string())),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let mut cur = tree;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur.insert(p.to_string(), parsed);
            return Ok(());
        }
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            other => {
                return Err(bad(format!(
                    "`{}` is a {}, not a table",
                    parts[..=i].join("."),
                    other.type_str()
                )))
            }
        };
    }
    Ok(())
}

fn check_unknown(
    tree: &toml::Table,
    known: &toml::Table,
    prefix: &str,
    source: &str,
) -> Result<(), ScenarioError> {
    for (k, v) in tree {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let optional = OPTIONAL_KEYS
            .iter()
            .any(|(p, key)| *p == prefix && key == k);
        match known.get(k) {
            None if optional => {}
            None => {
                let mut allowed: Vec<String> = known.keys().cloned().collect();
                allowed.extend(
                    OPTIONAL_KEYS
                        .iter()
                        .filter(|(p, _)| *p == prefix)
                        .map(|(_, k)| k.to_string()),
                );
                allowed.sort();
                let suggestion = suggest(k, &allowed);
                return Err(ScenarioError::UnknownField {
                    source_name: source.to_string(),
                    path,
                    suggestion,
                    allowed,
                });
            }
            Some(toml::Value::Table(kt)) if !FREE_FORM.contains(&path.as_str()) => {
                if let toml::Value::Table(vt) = v {
                    check_unknown(vt, kt, &path, source)?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The dotted path of the key on the line containing byte `offset` of TOML text
/// written by `toml::to_string` (`[table]` headers then `key = value` lines).
fn path_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let mut table = String::new();
    for l in text[..line_start].lines().rev() {
        let t = l.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').to_string();
            break;
        }
    }
    let line_t = line.trim();
    if line_t.starts_with('[') {
        return line_t.trim_matches(|c| c == '[' || c == ']').to_string();
    }
    let key = line.split('=').next().unwrap_or("").trim().to_string();
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}
