//! Same scenario + seed ⇒ same digest and summary; different seed ⇒ different digest.

use sim::{builtin, run, RunOptions, Scenario};

fn strip_wall(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        for k in ["wall_time_s", "events_per_wall_s", "sim_s_per_wall_s"] {
            o.remove(k);
        }
    }
    v
}

fn small() -> Scenario {
    let mut s = builtin::get("default").expect("default scenario");
    s.duration_s = 4.0;
    s.warmup_s = 1.0;
    s.offered_tps = 2_000.0;
    s.shards = 2;
    s
}

#[test]
fn same_seed_same_digest_and_summary() {
    let s = small();
    let a = run(&s, &RunOptions::default()).expect("run a");
    let b = run(&s, &RunOptions::default()).expect("run b");
    assert!(
        a.committed_tx() > 1_000,
        "too few commits: {}",
        a.committed_tx()
    );
    assert_eq!(a.trace_digest, b.trace_digest);
    assert_eq!(strip_wall(a.summary_json()), strip_wall(b.summary_json()));
    assert_eq!(a.timeseries_csv(), b.timeseries_csv());
    assert_eq!(a.latency_csv(), b.latency_csv());
}

#[test]
fn different_seed_different_digest() {
    let s = small();
    let mut s2 = s.clone();
    s2.seed += 1;
    let a = run(&s, &RunOptions::default()).expect("run a");
    let b = run(&s2, &RunOptions::default()).expect("run b");
    assert_ne!(a.trace_digest, b.trace_digest);
}

#[test]
fn default_scenario_summary_is_sane() {
    let r = run(
        &builtin::get("default").expect("default"),
        &RunOptions::default(),
    )
    .expect("run");
    let j = r.summary_json();
    println!("{}", serde_json::to_string_pretty(&j).expect("json"));
    let tput = r.throughput_tps();
    // The default offers 2000 tx/s to 4 PBFT shards of 4 nodes, far below capacity.
    assert_eq!(j["consensus"], "pbft");
    assert_eq!(j["shards"], 4);
    assert!((1_800.0..2_200.0).contains(&tput), "throughput {tput}");
    assert!(
        j["cross_shard"]["fraction"].as_f64().unwrap_or(0.0) > 0.0,
        "a consortium over 4 shards has cross-shard traffic"
    );
    assert_eq!(j["invariants"]["violations"], 0);
    assert!(
        r.latency_ms.p50 > 10.0,
        "p50 {} ms should include WAN latency",
        r.latency_ms.p50
    );
    assert!(r.invariants_checked() > 0);
    for key in [
        "scenario",
        "seed",
        "consensus",
        "shards",
        "nodes",
        "sim_time_s",
        "wall_time_s",
        "events",
        "events_per_wall_s",
        "submitted_tx",
        "committed_tx",
        "rejected_tx",
        "aborted_tx",
        "throughput_tps",
        "latency_ms",
        "messages",
        "cross_shard",
        "forks",
        "view_changes",
        "trace_digest",
        "invariants",
        "blocks_committed",
        "offered_tps",
        "sim_s_per_wall_s",
    ] {
        assert!(j.get(key).is_some(), "summary lacks {key}");
    }
    assert_eq!(j["trace_digest"].as_str().map(str::len), Some(64));
}

#[test]
#[ignore = "prints a summary line per built-in scenario; run with --ignored"]
fn print_builtins() {
    for (name, _) in builtin::list() {
        let s = builtin::get(name).expect("builtin");
        let r = run(&s, &RunOptions::default()).expect("run");
        let j = r.summary_json();
        println!(
            "{name}: tput {} offered {} p50 {} p99 {} rejected {} aborted {} cross {} events {} wall {:.2}s",
            j["throughput_tps"], j["offered_tps"], j["latency_ms"]["p50"], j["latency_ms"]["p99"], j["rejected_tx"],
            j["aborted_tx"], j["cross_shard"]["fraction"], j["events"], r.wall_time_s
        );
    }
}

#[test]
fn cross_shard_fraction_runs_two_phase_commit() {
    let mut s = small();
    s.apply_override("cross_shard_fraction", "0.5")
        .expect("override");
    s.apply_override("shards", "4").expect("override");
    let r = run(&s, &RunOptions::default()).expect("run");
    let j = r.summary_json();
    let frac = j["cross_shard"]["fraction"].as_f64().expect("fraction");
    assert!(frac >= 0.45, "cross-shard fraction {frac}");
    assert!(
        j["cross_shard"]["latency_ms_p50"].as_f64()
            > j["cross_shard"]["single_shard_latency_ms_p50"].as_f64(),
        "2PC should take longer than a single-shard commit: {}",
        j["cross_shard"]
    );
    assert!(r.committed_tx() > 0);
}

#[test]
fn executed_ledger_exports_and_verifies() {
    let mut s = small();
    s.apply_override("metrics.keep_ledger_log", "true")
        .expect("override");
    s.apply_override("cross_shard_fraction", "0.2")
        .expect("override");
    let r = run(&s, &RunOptions::default()).expect("run");
    let ledger = r.ledger.as_ref().expect("ledger kept");
    let heights: u64 = ledger.shards.iter().map(|l| l.tip().height).sum();
    assert_eq!(
        heights,
        r.blocks_committed(),
        "every committed block executed once"
    );
    let dir = std::env::temp_dir().join(format!("sim-ledger-{}", std::process::id()));
    ledger_core::log::export(ledger, &dir).expect("export");
    ledger_core::log::verify_dir(&dir).expect("exported log verifies");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert!(run(&small(), &RunOptions::default())
        .expect("run")
        .ledger
        .is_none());
}
