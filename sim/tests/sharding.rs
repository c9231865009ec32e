//! Sharding: scalability shape, cross-shard cost, contention, atomicity under a crash,
//! committee assignment. Each run is a few simulated seconds (the file runs in seconds in
//! release).

use serde_json::Value;
use sim::committee::{organisation_groups, CommitteeAssignment, Committees};
use sim::{builtin, run, RunOptions, RunResult, Scenario};
use workloads::{Consortium, ConsortiumConfig};

fn go(s: &Scenario) -> (RunResult, Value) {
    let r = run(s, &RunOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", s.name));
    let j = r.summary_json();
    assert_eq!(j["invariants"]["violations"], 0);
    (r, j)
}

fn sharded(shards: u32, per_shard_tps: f64) -> Scenario {
    let mut s = builtin::get("sharded").expect("built-in sharded");
    s.shards = shards;
    s.offered_tps = per_shard_tps * f64::from(shards);
    s.duration_s = 3.0;
    s.warmup_s = 1.0;
    s
}

fn f(j: &Value, path: &[&str]) -> f64 {
    let mut v = j;
    for p in path {
        v = &v[*p];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {v}"))
}

#[test]
fn throughput_rises_with_shards() {
    let mut prev = 0.0;
    let mut first = 0.0;
    for shards in [1, 4, 16] {
        let (r, j) = go(&sharded(shards, 1_500.0));
        let t = r.throughput_tps();
        println!(
            "S={shards}: {t:.0} tx/s, cross {:.3}",
            f(&j, &["cross_shard", "fraction"])
        );
        assert!(
            t > prev * 1.5,
            "S={shards}: {t} tx/s, not above {prev} x 1.5"
        );
        if shards == 1 {
            first = t;
        } else {
            let frac = f(&j, &["cross_shard", "fraction"]);
            assert!(
                (frac - 0.1).abs() < 0.02,
                "S={shards}: cross fraction {frac}"
            );
        }
        prev = t;
    }
    assert!(
        prev > 5.0 * first,
        "16 shards: {prev} tx/s vs 1 shard {first}"
    );
}

#[test]
fn cross_shard_fraction_is_tracked_and_costs_throughput_and_latency() {
    let mut prev = f64::INFINITY;
    for target in [0.0, 0.5, 1.0] {
        let mut s = sharded(4, 1_500.0);
        s.cross_shard_fraction = Some(target);
        let (r, j) = go(&s);
        let t = r.throughput_tps();
        let frac = f(&j, &["cross_shard", "fraction"]);
        println!("F={target}: {t:.0} tx/s, measured {frac:.3}");
        assert!(
            (frac - target).abs() < 0.02,
            "target {target}, measured {frac}"
        );
        assert!(t < prev, "F={target}: {t} tx/s not below {prev}");
        prev = t;
        if target == 0.5 {
            let cross = f(&j, &["cross_shard", "latency_ms_p50"]);
            let single = f(&j, &["cross_shard", "single_shard_latency_ms_p50"]);
            assert!(
                cross > 1.3 * single,
                "cross-shard p50 {cross} ms vs single-shard {single} ms"
            );
        }
    }
}

fn payments(locking: &str, hot: f64) -> Value {
    let mut s = builtin::get("default").expect("default");
    let kv = [
        ("consensus", "\"pbft\"".to_string()),
        ("shards", "4".into()),
        ("duration_s", "5".into()),
        ("warmup_s", "1".into()),
        ("offered_tps", "100".into()),
        ("account_locking", format!("\"{locking}\"")),
        ("workload.mix.hospital", "0".into()),
        ("workload.mix.imaging", "0".into()),
        ("workload.mix.claims", "0".into()),
        ("workload.mix.supply_chain", "0".into()),
        ("workload.mix.payment", "1".into()),
        ("consortium.hospitals", "1000".into()),
        ("consortium.patients", "1000".into()),
        ("workload.payment.hot_payer_fraction", hot.to_string()),
    ];
    for (k, v) in kv {
        s.apply_override(k, &v).expect(k);
    }
    go(&s).1
}

#[test]
fn hot_payer_aborts_under_locks_not_under_escrow() {
    let lock_cold = f(&payments("lock", 0.0), &["cross_shard", "abort_rate"]);
    let lock_hot = f(&payments("lock", 0.5), &["cross_shard", "abort_rate"]);
    let escrow_hot = f(&payments("escrow", 0.5), &["cross_shard", "abort_rate"]);
    println!("lock cold {lock_cold}, lock hot {lock_hot}, escrow hot {escrow_hot}");
    assert!(
        lock_hot > 0.2 && lock_hot > 4.0 * lock_cold,
        "hot payer under locks: abort rate {lock_hot} vs {lock_cold} without"
    );
    assert!(escrow_hot < 0.01, "escrow abort rate {escrow_hot}");
}

fn crash_scenario() -> Scenario {
    Scenario::from_toml_str(
        include_str!("../../scenarios/faults/pbft-crash-during-cross-shard.toml"),
        "pbft-crash-during-cross-shard.toml",
    )
    .expect("scenario")
}

/// Transactions submitted before `before_ms` that never became final: (all, cross-shard).
fn never_final(r: &RunResult, before_ms: f64) -> (usize, usize) {
    let csv = r.transactions_csv();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (submit, status, cross) = (col("submit_ms"), col("status"), col("cross_shard"));
    let mut n = (0, 0);
    for l in lines {
        let c: Vec<&str> = l.split(',').collect();
        if c[status] == "pending" && c[submit].parse::<f64>().expect("submit_ms") < before_ms {
            n.0 += 1;
            n.1 += usize::from(c[cross] == "1");
        }
    }
    n
}

#[test]
fn crash_during_cross_shard_commit_completes_atomically() {
    let mut s = crash_scenario();
    s.metrics.record_transactions = true;
    // Anything submitted 3 s before the end has had time to finish (p99 is about 2 s).
    let before_ms = (s.duration_s - 3.0) * 1e3;
    let (r, j) = go(&s);
    let resends = j["client_resends"].as_u64().expect("client_resends");
    let stuck = never_final(&r, before_ms);
    println!("with resends: {stuck:?} never final, {resends} resends");
    assert!(resends > 0, "no operation was resent");
    assert!(f(&j, &["cross_shard", "fraction"]) > 0.45);
    assert_eq!(stuck, (0, 0), "transactions stalled despite resends");
    // Without resends, operations sent to the crashed gateways are lost and their
    // transactions never finish (a half-prepared cross-shard tx keeps its locks).
    let mut off = s.clone();
    off.client_timeout_ms = 0.0;
    let (r0, _) = go(&off);
    let stuck0 = never_final(&r0, before_ms);
    println!("without resends: {stuck0:?} never final");
    assert!(
        stuck0.1 > 50,
        "the crash should strand cross-shard transactions without resends: {stuck0:?}"
    );
}

#[test]
fn committee_assignment_is_deterministic_and_by_organisation_groups_orgs() {
    let cfg = ConsortiumConfig {
        hospitals: 12,
        patients: 1000,
        ..ConsortiumConfig::default()
    };
    let c = Consortium::new(&cfg, 7).expect("consortium");
    for mode in [
        CommitteeAssignment::Sequential,
        CommitteeAssignment::Random,
        CommitteeAssignment::ByOrganisation,
    ] {
        let a = Committees::assign(mode, 8, 5, 42, &c);
        assert_eq!(a, Committees::assign(mode, 8, 5, 42, &c), "{mode:?}");
        let mut all: Vec<u32> = a.members.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..40).collect::<Vec<_>>(),
            "{mode:?}: every node once"
        );
        for (s, m) in a.members.iter().enumerate() {
            assert_eq!(m.len(), 5);
            assert!(m.iter().all(|&n| a.shard_of[n as usize] == s as u32));
        }
    }
    let r1 = Committees::assign(CommitteeAssignment::Random, 8, 5, 1, &c);
    let r2 = Committees::assign(CommitteeAssignment::Random, 8, 5, 2, &c);
    assert_ne!(r1.members, r2.members, "random assignment ignores the seed");
    let seq = Committees::assign(CommitteeAssignment::Sequential, 8, 5, 1, &c);
    assert_ne!(r1.members, seq.members);

    let b = Committees::assign(CommitteeAssignment::ByOrganisation, 8, 5, 1, &c);
    let groups = organisation_groups(8, &c);
    for (s, m) in b.members.iter().enumerate() {
        for &n in m {
            assert!(
                groups[s].contains(&b.operator[n as usize]),
                "node {n} of shard {s} operated by org {} outside the shard's group {:?}",
                b.operator[n as usize],
                groups[s]
            );
        }
    }
    // Every organisation homed on a shard operates nodes of that shard only.
    for (o, spec) in c.orgs().iter().enumerate() {
        let home = ledger_core::routing::org_shard(spec.id, 8).0;
        for (n, &op) in b.operator.iter().enumerate() {
            if op == o as u32 {
                assert_eq!(
                    b.shard_of[n], home,
                    "org {o} runs node {n} off its home shard"
                );
            }
        }
    }
    // A run with each assignment works and is reproducible.
    for mode in ["random", "by_organisation"] {
        let mut s = sharded(4, 500.0);
        s.duration_s = 2.0;
        s.apply_override("committee_assignment", mode).expect(mode);
        let (a, _) = go(&s);
        let (b, _) = go(&s);
        assert_eq!(a.trace_digest, b.trace_digest, "{mode}");
        assert!(a.committed_tx() > 500, "{mode}: {}", a.committed_tx());
    }
}

#[test]
fn bad_sharding_keys_are_refused_with_the_field() {
    let mut s = builtin::get("sharded").expect("sharded");
    for (k, v) in [
        ("committee_assignment", "\"round_robin\""),
        ("account_locking", "\"mutex\""),
        ("client_retries", "99"),
        ("client_timeout_ms", "-1"),
    ] {
        let e = s
            .apply_override(k, v)
            .and_then(|_| s.validate_basic())
            .expect_err(k);
        assert!(e.to_string().contains(k), "{k}: {e}");
        s = builtin::get("sharded").expect("sharded");
    }
}
