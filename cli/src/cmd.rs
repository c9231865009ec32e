//! The commands behind `ledgersim <command>`: argument handling above the libraries.
//!
//! Every command returns `Result<(), Failure>`: [`Failure::BadInput`] maps to exit
//! status 2 (nothing is written), [`Failure::Failed`] to exit status 1.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sim::{RunOptions, RunResult, Scenario, SimError};

use crate::output::{self, ResultDir};
use crate::{plot, report, sweep};

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The user's input is wrong (arguments, scenario or sweep file): exit status 2.
    BadInput(anyhow::Error),
    /// A run or a check failed (invariant violation, tampered log, I/O): exit status 1.
    Failed(anyhow::Error),
}

impl Failure {
    /// A bad-input failure from anything printable.
    pub fn bad(e: impl Into<anyhow::Error>) -> Failure {
        Failure::BadInput(e.into())
    }
    /// A failed-run failure from anything printable.
    pub fn failed(e: impl Into<anyhow::Error>) -> Failure {
        Failure::Failed(e.into())
    }
}

impl From<SimError> for Failure {
    fn from(e: SimError) -> Failure {
        if e.is_bad_input() {
            Failure::BadInput(e.into())
        } else {
            Failure::Failed(e.into())
        }
    }
}

/// Arguments of `ledgersim run`.
#[derive(Debug, Clone)]
pub struct RunArgs {
    /// Scenario file or built-in name (`None`: `default`).
    pub scenario: Option<String>,
    /// Seed override.
    pub seed: Option<u64>,
    /// `KEY=VALUE` overrides.
    pub sets: Vec<String>,
    /// Results directory.
    pub out: Option<PathBuf>,
    /// Event trace file.
    pub trace: Option<PathBuf>,
    /// Write transactions.csv.gz.
    pub record_transactions: bool,
    /// Draw plots and report.html.
    pub plots: bool,
    /// Print only errors.
    pub quiet: bool,
}

/// Arguments of `ledgersim compare`.
#[derive(Debug, Clone)]
pub struct CompareArgs {
    /// Scenario file or built-in name.
    pub scenario: Option<String>,
    /// Seed override.
    pub seed: Option<u64>,
    /// `KEY=VALUE` overrides.
    pub sets: Vec<String>,
    /// Protocols to compare.
    pub protocols: Vec<String>,
    /// Output directory.
    pub out: Option<PathBuf>,
    /// Parallel runs.
    pub jobs: Option<usize>,
}

/// Arguments of `ledgersim sweep`.
#[derive(Debug, Clone)]
pub struct SweepArgs {
    /// The sweep file.
    pub sweep: PathBuf,
    /// Parallel points.
    pub jobs: Option<usize>,
    /// Keep finished points.
    pub resume: bool,
    /// Output directory.
    pub out: Option<PathBuf>,
}

/// Split `KEY=VALUE` arguments.
pub fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>, Failure> {
    sets.iter()
        .map(|s| {
            let (k, v) = s.split_once('=').ok_or_else(|| {
                Failure::bad(anyhow!(
                    "--set {s:?}: expected KEY=VALUE, for example --set consensus=raft or --set workload.imaging.mode=onchain"
                ))
            })?;
            let k = k.trim();
            if k.is_empty() {
                return Err(Failure::bad(anyhow!("--set {s:?}: the key before '=' is empty")));
            }
            Ok((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The text of a scenario given as a file path or a built-in name, and the name to label
/// errors with.
pub fn scenario_source(spec: Option<&str>) -> Result<(String, String), Failure> {
    let spec = spec.unwrap_or("default");
    let path = Path::new(spec);
    let looks_like_file = spec.ends_with(".toml") || spec.contains('/') || spec.contains('\\');
    if path.is_file() || looks_like_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::bad(anyhow!("scenario file {}: {e}", path.display())))?;
        return Ok((text, path.display().to_string()));
    }
    match sim::builtin::text(spec) {
        Ok(text) => Ok((text.to_string(), format!("builtin:{spec}"))),
        Err(_) => Err(Failure::bad(anyhow!(
            "{spec:?} is neither a scenario file nor a built-in scenario; built-ins: {}",
            sim::builtin::list()
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Load, override and validate a scenario; nothing is written on failure.
pub fn load_scenario(
    spec: Option<&str>,
    seed: Option<u64>,
    sets: &[String],
) -> Result<Scenario, Failure> {
    let (text, source) = scenario_source(spec)?;
    let mut overrides = parse_sets(sets)?;
    if let Some(seed) = seed {
        overrides.push(("seed".to_string(), seed.to_string()));
    }
    let scenario =
        Scenario::from_toml_str_with_overrides(&text, &source, &overrides).map_err(Failure::bad)?;
    sim::protocols::validate(&scenario).map_err(|e| Failure::bad(with_source(e, &source)))?;
    Ok(scenario)
}

/// A validation error labelled with the file (or built-in) it came from rather than the
/// scenario's `name`, so the message names the file to fix.
fn with_source(e: sim::ScenarioError, source: &str) -> anyhow::Error {
    match e {
        sim::ScenarioError::InvalidValue { path, message, .. } => {
            anyhow!("{source}: field `{path}`: {message}")
        }
        other => anyhow!("{source}: {other}"),
    }
}

/// A progress bar over simulated seconds (hidden when `quiet` or stderr is not a terminal).
fn progress_bar(quiet: bool, label: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {msg} (eta {eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_string());
    bar
}

/// Run one scenario with progress and cancellation; the shared core of run/compare/sweep.
pub fn run_scenario(
    scenario: &Scenario,
    trace: Option<PathBuf>,
    bar: Option<ProgressBar>,
    cancel: Arc<AtomicBool>,
) -> Result<RunResult, Failure> {
    let progress: Option<sim::run::ProgressFn> = bar.map(|bar| {
        let f: sim::run::ProgressFn = Arc::new(move |done_s: f64, total_s: f64| {
            if total_s > 0.0 {
                bar.set_position(((done_s / total_s) * 1000.0).clamp(0.0, 1000.0) as u64);
                bar.set_message(format!("{done_s:.1}/{total_s:.0} sim s"));
            }
        });
        f
    });
    let opts = RunOptions {
        trace_path: trace,
        progress,
        cancel: Some(cancel),
    };
    sim::run(scenario, &opts).map_err(Failure::from)
}

/// Write a run's results directory atomically (plots and report optional).
pub fn write_results(
    target: &Path,
    result: &RunResult,
    record_transactions: bool,
    plots: bool,
) -> Result<PathBuf, Failure> {
    let dir = ResultDir::create(target).map_err(Failure::failed)?;
    let summary = serde_json::to_vec_pretty(&result.summary_json())
        .map_err(|e| Failure::failed(anyhow!("summary.json: {e}")))?;
    dir.add_file("summary.json", &summary)
        .map_err(Failure::failed)?;
    dir.add_file("timeseries.csv", result.timeseries_csv().as_bytes())
        .map_err(Failure::failed)?;
    dir.add_file("latency.csv", result.latency_csv().as_bytes())
        .map_err(Failure::failed)?;
    dir.add_file("scenario.toml", result.resolved_scenario_toml().as_bytes())
        .map_err(Failure::failed)?;
    if record_transactions || result.scenario.metrics.record_transactions {
        dir.add_gz_file("transactions.csv.gz", result.transactions_csv().as_bytes())
            .map_err(Failure::failed)?;
    }
    if plots {
        plot::plot_run(dir.path()).map_err(Failure::failed)?;
        report::write_report(dir.path()).map_err(Failure::failed)?;
    }
    dir.finish().map_err(Failure::failed)
}

fn default_out(scenario: &Scenario) -> PathBuf {
    PathBuf::from("out").join(format!("{}-{}", sanitize(&scenario.name), scenario.seed))
}

/// A scenario name made safe as a directory name.
pub fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "scenario".to_string()
    } else {
        s
    }
}

fn interrupted() -> Failure {
    Failure::failed(anyhow!("interrupted: nothing was written"))
}

/// `ledgersim run`.
pub fn run(args: RunArgs) -> Result<(), Failure> {
    let mut scenario = load_scenario(args.scenario.as_deref(), args.seed, &args.sets)?;
    if args.record_transactions {
        scenario.metrics.record_transactions = true;
    }
    let out = args.out.clone().unwrap_or_else(|| default_out(&scenario));
    check_out_target(&out)?;
    let cancel = output::install_interrupt_flag().map_err(Failure::failed)?;
    let bar = progress_bar(args.quiet, &scenario.name);
    let result = run_scenario(
        &scenario,
        args.trace.clone(),
        Some(bar.clone()),
        Arc::clone(&cancel),
    );
    bar.finish_and_clear();
    let result = result?;
    if cancel.load(Ordering::SeqCst) {
        return Err(interrupted());
    }
    let written = write_results(&out, &result, args.record_transactions, args.plots)?;
    if !args.quiet {
        print!("{}", summary_table(&result, &written));
    }
    Ok(())
}

/// Refuse an output path that exists and is not a directory we may replace.
fn check_out_target(out: &Path) -> Result<(), Failure> {
    if out.exists() && !out.is_dir() {
        return Err(Failure::bad(anyhow!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    if out.is_dir()
        && !output::is_results_dir(out)
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        return Err(Failure::bad(anyhow!(
            "--out {}: a non-empty directory that is not a ledgersim results directory; choose another path",
            out.display()
        )));
    }
    Ok(())
}

/// A rate for the run table: one decimal from 10 tx/s up (`1,983.9`), three significant
/// digits below (`0.0521`), so that a study every 20 s does not print as `0.0`.
pub fn rate_text(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || v.abs() >= 10.0 {
        plot::thousands(v, 1)
    } else {
        let decimals = (2.0 - v.abs().log10().floor()).clamp(1.0, 9.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// The short table `ledgersim run` prints.
pub fn summary_table(r: &RunResult, dir: &Path) -> String {
    let s = &r.scenario;
    let measured = r.measured_s();
    let offered = if measured > 0.0 {
        r.submitted_tx() as f64 / measured
    } else {
        0.0
    };
    let lat = &r.latency_ms;
    let xs = r.summary_json();
    let xfrac = xs["cross_shard"]["fraction"].as_f64().unwrap_or(0.0);
    let xabort = xs["cross_shard"]["abort_rate"].as_f64().unwrap_or(0.0);
    let violations = xs["invariants"]["violations"].as_u64().unwrap_or(0);
    let mut t = String::new();
    t.push_str(&format!(
        "scenario {}   consensus {}   shards {}   nodes {}   seed {}\n",
        s.name,
        s.consensus,
        s.shards,
        s.total_nodes(),
        s.seed
    ));
    t.push_str(&format!(
        "  offered        {:>12} tx/s\n",
        rate_text(offered)
    ));
    t.push_str(&format!(
        "  achieved       {:>12} tx/s   committed {}  rejected by rule {}  aborted {}\n",
        rate_text(r.throughput_tps()),
        plot::thousands(r.committed_tx() as f64, 0),
        plot::thousands(r.rejected_tx() as f64, 0),
        plot::thousands(r.aborted_tx() as f64, 0)
    ));
    if r.committed_tx() == 0 {
        t.push_str("  latency        n/a: nothing committed after warm-up (the system is saturated or stalled)\n");
    } else {
        t.push_str(&format!(
            "  latency        p50 {}   p99 {}   p99.9 {}   max {}\n",
            plot::latency_label(lat.p50),
            plot::latency_label(lat.p99),
            plot::latency_label(lat.p999),
            plot::latency_label(lat.max)
        ));
    }
    t.push_str(&format!(
        "  cross-shard    {:.1}% of transactions, abort rate {:.2}%\n",
        xfrac * 100.0,
        xabort * 100.0
    ));
    t.push_str(&format!(
        "  invariants     {} checked, {} violations\n",
        plot::thousands(r.invariants_checked() as f64, 0),
        violations
    ));
    t.push_str(&format!(
        "  simulator      {} events in {:.2} s wall ({}/s), {:.1} sim s/wall s\n",
        plot::short_number(r.events as f64),
        r.wall_time_s,
        plot::short_number(r.events as f64 / r.wall_time_s.max(1e-9)),
        r.sim_time_s / r.wall_time_s.max(1e-9)
    ));
    t.push_str(&format!("  trace digest   {}\n", r.trace_digest));
    t.push_str(&format!("  results        {}\n", dir.display()));
    t
}

/// `ledgersim compare`.
pub fn compare(args: CompareArgs) -> Result<(), Failure> {
    if args.protocols.is_empty() {
        return Err(Failure::bad(anyhow!(
            "--consensus: name at least one protocol"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &args.protocols {
        sim::protocols::get(p).map_err(Failure::bad)?;
        if !seen.insert(p.clone()) {
            return Err(Failure::bad(anyhow!("--consensus: {p} is listed twice")));
        }
    }
    // Resolve every protocol's scenario first: bad input is reported before anything runs.
    let mut scenarios = Vec::new();
    for p in &args.protocols {
        let mut sets = args.sets.clone();
        sets.push(format!("consensus={p}"));
        scenarios.push(load_scenario(args.scenario.as_deref(), args.seed, &sets)?);
    }
    let base_name = scenarios
        .first()
        .map(|s| sanitize(&s.name))
        .unwrap_or_default();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(format!("compare-{base_name}")));
    if out.exists() && !out.is_dir() {
        return Err(Failure::bad(anyhow!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    std::fs::create_dir_all(&out)
        .map_err(|e| Failure::failed(anyhow!("{}: {e}", out.display())))?;
    let cancel = output::install_interrupt_flag().map_err(Failure::failed)?;
    let jobs = args.jobs.unwrap_or_else(num_cpus).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| Failure::failed(anyhow!("thread pool: {e}")))?;
    let multi = indicatif::MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let results: Vec<(String, Result<PathBuf, String>)> = pool.install(|| {
        use rayon::prelude::*;
        scenarios
            .par_iter()
            .map(|s| {
                let bar = multi.add(progress_bar(false, &format!("{:<9}", s.consensus)));
                let r = run_scenario(s, None, Some(bar.clone()), Arc::clone(&cancel));
                bar.finish_and_clear();
                let written = match r {
                    Ok(res) if !cancel.load(Ordering::SeqCst) => {
                        write_results(&out.join(&s.consensus), &res, false, true)
                            .map_err(|e| failure_text(&e))
                    }
                    Ok(_) => Err("interrupted".to_string()),
                    Err(e) => Err(failure_text(&e)),
                };
                (s.consensus.clone(), written)
            })
            .collect()
    });
    if cancel.load(Ordering::SeqCst) {
        return Err(interrupted());
    }
    let mut csv = String::from("protocol,");
    csv.push_str(&output::METRIC_COLUMNS.join(","));
    csv.push('\n');
    let mut any_failed = false;
    for (proto, r) in &results {
        let cells = match r {
            Ok(dir) => {
                let summary = output::load_summary(dir).map_err(Failure::failed)?;
                output::metric_cells("ok", Some(&summary))
            }
            Err(e) => {
                any_failed = true;
                output::metric_cells(&format!("failed: {e}"), None)
            }
        };
        csv.push_str(&csv_row(std::iter::once(proto.clone()).chain(cells)));
    }
    output::write_atomic(out.join("compare.csv"), csv.as_bytes()).map_err(Failure::failed)?;
    plot::plot_dir(&out).map_err(Failure::failed)?;
    report::write_report(&out).map_err(Failure::failed)?;
    print!("{}", compare_table(&out)?);
    if any_failed {
        return Err(Failure::failed(anyhow!(
            "at least one protocol failed (see the status column of {})",
            out.join("compare.csv").display()
        )));
    }
    Ok(())
}

/// Text of a failure for a CSV status cell (one line).
pub fn failure_text(f: &Failure) -> String {
    let e = match f {
        Failure::BadInput(e) | Failure::Failed(e) => e,
    };
    format!("{e:#}").replace(['\n', '\r'], " ")
}

/// One CSV row from cells (quoted where needed).
pub fn csv_row(cells: impl IntoIterator<Item = String>) -> String {
    let cells: Vec<String> = cells
        .into_iter()
        .map(|c| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c
            }
        })
        .collect();
    let mut s = cells.join(",");
    s.push('\n');
    s
}

fn compare_table(out: &Path) -> Result<String, Failure> {
    let table = output::load_table_csv(out.join("compare.csv")).map_err(Failure::failed)?;
    let mut t = format!(
        "{:<10} {:>12} {:>12} {:>10} {:>10} {:>10} {:>8} {:>12} {:>6}\n",
        "protocol",
        "offered/s",
        "achieved/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "views",
        "messages",
        "viol."
    );
    for row in &table.rows {
        let name = table
            .cell(row, "protocol")
            .map(|c| c.to_text())
            .unwrap_or_default();
        if !table.is_ok(row) {
            let status = table
                .cell(row, "status")
                .map(|c| c.to_text())
                .unwrap_or_default();
            t.push_str(&format!("{name:<10} {status}\n"));
            continue;
        }
        let n = |k: &str| table.num(row, k).unwrap_or(f64::NAN);
        // No commits: no latency (the summary's 0 would read as "instant").
        let ms = |k: &str| {
            if n("committed_tx") > 0.0 {
                format!("{:.1}", n(k))
            } else {
                "n/a".to_string()
            }
        };
        t.push_str(&format!(
            "{:<10} {:>12} {:>12} {:>10} {:>10} {:>10} {:>8} {:>12} {:>6}\n",
            name,
            rate_text(n("offered_tps")),
            rate_text(n("throughput_tps")),
            ms("latency_ms_p50"),
            ms("latency_ms_p99"),
            ms("latency_ms_p999"),
            n("view_changes"),
            plot::short_number(n("messages_total")),
            n("invariant_violations"),
        ));
    }
    t.push_str(&format!("results: {}\n", out.display()));
    Ok(t)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `ledgersim sweep`.
pub fn sweep(args: SweepArgs) -> Result<(), Failure> {
    let jobs = args.jobs.unwrap_or_else(num_cpus).max(1);
    sweep::run(&args.sweep, args.out.as_deref(), jobs, args.resume)
}

/// `ledgersim scenarios`.
pub fn scenarios() -> Result<(), Failure> {
    let list = sim::builtin::list();
    let width = list.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, description) in list {
        out.push_str(&format!("{name:<width$}  {description}\n"));
    }
    out.push_str("\nProtocols (--set consensus=NAME):\n");
    for e in sim::protocols::REGISTRY {
        out.push_str(&format!("  {:<10} {}\n", e.name, e.summary));
    }
    print_stdout(&out)
}

/// Write `text` to stdout; a closed pipe (`ledgersim scenarios | head`) is not an error.
fn print_stdout(text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::failed(anyhow!("writing to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// `ledgersim scenario show NAME`.
pub fn scenario_show(name: &str) -> Result<(), Failure> {
    let text = sim::builtin::text(name).map_err(Failure::bad)?;
    if text.ends_with('\n') {
        print_stdout(text)
    } else {
        print_stdout(&format!("{text}\n"))
    }
}

/// `ledgersim plot DIR`.
pub fn plot(dir: &Path) -> Result<(), Failure> {
    if !dir.is_dir() {
        return Err(Failure::bad(anyhow!("{}: not a directory", dir.display())));
    }
    if plot::detect_dir(dir).is_none() {
        return Err(Failure::bad(anyhow!(
            "{}: not a ledgersim results directory (expected summary.json, compare.csv or sweep.csv)",
            dir.display()
        )));
    }
    let files = plot::plot_dir(dir).map_err(Failure::failed)?;
    let report = report::write_report(dir).map_err(Failure::failed)?;
    for f in files {
        println!("{}", f.display());
    }
    println!("{}", report.display());
    Ok(())
}

/// `ledgersim verify DIR`: exit 0 intact, 1 tampered or unreadable.
pub fn verify(dir: &Path) -> Result<(), Failure> {
    match ledger_core::log::verify_dir(dir) {
        Ok(r) => {
            println!(
                "intact: {} shards, {} blocks, {} ops, {} bytes verified (hash chain, tx roots, receipts roots, state roots on replay)",
                r.shard_count, r.blocks, r.ops, r.bytes
            );
            for (i, root) in r.state_roots.iter().enumerate() {
                println!("  shard {i}: state root {}", hex(root));
            }
            Ok(())
        }
        Err(e) => Err(Failure::failed(anyhow!("{}: {e}", dir.display()))),
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `ledgersim demo`.
pub fn demo(out: Option<&Path>) -> Result<(), Failure> {
    let dir = match out {
        Some(p) => {
            if p.exists() && !p.is_dir() {
                return Err(Failure::bad(anyhow!(
                    "--out {}: exists and is not a directory",
                    p.display()
                )));
            }
            p.to_path_buf()
        }
        None => tempfile::Builder::new()
            .prefix("ledgersim-demo-")
            .tempdir()
            .context("creating a temporary directory")
            .map_err(Failure::failed)?
            .keep(),
    };
    let report = ledger_core::demo::run(&dir).map_err(|e| Failure::failed(anyhow!("demo: {e}")))?;
    println!("{report}");
    println!(
        "block log exported to {} (check it: ledgersim verify {})",
        dir.join("ledger").display(),
        dir.join("ledger").display()
    );
    Ok(())
}
