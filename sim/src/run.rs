//! Running a scenario and the results it produces (see docs/results.md).

use crate::client::{ClientTx, TxStatus};
use crate::error::SimError;
use crate::metrics::Metrics;
use crate::net::KindStats;
use crate::protocol::Protocol;
use crate::scenario::Scenario;
use crate::sim::Simulation;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Progress callback: `(simulated seconds done, simulated seconds total)`.
pub type ProgressFn = Arc<dyn Fn(f64, f64) + Send + Sync>;

/// Options of one run that are not part of the scenario.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Write one line per kernel event (including faults) to this file. Off by default.
    pub trace_path: Option<PathBuf>,
    /// Called about every 0.1 simulated seconds.
    pub progress: Option<ProgressFn>,
    /// When set to `true` (by a signal handler), the run stops at its next progress
    /// point with [`SimError::Cancelled`]; nothing about the run is reported.
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("trace_path", &self.trace_path)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel.is_some())
            .finish()
    }
}

/// Latency percentiles, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        LatencySummary {
            p50: us_to_ms(h.value_at_quantile(0.5)),
            p90: us_to_ms(h.value_at_quantile(0.9)),
            p99: us_to_ms(h.value_at_quantile(0.99)),
            p999: us_to_ms(h.value_at_quantile(0.999)),
            max: us_to_ms(h.max()),
            mean: h.mean() / 1_000.0,
        }
    }
}

/// Everything a run produced.
pub struct RunResult {
    /// The resolved scenario.
    pub scenario: Scenario,
    /// Kernel events processed.
    pub events: u64,
    /// Simulated seconds.
    pub sim_time_s: f64,
    /// Wall-clock seconds (the only non-deterministic field).
    pub wall_time_s: f64,
    /// blake3 over every first commit `(shard, height, block digest, time)` in order, hex.
    pub trace_digest: String,
    /// Latency of committed transactions after warm-up.
    pub latency_ms: LatencySummary,
    /// Latency of single-shard transactions.
    pub single_shard_latency_ms: LatencySummary,
    /// Latency of cross-shard transactions.
    pub cross_shard_latency_ms: LatencySummary,
    /// Latency to first inclusion (longest-chain protocols).
    pub inclusion_latency_ms: LatencySummary,
    /// Messages by type.
    pub messages_by_type: BTreeMap<String, KindStats>,
    /// Messages dropped by loss.
    pub dropped_loss: u64,
    /// Messages dropped by partitions.
    pub dropped_partition: u64,
    /// Bytes sent per node.
    pub sent_bytes_per_node: Vec<u64>,
    /// Messages sent per node.
    pub sent_msgs_per_node: Vec<u64>,
    /// Bytes received per node.
    pub recv_bytes_per_node: Vec<u64>,
    /// Per-transaction records (only with `metrics.record_transactions`).
    pub transactions: Vec<ClientTx>,
    /// The executed ledger with its block logs (only with `metrics.keep_ledger_log`);
    /// export it with `ledger_core::log::export(&ledger, &dir.join("ledger"))`.
    pub ledger: Option<ledger_core::Ledger>,
    /// Protocol-specific figures ([`Protocol::extras`]): `summary.json` key `chain`.
    pub extras: Option<Value>,
    /// Most operations held in memory at once ([`crate::arena`]: finished ones retire).
    pub peak_live_operations: usize,
    /// Most client transactions held in memory at once (all of them with
    /// `metrics.record_transactions`).
    pub peak_live_transactions: usize,
    metrics: Metrics,
}

/// Run `scenario` with the protocol it names.
pub fn run(scenario: &Scenario, opts: &RunOptions) -> Result<RunResult, SimError> {
    crate::protocols::validate(scenario)?;
    let entry = crate::protocols::get(&scenario.consensus)?;
    (entry.run)(scenario, opts)
}

/// Wall-clock seconds since an arbitrary origin. THE ONLY place the simulator
/// reads a clock; used for `wall_time_s` in reports, never for a decision.
pub fn wall_clock_s() -> f64 {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    std::time::Instant::now()
        .duration_since(origin)
        .as_secs_f64()
}

/// Run `scenario` with protocol `P` (the registry's entry point; `scenario` must be valid).
pub fn run_protocol<P: Protocol>(
    scenario: &Scenario,
    opts: &RunOptions,
) -> Result<RunResult, SimError> {
    let wall_start = wall_clock_s();
    let mut protocol = P::from_scenario(scenario)?;
    let sim = Simulation::new(scenario, &mut protocol, opts)?;
    let out = sim.run()?;
    let extras = protocol.extras();
    let wall_time_s = wall_clock_s() - wall_start;
    let m = out.metrics;
    let mut by_type: BTreeMap<String, KindStats> = BTreeMap::new();
    for (k, v) in out.net.by_kind.totals() {
        by_type.insert(k.to_string(), v);
    }
    Ok(RunResult {
        scenario: scenario.clone(),
        events: out.events,
        sim_time_s: out.sim_time_ns as f64 / 1e9,
        wall_time_s,
        trace_digest: out.digest.iter().map(|b| format!("{b:02x}")).collect(),
        latency_ms: LatencySummary::of(&m.latency_us),
        single_shard_latency_ms: LatencySummary::of(&m.single_shard_latency_us),
        cross_shard_latency_ms: LatencySummary::of(&m.cross_shard_latency_us),
        inclusion_latency_ms: LatencySummary::of(&m.inclusion_latency_us),
        messages_by_type: by_type,
        dropped_loss: out.net.dropped_loss,
        dropped_partition: out.net.dropped_partition,
        sent_bytes_per_node: out.net.sent_bytes,
        sent_msgs_per_node: out.net.sent_msgs,
        recv_bytes_per_node: out.net.recv_bytes,
        transactions: out.tx_records,
        ledger: out.ledger,
        extras,
        peak_live_operations: out.peak_live_ops,
        peak_live_transactions: out.peak_live_txs,
        metrics: m,
    })
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn lat_json(l: &LatencySummary) -> Value {
    json!({"p50": l.p50, "p90": l.p90, "p99": l.p99, "p999": l.p999, "max": l.max, "mean": round6(l.mean)})
}

impl RunResult {
    /// Seconds measured (after warm-up).
    pub fn measured_s(&self) -> f64 {
        (self.sim_time_s - self.scenario.warmup_s).max(1e-9)
    }

    /// Transactions submitted after warm-up.
    pub fn submitted_tx(&self) -> u64 {
        self.metrics.submitted
    }

    /// Transactions committed (accepted or rejected by a rule) that were submitted after warm-up.
    pub fn committed_tx(&self) -> u64 {
        self.metrics.committed
    }

    /// Committed but rejected by a ledger rule.
    pub fn rejected_tx(&self) -> u64 {
        self.metrics.rejected
    }

    /// Cross-shard transactions aborted.
    pub fn aborted_tx(&self) -> u64 {
        self.metrics.aborted
    }

    /// Committed transactions per measured second.
    pub fn throughput_tps(&self) -> f64 {
        self.metrics.committed as f64 / self.measured_s()
    }

    /// Blocks executed.
    pub fn blocks_committed(&self) -> u64 {
        self.metrics.blocks_committed
    }

    /// Transactions committed in each time-series bucket (warm-up included, by
    /// commit time) and the bucket width, s.
    pub fn committed_per_bucket(&self) -> (f64, Vec<u64>) {
        let m = &self.metrics;
        (
            m.bucket_ns as f64 / 1e9,
            m.buckets.iter().map(|b| b.committed).collect(),
        )
    }

    /// View changes counted.
    pub fn view_changes(&self) -> u64 {
        self.metrics.view_changes
    }

    /// Stale blocks counted.
    pub fn stale_blocks(&self) -> u64 {
        self.metrics.stale_blocks
    }

    /// Commit invariant checks made.
    pub fn invariants_checked(&self) -> u64 {
        self.metrics.invariants_checked
    }

    /// Total messages sent.
    pub fn messages_total(&self) -> u64 {
        self.messages_by_type.values().map(|k| k.count).sum()
    }

    /// Total bytes sent.
    pub fn messages_bytes(&self) -> u64 {
        self.messages_by_type.values().map(|k| k.bytes).sum()
    }

    /// `summary.json` (docs/results.md).
    pub fn summary_json(&self) -> Value {
        let m = &self.metrics;
        let s = &self.scenario;
        let measured = self.measured_s();
        let by_type: serde_json::Map<String, Value> = self
            .messages_by_type
            .iter()
            .map(|(k, v)| (k.clone(), json!({"count": v.count, "bytes": v.bytes})))
            .collect();
        let frac = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                round6(a as f64 / b as f64)
            }
        };
        let produced = m.blocks_committed + m.stale_blocks;
        json!({
            "scenario": s.name,
            "seed": s.seed,
            "consensus": s.consensus,
            "shards": s.shards,
            "nodes": s.total_nodes(),
            "sim_time_s": self.sim_time_s,
            "wall_time_s": self.wall_time_s,
            "events": self.events,
            "events_per_wall_s": self.events as f64 / self.wall_time_s.max(1e-9),
            "sim_s_per_wall_s": self.sim_time_s / self.wall_time_s.max(1e-9),
            "submitted_tx": m.submitted,
            "committed_tx": m.committed,
            "rejected_tx": m.rejected,
            "aborted_tx": m.aborted,
            "throughput_tps": round6(m.committed as f64 / measured),
            "offered_tps": round6(m.submitted as f64 / measured),
            "latency_ms": lat_json(&self.latency_ms),
            "messages": {"total": self.messages_total(), "bytes": self.messages_bytes(), "by_type": by_type,
                          "dropped_loss": self.dropped_loss, "dropped_partition": self.dropped_partition},
            "cross_shard": {
                "fraction": frac(m.cross_shard_submitted, m.submitted),
                "abort_rate": frac(m.cross_shard_aborted, m.cross_shard_submitted),
                "latency_ms_p50": self.cross_shard_latency_ms.p50,
                "latency_ms_p99": self.cross_shard_latency_ms.p99,
                "single_shard_latency_ms_p50": self.single_shard_latency_ms.p50,
                "single_shard_latency_ms_p99": self.single_shard_latency_ms.p99,
                "target": s.cross_shard_fraction,
                "shaper": {"rehomed": m.shaper.rehomed, "injected": m.shaper.injected,
                           "not_rehomable": m.shaper.not_rehomable},
            },
            "client_resends": m.client_resends,
            "forks": {"stale_blocks": m.stale_blocks, "stale_rate": frac(m.stale_blocks, produced), "reorgs": m.reorgs},
            "inclusion_latency_ms": lat_json(&self.inclusion_latency_ms),
            "view_changes": m.view_changes,
            "blocks_committed": m.blocks_committed,
            "duplicate_commits": m.duplicate_commits,
            "inbox_overflows": m.inbox_overflows,
            "trace_digest": self.trace_digest,
            "invariants": {"checked": m.invariants_checked, "violations": 0},
            "chain": self.extras.clone().unwrap_or(Value::Null),
        })
    }

    /// `timeseries.csv` (docs/results.md).
    pub fn timeseries_csv(&self) -> String {
        let m = &self.metrics;
        let bucket_s = m.bucket_ns as f64 / 1e9;
        let mut out = String::from(
            "t_s,warmup,offered_tps,committed_tps,rejected_tps,aborted_tps,latency_ms_p50,latency_ms_p99,bytes_sent,view_changes\n",
        );
        for (i, b) in m.buckets.iter().enumerate() {
            let start_ns = i as u64 * m.bucket_ns;
            let warm = u8::from(start_ns < m.warmup_ns);
            let (p50, p99) = match &b.latency_us {
                Some(h) if !h.is_empty() => (
                    format!("{}", us_to_ms(h.value_at_quantile(0.5))),
                    format!("{}", us_to_ms(h.value_at_quantile(0.99))),
                ),
                _ => (String::new(), String::new()),
            };
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                round6(i as f64 * bucket_s),
                warm,
                round6(b.offered as f64 / bucket_s),
                round6(b.committed as f64 / bucket_s),
                round6(b.rejected as f64 / bucket_s),
                round6(b.aborted as f64 / bucket_s),
                p50,
                p99,
                b.bytes_sent,
                b.view_changes
            ));
        }
        out
    }

    /// `latency.csv` (docs/results.md): percentiles 0..=99, 99.5, 99.9, 99.99, 100.
    pub fn latency_csv(&self) -> String {
        let h = &self.metrics.latency_us;
        let mut out = String::from("percentile,latency_ms\n");
        let mut ps: Vec<f64> = (0..=99).map(f64::from).collect();
        ps.extend([99.5, 99.9, 99.99, 100.0]);
        for p in ps {
            let v = if h.is_empty() {
                String::new()
            } else if p == 0.0 {
                format!("{}", us_to_ms(h.min()))
            } else {
                format!("{}", us_to_ms(h.value_at_quantile(p / 100.0)))
            };
            out.push_str(&format!("{p},{v}\n"));
        }
        out
    }

    /// The fully resolved scenario as TOML (`scenario.toml`).
    pub fn resolved_scenario_toml(&self) -> String {
        self.scenario.to_toml_string()
    }

    /// One row per transaction (`transactions.csv`, before compression); empty
    /// unless `metrics.record_transactions` was set.
    pub fn transactions_csv(&self) -> String {
        let mut out =
            String::from("id,kind,client,cross_shard,submit_ms,done_ms,status,latency_ms\n");
        for (i, t) in self.transactions.iter().enumerate() {
            let status = match t.status {
                TxStatus::Pending => "pending",
                TxStatus::Committed => "committed",
                TxStatus::Rejected => "rejected",
                TxStatus::Aborted => "aborted",
            };
            let (done, lat) = match t.done_ns {
                Some(d) => (
                    format!("{}", d as f64 / 1e6),
                    format!("{}", (d - t.submit_ns) as f64 / 1e6),
                ),
                None => (String::new(), String::new()),
            };
            out.push_str(&format!(
                "{i},{},{},{},{},{done},{status},{lat}\n",
                t.kind.name(),
                t.client,
                u8::from(t.cross_shard()),
                t.submit_ns as f64 / 1e6
            ));
        }
        out
    }
}
