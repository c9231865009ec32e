//! Proof-of-stake: finality with all stake online, no finality (but blocks) with
//! more than a third of the stake offline, finality resuming when it returns,
//! empty and multi-leader slots, determinism and refused settings.

mod common;

use common::{chain, f, go};
use sim::Scenario;

fn scenario(n: u32, duration_s: f64, pos: &str, extra: &str) -> Scenario {
    let defaults: String = [
        ("slot_ms", "1000"),
        ("active_slot_coeff", "0.3"),
        ("epoch_slots", "8"),
        ("vote_offset_slots", "2"),
    ]
    .iter()
    .filter(|(k, _)| !pos.contains(k))
    .map(|(k, v)| format!("{k} = {v}\n"))
    .collect();
    let text = format!(
        "name = \"pos-test\"\nconsensus = \"pos\"\nnodes_per_shard = {n}\nduration_s = {duration_s}\nwarmup_s = 5\noffered_tps = 20\nblock_max_tx = 2000\n{extra}\n[protocol.pos]\n{defaults}{pos}\n"
    );
    match Scenario::from_toml_str(&text, "pos-test") {
        Ok(s) => s,
        Err(e) => panic!("test scenario does not parse: {e}"),
    }
}

/// Crash faults for nodes `0..k` at `at_s` (recovering at `recover_s` if given).
fn crashes(k: u32, at_s: f64, recover_s: Option<f64>) -> String {
    let mut out = String::new();
    for i in 0..k {
        out.push_str(&format!(
            "[[faults]]\nkind = \"crash\"\nnode = {i}\nat_s = {at_s}\n"
        ));
        if let Some(r) = recover_s {
            out.push_str(&format!("recover_s = {r}\n"));
        }
    }
    out
}

#[test]
fn all_online_finalises() {
    let r = go(&scenario(30, 120.0, "", ""));
    let c = chain(&r);
    // 15 epochs of 8 s; votes 2 slots into each epoch.
    assert!(f(&c, "finalized_epoch") >= 10.0, "{c}");
    assert!(
        f(&c, "justified_epoch") >= f(&c, "finalized_epoch") + 1.0,
        "{c}"
    );
    assert!(r.blocks_committed() > 10, "{c}");
    assert!(r.committed_tx() > 0);
    // Finality comes after inclusion.
    assert!(r.inclusion_latency_ms.p50 < r.latency_ms.p50);
    // Ouroboros-style leaders: empty slots and some slots with several leaders.
    assert!(f(&c, "empty_slot_rate") > 0.4, "{c}");
    assert!(f(&c, "multi_leader_slots") >= 1.0, "{c}");
    assert_eq!(r.summary_json()["invariants"]["violations"], 0);
}

#[test]
fn a_third_of_stake_offline_stops_finality_but_not_blocks() {
    // 11 of 30 equal-stake validators (36.7 % of stake) crash at 20 s.
    let r = go(&scenario(30, 120.0, "", &crashes(11, 20.0, None)));
    let c = chain(&r);
    let fin = f(&c, "finalized_epoch");
    assert!(fin >= 1.0, "finality before the crash: {c}");
    assert!(fin <= 3.0, "no finality after 20 s (epoch 2): {c}");
    // Blocks keep coming from the online leaders: a slot has one with
    // probability 1 - 0.7^(19/30), about 0.2, so about 20 blocks in 100 slots.
    let blocks = f(&c, "main_chain_blocks");
    let finalized_h = f(&c, "finalized_height");
    assert!(blocks > finalized_h + 12.0, "{c}");

    // With just under a third offline (9 of 30), finality continues.
    let r2 = go(&scenario(30, 120.0, "", &crashes(9, 20.0, None)));
    assert!(f(&chain(&r2), "finalized_epoch") >= 10.0, "{}", chain(&r2));
}

#[test]
fn finality_resumes_when_stake_returns() {
    let r = go(&scenario(30, 160.0, "", &crashes(11, 20.0, Some(70.0))));
    let c = chain(&r);
    assert!(f(&c, "finalized_epoch") >= 12.0, "{c}");
}

#[test]
fn stake_weights_leadership_and_votes() {
    // One validator holds 70 % of the stake: it leads most slots, and without it
    // nothing can be justified.
    let mut stakes = vec!["1".to_string(); 20];
    stakes[0] = "44.33".into();
    let pos = format!("stakes = [{}]", stakes.join(", "));
    let r = go(&scenario(20, 80.0, &pos, &crashes(1, 0.0, None)));
    let c = chain(&r);
    assert_eq!(f(&c, "finalized_epoch"), 0.0, "{c}");
    assert_eq!(f(&c, "justified_epoch"), 0.0, "{c}");
    assert!(f(&c, "blocks_produced") > 3.0, "{c}");
}

#[test]
fn same_seed_same_digest() {
    let s = scenario(20, 60.0, "", "");
    let a = go(&s);
    let b = go(&s);
    assert_eq!(a.trace_digest, b.trace_digest);
    assert_eq!(chain(&a), chain(&b));
}

#[test]
fn nonsense_settings_are_refused() {
    let bad = |s: Scenario, needle: &str| match sim::protocols::validate(&s) {
        Ok(()) => panic!("accepted: {needle}"),
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains(needle), "error {m:?} does not name {needle:?}");
        }
    };
    bad(
        scenario(10, 60.0, "stakes = [1, 2]", ""),
        "protocol.pos.stakes",
    );
    bad(
        scenario(10, 60.0, "active_slot_coeff = 0", ""),
        "active_slot_coeff",
    );
    bad(
        scenario(10, 60.0, "vote_offset_slots = 8", ""),
        "vote_offset_slots",
    );
    bad(scenario(10, 60.0, "", "shards = 2"), "shards");
    bad(
        scenario(
            10,
            60.0,
            "",
            "[[faults]]\nkind = \"byzantine\"\nnodes = [1]\nbehaviour = \"selfish-mine\"\nat_s = 0\n",
        ),
        "faults[0]",
    );
}
