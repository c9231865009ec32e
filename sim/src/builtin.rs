//! Built-in scenarios (the TOML files under `scenarios/`, embedded).

use crate::error::ScenarioError;
use crate::scenario::Scenario;

/// `(name, one-line description, TOML text)` of every built-in scenario.
pub const BUILTINS: &[(&str, &str, &str)] = &[(
    "default",
    "4 nodes in one shard, 1000 tx/s of EHR writes, 10 s",
    include_str!("../../scenarios/default.toml"),
)];

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
