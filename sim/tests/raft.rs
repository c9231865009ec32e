//! Raft: steady commits, leader crash and re-election, follower catch-up (by log
//! and by snapshot), minority partition, Byzantine settings refused, determinism,
//! linear message complexity and commit latency at one region.

use sim::{protocols, run, RunOptions, RunResult, Scenario};
use std::path::PathBuf;

const ONE_REGION: &str = "[network]\nplacement = [\"us-east\"]\n";

fn scenario(n: u32, duration_s: f64, extra: &str) -> Scenario {
    let text = format!(
        "name = \"raft-test\"\nconsensus = \"raft\"\nnodes_per_shard = {n}\nduration_s = {duration_s}\nwarmup_s = 2\noffered_tps = 1000\n{extra}"
    );
    match Scenario::from_toml_str(&text, "raft-test") {
        Ok(s) => s,
        Err(e) => panic!("test scenario does not parse: {e}"),
    }
}

fn go(s: &Scenario) -> RunResult {
    match run(s, &RunOptions::default()) {
        Ok(r) => r,
        Err(e) => panic!("run failed: {e}"),
    }
}

/// What the event trace tells about a run.
#[derive(Default)]
struct Trace {
    /// `(time ns, node, height)` of every commit, in order.
    commits: Vec<(u64, u32, u64)>,
    /// `(time ns, from, to, kind, dropped)` of every message sent.
    sends: Vec<(u64, u32, u32, String, bool)>,
}

impl Trace {
    fn commits_of(&self, node: u32) -> Vec<(u64, u64)> {
        self.commits
            .iter()
            .filter(|c| c.1 == node)
            .map(|c| (c.0, c.2))
            .collect()
    }

    /// The sender of the last `append` before `t_ns` (the leader then).
    fn leader_before(&self, t_ns: u64) -> u32 {
        match self
            .sends
            .iter()
            .rev()
            .find(|m| m.0 < t_ns && m.3 == "append")
        {
            Some(m) => m.1,
            None => panic!("no append sent before {t_ns} ns"),
        }
    }

    fn max_height(&self) -> u64 {
        self.commits.iter().map(|c| c.2).max().unwrap_or(0)
    }
}

fn traced(s: &Scenario, tag: &str) -> (RunResult, Trace) {
    let path: PathBuf =
        std::env::temp_dir().join(format!("ledgersim-raft-{tag}-{}.trace", std::process::id()));
    let opts = RunOptions {
        trace_path: Some(path.clone()),
        ..RunOptions::default()
    };
    let r = match run(s, &opts) {
        Ok(r) => r,
        Err(e) => panic!("run failed: {e}"),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => panic!("cannot read trace {}: {e}", path.display()),
    };
    let _ = std::fs::remove_file(&path);
    let mut tr = Trace::default();
    for line in text.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        let Some(t) = w.first().and_then(|x| x.parse::<u64>().ok()) else {
            continue;
        };
        match w.get(1).copied() {
            Some("commit") if w.len() >= 8 => {
                let node = w[3].parse().expect("node id");
                let height = w[7].parse().expect("height");
                tr.commits.push((t, node, height));
            }
            Some(kind @ ("wire" | "drop")) if w.len() >= 4 => {
                let (a, b) = w[2].split_once("->").expect("a->b");
                tr.sends.push((
                    t,
                    a.parse().expect("from"),
                    b.parse().expect("to"),
                    w[3].to_string(),
                    kind == "drop",
                ));
            }
            _ => {}
        }
    }
    (r, tr)
}

/// Committed tx/s per time-series bucket: `(bucket start s, committed tps, view changes)`.
fn series(r: &RunResult) -> Vec<(f64, f64, u64)> {
    r.timeseries_csv()
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                c[0].parse().expect("t_s"),
                c[3].parse().expect("committed_tps"),
                c[9].parse().expect("view_changes"),
            )
        })
        .collect()
}

const S: u64 = 1_000_000_000;

#[test]
fn steady_commits_for_3_4_5_7_16_nodes() {
    for n in [3, 4, 5, 7, 16] {
        let r = go(&scenario(n, 8.0, ""));
        let tput = r.throughput_tps();
        assert!((900.0..1100.0).contains(&tput), "n={n}: throughput {tput}");
        for (t, tps, _) in series(&r) {
            if t >= 2.0 {
                assert!(
                    tps > 500.0,
                    "n={n}: only {tps} tx/s committed in the bucket at {t} s"
                );
            }
        }
        assert!(r.view_changes() >= 1, "n={n}: no leader was ever elected");
        assert!(r.invariants_checked() > 0, "n={n}: no commit was checked");
        assert!(
            r.invariants_checked() >= r.blocks_committed() * u64::from(n) * 9 / 10,
            "n={n}: replicas did not commit every block ({} checks for {} blocks)",
            r.invariants_checked(),
            r.blocks_committed()
        );
    }
}

/// Crash the node that leads at `crash_s` (found by a first identical run).
fn leader_crash(n: u32, extra: &str) -> (Scenario, u32) {
    let base = scenario(
        n,
        8.0,
        &format!("{extra}[metrics]\ntimeseries_bucket_s = 0.1\n"),
    );
    let (_, tr) = traced(&base, "leader-probe");
    let leader = tr.leader_before(4 * S);
    let mut s = base;
    s.apply_override(
        "faults",
        &format!("[{{kind = \"crash\", node = {leader}, at_s = 4.0}}]"),
    )
    .expect("fault override");
    (s, leader)
}

#[test]
fn leader_crash_reelects_and_commits_resume() {
    let (s, old) = leader_crash(5, ONE_REGION);
    let (r, tr) = traced(&s, "leader-crash");
    assert!(
        r.view_changes() >= 2,
        "no re-election after the leader crashed"
    );
    let new = tr.leader_before(8 * S);
    assert_ne!(new, old, "the crashed node {old} still sends appends");
    let ts = series(&r);
    let before: Vec<_> = ts.iter().filter(|b| (3.0..4.0).contains(&b.0)).collect();
    assert!(
        before.iter().all(|b| b.1 > 0.0),
        "commits before the crash: {before:?}"
    );
    // A gap right after the crash: some 100 ms bucket in [4.0, 4.5) without commits.
    let gap = ts
        .iter()
        .filter(|b| (4.0..4.5).contains(&b.0))
        .any(|b| b.1 == 0.0);
    assert!(gap, "no gap after the crash: {ts:?}");
    // Resume within a bound: election timeout max (300 ms) + a batch + slack.
    let first_after = tr
        .commits
        .iter()
        .filter(|c| c.0 > 4 * S + 60_000_000 && c.1 != old)
        .map(|c| c.0)
        .min()
        .expect("commits after the crash");
    let outage_ms = (first_after - 4 * S) as f64 / 1e6;
    assert!(
        outage_ms < 700.0,
        "commits resumed only {outage_ms} ms after the crash"
    );
    let vc_after: u64 = ts.iter().filter(|b| b.0 >= 4.0).map(|b| b.2).sum();
    assert!(vc_after >= 1, "the re-election is not in the time series");
    let after: Vec<_> = ts.iter().filter(|b| b.0 >= 5.0).collect();
    assert!(
        after.iter().all(|b| b.1 > 0.0),
        "commits do not continue after re-election: {after:?}"
    );
    println!(
        "leader {old} crashed at 4.0 s; new leader {new}; first commit after {outage_ms:.1} ms"
    );
}

#[test]
fn leader_crash_scenario_file_crashes_the_leader() {
    let text = include_str!("../../scenarios/faults/raft-leader-crash.toml");
    let s = Scenario::from_toml_str(text, "raft-leader-crash.toml").expect("scenario file parses");
    let sim::faults::FaultSpec::Crash { node, at_s, .. } = s.faults[0] else {
        panic!("the first fault of raft-leader-crash.toml must be a crash");
    };
    let (r, tr) = traced(&s, "leader-crash-file");
    let at_ns = (at_s * 1e9) as u64;
    assert_eq!(
        tr.leader_before(at_ns),
        node,
        "the scenario's crashed node is not the leader at {at_s} s"
    );
    assert!(r.view_changes() >= 2, "no re-election");
    let late = tr.commits.iter().filter(|c| c.0 > at_ns + 3 * S).count();
    assert!(late > 0, "no commits 3 s after the leader crash");
}

#[test]
fn crashed_follower_recovers_and_commits_what_it_missed() {
    let base = scenario(4, 8.0, ONE_REGION);
    let (_, probe) = traced(&base, "follower-probe");
    let leader = probe.leader_before(3 * S);
    let f = (leader + 1) % 4;
    let mut s = base;
    s.apply_override(
        "faults",
        &format!("[{{kind = \"crash\", node = {f}, at_s = 3.0, recover_s = 5.0}}]"),
    )
    .expect("fault override");
    let (r, tr) = traced(&s, "follower-crash");
    let mine = tr.commits_of(f);
    let before = mine
        .iter()
        .filter(|c| c.0 < 3 * S)
        .map(|c| c.1)
        .max()
        .expect("commits before the crash");
    assert!(
        mine.iter().all(|c| c.0 < 3 * S || c.0 >= 5 * S),
        "a crashed node committed"
    );
    let after: Vec<u64> = mine.iter().filter(|c| c.0 >= 5 * S).map(|c| c.1).collect();
    // Every height it missed, in order, each once, then on with the others.
    let cluster_at_recovery = tr
        .commits
        .iter()
        .filter(|c| c.0 < 5 * S)
        .map(|c| c.2)
        .max()
        .unwrap_or(0);
    assert!(
        cluster_at_recovery > before + 10,
        "the others did not progress while {f} was down"
    );
    let expect: Vec<u64> = (before + 1..=before + after.len() as u64).collect();
    assert_eq!(
        after, expect,
        "node {f} did not commit the missed heights densely in order"
    );
    let end = tr.max_height();
    assert!(
        *after.last().expect("commits after recovery") + 3 >= end,
        "node {f} ended at {:?}, the cluster at {end}",
        after.last()
    );
    // It caught up quickly: the height the cluster had at recovery within 1 s.
    let caught = mine
        .iter()
        .find(|c| c.1 >= cluster_at_recovery)
        .map(|c| c.0)
        .expect("caught up");
    assert!(
        caught < 6 * S,
        "catch-up took until {} ms",
        caught / 1_000_000
    );
    assert!(r.messages_by_type.contains_key("append"));
}

#[test]
fn follower_far_behind_gets_a_snapshot() {
    // Keep 16 applied entries (about 0.8 s of blocks); the 1 MiB snapshot takes
    // 16 chunks of 64 KiB (about 0.2 s), so the follower can continue by appends.
    let extra =
        format!("{ONE_REGION}[protocol.raft]\nlog_retain_entries = 16\nsnapshot_bytes = 1048576\n");
    let base = scenario(4, 8.0, &extra);
    let (_, probe) = traced(&base, "snap-probe");
    let leader = probe.leader_before(3 * S);
    let f = (leader + 2) % 4;
    let mut s = base;
    s.apply_override(
        "faults",
        &format!("[{{kind = \"crash\", node = {f}, at_s = 3.0, recover_s = 5.0}}]"),
    )
    .expect("fault override");
    let (r, tr) = traced(&s, "snap");
    let snaps = r
        .messages_by_type
        .get("install_snapshot")
        .map_or(0, |k| k.count);
    assert!(
        (16..=32).contains(&snaps),
        "{snaps} snapshot chunks sent (one 1 MiB snapshot is 16)"
    );
    let mine = tr.commits_of(f);
    let before = mine
        .iter()
        .filter(|c| c.0 < 3 * S)
        .map(|c| c.1)
        .max()
        .expect("commits before");
    let mut heights = vec![before];
    heights.extend(mine.iter().filter(|c| c.0 >= 5 * S).map(|c| c.1));
    assert!(
        heights.len() > 20,
        "node {f} committed little after recovery: {heights:?}"
    );
    let jumps: Vec<_> = heights.windows(2).filter(|w| w[1] != w[0] + 1).collect();
    assert_eq!(
        jumps.len(),
        1,
        "expected one jump over the snapshot's heights: {jumps:?}"
    );
    assert!(
        jumps[0][1] > jumps[0][0] + 10,
        "the snapshot skipped too little: {jumps:?}"
    );
    assert!(
        *heights.last().expect("last") + 3 >= tr.max_height(),
        "node {f} did not catch up"
    );
}

#[test]
fn minority_partition_cannot_elect_or_commit() {
    let s = scenario(
        5,
        9.0,
        &format!(
            "{ONE_REGION}[metrics]\ntimeseries_bucket_s = 0.5\n[[faults]]\nkind = \"partition\"\nnodes = [0, 1]\nat_s = 3.0\nuntil_s = 7.0\n"
        ),
    );
    let (r, tr) = traced(&s, "partition");
    let ts = series(&r);
    // The majority keeps committing (after at most one re-election).
    for b in ts.iter().filter(|b| (4.0..7.0).contains(&b.0)) {
        assert!(
            b.1 > 0.0,
            "majority side committed nothing in the bucket at {} s",
            b.0
        );
        assert_eq!(
            b.2, 0,
            "a leader was elected at {} s while the partition held",
            b.0
        );
    }
    // The minority commits nothing while cut off...
    for node in [0, 1] {
        let during = tr
            .commits_of(node)
            .into_iter()
            .filter(|c| c.0 > 3 * S + S / 2 && c.0 < 7 * S)
            .count();
        assert_eq!(
            during, 0,
            "minority node {node} committed during the partition"
        );
    }
    // ...although it campaigned (its vote requests were dropped at the cut).
    let campaigns = tr
        .sends
        .iter()
        .filter(|m| m.4 && m.3 == "request_vote" && m.1 <= 1 && m.0 > 4 * S && m.0 < 7 * S)
        .count();
    assert!(campaigns > 0, "the minority never tried to elect a leader");
    // After the heal it catches up.
    for node in [0, 1] {
        let top = tr.commits_of(node).iter().map(|c| c.1).max().unwrap_or(0);
        assert!(
            top + 3 >= tr.max_height(),
            "node {node} did not catch up after the heal"
        );
    }
}

#[test]
fn byzantine_nodes_are_refused_with_a_clear_error() {
    let s = scenario(
        4,
        4.0,
        "[[faults]]\nkind = \"byzantine\"\nnodes = [1]\nbehaviour = \"equivocate\"\n",
    );
    let err = match run(&s, &RunOptions::default()) {
        Ok(_) => panic!("raft accepted a Byzantine node"),
        Err(e) => e.to_string(),
    };
    for want in ["raft tolerates crash faults only", "pbft", "hotstuff"] {
        assert!(err.contains(want), "error lacks {want:?}: {err}");
    }
    let ok = scenario(4, 4.0, "");
    let e = protocols::get("raft").expect("raft registered");
    assert_eq!(
        (e.max_faulty)(&ok).expect("max_faulty"),
        0,
        "raft must tolerate no Byzantine node"
    );
}

#[test]
fn same_seed_same_digest_different_seed_different_digest() {
    let s = scenario(
        5,
        5.0,
        "[[faults]]\nkind = \"crash\"\nnode = 2\nat_s = 3.0\nrecover_s = 4.0\n",
    );
    let a = go(&s);
    let b = go(&s);
    assert_eq!(a.trace_digest, b.trace_digest);
    assert_eq!(a.timeseries_csv(), b.timeseries_csv());
    assert_eq!(a.messages_total(), b.messages_total());
    let mut s2 = s.clone();
    s2.seed += 1;
    assert_ne!(go(&s2).trace_digest, a.trace_digest);
}

#[test]
fn message_complexity_is_linear_in_n() {
    let mut rows = Vec::new();
    for n in [3u32, 5, 7, 9, 16] {
        let r = go(&scenario(n, 6.0, ""));
        let count = |k: &str| r.messages_by_type.get(k).map_or(0, |v| v.count) as f64;
        let blocks = r.blocks_committed() as f64;
        assert!(blocks > 50.0, "n={n}: only {blocks} blocks");
        let replication =
            (count("append") + count("append_resp") + count("heartbeat") + count("heartbeat_resp"))
                / blocks;
        let total = r.messages_total() as f64 / blocks;
        let per_follower = replication / f64::from(n - 1);
        println!(
            "n={n:2} blocks={blocks} replication msgs/block={replication:.2} per follower={per_follower:.3} all msgs/block={total:.2}"
        );
        rows.push((f64::from(n), replication, per_follower, total));
    }
    // Each follower costs about one append and one response per block.
    for &(n, _, pf, _) in &rows {
        assert!(
            (1.9..2.6).contains(&pf),
            "n={n}: {pf:.3} replication messages per follower per block"
        );
    }
    // Linear, not quadratic: the per-follower cost does not grow with n.
    let (first, last) = (rows[0].2, rows[rows.len() - 1].2);
    assert!(
        last < first * 1.2,
        "per-follower cost grows with n: {first:.3} -> {last:.3}"
    );
    // Least-squares fit of replication messages per block against n: slope about 2.
    let k = rows.len() as f64;
    let (sx, sy) = rows.iter().fold((0.0, 0.0), |a, r| (a.0 + r.0, a.1 + r.1));
    let (mx, my) = (sx / k, sy / k);
    let sxy: f64 = rows.iter().map(|r| (r.0 - mx) * (r.1 - my)).sum();
    let sxx: f64 = rows.iter().map(|r| (r.0 - mx) * (r.0 - mx)).sum();
    let slope = sxy / sxx;
    let ss_res: f64 = rows
        .iter()
        .map(|r| (r.1 - (my + slope * (r.0 - mx))).powi(2))
        .sum();
    let ss_tot: f64 = rows.iter().map(|r| (r.1 - my).powi(2)).sum();
    let r2 = 1.0 - ss_res / ss_tot;
    println!("linear fit: slope {slope:.3} msgs/block per node, r^2 {r2:.5}");
    assert!((1.8..2.6).contains(&slope), "slope {slope}");
    assert!(
        r2 > 0.99,
        "replication messages are not linear in n (r^2 {r2})"
    );
}

#[test]
fn commit_latency_at_one_region_matches_the_expectation() {
    // Expectation: a transaction waits for its block (batch timer: on average half of
    // batch_timeout_ms, since blocks are timer-driven at this load), for a gateway
    // forward (≤ forward_batch_ms, 2 ms), then one round trip from the leader to a
    // majority (1 ms intra-region RTT plus a few ms of serialisation of the block on
    // 100 Mbps links) and the processing (persist 50 µs, MACs, execution).
    for batch_ms in [50.0, 10.0] {
        let r = go(&scenario(
            4,
            8.0,
            &format!("batch_timeout_ms = {batch_ms}\n{ONE_REGION}"),
        ));
        let l = r.latency_ms;
        println!(
            "batch_timeout_ms={batch_ms}: mean {:.2} p50 {:.2} p99 {:.2} ms; blocks {}",
            l.mean,
            l.p50,
            l.p99,
            r.blocks_committed()
        );
        let lo = batch_ms / 2.0;
        let hi = batch_ms / 2.0 + 8.0;
        assert!(
            (lo..hi).contains(&l.mean),
            "mean latency {} ms outside [{lo}, {hi})",
            l.mean
        );
        assert!(l.p99 < batch_ms + 10.0, "p99 {} ms", l.p99);
    }
}
