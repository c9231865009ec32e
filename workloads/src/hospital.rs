//! Hospital workload: EHR writes, audited reads, consent grants and revocations.
//!
//! Per patient the generator tracks how many records were written in the run and until
//! when the home hospital holds a consent. A patient without a live consent first gets a
//! grant (the patient consents at their next encounter); reads target existing records.
//!
//! Records warm start (`warm_start_records`, the default): patients arrive with a history.
//! Patient `p` has `HistoricRecords::count(p)` records from before the run (ledger-core's
//! rule, committed in the genesis by [`historic_records`]; nothing is stored per patient),
//! so its readable records are those plus the ones written in the run, and a read picks
//! one uniformly. Without it, a read drawn for a patient with no record yet becomes a
//! write and the read is owed to a later write decision on a patient with records.
//!
//! Warm start (`warm_start`, the default): every patient's home consent predates the run,
//! granted at a uniformly random time within the last `consent_duration_days` (the steady
//! state of annual renewals), so it expires during the run at the steady-state rate and
//! consent grants appear at their real rate, not once per patient. Such a consent is not
//! on the ledger, and the home hospital does not need it there (the custodian reads its own
//! records), but a revocation needs one to revoke: a revocation drawn for such a patient
//! first records the consent (a grant) and revokes it at the patient's next activity.
//! Without `warm_start`, every patient's first activity in the run is a grant (the cold
//! start of a ledger whose genesis holds no consents). Invalid-by-design reads are made by
//! an organisation that never holds the patient's consent
//! (`unconsented_access_fraction`), and break-the-glass reads by another hospital are
//! flagged `Emergency`.

use ledger_core::genesis::HistoricRecords;
use ledger_core::types::{
    AccessPurpose, ConsentScope, OrgId, PatientId, RecordId, ResourceKind, Tx, UserId,
};
use simrand::Stream;

use crate::patients::{PatientState, PatientTable};
use crate::synth::{LognormalTable, PackedAlias};

use crate::config::HospitalConfig;
use crate::consortium::Consortium;
use crate::synth::synth_digest;
use crate::WorkloadKind;

/// Records per patient are numbered `0..MAX_RECORDS_PER_PATIENT` inside the record id
/// (`patient << RECORD_BITS | n`); past the limit, writes replace record `n % limit`.
pub const MAX_RECORDS_PER_PATIENT: u32 = 1 << RECORD_BITS;
const RECORD_BITS: u32 = 24;

/// The historic records the ledger genesis holds for this hospital workload (`None`
/// without `warm_start_records`). The generator and the genesis must use the same value.
pub fn historic_records(cfg: &HospitalConfig, consortium: &Consortium) -> Option<HistoricRecords> {
    cfg.warm_start_records
        .then(|| HistoricRecords::with_defaults(consortium.patients() as u64))
}

/// FHIR kinds in the order of `ResourceWeights::as_array`.
const RESOURCE_KINDS: [ResourceKind; 7] = [
    ResourceKind::Observation,
    ResourceKind::Encounter,
    ResourceKind::MedicationRequest,
    ResourceKind::Condition,
    ResourceKind::Procedure,
    ResourceKind::Patient,
    ResourceKind::DocumentReference,
];

/// Patients drawn ahead per batch by [`Hospital::next`]: enough independent cache misses
/// in flight to hide most of the memory latency, few enough to stay in cache until used.
pub(crate) const PATIENTS_AHEAD: usize = 16;

/// Scope the home hospital is granted.
const HOME_SCOPE: ConsentScope = ConsentScope(
    ConsentScope::READ_RECORDS.0 | ConsentScope::READ_IMAGING.0 | ConsentScope::CLAIMS.0,
);

/// The record id of a patient's n-th record.
#[inline]
pub(crate) fn record_id(patient: u32, n: u32) -> RecordId {
    RecordId(((patient as u64) << RECORD_BITS) | (n % MAX_RECORDS_PER_PATIENT) as u64)
}

pub(crate) struct Hospital {
    rng: Stream,
    resources: PackedAlias,
    /// Mean size per resource kind, bytes.
    size_mean: [f64; 7],
    /// Unit-mean lognormal of sigma `size_sigma`.
    size_factor: LognormalTable,
    write_prob: f64,
    unconsented: f64,
    emergency: f64,
    revoke: f64,
    consent_duration_ms: u64,
    clinicians: u64,
    /// `cfg.warm_start`.
    warm_start: bool,
    /// Draws the patients of [`Hospital::next`] (stream `workload/hospital/patients`).
    patient_rng: Stream,
    /// Patients of the next [`Hospital::next`] calls, drawn ahead; `ahead[ahead_next..]`
    /// are still to be used.
    ahead: [u32; PATIENTS_AHEAD],
    ahead_next: usize,
    /// The draws of the batch after `ahead` (the first batch's are drawn at
    /// construction, each later one when the batch before it is resolved).
    raw_ahead: [u64; PATIENTS_AHEAD],
    /// Every organisation id (for choosing a foreign accessor).
    org_count: u64,
    /// Reads turned into writes because the patient had no record yet.
    owed_reads: u64,
    /// Records from before the run (records warm start).
    historic: Option<HistoricRecords>,
}

impl Hospital {
    /// The per-patient state lives in the [`PatientTable`], initialised by
    /// [`Hospital::initial_consent_until_ms`].
    pub(crate) fn new(
        cfg: &HospitalConfig,
        consortium: &Consortium,
        rng: Stream,
        mut patient_rng: Stream,
    ) -> Hospital {
        let weights = cfg.resource_weights.as_array();
        let resources = PackedAlias::new(&weights)
            .unwrap_or_else(|| panic!("validated resource weights rejected: {weights:?}"));
        let sizes = cfg.resource_size_bytes.as_array();

        let consent_duration_ms = (cfg.consent_duration_days * 86_400_000.0) as u64;
        // The first batch's patient draws; later batches are drawn (with their alias
        // entries prefetched) one batch ahead in `next`.
        let raw_ahead = std::array::from_fn(|_| patient_rng.next_u64());
        Hospital {
            rng,
            resources,
            size_mean: sizes,
            size_factor: LognormalTable::new(cfg.size_sigma),
            write_prob: 1.0 / (1.0 + cfg.read_write_ratio),
            unconsented: cfg.unconsented_access_fraction,
            emergency: cfg.emergency_access_fraction,
            revoke: cfg.consent_revoke_fraction,
            consent_duration_ms,
            clinicians: cfg.clinicians_per_hospital as u64,
            warm_start: cfg.warm_start,
            patient_rng,
            ahead: [0; PATIENTS_AHEAD],
            ahead_next: PATIENTS_AHEAD,
            raw_ahead,
            org_count: consortium.orgs().len() as u64,
            owed_reads: 0,
            historic: historic_records(cfg, consortium),
        }
    }

    /// Each patient's consent expiry at the start of the run, in patient order: with
    /// `warm_start`, the remaining life of a consent granted at a uniform time in the
    /// last duration (uniform in (0, duration], one draw per patient from `warm`);
    /// without it, 0 (no consent).
    pub(crate) fn initial_consent_until_ms(&self, mut warm: Stream) -> impl FnMut(usize) -> u64 {
        let (warm_start, d) = (self.warm_start, self.consent_duration_ms);
        move |_| {
            if warm_start {
                d - warm.below(d.max(1)).min(d)
            } else {
                0
            }
        }
    }

    /// Patient `p`'s records from before the run.
    #[inline]
    fn prior_records(&self, p: u32) -> u32 {
        match &self.historic {
            Some(h) => h.count(PatientId(p as u64)),
            None => 0,
        }
    }

    /// The next hospital transaction for a patient drawn from `patients` (whose state
    /// it reads and updates).
    ///
    /// Patients are drawn [`PATIENTS_AHEAD`] at a time from their own stream
    /// (`workload/hospital/patients`), a batch ahead, with their alias entries and then
    /// their states prefetched: with a large panel each is a cache miss, and the misses
    /// overlap with the requests in between (the draws are those of sequential sampling
    /// from that stream, so the distribution is the alias table's, as before).
    #[inline]
    pub(crate) fn next(
        &mut self,
        at_ns: u64,
        patients: &mut PatientTable,
        consortium: &Consortium,
    ) -> (Tx, WorkloadKind) {
        if self.ahead_next == PATIENTS_AHEAD {
            patients.resolve_batch(&self.raw_ahead, &mut self.ahead);
            // The next batch's draws (the stream is the patients' own, so drawing them
            // now changes no other draw), whose alias entries load meanwhile.
            patients.draw_batch(&mut self.patient_rng, &mut self.raw_ahead);
            self.ahead_next = 0;
        }
        let p = self.ahead[self.ahead_next];
        self.ahead_next += 1;
        self.next_for(p, at_ns, patients, consortium)
    }

    /// [`Hospital::next`] for patient `p`.
    #[inline]
    fn next_for(
        &mut self,
        p: u32,
        at_ns: u64,
        patients: &mut PatientTable,
        consortium: &Consortium,
    ) -> (Tx, WorkloadKind) {
        let now_ms = at_ns / 1_000_000;
        let mut st = patients.state(p);
        if st.consent_until_ms <= now_ms {
            return (
                self.grant_state(p, &mut st, patients, now_ms, consortium),
                WorkloadKind::Consent,
            );
        }
        let u = self.rng.uniform();
        if u < self.revoke || st.revoke_next {
            if !st.consent_on_ledger {
                // A consent from before the run: record it now, revoke it next time.
                let tx = self.grant_state(p, &mut st, patients, now_ms, consortium);
                st.revoke_next = true;
                patients.set_state(p, st);
                return (tx, WorkloadKind::Consent);
            }
            st.consent_until_ms = 0;
            st.consent_on_ledger = false;
            st.revoke_next = false;
            patients.set_state(p, st);
            let tx = Tx::ConsentRevoke {
                patient: PatientId(p as u64),
                grantee: consortium.home_hospital(PatientId(p as u64)),
            };
            return (tx, WorkloadKind::Consent);
        }
        let prior = self.prior_records(p);
        let has_records = prior > 0 || st.records > 0;
        let mut write = self.rng.uniform() < self.write_prob;
        if !write && !has_records {
            // A read needs an existing record: write now, and owe a read to the next
            // write decision that falls on a patient with records. Keeps the configured
            // read:write ratio without biasing which patients are drawn.
            write = true;
            self.owed_reads = self.owed_reads.saturating_add(1);
        } else if write && has_records && self.owed_reads > 0 {
            write = false;
            self.owed_reads -= 1;
        }
        if write {
            let kind = self.resources.sample(&mut self.rng);
            let size = self.sample_size(kind);
            (
                self.write_state(p, &mut st, patients, kind, size, at_ns, consortium),
                WorkloadKind::HospitalWrite,
            )
        } else {
            (
                self.read_among(p, prior, st.records, now_ms, consortium),
                WorkloadKind::HospitalRead,
            )
        }
    }

    /// A consent grant from patient `p` to their home hospital.
    pub(crate) fn grant(
        &mut self,
        p: u32,
        patients: &mut PatientTable,
        now_ms: u64,
        consortium: &Consortium,
    ) -> Tx {
        let mut st = patients.state(p);
        self.grant_state(p, &mut st, patients, now_ms, consortium)
    }

    /// [`Hospital::grant`] given patient `p`'s current state `st` (updated, and stored).
    #[inline]
    fn grant_state(
        &mut self,
        p: u32,
        st: &mut PatientState,
        patients: &mut PatientTable,
        now_ms: u64,
        consortium: &Consortium,
    ) -> Tx {
        let until = now_ms.saturating_add(self.consent_duration_ms);
        st.consent_until_ms = until;
        st.consent_on_ledger = true;
        st.revoke_next = false;
        patients.set_state(p, *st);
        Tx::ConsentGrant {
            patient: PatientId(p as u64),
            grantee: consortium.home_hospital(PatientId(p as u64)),
            scope: HOME_SCOPE,
            expires_at_ms: until,
        }
    }

    #[inline]
    fn sample_size(&mut self, kind: usize) -> u32 {
        let s = self.size_mean[kind] * self.size_factor.sample(&mut self.rng);
        s.round().clamp(1.0, u32::MAX as f64) as u32
    }

    /// A new record of `kind` (index into RESOURCE_KINDS) for patient `p`, written by
    /// the home hospital.
    pub(crate) fn write(
        &mut self,
        p: u32,
        patients: &mut PatientTable,
        kind: usize,
        size_bytes: u32,
        at_ns: u64,
        consortium: &Consortium,
    ) -> Tx {
        let mut st = patients.state(p);
        self.write_state(p, &mut st, patients, kind, size_bytes, at_ns, consortium)
    }

    /// [`Hospital::write`] given patient `p`'s current state `st` (updated, and stored).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn write_state(
        &mut self,
        p: u32,
        st: &mut PatientState,
        patients: &mut PatientTable,
        kind: usize,
        size_bytes: u32,
        at_ns: u64,
        consortium: &Consortium,
    ) -> Tx {
        let n = st.records;
        st.records = n.saturating_add(1);
        patients.set_state(p, *st);
        let record = record_id(p, n);
        Tx::RecordWrite {
            record,
            patient: PatientId(p as u64),
            author: consortium.home_hospital(PatientId(p as u64)),
            resource: RESOURCE_KINDS[kind],
            doc_hash: synth_digest(record.0, at_ns),
            size_bytes,
        }
    }

    /// An audited read of one of patient `p`'s existing records.
    pub(crate) fn read(
        &mut self,
        p: u32,
        patients: &PatientTable,
        now_ms: u64,
        consortium: &Consortium,
    ) -> Tx {
        let prior = self.prior_records(p);
        let written = patients.state(p).records;
        self.read_among(p, prior, written, now_ms, consortium)
    }

    /// [`Hospital::read`] given patient `p`'s historic record count `prior` and count of
    /// records written in the run `written`.
    #[inline]
    fn read_among(
        &mut self,
        p: u32,
        prior: u32,
        written: u32,
        now_ms: u64,
        consortium: &Consortium,
    ) -> Tx {
        let patient = PatientId(p as u64);
        let home = consortium.home_hospital(patient);
        let written = written.min(MAX_RECORDS_PER_PATIENT);
        // Uniform over the historic records and those written in the run (record 0 when
        // there are none: a trace row may read a patient without records).
        let k = self.rng.below((prior as u64 + written as u64).max(1));
        let record = if k < prior as u64 {
            HistoricRecords::record_id(patient, k as u32)
        } else {
            record_id(p, (k - prior as u64) as u32)
        };
        let u = self.rng.uniform();
        let (accessor, purpose) = if u < self.unconsented && self.org_count > 1 {
            (self.other_org(home), AccessPurpose::Treatment)
        } else if u < self.unconsented + self.emergency && self.org_count > 1 {
            (self.other_org(home), AccessPurpose::Emergency)
        } else {
            (home, AccessPurpose::Treatment)
        };
        let user = UserId(accessor.0 * self.clinicians + self.rng.below(self.clinicians));
        Tx::RecordAccess {
            record,
            patient,
            accessor,
            user,
            purpose,
            at_ms: now_ms,
        }
    }

    /// A uniformly chosen organisation other than `home` (never holds this patient's
    /// consent: the generator only grants to home hospitals).
    #[inline]
    fn other_org(&mut self, home: OrgId) -> OrgId {
        let k = self.rng.below(self.org_count - 1);
        OrgId(if k >= home.0 { k + 1 } else { k })
    }

    /// Number of records patient `p` has (trace replay).
    pub(crate) fn record_count(patients: &PatientTable, p: u32) -> u32 {
        patients.state(p).records
    }

    /// Resource-kind index for a trace row (kinds cycle with the record number).
    pub(crate) fn kind_for_record(n: u32) -> usize {
        (n as usize) % RESOURCE_KINDS.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consortium::ConsortiumConfig;

    fn patient_of(tx: &Tx) -> u32 {
        match tx {
            Tx::RecordWrite { patient, .. }
            | Tx::RecordAccess { patient, .. }
            | Tx::ConsentGrant { patient, .. }
            | Tx::ConsentRevoke { patient, .. } => patient.0 as u32,
            other => panic!("not a hospital transaction: {other:?}"),
        }
    }

    /// Counts per bin of about equal probability mass under `weights` (sorted).
    fn binned(counts: &[u64], weights: &[f64], bins: usize) -> Vec<(u64, f64)> {
        let total: f64 = weights.iter().sum();
        let mut out = vec![(0u64, 0.0f64)];
        for (c, w) in counts.iter().zip(weights) {
            let last = out.last_mut().expect("one bin");
            last.0 += c;
            last.1 += w / total;
            if last.1 >= 1.0 / bins as f64 {
                out.push((0, 0.0));
            }
        }
        out.retain(|b| b.1 > 0.0);
        out
    }

    #[test]
    fn batched_patient_draws_have_the_alias_tables_distribution() {
        let n = 5_000u32;
        let mut rng = Stream::new(3, "test/weights");
        let mut weights: Vec<f64> = (0..n).map(|_| rng.lognormal(0.0, 1.6)).collect();
        weights.sort_unstable_by(|a, b| b.total_cmp(a));
        let cfg = HospitalConfig::default();
        let consortium = Consortium::new(
            &ConsortiumConfig {
                patients: n,
                ..ConsortiumConfig::default()
            },
            1,
        )
        .expect("valid consortium");
        let mut h = Hospital::new(
            &cfg,
            &consortium,
            Stream::new(3, "test/hospital"),
            Stream::new(3, "test/hospital/patients"),
        );
        let mut table = PatientTable::new(
            &weights,
            h.initial_consent_until_ms(Stream::new(3, "test/w")),
        )
        .expect("valid weights");

        // The batches are exactly sequential draws from the patient stream.
        let mut sequential = Stream::new(3, "test/hospital/patients");
        let draws = 400_000usize;
        let mut new_counts = vec![0u64; n as usize];
        for k in 0..draws {
            let (tx, _) = h.next(k as u64 * 1_000_000, &mut table, &consortium);
            let p = patient_of(&tx);
            assert_eq!(p as usize, table.sample(&mut sequential), "draw {k}");
            new_counts[p as usize] += 1;
        }

        // Same distribution as the sampler it replaces (one alias draw per request from
        // the hospital stream), and as the weights.
        let old = PackedAlias::new(&weights).expect("valid weights");
        let mut old_rng = Stream::new(4, "test/old");
        let mut old_counts = vec![0u64; n as usize];
        for _ in 0..draws {
            old_counts[old.sample(&mut old_rng)] += 1;
        }
        let (a, b) = (
            binned(&new_counts, &weights, 40),
            binned(&old_counts, &weights, 40),
        );
        assert_eq!(a.len(), b.len());
        // Two-sample chi-square, and goodness of fit of the new draws; 40 bins, so a
        // statistic above 100 has probability below 1e-6 under the same distribution.
        let two_sample: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x.0 as f64 - y.0 as f64).powi(2) / (x.0 + y.0) as f64)
            .sum();
        let fit: f64 = a
            .iter()
            .map(|&(x, mass)| {
                let e = mass * draws as f64;
                (x as f64 - e).powi(2) / e
            })
            .sum();
        assert!(two_sample < 100.0, "two-sample chi-square {two_sample}");
        assert!(fit < 100.0, "goodness-of-fit chi-square {fit}");
        // The busiest patient's share matches its weight.
        let share = new_counts[0] as f64 / draws as f64;
        let expected = weights[0] / weights.iter().sum::<f64>();
        assert!((share - expected).abs() < 5.0 * (expected / draws as f64).sqrt() + 1e-4);
    }
}
