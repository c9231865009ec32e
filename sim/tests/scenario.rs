//! Scenario parsing, overrides and validation errors.

use sim::{builtin, Scenario, ScenarioError};

#[test]
fn three_line_scenario_gets_defaults() {
    let s = Scenario::from_toml_str(
        "name = \"tiny\"\nconsensus = \"sequencer\"\noffered_tps = 200\n",
        "tiny.toml",
    )
    .expect("parse");
    assert_eq!(s.name, "tiny");
    assert_eq!(s.offered_tps, 200.0);
    assert_eq!(s.nodes_per_shard, Scenario::default().nodes_per_shard);
    sim::protocols::validate(&s).expect("valid");
}

#[test]
fn unknown_field_suggests_the_closest() {
    let e = Scenario::from_toml_str("duratoin_s = 5\n", "x.toml").expect_err("unknown");
    match &e {
        ScenarioError::UnknownField {
            source_name,
            path,
            suggestion,
            ..
        } => {
            assert_eq!(source_name, "x.toml");
            assert_eq!(path, "duratoin_s");
            assert_eq!(suggestion.as_deref(), Some("duration_s"));
        }
        other => panic!("wrong error {other:?}"),
    }
    assert!(e.to_string().contains("did you mean `duration_s`"), "{e}");
    let e = Scenario::from_toml_str("[network]\nuplod_mbps = 5\n", "y.toml")
        .expect_err("unknown nested");
    assert!(
        matches!(&e, ScenarioError::UnknownField { path, suggestion, .. }
        if path == "network.uplod_mbps" && suggestion.as_deref() == Some("upload_mbps")),
        "{e:?}"
    );
    let e = Scenario::from_toml_str("[workload.imaging]\nmdoe = \"anchor\"\n", "z.toml")
        .expect_err("unknown in workload");
    assert!(
        matches!(&e, ScenarioError::UnknownField { suggestion, .. } if suggestion.as_deref() == Some("mode")),
        "{e:?}"
    );
    assert!(e.is_bad_input());
}

#[test]
fn wrong_type_names_the_field() {
    let e = Scenario::from_toml_str("shards = \"two\"\n", "t.toml").expect_err("type");
    match &e {
        ScenarioError::InvalidValue {
            source_name, path, ..
        } => {
            assert_eq!(source_name, "t.toml");
            assert_eq!(path, "shards");
        }
        other => panic!("wrong error {other:?}"),
    }
    let e = Scenario::from_toml_str("[node]\nverify_ns = -3\n", "t.toml").expect_err("type");
    assert!(
        matches!(&e, ScenarioError::InvalidValue { path, .. } if path == "node.verify_ns"),
        "{e:?}"
    );
    let e = Scenario::from_toml_str("shards = [", "broken.toml").expect_err("syntax");
    assert!(matches!(e, ScenarioError::Syntax { .. }));
}

#[test]
fn overrides_apply_and_bad_ones_fail() {
    let mut s = builtin::get("default").expect("default");
    s.apply_override("shards", "3").expect("shards");
    s.apply_override("network.loss", "0.01").expect("loss");
    s.apply_override("workload.imaging.mode", "onchain")
        .expect("imaging mode");
    s.apply_override("name", "hello world")
        .expect("string fallback");
    assert_eq!(s.shards, 3);
    assert_eq!(s.network.loss, 0.01);
    assert_eq!(s.name, "hello world");
    assert_eq!(s.workload.imaging.mode, workloads::ImagingMode::Onchain);
    let e = s
        .clone()
        .apply_override("shards.count", "3")
        .expect_err("not a table");
    assert!(matches!(e, ScenarioError::BadOverride { .. }), "{e:?}");
    let e = s.clone().apply_override("shard", "3").expect_err("unknown");
    assert!(
        matches!(&e, ScenarioError::UnknownField { suggestion, .. } if suggestion.as_deref() == Some("shards")),
        "{e:?}"
    );
    let e = s
        .clone()
        .apply_override("offered_tps", "lots")
        .expect_err("type");
    assert!(
        matches!(&e, ScenarioError::InvalidValue { path, .. } if path == "offered_tps"),
        "{e:?}"
    );
    let t = Scenario::from_toml_str_with_overrides(
        "shards = 1\n",
        "f.toml",
        &[("nodes_per_shard".into(), "7".into())],
    )
    .expect("with overrides");
    assert_eq!(t.nodes_per_shard, 7);
}

#[test]
fn validation_rejects_bad_scenarios() {
    let ok = builtin::get("default").expect("default");
    let check = |f: &dyn Fn(&mut Scenario)| {
        let mut s = ok.clone();
        f(&mut s);
        sim::protocols::validate(&s).expect_err("should be rejected")
    };
    check(&|s| s.shards = 0);
    check(&|s| s.offered_tps = f64::NAN);
    check(&|s| s.offered_tps = -1.0);
    check(&|s| s.network.latency_ms.pop().map(|_| ()).unwrap_or(()));
    check(&|s| s.consensus = "paxos".into());
    check(&|s| s.offered_tps = 1e9);
    let e = check(&|s| {
        s.faults =
            Scenario::from_toml_str("[[faults]]\nkind = \"crash\"\nnode = 99\nat_s = 1\n", "f")
                .expect("faults")
                .faults
    });
    assert!(e.to_string().contains("node 99"), "{e}");
    let e = check(&|s| {
        s.faults = Scenario::from_toml_str(
            "[[faults]]\nkind = \"byzantine\"\nnodes = [1, 2]\nbehaviour = \"equivocate\"\n",
            "f",
        )
        .expect("faults")
        .faults
    });
    // The default is PBFT with 4 nodes per shard: f = 1, so two Byzantine nodes of shard 0 are refused.
    assert!(e.to_string().contains("tolerates at most 1"), "{e}");
    let e = check(&|s| s.consensus = "paxos".into());
    assert!(
        e.to_string().contains("sequencer"),
        "allowed names listed: {e}"
    );
}

#[test]
fn resolved_scenario_round_trips() {
    let s = builtin::get("default").expect("default");
    let text = s.to_toml_string();
    let back = Scenario::from_toml_str(&text, "resolved").expect("reparse");
    assert_eq!(s, back);
    for (name, _) in builtin::list() {
        let b = builtin::get(name).expect("builtin parses");
        sim::protocols::validate(&b).expect("builtin valid");
    }
}
