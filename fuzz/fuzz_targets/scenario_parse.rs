//! Fuzz target `scenario_parse`: scenario TOML text and `--set` overrides.
//!
//! Input is UTF-8 text. Lines starting with `#set ` are taken as `KEY=VALUE`
//! overrides (as `ledgersim run --set` passes them); the whole text is the scenario
//! file (those lines are TOML comments). Parsing, overriding and full validation
//! (`sim::protocols::validate`) must return `Ok` or a `ScenarioError`, never panic.
//! A scenario that validates must survive the round trip through its resolved TOML
//! (the `scenario.toml` every results directory holds) unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sim::Scenario;

/// Most overrides taken from one input (keeps each iteration cheap).
const MAX_OVERRIDES: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let overrides: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#set "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .take(MAX_OVERRIDES)
        .collect();
    let Ok(scenario) = Scenario::from_toml_str_with_overrides(text, "fuzz.toml", &overrides) else {
        return;
    };
    // Every error is printable (Display must not panic either).
    if let Err(e) = sim::protocols::validate(&scenario) {
        let _ = e.to_string();
        return;
    }
    let resolved = scenario.to_toml_string();
    let again = Scenario::from_toml_str(&resolved, "resolved.toml").unwrap_or_else(|e| {
        panic!("a validated scenario's resolved TOML does not parse: {e}\n{resolved}")
    });
    assert!(
        again == scenario,
        "a validated scenario changed through its resolved TOML:\n{resolved}"
    );
});
