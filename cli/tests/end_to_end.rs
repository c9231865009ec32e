//! The real `ledgersim` binary, end to end: `run` of the built-in default prints the table and
//! writes every file of the results contract (each loaded with its schema check, plots decoded
//! and parsed, the report self-contained), the run is reproducible from its own
//! `scenario.toml`; `compare` and a `sweep` over `workload.imaging.mode` write their tables,
//! plots and reports. Runs are shortened with `--set` to keep the file to seconds.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use ledgersim::output::{load_latency, load_summary, load_table_csv, load_timeseries};
use ledgersim::plot::{PLOT_HEIGHT_PX, PLOT_WIDTH_PX};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ledgersim")
}

/// Run `ledgersim args…` in `cwd`; panics with stderr unless it exits 0; returns stdout.
fn ledgersim(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run ledgersim");
    assert!(
        out.status.success(),
        "ledgersim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

fn check_png(path: &Path) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), (PLOT_WIDTH_PX, PLOT_HEIGHT_PX));
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(non_white > 10_000, "{} looks blank", path.display());
}

fn check_svg(path: &Path) {
    let text = std::fs::read_to_string(path).expect("svg");
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
}

fn check_report(path: &Path) -> String {
    let html = std::fs::read_to_string(path).expect("report.html");
    assert!(
        html.contains("<img") || html.contains("<svg"),
        "no plot embedded"
    );
    for bad in ["src=\"http", "href=\"http", "<script", "<link"] {
        assert!(
            !html.contains(bad),
            "{}: external reference {bad}",
            path.display()
        );
    }
    html
}

fn short() -> [&'static str; 4] {
    ["--set", "duration_s=3", "--set", "warmup_s=1"]
}

#[test]
fn run_default_writes_the_whole_results_contract() {
    let work = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["run"];
    args.extend(short());
    args.extend(["--record-transactions", "--out", "res"]);
    let table = ledgersim(work.path(), &args);
    for line in [
        "scenario default   consensus pbft   shards 4   nodes 16",
        "offered",
        "achieved",
        "p50",
        "p99",
        "p99.9",
        "cross-shard",
        "abort rate",
        "invariants",
        "0 violations",
        "trace digest",
        "results        res",
    ] {
        assert!(table.contains(line), "table lacks {line:?}:\n{table}");
    }
    let dir = work.path().join("res");
    let s = load_summary(&dir).expect("summary.json schema");
    assert_eq!((s.consensus.as_str(), s.shards, s.nodes), ("pbft", 4, 16));
    assert!(s.committed_tx > 0);
    assert!(table.contains(&s.trace_digest), "digest printed");
    let ts = load_timeseries(&dir).expect("timeseries.csv schema");
    assert_eq!(ts.len(), 3, "one row per simulated second");
    let lat = load_latency(&dir).expect("latency.csv schema");
    assert!(lat.len() > 100);
    let mut gz = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(dir.join("transactions.csv.gz")).expect("transactions.csv.gz"),
    )
    .read_to_string(&mut gz)
    .expect("gunzip");
    assert!(gz.starts_with("id,kind,client,cross_shard,submit_ms,done_ms,status,latency_ms\n"));
    assert!(gz.lines().count() as u64 > s.committed_tx);
    for stem in ["throughput", "latency_cdf"] {
        check_png(&dir.join(format!("{stem}.png")));
        check_svg(&dir.join(format!("{stem}.svg")));
    }
    check_report(&dir.join("report.html"));

    // Reproducible from its own directory: the resolved scenario gives the same digest.
    let again = ledgersim(
        work.path(),
        &[
            "run",
            "res/scenario.toml",
            "--out",
            "again",
            "--no-plots",
            "--quiet",
        ],
    );
    assert!(again.is_empty(), "--quiet prints nothing: {again}");
    let s2 = load_summary(work.path().join("again")).expect("summary");
    assert_eq!(s2.trace_digest, s.trace_digest);
}

#[test]
fn compare_and_imaging_mode_sweep_write_tables_plots_and_reports() {
    let work = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["compare", "--consensus", "pbft,raft", "--jobs", "2"];
    args.extend(short());
    args.extend(["--out", "cmp"]);
    let table = ledgersim(work.path(), &args);
    assert!(table.contains("pbft") && table.contains("raft"), "{table}");
    let cmp = work.path().join("cmp");
    let t = load_table_csv(cmp.join("compare.csv")).expect("compare.csv schema");
    assert_eq!(t.rows.len(), 2);
    assert!(t.rows.iter().all(|r| t.is_ok(r)));
    for p in ["pbft", "raft"] {
        let s = load_summary(cmp.join(p)).expect("per-protocol results");
        assert_eq!(s.consensus, p);
    }
    check_png(&cmp.join("compare.png"));
    check_svg(&cmp.join("compare.svg"));
    check_report(&cmp.join("report.html"));

    let sweep = work.path().join("imaging.toml");
    std::fs::write(
        &sweep,
        "scenario = \"default\"\nseed = 2\n[set]\nduration_s = 3\nwarmup_s = 1\n\
         [grid]\n\"workload.imaging.mode\" = [\"anchor\", \"onchain\"]\noffered_tps = [500, 1000]\n",
    )
    .expect("write sweep");
    ledgersim(
        work.path(),
        &["sweep", "imaging.toml", "--jobs", "2", "--out", "sw"],
    );
    let sw = work.path().join("sw");
    let t = load_table_csv(sw.join("sweep.csv")).expect("sweep.csv schema");
    assert_eq!(t.param_columns(), ["offered_tps", "workload.imaging.mode"]);
    assert_eq!(t.rows.len(), 4);
    let modes: Vec<String> = t
        .rows
        .iter()
        .map(|r| t.cell(r, "workload.imaging.mode").expect("cell").to_text())
        .collect();
    assert_eq!(modes, ["anchor", "onchain", "anchor", "onchain"]);
    check_png(&sw.join("latency_vs_offered_load.png"));
    check_svg(&sw.join("latency_vs_offered_load.svg"));
    let html = check_report(&sw.join("report.html"));
    assert!(html.contains("onchain"));
}

#[test]
fn a_run_that_commits_nothing_still_writes_plots_and_says_so() {
    // On-chain imaging at 20 studies/s saturates 100 Mbps links: nothing commits in 6 s.
    let work = tempfile::tempdir().expect("temp dir");
    let table = ledgersim(
        work.path(),
        &[
            "run",
            "imaging",
            "--set",
            "workload.imaging.mode=onchain",
            "--set",
            "duration_s=6",
            "--set",
            "warmup_s=1",
            "--out",
            "img",
        ],
    );
    assert!(table.contains("committed 0"), "{table}");
    assert!(table.contains("latency        n/a"), "{table}");
    let dir = work.path().join("img");
    assert_eq!(load_summary(&dir).expect("summary").committed_tx, 0);
    assert!(load_latency(&dir).expect("latency.csv").is_empty());
    check_svg(&dir.join("latency_cdf.svg"));
    check_report(&dir.join("report.html"));

    let cmp = ledgersim(
        work.path(),
        &[
            "compare",
            "img/scenario.toml",
            "--consensus",
            "pbft,raft",
            "--out",
            "cmp",
        ],
    );
    assert!(cmp.contains("n/a"), "{cmp}");
    let t = load_table_csv(work.path().join("cmp/compare.csv")).expect("compare.csv");
    assert!(
        t.rows.iter().all(|r| t.is_ok(r)),
        "runs without commits are not failures"
    );
}
