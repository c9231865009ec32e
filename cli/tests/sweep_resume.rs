//! Nothing lost on a kill: a real `ledgersim sweep` process interrupted with SIGINT keeps
//! its finished points complete and leaves no temp directories; `--resume` finishes the
//! sweep without rerunning the kept points, and its sweep.csv equals a fresh run's
//! (ignoring wall time). A `ledgersim run` killed with SIGTERM midway leaves no results
//! directory and no temp directory.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for a child to reach a state before failing the test.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// Polling interval while waiting on a child.
const POLL: Duration = Duration::from_millis(10);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ledgersim")
}

/// Six points of the default scenario pinned to one sequencer shard of four nodes (cheap
/// and steady), each about 100 simulated seconds: a few tenths of a second of wall time apiece.
const SWEEP: &str = r#"name = "resume-test"
scenario = "default"
seed = 3

[set]
duration_s = 100
warmup_s = 1
consensus = "sequencer"
shards = 1

[grid]
offered_tps = [400, 500, 600, 700, 800, 900]
"#;

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {} failed", child.id());
}

fn wait_with_limit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if start.elapsed() > WAIT_LIMIT {
            let _ = child.kill();
            panic!("ledgersim did not exit within {WAIT_LIMIT:?} of being signalled");
        }
        std::thread::sleep(POLL);
    }
}

/// Names of every entry under `dir` (recursively) that looks like a temp file or directory.
fn temp_leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.expect("entry").path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.contains(".tmp-") || name.ends_with(".tmp") {
            out.push(p.clone());
        }
        if p.is_dir() {
            out.extend(temp_leftovers(&p));
        }
    }
    out
}

/// Point directories under `out/points/` (numbered names only).
fn point_dirs(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("points"))
        .map(|rd| {
            rd.map(|e| e.expect("entry").path())
                .filter(|p| {
                    p.is_dir()
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.parse::<usize>().is_ok())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("mtime of {}: {e}", p.display()))
}

/// sweep.csv without the wall_time_s column (the only column that depends on the machine).
fn csv_without_wall_time(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("read sweep.csv");
    let mut rows = text
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
    let header = rows.next().expect("sweep.csv has a header");
    let wall = header
        .iter()
        .position(|c| c == "wall_time_s")
        .expect("sweep.csv has a wall_time_s column");
    std::iter::once(header)
        .chain(rows)
        .map(|mut r| {
            assert!(r.len() > wall, "short sweep.csv row: {r:?}");
            r.remove(wall);
            r
        })
        .collect()
}

fn sweep_cmd(file: &Path, out: &Path, jobs: usize) -> Command {
    let mut c = Command::new(bin());
    c.arg("sweep")
        .arg(file)
        .arg("--out")
        .arg(out)
        .arg("--jobs")
        .arg(jobs.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn interrupted_sweep_keeps_finished_points_and_resumes_without_rerunning_them() {
    let work = tempfile::tempdir().expect("temp dir");
    let file = work.path().join("resume.toml");
    std::fs::write(&file, SWEEP).expect("write sweep file");
    let out = work.path().join("out");

    // 1. Start the sweep, wait for the first finished point, interrupt it.
    let mut child = sweep_cmd(&file, &out, 1).spawn().expect("spawn sweep");
    let start = Instant::now();
    while point_dirs(&out).is_empty() {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!("the sweep exited ({st}) before any point finished");
        }
        assert!(
            start.elapsed() < WAIT_LIMIT,
            "no point finished within {WAIT_LIMIT:?}"
        );
        std::thread::sleep(POLL);
    }
    signal(&child, "INT");
    let status = wait_with_limit(&mut child);
    let output = child.wait_with_output().expect("collect output");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        !status.success(),
        "the interrupted sweep exited successfully; make the points slower (stderr: {stderr})"
    );
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("--resume"),
        "the interrupt message should say how to resume: {stderr}"
    );
    assert_eq!(
        temp_leftovers(&out),
        Vec::<PathBuf>::new(),
        "temp files left after SIGINT"
    );
    assert!(
        !out.join("sweep.csv").exists(),
        "an interrupted sweep wrote sweep.csv"
    );
    let kept = point_dirs(&out);
    assert!(
        !kept.is_empty() && kept.len() < 6,
        "expected some but not all points: {kept:?}"
    );
    let mut stamps = Vec::new();
    for d in &kept {
        for f in [
            "summary.json",
            "point.json",
            "timeseries.csv",
            "latency.csv",
            "scenario.toml",
        ] {
            let p = d.join(f);
            assert!(
                p.is_file(),
                "kept point is incomplete: {} missing",
                p.display()
            );
            stamps.push((p.clone(), mtime(&p)));
        }
        assert!(
            !d.join("failed.json").exists(),
            "{} marked failed",
            d.display()
        );
    }

    // 2. Resume: the kept points are not rerun, the rest are, and the sweep completes.
    let resumed = sweep_cmd(&file, &out, 1)
        .arg("--resume")
        .output()
        .expect("run sweep --resume");
    let r_stdout = String::from_utf8_lossy(&resumed.stdout).to_string();
    assert!(
        resumed.status.success(),
        "resume failed: {}{}",
        r_stdout,
        String::from_utf8_lossy(&resumed.stderr)
    );
    let expect = format!(
        "6 points ({} run now, {} kept, 0 failed)",
        6 - kept.len(),
        kept.len()
    );
    assert!(
        r_stdout.contains(&expect),
        "expected {expect:?} in: {r_stdout}"
    );
    for (p, t) in &stamps {
        assert_eq!(mtime(p), *t, "{} was rewritten by --resume", p.display());
    }
    assert_eq!(point_dirs(&out).len(), 6);
    assert_eq!(
        temp_leftovers(&out),
        Vec::<PathBuf>::new(),
        "temp files left after resume"
    );

    // 3. A fresh run with two jobs gives the same table.
    let fresh = work.path().join("fresh");
    let f = sweep_cmd(&file, &fresh, 2)
        .output()
        .expect("run fresh sweep");
    assert!(
        f.status.success(),
        "fresh sweep failed: {}",
        String::from_utf8_lossy(&f.stderr)
    );
    let a = csv_without_wall_time(&out.join("sweep.csv"));
    let b = csv_without_wall_time(&fresh.join("sweep.csv"));
    assert_eq!(a.len(), 7, "header plus six points");
    assert_eq!(a, b, "resumed sweep.csv differs from a fresh --jobs 2 run");
}

#[test]
fn run_killed_with_sigterm_leaves_no_results_and_no_temp_dir() {
    let work = tempfile::tempdir().expect("temp dir");
    let out = work.path().join("results");
    // About an hour of simulated time: many seconds of wall time, killed well before the end.
    let mut child = Command::new(bin())
        .current_dir(work.path())
        .args([
            "run",
            "default",
            "--set",
            "duration_s=3600",
            "--set",
            "warmup_s=1",
        ])
        .arg("--out")
        .arg(&out)
        .args(["--quiet", "--no-plots"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the run finished before it could be killed; lengthen it"
    );
    signal(&child, "TERM");
    let status = wait_with_limit(&mut child);
    let output = child.wait_with_output().expect("collect output");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        !status.success(),
        "a killed run exited successfully: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert!(!out.exists(), "a killed run left {}", out.display());
    let left: Vec<String> = std::fs::read_dir(work.path())
        .expect("read work dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    assert!(left.is_empty(), "a killed run left files behind: {left:?}");
}
