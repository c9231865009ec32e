//! The fault-scenario suite: the liveness bound each protocol promises after a
//! fault, and the analysis of a run around its fault window.
//!
//! The suite itself is the set of scenario files under `scenarios/faults/`, named
//! `<protocol>-<fault>.toml`; a new protocol or fault joins it by adding a file
//! (and, for a protocol-specific bound, one arm in [`liveness_bound`]). The
//! `ledgersim faults` command runs every file and writes `results/faults.md`;
//! `sim/tests/fault_suite.rs` asserts every scenario recovers within its bound with
//! no invariant violation. See docs/reliability.md.
//!
//! # Measuring recovery
//! The committed rate is measured in [`SERIES_BUCKET_S`] buckets and smoothed as a
//! trailing [`RATE_WINDOW_S`] window (the rate at `t` is what committed in
//! `[t - 1 s, t)`; HotStuff, which commits in bursts once per leader rotation
//! while a leader is down, uses a longer window, see [`liveness_bound`]). The *baseline* is the mean committed rate from the end of the
//! warm-up to the first fault. The *reference* time is the last time a fault
//! changes state: the latest end of a windowed fault or start of a permanent one
//! (a crash without `recover_s`, a partition without `until_s`, ...). The run has
//! *recovered* at the
//! earliest time `t >= reference` from which every trailing window up to the end
//! of the run commits at least [`RECOVERY_FRACTION`] of the baseline; the recovery
//! time is `t - reference` (0 when the rate never dropped below the threshold after
//! the reference). A run whose last window is below the threshold never recovered.
//! The trailing window overstates a recovery by at most `RECOVERY_FRACTION x
//! window` (0.5 s for a 1 s window); every bound adds that lag and
//! [`MEASUREMENT_SLACK_S`].

use crate::error::ScenarioError;
use crate::faults::FaultSpec;
use crate::protocol::Protocol;
use crate::protocols::{hotstuff, pbft, raft};
use crate::run::RunResult;
use crate::scenario::Scenario;

/// The committed rate must return to this fraction of the pre-fault rate.
///
/// 50%: with a permanently crashed minority, the clients whose gateway crashed
/// stop committing (up to 2/5 of the load for Raft with 5 nodes, 2/7 for BFT with
/// 7), so the surviving rate is at least 3/5 of the baseline; 50% separates
/// "commits flow again" from "stalled or trickling" with margin on both sides.
pub const RECOVERY_FRACTION: f64 = 0.5;
/// Width of the time-series buckets the suite measures with, s.
pub const SERIES_BUCKET_S: f64 = 0.1;
/// Width of the trailing window the rate is smoothed over, s (unless the
/// protocol's [`LivenessBound::rate_window_s`] says otherwise).
pub const RATE_WINDOW_S: f64 = 1.0;
/// Added to every protocol's bound, besides the trailing window's lag
/// (`RECOVERY_FRACTION x rate window`): the commit pipeline after a new leader is
/// in place (a few WAN round trips) and the bucket granularity.
pub const MEASUREMENT_SLACK_S: f64 = 1.0;
/// Bound of a protocol without a rule of its own in [`liveness_bound`], s.
pub const DEFAULT_BOUND_S: f64 = 10.0;

/// The liveness bound a protocol promises after the faults end.
#[derive(Clone, Debug, PartialEq)]
pub struct LivenessBound {
    /// Recovery must take at most this long, s (including [`MEASUREMENT_SLACK_S`]).
    pub bound_s: f64,
    /// How the bound is derived, with the scenario's parameter values.
    pub rule: String,
    /// Width of the trailing window the committed rate is smoothed over, s.
    pub rate_window_s: f64,
}

/// The liveness bound of `s`'s protocol with `s`'s parameters.
pub fn liveness_bound(s: &Scenario) -> Result<LivenessBound, ScenarioError> {
    let lag = RECOVERY_FRACTION * RATE_WINDOW_S;
    let slack = MEASUREMENT_SLACK_S + lag;
    Ok(match s.consensus.as_str() {
        "pbft" => {
            let p: pbft::PbftParams = s.protocol_params("pbft")?;
            let (req, vc) = (p.request_timeout_ms / 1e3, p.view_change_timeout_ms / 1e3);
            LivenessBound {
                bound_s: req + vc + 2.0 * vc + slack,
                rule: format!(
                    "request timeout ({req} s) + two view-change timeouts with backoff ({vc} s + {} s) + {slack} s",
                    2.0 * vc
                ),
                rate_window_s: RATE_WINDOW_S,
            }
        }
        "hotstuff" => {
            let p: hotstuff::HotStuffParams = s.protocol_params("hotstuff")?;
            let f = (s.nodes_per_shard as usize).saturating_sub(1) / 3;
            let t = p.view_timeout_ms / 1e3;
            // With a crashed or withholding leader in the rotation, the three-chain
            // rule commits in bursts once per rotation (about one view timeout
            // apart): smooth over two view timeouts and a half.
            let window = RATE_WINDOW_S.max(2.0 * t + 0.5);
            let slack = MEASUREMENT_SLACK_S + RECOVERY_FRACTION * window;
            // f + 1 consecutive views may have a faulty leader; each timeout doubles.
            let sum: f64 = (0..=f.min(p.max_backoff_exp as usize))
                .map(|k| t * f64::from(1u32 << k))
                .sum();
            LivenessBound {
                bound_s: sum + slack,
                rule: format!(
                    "f + 1 = {} consecutive view timeouts with backoff ({t} s doubling: {sum} s) + {slack} s; rate over {window} s windows",
                    f + 1
                ),
                rate_window_s: window,
            }
        }
        "raft" => {
            let r = raft::Raft::from_scenario(s)?;
            let mut worst = (0.0f64, 0.0f64);
            for shard in 0..s.shards {
                let (_, emax, _, retransmit) = r.timeouts_ms(shard);
                worst = (worst.0.max(emax), worst.1.max(retransmit));
            }
            let (e, rt) = (worst.0 / 1e3, worst.1 / 1e3);
            LivenessBound {
                bound_s: 2.0 * e + rt + slack,
                rule: format!(
                    "two election timeouts (one split vote, {e:.3} s max each, RTT-scaled) + one retransmit ({rt:.3} s) + {slack} s"
                ),
                rate_window_s: RATE_WINDOW_S,
            }
        }
        other => LivenessBound {
            bound_s: DEFAULT_BOUND_S,
            rule: format!("no rule for {other} yet: the default {DEFAULT_BOUND_S} s"),
            rate_window_s: RATE_WINDOW_S,
        },
    })
}

/// When the faults of a scenario act.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultWindow {
    /// Start of the first fault, s.
    pub start_s: f64,
    /// End of the last fault, s; `None` if any fault is permanent.
    pub end_s: Option<f64>,
    /// The last time a fault changes state: the latest end of a windowed fault or
    /// start of a permanent one, s. Recovery is measured from here.
    pub reference_s: f64,
}

/// The window of `s`'s faults (`None` without faults).
pub fn fault_window(s: &Scenario) -> Option<FaultWindow> {
    let mut w: Option<FaultWindow> = None;
    for f in &s.faults {
        let (a, b) = f.window_s();
        let r = b.unwrap_or(a);
        w = Some(match w {
            None => FaultWindow {
                start_s: a,
                end_s: b,
                reference_s: r,
            },
            Some(w) => FaultWindow {
                start_s: w.start_s.min(a),
                end_s: match (w.end_s, b) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    _ => None,
                },
                reference_s: w.reference_s.max(r),
            },
        });
    }
    w
}

/// A run measured around its fault window.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Mean committed tx/s from the end of the warm-up to the first fault.
    pub before_tps: f64,
    /// Mean committed tx/s during the faults: from the first fault to the
    /// reference time (if that is the first fault's start, for the length of the
    /// liveness bound).
    pub during_tps: f64,
    /// Mean committed tx/s after the faults (for a permanent fault: after the
    /// `during` span); `None` if nothing is left of the run.
    pub after_tps: Option<f64>,
    /// The fault window.
    pub window: FaultWindow,
    /// Recovery is measured from here, s: see [`FaultWindow::reference_s`].
    pub reference_s: f64,
    /// Seconds from the reference until the rate is back for good; `None`: never.
    pub recovery_s: Option<f64>,
    /// Longest stretch after the first fault with the trailing rate below the
    /// threshold, s.
    pub longest_outage_s: f64,
    /// The protocol's bound.
    pub bound: LivenessBound,
    /// View changes (or leader elections) counted in the run.
    pub view_changes: u64,
    /// Invariant checks made (violations stop the run, so a finished run has none).
    pub invariants_checked: u64,
}

impl Analysis {
    /// The run recovered, within the protocol's bound.
    pub fn within_bound(&self) -> bool {
        self.recovery_s.is_some_and(|r| r <= self.bound.bound_s)
    }
}

fn mean_rate(counts: &[u64], bucket_s: f64, from_s: f64, to_s: f64) -> Option<f64> {
    let a = (from_s / bucket_s).round().max(0.0) as usize;
    let b = ((to_s / bucket_s).round() as usize).min(counts.len());
    if b <= a {
        return None;
    }
    let sum: u64 = counts[a..b].iter().sum();
    Some(sum as f64 / ((b - a) as f64 * bucket_s))
}

/// Measure a finished run of a scenario with faults. The scenario should use
/// [`SERIES_BUCKET_S`] buckets (see [`prepare`]); coarser buckets give coarser times.
pub fn analyze(r: &RunResult) -> Result<Analysis, String> {
    let s = &r.scenario;
    let window = fault_window(s).ok_or("the scenario has no faults")?;
    let bound = liveness_bound(s).map_err(|e| e.to_string())?;
    let (bucket_s, counts) = r.committed_per_bucket();
    let run_end = r.sim_time_s.min(counts.len() as f64 * bucket_s);
    if window.start_s <= s.warmup_s {
        return Err(format!(
            "the first fault starts at {} s, within the warm-up ({} s): no baseline to recover to",
            window.start_s, s.warmup_s
        ));
    }
    let before_tps = mean_rate(&counts, bucket_s, s.warmup_s, window.start_s)
        .filter(|x| *x > 0.0)
        .ok_or("nothing committed between the warm-up and the first fault")?;
    let reference_s = window.reference_s;
    let during_end = if reference_s > window.start_s {
        reference_s
    } else {
        window.start_s + bound.bound_s
    };
    let during_end = during_end.min(run_end);
    let during_tps = mean_rate(&counts, bucket_s, window.start_s, during_end).unwrap_or(0.0);
    let after_tps = mean_rate(&counts, bucket_s, during_end, run_end);
    let threshold = RECOVERY_FRACTION * before_tps;
    let w = ((bound.rate_window_s / bucket_s).round() as usize).max(1);
    let n = (run_end / bucket_s).round() as usize;
    let n = n.min(counts.len());
    // Trailing rate at grid point k (time k * bucket_s) over buckets [k - w, k).
    let bad = |k: usize| -> bool {
        let sum: u64 = counts[k.saturating_sub(w)..k].iter().sum();
        (sum as f64) / (w.min(k) as f64 * bucket_s) < threshold
    };
    let ref_k = ((reference_s / bucket_s).ceil() as usize).max(w);
    let start_k = ((window.start_s / bucket_s).ceil() as usize).max(w);
    let mut last_bad = None;
    for k in ref_k..=n {
        if bad(k) {
            last_bad = Some(k);
        }
    }
    let recovery_s = match last_bad {
        None => Some(0.0),
        Some(k) if k >= n => None,
        Some(k) => Some(((k + 1) as f64 * bucket_s - reference_s).max(0.0)),
    };
    let (mut longest, mut cur) = (0usize, 0usize);
    for k in start_k..=n {
        if bad(k) {
            cur += 1;
            longest = longest.max(cur);
        } else {
            cur = 0;
        }
    }
    Ok(Analysis {
        before_tps,
        during_tps,
        after_tps,
        window,
        reference_s,
        recovery_s: recovery_s.map(|x| (x * 1e3).round() / 1e3),
        longest_outage_s: (longest as f64 * bucket_s * 1e3).round() / 1e3,
        bound,
        view_changes: r.view_changes(),
        invariants_checked: r.invariants_checked(),
    })
}

/// Set the scenario up for [`analyze`]: [`SERIES_BUCKET_S`] buckets. Nothing else
/// changes (the trace digest does not depend on the bucket width).
pub fn prepare(s: &mut Scenario) {
    s.metrics.timeseries_bucket_s = SERIES_BUCKET_S;
}

/// The fault name of a suite file stem: `pbft-leader-crash` → `leader-crash`.
pub fn fault_name<'a>(stem: &'a str, protocol: &str) -> &'a str {
    stem.strip_prefix(protocol)
        .and_then(|r| r.strip_prefix('-'))
        .unwrap_or(stem)
}

/// Whether `protocol` refuses Byzantine nodes: validation of a scenario that marks
/// one node of a 7-node committee Byzantine. `Some(message)` if refused.
pub fn refuses_byzantine(protocol: &str) -> Option<String> {
    let mut s = Scenario {
        name: format!("{protocol}-byzantine"),
        consensus: protocol.to_string(),
        nodes_per_shard: 7,
        ..Scenario::default()
    };
    s.faults.push(FaultSpec::Byzantine {
        nodes: vec![1],
        behaviour: crate::protocol::ByzantineBehaviour::Withhold,
        at_s: 4.0,
        until_s: None,
    });
    crate::protocols::validate(&s).err().map(|e| e.to_string())
}

/// Every `*.toml` file of `dir`, sorted by name: `(file stem, scenario)`.
pub fn load_dir(dir: &std::path::Path) -> Result<Vec<(String, Scenario)>, String> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for p in files {
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let s =
            Scenario::from_toml_str(&text, &p.display().to_string()).map_err(|e| e.to_string())?;
        let stem = p
            .file_stem()
            .map(|x| x.to_string_lossy().to_string())
            .unwrap_or_default();
        out.push((stem, s));
    }
    Ok(out)
}
