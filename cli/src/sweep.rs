//! `ledgersim sweep`: a grid or list of parameter values over a base scenario.
//!
//! The sweep file (TOML):
//! ```toml
//! name = "shards"                 # optional; default: the file's stem
//! scenario = "default"            # a built-in name or a path relative to the sweep file
//! seed = 1                        # optional; every point runs with this seed (paired comparison)
//! [set]                           # optional: overrides applied to every point
//! duration_s = 20
//! [grid]                          # the cartesian product of these values (keys in sorted order,
//! shards = [1, 2, 4, 8]           # the first key varies slowest)
//! cross_shard_fraction = [0.1]
//! # or, instead of [grid], an explicit list:
//! # [[points]]
//! # shards = 1
//! ```
//! Points are numbered from 0 in that order; point `n` is written to `points/<n>/` atomically as
//! soon as it finishes (with `point.json` naming its parameters and seed), and `sweep.csv` is
//! rebuilt from the point directories in point order, so it does not depend on `--jobs`.
//! `--resume` keeps every finished point whose parameters match and runs the rest. A point
//! that fails (or panics) is recorded with its seed in `points/<n>/failed.json`; the others go on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::anyhow;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::cmd::{self, Failure};
use crate::output;

/// Largest number of points a sweep may have (a named limit against typos like 1e6 values).
pub const MAX_SWEEP_POINTS: usize = 10_000;

/// A sweep file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// Name of the sweep (default: the file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Base scenario: built-in name or path relative to the sweep file.
    #[serde(default)]
    pub scenario: Option<String>,
    /// Seed of every point (default: the scenario's).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Overrides applied to every point.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Values per swept key; the points are the cartesian product.
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    /// An explicit list of points (instead of, or after, the grid).
    #[serde(default)]
    pub points: Vec<BTreeMap<String, toml::Value>>,
}

/// One point of a sweep: its number and its parameter values (as override strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// Point number.
    pub index: usize,
    /// Swept key → value, in the sweep's parameter order.
    pub params: Vec<(String, String)>,
    /// The seed the point runs with.
    pub seed: u64,
}

fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parse a sweep file and expand its points. Errors name the file and the field.
pub fn load(path: &Path) -> Result<(SweepFile, Vec<String>, PathBuf), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::bad(anyhow!("sweep file {}: {e}", path.display())))?;
    let file: SweepFile = toml::from_str(&text).map_err(|e| {
        Failure::bad(anyhow!(
            "sweep file {}: {}",
            path.display(),
            e.message().trim()
        ))
    })?;
    if file.grid.is_empty() && file.points.is_empty() {
        return Err(Failure::bad(anyhow!(
            "sweep file {}: needs a [grid] table of key = [values] or a [[points]] list",
            path.display()
        )));
    }
    for (k, vs) in &file.grid {
        if vs.is_empty() {
            return Err(Failure::bad(anyhow!(
                "sweep file {}: grid.{k}: the list of values is empty",
                path.display()
            )));
        }
    }
    // Parameter columns: grid keys (sorted), then any further keys of explicit points.
    let mut params: Vec<String> = file.grid.keys().cloned().collect();
    for p in &file.points {
        for k in p.keys() {
            if !params.contains(k) {
                params.push(k.clone());
            }
        }
    }
    let base = match &file.scenario {
        Some(s) if s.ends_with(".toml") || s.contains('/') => {
            let rel = Path::new(s);
            if rel.is_absolute() {
                rel.to_path_buf()
            } else {
                path.parent().unwrap_or(Path::new(".")).join(rel)
            }
        }
        Some(s) => PathBuf::from(s),
        None => PathBuf::from("default"),
    };
    Ok((file, params, base))
}

/// Expand the points: the grid's cartesian product (first key slowest), then explicit points.
pub fn expand(file: &SweepFile, params: &[String], seed: u64) -> Result<Vec<Point>, Failure> {
    let mut out: Vec<Vec<(String, String)>> = Vec::new();
    if !file.grid.is_empty() {
        let total: usize = file
            .grid
            .values()
            .map(|v| v.len())
            .try_fold(1usize, |a, n| a.checked_mul(n))
            .unwrap_or(usize::MAX);
        if total > MAX_SWEEP_POINTS {
            return Err(Failure::bad(anyhow!(
                "the grid has {total} points; at most {MAX_SWEEP_POINTS} are allowed"
            )));
        }
        let keys: Vec<&String> = file.grid.keys().collect();
        for n in 0..total {
            // Mixed-radix decode of n: the last key varies fastest, the first slowest.
            let mut rem = n;
            let mut combo: Vec<(String, String)> = Vec::with_capacity(keys.len());
            for k in keys.iter().rev() {
                let values = &file.grid[*k];
                combo.push(((*k).clone(), value_text(&values[rem % values.len()])));
                rem /= values.len();
            }
            combo.reverse();
            out.push(combo);
        }
    }
    for p in &file.points {
        out.push(
            params
                .iter()
                .filter_map(|k| p.get(k).map(|v| (k.clone(), value_text(v))))
                .collect(),
        );
    }
    if out.len() > MAX_SWEEP_POINTS {
        return Err(Failure::bad(anyhow!(
            "the sweep has {} points; at most {MAX_SWEEP_POINTS} are allowed",
            out.len()
        )));
    }
    Ok(out
        .into_iter()
        .enumerate()
        .map(|(index, params)| Point {
            index,
            params,
            seed,
        })
        .collect())
}

/// Run a sweep file.
pub fn run(path: &Path, out: Option<&Path>, jobs: usize, resume: bool) -> Result<(), Failure> {
    let (file, params, base) = load(path)?;
    let base_spec = base.to_string_lossy().to_string();
    let fixed: Vec<String> = file
        .set
        .iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect();
    // The base scenario with fixed overrides decides the default seed.
    let base_scenario =
        cmd::load_scenario(Some(&base_spec), file.seed, &fixed).map_err(|f| match f {
            Failure::BadInput(e) => Failure::bad(anyhow!(
                "sweep file {}: base scenario: {e:#}",
                path.display()
            )),
            other => other,
        })?;
    let seed = base_scenario.seed;
    let points = expand(&file, &params, seed)?;
    // Resolve every point before running any: bad input is reported before anything is written.
    let mut scenarios = Vec::with_capacity(points.len());
    for p in &points {
        let mut sets = fixed.clone();
        sets.extend(p.params.iter().map(|(k, v)| format!("{k}={v}")));
        let s = cmd::load_scenario(Some(&base_spec), Some(seed), &sets).map_err(|f| match f {
            Failure::BadInput(e) => Failure::bad(anyhow!(
                "sweep {} point {} ({}): {e:#}",
                path.display(),
                p.index,
                describe(p)
            )),
            other => other,
        })?;
        scenarios.push(s);
    }
    let name = file.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "sweep".into())
    });
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("out").join(cmd::sanitize(&name)));
    if out.exists() && !out.is_dir() {
        return Err(Failure::bad(anyhow!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    let points_dir = out.join("points");
    if !resume && points_dir.exists() {
        std::fs::remove_dir_all(&points_dir)
            .map_err(|e| Failure::failed(anyhow!("{}: {e}", points_dir.display())))?;
    }
    std::fs::create_dir_all(&points_dir)
        .map_err(|e| Failure::failed(anyhow!("{}: {e}", points_dir.display())))?;
    output::write_atomic(
        out.join("sweep.toml"),
        std::fs::read(path).unwrap_or_default().as_slice(),
    )
    .map_err(Failure::failed)?;

    let todo: Vec<usize> = (0..points.len())
        .filter(|&i| !(resume && point_done(&points_dir, &points[i])))
        .collect();
    let skipped = points.len() - todo.len();
    let cancel = output::install_interrupt_flag().map_err(Failure::failed)?;
    let bar =
        ProgressBar::with_draw_target(Some(points.len() as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "sweep {prefix} [{bar:30}] {pos}/{len} points (eta {eta}) {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.clone());
    bar.set_position(skipped as u64);
    if skipped > 0 {
        bar.println(format!("resuming: {skipped} finished point(s) kept"));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| Failure::failed(anyhow!("thread pool: {e}")))?;
    pool.install(|| {
        use rayon::prelude::*;
        todo.par_iter().for_each(|&i| {
            if cancel.load(Ordering::SeqCst) {
                return;
            }
            run_point(&points_dir, &points[i], &scenarios[i], &cancel);
            bar.inc(1);
        });
    });
    bar.finish_and_clear();
    if cancel.load(Ordering::SeqCst) {
        return Err(Failure::failed(anyhow!(
            "interrupted: finished points are kept in {}; rerun with --resume to complete the sweep",
            points_dir.display()
        )));
    }
    let (csv, failed) = sweep_csv(&points_dir, &points, &params)?;
    output::write_atomic(out.join("sweep.csv"), csv.as_bytes()).map_err(Failure::failed)?;
    crate::plot::plot_dir(&out).map_err(Failure::failed)?;
    crate::report::write_report(&out).map_err(Failure::failed)?;
    println!(
        "sweep {name}: {} points ({} run now, {skipped} kept, {failed} failed) -> {}",
        points.len(),
        todo.len(),
        out.join("sweep.csv").display()
    );
    if failed > 0 {
        return Err(Failure::failed(anyhow!(
            "{failed} point(s) failed; see the status column of sweep.csv"
        )));
    }
    Ok(())
}

fn describe(p: &Point) -> String {
    p.params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn point_done(points_dir: &Path, p: &Point) -> bool {
    let dir = points_dir.join(p.index.to_string());
    let Ok(text) = std::fs::read_to_string(dir.join("point.json")) else {
        return false;
    };
    let Ok(saved) = serde_json::from_str::<Point>(&text) else {
        return false;
    };
    saved == *p && (dir.join("summary.json").is_file() || dir.join("failed.json").is_file())
}

/// Run one point and write its directory; failures and panics become `failed.json`.
fn run_point(points_dir: &Path, p: &Point, s: &sim::Scenario, cancel: &Arc<AtomicBool>) {
    let target = points_dir.join(p.index.to_string());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let r = cmd::run_scenario(s, None, None, Arc::clone(cancel))?;
        if cancel.load(Ordering::SeqCst) {
            return Err(Failure::failed(anyhow!("interrupted")));
        }
        let dir = output::ResultDir::create(&target).map_err(Failure::failed)?;
        let summary = serde_json::to_vec_pretty(&r.summary_json())
            .map_err(|e| Failure::failed(anyhow!("{e}")))?;
        dir.add_file("summary.json", &summary)
            .map_err(Failure::failed)?;
        dir.add_file("timeseries.csv", r.timeseries_csv().as_bytes())
            .map_err(Failure::failed)?;
        dir.add_file("latency.csv", r.latency_csv().as_bytes())
            .map_err(Failure::failed)?;
        dir.add_file("scenario.toml", r.resolved_scenario_toml().as_bytes())
            .map_err(Failure::failed)?;
        let point = serde_json::to_vec_pretty(p).map_err(|e| Failure::failed(anyhow!("{e}")))?;
        dir.add_file("point.json", &point)
            .map_err(Failure::failed)?;
        dir.finish().map_err(Failure::failed)?;
        Ok(())
    }));
    let reason = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(f)) => cmd::failure_text(&f),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            format!("panic: {msg}")
        }
    };
    if cancel.load(Ordering::SeqCst) {
        return; // an interrupted point is simply not finished; --resume reruns it
    }
    let failed = serde_json::json!({
        "status": format!("failed: {reason}"),
        "seed": p.seed,
        "params": p.params,
        "replay": format!("ledgersim run {} --seed {} {}", s.name, p.seed,
            p.params.iter().map(|(k, v)| format!("--set {k}={v}")).collect::<Vec<_>>().join(" ")),
    });
    if let Ok(dir) = output::ResultDir::create(&target) {
        let ok = dir
            .add_file("failed.json", failed.to_string().as_bytes())
            .is_ok()
            && serde_json::to_vec_pretty(p)
                .map(|b| dir.add_file("point.json", &b).is_ok())
                .unwrap_or(false);
        if ok {
            let _ = dir.finish();
        }
    }
}

/// Rebuild sweep.csv from the point directories, in point order. Returns the text and the
/// number of failed points.
fn sweep_csv(
    points_dir: &Path,
    points: &[Point],
    params: &[String],
) -> Result<(String, usize), Failure> {
    let mut csv = String::from("point,");
    for p in params {
        csv.push_str(p);
        csv.push(',');
    }
    csv.push_str(&output::METRIC_COLUMNS.join(","));
    csv.push('\n');
    let mut failed = 0;
    for p in points {
        let dir = points_dir.join(p.index.to_string());
        let mut cells = vec![p.index.to_string()];
        for k in params {
            cells.push(
                p.params
                    .iter()
                    .find(|(pk, _)| pk == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            );
        }
        if dir.join("summary.json").is_file() {
            let summary = output::load_summary(&dir).map_err(Failure::failed)?;
            cells.extend(output::metric_cells("ok", Some(&summary)));
        } else {
            failed += 1;
            let status = std::fs::read_to_string(dir.join("failed.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["status"].as_str().map(String::from))
                .unwrap_or_else(|| "failed: did not finish".to_string());
            let mut m = output::metric_cells(&status, None);
            if let Some(seed) = m.get_mut(1) {
                *seed = p.seed.to_string();
            }
            cells.extend(m);
        }
        csv.push_str(&cmd::csv_row(cells));
    }
    Ok((csv, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_expands_first_key_slowest_and_deterministically() {
        let file: SweepFile =
            toml::from_str("[grid]\nshards = [1, 2]\nconsensus = [\"pbft\", \"raft\"]\n")
                .expect("parses");
        let params: Vec<String> = file.grid.keys().cloned().collect();
        let pts = expand(&file, &params, 7)
            .map_err(|_| "expand")
            .expect("expands");
        let got: Vec<String> = pts.iter().map(describe).collect();
        assert_eq!(
            got,
            vec![
                "consensus=pbft shards=1",
                "consensus=pbft shards=2",
                "consensus=raft shards=1",
                "consensus=raft shards=2"
            ]
        );
        assert!(pts.iter().all(|p| p.seed == 7));
    }

    #[test]
    fn unknown_sweep_fields_are_refused() {
        assert!(toml::from_str::<SweepFile>("gird = 1").is_err());
    }
}
