//! Every built-in scenario (`sim::builtin::BUILTINS`, so scenarios added later are
//! included automatically), run twice, gives the same trace digest and summary.
//! Runs are shortened to [`MAX_DURATION_S`] simulated seconds to keep this fast;
//! faults scheduled later than that simply do not happen in the short run.

use sim::{builtin, run, RunOptions};

/// Longest simulated run per built-in, s.
const MAX_DURATION_S: f64 = 3.0;

fn strip_wall(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        for k in ["wall_time_s", "events_per_wall_s", "sim_s_per_wall_s"] {
            o.remove(k);
        }
    }
    v
}

#[test]
fn every_builtin_runs_twice_to_the_same_digest() {
    let list = builtin::list();
    assert!(list.len() >= 6, "built-ins: {list:?}");
    for (name, _) in list {
        let mut s = builtin::get(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        if s.duration_s > MAX_DURATION_S {
            s.duration_s = MAX_DURATION_S;
            s.warmup_s = s.warmup_s.min(MAX_DURATION_S / 3.0);
        }
        let a = run(&s, &RunOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let b = run(&s, &RunOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!(
            "{name}: {} committed, {} events, digest {}, {:.2} s wall",
            a.committed_tx(),
            a.events,
            a.trace_digest,
            a.wall_time_s
        );
        // Longest-chain protocols (pow, pos) finalise after minutes of blocks, so
        // a 3 s run commits nothing; their determinism is still checked below.
        let chain = matches!(s.consensus.as_str(), "pow" | "pos");
        assert!(
            chain || a.committed_tx() > 0,
            "{name}: nothing committed in {} s",
            s.duration_s
        );
        assert_eq!(a.trace_digest, b.trace_digest, "{name}: digests differ");
        assert_eq!(a.events, b.events, "{name}: event counts differ");
        assert_eq!(
            strip_wall(a.summary_json()),
            strip_wall(b.summary_json()),
            "{name}: summaries differ"
        );
        assert_eq!(
            a.timeseries_csv(),
            b.timeseries_csv(),
            "{name}: time series differ"
        );
    }
}
