//! Run metrics: latency histograms, counters and per-second time series.

use hdrhistogram::Histogram;

/// Highest latency recorded, µs (one day: proof-of-work k-confirmation finality
/// takes about an hour with a long tail); longer latencies are clamped.
pub const MAX_LATENCY_US: u64 = 86_400_000_000;

/// One time-series bucket.
#[derive(Clone, Debug, Default)]
pub struct Bucket {
    /// Transactions submitted.
    pub offered: u64,
    /// Transactions committed (accepted + rejected).
    pub committed: u64,
    /// Committed but rejected by a ledger rule.
    pub rejected: u64,
    /// Aborted cross-shard transactions.
    pub aborted: u64,
    /// Bytes sent by all nodes.
    pub bytes_sent: u64,
    /// View changes.
    pub view_changes: u64,
    /// Commit latencies in this bucket (µs, 2 significant digits).
    pub latency_us: Option<Histogram<u32>>,
}

/// All metrics of a run.
pub struct Metrics {
    /// Warm-up end, ns.
    pub warmup_ns: u64,
    /// Bucket width, ns.
    pub bucket_ns: u64,
    /// Commit latency of committed transactions after warm-up, µs.
    pub latency_us: Histogram<u64>,
    /// Latency of single-shard transactions, µs.
    pub single_shard_latency_us: Histogram<u64>,
    /// Latency of cross-shard transactions, µs.
    pub cross_shard_latency_us: Histogram<u64>,
    /// Latency to first inclusion (longest-chain protocols), µs.
    pub inclusion_latency_us: Histogram<u64>,
    /// Time series.
    pub buckets: Vec<Bucket>,
    /// Submitted after warm-up.
    pub submitted: u64,
    /// Cross-shard submitted after warm-up.
    pub cross_shard_submitted: u64,
    /// Committed after warm-up (submitted after warm-up).
    pub committed: u64,
    /// Rejected (subset of committed).
    pub rejected: u64,
    /// Aborted.
    pub aborted: u64,
    /// Cross-shard aborted.
    pub cross_shard_aborted: u64,
    /// View changes (whole run).
    pub view_changes: u64,
    /// Stale blocks (whole run).
    pub stale_blocks: u64,
    /// Reorganisations (whole run).
    pub reorgs: u64,
    /// Blocks executed (whole run).
    pub blocks_committed: u64,
    /// Commit checks made.
    pub invariants_checked: u64,
    /// Transactions committed twice (second ordering ignored).
    pub duplicate_commits: u64,
    /// Events dropped because a node's inbox was full.
    pub inbox_overflows: u64,
    /// Operations resent by their client after `client_timeout_ms` (whole run).
    pub client_resends: u64,
    /// Cross-shard shaper counters (whole run; zero without `cross_shard_fraction`).
    pub shaper: crate::client::ShaperStats,
    /// The last bucket looked up and its time range `[start, end)`: consecutive lookups
    /// (one per message sent) nearly always fall in it, which saves a division.
    hint: (u64, u64, usize),
}

fn hist(sigfig: u8) -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig) {
        Ok(h) => h,
        Err(e) => panic!("static histogram bounds are valid: {e}"),
    }
}

impl Metrics {
    /// Metrics for a run of `duration_ns` with warm-up `warmup_ns` and buckets of `bucket_ns`.
    pub fn new(duration_ns: u64, warmup_ns: u64, bucket_ns: u64) -> Self {
        let n = duration_ns.div_ceil(bucket_ns.max(1)) as usize;
        Metrics {
            warmup_ns,
            bucket_ns: bucket_ns.max(1),
            latency_us: hist(3),
            single_shard_latency_us: hist(3),
            cross_shard_latency_us: hist(3),
            inclusion_latency_us: hist(3),
            buckets: vec![Bucket::default(); n.max(1)],
            hint: (0, 0, 0),
            submitted: 0,
            cross_shard_submitted: 0,
            committed: 0,
            rejected: 0,
            aborted: 0,
            cross_shard_aborted: 0,
            view_changes: 0,
            stale_blocks: 0,
            reorgs: 0,
            blocks_committed: 0,
            invariants_checked: 0,
            duplicate_commits: 0,
            inbox_overflows: 0,
            client_resends: 0,
            shaper: crate::client::ShaperStats::default(),
        }
    }

    /// The bucket of time `t`.
    #[inline]
    pub fn bucket(&mut self, t: u64) -> &mut Bucket {
        let (start, end, hinted) = self.hint;
        let i = if t >= start && t < end {
            hinted
        } else {
            let q = t / self.bucket_ns;
            let i = (q as usize).min(self.buckets.len() - 1);
            // The last bucket also holds every later time.
            let end = if i + 1 == self.buckets.len() {
                u64::MAX
            } else {
                (q + 1).saturating_mul(self.bucket_ns)
            };
            self.hint = (q * self.bucket_ns, end, i);
            i
        };
        &mut self.buckets[i]
    }

    /// A transaction was submitted at `t`.
    pub fn on_submit(&mut self, t: u64, cross_shard: bool) {
        self.bucket(t).offered += 1;
        if t >= self.warmup_ns {
            self.submitted += 1;
            if cross_shard {
                self.cross_shard_submitted += 1;
            }
        }
    }

    /// A transaction submitted at `submit` became final at `t`.
    pub fn on_final(
        &mut self,
        submit: u64,
        t: u64,
        rejected: bool,
        aborted: bool,
        cross_shard: bool,
    ) {
        let lat_us = ((t - submit) / 1_000).clamp(1, MAX_LATENCY_US);
        {
            let b = self.bucket(t);
            if aborted {
                b.aborted += 1;
            } else {
                b.committed += 1;
                if rejected {
                    b.rejected += 1;
                }
                let h = b.latency_us.get_or_insert_with(|| {
                    match Histogram::new_with_bounds(1, MAX_LATENCY_US, 2) {
                        Ok(h) => h,
                        Err(e) => panic!("static histogram bounds are valid: {e}"),
                    }
                });
                h.saturating_record(lat_us);
            }
        }
        if submit < self.warmup_ns {
            return;
        }
        if aborted {
            self.aborted += 1;
            if cross_shard {
                self.cross_shard_aborted += 1;
            }
            return;
        }
        self.committed += 1;
        if rejected {
            self.rejected += 1;
        }
        self.latency_us.saturating_record(lat_us);
        if cross_shard {
            self.cross_shard_latency_us.saturating_record(lat_us);
        } else {
            self.single_shard_latency_us.saturating_record(lat_us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached bucket lookup answers exactly `min(t / bucket_ns, last)` for times that
    /// jump back and forth, stay in one bucket, land on boundaries, and run past the end.
    #[test]
    fn bucket_lookup_matches_division() {
        let mut m = Metrics::new(10_000, 0, 1_000);
        let last = m.buckets.len() - 1;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut times = vec![0, 999, 1_000, 1_001, 9_999, 10_000, 25_000, 3_000, 2_999];
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            times.push(x % 12_000);
        }
        for (k, &t) in times.iter().enumerate() {
            let want = ((t / 1_000) as usize).min(last);
            m.bucket(t).offered += 1;
            assert_eq!(m.buckets[want].offered, 1, "time {t} (lookup {k})");
            m.buckets[want].offered = 0;
        }
    }
}
