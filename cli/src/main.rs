//! `ledgersim`: simulate a sharded healthcare ledger under a consensus protocol and a
//! realistic workload; compare protocols; sweep parameters; plot; verify block logs.
//!
//! Exit status: 0 success, 1 a run or check failed (an invariant violation, a tampered
//! log), 2 bad input (arguments, scenario file). Errors go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use ledgersim::cmd::{self, Failure};

/// Simulate a sharded healthcare ledger, deterministically, and measure what each
/// consensus protocol delivers.
#[derive(Parser, Debug)]
#[command(
    name = "ledgersim",
    version,
    about,
    long_about = "ledgersim simulates a ledger shared by hospitals, imaging centres, insurers and \
pharmacies, sharded and run by a consensus protocol (PBFT, HotStuff, Raft, proof-of-work, \
proof-of-stake), on realistic healthcare workloads, in virtual time: same scenario and seed, \
same result to the bit.",
    after_help = "Examples:\n  ledgersim run                                  # built-in default scenario\n  ledgersim run imaging --set workload.imaging.mode=onchain --out out/img\n  ledgersim compare --consensus pbft,hotstuff,raft --out out/cmp\n  ledgersim sweep sweeps/load.toml --jobs 2 --out out/load\n  ledgersim scenarios\n  ledgersim demo --out out/demo && ledgersim verify out/demo/ledger\n\nExit status: 0 success, 1 a run or check failed, 2 bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by the commands that run a scenario.
#[derive(Args, Debug, Clone)]
struct ScenarioArgs {
    /// A scenario TOML file, or the name of a built-in scenario (see `ledgersim scenarios`).
    /// Without it, the built-in `default` scenario runs.
    scenario: Option<String>,
    /// Master seed; overrides the scenario's `seed`. Same seed, same result.
    #[arg(long)]
    seed: Option<u64>,
    /// Override a scenario key, e.g. `--set consensus=raft --set shards=4
    /// --set workload.imaging.mode=onchain`. Repeatable; applied in order after the file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one scenario and write its results directory.
    #[command(
        after_help = "Example:\n  ledgersim run hospital --seed 7 --set consensus=hotstuff --out out/hospital\n\nWrites DIR/summary.json, timeseries.csv, latency.csv, scenario.toml, plots and report.html \
(see docs/results.md). Without --out, results go to out/<scenario>-<seed>/."
    )]
    Run {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Results directory (replaced atomically if it exists).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write a full event trace (one line per event) to this file, for debugging.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Also write transactions.csv.gz, one row per transaction.
        #[arg(long)]
        record_transactions: bool,
        /// Do not draw plots or the HTML report (faster; `ledgersim plot DIR` draws them later).
        #[arg(long)]
        no_plots: bool,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run the same workload and seed under several protocols; one table, one plot.
    #[command(
        after_help = "Example:\n  ledgersim compare --consensus pbft,hotstuff,raft --seed 1 --out out/cmp\n\nWrites DIR/compare.csv, DIR/<protocol>/ (a results directory each), compare.svg/png, report.html."
    )]
    Compare {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Comma-separated protocols to compare.
        #[arg(long, value_delimiter = ',', default_value = "pbft,hotstuff,raft")]
        consensus: Vec<String>,
        /// Output directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Parallel runs (default: number of CPUs). Results do not depend on it.
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Run a grid of parameter values over a base scenario, in parallel, resumably.
    #[command(
        after_help = "Example:\n  ledgersim sweep sweeps/load.toml --jobs 2 --out out/load\n  ledgersim sweep sweeps/load.toml --out out/load --resume   # after an interruption\n\nSWEEP.toml names a base scenario and the values of each swept key (see \"Sweep files\" in docs/scenario.md). \
Writes DIR/sweep.csv, DIR/points/<n>/ and plots; sweep.csv does not depend on --jobs."
    )]
    Sweep {
        /// The sweep file.
        sweep: PathBuf,
        /// Parallel points (default: number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// Keep finished points of an earlier, interrupted run of this sweep and run the rest.
        #[arg(long)]
        resume: bool,
        /// Output directory (default: out/<sweep name>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the built-in scenarios and the registered protocols, one line each.
    #[command(
        after_help = "Example:\n  ledgersim scenarios\n  ledgersim scenario show default > my.toml"
    )]
    Scenarios,
    /// Work with built-in scenarios.
    Scenario {
        #[command(subcommand)]
        action: ScenarioAction,
    },
    /// (Re)draw the plots and report.html of a run, compare or sweep directory.
    #[command(
        after_help = "Example:\n  ledgersim plot out/default-1\n  ledgersim plot results/sweeps/load/points/3   # a sweep point's plots (pruned in results/)"
    )]
    Plot {
        /// The results directory.
        dir: PathBuf,
    },
    /// Verify an exported block log: exit 0 intact, 1 tampered or unreadable.
    #[command(
        after_help = "Example:\n  ledgersim demo --out out/demo && ledgersim verify out/demo/ledger\n\nChecks every block's hash chain, \
transaction root, receipts root and, by replaying from genesis, its state root; names the shard, height and check that failed."
    )]
    Verify {
        /// Directory holding an exported block log (a `ledger/` directory).
        dir: PathBuf,
    },
    /// Run the fault-scenario suite (every scenarios/faults/*.toml) and a swarm of random
    /// fault schedules; write a markdown table of before/during/after rates, recovery times
    /// against each protocol's liveness bound, and invariant checks.
    #[command(
        after_help = "Example:\n  ledgersim faults --swarm-seeds 200 --jobs 2 --out results/faults.md\n\nExit status 1 if a scenario \
broke an invariant or recovered later than its bound, or a swarm seed failed (the file is still written). See docs/reliability.md."
    )]
    Faults {
        /// Directory of suite scenario files.
        #[arg(long, default_value = "scenarios/faults")]
        dir: PathBuf,
        /// Markdown file to write (atomically).
        #[arg(long, default_value = "results/faults.md")]
        out: PathBuf,
        /// Swarm seeds (1..=N) to run as well; 0 for none.
        #[arg(long, default_value_t = 200)]
        swarm_seeds: u64,
        /// Parallel runs (default: number of CPUs). Results do not depend on it.
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Swarm test: each seed draws a protocol, committee, load and random fault schedule
    /// within the protocol's tolerance; checks invariants and that commits resume.
    #[command(
        after_help = "Examples:\n  ledgersim swarm --seeds 500 --jobs 2\n  ledgersim swarm --seed 17              # replay one seed\n  ledgersim swarm --seed 17 --show > case.toml && ledgersim run case.toml --trace t.txt\n\nExit status 1 if a seed fails; each failure prints its seed and the command that replays it."
    )]
    Swarm {
        /// Number of seeds to run.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        start: u64,
        /// Run exactly this seed (same as --start N --seeds 1).
        #[arg(long, conflicts_with_all = ["seeds", "start"])]
        seed: Option<u64>,
        /// Print each drawn scenario as TOML (accepted by `ledgersim run`) instead of running it.
        #[arg(long)]
        show: bool,
        /// Parallel runs (default: number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Run the ledger-core demo: a few hospitals, an insurer and patients over several
    /// shards; exports the block log to DIR/ledger/ and verifies it.
    #[command(
        after_help = "Example:\n  ledgersim demo --out out/demo && ledgersim verify out/demo/ledger"
    )]
    Demo {
        /// Output directory (a temporary directory when omitted).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum ScenarioAction {
    /// Print a built-in scenario as TOML, to start a new scenario file from.
    #[command(
        after_help = "Example:\n  ledgersim scenario show hospital > my.toml && ledgersim run my.toml\n\nEvery field is described in docs/scenario.md."
    )]
    Show {
        /// Name of the built-in scenario.
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            scenario,
            out,
            trace,
            record_transactions,
            no_plots,
            quiet,
        } => cmd::run(cmd::RunArgs {
            scenario: scenario.scenario,
            seed: scenario.seed,
            sets: scenario.sets,
            out,
            trace,
            record_transactions,
            plots: !no_plots,
            quiet,
        }),
        Command::Compare {
            scenario,
            consensus,
            out,
            jobs,
        } => cmd::compare(cmd::CompareArgs {
            scenario: scenario.scenario,
            seed: scenario.seed,
            sets: scenario.sets,
            protocols: consensus,
            out,
            jobs,
        }),
        Command::Sweep {
            sweep,
            jobs,
            resume,
            out,
        } => cmd::sweep(cmd::SweepArgs {
            sweep,
            jobs,
            resume,
            out,
        }),
        Command::Scenarios => cmd::scenarios(),
        Command::Scenario {
            action: ScenarioAction::Show { name },
        } => cmd::scenario_show(&name),
        Command::Plot { dir } => cmd::plot(&dir),
        Command::Verify { dir } => cmd::verify(&dir),
        Command::Demo { out } => cmd::demo(out.as_deref()),
        Command::Faults {
            dir,
            out,
            swarm_seeds,
            jobs,
        } => ledgersim::faults::faults(ledgersim::faults::FaultsArgs {
            dir,
            out,
            swarm_seeds,
            jobs: jobs.unwrap_or_else(cpus).max(1),
            command: std::iter::once("ledgersim".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
        }),
        Command::Swarm {
            seeds,
            start,
            seed,
            show,
            jobs,
        } => ledgersim::faults::swarm(ledgersim::faults::SwarmArgs {
            start: seed.unwrap_or(start),
            seeds: if seed.is_some() { 1 } else { seeds },
            show,
            jobs: jobs.unwrap_or_else(cpus).max(1),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(e)) => {
            eprintln!("ledgersim: error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("ledgersim: failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
