//! Helpers shared by the longest-chain tests (`pow.rs`, `pos.rs`).

use serde_json::Value;
use sim::{run, RunOptions, RunResult, Scenario};

/// Runs `s`, panicking with the error if the run fails.
pub fn go(s: &Scenario) -> RunResult {
    match run(s, &RunOptions::default()) {
        Ok(r) => r,
        Err(e) => panic!("run failed: {e}"),
    }
}

/// The run's `summary.json` `chain` object.
pub fn chain(r: &RunResult) -> Value {
    r.summary_json()["chain"].clone()
}

/// The number at key `k` of a `chain` object.
pub fn f(v: &Value, k: &str) -> f64 {
    match v[k].as_f64() {
        Some(x) => x,
        None => panic!("summary chain.{k} is not a number: {v}"),
    }
}
