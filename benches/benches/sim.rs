//! Simulator benches beyond the bare kernel (`cargo bench -p benches --bench sim`):
//!
//! - `sim/network`: one message through the network model (uplink serialisation,
//!   region latency, jitter draw, downlink queue, per-node and per-kind counters),
//!   per message.
//! - `sim/protocol_block/{pbft,hotstuff,raft}/n`: one shard of `n` = 4/16/64 replicas
//!   ordering 2,000 tx/s in blocks of at most 100 for 10 simulated seconds; the
//!   throughput is committed blocks per wall second (setup and elections included,
//!   so the figure is the wall cost of one block of a whole run, amortised).
//! - `sim/e2e`: the PBFT reference scenario (`scenarios/pbft.toml`: 7 replicas, 1,000
//!   tx/s of the default mix) run for 60 simulated seconds, setup included, in kernel
//!   events per wall second (floor: 2 million).
#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items.

use benches::cpu_time::ThreadCpuTime;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim::net::{Network, NetworkConfig, Topology};
use sim::{RunOptions, Scenario};

/// Messages per measured iteration of the network bench.
const MESSAGES: u64 = 100_000;
/// Nodes in the network bench (112 = the `large` scenario's 16 × 7).
const NET_NODES: usize = 112;

fn bench_network(c: &mut Criterion<ThreadCpuTime>) {
    let cfg = NetworkConfig::default();
    let regions: Vec<String> = cfg.regions.clone();
    let topo = Topology::new(&cfg, NET_NODES, &regions).expect("default topology");
    let mut net = Network::new(topo, &cfg, 1);
    let mut g = c.benchmark_group("sim/network");
    g.throughput(Throughput::Elements(MESSAGES));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut now = 0u64;
    g.bench_function("send+receive 1 KiB, 112 nodes", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for _ in 0..MESSAGES {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let from = (x % NET_NODES as u64) as u32;
                let to = ((x >> 20) % NET_NODES as u64) as u32;
                now += 10_000; // 100k messages per simulated second
                if let Ok((first, last)) = net.send(from, to, now, 1024, "bench") {
                    acc = acc.wrapping_add(net.receive(to, first, last, 1024));
                }
            }
            black_box(acc)
        })
    });
    g.finish();
}

/// One shard of `n` replicas of `protocol` at 2,000 tx/s, blocks of ≤ 100, 10 s.
fn block_scenario(protocol: &str, n: u32) -> Scenario {
    let mut s = sim::builtin::get("default").expect("built-in default scenario");
    for (k, v) in [
        ("consensus", protocol.to_string()),
        ("nodes_per_shard", n.to_string()),
        ("duration_s", "10".into()),
        ("warmup_s", "1".into()),
        ("offered_tps", "2000".into()),
        ("block_max_tx", "100".into()),
        ("consortium.patients", "10000".into()),
    ] {
        s.apply_override(k, &v).expect("valid override");
    }
    s
}

fn bench_protocol_blocks(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("sim/protocol_block");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for protocol in ["pbft", "hotstuff", "raft"] {
        for n in [4u32, 16, 64] {
            let s = block_scenario(protocol, n);
            let blocks = sim::run(&s, &RunOptions::default())
                .expect("run")
                .blocks_committed();
            if blocks == 0 {
                eprintln!("sim/protocol_block/{protocol}/{n}: no block committed, skipped");
                continue;
            }
            g.throughput(Throughput::Elements(blocks));
            g.bench_with_input(BenchmarkId::new(protocol, n), &s, |b, s| {
                b.iter(|| black_box(sim::run(s, &RunOptions::default()).expect("run").events))
            });
        }
    }
    g.finish();
}

fn bench_e2e(c: &mut Criterion<ThreadCpuTime>) {
    let mut s = Scenario::from_toml_str(
        include_str!("../../scenarios/pbft.toml"),
        "scenarios/pbft.toml",
    )
    .expect("pbft scenario");
    s.duration_s = 60.0;
    let events = sim::run(&s, &RunOptions::default()).expect("run").events;
    let mut g = c.benchmark_group("sim/e2e");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(events));
    g.bench_function("pbft 7 replicas 1000 tx/s 60 s", |b| {
        b.iter(|| black_box(sim::run(&s, &RunOptions::default()).expect("run").events))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_network, bench_protocol_blocks, bench_e2e
}
criterion_main!(benches);
