//! Shared fixtures for the criterion benches (see `benches/benches/`).

/// Fixtures for the ledger-core benches: a consortium genesis and a deterministic
/// generator of realistic transaction mixes.
pub mod ledger_fixtures {
    use ledger_core::genesis::{Genesis, GenesisBuilder};
    use ledger_core::types::*;

    /// Hospitals in the bench consortium (org ids `1..=HOSPITALS`).
    pub const HOSPITALS: u64 = 8;
    const IMAGING: [u64; 2] = [101, 102];
    const INSURERS: [u64; 4] = [201, 202, 203, 204];
    const PHARMACIES: [u64; 4] = [301, 302, 303, 304];

    /// Genesis: 8 hospitals, 2 imaging centres, 4 insurers, 4 pharmacies, implicit coverage.
    pub fn genesis() -> Genesis {
        let mut b = GenesisBuilder::new()
            .implicit_coverage(true)
            .reference_price(99213, 15_000);
        for h in 1..=HOSPITALS {
            b = b.org(OrgId(h), OrgKind::Hospital, 1 << 40);
        }
        for i in IMAGING {
            b = b.org(OrgId(i), OrgKind::ImagingCentre, 1 << 40);
        }
        for i in INSURERS {
            b = b.insurer(OrgId(i), 1 << 50, 0);
        }
        for p in PHARMACIES {
            b = b.org(OrgId(p), OrgKind::Pharmacy, 1 << 40);
        }
        b.build().expect("bench genesis is valid")
    }

    /// Deterministic generator of a realistic mix: ~30% audited accesses, 20% record
    /// writes, 10% consent grants, 10% claim submissions, 5% adjudications, 10% payments,
    /// 10% supply events, 5% imaging anchors. Ids never repeat, so creations succeed.
    #[derive(Clone)]
    pub struct MixGen {
        next: u64,
        patients: u64,
        recent_claims: Vec<(ClaimId, PatientId, OrgId)>,
        written: Vec<(RecordId, PatientId, OrgId)>,
        packages: Vec<PackageId>,
    }

    impl MixGen {
        /// A generator over `patients` patients.
        pub fn new(patients: u64) -> Self {
            Self {
                next: 1,
                patients,
                recent_claims: Vec::new(),
                written: Vec::new(),
                packages: Vec::new(),
            }
        }
        fn r(&mut self) -> u64 {
            self.next += 1;
            ledger_core::routing::splitmix64(self.next)
        }
        /// The next `n` transactions.
        pub fn txs(&mut self, n: usize) -> Vec<Tx> {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let x = self.r();
                let p = PatientId(x % self.patients);
                let hosp = OrgId(1 + (x >> 20) % HOSPITALS);
                let k = (x >> 40) % 100;
                let id = self.next;
                let tx = match k {
                    0..=29 if !self.written.is_empty() => {
                        let (record, patient, cust) =
                            self.written[(x >> 8) as usize % self.written.len()];
                        let accessor = if k < 20 { cust } else { hosp };
                        Tx::RecordAccess {
                            record,
                            patient,
                            accessor,
                            user: UserId(x & 0xffff),
                            purpose: AccessPurpose::Treatment,
                            at_ms: id,
                        }
                    }
                    0..=49 => {
                        let record = RecordId(id);
                        if self.written.len() < 65_536 {
                            self.written.push((record, p, hosp));
                        }
                        Tx::RecordWrite {
                            record,
                            patient: p,
                            author: hosp,
                            resource: ResourceKind::Observation,
                            doc_hash: [x as u8; 32],
                            size_bytes: 2_048,
                        }
                    }
                    50..=59 => Tx::ConsentGrant {
                        patient: p,
                        grantee: hosp,
                        scope: ConsentScope::READ_RECORDS,
                        expires_at_ms: u64::MAX,
                    },
                    60..=69 => {
                        let payer = OrgId(INSURERS[(p.0 % INSURERS.len() as u64) as usize]);
                        let claim = ClaimId(id);
                        if self.recent_claims.len() < 65_536 {
                            self.recent_claims.push((claim, p, payer));
                        }
                        Tx::ClaimSubmit {
                            claim,
                            patient: p,
                            provider: hosp,
                            payer,
                            service_code: 99213,
                            service_day: id as u32,
                            amount_cents: 12_000,
                        }
                    }
                    70..=74 if !self.recent_claims.is_empty() => {
                        let (claim, patient, payer) = self
                            .recent_claims
                            .swap_remove((x >> 8) as usize % self.recent_claims.len());
                        Tx::ClaimAdjudicate {
                            claim,
                            patient,
                            payer,
                            approved_cents: 10_000,
                        }
                    }
                    70..=84 => Tx::Payment {
                        from: hosp,
                        to: OrgId(1 + (hosp.0 % HOSPITALS)),
                        amount_cents: 100,
                    },
                    85..=94 => {
                        if k % 2 == 0 || self.packages.is_empty() {
                            let package = PackageId(id);
                            self.packages.push(package);
                            Tx::Supply {
                                package,
                                actor: OrgId(PHARMACIES[0]),
                                event: SupplyEventKind::Commission { product: 42 },
                            }
                        } else {
                            let package = self
                                .packages
                                .swap_remove((x >> 8) as usize % self.packages.len());
                            Tx::Supply {
                                package,
                                actor: OrgId(PHARMACIES[0]),
                                event: SupplyEventKind::Ship {
                                    to: OrgId(PHARMACIES[1]),
                                },
                            }
                        }
                    }
                    _ => Tx::ImagingAnchor {
                        study: StudyId(id),
                        patient: p,
                        centre: OrgId(IMAGING[(x & 1) as usize]),
                        modality: Modality::Ct,
                        content_root: [k as u8; 32],
                        size_bytes: 150 << 20,
                        chunk_count: 600,
                    },
                };
                out.push(tx);
            }
            out
        }
    }
}

/// A criterion [`Measurement`](criterion::measurement::Measurement) of the calling
/// thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) instead of wall time.
///
/// The benches run on a 2-core machine shared with other jobs: under a load of 7
/// a single-threaded bench gets well under half a core and wall-clock figures halve
/// for reasons unrelated to the code. Thread CPU time counts only the cycles this
/// thread was scheduled for, so single-threaded figures stay comparable across
/// loads (cache and memory-bandwidth contention from neighbours still show).
/// Benches that measure parallel speed-up (`ledger/parallel_apply`) keep wall time.
pub mod cpu_time {
    use criterion::measurement::{Measurement, ValueFormatter};
    use criterion::Throughput;

    /// Thread CPU time in nanoseconds.
    pub struct ThreadCpuTime;

    fn thread_cpu_ns() -> u64 {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
    }

    impl Measurement for ThreadCpuTime {
        type Intermediate = u64;
        type Value = u64;
        fn start(&self) -> u64 {
            thread_cpu_ns()
        }
        fn end(&self, i: u64) -> u64 {
            thread_cpu_ns().saturating_sub(i)
        }
        fn add(&self, a: &u64, b: &u64) -> u64 {
            a + b
        }
        fn zero(&self) -> u64 {
            0
        }
        fn to_f64(&self, v: &u64) -> f64 {
            *v as f64
        }
        fn formatter(&self) -> &dyn ValueFormatter {
            &CpuFormatter
        }
    }

    /// Formats CPU nanoseconds like criterion's wall-time formatter (values in
    /// ns/µs/ms/s, throughput per CPU second).
    struct CpuFormatter;

    fn per_second(
        n: f64,
        values: &mut [f64],
        typical: f64,
        units: [&'static str; 4],
        k: f64,
    ) -> &'static str {
        let rate = n * (1e9 / typical);
        let (den, unit) = if rate < k {
            (1.0, units[0])
        } else if rate < k * k {
            (k, units[1])
        } else if rate < k * k * k {
            (k * k, units[2])
        } else {
            (k * k * k, units[3])
        };
        for v in values {
            *v = n * (1e9 / *v) / den;
        }
        unit
    }

    impl ValueFormatter for CpuFormatter {
        fn scale_throughputs(
            &self,
            typical: f64,
            t: &Throughput,
            values: &mut [f64],
        ) -> &'static str {
            match *t {
                Throughput::Bytes(b) => per_second(
                    b as f64,
                    values,
                    typical,
                    ["  B/s", "KiB/s", "MiB/s", "GiB/s"],
                    1024.0,
                ),
                Throughput::BytesDecimal(b) => per_second(
                    b as f64,
                    values,
                    typical,
                    ["  B/s", "KB/s", "MB/s", "GB/s"],
                    1000.0,
                ),
                Throughput::Elements(e) => per_second(
                    e as f64,
                    values,
                    typical,
                    [" elem/s", "Kelem/s", "Melem/s", "Gelem/s"],
                    1000.0,
                ),
            }
        }
        fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
            let (factor, unit) = if ns < 1.0 {
                (1e3, "ps (cpu)")
            } else if ns < 1e3 {
                (1.0, "ns (cpu)")
            } else if ns < 1e6 {
                (1e-3, "µs (cpu)")
            } else if ns < 1e9 {
                (1e-6, "ms (cpu)")
            } else {
                (1e-9, "s (cpu)")
            };
            for v in values {
                *v *= factor;
            }
            unit
        }
        fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
            "ns"
        }
    }
}
