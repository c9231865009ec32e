//! Workload generation rate: requests per second per workload family and for the
//! default mix (`cargo bench -p benches --bench workloads`). Floor: 5 million tx/s per
//! core.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use benches::cpu_time::ThreadCpuTime;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use workloads::config::{ImagingMode, MixConfig};
use workloads::{Consortium, ConsortiumConfig, Generator, WorkloadConfig};

/// Requests generated per measured iteration.
const BATCH: u64 = 100_000;

fn only(family: &str) -> MixConfig {
    let w = |f: &str| if f == family { 1.0 } else { 0.0 };
    MixConfig {
        hospital: w("hospital"),
        imaging: w("imaging"),
        claims: w("claims"),
        supply_chain: w("supply_chain"),
        payment: w("payment"),
    }
}

fn bench_generation(c: &mut Criterion<ThreadCpuTime>) {
    let consortium = Consortium::new(&ConsortiumConfig::default(), 1).expect("default consortium");
    let mut cases: Vec<(&str, WorkloadConfig)> = vec![("default_mix", WorkloadConfig::default())];
    for family in ["hospital", "imaging", "claims", "supply_chain", "payment"] {
        cases.push((
            family,
            WorkloadConfig {
                mix: only(family),
                ..WorkloadConfig::default()
            },
        ));
    }
    let mut onchain = WorkloadConfig {
        mix: only("imaging"),
        ..WorkloadConfig::default()
    };
    onchain.imaging.mode = ImagingMode::Onchain;
    cases.push(("imaging_onchain", onchain));

    let mut group = c.benchmark_group("workload_generate");
    group.throughput(Throughput::Elements(BATCH));
    for (name, cfg) in &cases {
        // One long-lived generator per case (steady state: per-patient state warm,
        // pending queue at its working size).
        let mut g = Generator::new(cfg, &consortium, 10_000.0, 42).expect("valid config");
        for _ in 0..BATCH {
            black_box(g.next_request());
        }
        group.bench_function(*name, |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    black_box(g.next_request());
                }
            })
        });
    }
    group.finish();

    // The reference large run's panel (scenarios/large.toml): 78 organisations,
    // 1,000,000 patients. Per-patient state no longer fits in cache, so this case shows
    // the cost of the generator's memory accesses, which the 100,000-patient cases hide.
    let large = ConsortiumConfig {
        hospitals: 40,
        imaging_centres: 10,
        insurers: 8,
        pharmacies: 20,
        patients: 1_000_000,
        ..ConsortiumConfig::default()
    };
    let large = Consortium::new(&large, 1).expect("large consortium");
    let cfg = WorkloadConfig::default();
    let mut group = c.benchmark_group("workload_generate_1m_patients");
    group.throughput(Throughput::Elements(BATCH));
    let mut g = Generator::new(&cfg, &large, 20_000.0, 42).expect("valid config");
    for _ in 0..BATCH {
        black_box(g.next_request());
    }
    group.bench_function("default_mix", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(g.next_request());
            }
        })
    });
    group.finish();

    // Start-up: building the generator for 1,000,000 patients (patient-activity table,
    // per-patient state), once per run.
    let mut group = c.benchmark_group("workload_generator_new");
    group.sample_size(10);
    group.throughput(Throughput::Elements(large.patients() as u64));
    group.bench_function("1m_patients", |b| {
        b.iter(|| black_box(Generator::new(&cfg, &large, 20_000.0, 42).expect("valid config")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_generation
}
criterion_main!(benches);
