//! Chained HotStuff: steady commits, leader crash, Byzantine leaders, recovery,
//! determinism and linear message complexity.

use sim::{run, RunOptions, RunResult, Scenario};

fn scenario(n: u32, extra: &str) -> Scenario {
    let text = format!(
        "name = \"hotstuff-test\"\nconsensus = \"hotstuff\"\nshards = 1\nnodes_per_shard = {n}\nduration_s = 10\nwarmup_s = 2\noffered_tps = 1000\n{extra}"
    );
    Scenario::from_toml_str(&text, "test").expect("scenario")
}

fn go(s: &Scenario) -> RunResult {
    run(s, &RunOptions::default()).expect("run")
}

#[test]
fn smoke() {
    for n in [4, 7, 16] {
        let r = go(&scenario(n, ""));
        println!("n={n} {}", serde_json::to_string_pretty(&r.summary_json()).unwrap());
        println!("{}", r.timeseries_csv());
    }
}
