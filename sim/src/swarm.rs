//! Swarm testing (in the spirit of FoundationDB's and TigerBeetle's simulators):
//! each seed draws a protocol, a committee, a workload and a random fault schedule
//! within the protocol's tolerance, runs it, and checks that no invariant broke
//! and that commits resume after the faults end.
//!
//! The draw is a pure function of the seed (the `swarm/draw` stream), so a seed
//! replays exactly: `ledgersim swarm --seed N` (`--show` prints the scenario as
//! TOML instead, which `ledgersim run` accepts) or
//! `LEDGERSIM_SWARM_SEED=N cargo test --release -p sim --test swarm -- --nocapture`.
//!
//! # What a seed may draw
//! Per shard, a *faulty set* of at most the protocol's tolerance (f = (n-1)/3 for
//! BFT, a minority (n-1)/2 for Raft); each faulty node gets one of: a crash
//! (recovering or permanent), isolation by a partition that heals, or (BFT only)
//! Byzantine behaviour (equivocate, withhold, silent; for a window or for good).
//! Half the time the faulty set is exactly the tolerance, and 40% of the time its
//! nodes act together (same kind, window and behaviour). On top, up to
//! [`MAX_EXTRA_FAULTS`] of: CPU slowdowns (2x to 10x) of any node, a loss window on
//! every link (1% to 10%), latency spikes (50 to 300 ms), a split of one shard's
//! committee into two random halves, and a partition of a whole region; splits
//! and partitions may leave no side with a quorum, and they heal. Every windowed fault ends by
//! [`FAULTS_UNTIL_S`]; the run lasts until at least the protocol's liveness bound
//! (see [`crate::faultsuite::liveness_bound`]) plus [`RESUME_WINDOW_S`] after that.

use crate::faults::FaultSpec;
use crate::faultsuite;
use crate::protocol::{ByzantineBehaviour, NodeId};
use crate::run::{run, RunOptions};
use crate::scenario::Scenario;
use crate::SimError;
use simrand::Stream;

/// Protocols the swarm draws from (each needs a [`tolerance`]).
pub const SWARM_PROTOCOLS: &[&str] = &["pbft", "hotstuff", "raft"];
/// Warm-up of every swarm run, s.
pub const WARMUP_S: f64 = 1.0;
/// No fault starts before this, s.
pub const FAULTS_FROM_S: f64 = 2.0;
/// Every windowed fault has ended by this, s.
pub const FAULTS_UNTIL_S: f64 = 12.0;
/// Shortest swarm run, s.
pub const MIN_DURATION_S: f64 = 20.0;
/// Commits must have resumed in this last stretch of the run, s (longer than the
/// commit bursts of round-robin HotStuff with two consecutive leaders down, about
/// 3 s apart).
pub const RESUME_WINDOW_S: f64 = 4.0;
/// ... at this fraction of the pre-fault committed rate at least. Low on purpose:
/// with a leader down for good, round-robin HotStuff commits once per rotation
/// and small blocks cap its rate far below the load; the suite measures rates,
/// the swarm asks whether commits resume at all.
pub const RESUME_FRACTION: f64 = 0.1;
/// The resume check slides its window over this much more of the run, s: every
/// [`RESUME_WINDOW_S`] window from the resume time on must pass.
pub const RESUME_SLIDE_S: f64 = 2.0;
/// Most extra (non-faulty-set) faults per seed.
pub const MAX_EXTRA_FAULTS: u64 = 3;

/// What a protocol tolerates, per committee of `n` nodes.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Committee sizes the swarm draws.
    pub sizes: &'static [u32],
    /// Nodes that may be faulty (crashed, isolated or Byzantine) at once.
    pub faulty: fn(usize) -> usize,
    /// Whether faulty nodes may be Byzantine.
    pub byzantine: bool,
}

fn bft_f(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

fn minority(n: usize) -> usize {
    n.saturating_sub(1) / 2
}

/// The tolerance the swarm assumes for `protocol`; `None` if it has none here.
pub fn tolerance(protocol: &str) -> Option<Tolerance> {
    match protocol {
        "pbft" | "hotstuff" => Some(Tolerance {
            sizes: &[4, 7],
            faulty: bft_f,
            byzantine: true,
        }),
        "raft" => Some(Tolerance {
            sizes: &[3, 5],
            faulty: minority,
            byzantine: false,
        }),
        _ => None,
    }
}

/// One drawn swarm case.
#[derive(Clone, Debug)]
pub struct SwarmCase {
    /// The swarm seed (also the scenario's master seed).
    pub seed: u64,
    /// The scenario to run, faults included.
    pub scenario: Scenario,
    /// Start of the window in which commits must have resumed, s.
    pub resume_from_s: f64,
    /// The faulty set (every shard's): the only nodes that crash, are isolated
    /// alone, or turn Byzantine.
    pub faulty: Vec<NodeId>,
}

/// How a case went.
#[derive(Clone, Debug, PartialEq)]
pub struct SwarmOutcome {
    /// The seed.
    pub seed: u64,
    /// Protocol.
    pub protocol: String,
    /// Faults drawn.
    pub faults: usize,
    /// Committed tx/s before the first fault.
    pub before_tps: f64,
    /// Committed tx/s in the worst resume window.
    pub resumed_tps: f64,
    /// Invariant checks made.
    pub invariants_checked: u64,
}

/// Why a case failed.
#[derive(Clone, Debug, PartialEq)]
pub enum SwarmFailure {
    /// A safety invariant broke (the run stopped).
    Violation(String),
    /// Commits did not resume after the faults.
    Stalled(String),
    /// Anything else (the drawn scenario was refused, an internal error).
    Error(String),
}

impl std::fmt::Display for SwarmFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SwarmFailure::Violation(m) => write!(f, "invariant violation: {m}"),
            SwarmFailure::Stalled(m) => write!(f, "commits did not resume: {m}"),
            SwarmFailure::Error(m) => write!(f, "error: {m}"),
        }
    }
}

/// The commands that replay seed `seed`.
pub fn replay_commands(seed: u64) -> String {
    format!(
        "ledgersim swarm --seed {seed}   (scenario as TOML: ledgersim swarm --seed {seed} --show > case.toml; or LEDGERSIM_SWARM_SEED={seed} cargo test --release -p sim --test swarm -- --nocapture)"
    )
}

fn tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A window `[at, until)` inside `[FAULTS_FROM_S, FAULTS_UNTIL_S]`, at least 0.5 s long.
fn window(rng: &mut Stream) -> (f64, f64) {
    let span = FAULTS_UNTIL_S - FAULTS_FROM_S - 0.5;
    let at = tenth(FAULTS_FROM_S + rng.uniform() * span);
    let until = tenth(at + 0.5 + rng.uniform() * (FAULTS_UNTIL_S - at - 0.5));
    (at, until.min(FAULTS_UNTIL_S))
}

fn pick<T: Copy>(rng: &mut Stream, xs: &[T]) -> T {
    xs[rng.below(xs.len() as u64) as usize]
}

/// Draw the case of `seed` (a pure function of the seed).
pub fn draw(seed: u64) -> SwarmCase {
    let mut rng = Stream::new(seed, "swarm/draw");
    let protocol = pick(&mut rng, SWARM_PROTOCOLS);
    let tol = match tolerance(protocol) {
        Some(t) => t,
        None => unreachable!("every swarm protocol has a tolerance"),
    };
    let n = pick(&mut rng, tol.sizes);
    let shards = if rng.bernoulli(0.3) { 2 } else { 1 };
    let mut s = Scenario {
        name: format!("swarm-{seed}"),
        seed,
        duration_s: MIN_DURATION_S,
        warmup_s: WARMUP_S,
        offered_tps: f64::from(pick(&mut rng, &[300u32, 600, 1000, 1500])),
        shards,
        nodes_per_shard: n,
        consensus: protocol.to_string(),
        block_max_tx: pick(&mut rng, &[100u32, 250, 500]),
        batch_timeout_ms: f64::from(pick(&mut rng, &[20u32, 50, 100])),
        ..Scenario::default()
    };
    if shards > 1 {
        s.cross_shard_fraction = Some(pick(&mut rng, &[0.1, 0.2, 0.4]));
    }
    let placements: [&[&str]; 3] = [&[], &["us-east"], &["us-east", "eu-west", "ap-tokyo"]];
    s.network.placement = pick(&mut rng, &placements)
        .iter()
        .map(|r| r.to_string())
        .collect();
    faultsuite::prepare(&mut s);

    let mut faults = Vec::new();
    let mut faulty = Vec::new();
    for shard in 0..shards {
        let members: Vec<NodeId> = (shard * n..(shard + 1) * n).collect();
        // Half the time exactly the tolerance (the hardest case), else 0..=f.
        let f = (tol.faulty)(n as usize);
        let k = if rng.bernoulli(0.5) {
            f
        } else {
            rng.below(f as u64 + 1) as usize
        };
        // Sometimes the faulty nodes act together: one kind, one window, one behaviour.
        let coordinated = rng.bernoulli(0.4);
        let kinds = if tol.byzantine { 3 } else { 2 };
        let shared_kind = rng.below(kinds);
        let shared_window = window(&mut rng);
        let behaviours = [
            ByzantineBehaviour::Equivocate,
            ByzantineBehaviour::Withhold,
            ByzantineBehaviour::Silent,
        ];
        let shared_behaviour = pick(&mut rng, &behaviours);
        let shared_permanent = rng.bernoulli(0.3);
        // The first k of a shuffled committee.
        let mut order = members.clone();
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        faulty.extend_from_slice(&order[..k]);
        for &node in &order[..k] {
            let (kind, (at, until), behaviour, permanent) = if coordinated {
                (
                    shared_kind,
                    shared_window,
                    shared_behaviour,
                    shared_permanent,
                )
            } else {
                (
                    rng.below(kinds),
                    window(&mut rng),
                    pick(&mut rng, &behaviours),
                    rng.bernoulli(0.3),
                )
            };
            faults.push(match kind {
                0 => FaultSpec::Crash {
                    node,
                    at_s: at,
                    recover_s: (!permanent).then_some(until),
                },
                1 => FaultSpec::Partition {
                    nodes: vec![node],
                    region: None,
                    at_s: at,
                    until_s: Some(until),
                    one_way: false,
                },
                _ => FaultSpec::Byzantine {
                    nodes: vec![node],
                    behaviour,
                    at_s: at,
                    until_s: (!permanent).then_some(until),
                },
            });
        }
    }
    let total = shards * n;
    for _ in 0..rng.below(MAX_EXTRA_FAULTS + 1) {
        let (at, until) = window(&mut rng);
        let node = rng.below(u64::from(total)) as NodeId;
        faults.push(match rng.below(5) {
            0 => FaultSpec::Slow {
                node,
                factor: f64::from(pick(&mut rng, &[2u32, 5, 10])),
                at_s: at,
                until_s: Some(until),
            },
            1 => FaultSpec::Loss {
                node: None,
                from: None,
                to: None,
                loss: pick(&mut rng, &[0.01, 0.05, 0.1]),
                at_s: at,
                until_s: Some(until),
            },
            2 => FaultSpec::Latency {
                node: Some(node),
                from: None,
                to: None,
                extra_ms: f64::from(pick(&mut rng, &[50u32, 150, 300])),
                at_s: at,
                until_s: Some(until),
            },
            3 => {
                // Split one shard's committee in two halves (no side may hold a
                // quorum); heals.
                let shard = rng.below(u64::from(shards)) as u32;
                let mut half: Vec<NodeId> = (shard * n..(shard + 1) * n)
                    .filter(|_| rng.bernoulli(0.5))
                    .collect();
                if half.is_empty() {
                    half.push(shard * n);
                }
                FaultSpec::Partition {
                    nodes: half,
                    region: None,
                    at_s: at,
                    until_s: Some(until),
                    one_way: false,
                }
            }
            _ => {
                let regions: Vec<String> = if s.network.placement.is_empty() {
                    s.network.regions.clone()
                } else {
                    s.network.placement.clone()
                };
                FaultSpec::Partition {
                    nodes: Vec::new(),
                    region: Some(regions[rng.below(regions.len() as u64) as usize].clone()),
                    at_s: at,
                    until_s: Some(until),
                    one_way: false,
                }
            }
        });
    }
    s.faults = faults;
    let bound = faultsuite::liveness_bound(&s).map_or(faultsuite::DEFAULT_BOUND_S, |b| b.bound_s);
    let resume_from_s = tenth(FAULTS_UNTIL_S + bound);
    s.duration_s = MIN_DURATION_S
        .max(resume_from_s + RESUME_WINDOW_S + RESUME_SLIDE_S)
        .ceil();
    faulty.sort_unstable();
    SwarmCase {
        seed,
        scenario: s,
        resume_from_s,
        faulty,
    }
}

/// Run a case and check it: no invariant violation, and in the last
/// [`RESUME_WINDOW_S`] (which starts after every fault ended plus the liveness
/// bound) commits at [`RESUME_FRACTION`] of the pre-fault rate at least.
pub fn check(case: &SwarmCase) -> Result<SwarmOutcome, SwarmFailure> {
    let s = &case.scenario;
    let r = match run(s, &RunOptions::default()) {
        Ok(r) => r,
        Err(e @ SimError::InvariantViolated { .. }) => {
            return Err(SwarmFailure::Violation(e.to_string()))
        }
        Err(e) => return Err(SwarmFailure::Error(e.to_string())),
    };
    let (bucket_s, counts) = r.committed_per_bucket();
    let rate = |from: f64, to: f64| -> f64 {
        let a = (from / bucket_s).round() as usize;
        let b = ((to / bucket_s).round() as usize).min(counts.len());
        let sum: u64 = counts[a.min(b)..b].iter().sum();
        sum as f64 / ((b.saturating_sub(a)).max(1) as f64 * bucket_s)
    };
    let first = s
        .faults
        .iter()
        .map(|f| f.window_s().0)
        .fold(f64::INFINITY, f64::min)
        .min(FAULTS_FROM_S);
    let before_tps = rate(s.warmup_s, first);
    let end = r.sim_time_s;
    // The worst window ending in [resume_from + RESUME_WINDOW_S, end].
    let first_end = (case.resume_from_s + RESUME_WINDOW_S).min(end);
    let steps = ((end - first_end) / bucket_s).round() as usize;
    let (mut resumed_tps, mut worst_end) = (f64::INFINITY, end);
    for k in 0..=steps {
        let e = end - k as f64 * bucket_s;
        let x = rate(e - RESUME_WINDOW_S, e);
        if x < resumed_tps {
            resumed_tps = x;
            worst_end = e;
        }
    }
    let outcome = SwarmOutcome {
        seed: case.seed,
        protocol: s.consensus.clone(),
        faults: s.faults.len(),
        before_tps,
        resumed_tps,
        invariants_checked: r.invariants_checked(),
    };
    if r.invariants_checked() == 0 {
        return Err(SwarmFailure::Stalled("nothing was ever committed".into()));
    }
    if resumed_tps < RESUME_FRACTION * before_tps {
        return Err(SwarmFailure::Stalled(format!(
            "{resumed_tps:.0} tx/s committed in [{:.1}, {worst_end:.1}) s, below {RESUME_FRACTION} x the {before_tps:.0} tx/s before the faults",
            worst_end - RESUME_WINDOW_S
        )));
    }
    Ok(outcome)
}

/// A one-line description of a case (protocol, committee, load and faults).
pub fn describe(case: &SwarmCase) -> String {
    let s = &case.scenario;
    let faults: Vec<String> = s
        .faults
        .iter()
        .map(|f| {
            let (a, b) = f.window_s();
            let nodes = f.named_nodes();
            let what = match f {
                FaultSpec::Partition {
                    region: Some(r), ..
                } => format!("partition {r}"),
                FaultSpec::Byzantine { behaviour, .. } => format!("byzantine {behaviour:?}"),
                FaultSpec::Loss { loss, .. } => format!("loss {loss}"),
                FaultSpec::Slow { factor, .. } => format!("slow x{factor}"),
                other => other.kind().to_string(),
            };
            let until = b.map_or("end".to_string(), |b| format!("{b}"));
            if nodes.is_empty() {
                format!("{what} [{a},{until})")
            } else {
                format!("{what} {nodes:?} [{a},{until})")
            }
        })
        .collect();
    format!(
        "{} {}x{} {} tx/s: {}",
        s.consensus,
        s.shards,
        s.nodes_per_shard,
        s.offered_tps,
        if faults.is_empty() {
            "no faults".to_string()
        } else {
            faults.join("; ")
        }
    )
}
