//! Open-loop arrival processes, in integer nanoseconds.
//!
//! All processes except `constant` are Poisson processes with an intensity
//! `λ(t) = base(t) × g(day) × m(state)`:
//! - `poisson`: `base` constant;
//! - `diurnal`: `base` follows the hour-of-day profile (normalised to mean 1, linearly
//!   interpolated between hour midpoints), sampled by thinning (Lewis–Shedler) against
//!   the profile's maximum;
//! - `bursty`: a two-state Markov-modulated Poisson process (exponential sojourns), the
//!   low state's rate a fraction of the high state's (0 = on/off), rates chosen so that
//!   the long-run mean equals the requested rate;
//! - `schedule`: a piecewise-constant load map of `(start_s, tps)` segments;
//! - `g(day)`: optional day-to-day over-dispersion, a Gamma(k, 1/k) factor per day
//!   (Kim and Whitt, MSOM 2014).
//!
//! Whenever a candidate arrival crosses a boundary where the intensity's bound changes
//! (a day, a burst state switch, a schedule segment, the end), the process restarts at
//! the boundary, which is exact for Poisson processes (memorylessness).

use simrand::Stream;

use crate::config::{ArrivalConfig, ArrivalKind};
use crate::ConfigError;

/// Intensity multiplier of the hour-of-day `profile` at `hour` in `[0, 24)`: linear
/// interpolation between the values at hour midpoints (`h + 0.5`), wrapping at midnight.
/// The profile is used as given (not normalised).
pub fn diurnal_multiplier(profile: &[f64; 24], hour: f64) -> f64 {
    let x = hour - 0.5;
    let x = if x < 0.0 { x + 24.0 } else { x };
    let i = (x as usize).min(23);
    let frac = x - i as f64;
    let a = profile[i];
    let b = profile[(i + 1) % 24];
    a + (b - a) * frac
}

/// An open-loop arrival process producing nondecreasing arrival times.
#[derive(Clone, Debug)]
pub struct ArrivalProcess {
    kind: ArrivalKind,
    rng: Stream,
    /// Current time, s.
    t_s: f64,
    end_s: f64,
    /// Mean rate (constant, poisson, diurnal, bursty), per s.
    rate: f64,
    // Constant.
    constant_index: u64,
    // Diurnal.
    profile: [f64; 24],
    profile_max: f64,
    start_hour: f64,
    day_length_s: f64,
    // Daily over-dispersion.
    gamma_shape: f64,
    day_index: u64,
    day_factor: f64,
    // Bursty.
    high: bool,
    high_rate: f64,
    low_rate: f64,
    on_mean_s: f64,
    off_mean_s: f64,
    switch_at_s: f64,
    // Schedule: (start_s, rate) with rates scaled.
    schedule: Vec<(f64, f64)>,
}

impl ArrivalProcess {
    /// A process of `cfg.process` with mean rate `rate_per_s` (ignored by `schedule`,
    /// whose segment rates are multiplied by `schedule_scale`). `closed` is refused:
    /// closed-loop clients are not an open-loop process.
    pub fn new(
        cfg: &ArrivalConfig,
        rate_per_s: f64,
        schedule_scale: f64,
        rng: Stream,
    ) -> Result<ArrivalProcess, ConfigError> {
        cfg.validate()?;
        if cfg.process == ArrivalKind::Closed {
            return Err(ConfigError::invalid(
                "arrival.process",
                "`closed` is not an open-loop arrival process",
            ));
        }
        if cfg.process != ArrivalKind::Schedule && (!rate_per_s.is_finite() || rate_per_s <= 0.0) {
            return Err(ConfigError::invalid(
                "offered_tps",
                format!(
                    "must be a finite rate > 0 for the `{:?}` process, got {rate_per_s}",
                    cfg.process
                ),
            ));
        }
        if !schedule_scale.is_finite() || schedule_scale <= 0.0 {
            return Err(ConfigError::invalid(
                "workload.mix",
                format!("transactions per flow give a non-positive scale {schedule_scale}"),
            ));
        }
        let mean_profile = cfg.diurnal_profile.iter().sum::<f64>() / 24.0;
        let profile = cfg.diurnal_profile.map(|v| v / mean_profile);
        let profile_max = profile.iter().copied().fold(0.0, f64::max);
        // Bursty rates: time-average = rate.
        let (on, off, f) = (
            cfg.burst_on_mean_s,
            cfg.burst_off_mean_s,
            cfg.burst_low_rate_fraction,
        );
        let high_rate = rate_per_s * (on + off) / (on + f * off);
        let mut p = ArrivalProcess {
            kind: cfg.process,
            rng,
            t_s: 0.0,
            end_s: cfg.end_s.unwrap_or(f64::INFINITY),
            rate: rate_per_s,
            constant_index: 0,
            profile,
            profile_max,
            start_hour: cfg.start_hour,
            day_length_s: cfg.day_length_s,
            gamma_shape: cfg.daily_gamma_shape,
            day_index: 0,
            day_factor: 1.0,
            high: false,
            high_rate,
            low_rate: f * high_rate,
            on_mean_s: on,
            off_mean_s: off,
            switch_at_s: f64::INFINITY,
            schedule: cfg
                .schedule
                .iter()
                .map(|s| (s.start_s, s.tps * schedule_scale))
                .collect(),
        };
        if p.gamma_shape > 0.0 {
            p.day_factor = p.draw_day_factor();
        }
        if p.kind == ArrivalKind::Bursty {
            p.high = p.rng.bernoulli(on / (on + off));
            let mean = if p.high { on } else { off };
            p.switch_at_s = p.rng.exponential(mean);
        }
        Ok(p)
    }

    fn draw_day_factor(&mut self) -> f64 {
        self.rng.gamma(self.gamma_shape, 1.0 / self.gamma_shape)
    }

    /// Seconds into the simulated day at time `t_s` as an hour in `[0, 24)`.
    #[inline]
    fn hour_at(&self, t_s: f64) -> f64 {
        let day_frac = t_s / self.day_length_s;
        let h = self.start_hour + 24.0 * (day_frac - libm::floor(day_frac));
        if h >= 24.0 {
            h - 24.0
        } else {
            h
        }
    }

    /// The next arrival time in ns, or `None` once the process ended.
    #[inline]
    pub fn next_arrival_ns(&mut self) -> Option<u64> {
        if self.kind == ArrivalKind::Constant {
            self.constant_index += 1;
            let t = self.constant_index as f64 / self.rate;
            if t >= self.end_s {
                return None;
            }
            self.t_s = t;
            return Some(crate::synth::secs_to_ns(t));
        }
        let daily = self.gamma_shape > 0.0 || self.kind == ArrivalKind::Diurnal;
        loop {
            if self.t_s >= self.end_s {
                return None;
            }
            // Bound of the intensity until the next boundary.
            let mut seg_end = self.end_s;
            if daily {
                let next_day = (self.day_index + 1) as f64 * self.day_length_s;
                seg_end = seg_end.min(next_day);
            }
            let mut bound = match self.kind {
                ArrivalKind::Poisson => self.rate,
                ArrivalKind::Diurnal => self.rate * self.profile_max,
                ArrivalKind::Bursty => {
                    seg_end = seg_end.min(self.switch_at_s);
                    if self.high {
                        self.high_rate
                    } else {
                        self.low_rate
                    }
                }
                ArrivalKind::Schedule => {
                    let i = self.schedule.partition_point(|s| s.0 <= self.t_s);
                    if let Some(next) = self.schedule.get(i) {
                        seg_end = seg_end.min(next.0);
                    }
                    if i == 0 {
                        0.0
                    } else {
                        self.schedule[i - 1].1
                    }
                }
                ArrivalKind::Constant | ArrivalKind::Closed => {
                    unreachable!("handled above / refused in new")
                }
            };
            bound *= self.day_factor;
            let cand = if bound > 0.0 {
                self.t_s + self.rng.exponential(1.0 / bound)
            } else {
                f64::INFINITY
            };
            if cand >= seg_end {
                if !seg_end.is_finite() {
                    return None;
                }
                self.t_s = seg_end;
                self.cross_boundary();
                continue;
            }
            self.t_s = cand;
            if self.kind == ArrivalKind::Diurnal {
                let m = diurnal_multiplier(&self.profile, self.hour_at(cand));
                if self.rng.uniform() * self.profile_max >= m {
                    continue;
                }
            }
            return Some(crate::synth::secs_to_ns(cand));
        }
    }

    /// Update the state at a boundary reached at `self.t_s`.
    fn cross_boundary(&mut self) {
        let next_day = (self.day_index + 1) as f64 * self.day_length_s;
        if self.t_s >= next_day {
            self.day_index += 1;
            if self.gamma_shape > 0.0 {
                self.day_factor = self.draw_day_factor();
            }
        }
        if self.kind == ArrivalKind::Bursty && self.t_s >= self.switch_at_s {
            self.high = !self.high;
            let mean = if self.high {
                self.on_mean_s
            } else {
                self.off_mean_s
            };
            self.switch_at_s = self.t_s + self.rng.exponential(mean);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScheduleSegment;

    fn process(cfg: &ArrivalConfig, rate: f64, seed: u64) -> ArrivalProcess {
        ArrivalProcess::new(cfg, rate, 1.0, Stream::new(seed, "test/arrival")).expect("valid")
    }

    /// Counts per window of `window_s` over `windows` windows.
    fn counts(p: &mut ArrivalProcess, window_s: f64, windows: usize) -> Vec<f64> {
        let mut c = vec![0.0; windows];
        let mut last = 0;
        while let Some(t) = p.next_arrival_ns() {
            assert!(t >= last, "arrivals went back in time: {t} < {last}");
            last = t;
            let w = (t as f64 / 1e9 / window_s) as usize;
            if w >= windows {
                break;
            }
            c[w] += 1.0;
        }
        c
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, v)
    }

    #[test]
    fn poisson_counts_have_mean_equal_variance() {
        let cfg = ArrivalConfig::default();
        let mut p = process(&cfg, 50.0, 1);
        let c = counts(&mut p, 1.0, 4_000);
        let (m, v) = mean_var(&c);
        // Mean 50, sd of the mean 0.11; variance/mean = 1 ± 0.03 (sd of the dispersion
        // index is sqrt(2/n) = 0.022).
        assert!((m - 50.0).abs() < 0.5, "mean {m}");
        assert!((v / m - 1.0).abs() < 0.08, "dispersion {}", v / m);
    }

    #[test]
    fn constant_is_evenly_spaced() {
        let cfg = ArrivalConfig {
            process: ArrivalKind::Constant,
            ..ArrivalConfig::default()
        };
        let mut p = process(&cfg, 4.0, 1);
        let ts: Vec<u64> = (0..5)
            .map(|_| p.next_arrival_ns().expect("unbounded"))
            .collect();
        assert_eq!(
            ts,
            vec![
                250_000_000,
                500_000_000,
                750_000_000,
                1_000_000_000,
                1_250_000_000
            ]
        );
    }

    #[test]
    fn gamma_mixed_days_are_over_dispersed() {
        let cfg = ArrivalConfig {
            day_length_s: 10.0,
            daily_gamma_shape: 4.0,
            ..ArrivalConfig::default()
        };
        let mut p = process(&cfg, 20.0, 2);
        let c = counts(&mut p, 10.0, 3_000);
        let (m, v) = mean_var(&c);
        // Day counts: mean 200, variance 200 + 200² / 4 = 10,200 (CV² of Gamma(4) = 1/4).
        assert!((m - 200.0).abs() < 5.0, "mean {m}");
        assert!(v > 8_000.0 && v < 12_500.0, "variance {v}");
    }

    #[test]
    fn diurnal_peak_to_trough_matches_profile() {
        let cfg = ArrivalConfig {
            process: ArrivalKind::Diurnal,
            day_length_s: 24.0,
            ..ArrivalConfig::default()
        };
        let mut p = process(&cfg, 2_000.0, 3);
        // 200 days of 24 s, one "hour" = 1 s: ~48,000 arrivals per hour bin.
        let hourly = counts(&mut p, 1.0, 24 * 200);
        let mut bins = [0.0; 24];
        for (i, c) in hourly.iter().enumerate() {
            bins[i % 24] += c;
        }
        // Expected bin means: integrate the interpolated profile over each hour.
        let prof = cfg.diurnal_profile;
        let mean = prof.iter().sum::<f64>() / 24.0;
        let expected: Vec<f64> = (0..24)
            .map(|h| {
                (0..100)
                    .map(|k| diurnal_multiplier(&prof, h as f64 + (k as f64 + 0.5) / 100.0))
                    .sum::<f64>()
                    / 100.0
                    / mean
            })
            .collect();
        let emax = expected.iter().copied().fold(0.0, f64::max);
        let emin = expected.iter().copied().fold(f64::INFINITY, f64::min);
        let gmax = bins.iter().copied().fold(0.0, f64::max);
        let gmin = bins.iter().copied().fold(f64::INFINITY, f64::min);
        let ratio = gmax / gmin;
        assert!(
            (ratio / (emax / emin) - 1.0).abs() < 0.04,
            "ratio {ratio} vs {}",
            emax / emin
        );
        // And close to the 2.8x of WORKLOADS.md (interpolation shaves the extremes).
        assert!(ratio > 2.5 && ratio < 2.9, "peak/trough {ratio}");
        let peak = bins.iter().position(|b| *b == gmax).expect("non-empty");
        let trough = bins.iter().position(|b| *b == gmin).expect("non-empty");
        assert!((18..=20).contains(&peak), "peak hour {peak}");
        assert!((3..=5).contains(&trough), "trough hour {trough}");
    }

    #[test]
    fn bursty_mean_rate_and_burstiness() {
        let cfg = ArrivalConfig {
            process: ArrivalKind::Bursty,
            burst_on_mean_s: 5.0,
            burst_off_mean_s: 15.0,
            burst_low_rate_fraction: 0.0,
            ..ArrivalConfig::default()
        };
        let mut p = process(&cfg, 10.0, 4);
        let c = counts(&mut p, 1.0, 20_000);
        let (m, v) = mean_var(&c);
        assert!((m - 10.0).abs() < 0.6, "mean {m}");
        assert!(
            v / m > 5.0,
            "on/off must be over-dispersed, index {}",
            v / m
        );
    }

    #[test]
    fn schedule_follows_segments_and_ends() {
        let cfg = ArrivalConfig {
            process: ArrivalKind::Schedule,
            schedule: vec![
                ScheduleSegment {
                    start_s: 10.0,
                    tps: 100.0,
                },
                ScheduleSegment {
                    start_s: 20.0,
                    tps: 0.0,
                },
                ScheduleSegment {
                    start_s: 30.0,
                    tps: 300.0,
                },
            ],
            end_s: Some(40.0),
            ..ArrivalConfig::default()
        };
        let mut p = process(&cfg, 0.0, 5);
        let mut per_segment = [0u32; 4];
        let mut n = 0;
        while let Some(t) = p.next_arrival_ns() {
            let s = t as f64 / 1e9;
            assert!(s < 40.0, "arrival {s} after end");
            per_segment[(s / 10.0) as usize] += 1;
            n += 1;
            assert!(n < 100_000, "schedule never ended");
        }
        assert_eq!(per_segment[0], 0);
        assert_eq!(per_segment[2], 0);
        assert!(
            (per_segment[1] as f64 - 1_000.0).abs() < 130.0,
            "{per_segment:?}"
        );
        assert!(
            (per_segment[3] as f64 - 3_000.0).abs() < 220.0,
            "{per_segment:?}"
        );
    }
}
