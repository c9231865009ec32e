//! Error types of the simulator.

use crate::kernel::KernelError;

/// A problem with a scenario: always bad input (CLI exit status 2).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    /// The text is not valid TOML.
    #[error("{source_name}: not valid TOML: {message}")]
    Syntax {
        /// File name or other source label.
        source_name: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key that no scenario field has.
    #[error("{source_name}: unknown field `{path}`{}; allowed here: {}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(), allowed.join(", "))]
    UnknownField {
        /// File name or other source label.
        source_name: String,
        /// Dotted path of the unknown key.
        path: String,
        /// The closest known key, if one is close.
        suggestion: Option<String>,
        /// The keys allowed at that level.
        allowed: Vec<String>,
    },
    /// A field has a value of the wrong type or out of range.
    #[error("{source_name}: field `{path}`: {message}")]
    InvalidValue {
        /// File name or other source label.
        source_name: String,
        /// Dotted path of the field (empty if unknown).
        path: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A `--set KEY=VALUE` override that cannot apply.
    #[error("override `{key}`: {message}")]
    BadOverride {
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// `consensus` names no registered protocol.
    #[error("unknown consensus protocol {name:?}; allowed: {}", allowed.join(", "))]
    UnknownProtocol {
        /// The name given.
        name: String,
        /// Registered names.
        allowed: Vec<String>,
    },
    /// A built-in scenario name that does not exist.
    #[error("unknown built-in scenario {name:?}; built-in scenarios: {}", allowed.join(", "))]
    UnknownBuiltin {
        /// The name given.
        name: String,
        /// Built-in names.
        allowed: Vec<String>,
    },
    /// The run would need more memory than the stated bound.
    #[error(
        "the run would need about {estimated_mib} MiB (over the limit of {limit_mib} MiB): {what}"
    )]
    TooLarge {
        /// Estimate, MiB.
        estimated_mib: u64,
        /// Limit, MiB.
        limit_mib: u64,
        /// What drives the estimate.
        what: String,
    },
}

impl ScenarioError {
    /// Whether this is a problem with the user's input (always true: scenario
    /// errors are bad input, exit status 2).
    pub fn is_bad_input(&self) -> bool {
        true
    }
}

/// Errors of a simulation run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario is invalid (bad input).
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A safety invariant was violated: the run stops.
    #[error("invariant violated at t={at_ns} ns: {what} (reproduce with: ledgersim run {scenario} --seed {seed})")]
    InvariantViolated {
        /// The master seed.
        seed: u64,
        /// What broke.
        what: String,
        /// Virtual time of the violation.
        at_ns: u64,
        /// Scenario name.
        scenario: String,
    },
    /// A kernel limit was hit.
    #[error("simulator limit (seed {seed}): {source}")]
    Kernel {
        /// The master seed.
        seed: u64,
        /// The limit.
        source: KernelError,
    },
    /// The ledger refused a block the simulator built (a simulator bug or ledger limit).
    #[error("ledger error on shard {shard} at height {height} (seed {seed}): {message}")]
    Ledger {
        /// The master seed.
        seed: u64,
        /// Shard.
        shard: u32,
        /// Height.
        height: u64,
        /// The ledger's message.
        message: String,
    },
    /// The run was cancelled through [`crate::RunOptions::cancel`] (an interrupt).
    #[error("cancelled")]
    Cancelled,
    /// The workload generator failed.
    #[error("workload: {0}")]
    Workload(String),
    /// Writing the event trace failed.
    #[error("event trace {path}: {source}")]
    Trace {
        /// Trace path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl SimError {
    /// Whether the failure is the user's input (CLI exit 2) rather than a failed run (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, SimError::Scenario(_))
    }
}
