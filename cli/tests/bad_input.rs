//! The bad-input corpus: every file under `tests/bad-input/` (scenarios) and
//! `tests/bad-input/sweeps/` (sweep files) must be refused by the real `ledgersim` binary
//! with exit status 2, one clear message on stderr that names the file, the field and
//! what is allowed, no panic, and nothing written (no results directory, no temp files).
//!
//! The expectations live in [`CASES`]; each file's leading comment says the same in prose.
//! A case whose protocol is not registered (yet) is skipped, its file kept.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One refused input: a corpus file (or none) plus extra arguments, and what stderr must say.
struct Case {
    /// Path under `tests/bad-input/` (`sweeps/...` for sweep files); `None`: arguments only.
    file: Option<&'static str>,
    /// Extra arguments after the file (e.g. `--set` overrides), or the whole scenario spec.
    args: &'static [&'static str],
    /// Substrings stderr must contain (the field, the problem, what is allowed).
    expect: &'static [&'static str],
    /// The protocol the case needs registered (skipped otherwise).
    protocol: Option<&'static str>,
}

const fn case(file: &'static str, expect: &'static [&'static str]) -> Case {
    Case {
        file: Some(file),
        args: &[],
        expect,
        protocol: None,
    }
}

const CASES: &[Case] = &[
    case("malformed-toml.toml", &["not valid TOML", "line 6"]),
    case(
        "unknown-top-level-field.toml",
        &[
            "unknown field `offered_tsp`",
            "did you mean `offered_tps`?",
            "allowed here:",
        ],
    ),
    case(
        "unknown-nested-field.toml",
        &[
            "unknown field `network.latnecy_ms`",
            "did you mean `latency_ms`?",
        ],
    ),
    case(
        "unknown-workload-field.toml",
        &["unknown field", "mxi", "mix"],
    ),
    case(
        "wrong-type.toml",
        &["`shards`", "invalid type: string \"four\"", "expected u32"],
    ),
    case("zero-shards.toml", &["`shards`", "must be at least 1"]),
    case(
        "committee-assignment-unknown.toml",
        &["`committee_assignment`", "round_robin", "by_organisation"],
    ),
    case(
        "client-retries-over-limit.toml",
        &["`client_retries`", "must be in 0..=16"],
    ),
    case(
        "zero-nodes-per-shard.toml",
        &["`nodes_per_shard`", "must be at least 1"],
    ),
    Case {
        file: Some("bft-n-below-3f-plus-1.toml"),
        args: &[],
        expect: &[
            "`faults`",
            "1 Byzantine nodes in shard 0",
            "tolerates at most 0 of 3 nodes",
        ],
        protocol: Some("pbft"),
    },
    Case {
        file: Some("too-many-byzantine.toml"),
        args: &[],
        expect: &[
            "`faults`",
            "2 Byzantine nodes in shard 0",
            "tolerates at most 1 of 4 nodes",
        ],
        protocol: Some("hotstuff"),
    },
    Case {
        file: Some("raft-byzantine.toml"),
        args: &[],
        expect: &["faults[0]", "raft tolerates crash faults only"],
        protocol: Some("raft"),
    },
    case(
        "latency-not-square.toml",
        &["network.latency_ms", "must be a square 2x2 matrix"],
    ),
    case(
        "negative-rate.toml",
        &["`offered_tps`", "must be a finite number >= 0, got -5"],
    ),
    case(
        "nan-rate.toml",
        &["`offered_tps`", "must be a finite number >= 0, got NaN"],
    ),
    case(
        "nan-loss.toml",
        &["`network.loss`", "must be a finite number >= 0"],
    ),
    case("zero-duration.toml", &["`duration_s`", "must be positive"]),
    case(
        "warmup-not-below-duration.toml",
        &["`warmup_s`", "must be less than duration_s"],
    ),
    case(
        "fault-unknown-node.toml",
        &[
            "faults[0] (crash)",
            "node 99 does not exist (nodes are 0..4)",
        ],
    ),
    case(
        "fault-end-before-start.toml",
        &["faults[0] (partition)", "not before the start"],
    ),
    case(
        "fault-slow-factor-zero.toml",
        &["faults[0] (slow)", "factor must be a number in (0, 1000]"],
    ),
    case(
        "fault-loss-above-one.toml",
        &["faults[0] (loss)", "loss must be in [0, 1], got 1.5"],
    ),
    case(
        "fault-duplicate-node.toml",
        &["faults[0] (partition)", "node 2 is listed twice in `nodes`"],
    ),
    case(
        "fault-unknown-kind.toml",
        &["unknown variant `meteor`", "crash"],
    ),
    case(
        "unknown-consensus.toml",
        &[
            "unknown consensus protocol \"paxos\"",
            "allowed:",
            "sequencer",
        ],
    ),
    case(
        "memory-over-bound.toml",
        &["over the limit of 8192 MiB", "offered_tps", "duration_s"],
    ),
    Case {
        file: Some("set-without-equals.toml"),
        args: &["--set", "shards"],
        expect: &["--set \"shards\"", "expected KEY=VALUE"],
        protocol: None,
    },
    Case {
        file: Some("set-unknown-key.toml"),
        args: &["--set", "shardz=2"],
        expect: &["unknown field `shardz`", "did you mean `shards`?"],
        protocol: None,
    },
    Case {
        file: Some("set-wrong-type.toml"),
        args: &["--set", "shards=many"],
        expect: &["`shards`", "invalid type: string \"many\""],
        protocol: None,
    },
    Case {
        file: Some("set-through-a-value.toml"),
        args: &["--set", "shards.count=2"],
        expect: &["override `shards.count`", "not a table"],
        protocol: None,
    },
    Case {
        file: None,
        args: &["no-such-builtin"],
        expect: &[
            "\"no-such-builtin\"",
            "neither a scenario file nor a built-in scenario",
            "default",
        ],
        protocol: None,
    },
    case(
        "sweeps/unknown-field.toml",
        &["unknown field `gird`", "grid"],
    ),
    case(
        "sweeps/empty-grid-list.toml",
        &["grid.shards", "the list of values is empty"],
    ),
    case("sweeps/no-points.toml", &["needs a [grid] table"]),
    case(
        "sweeps/bad-point-value.toml",
        &["point 1 (shards=0)", "`shards`", "must be at least 1"],
    ),
    case(
        "sweeps/bad-point-type.toml",
        &["point 0", "`nodes_per_shard`", "invalid type: string"],
    ),
    case(
        "sweeps/unknown-grid-key.toml",
        &["unknown field `offered_tsp`", "did you mean `offered_tps`?"],
    ),
    case(
        "sweeps/unknown-base-scenario.toml",
        &[
            "base scenario",
            "no-such-scenario",
            "neither a scenario file nor a built-in scenario",
        ],
    ),
];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ledgersim")
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("bad-input")
}

/// The protocols the binary has registered (from `ledgersim scenarios`).
fn registered_protocols() -> Vec<String> {
    let out = Command::new(bin())
        .arg("scenarios")
        .output()
        .expect("run ledgersim scenarios");
    assert!(out.status.success(), "ledgersim scenarios failed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .skip_while(|l| !l.starts_with("Protocols"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Every `*.toml` under the corpus, as a path relative to it (`sweeps/x.toml`).
fn corpus_files() -> Vec<String> {
    let mut files = Vec::new();
    for (sub, prefix) in [("", ""), ("sweeps", "sweeps/")] {
        let dir = corpus_dir().join(sub);
        for e in std::fs::read_dir(&dir).expect("read the corpus directory") {
            let name = e.expect("corpus entry").file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".toml") {
                files.push(format!("{prefix}{name}"));
            }
        }
    }
    files.sort();
    files
}

/// Run one case in a fresh empty working directory; returns the problems found.
fn check(c: &Case) -> Vec<String> {
    let work = tempfile::tempdir().expect("temp dir");
    let out_dir = work.path().join("out");
    let mut cmd = Command::new(bin());
    cmd.current_dir(work.path());
    let is_sweep = c.file.is_some_and(|f| f.starts_with("sweeps/"));
    if is_sweep {
        cmd.arg("sweep");
    } else {
        cmd.arg("run");
    }
    if let Some(f) = c.file {
        cmd.arg(corpus_dir().join(f));
    }
    cmd.args(c.args);
    cmd.arg("--out").arg(&out_dir);
    if is_sweep {
        cmd.args(["--jobs", "1"]);
    } else {
        cmd.args(["--quiet", "--no-plots"]);
    }
    let out = cmd.output().expect("run ledgersim");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let label = c.file.or(c.args.first().copied()).unwrap_or("-");
    let mut problems = Vec::new();
    let mut bad = |what: String| problems.push(format!("{label}: {what}\n    stderr: {stderr}"));
    if out.status.code() != Some(2) {
        bad(format!("exit status {:?}, expected 2", out.status.code()));
    }
    if stderr.contains("panicked") {
        bad("panicked".into());
    }
    if stderr.matches("ledgersim: error:").count() != 1 || !stderr.starts_with("ledgersim: error:")
    {
        bad("stderr is not exactly one `ledgersim: error:` message".into());
    }
    if !stdout.is_empty() {
        bad(format!("printed to stdout: {stdout}"));
    }
    // A case whose fault is in the file must name the file; one whose fault is an
    // argument (`--set`, a scenario name) names the argument instead (in `expect`).
    if let (Some(f), true) = (c.file, c.args.is_empty()) {
        let name = Path::new(f)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !stderr.contains(&name) {
            bad(format!("the message does not name the file {name}"));
        }
    }
    for e in c.expect {
        if !stderr.contains(e) {
            bad(format!("the message lacks {e:?}"));
        }
    }
    if out_dir.exists() {
        bad("the --out directory was created".into());
    }
    let left: Vec<String> = std::fs::read_dir(work.path())
        .expect("read the working directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    if !left.is_empty() {
        bad(format!("wrote into the working directory: {left:?}"));
    }
    problems
}

#[test]
fn every_bad_input_is_refused_with_a_clear_message_and_nothing_written() {
    let protocols = registered_protocols();
    assert!(
        protocols.iter().any(|p| p == "sequencer"),
        "could not read the protocol list from `ledgersim scenarios`: {protocols:?}"
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for c in CASES {
        if let Some(p) = c.protocol {
            if !protocols.iter().any(|r| r == p) {
                eprintln!(
                    "skipping {}: protocol {p} is not registered",
                    c.file.unwrap_or("-")
                );
                continue;
            }
        }
        problems.extend(check(c));
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} cases ran");
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn corpus_files_and_the_table_agree() {
    let files = corpus_files();
    let mut listed: Vec<String> = CASES
        .iter()
        .filter_map(|c| c.file.map(str::to_string))
        .collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "every file under tests/bad-input/ needs exactly one row in CASES"
    );
    for f in &files {
        let text = std::fs::read_to_string(corpus_dir().join(f)).expect("read corpus file");
        let first = text.lines().next().unwrap_or("");
        assert!(
            first.starts_with("# BAD"),
            "{f}: must start with a `# BAD: ...` comment saying what is wrong"
        );
        assert!(
            text.lines().any(|l| l.starts_with("# Expected:")),
            "{f}: must say the expected message in an `# Expected:` comment"
        );
    }
}

#[test]
fn a_valid_file_passes_the_same_checks_it_is_not_the_harness_refusing() {
    // The same harness on a good input must see exit 0: guards against a broken binary
    // or arguments making every case "refused".
    let work = tempfile::tempdir().expect("temp dir");
    let file = work.path().join("ok.toml");
    std::fs::write(
        &file,
        "name = \"ok\"\nconsensus = \"sequencer\"\nduration_s = 0.5\nwarmup_s = 0.1\noffered_tps = 50\n",
    )
    .expect("write");
    let out = Command::new(bin())
        .current_dir(work.path())
        .arg("run")
        .arg(&file)
        .args(["--out", "o", "--quiet", "--no-plots"])
        .output()
        .expect("run ledgersim");
    assert!(
        out.status.success(),
        "a valid scenario failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(work.path().join("o").join("summary.json").is_file());
}
