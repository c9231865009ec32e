//! The request generator the simulator consumes.
//!
//! Requests come from one of three sources:
//! - **open loop** (`arrival.process` other than `closed`): an [`ArrivalProcess`] of
//!   *flow starts* at `offered_tps / E[transactions per flow]`, so that transactions
//!   arrive at about `offered_tps`; each start picks a workload family with probability
//!   proportional to `mix.<family> / transactions per flow` (claims scaled by the day's
//!   weekday × month-end factor);
//! - **closed loop** (`closed`): `arrival.clients` clients, each with one outstanding
//!   request; a client's next request follows its completion after an exponential think
//!   time (or, inside a multi-step flow, after the step's delay);
//! - **trace replay** (`trace` set): one request per row of the trace file.
//!
//! Multi-step flows (claim submit → adjudicate → pay, package commission → ship →
//! receive → … → dispense) schedule their later steps in an internal time-ordered queue
//! (at most `max_pending_steps`), so a dependent step is requested after its
//! predecessor by a configurable delay. Under load the simulator may still commit them
//! out of order, and the ledger then rejects them, as it would in reality.
//!
//! Streams: `workload/mix`, `workload/arrival`, `workload/closed`, `workload/patients`,
//! `workload/hospital`, `workload/hospital/patients` (which patient each hospital
//! request is for), `workload/hospital/warm-start`, `workload/imaging`,
//! `workload/claims`, `workload/supply`, `workload/payment`; enabling a workload does
//! not shift another's draws.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use ledger_core::types::{ClaimId, OrgId, PatientId, StudyId, Tx};
use rustc_hash::FxHashMap;
use simrand::Stream;

use crate::patients::{sort_descending, PatientTable};
use crate::synth::LognormalTable;

use crate::arrival::ArrivalProcess;
use crate::claims::{day_factor, ClaimFlow, Claims};
use crate::config::{ArrivalKind, ClaimsConfig, WorkloadConfig};
use crate::consortium::Consortium;
use crate::hospital::Hospital;
use crate::imaging::Imaging;
use crate::supply::{Supply, SupplyFlow};
use crate::synth::{mix64, secs_to_ns};
use crate::trace::{read_trace_file, TraceRow};
use crate::{ConfigError, TxRequest, WorkloadKind};

/// Workload families, in `MixConfig` order.
const HOSPITAL: usize = 0;
const IMAGING: usize = 1;
const CLAIMS: usize = 2;
const SUPPLY: usize = 3;
const PAYMENT: usize = 4;
const FAMILIES: usize = 5;

/// Counters of what the generator produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeneratorStats {
    /// Requests produced per kind, indexed by [`WorkloadKind::index`].
    pub generated: [u64; 9],
    /// Flows whose follow-up steps were dropped because the pending queue was full.
    pub dropped_steps: u64,
    /// Largest number of pending follow-up steps seen.
    pub pending_peak: usize,
}

#[derive(Clone, Copy, Debug)]
enum Flow {
    Claim(ClaimFlow),
    Supply(SupplyFlow),
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    at_ns: u64,
    seq: u64,
    client: u32,
    flow: Flow,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed: the earliest `(at_ns, seq)` is the heap's maximum.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ns, other.seq).cmp(&(self.at_ns, self.seq))
    }
}

enum Mode {
    Open {
        arrivals: Box<ArrivalProcess>,
        next_arrival: Option<u64>,
        done: bool,
    },
    Closed {
        rng: Stream,
        think_mean_s: f64,
        /// Per client: the flow in progress and the delay to its next step.
        flows: Vec<Option<(Flow, u64)>>,
        /// Per client: whether a request is outstanding.
        outstanding: Vec<bool>,
    },
    Trace {
        rows: Vec<TraceRow>,
        next: usize,
        claims: FxHashMap<u64, ClaimFlow>,
        packages: FxHashMap<u64, SupplyFlow>,
    },
}

/// Deterministic generator of [`TxRequest`]s (see the module docs).
pub struct Generator {
    mode: Mode,
    mix_rng: Stream,
    /// Flow-start weight per family (mix weight / transactions per flow).
    flow_weights: [f64; FAMILIES],
    /// Cumulative flow weights for the cached day.
    cum: [f64; FAMILIES],
    cum_day: u64,
    day_ns: u64,
    claims_cfg: ClaimsConfig,
    /// Patient-activity sampler and per-patient hospital state.
    patients: PatientTable,
    consortium: Consortium,
    hospital: Hospital,
    imaging: Imaging,
    claims: Claims,
    supply: Supply,
    payment_rng: Stream,
    /// Mean transfer, cents (median × exp(σ²/2)).
    payment_mean: f64,
    payment_factor: LognormalTable,
    /// `payment.hot_payer_fraction` and the hot payer's id.
    hot_payer: (f64, u64),
    pending: BinaryHeap<Pending>,
    max_pending: usize,
    seq: u64,
    stats: GeneratorStats,
}

/// Initial reservation of the pending queue (grows up to `max_pending_steps`).
const PENDING_RESERVE: usize = 4_096;

impl Generator {
    /// A generator for `cfg` over `consortium`, offering about `offered_tps`
    /// transactions per second (open loop; ignored by `schedule`, `closed` and trace
    /// replay), all randomness derived from `seed`.
    pub fn new(
        cfg: &WorkloadConfig,
        consortium: &Consortium,
        offered_tps: f64,
        seed: u64,
    ) -> Result<Generator, ConfigError> {
        cfg.validate()?;
        let m = &cfg.mix;
        let mix = [m.hospital, m.imaging, m.claims, m.supply_chain, m.payment];
        let tx_per_flow = [
            1.0,
            1.0,
            Claims::tx_per_flow(&cfg.claims),
            Supply::tx_per_flow(&cfg.supply_chain),
            1.0,
        ];
        let mut flow_weights = [0.0; FAMILIES];
        for f in 0..FAMILIES {
            flow_weights[f] = mix[f] / tx_per_flow[f];
        }
        let mean_tx_per_flow = mix.iter().sum::<f64>() / flow_weights.iter().sum::<f64>();

        let n = consortium.patients() as usize;
        let mut weights_rng = Stream::new(seed, "workload/patients");
        let sigma = cfg.hospital.patient_activity_sigma;
        let weights = weights_rng.lognormal_vec(n, 0.0, sigma);
        // Patient ids by decreasing activity: the busiest patients' state shares cache
        // lines, which keeps generation fast with large panels. Which id is busy does
        // not matter to the ledger (patients are routed by a hash of the id).
        // The sort's scratch buffer becomes the alias table and the weights' buffer the
        // state table (see `PatientTable::from_buffers`).
        let mut scratch = Vec::new();
        let weights = sort_descending(weights, &mut scratch);
        let day_ns = secs_to_ns(cfg.arrival.day_length_s).max(1);
        let hospital = Hospital::new(
            &cfg.hospital,
            consortium,
            Stream::new(seed, "workload/hospital"),
            Stream::new(seed, "workload/hospital/patients"),
        );
        let patients = PatientTable::from_buffers(
            weights,
            scratch,
            hospital.initial_consent_until_ms(Stream::new(seed, "workload/hospital/warm-start")),
        )
        .ok_or_else(|| {
            ConfigError::invalid(
                "hospital.patient_activity_sigma",
                "patient activity weights are not usable (overflow)",
            )
        })?;

        let imaging = Imaging::new(
            &cfg.imaging,
            consortium,
            Stream::new(seed, "workload/imaging"),
        );
        let claims = Claims::new(
            &cfg.claims,
            consortium,
            day_ns,
            Stream::new(seed, "workload/claims"),
        );
        let supply = Supply::new(
            &cfg.supply_chain,
            consortium,
            Stream::new(seed, "workload/supply"),
        );

        let need = |family: usize, ok: bool, what: &str| -> Result<(), ConfigError> {
            let name = ["hospital", "imaging", "claims", "supply_chain", "payment"][family];
            if mix[family] > 0.0 && !ok {
                return Err(ConfigError::invalid(
                    format!("mix.{name}"),
                    format!("is > 0 but the consortium has {what}"),
                ));
            }
            Ok(())
        };
        need(HOSPITAL, !consortium.hospitals().is_empty(), "no hospital")?;
        need(
            IMAGING,
            imaging.has_centres(),
            "no imaging centre or hospital",
        )?;
        need(CLAIMS, !consortium.insurers().is_empty(), "no insurer")?;
        need(SUPPLY, supply.can_run(), "fewer than 2 pharmacies")?;
        need(
            PAYMENT,
            consortium.orgs().len() >= 2,
            "fewer than 2 organisations",
        )?;

        let mode = if let Some(t) = &cfg.trace {
            let rows = read_trace_file(&t.path, t.time_scale, t.max_rows)?;
            Mode::Trace {
                rows,
                next: 0,
                claims: FxHashMap::default(),
                packages: FxHashMap::default(),
            }
        } else if cfg.arrival.process == ArrivalKind::Closed {
            let clients = cfg.arrival.clients as usize;
            Mode::Closed {
                rng: Stream::new(seed, "workload/closed"),
                think_mean_s: cfg.arrival.think_time_ms / 1e3,
                flows: vec![None; clients],
                outstanding: vec![false; clients],
            }
        } else {
            let arrivals = ArrivalProcess::new(
                &cfg.arrival,
                offered_tps / mean_tx_per_flow,
                1.0 / mean_tx_per_flow,
                Stream::new(seed, "workload/arrival"),
            )?;
            Mode::Open {
                arrivals: Box::new(arrivals),
                next_arrival: None,
                done: false,
            }
        };

        Ok(Generator {
            mode,
            mix_rng: Stream::new(seed, "workload/mix"),
            flow_weights,
            cum: [0.0; FAMILIES],
            cum_day: u64::MAX,
            day_ns,
            claims_cfg: cfg.claims.clone(),
            patients,
            consortium: consortium.clone(),
            hospital,
            imaging,
            claims,
            supply,
            payment_rng: Stream::new(seed, "workload/payment"),
            payment_mean: cfg.payment.amount_median_cents as f64
                * libm::exp(0.5 * cfg.payment.amount_sigma * cfg.payment.amount_sigma),
            payment_factor: LognormalTable::new(cfg.payment.amount_sigma),
            hot_payer: (
                cfg.payment.hot_payer_fraction,
                consortium.insurers().first().map_or(0, |o| o.0),
            ),
            pending: BinaryHeap::with_capacity(PENDING_RESERVE.min(cfg.max_pending_steps)),
            max_pending: cfg.max_pending_steps,
            seq: 0,
            stats: GeneratorStats::default(),
        })
    }

    /// Whether requests come from closed-loop clients ([`Generator::initial_requests`]
    /// and [`Generator::on_complete`]) rather than [`Generator::next_request`].
    pub fn is_closed_loop(&self) -> bool {
        matches!(self.mode, Mode::Closed { .. })
    }

    /// What was generated so far.
    pub fn stats(&self) -> &GeneratorStats {
        &self.stats
    }

    /// The consortium the requests are drawn over.
    pub fn consortium(&self) -> &Consortium {
        &self.consortium
    }

    /// Next open-loop (or trace) request, in nondecreasing `at_ns`; `None` when the
    /// trace or the schedule has ended and no follow-up step is pending, and always
    /// `None` in closed loop.
    pub fn next_request(&mut self) -> Option<TxRequest> {
        match &mut self.mode {
            Mode::Closed { .. } => None,
            Mode::Trace { .. } => self.next_trace_request(),
            Mode::Open {
                arrivals,
                next_arrival,
                done,
            } => {
                if next_arrival.is_none() && !*done {
                    *next_arrival = arrivals.next_arrival_ns();
                    *done = next_arrival.is_none();
                }
                let arrival = *next_arrival;
                let pending_at = self.pending.peek().map(|p| p.at_ns);
                match (pending_at, arrival) {
                    (Some(p), Some(a)) if p <= a => self.pop_pending(),
                    (Some(_), None) => self.pop_pending(),
                    (_, Some(a)) => {
                        if let Mode::Open { next_arrival, .. } = &mut self.mode {
                            *next_arrival = None;
                        }
                        let (req, follow) = self.start_flow(a);
                        if let Some((flow, delay)) = follow {
                            self.push_pending(a.saturating_add(delay), req.client, flow);
                        }
                        Some(req)
                    }
                    (None, None) => None,
                }
            }
        }
    }

    /// Closed loop: one first request per client, each after an exponential think time
    /// from 0. Empty in open loop.
    pub fn initial_requests(&mut self) -> Vec<TxRequest> {
        let clients = match &self.mode {
            Mode::Closed { flows, .. } => flows.len(),
            _ => return Vec::new(),
        };
        let mut out = Vec::with_capacity(clients);
        for c in 0..clients {
            if let Some(req) = self.on_complete_inner(c as u32, 0, true) {
                out.push(req);
            }
        }
        out
    }

    /// Closed loop: `client` finished its request at `now_ns`; its next request (the
    /// next step of its flow after the step's delay, or a new flow after a think time).
    /// `None` in open loop, for an unknown client, or for a client with no outstanding
    /// request (each client has at most one outstanding request).
    pub fn on_complete(&mut self, client: u32, now_ns: u64) -> Option<TxRequest> {
        self.on_complete_inner(client, now_ns, false)
    }

    fn on_complete_inner(&mut self, client: u32, now_ns: u64, initial: bool) -> Option<TxRequest> {
        let (in_flow, think_ns) = match &mut self.mode {
            Mode::Closed {
                rng,
                think_mean_s,
                flows,
                outstanding,
            } => {
                let c = client as usize;
                if c >= flows.len() || outstanding[c] == initial {
                    return None;
                }
                outstanding[c] = true;
                let f = flows[c].take();
                let think = if f.is_none() {
                    secs_to_ns(rng.exponential(*think_mean_s))
                } else {
                    0
                };
                (f, think)
            }
            _ => return None,
        };
        let c = client as usize;
        if let Some((mut flow, delay)) = in_flow {
            let at = now_ns.saturating_add(delay);
            let (req, next) = self.step_flow(&mut flow, at, client);
            if let (Mode::Closed { flows, .. }, Some(d)) = (&mut self.mode, next) {
                flows[c] = Some((flow, d));
            }
            return Some(req);
        }
        let at = now_ns.saturating_add(think_ns);
        let (mut req, follow) = self.start_flow(at);
        req.client = client;
        if let Mode::Closed { flows, .. } = &mut self.mode {
            flows[c] = follow;
        }
        Some(req)
    }

    fn push_pending(&mut self, at_ns: u64, client: u32, flow: Flow) {
        if self.pending.len() >= self.max_pending {
            self.stats.dropped_steps += 1;
            return;
        }
        self.seq += 1;
        self.pending.push(Pending {
            at_ns,
            seq: self.seq,
            client,
            flow,
        });
        self.stats.pending_peak = self.stats.pending_peak.max(self.pending.len());
    }

    fn pop_pending(&mut self) -> Option<TxRequest> {
        let mut p = self.pending.pop()?;
        let (req, next) = self.step_flow(&mut p.flow, p.at_ns, p.client);
        if let Some(delay) = next {
            // Re-inserting the flow just popped never grows the queue.
            self.seq += 1;
            self.pending.push(Pending {
                at_ns: p.at_ns.saturating_add(delay),
                seq: self.seq,
                client: p.client,
                flow: p.flow,
            });
        }
        Some(req)
    }

    /// The next step of `flow` at `at_ns`, and the delay to the step after, if any.
    fn step_flow(&mut self, flow: &mut Flow, at_ns: u64, client: u32) -> (TxRequest, Option<u64>) {
        let (tx, kind, next) = match flow {
            Flow::Claim(c) => self.claims.step(c),
            Flow::Supply(s) => {
                let (tx, next) = self.supply.step(s);
                (tx, WorkloadKind::Supply, next)
            }
        };
        (self.request(at_ns, client, kind, tx, 0, false), next)
    }

    #[inline]
    fn request(
        &mut self,
        at_ns: u64,
        client: u32,
        kind: WorkloadKind,
        tx: Tx,
        payload_bytes: u64,
        client_from_tx: bool,
    ) -> TxRequest {
        self.stats.generated[kind.index()] += 1;
        let client = if client_from_tx {
            origin_org(&tx, &self.consortium).0 as u32
        } else {
            client
        };
        TxRequest {
            at_ns,
            client,
            kind,
            tx,
            payload_bytes,
        }
    }

    /// Pick a family for a flow starting at `at_ns`.
    #[inline]
    fn pick_family(&mut self, at_ns: u64) -> usize {
        let day = at_ns / self.day_ns;
        if day != self.cum_day {
            self.cum_day = day;
            let mut acc = 0.0;
            for f in 0..FAMILIES {
                let w = if f == CLAIMS {
                    self.flow_weights[f] * day_factor(&self.claims_cfg, day)
                } else {
                    self.flow_weights[f]
                };
                acc += w;
                self.cum[f] = acc;
            }
        }
        let x = self.mix_rng.uniform() * self.cum[FAMILIES - 1];
        let mut f = 0;
        while f < FAMILIES - 1 && (x >= self.cum[f] || self.cum[f] == 0.0) {
            f += 1;
        }
        f
    }

    /// Start a new flow at `at_ns`: its first request and its follow-up, if any.
    #[inline]
    fn start_flow(&mut self, at_ns: u64) -> (TxRequest, Option<(Flow, u64)>) {
        let family = self.pick_family(at_ns);
        match family {
            HOSPITAL => {
                let (tx, kind) = self
                    .hospital
                    .next(at_ns, &mut self.patients, &self.consortium);
                (self.request(at_ns, 0, kind, tx, 0, true), None)
            }
            IMAGING => {
                let (tx, payload) = self.imaging.next(&self.patients);
                (
                    self.request(at_ns, 0, WorkloadKind::Imaging, tx, payload, true),
                    None,
                )
            }
            CLAIMS => match self.claims.start(at_ns, &self.patients, &self.consortium) {
                Some((tx, flow, delay)) => (
                    self.request(at_ns, 0, WorkloadKind::ClaimSubmit, tx, 0, true),
                    Some((Flow::Claim(flow), delay)),
                ),
                None => {
                    // Unreachable with a validated consortium (claims need an insurer).
                    let (tx, kind) =
                        self.hospital
                            .next(at_ns, &mut self.patients, &self.consortium);
                    (self.request(at_ns, 0, kind, tx, 0, true), None)
                }
            },
            SUPPLY => {
                let (tx, flow, delay) = self.supply.start(&self.patients);
                (
                    self.request(at_ns, 0, WorkloadKind::Supply, tx, 0, true),
                    Some((Flow::Supply(flow), delay)),
                )
            }
            _ => {
                let tx = self.payment();
                (
                    self.request(at_ns, 0, WorkloadKind::Payment, tx, 0, true),
                    None,
                )
            }
        }
    }

    fn payment(&mut self) -> Tx {
        let n = self.consortium.orgs().len() as u64;
        let (hot_fraction, hot) = self.hot_payer;
        let from = if hot_fraction > 0.0 && self.payment_rng.bernoulli(hot_fraction) {
            hot
        } else {
            self.payment_rng.below(n)
        };
        let k = self.payment_rng.below(n - 1);
        let to = if k >= from { k + 1 } else { k };
        let amount = self.payment_mean * self.payment_factor.sample(&mut self.payment_rng);
        Tx::Payment {
            from: OrgId(from),
            to: OrgId(to),
            amount_cents: amount.clamp(1.0, 1e15).round() as u64,
        }
    }

    // -----------------------------------------------------------------------
    // Trace replay
    // -----------------------------------------------------------------------

    fn next_trace_request(&mut self) -> Option<TxRequest> {
        let Mode::Trace { rows, next, .. } = &mut self.mode else {
            return None;
        };
        let row = *rows.get(*next)?;
        *next += 1;
        let (tx, payload) = self.replay(&row);
        Some(self.request(row.time_ns, 0, row.kind, tx, payload, true))
    }

    /// Map a trace row to a transaction (mapping documented in [`crate::trace`]).
    fn replay(&mut self, row: &TraceRow) -> (Tx, u64) {
        let patients = self.consortium.patients() as u64;
        let key = row.key;
        let size = row.size_bytes;
        let now_ms = row.time_ns / 1_000_000;
        let Mode::Trace {
            claims, packages, ..
        } = &mut self.mode
        else {
            unreachable!("replay outside trace mode");
        };
        let tx = match row.kind {
            WorkloadKind::HospitalWrite => {
                let p = (key % patients) as u32;
                let kind = Hospital::kind_for_record(Hospital::record_count(&self.patients, p));
                let size = size.min(u32::MAX as u64) as u32;
                self.hospital.write(
                    p,
                    &mut self.patients,
                    kind,
                    size,
                    row.time_ns,
                    &self.consortium,
                )
            }
            WorkloadKind::HospitalRead => self.hospital.read(
                (key % patients) as u32,
                &self.patients,
                now_ms,
                &self.consortium,
            ),
            WorkloadKind::Consent => self.hospital.grant(
                (key % patients) as u32,
                &mut self.patients,
                now_ms,
                &self.consortium,
            ),
            WorkloadKind::Imaging => {
                let patient = PatientId(mix64(key) % patients);
                return self.imaging.study(
                    StudyId(key),
                    patient,
                    self.imaging.centre_for(key),
                    Imaging::modality_for(key),
                    size.max(1),
                );
            }
            WorkloadKind::ClaimSubmit => {
                let flow = trace_claim(key, size, &self.consortium);
                claims.insert(key, flow);
                let code = ((mix64(key) >> 32) % self.claims_cfg.service_codes as u64) as u32;
                let day = (row.time_ns / self.day_ns).min(u32::MAX as u64) as u32;
                Claims::submit_tx(&flow, code, day)
            }
            WorkloadKind::ClaimAdjudicate => {
                let flow = claims
                    .entry(key)
                    .or_insert_with(|| trace_claim(key, 0, &self.consortium));
                flow.approved = size;
                Claims::adjudicate_tx(flow)
            }
            WorkloadKind::ClaimPay => {
                let flow = claims.entry(key).or_insert_with(|| {
                    let mut f = trace_claim(key, size, &self.consortium);
                    f.approved = size;
                    f
                });
                Claims::pay_tx(flow)
            }
            WorkloadKind::Payment => {
                let n = self.consortium.orgs().len() as u64;
                Tx::Payment {
                    from: OrgId((key >> 32) % n),
                    to: OrgId((key & 0xFFFF_FFFF) % n),
                    amount_cents: size,
                }
            }
            WorkloadKind::Supply => {
                let flow = packages
                    .entry(key)
                    .or_insert_with(|| self.supply.trace_flow(key, self.consortium.patients()));
                self.supply.trace_step(flow)
            }
        };
        (tx, 0)
    }
}

/// A claim first seen in a trace: its facts derived from the key.
fn trace_claim(key: u64, amount: u64, consortium: &Consortium) -> ClaimFlow {
    let patient = PatientId(mix64(key) % consortium.patients() as u64);
    let home = consortium.home_hospital(patient);
    ClaimFlow {
        claim: ClaimId(key).0,
        patient: patient.0,
        provider: home.0,
        // Without an insurer the home hospital is billed; the ledger rejects it.
        payer: consortium.billed_payer(patient).unwrap_or(home).0,
        amount,
        approved: 0,
        approved_pending_pay: false,
    }
}

/// The organisation submitting `tx` (its client in open loop and trace replay).
pub fn origin_org(tx: &Tx, consortium: &Consortium) -> OrgId {
    match tx {
        Tx::RecordWrite { author, .. } => *author,
        Tx::RecordAccess { accessor, .. } => *accessor,
        Tx::ConsentGrant { patient, .. } | Tx::ConsentRevoke { patient, .. } => {
            // Patients consent through their home hospital's portal.
            consortium.home_hospital(*patient)
        }
        Tx::ImagingAnchor { centre, .. } => *centre,
        Tx::ClaimSubmit { provider, .. } => *provider,
        Tx::ClaimAdjudicate { payer, .. } | Tx::ClaimPay { payer, .. } => *payer,
        Tx::Payment { from, .. } => *from,
        Tx::Supply { actor, .. } => *actor,
    }
}
