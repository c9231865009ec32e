//! Network, node and kernel behaviour observed through a scripted probe protocol.

use sim::protocol::{BlockRef, Ctx, Message, NodeId, Protocol, Replica, TxRef};
use sim::run::run_protocol;
use sim::{RunOptions, Scenario, ScenarioError, SimError};
use std::cell::RefCell;

/// What the probe does (set per test, thread-local: each test runs on its own thread).
#[derive(Clone, Copy, Debug)]
enum Script {
    /// Node 0 (and node 2 if `two_senders`) sends a blob of `blob_bytes` then a ping to node 1.
    Blob { blob_bytes: u64, two_senders: bool },
    /// Node 0 sends a blob of `blob_bytes` to node 1; node 2 then sends node 1 a ping
    /// and a message of `small_bytes`.
    Interleave { blob_bytes: u64, small_bytes: u64 },
    /// Node 0 sends `n` pings to node 1 at once.
    Burst { n: u32 },
    /// Node 0 pings node 1 every `period_ns`.
    Periodic { period_ns: u64 },
    /// Node 0 sets `n` timers with the same delay.
    Timers { n: u32 },
    /// Nodes 0 and 1 both commit a different block of their own at height 1.
    Conflict,
}

thread_local! {
    static SCRIPT: RefCell<Script> = const { RefCell::new(Script::Burst { n: 0 }) };
    /// (receiver, message kind, sequence number, time) of every delivery.
    static LOG: RefCell<Vec<(NodeId, &'static str, u32, u64)>> = const { RefCell::new(Vec::new()) };
}

#[derive(Clone, Debug)]
enum Msg {
    Blob(u64),
    Ping(u32),
}

impl Message for Msg {
    fn size_bytes(&self) -> u64 {
        match self {
            Msg::Blob(n) => *n,
            Msg::Ping(_) => 100,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Msg::Blob(_) => "blob",
            Msg::Ping(_) => "ping",
        }
    }
}

struct Probe;
struct ProbeReplica {
    me: NodeId,
    script: Script,
    sent: u32,
}

impl Protocol for Probe {
    type Replica = ProbeReplica;
    const NAME: &'static str = "probe";
    fn from_scenario(_s: &Scenario) -> Result<Self, ScenarioError> {
        Ok(Probe)
    }
    fn max_faulty(&self, _n: usize) -> usize {
        0
    }
    fn replica(&self, _shard: u32, me: NodeId, _committee: &[NodeId]) -> ProbeReplica {
        ProbeReplica {
            me,
            script: SCRIPT.with(|s| *s.borrow()),
            sent: 0,
        }
    }
}

type C<'a> = Ctx<'a, Msg, u32>;

impl Replica for ProbeReplica {
    type Msg = Msg;
    type Timer = u32;

    fn on_start(&mut self, ctx: &mut C<'_>) {
        match self.script {
            Script::Blob {
                blob_bytes,
                two_senders,
            } if self.me == 0 || (two_senders && self.me == 2) => {
                ctx.send(1, Msg::Blob(blob_bytes));
                ctx.send(1, Msg::Ping(self.me));
            }
            Script::Interleave { blob_bytes, .. } if self.me == 0 => {
                ctx.send(1, Msg::Blob(blob_bytes));
            }
            Script::Interleave { small_bytes, .. } if self.me == 2 => {
                ctx.send(1, Msg::Ping(2));
                ctx.send(1, Msg::Blob(small_bytes));
            }
            Script::Burst { n } if self.me == 0 => {
                for i in 0..n {
                    ctx.send(1, Msg::Ping(i));
                }
            }
            Script::Periodic { period_ns } if self.me == 0 => {
                ctx.set_timer(period_ns, 0);
            }
            Script::Timers { n } if self.me == 0 => {
                let cancelled = ctx.set_timer(1_000, u32::MAX);
                for i in 0..n {
                    ctx.set_timer(1_000, i);
                }
                ctx.cancel_timer(cancelled);
            }
            Script::Conflict if self.me <= 1 => {
                let b: BlockRef = ctx.make_block(&[], None);
                ctx.commit(1, b);
            }
            _ => {}
        }
    }

    fn on_client_tx(&mut self, _ctx: &mut C<'_>, _tx: TxRef) {}

    fn on_message(&mut self, ctx: &mut C<'_>, _from: NodeId, msg: Msg) {
        let (kind, seq) = match msg {
            Msg::Blob(_) => ("blob", 0),
            Msg::Ping(i) => ("ping", i),
        };
        let (me, now) = (self.me, ctx.now());
        LOG.with(|l| l.borrow_mut().push((me, kind, seq, now)));
    }

    fn on_timer(&mut self, ctx: &mut C<'_>, timer: u32) {
        let (me, now) = (self.me, ctx.now());
        LOG.with(|l| l.borrow_mut().push((me, "timer", timer, now)));
        if let Script::Periodic { period_ns } = self.script {
            self.sent += 1;
            ctx.send(1, Msg::Ping(self.sent));
            ctx.set_timer(period_ns, 0);
        }
    }

    fn on_recover(&mut self, _ctx: &mut C<'_>) {}
}

/// A quiet scenario: no client load, no jitter, every node in us-east, 100 Mbps.
fn quiet(nodes: u32, duration_s: f64) -> Scenario {
    let mut s = Scenario::from_toml_str(
        "offered_tps = 0\nwarmup_s = 0\n[network]\nplacement = [\"us-east\"]\njitter = { kind = \"none\" }\n",
        "quiet",
    )
    .expect("quiet scenario");
    s.nodes_per_shard = nodes;
    s.duration_s = duration_s;
    s
}

fn run_script(
    script: Script,
    s: &Scenario,
) -> Result<Vec<(NodeId, &'static str, u32, u64)>, SimError> {
    SCRIPT.with(|c| *c.borrow_mut() = script);
    LOG.with(|l| l.borrow_mut().clear());
    run_protocol::<Probe>(s, &RunOptions::default())?;
    Ok(LOG.with(|l| l.borrow().clone()))
}

const INTRA_REGION_NS: u64 = 500_000; // us-east diagonal: 1 ms RTT / 2

#[test]
fn imaging_blob_delays_the_messages_behind_it() {
    let blob = 200_000_000u64;
    let log = run_script(
        Script::Blob {
            blob_bytes: blob,
            two_senders: false,
        },
        &quiet(2, 60.0),
    )
    .expect("run");
    let ping = log
        .iter()
        .find(|e| e.1 == "ping")
        .expect("ping delivered")
        .3;
    let blob_at = log
        .iter()
        .find(|e| e.1 == "blob")
        .expect("blob delivered")
        .3;
    // bytes * 8 / bandwidth: 200 MB at 100 Mbps = 16 s.
    let expected = blob * 8 * 1_000 / 100;
    assert!(ping > blob_at, "ping overtook the blob");
    let behind = ping - INTRA_REGION_NS;
    let err = behind.abs_diff(expected);
    assert!(
        err < 1_000_000,
        "ping arrived {behind} ns after send+latency, expected about {expected}"
    );
}

#[test]
fn receiver_downlink_is_shared_fifo() {
    let blob = 100_000_000u64; // 8 s at 100 Mbps
    let log = run_script(
        Script::Blob {
            blob_bytes: blob,
            two_senders: true,
        },
        &quiet(3, 60.0),
    )
    .expect("run");
    let mut blobs: Vec<u64> = log.iter().filter(|e| e.1 == "blob").map(|e| e.3).collect();
    blobs.sort();
    assert_eq!(blobs.len(), 2);
    let one = blob * 8 * 1_000 / 100;
    assert!(
        blobs[0].abs_diff(one + INTRA_REGION_NS) < 1_000_000,
        "first blob at {}",
        blobs[0]
    );
    assert!(
        blobs[1].abs_diff(2 * one + INTRA_REGION_NS) < 1_000_000,
        "second blob at {}",
        blobs[1]
    );
}

#[test]
fn single_packet_messages_interleave_with_a_transfer_larger_ones_queue() {
    let blob = 200_000_000u64; // 16 s at 100 Mbps
    let small = 2_000u64; // two packets
    let log = run_script(
        Script::Interleave {
            blob_bytes: blob,
            small_bytes: small,
        },
        &quiet(3, 60.0),
    )
    .expect("run");
    let at = |kind: &str, pred: &dyn Fn(u64) -> bool| {
        log.iter()
            .find(|e| e.0 == 1 && e.1 == kind && pred(e.3))
            .map(|e| e.3)
    };
    let one = blob * 8 * 1_000 / 100;
    // The 100-byte ping from node 2 does not wait for node 0's 16 s transfer: it pays the
    // latency and its own serialisation on both links (8 µs each).
    let ping = at("ping", &|_| true).expect("ping delivered");
    assert!(
        ping.abs_diff(INTRA_REGION_NS + 16_000) < 10_000,
        "ping at {ping} ns: it queued behind the transfer"
    );
    // The 2,000-byte message (more than one packet) queues behind the transfer.
    let two_packets = at("blob", &|t| t < one / 2);
    assert_eq!(two_packets, None, "a two-packet message skipped the queue");
    let blobs: Vec<u64> = log.iter().filter(|e| e.1 == "blob").map(|e| e.3).collect();
    assert_eq!(blobs.len(), 2);
    assert!(
        blobs.iter().all(|&t| t >= one),
        "deliveries {blobs:?}: the small one should follow the 16 s transfer"
    );
}

#[test]
fn messages_and_timers_keep_fifo_order() {
    let log = run_script(Script::Burst { n: 500 }, &quiet(2, 1.0)).expect("run");
    let seqs: Vec<u32> = log.iter().map(|e| e.2).collect();
    assert_eq!(seqs, (0..500).collect::<Vec<_>>());
    let log = run_script(Script::Timers { n: 50 }, &quiet(2, 1.0)).expect("run");
    let seqs: Vec<u32> = log.iter().filter(|e| e.1 == "timer").map(|e| e.2).collect();
    assert_eq!(
        seqs,
        (0..50).collect::<Vec<_>>(),
        "equal-time timers out of order or cancelled one fired"
    );
}

#[test]
fn loss_drops_at_the_configured_rate() {
    let mut s = quiet(2, 5.0);
    s.network.loss = 0.2;
    let n = 20_000;
    let got = run_script(Script::Burst { n }, &s).expect("run").len() as f64;
    let expected = f64::from(n) * 0.8;
    let sigma = (f64::from(n) * 0.2 * 0.8).sqrt();
    assert!(
        (got - expected).abs() < 4.0 * sigma,
        "delivered {got}, expected {expected} ± {}",
        4.0 * sigma
    );
}

#[test]
fn partition_stops_messages_and_heal_resumes_them() {
    let mut s = quiet(2, 3.0);
    s.faults = Scenario::from_toml_str(
        "[[faults]]\nkind = \"partition\"\nnodes = [0]\nat_s = 1.0\nuntil_s = 2.0\n",
        "partition",
    )
    .expect("faults")
    .faults;
    let log = run_script(
        Script::Periodic {
            period_ns: 10_000_000,
        },
        &s,
    )
    .expect("run");
    let pings: Vec<u64> = log
        .iter()
        .filter(|e| e.0 == 1 && e.1 == "ping")
        .map(|e| e.3)
        .collect();
    let during = pings
        .iter()
        .filter(|&&t| t > 1_010_000_000 && t < 2_000_000_000)
        .count();
    let before = pings.iter().filter(|&&t| t < 1_000_000_000).count();
    let after = pings.iter().filter(|&&t| t > 2_010_000_000).count();
    assert_eq!(during, 0, "messages crossed the partition");
    assert!(before > 90 && after > 90, "before {before}, after {after}");
}

#[test]
fn conflicting_commits_stop_the_run_with_the_seed() {
    let mut s = quiet(2, 1.0);
    s.seed = 4242;
    match run_script(Script::Conflict, &s) {
        Err(SimError::InvariantViolated { seed, what, .. }) => {
            assert_eq!(seed, 4242);
            assert!(what.contains("height 1"), "{what}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("conflicting commits were not detected"),
    }
}

#[test]
fn sequencer_commits_stop_across_a_partition_and_resume_after_heal() {
    // The leader (node 0) is cut off between 3 s and 5 s: transactions reaching the
    // other gateways cannot be forwarded, so commits fall to the leader's own share.
    let s = Scenario::from_toml_str(
        r#"
duration_s = 8
warmup_s = 0
offered_tps = 400
nodes_per_shard = 4
[[faults]]
kind = "partition"
nodes = [0]
at_s = 3.0
until_s = 5.0
"#,
        "partition-seq",
    )
    .expect("scenario");
    let r = sim::run(&s, &RunOptions::default()).expect("run");
    let csv = r.timeseries_csv();
    let rows: Vec<(f64, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                c[2].parse().expect("offered"),
                c[3].parse().expect("committed"),
            )
        })
        .collect();
    for (i, (offered, committed)) in rows.iter().enumerate() {
        match i {
            1 | 2 | 6 | 7 => assert!(
                *committed > 0.7 * offered,
                "second {i}: {committed} of {offered}"
            ),
            4 => assert!(
                *committed < 0.5 * offered,
                "second {i} (partitioned): {committed} of {offered}"
            ),
            _ => {}
        }
    }
    assert!(r.dropped_partition > 0);
}

#[test]
fn busy_leader_is_the_bottleneck() {
    // 1 ms per signature check: the sequencer leader verifies every transaction
    // once, so it cannot order much more than 1000 tx/s whatever the offered load.
    let mut s =
        Scenario::from_toml_str("duration_s = 6\nwarmup_s = 0\noffered_tps = 2000\n", "cpu")
            .expect("scenario");
    s.node.verify_ns = 1_000_000;
    let r = sim::run(&s, &RunOptions::default()).expect("run");
    let tput = r.throughput_tps();
    assert!(tput < 1_100.0 && tput > 500.0, "throughput {tput}");
    let mut fast = s.clone();
    fast.node.verify_ns = 10_000;
    let f = sim::run(&fast, &RunOptions::default()).expect("run");
    assert!(
        f.throughput_tps() > 1_800.0,
        "fast throughput {}",
        f.throughput_tps()
    );
}

#[test]
fn trace_file_and_progress_report_events_and_faults() {
    let dir = std::env::temp_dir().join(format!("sim-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("trace.txt");
    let s = Scenario::from_toml_str(
        "duration_s = 2\nwarmup_s = 0\noffered_tps = 100\n[[faults]]\nkind = \"crash\"\nnode = 2\nat_s = 0.5\nrecover_s = 1.0\n",
        "trace",
    )
    .expect("scenario");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let opts = RunOptions {
        trace_path: Some(path.clone()),
        progress: Some(std::sync::Arc::new(move |done, total| {
            seen2.lock().expect("lock").push((done, total));
        })),
        ..RunOptions::default()
    };
    let r = sim::run(&s, &opts).expect("run");
    let text = std::fs::read_to_string(&path).expect("trace written");
    assert!(
        text.lines().count() as u64 >= r.events / 2,
        "trace has too few lines"
    );
    assert!(text.contains("fault 0 crash start"), "crash start missing");
    assert!(text.contains("fault 0 crash end"), "recovery missing");
    assert!(text.contains("commit node"));
    let p = seen.lock().expect("lock").clone();
    assert!(p.len() >= 10, "progress called {} times", p.len());
    assert!(
        p.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress went backwards"
    );
    assert_eq!(p.last().map(|x| x.0), Some(2.0));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

fn faults(toml: &str) -> Vec<sim::faults::FaultSpec> {
    Scenario::from_toml_str(toml, "faults")
        .expect("faults")
        .faults
}

/// Deliveries to node 1 of the periodic pings inside `(from_ns, to_ns)`.
fn pings_between(
    log: &[(NodeId, &'static str, u32, u64)],
    from_ns: u64,
    to_ns: u64,
) -> Vec<(u32, u64)> {
    log.iter()
        .filter(|e| e.0 == 1 && e.1 == "ping" && e.3 > from_ns && e.3 < to_ns)
        .map(|e| (e.2, e.3))
        .collect()
}

#[test]
fn one_way_partition_cuts_only_the_outgoing_direction() {
    let mut s = quiet(2, 2.0);
    s.faults =
        faults("[[faults]]\nkind = \"partition\"\nnodes = [1]\nat_s = 0.0\none_way = true\n");
    // Node 1 is cut off outgoing only: node 0's pings still reach it.
    let log = run_script(
        Script::Periodic {
            period_ns: 10_000_000,
        },
        &s,
    )
    .expect("run");
    assert!(pings_between(&log, 0, u64::MAX).len() > 150);
    s.faults =
        faults("[[faults]]\nkind = \"partition\"\nnodes = [0]\nat_s = 0.0\none_way = true\n");
    let log = run_script(
        Script::Periodic {
            period_ns: 10_000_000,
        },
        &s,
    )
    .expect("run");
    assert!(
        pings_between(&log, 0, u64::MAX).is_empty(),
        "node 0's outgoing messages crossed a one-way cut"
    );
}

#[test]
fn latency_fault_adds_delay_only_inside_its_window() {
    let mut s = quiet(2, 3.0);
    s.faults = faults("[[faults]]\nkind = \"latency\"\nfrom = 0\nto = 1\nextra_ms = 40\nat_s = 1.0\nuntil_s = 2.0\n");
    let log = run_script(
        Script::Periodic {
            period_ns: 10_000_000,
        },
        &s,
    )
    .expect("run");
    // Ping k is sent at k * 10 ms; its one-way delay is the arrival minus that.
    let delay = |(k, t): (u32, u64)| t - u64::from(k) * 10_000_000;
    let before: Vec<u64> = pings_between(&log, 0, 900_000_000)
        .into_iter()
        .map(delay)
        .collect();
    let during: Vec<u64> = pings_between(&log, 1_100_000_000, 1_900_000_000)
        .into_iter()
        .map(delay)
        .collect();
    let after: Vec<u64> = pings_between(&log, 2_100_000_000, u64::MAX)
        .into_iter()
        .map(delay)
        .collect();
    assert!(before.iter().all(|&d| d < 2_000_000), "{before:?}");
    assert!(
        !during.is_empty() && during.iter().all(|&d| d > 40_000_000 && d < 42_000_000),
        "{during:?}"
    );
    assert!(
        !after.is_empty() && after.iter().all(|&d| d < 2_000_000),
        "{after:?}"
    );
}

#[test]
fn slow_node_fault_scales_cpu_costs() {
    let base =
        Scenario::from_toml_str("duration_s = 6\nwarmup_s = 0\noffered_tps = 2000\n", "slow")
            .expect("scenario");
    let mut s = base.clone();
    s.node.verify_ns = 200_000; // leader at about 0.4 s of work per second
    let normal = sim::run(&s, &RunOptions::default())
        .expect("run")
        .throughput_tps();
    s.faults = faults("[[faults]]\nkind = \"slow\"\nnode = 0\nfactor = 5.0\nat_s = 0.0\n");
    let slowed = sim::run(&s, &RunOptions::default())
        .expect("run")
        .throughput_tps();
    assert!(normal > 1_800.0, "normal {normal}");
    assert!(
        slowed < 1_200.0,
        "a 5x slower leader should saturate: {slowed}"
    );
}

#[test]
fn crashed_leader_stops_commits_until_it_recovers() {
    let s = Scenario::from_toml_str(
        "duration_s = 8\nwarmup_s = 0\noffered_tps = 400\n[[faults]]\nkind = \"crash\"\nnode = 0\nat_s = 3.0\nrecover_s = 5.0\n",
        "crash",
    )
    .expect("scenario");
    let r = sim::run(&s, &RunOptions::default()).expect("run");
    let committed: Vec<f64> = r
        .timeseries_csv()
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .nth(3)
                .expect("column")
                .parse()
                .expect("number")
        })
        .collect();
    assert!(
        committed[1] > 300.0 && committed[6] > 300.0,
        "{committed:?}"
    );
    assert_eq!(
        committed[4], 0.0,
        "commits while the leader was down: {committed:?}"
    );
}
