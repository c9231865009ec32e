//! `ledgersim faults` (run the fault-scenario suite and write `results/faults.md`)
//! and `ledgersim swarm` (randomized fault schedules, see `sim::swarm`).

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::anyhow;
use sim::faultsuite::{self, Analysis};
use sim::swarm::{self, SwarmFailure, SwarmOutcome};
use sim::{RunOptions, Scenario, SimError};

use crate::cmd::Failure;
use crate::output;

/// Arguments of `ledgersim faults`.
#[derive(Debug, Clone)]
pub struct FaultsArgs {
    /// Directory of suite scenario files.
    pub dir: PathBuf,
    /// The markdown file to write.
    pub out: PathBuf,
    /// Swarm seeds to run as well (0: none).
    pub swarm_seeds: u64,
    /// Parallel runs.
    pub jobs: usize,
    /// The command line, recorded in the file.
    pub command: String,
}

/// Arguments of `ledgersim swarm`.
#[derive(Debug, Clone)]
pub struct SwarmArgs {
    /// First seed.
    pub start: u64,
    /// Number of seeds.
    pub seeds: u64,
    /// Print each drawn scenario as TOML.
    pub show: bool,
    /// Parallel runs.
    pub jobs: usize,
}

/// How one suite scenario went.
enum Row {
    Ran(Box<Analysis>),
    Failed(String),
}

struct SuiteResult {
    stem: String,
    scenario: Scenario,
    row: Row,
}

fn run_suite_file(stem: &str, s: &Scenario) -> Row {
    let mut s = s.clone();
    faultsuite::prepare(&mut s);
    match sim::run(&s, &RunOptions::default()) {
        Ok(r) => match faultsuite::analyze(&r) {
            Ok(a) => Row::Ran(Box::new(a)),
            Err(e) => Row::Failed(format!("{stem}: {e}")),
        },
        Err(e @ SimError::InvariantViolated { .. }) => {
            Row::Failed(format!("invariant violation: {e}"))
        }
        Err(e) => Row::Failed(e.to_string()),
    }
}

fn pool(jobs: usize) -> Result<rayon::ThreadPool, Failure> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| Failure::failed(anyhow!("thread pool: {e}")))
}

/// One swarm seed and how it went.
type SeedResult = (u64, Result<SwarmOutcome, SwarmFailure>);

fn run_swarm(seeds: &[u64], jobs: usize) -> Result<Vec<SeedResult>, Failure> {
    let cancel = output::install_interrupt_flag().map_err(Failure::failed)?;
    let out = pool(jobs)?.install(|| {
        use rayon::prelude::*;
        seeds
            .par_iter()
            .map(|&seed| {
                if cancel.load(Ordering::SeqCst) {
                    return (seed, Err(SwarmFailure::Error("interrupted".into())));
                }
                (seed, swarm::check(&swarm::draw(seed)))
            })
            .collect::<Vec<_>>()
    });
    if cancel.load(Ordering::SeqCst) {
        return Err(Failure::failed(anyhow!("interrupted: nothing was written")));
    }
    Ok(out)
}

fn fmt_opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

fn machine_load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            let f: Vec<&str> = s.split_whitespace().take(3).collect();
            format!("load average {}", f.join(", "))
        })
        .unwrap_or_else(|_| "load average unavailable".to_string())
}

fn fault_description(s: &Scenario) -> String {
    let w = faultsuite::fault_window(s);
    match w {
        Some(w) => match w.end_s {
            Some(e) => format!("{}–{} s", w.start_s, e),
            None if w.reference_s > w.start_s => {
                format!(
                    "from {} s (permanent), last at {} s",
                    w.start_s, w.reference_s
                )
            }
            None => format!("from {} s, permanent", w.start_s),
        },
        None => "none".into(),
    }
}

/// `ledgersim faults`.
pub fn faults(args: FaultsArgs) -> Result<(), Failure> {
    let suite = faultsuite::load_dir(&args.dir).map_err(|e| Failure::bad(anyhow!(e)))?;
    if suite.is_empty() {
        return Err(Failure::bad(anyhow!(
            "{}: no scenario files (*.toml)",
            args.dir.display()
        )));
    }
    for (stem, s) in &suite {
        sim::protocols::validate(s).map_err(|e| Failure::bad(anyhow!("{stem}.toml: {e}")))?;
    }
    if let Some(parent) = args.out.parent() {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            return Err(Failure::bad(anyhow!(
                "--out {}: directory {} does not exist",
                args.out.display(),
                parent.display()
            )));
        }
    }
    let wall = std::time::Instant::now();
    let load_before = machine_load();
    let cancel = output::install_interrupt_flag().map_err(Failure::failed)?;
    let results: Vec<SuiteResult> = pool(args.jobs)?.install(|| {
        use rayon::prelude::*;
        suite
            .par_iter()
            .map(|(stem, s)| SuiteResult {
                stem: stem.clone(),
                scenario: s.clone(),
                row: if cancel.load(Ordering::SeqCst) {
                    Row::Failed("interrupted".into())
                } else {
                    run_suite_file(stem, s)
                },
            })
            .collect()
    });
    if cancel.load(Ordering::SeqCst) {
        return Err(Failure::failed(anyhow!("interrupted: nothing was written")));
    }
    let suite_wall_s = wall.elapsed().as_secs_f64();
    let swarm_seeds: Vec<u64> = (1..=args.swarm_seeds).collect();
    let swarm_wall = std::time::Instant::now();
    let swarm = run_swarm(&swarm_seeds, args.jobs)?;
    let swarm_wall_s = swarm_wall.elapsed().as_secs_f64();

    let mut md = String::new();
    let failures_suite = results
        .iter()
        .filter(|r| !matches!(&r.row, Row::Ran(a) if a.within_bound()))
        .count();
    let failures_swarm = swarm.iter().filter(|(_, r)| r.is_err()).count();
    md.push_str("# Fault scenarios: safety and recovery per protocol\n\n");
    md.push_str(&format!(
        "Written by `{}` (suite: every `*.toml` in `{}`; docs/reliability.md explains the method). \
Machine: {} before the runs; suite {:.1} s and swarm {:.1} s of wall time with {} jobs. \
Everything in the tables is simulated and deterministic (seed 1 for every suite scenario); only the wall times vary.\n\n",
        args.command,
        args.dir.display(),
        load_before,
        suite_wall_s,
        swarm_wall_s,
        args.jobs
    ));
    md.push_str(&format!(
        "**Outcome:** {} of {} fault scenarios kept every invariant and recovered within their protocol's bound; \
{} of {} swarm seeds passed.\n\n",
        results.len() - failures_suite,
        results.len(),
        swarm.len() - failures_swarm,
        swarm.len()
    ));
    md.push_str(&format!(
        "## How to read the table\n\n\
- *before*: mean committed tx/s from the end of the warm-up to the first fault; *during*: from the first fault to that \
reference time (for a single permanent fault: from its start for the length of the bound); *after*: the rest of the run.\n\
- *recovery*: seconds from the last time a fault changes state (the end of the last windowed fault, or the start of a permanent one, whichever is later) until the committed rate, \
over a trailing window (1 s; HotStuff: two view timeouts + 0.5 s, because with a leader down it commits in bursts once per rotation), \
is at least {:.0}% of *before* and stays there to the end of the run. 0 means it never dropped below that after the reference time. \
*outage*: the longest stretch after the first fault with the rate below that threshold (a crash-and-recover fault can have a long outage \
but recovery 0: the protocol recovered while the node was still down).\n\
- *bound*: the liveness bound stated for the protocol (below); *ok* means recovered within it.\n\
- *checks*: invariant checks made while running (agreement of honest replicas per height, money conservation, \
cross-shard phase consistency, ledger height = consensus height). A violation stops the run with its seed, so *violations* \
is 0 for every run that finished and the run is listed as failed otherwise.\n\n",
        faultsuite::RECOVERY_FRACTION * 100.0
    ));
    md.push_str(
        "## Liveness bounds\n\nEach protocol's bound follows from its timeouts with the scenario's parameters \
(Raft scales its timeouts with the committee's round-trip time, so its bound depends on the placement).\n\n\
| protocol | bound (s) | rule | scenarios |\n|---|---|---|---|\n",
    );
    let mut bounds: std::collections::BTreeMap<(String, String, String), Vec<String>> =
        std::collections::BTreeMap::new();
    for r in &results {
        if let Row::Ran(a) = &r.row {
            bounds
                .entry((
                    r.scenario.consensus.clone(),
                    format!("{:.2}", a.bound.bound_s),
                    a.bound.rule.clone(),
                ))
                .or_default()
                .push(faultsuite::fault_name(&r.stem, &r.scenario.consensus).to_string());
        }
    }
    for ((p, b, rule), names) in &bounds {
        md.push_str(&format!("| {p} | {b} | {rule} | {} |\n", names.join(", ")));
    }
    md.push_str(
        "\n## Suite\n\n| fault | protocol | nodes | fault window | before tx/s | during tx/s | after tx/s | recovery s | outage s | bound s | view changes | checks | violations | result |\n\
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut sorted: Vec<&SuiteResult> = results.iter().collect();
    sorted.sort_by(|a, b| {
        let fa = faultsuite::fault_name(&a.stem, &a.scenario.consensus);
        let fb = faultsuite::fault_name(&b.stem, &b.scenario.consensus);
        (fa, &a.scenario.consensus).cmp(&(fb, &b.scenario.consensus))
    });
    for r in sorted {
        let s = &r.scenario;
        let fault = faultsuite::fault_name(&r.stem, &s.consensus);
        let nodes = if s.shards > 1 {
            format!("{}x{}", s.shards, s.nodes_per_shard)
        } else {
            s.nodes_per_shard.to_string()
        };
        match &r.row {
            Row::Ran(a) => md.push_str(&format!(
                "| {fault} | {} | {nodes} | {} | {:.0} | {:.0} | {} | {} | {:.1} | {:.2} | {} | {} | 0 | {} |\n",
                s.consensus,
                fault_description(s),
                a.before_tps,
                a.during_tps,
                fmt_opt(a.after_tps, 0),
                a.recovery_s
                    .map_or("never".to_string(), |x| format!("{x:.1}")),
                a.longest_outage_s,
                a.bound.bound_s,
                a.view_changes,
                a.invariants_checked,
                if a.within_bound() { "ok" } else { "**LATE**" }
            )),
            Row::Failed(e) => md.push_str(&format!(
                "| {fault} | {} | {nodes} | {} | | | | | | | | | {} | **FAILED**: {} |\n",
                s.consensus,
                fault_description(s),
                u8::from(e.starts_with("invariant violation")),
                e.replace('|', "/")
            )),
        }
    }
    let protocols: std::collections::BTreeSet<&str> = results
        .iter()
        .map(|r| r.scenario.consensus.as_str())
        .collect();
    for p in protocols {
        if let Some(msg) = faultsuite::refuses_byzantine(p) {
            md.push_str(&format!(
                "| byzantine | {p} | | | | | | | | | | | | refused, as it must be: {} |\n",
                msg.replace('|', "/")
            ));
        }
    }
    md.push_str(&format!(
        "\n## Swarm\n\n{} seeds (1..={}), each drawing a protocol ({}), a committee, a load and a random fault schedule within \
the protocol's tolerance (`sim::swarm`); a seed passes if no invariant broke and, after every fault ended plus the bound, \
every {} s window from then to the end of the run (at least {} s) commits at least {:.0}% of the pre-fault rate.\n\n",
        swarm.len(),
        args.swarm_seeds,
        swarm::SWARM_PROTOCOLS.join(", "),
        swarm::RESUME_WINDOW_S,
        swarm::RESUME_WINDOW_S + swarm::RESUME_SLIDE_S,
        swarm::RESUME_FRACTION * 100.0
    ));
    if !swarm.is_empty() {
        md.push_str("| protocol | seeds | passed | faults drawn | invariant checks |\n|---|---|---|---|---|\n");
        for p in swarm::SWARM_PROTOCOLS {
            let mut n = 0usize;
            let mut ok = 0usize;
            let mut faults = 0usize;
            let mut checks = 0u64;
            for (seed, r) in &swarm {
                let case = swarm::draw(*seed);
                if case.scenario.consensus != *p {
                    continue;
                }
                n += 1;
                faults += case.scenario.faults.len();
                if let Ok(o) = r {
                    ok += 1;
                    checks += o.invariants_checked;
                }
            }
            md.push_str(&format!("| {p} | {n} | {ok} | {faults} | {checks} |\n"));
        }
        md.push('\n');
        for (seed, r) in &swarm {
            if let Err(e) = r {
                md.push_str(&format!(
                    "- seed {seed} FAILED: {} — {}; replay: `{}`\n",
                    swarm::describe(&swarm::draw(*seed)),
                    e.to_string().replace('\n', " "),
                    swarm::replay_commands(*seed)
                ));
            }
        }
    }
    output::write_atomic(&args.out, md.as_bytes()).map_err(Failure::failed)?;
    println!("{}", args.out.display());
    for r in &results {
        match &r.row {
            Row::Ran(a) if a.within_bound() => {}
            Row::Ran(a) => eprintln!(
                "{}: recovery {:?} s exceeds the bound {} s",
                r.stem, a.recovery_s, a.bound.bound_s
            ),
            Row::Failed(e) => eprintln!("{}: {e}", r.stem),
        }
    }
    for (seed, r) in &swarm {
        if let Err(e) = r {
            eprintln!(
                "swarm seed {seed}: {e}; replay: {}",
                swarm::replay_commands(*seed)
            );
        }
    }
    if failures_suite + failures_swarm > 0 {
        return Err(Failure::failed(anyhow!(
            "{failures_suite} fault scenario(s) and {failures_swarm} swarm seed(s) failed (see {})",
            args.out.display()
        )));
    }
    Ok(())
}

/// Print a line to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// `ledgersim swarm`.
pub fn swarm(args: SwarmArgs) -> Result<(), Failure> {
    if args.seeds == 0 {
        return Err(Failure::bad(anyhow!("--seeds must be at least 1")));
    }
    let seeds: Vec<u64> = (args.start..args.start.saturating_add(args.seeds)).collect();
    if args.show {
        for &seed in &seeds {
            let case = swarm::draw(seed);
            say(&format!(
                "# swarm seed {seed}: {}\n# commits must resume by {} s; replay: {}\n{}",
                swarm::describe(&case),
                case.resume_from_s,
                swarm::replay_commands(seed),
                case.scenario.to_toml_string()
            ));
        }
        return Ok(());
    }
    let results = run_swarm(&seeds, args.jobs)?;
    let mut failed = 0usize;
    for (seed, r) in &results {
        let case = swarm::draw(*seed);
        match r {
            Ok(o) => say(&format!(
                "seed {seed}: ok    {} | before {:.0} tx/s, resumed {:.0} tx/s, {} checks",
                swarm::describe(&case),
                o.before_tps,
                o.resumed_tps,
                o.invariants_checked
            )),
            Err(e) => {
                failed += 1;
                say(&format!(
                    "seed {seed}: FAILED {} | {e}\n  replay: {}",
                    swarm::describe(&case),
                    swarm::replay_commands(*seed)
                ));
            }
        }
    }
    say(&format!(
        "{} of {} seeds passed ({}..={})",
        results.len() - failed,
        results.len(),
        seeds.first().copied().unwrap_or(0),
        seeds.last().copied().unwrap_or(0)
    ));
    if failed > 0 {
        return Err(Failure::failed(anyhow!("{failed} swarm seed(s) failed")));
    }
    Ok(())
}
