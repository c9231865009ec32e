//! Result files end to end: fixture result directories in the docs/results.md format are plotted
//! and reported; the outputs are decoded and checked. Also: schema errors of the loaders, and the
//! atomicity of `write_atomic` and `ResultDir`.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ledgersim::output::{
    self, load_latency, load_summary, load_table_csv, load_timeseries, metric_cells, write_atomic,
    Cell, OutputError, ResultDir, TableKind, METRIC_COLUMNS,
};
use ledgersim::plot::{self, plot_dir, DirKind, PLOT_HEIGHT_PX, PLOT_WIDTH_PX};
use ledgersim::report::write_report;
use serde_json::json;

// ------------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------------

const DIGEST: &str = "3f9a0c4e5b6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b";

fn summary_json(
    consensus: &str,
    throughput_tps: f64,
    p50_ms: f64,
    violations: u64,
) -> serde_json::Value {
    json!({
        "scenario": "hospital",
        "seed": 42,
        "consensus": consensus,
        "shards": 4,
        "nodes": 16,
        "sim_time_s": 60.0,
        "wall_time_s": 3.21,
        "events": 4_812_331u64,
        "events_per_wall_s": 1_499_169.5,
        "sim_s_per_wall_s": 18.69,
        "submitted_tx": 60_000,
        "committed_tx": (throughput_tps * 50.0) as u64,
        "rejected_tx": 312,
        "aborted_tx": 87,
        "throughput_tps": throughput_tps,
        "offered_tps": 1200.0,
        "latency_ms": {"p50": p50_ms, "p90": p50_ms * 2.1, "p99": p50_ms * 4.3,
                        "p999": p50_ms * 7.9, "max": p50_ms * 12.0, "mean": p50_ms * 1.3},
        "messages": {"total": 2_345_678u64, "bytes": 987_654_321u64,
                     "by_type": {"prepare": {"count": 1_000_000u64, "bytes": 400_000_000u64},
                                 "commit": {"count": 1_345_678u64, "bytes": 587_654_321u64}}},
        "cross_shard": {"fraction": 0.18, "abort_rate": 0.021, "latency_ms_p50": p50_ms * 2.0,
                        "latency_ms_p99": p50_ms * 6.0, "single_shard_latency_ms_p50": p50_ms,
                        "single_shard_latency_ms_p99": p50_ms * 4.0},
        "forks": {"stale_blocks": 0, "stale_rate": 0.0, "reorgs": 0},
        "view_changes": 1,
        "blocks_committed": 1_204,
        "trace_digest": DIGEST,
        "invariants": {"checked": 48_160, "violations": violations}
    })
}

fn write_run_dir(dir: &Path, consensus: &str, throughput_tps: f64, p50_ms: f64, violations: u64) {
    fs::create_dir_all(dir).unwrap();
    let summary = summary_json(consensus, throughput_tps, p50_ms, violations);
    fs::write(
        dir.join("summary.json"),
        serde_json::to_vec_pretty(&summary).unwrap(),
    )
    .unwrap();

    let mut ts = String::from(
        "t_s,warmup,offered_tps,committed_tps,rejected_tps,aborted_tps,latency_ms_p50,latency_ms_p99,bytes_sent,view_changes\n",
    );
    for t in 0..60u32 {
        let warm = t < 10;
        let offered = 1200.0 + 150.0 * (f64::from(t) / 5.0).sin();
        // ramp up during warm-up, a dip around the view change at t=30
        let ramp = (f64::from(t) / 8.0).min(1.0);
        let dip = if (30..33).contains(&t) { 0.35 } else { 1.0 };
        let committed = (offered.min(throughput_tps) * ramp * dip).round();
        let (p50, p99) = if committed > 0.0 {
            (
                format!("{:.2}", p50_ms * (1.0 + 0.05 * f64::from(t % 7))),
                format!("{:.2}", p50_ms * 4.3),
            )
        } else {
            (String::new(), String::new())
        };
        let _ = writeln!(
            ts,
            "{t},{},{offered:.1},{committed},{:.1},{:.1},{p50},{p99},{},{}",
            u8::from(warm),
            committed * 0.005,
            committed * 0.0015,
            16_000_000 + u64::from(t) * 1_000,
            u8::from(t == 30)
        );
    }
    fs::write(dir.join("timeseries.csv"), ts).unwrap();

    let mut lat = String::from("percentile,latency_ms\n");
    let mut pcts: Vec<f64> = (0..=99).map(f64::from).collect();
    pcts.extend([99.5, 99.9, 99.99, 100.0]);
    for p in pcts {
        // a long right tail: exponential above a floor
        let q = (p / 100.0).min(0.99995);
        let v = p50_ms * 0.4 + p50_ms * 0.6 * (-(1.0 - q).ln() / std::f64::consts::LN_2);
        let _ = writeln!(lat, "{p},{v:.3}");
    }
    fs::write(dir.join("latency.csv"), lat).unwrap();
    fs::write(
        dir.join("scenario.toml"),
        "name = \"hospital\"\nseed = 42\nconsensus = \"pbft\"\n",
    )
    .unwrap();
}

fn metrics_row(
    status: &str,
    tps: f64,
    offered: f64,
    p50: f64,
    p99: f64,
    abort: f64,
    violations: u64,
) -> String {
    if status != "ok" {
        let mut cells = vec![String::new(); METRIC_COLUMNS.len()];
        cells[0] = status.to_string();
        return cells.join(",");
    }
    format!(
        "ok,42,{tps},{offered},{},{},12,{p50},{},{p99},{},{},0.18,{abort},0,1,2345678,987654321,4812331,{violations},{DIGEST},2.5,{},{},{},{},321",
        (tps * 50.0) as u64,
        (abort * 1000.0) as u64,
        p50 * 2.0,
        p99 * 2.0,
        p50 * 1.3,
        p50 * 1.8,
        p99 * 1.5,
        p50 * 0.9,
        p99 * 0.9
    )
}

fn write_compare_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let mut csv = format!("protocol,{}\n", METRIC_COLUMNS.join(","));
    let rows = [
        ("pbft", "ok", 1187.5, 182.0, 640.0, 0),
        ("hotstuff", "ok", 1195.25, 121.0, 455.0, 2),
        ("raft", "ok", 1199.0, 38.5, 121.0, 0),
        ("pow", "failed: timeout after 600 s", 0.0, 0.0, 0.0, 0),
        ("pos", "ok", 640.0, 6_100.0, 12_800.0, 0),
    ];
    for (name, status, tps, p50, p99, v) in rows {
        let _ = writeln!(
            csv,
            "{name},{}",
            metrics_row(status, tps, 1200.0, p50, p99, 0.02, v)
        );
    }
    fs::write(dir.join("compare.csv"), csv).unwrap();
    write_run_dir(&dir.join("pbft"), "pbft", 1187.5, 182.0, 0);
    write_run_dir(&dir.join("raft"), "raft", 1199.0, 38.5, 0);
}

/// A sweep over `consensus` x `offered_tps`: the hockey stick, one line per protocol.
fn write_load_sweep(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let mut csv = format!("point,consensus,offered_tps,{}\n", METRIC_COLUMNS.join(","));
    let mut point = 0;
    for (proto, capacity, base) in [("pbft", 2400.0, 150.0), ("raft", 4100.0, 35.0)] {
        for offered in [500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0] {
            let status = if proto == "raft" && offered == 5000.0 {
                "failed: out of memory"
            } else {
                "ok"
            };
            let tps = f64::min(offered, capacity);
            let util: f64 = f64::min(offered / capacity, 0.97);
            let p50 = base / (1.0 - util);
            let _ = writeln!(
                csv,
                "{point},{proto},{offered},{}",
                metrics_row(status, tps, offered, p50, p50 * 3.5, 0.01, 0)
            );
            point += 1;
        }
    }
    fs::write(dir.join("sweep.csv"), csv).unwrap();
}

fn write_shard_sweep(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let mut csv = format!("point,shards,{}\n", METRIC_COLUMNS.join(","));
    for (i, shards) in [1u32, 2, 4, 8, 16, 32].into_iter().enumerate() {
        let s = f64::from(shards);
        let tps = 1150.0 * s * (1.0 - 0.02 * s.log2());
        let _ = writeln!(
            csv,
            "{i},{shards},{}",
            metrics_row(
                "ok",
                tps,
                tps * 1.05,
                140.0 + 4.0 * s,
                520.0 + 20.0 * s,
                0.0,
                0
            )
        );
    }
    fs::write(dir.join("sweep.csv"), csv).unwrap();
}

fn write_cross_sweep(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let mut csv = format!("point,cross_shard_fraction,{}\n", METRIC_COLUMNS.join(","));
    for (i, f) in [0.0, 0.1, 0.2, 0.3, 0.5].into_iter().enumerate() {
        let _ = writeln!(
            csv,
            "{i},{f},{}",
            metrics_row(
                "ok",
                4000.0 * (1.0 - 0.6 * f),
                4000.0,
                150.0 * (1.0 + f),
                600.0 * (1.0 + 2.0 * f),
                0.3 * f * f,
                0
            )
        );
    }
    fs::write(dir.join("sweep.csv"), csv).unwrap();
}

// ------------------------------------------------------------------------------------------
// Checks of generated files
// ------------------------------------------------------------------------------------------

fn check_png(path: &Path) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()))
        .to_rgb8();
    assert_eq!(
        img.dimensions(),
        (PLOT_WIDTH_PX, PLOT_HEIGHT_PX),
        "{}",
        path.display()
    );
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 40,
        "{} looks blank: only {} colours",
        path.display(),
        colours.len()
    );
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(
        non_white > 10_000,
        "{} has only {non_white} non-white pixels",
        path.display()
    );
}

fn check_svg(path: &Path, title_part: &str) {
    let text = fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let all_text: String = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        all_text.contains(title_part),
        "{} lacks the title text {title_part:?}",
        path.display()
    );
}

fn check_report(path: &Path, must_contain: &[&str]) -> String {
    let html = fs::read_to_string(path).unwrap();
    for s in must_contain {
        assert!(html.contains(s), "{} lacks {s:?}", path.display());
    }
    for bad in ["src=\"http", "href=\"http", "<script", "<link", "url(http"] {
        assert!(
            !html.contains(bad),
            "{} has an external reference or script: {bad}",
            path.display()
        );
    }
    html
}

fn names(files: &[PathBuf]) -> Vec<String> {
    let mut v: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A scratch directory; with `LEDGERSIM_KEEP_TEST_OUTPUT=DIR` set, plots and reports are kept in
/// `DIR/<name>` for a look at them.
fn scratch(name: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("LEDGERSIM_KEEP_TEST_OUTPUT") {
        Some(root) => {
            let dir = PathBuf::from(root).join(name);
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            (None, dir)
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

// ------------------------------------------------------------------------------------------
// Plots and reports
// ------------------------------------------------------------------------------------------

#[test]
fn run_dir_plots_and_report() {
    let (_keep, root) = scratch("run_dir_plots_and_report");
    let dir = root.join("run");
    write_run_dir(&dir, "pbft", 1187.5, 182.0, 3);
    assert_eq!(plot::detect_dir(&dir), Some(DirKind::Run));

    let written = plot_dir(&dir).unwrap();
    assert_eq!(
        names(&written),
        [
            "latency_cdf.png",
            "latency_cdf.svg",
            "throughput.png",
            "throughput.svg"
        ]
    );
    for f in &written {
        assert!(f.starts_with(&dir));
    }
    check_png(&dir.join("throughput.png"));
    check_png(&dir.join("latency_cdf.png"));
    check_svg(
        &dir.join("throughput.svg"),
        "Throughput — hospital (pbft, 4 shards",
    );
    check_svg(&dir.join("latency_cdf.svg"), "Commit latency CDF");
    check_svg(&dir.join("latency_cdf.svg"), "p50 = 182 ms");

    let report = write_report(&dir).unwrap();
    let html = check_report(
        &report,
        &[
            "hospital",
            "pbft",
            "1,187.5",   // throughput
            "1,200.0",   // offered
            "182.00",    // p50
            "782.60",    // p99 = 182 * 4.3
            "18.00 %",   // cross-shard fraction
            "2.10 %",    // abort rate
            "48,160",    // invariants checked
            "2,345,678", // messages
            DIGEST,
            "<svg",
            "prepare",
        ],
    );
    // three violations: highlighted
    assert!(
        html.contains("<td class=\"num bad\">3</td>"),
        "violations not highlighted"
    );
    // The inline SVGs must stay well-formed inside the page.
    assert_eq!(html.matches("<svg").count(), 2);
}

#[test]
fn compare_dir_plots_and_report() {
    let (_keep, root) = scratch("compare_dir_plots_and_report");
    let dir = root.join("cmp");
    write_compare_dir(&dir);
    assert_eq!(plot::detect_dir(&dir), Some(DirKind::Compare));
    let written = plot_dir(&dir).unwrap();
    // compare plot plus the nested run dirs that exist
    assert!(written.contains(&dir.join("compare.svg")));
    assert!(written.contains(&dir.join("pbft").join("throughput.png")));
    assert!(written.contains(&dir.join("raft").join("latency_cdf.svg")));
    assert_eq!(written.len(), 2 + 2 * 4);
    check_png(&dir.join("compare.png"));
    check_svg(
        &dir.join("compare.svg"),
        "Protocol comparison — hospital, seed 42 (1 failed protocol skipped)",
    );
    let svg = fs::read_to_string(dir.join("compare.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let labels: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for name in ["pbft", "hotstuff", "raft", "pos"] {
        assert!(
            labels.contains(&name),
            "compare.svg lacks the axis label {name}"
        );
    }
    assert!(
        !labels.contains(&"pow"),
        "the failed protocol must not be drawn"
    );

    let report = write_report(&dir).unwrap();
    let html = check_report(
        &report,
        &[
            "1,187.5",
            "1,195.25",
            "hotstuff",
            "failed: timeout after 600 s",
            "6,100",
            "<svg",
        ],
    );
    assert!(
        html.contains("<td class=\"num bad\">2</td>"),
        "hotstuff's violations not highlighted"
    );
    assert!(html.contains("<td class=\"bad\">failed: timeout after 600 s</td>"));
}

#[test]
fn sweep_dirs_plots_and_report() {
    let (_keep, root) = scratch("sweep_dirs_plots_and_report");

    let load = root.join("load");
    write_load_sweep(&load);
    assert_eq!(plot::detect_dir(&load), Some(DirKind::Sweep));
    let written = plot_dir(&load).unwrap();
    assert_eq!(
        names(&written),
        ["latency_vs_offered_load.png", "latency_vs_offered_load.svg"]
    );
    check_png(&load.join("latency_vs_offered_load.png"));
    check_svg(
        &load.join("latency_vs_offered_load.svg"),
        "Latency vs offered load — 11 points (1 failed point skipped)",
    );
    let svg = fs::read_to_string(load.join("latency_vs_offered_load.svg")).unwrap();
    assert!(
        svg.contains("pbft p99") && svg.contains("raft p50"),
        "one line per protocol"
    );
    let report = write_report(&load).unwrap();
    check_report(
        &report,
        &["failed: out of memory", "offered_tps", "<svg", "1 failed"],
    );

    let shards = root.join("shards");
    write_shard_sweep(&shards);
    let written = plot_dir(&shards).unwrap();
    assert_eq!(
        names(&written),
        ["throughput_vs_shards.png", "throughput_vs_shards.svg"]
    );
    check_png(&shards.join("throughput_vs_shards.png"));
    check_svg(
        &shards.join("throughput_vs_shards.svg"),
        "Throughput and latency vs shards — 6 points",
    );
    check_report(&write_report(&shards).unwrap(), &["<svg", "shards"]);

    let cross = root.join("cross");
    write_cross_sweep(&cross);
    let written = plot_dir(&cross).unwrap();
    assert_eq!(
        names(&written),
        [
            "abort_rate_vs_cross_shard_fraction.png",
            "abort_rate_vs_cross_shard_fraction.svg",
            "throughput_vs_cross_shard_fraction.png",
            "throughput_vs_cross_shard_fraction.svg"
        ]
    );
    check_png(&cross.join("abort_rate_vs_cross_shard_fraction.png"));
    check_svg(
        &cross.join("abort_rate_vs_cross_shard_fraction.svg"),
        "Cross-shard abort rate",
    );
    check_png(&cross.join("throughput_vs_cross_shard_fraction.png"));
    check_svg(
        &cross.join("throughput_vs_cross_shard_fraction.svg"),
        "cross-shard vs single-shard",
    );
}

#[test]
fn report_escapes_strings_from_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    write_run_dir(&dir, "pbft", 1000.0, 100.0, 0);
    let mut s = summary_json("<script>alert(1)</script>", 1000.0, 100.0, 0);
    s["scenario"] = json!("a & \"b\" <img src=\"http://x\">");
    fs::write(dir.join("summary.json"), serde_json::to_vec(&s).unwrap()).unwrap();
    // no plots drawn: the report notes their absence instead of failing
    let html = check_report(
        &write_report(&dir).unwrap(),
        &[
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "a &amp; &quot;b&quot;",
        ],
    );
    assert!(html.contains("plot not available"));
}

#[test]
fn run_without_commits_still_plots() {
    let tmp = tempfile::tempdir().unwrap();
    write_run_dir(tmp.path(), "pow", 0.0, 100.0, 0);
    fs::write(tmp.path().join("latency.csv"), "percentile,latency_ms\n").unwrap();
    let written = plot_dir(tmp.path()).unwrap();
    assert_eq!(written.len(), 4);
    check_svg(
        &tmp.path().join("latency_cdf.svg"),
        "no committed transactions",
    );
    check_png(&tmp.path().join("latency_cdf.png"));
}

#[test]
fn plot_dir_rejects_a_non_results_dir() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        plot_dir(tmp.path()),
        Err(plot::PlotError::NotResultsDir(_))
    ));
}

// ------------------------------------------------------------------------------------------
// Schema checks
// ------------------------------------------------------------------------------------------

#[test]
fn summary_loads_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    write_run_dir(tmp.path(), "raft", 900.0, 40.0, 0);
    let s = load_summary(tmp.path()).unwrap();
    assert_eq!(s.consensus, "raft");
    assert_eq!(s.latency_ms.p50, Some(40.0));
    assert_eq!(s.messages.by_type["commit"].count, 1_345_678);
    // the struct serializes to the same keys it was loaded from
    let v = serde_json::to_value(&s).unwrap();
    let again = output::summary_from_json(Path::new("x.json"), &v).unwrap();
    assert_eq!(again, s);
    // metric_cells follows METRIC_COLUMNS
    let cells = metric_cells("ok", Some(&s));
    assert_eq!(cells.len(), METRIC_COLUMNS.len());
    assert_eq!(cells[2], "900");
    assert_eq!(cells[20], DIGEST);
    let failed = metric_cells("failed: x", None);
    assert_eq!(failed[0], "failed: x");
    assert!(failed[1..].iter().all(String::is_empty));
}

#[test]
fn summary_schema_errors_name_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("summary.json");

    let mut s = summary_json("pbft", 1000.0, 100.0, 0);
    s["latency_ms"].as_object_mut().unwrap().remove("p99");
    fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
    let err = load_summary(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, OutputError::MissingKey { key, .. } if key == "latency_ms.p99"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("summary.json") && msg.contains("latency_ms.p99"),
        "{msg}"
    );

    let mut s = summary_json("pbft", 1000.0, 100.0, 0);
    s["committed_tx"] = json!("many");
    fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
    let msg = load_summary(tmp.path()).unwrap_err().to_string();
    assert!(
        msg.contains("committed_tx") && msg.contains("integer") && msg.contains("summary.json"),
        "{msg}"
    );

    let mut s = summary_json("pbft", 1000.0, 100.0, 0);
    s["messages"]["by_type"]["prepare"] = json!({"count": 3});
    fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
    let msg = load_summary(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("messages.by_type.prepare.bytes"), "{msg}");

    let mut s = summary_json("pbft", 1000.0, 100.0, 0);
    s["trace_digest"] = json!("abc");
    fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
    assert!(load_summary(tmp.path())
        .unwrap_err()
        .to_string()
        .contains("trace_digest"));

    // null is allowed where a value does not apply
    let mut s = summary_json("pbft", 1000.0, 100.0, 0);
    s["latency_ms"]["p50"] = json!(null);
    fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
    assert_eq!(load_summary(tmp.path()).unwrap().latency_ms.p50, None);

    fs::write(&path, b"{\"scenario\": ").unwrap();
    let msg = load_summary(tmp.path()).unwrap_err().to_string();
    assert!(
        msg.contains("summary.json") && msg.contains("line 1"),
        "{msg}"
    );
}

#[test]
fn csv_errors_name_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    write_run_dir(tmp.path(), "pbft", 1000.0, 100.0, 0);
    let ts = load_timeseries(tmp.path()).unwrap();
    assert_eq!(ts.len(), 60);
    assert!(ts[0].warmup && !ts[10].warmup);
    assert_eq!(ts[30].view_changes, 1);
    assert_eq!(load_latency(tmp.path()).unwrap().len(), 104);

    // corrupt committed_tps on the third data row (line 4 of the file)
    let path = tmp.path().join("timeseries.csv");
    let text = fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<&str> = lines[3].split(',').collect();
    cells[3] = "12x";
    lines[3] = cells.join(",");
    fs::write(&path, lines.join("\n")).unwrap();
    let err = load_timeseries(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, OutputError::BadCell { line: 4, column, .. } if column == "committed_tps"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("timeseries.csv") && msg.contains("line 4") && msg.contains("committed_tps"),
        "{msg}"
    );

    fs::write(
        tmp.path().join("latency.csv"),
        "percentile,latency_ms\n50,12\n101,13\n",
    )
    .unwrap();
    let msg = load_latency(tmp.path()).unwrap_err().to_string();
    assert!(
        msg.contains("line 3") && msg.contains("percentile"),
        "{msg}"
    );

    fs::write(tmp.path().join("latency.csv"), "percentile\n50\n").unwrap();
    let msg = load_latency(tmp.path()).unwrap_err().to_string();
    assert!(
        msg.contains("latency_ms") && msg.contains("missing column"),
        "{msg}"
    );
}

#[test]
fn table_csv_loads_and_checks_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    write_load_sweep(tmp.path());
    let t = load_table_csv(tmp.path().join("sweep.csv")).unwrap();
    assert_eq!(t.kind, TableKind::Sweep);
    assert_eq!(t.param_columns(), ["consensus", "offered_tps"]);
    assert_eq!(t.rows.len(), 12);
    assert_eq!(
        t.cell(&t.rows[0], "consensus"),
        Some(&Cell::Text("pbft".into()))
    );
    assert_eq!(t.num(&t.rows[1], "offered_tps"), Some(1000.0));
    assert_eq!(t.rows.iter().filter(|r| !t.is_ok(r)).count(), 1);
    assert_eq!(t.cell(&t.rows[11], "throughput_tps"), Some(&Cell::Empty));

    let path = tmp.path().join("sweep.csv");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replacen(",ok,42,500,", ",ok,42,5o0,", 1);
    fs::write(&path, text).unwrap();
    let err = load_table_csv(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("sweep.csv") && msg.contains("line 2") && msg.contains("throughput_tps"),
        "{msg}"
    );

    fs::write(&path, "point,shards,status\n0,1,ok\n").unwrap();
    let msg = load_table_csv(&path).unwrap_err().to_string();
    assert!(msg.contains("missing column `seed`"), "{msg}");
}

// ------------------------------------------------------------------------------------------
// Atomic writing
// ------------------------------------------------------------------------------------------

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn write_atomic_leaves_no_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a.txt");
    write_atomic(&path, b"one").unwrap();
    write_atomic(&path, b"two").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    assert_eq!(entries(tmp.path()), ["a.txt"]);
    // a failing write (the target is a directory) cleans its temporary file up
    fs::create_dir(tmp.path().join("d")).unwrap();
    assert!(write_atomic(tmp.path().join("d"), b"x").is_err());
    assert_eq!(entries(tmp.path()), ["a.txt", "d"]);
    assert!(entries(&tmp.path().join("d")).is_empty());
}

#[test]
fn dropped_result_dir_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("out");
    {
        let rd = ResultDir::create(&target).unwrap();
        rd.add_file("summary.json", b"{}").unwrap();
        assert!(rd.path().join("summary.json").is_file());
        assert!(
            !target.exists(),
            "nothing under the target name before finish"
        );
    }
    assert!(
        entries(tmp.path()).is_empty(),
        "left: {:?}",
        entries(tmp.path())
    );

    // a panic mid-run unwinds through the builder's Drop
    let t2 = target.clone();
    let r = std::panic::catch_unwind(move || {
        let rd = ResultDir::create(&t2).unwrap();
        rd.add_file("timeseries.csv", b"t_s\n").unwrap();
        panic!("simulated failure mid-run");
    });
    assert!(r.is_err());
    assert!(
        entries(tmp.path()).is_empty(),
        "left: {:?}",
        entries(tmp.path())
    );
}

#[test]
fn finish_replaces_previous_results() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("out");
    let rd = ResultDir::create(&target).unwrap();
    rd.add_file("summary.json", b"old").unwrap();
    rd.add_file("stale-only-in-old.txt", b"x").unwrap();
    assert_eq!(rd.finish().unwrap(), target);

    let rd = ResultDir::create(&target).unwrap();
    rd.add_file("summary.json", b"new").unwrap();
    rd.add_file("points/0/summary.json", b"p").unwrap();
    let raw = b"t,x\n0,1\n".repeat(100);
    rd.add_gz_file("transactions.csv.gz", &raw).unwrap();
    // the old results stay intact until finish
    assert_eq!(fs::read(target.join("summary.json")).unwrap(), b"old");
    rd.finish().unwrap();

    assert_eq!(entries(tmp.path()), ["out"], "no backup or temp dir left");
    assert_eq!(
        entries(&target),
        ["points", "summary.json", "transactions.csv.gz"]
    );
    assert_eq!(fs::read(target.join("summary.json")).unwrap(), b"new");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(target.join("transactions.csv.gz")).unwrap())
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, raw);
}

#[test]
fn result_dir_refuses_foreign_targets_and_bad_names() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("home");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("thesis.tex"), b"precious").unwrap();
    assert!(matches!(
        ResultDir::create(&target),
        Err(OutputError::NotResultsDir(_))
    ));
    assert_eq!(fs::read(target.join("thesis.tex")).unwrap(), b"precious");

    let rd = ResultDir::create(tmp.path().join("ok")).unwrap();
    for bad in ["../escape", "/abs", "", "a/../../b"] {
        assert!(
            matches!(rd.add_file(bad, b"x"), Err(OutputError::BadName(_))),
            "{bad:?} accepted"
        );
    }
    drop(rd);
    assert_eq!(entries(tmp.path()), ["home"]);
}

#[test]
fn interrupt_flag_is_installed_once() {
    let a = output::install_interrupt_flag().unwrap();
    let b = output::install_interrupt_flag().unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert!(!a.load(std::sync::atomic::Ordering::SeqCst));
}
