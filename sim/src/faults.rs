//! Faults on a schedule (`[[faults]]` in a scenario).
//!
//! Each fault has a start (`at_s`) and usually an end (`until_s`, or `recover_s`
//! for crashes); both are kernel events and appear in the event trace. Faults are
//! deterministic: they happen exactly when scheduled; any randomness they cause
//! (raised loss) is drawn from the network's own streams.

use crate::protocol::{ByzantineBehaviour, NodeId};
use serde::{Deserialize, Serialize};

/// Largest CPU slowdown factor of a `slow` fault (a named limit).
pub const MAX_SLOW_FACTOR: f64 = 1_000.0;
/// Largest added one-way latency of a `latency` fault, ms (a named limit).
pub const MAX_EXTRA_LATENCY_MS: f64 = 600_000.0;

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultSpec {
    /// Crash `node` at `at_s`; restart it at `recover_s` (never, if absent).
    Crash {
        /// The node.
        node: NodeId,
        /// Crash time, s.
        at_s: f64,
        /// Recovery time, s.
        #[serde(default)]
        recover_s: Option<f64>,
    },
    /// Cut `nodes` (plus every node of `region`, if given) off from the rest
    /// between `at_s` and `until_s`; `one_way` cuts only messages from the set out.
    Partition {
        /// Nodes on one side.
        #[serde(default)]
        nodes: Vec<NodeId>,
        /// A whole region on that side.
        #[serde(default)]
        region: Option<String>,
        /// Start, s.
        at_s: f64,
        /// Heal, s (never, if absent).
        #[serde(default)]
        until_s: Option<f64>,
        /// Only messages leaving the set are cut.
        #[serde(default)]
        one_way: bool,
    },
    /// Raise loss on every link of `node`, on the link `from -> to`, or, with
    /// neither given, on every link of the network (a loss window).
    Loss {
        /// A node (all its links).
        #[serde(default)]
        node: Option<NodeId>,
        /// Link sender.
        #[serde(default)]
        from: Option<NodeId>,
        /// Link receiver.
        #[serde(default)]
        to: Option<NodeId>,
        /// Added loss probability (combined as independent losses).
        loss: f64,
        /// Start, s.
        at_s: f64,
        /// End, s.
        #[serde(default)]
        until_s: Option<f64>,
    },
    /// Add latency on every link of `node`, on the link `from -> to`, or, with
    /// neither given, on every link of the network.
    Latency {
        /// A node (all its links).
        #[serde(default)]
        node: Option<NodeId>,
        /// Link sender.
        #[serde(default)]
        from: Option<NodeId>,
        /// Link receiver.
        #[serde(default)]
        to: Option<NodeId>,
        /// Added one-way latency, ms.
        extra_ms: f64,
        /// Start, s.
        at_s: f64,
        /// End, s.
        #[serde(default)]
        until_s: Option<f64>,
    },
    /// Multiply `node`'s CPU costs by `factor` between `at_s` and `until_s`.
    Slow {
        /// The node.
        node: NodeId,
        /// CPU slowdown factor (> 0; 2 = twice as slow).
        factor: f64,
        /// Start, s.
        at_s: f64,
        /// End, s.
        #[serde(default)]
        until_s: Option<f64>,
    },
    /// Mark `nodes` Byzantine with `behaviour` from `at_s` (default 0) to `until_s`.
    Byzantine {
        /// The nodes.
        nodes: Vec<NodeId>,
        /// What they do (the protocol decides what it means).
        behaviour: ByzantineBehaviour,
        /// Start, s.
        #[serde(default)]
        at_s: f64,
        /// End, s.
        #[serde(default)]
        until_s: Option<f64>,
    },
}

impl FaultSpec {
    /// Short name of the fault kind (for traces and messages).
    pub fn kind(&self) -> &'static str {
        match self {
            FaultSpec::Crash { .. } => "crash",
            FaultSpec::Partition { .. } => "partition",
            FaultSpec::Loss { .. } => "loss",
            FaultSpec::Latency { .. } => "latency",
            FaultSpec::Slow { .. } => "slow",
            FaultSpec::Byzantine { .. } => "byzantine",
        }
    }

    /// Start and (optional) end time, s.
    pub fn window_s(&self) -> (f64, Option<f64>) {
        match *self {
            FaultSpec::Crash {
                at_s, recover_s, ..
            } => (at_s, recover_s),
            FaultSpec::Partition { at_s, until_s, .. }
            | FaultSpec::Loss { at_s, until_s, .. }
            | FaultSpec::Latency { at_s, until_s, .. }
            | FaultSpec::Slow { at_s, until_s, .. }
            | FaultSpec::Byzantine { at_s, until_s, .. } => (at_s, until_s),
        }
    }

    /// Every node id the fault names explicitly.
    pub fn named_nodes(&self) -> Vec<NodeId> {
        match self {
            FaultSpec::Crash { node, .. } | FaultSpec::Slow { node, .. } => vec![*node],
            FaultSpec::Partition { nodes, .. } | FaultSpec::Byzantine { nodes, .. } => {
                nodes.clone()
            }
            FaultSpec::Loss { node, from, to, .. } | FaultSpec::Latency { node, from, to, .. } => {
                [*node, *from, *to].into_iter().flatten().collect()
            }
        }
    }

    /// Check the fault against a run of `n_nodes` nodes and `regions`; the message
    /// names the problem (the caller adds the field path).
    pub fn validate(
        &self,
        n_nodes: usize,
        regions: &[String],
        duration_s: f64,
    ) -> Result<(), String> {
        for n in self.named_nodes() {
            if n as usize >= n_nodes {
                return Err(format!("node {n} does not exist (nodes are 0..{n_nodes})"));
            }
        }
        let (at, until) = self.window_s();
        if !at.is_finite() || at < 0.0 {
            return Err(format!("start time must be finite and >= 0, got {at}"));
        }
        if let Some(u) = until {
            if !u.is_finite() || u < at {
                return Err(format!(
                    "end time {u} must be finite and not before the start {at}"
                ));
            }
        }
        let _ = duration_s;
        let mut seen = std::collections::BTreeSet::new();
        for n in self.named_nodes() {
            if matches!(
                self,
                FaultSpec::Partition { .. } | FaultSpec::Byzantine { .. }
            ) && !seen.insert(n)
            {
                return Err(format!("node {n} is listed twice in `nodes`"));
            }
        }
        match self {
            FaultSpec::Partition { nodes, region, .. } => {
                if let Some(r) = region {
                    if !regions.iter().any(|x| x == r) {
                        return Err(format!(
                            "unknown region {r:?}; allowed: {}",
                            regions.join(", ")
                        ));
                    }
                } else if nodes.is_empty() {
                    return Err("a partition needs `nodes` or `region`".into());
                }
            }
            FaultSpec::Loss {
                node,
                from,
                to,
                loss,
                ..
            } => {
                check_target(*node, *from, *to)?;
                if !(0.0..=1.0).contains(loss) {
                    return Err(format!("loss must be in [0, 1], got {loss}"));
                }
            }
            FaultSpec::Latency {
                node,
                from,
                to,
                extra_ms,
                ..
            } => {
                check_target(*node, *from, *to)?;
                if !extra_ms.is_finite() || *extra_ms < 0.0 || *extra_ms > MAX_EXTRA_LATENCY_MS {
                    return Err(format!(
                        "extra_ms must be in [0, {MAX_EXTRA_LATENCY_MS}], got {extra_ms}"
                    ));
                }
            }
            FaultSpec::Slow { factor, .. } => {
                if !factor.is_finite() || *factor <= 0.0 || *factor > MAX_SLOW_FACTOR {
                    return Err(format!(
                        "factor must be a number in (0, {MAX_SLOW_FACTOR}] (2 = twice as slow), got {factor}"
                    ));
                }
            }
            FaultSpec::Byzantine { nodes, .. } => {
                if nodes.is_empty() {
                    return Err("`nodes` must name at least one node".into());
                }
            }
            FaultSpec::Crash { .. } => {}
        }
        Ok(())
    }
}

fn check_target(
    node: Option<NodeId>,
    from: Option<NodeId>,
    to: Option<NodeId>,
) -> Result<(), String> {
    match (node, from, to) {
        (Some(_), None, None) | (None, Some(_), Some(_)) | (None, None, None) => Ok(()),
        _ => {
            Err("give either `node`, or both `from` and `to`, or none of them (every link)".into())
        }
    }
}
