//! Swarm test: each seed draws a protocol, a committee, a workload and a random
//! fault schedule within the protocol's tolerance (sim::swarm) and checks that no
//! invariant breaks and that commits resume after the faults.
//!
//! `cargo test` runs [`DEFAULT_SEEDS`] seeds. More:
//! - `LEDGERSIM_SWARM_SEEDS=500 cargo test --release -p sim --test swarm -- --nocapture`
//!   (from `LEDGERSIM_SWARM_START`, default 1), or `ledgersim swarm --seeds 500 --jobs 2`;
//! - one seed: `LEDGERSIM_SWARM_SEED=N cargo test --release -p sim --test swarm -- --nocapture`
//!   or `ledgersim swarm --seed N --show` (prints the drawn scenario as TOML).

use sim::swarm::{self, SwarmFailure};

/// Seeds `cargo test` runs.
const DEFAULT_SEEDS: u64 = 8;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a non-negative integer, got {v:?}"))
    })
}

#[test]
fn swarm_seeds_keep_invariants_and_resume() {
    let seeds: Vec<u64> = match env_u64("LEDGERSIM_SWARM_SEED") {
        Some(s) => vec![s],
        None => {
            let start = env_u64("LEDGERSIM_SWARM_START").unwrap_or(1);
            let n = env_u64("LEDGERSIM_SWARM_SEEDS").unwrap_or(DEFAULT_SEEDS);
            (start..start + n).collect()
        }
    };
    let mut failures = Vec::new();
    for &seed in &seeds {
        let case = swarm::draw(seed);
        match swarm::check(&case) {
            Ok(o) => println!(
                "seed {seed}: ok, {} | before {:.0} tx/s, resumed {:.0} tx/s, {} checks",
                swarm::describe(&case),
                o.before_tps,
                o.resumed_tps,
                o.invariants_checked
            ),
            Err(e) => {
                let msg = format!(
                    "seed {seed}: FAILED ({}): {e}\n  case: {}\n  replay: {}",
                    match e {
                        SwarmFailure::Violation(_) => "safety",
                        SwarmFailure::Stalled(_) => "liveness",
                        SwarmFailure::Error(_) => "error",
                    },
                    swarm::describe(&case),
                    swarm::replay_commands(seed)
                );
                println!("{msg}");
                failures.push(msg);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} swarm seeds failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}

#[test]
fn draws_are_deterministic_and_within_tolerance() {
    for seed in 1..200 {
        let a = swarm::draw(seed);
        let b = swarm::draw(seed);
        assert_eq!(
            a.scenario, b.scenario,
            "seed {seed}: the draw is not a function of the seed"
        );
        let s = &a.scenario;
        sim::protocols::validate(s).unwrap_or_else(|e| panic!("seed {seed}: invalid draw: {e}"));
        let tol = swarm::tolerance(&s.consensus).expect("a swarm protocol");
        let nps = s.nodes_per_shard;
        for f in &s.faults {
            if let (_, Some(end)) = f.window_s() {
                assert!(end <= swarm::FAULTS_UNTIL_S, "seed {seed}: {f:?} ends late");
            }
            match f {
                sim::faults::FaultSpec::Crash { node, .. } => {
                    assert!(
                        a.faulty.contains(node),
                        "seed {seed}: crash outside the faulty set"
                    )
                }
                sim::faults::FaultSpec::Byzantine { nodes, .. } => assert!(
                    nodes.iter().all(|n| a.faulty.contains(n)),
                    "seed {seed}: Byzantine node outside the faulty set"
                ),
                sim::faults::FaultSpec::Partition { until_s, .. } => {
                    assert!(until_s.is_some(), "seed {seed}: a partition must heal")
                }
                _ => assert!(f.window_s().1.is_some(), "seed {seed}: {f:?} must end"),
            }
        }
        for shard in 0..s.shards {
            let k = a.faulty.iter().filter(|&&n| n / nps == shard).count();
            assert!(
                k <= (tol.faulty)(nps as usize),
                "seed {seed}: {k} faulty nodes in shard {shard} of {nps}"
            );
        }
        assert!(a.resume_from_s + swarm::RESUME_WINDOW_S + swarm::RESUME_SLIDE_S <= s.duration_s);
    }
}
