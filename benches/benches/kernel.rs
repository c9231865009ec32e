//! The bare discrete-event kernel: timer-like events with ~10k pending.
//!
//! Each iteration pops the earliest event and schedules a replacement a
//! pseudo-random delay later (a xorshift sequence, no allocation), so the
//! queue stays at 10,000 pending events, as in a run with many armed timers.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sim::kernel::EventQueue;

const PENDING: u64 = 10_000;
const EVENTS_PER_ITER: u64 = 100_000;

#[derive(Clone, Copy)]
struct TimerEvent {
    node: u32,
    timer: u32,
}

fn bench_kernel(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel");
    g.throughput(Throughput::Elements(EVENTS_PER_ITER));
    g.bench_function("timers_10k_pending", |b| {
        let mut q: EventQueue<TimerEvent> = EventQueue::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |x: &mut u64| {
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

criterion_group!(benches, bench_kernel);
criterion_main!(benches);
