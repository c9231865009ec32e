//! The bare discrete-event kernel: timer-like events with ~10k pending.
//!
//! Each iteration pops the earliest event and schedules a replacement a
//! pseudo-random delay later (a xorshift sequence, no allocation), so the
//! queue stays at 10,000 pending events, as in a run with many armed timers.
//! A second bench runs the whole simulator (workload generation, network, CPU
//! model, sequencer, ledger execution, setup included) on the built-in
//! `hospital` scenario shortened to 10 s and reports kernel events per second.
#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items.

use benches::cpu_time::ThreadCpuTime;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sim::kernel::EventQueue;

const PENDING: u64 = 10_000;
const EVENTS_PER_ITER: u64 = 100_000;

#[derive(Clone, Copy)]
struct TimerEvent {
    node: u32,
    timer: u32,
}

fn bench_kernel(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("kernel");
    g.throughput(Throughput::Elements(EVENTS_PER_ITER));
    g.bench_function("timers_10k_pending", |b| {
        let mut q: EventQueue<TimerEvent> = EventQueue::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let next = |x: &mut u64| {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x % 1_000_000 + 1
        };
        for i in 0..PENDING {
            q.schedule(
                next(&mut x),
                TimerEvent {
                    node: i as u32,
                    timer: 0,
                },
            )
            .expect("schedule");
        }
        b.iter(|| {
            let mut acc = 0u64;
            for _ in 0..EVENTS_PER_ITER {
                let (t, ev) = q.pop().expect("queue never drains");
                acc = acc.wrapping_add(u64::from(ev.node));
                let d = next(&mut x);
                q.schedule(
                    t + d,
                    TimerEvent {
                        node: ev.node,
                        timer: ev.timer + 1,
                    },
                )
                .expect("schedule");
            }
            black_box(acc)
        });
    });
    g.finish();
}

fn bench_simulation(c: &mut Criterion<ThreadCpuTime>) {
    let mut s = sim::builtin::get("hospital").expect("built-in hospital scenario");
    s.duration_s = 10.0;
    s.warmup_s = 2.0;
    let events = sim::run(&s, &sim::RunOptions::default())
        .expect("run")
        .events;
    let mut g = c.benchmark_group("simulation");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events));
    g.bench_function("hospital_10s", |b| {
        b.iter(|| {
            black_box(
                sim::run(&s, &sim::RunOptions::default())
                    .expect("run")
                    .events,
            )
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_kernel, bench_simulation
}
criterion_main!(benches);
