//! The `large` built-in is the reference run of issue 9 (results/benchmarks.md):
//! its shape is part of what the recorded figures mean, so it is pinned here.

/// 16 shards × 7 PBFT replicas in 4 regions, 20,000 tx/s offered, 60 s, and a
/// short run of the same shape commits blocks on every shard without violations.
#[test]
fn large_is_the_reference_shape_and_runs() {
    let s = sim::builtin::get("large").expect("built-in large");
    assert_eq!(s.shards, 16);
    assert_eq!(s.nodes_per_shard, 7);
    assert_eq!(s.consensus, "pbft");
    assert_eq!(s.offered_tps, 20_000.0);
    assert_eq!(s.duration_s, 60.0);
    assert_eq!(s.consortium.regions.len(), 4);

    let mut short = s.clone();
    short.duration_s = 1.5;
    short.warmup_s = 0.5;
    let r = sim::run(&short, &sim::RunOptions::default()).expect("large runs");
    assert!(
        r.blocks_committed() >= 16,
        "every shard should commit within 1.5 s, got {} blocks",
        r.blocks_committed()
    );
    assert!(r.events > 100_000, "only {} events", r.events);
}
