//! The fault-scenario suite (`scenarios/faults/*.toml`): every scenario keeps the
//! safety invariants (a violation stops the run, so a finished run had none) and
//! recovers within its protocol's liveness bound (sim::faultsuite).
//!
//! `cargo test` runs a fast subset ([`FAST`]); the whole suite runs with
//! `LEDGERSIM_FAULT_SUITE=all cargo test --release -p sim --test fault_suite -- --nocapture`
//! or, writing results/faults.md, `ledgersim faults` (docs/reliability.md).

use sim::faultsuite::{self, analyze};
use sim::{run, RunOptions, Scenario};
use std::path::PathBuf;

/// The suite files `cargo test` runs: every fault kind, spread over the protocols.
const FAST: &[&str] = &[
    "pbft-leader-crash",
    "pbft-byzantine-equivocate",
    "pbft-byzantine-withhold",
    "hotstuff-minority-crash",
    "hotstuff-loss",
    // Regressions: HotStuff lost liveness for good after a split without a quorum
    // (views drifted apart) and under f withholding replicas (late votes refused).
    "hotstuff-partition-split",
    "hotstuff-byzantine-withhold",
    "raft-partition-region",
    "raft-slow-node",
    "raft-xshard-crash",
];

fn suite_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/faults"))
}

fn suite() -> Vec<(String, Scenario)> {
    faultsuite::load_dir(&suite_dir()).expect("the suite's scenario files parse")
}

fn check(name: &str, s: &Scenario) -> Result<String, String> {
    let mut s = s.clone();
    faultsuite::prepare(&mut s);
    let r = run(&s, &RunOptions::default()).map_err(|e| format!("{name}: {e}"))?;
    let a = analyze(&r).map_err(|e| format!("{name}: {e}"))?;
    let line = format!(
        "{name}: before {:.0} during {:.0} after {:?} tx/s, recovery {:?} s (bound {} s), outage {} s, view changes {}, checks {}",
        a.before_tps, a.during_tps, a.after_tps.map(|x| x.round()), a.recovery_s, a.bound.bound_s,
        a.longest_outage_s, a.view_changes, a.invariants_checked
    );
    if a.invariants_checked == 0 {
        return Err(format!("{line}: no invariant was checked"));
    }
    if !a.within_bound() {
        return Err(format!(
            "{line}: not recovered within the bound ({})",
            a.bound.rule
        ));
    }
    Ok(line)
}

#[test]
fn suite_files_are_well_formed() {
    let all = suite();
    assert!(all.len() >= 20, "only {} suite files", all.len());
    for (stem, s) in &all {
        assert_eq!(&s.name, stem, "{stem}.toml: name must equal the file stem");
        sim::protocols::validate(s).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let w = faultsuite::fault_window(s).unwrap_or_else(|| panic!("{stem}: no faults"));
        assert!(
            w.start_s > s.warmup_s,
            "{stem}: faults must start after the warm-up"
        );
        assert!(
            s.duration_s <= 20.0,
            "{stem}: keep suite scenarios <= 20 simulated s"
        );
    }
    for fast in FAST {
        assert!(
            all.iter().any(|(n, _)| n == fast),
            "FAST names a missing file {fast}"
        );
    }
    // Every protocol of the suite covers the fault kinds the issue lists.
    for p in ["pbft", "hotstuff", "raft"] {
        let mut kinds = vec![
            "leader-crash",
            "minority-crash",
            "partition-region",
            "loss",
            "slow-node",
            "xshard-crash",
        ];
        if faultsuite::refuses_byzantine(p).is_none() {
            kinds.extend(["byzantine-equivocate", "byzantine-withhold"]);
        }
        for k in kinds {
            let stem = format!("{p}-{k}");
            assert!(
                all.iter().any(|(n, _)| *n == stem),
                "missing scenarios/faults/{stem}.toml"
            );
        }
    }
    let x: Vec<_> = all
        .iter()
        .filter(|(n, _)| n.ends_with("xshard-crash"))
        .collect();
    assert!(x
        .iter()
        .all(|(_, s)| s.shards >= 2 && s.cross_shard_fraction.unwrap_or(0.0) > 0.0));
}

#[test]
fn raft_refuses_byzantine_nodes_with_a_clear_error() {
    let msg = faultsuite::refuses_byzantine("raft").expect("raft must refuse Byzantine nodes");
    assert!(msg.contains("raft tolerates crash faults only"), "{msg}");
    assert!(msg.contains("faults[0]"), "{msg}");
    assert!(faultsuite::refuses_byzantine("pbft").is_none());
    assert!(faultsuite::refuses_byzantine("hotstuff").is_none());
}

#[test]
fn suite_recovers_within_bounds() {
    let which = std::env::var("LEDGERSIM_FAULT_SUITE").unwrap_or_default();
    let mut failures = Vec::new();
    for (name, s) in suite() {
        if which != "all" && !FAST.contains(&name.as_str()) {
            continue;
        }
        match check(&name, &s) {
            Ok(line) => println!("{line}"),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "fault scenarios failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn analysis_sees_an_outage_and_its_recovery() {
    // A leader crash that PBFT recovers from by view change: the outage is visible,
    // and a run cut short right after the crash is reported as not recovered.
    let all = suite();
    let (_, s) = all
        .iter()
        .find(|(n, _)| n == "pbft-leader-crash")
        .expect("file");
    let mut s = s.clone();
    faultsuite::prepare(&mut s);
    let r = run(&s, &RunOptions::default()).expect("run");
    let a = analyze(&r).expect("analysis");
    assert!(a.longest_outage_s >= 1.0, "no outage seen: {a:?}");
    assert!(a.during_tps < 0.9 * a.before_tps, "{a:?}");
    let mut short = s.clone();
    short.faults = vec![sim::faults::FaultSpec::Crash {
        node: 0,
        at_s: 5.0,
        recover_s: None,
    }];
    short.duration_s = 6.5;
    let r = run(&short, &RunOptions::default()).expect("run");
    let a = analyze(&r).expect("analysis");
    assert_eq!(
        a.recovery_s, None,
        "a run that ends in the outage has not recovered: {a:?}"
    );
}

#[test]
fn loss_window_on_every_link_drops_about_that_fraction() {
    let text = "name = \"loss-all\"\nconsensus = \"pbft\"\nnodes_per_shard = 4\nduration_s = 6\nwarmup_s = 1\noffered_tps = 300\n\
[[faults]]\nkind = \"loss\"\nloss = 0.1\nat_s = 0.0\nuntil_s = 6.0\n";
    let s = Scenario::from_toml_str(text, "test").expect("a loss fault without a target parses");
    let r = run(&s, &RunOptions::default()).expect("run");
    let frac = r.dropped_loss as f64 / r.messages_total() as f64;
    assert!((0.07..0.13).contains(&frac), "dropped fraction {frac}");
    // Half a link is refused, naming the fault.
    let bad = text.replace("loss = 0.1\n", "loss = 0.1\nfrom = 1\n");
    let s = Scenario::from_toml_str(&bad, "test").expect("parses");
    let e = sim::protocols::validate(&s).expect_err("`from` without `to` is refused");
    assert!(e.to_string().contains("faults[0] (loss)"), "{e}");
    assert!(e.to_string().contains("both `from` and `to`"), "{e}");
}
