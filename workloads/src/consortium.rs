//! The consortium: organisations, their regions, patients and insurance coverage.
//!
//! [`ConsortiumConfig`] is the `[consortium]` section of a scenario (kept separate from
//! `[workload]` because the simulator also places nodes by it). [`Consortium::new`]
//! expands it deterministically (stream `consortium`) into organisations and per-patient
//! facts, and [`Consortium::spec`] is the genesis-ready plain description
//! ([`ConsortiumSpec`]: opening balances, per-claim limits, patient → payer coverage).
//!
//! Organisation ids are dense: `OrgId(i)` is `orgs()[i]`, hospitals first, then imaging
//! centres, insurers and pharmacies. Patient ids are `PatientId(0..patients)`.

use std::sync::Arc;

use ledger_core::types::{AmountCents, OrgId, OrgKind, PatientId};
use serde::{Deserialize, Serialize};
use simrand::Stream;

use crate::config::check_fraction;
use crate::ConfigError;

/// Most organisations a consortium may have.
pub const MAX_ORGS: u32 = 100_000;
/// Most patients a consortium may have (per-patient state is a few bytes each).
pub const MAX_PATIENTS: u32 = 100_000_000;

/// The consortium's shape: how many of each organisation, where, and their patients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsortiumConfig {
    /// Hospitals. est. 4 (a regional health information exchange has 93: IHIE 2016).
    pub hospitals: u32,
    /// Imaging centres. est. 2.
    pub imaging_centres: u32,
    /// Insurers (payers). est. 3.
    pub insurers: u32,
    /// Pharmacies and distributors (the supply chain needs at least 2). est. 3.
    pub pharmacies: u32,
    /// Patients. est. 100,000 (a 400-bed hospital sees about 1,000 encounters a day).
    pub patients: u32,
    /// Region names; organisations are placed round-robin in this order. Default: the
    /// AWS regions of the WORKLOADS.md latency table, US-East and US-West-2.
    pub regions: Vec<String>,
    /// Opening balance of each hospital, cents. est. $100M.
    pub hospital_opening_balance_cents: AmountCents,
    /// Opening balance of each imaging centre, cents. est. $10M.
    pub imaging_centre_opening_balance_cents: AmountCents,
    /// Opening balance of each insurer, cents. est. $10B (large enough never to bind).
    pub insurer_opening_balance_cents: AmountCents,
    /// Opening balance of each pharmacy, cents. est. $10M.
    pub pharmacy_opening_balance_cents: AmountCents,
    /// Largest amount an insurer accepts on one claim, cents. est. $100,000.
    pub insurer_claim_limit_cents: AmountCents,
    /// Fraction of patients whose coverage on the ledger does not match the payer their
    /// provider bills (stale eligibility data): their claims are rejected. est. 0.02.
    pub coverage_mismatch_fraction: f64,
}

impl Default for ConsortiumConfig {
    fn default() -> Self {
        ConsortiumConfig {
            hospitals: 4,
            imaging_centres: 2,
            insurers: 3,
            pharmacies: 3,
            patients: 100_000,
            regions: vec!["us-east-1".to_string(), "us-west-2".to_string()],
            hospital_opening_balance_cents: 10_000_000_000,
            imaging_centre_opening_balance_cents: 1_000_000_000,
            insurer_opening_balance_cents: 1_000_000_000_000,
            pharmacy_opening_balance_cents: 1_000_000_000,
            insurer_claim_limit_cents: 10_000_000,
            coverage_mismatch_fraction: 0.02,
        }
    }
}

impl ConsortiumConfig {
    /// Check every field; the error names the field (under `consortium`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let total = self.hospitals as u64
            + self.imaging_centres as u64
            + self.insurers as u64
            + self.pharmacies as u64;
        if total == 0 {
            return Err(ConfigError::invalid(
                "consortium.hospitals",
                "the consortium has no organisations",
            ));
        }
        if total > MAX_ORGS as u64 {
            return Err(ConfigError::invalid(
                "consortium.hospitals",
                format!("at most {MAX_ORGS} organisations in all, got {total}"),
            ));
        }
        if self.patients == 0 || self.patients > MAX_PATIENTS {
            return Err(ConfigError::invalid(
                "consortium.patients",
                format!("must be in 1..={MAX_PATIENTS}, got {}", self.patients),
            ));
        }
        if self.regions.is_empty() {
            return Err(ConfigError::invalid(
                "consortium.regions",
                "must name at least one region",
            ));
        }
        if let Some(i) = self.regions.iter().position(|r| r.trim().is_empty()) {
            return Err(ConfigError::invalid(
                format!("consortium.regions[{i}]"),
                "must not be empty",
            ));
        }
        if self.insurer_claim_limit_cents == 0 {
            return Err(ConfigError::invalid(
                "consortium.insurer_claim_limit_cents",
                "must be at least 1",
            ));
        }
        check_fraction(
            "consortium.coverage_mismatch_fraction",
            self.coverage_mismatch_fraction,
        )
    }
}

/// One organisation, as genesis needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSpec {
    /// Its id (`OrgId(i)` for the i-th organisation).
    pub id: OrgId,
    /// Hospital, imaging centre, insurer or pharmacy.
    pub kind: OrgKind,
    /// Readable name, e.g. `hospital-0`.
    pub name: String,
    /// Region name (from `ConsortiumConfig::regions`).
    pub region: String,
    /// Opening account balance, cents.
    pub opening_balance_cents: AmountCents,
    /// Per-claim limit for insurers; `None` for other kinds.
    pub claim_limit_cents: Option<AmountCents>,
}

/// Genesis-ready plain description of the consortium.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsortiumSpec {
    /// Every organisation, `orgs[i].id == OrgId(i)`.
    pub orgs: Vec<OrgSpec>,
    /// Number of patients (`PatientId(0..patients)`).
    pub patients: u32,
    /// Patient → covering insurer on the ledger, sorted by patient. Every patient is
    /// covered; mismatched patients are covered by an insurer other than the one billed
    /// (or, with a single insurer, are absent from this list).
    pub coverage: Vec<(PatientId, OrgId)>,
}

/// Marker for "no coverage" in per-patient tables.
const NONE: u32 = u32::MAX;

/// The expanded consortium the generator draws from.
///
/// Cheap to clone: the per-patient tables (tens of MB with millions of patients) are
/// shared, never copied.
#[derive(Clone, Debug)]
pub struct Consortium {
    /// Every organisation, `orgs[i].id == OrgId(i)`.
    orgs: Arc<[OrgSpec]>,
    /// Number of patients.
    patients: u32,
    hospitals: Vec<OrgId>,
    imaging_centres: Vec<OrgId>,
    insurers: Vec<OrgId>,
    pharmacies: Vec<OrgId>,
    /// Per patient: the insurer the provider bills and the covering insurer on the
    /// ledger (`OrgId.0`, or NONE), side by side (a claim reads both).
    payers: Arc<[(u32, u32)]>,
}

impl Consortium {
    /// Expand `cfg` deterministically from `seed` (stream `consortium`).
    pub fn new(cfg: &ConsortiumConfig, seed: u64) -> Result<Consortium, ConfigError> {
        cfg.validate()?;
        let mut orgs = Vec::new();
        let groups = [
            (
                OrgKind::Hospital,
                cfg.hospitals,
                "hospital",
                cfg.hospital_opening_balance_cents,
            ),
            (
                OrgKind::ImagingCentre,
                cfg.imaging_centres,
                "imaging",
                cfg.imaging_centre_opening_balance_cents,
            ),
            (
                OrgKind::Insurer,
                cfg.insurers,
                "insurer",
                cfg.insurer_opening_balance_cents,
            ),
            (
                OrgKind::Pharmacy,
                cfg.pharmacies,
                "pharmacy",
                cfg.pharmacy_opening_balance_cents,
            ),
        ];
        for (kind, count, prefix, balance) in groups {
            for j in 0..count {
                let i = orgs.len();
                orgs.push(OrgSpec {
                    id: OrgId(i as u64),
                    kind,
                    name: format!("{prefix}-{j}"),
                    region: cfg.regions[i % cfg.regions.len()].clone(),
                    opening_balance_cents: balance,
                    claim_limit_cents: (kind == OrgKind::Insurer)
                        .then_some(cfg.insurer_claim_limit_cents),
                });
            }
        }
        let of_kind = |k: OrgKind| -> Vec<OrgId> {
            orgs.iter().filter(|o| o.kind == k).map(|o| o.id).collect()
        };
        let hospitals = of_kind(OrgKind::Hospital);
        let imaging_centres = of_kind(OrgKind::ImagingCentre);
        let insurers = of_kind(OrgKind::Insurer);
        let pharmacies = of_kind(OrgKind::Pharmacy);

        let n = cfg.patients as usize;
        let mut rng = Stream::new(seed, "consortium");
        // Home hospital: round-robin, so hospitals have equal patient panels; if there
        // is no hospital, patients are homed at the first organisation.
        // The rule ledger-core's genesis uses for historic records' custodians, computed
        // on demand by `home_hospital` (a per-patient table would cost a cache miss per
        // request with a large panel).
        // Collected straight into the shared table (one allocation of known size).
        let payers = (0..n)
            .map(|_| {
                if insurers.is_empty() {
                    return (NONE, NONE);
                }
                let b = insurers[rng.below(insurers.len() as u64) as usize].0 as u32;
                let c = if rng.bernoulli(cfg.coverage_mismatch_fraction) {
                    if insurers.len() > 1 {
                        // Another insurer than the billed one.
                        let k = rng.below(insurers.len() as u64 - 1) as usize;
                        let others = insurers.iter().filter(|o| o.0 as u32 != b);
                        others.clone().nth(k).map_or(NONE, |o| o.0 as u32)
                    } else {
                        NONE
                    }
                } else {
                    b
                };
                (b, c)
            })
            .collect();
        Ok(Consortium {
            orgs: orgs.into(),
            patients: cfg.patients,
            hospitals,
            imaging_centres,
            insurers,
            pharmacies,
            payers,
        })
    }

    /// The genesis-ready description, built on each call from the per-patient table
    /// (its coverage list has an entry per covered patient: 16 MB for a million, which
    /// the consortium does not keep a second copy of).
    pub fn spec(&self) -> ConsortiumSpec {
        let mut coverage = Vec::with_capacity(self.payers.len());
        coverage.extend(
            self.payers
                .iter()
                .enumerate()
                .filter(|(_, &(_, c))| c != NONE)
                .map(|(p, &(_, c))| (PatientId(p as u64), OrgId(c as u64))),
        );
        ConsortiumSpec {
            orgs: self.orgs.to_vec(),
            patients: self.patients,
            coverage,
        }
    }

    /// Every organisation (`orgs()[i].id == OrgId(i)`).
    pub fn orgs(&self) -> &[OrgSpec] {
        &self.orgs
    }

    /// Number of patients.
    pub fn patients(&self) -> u32 {
        self.patients
    }

    /// Hospitals' ids.
    pub fn hospitals(&self) -> &[OrgId] {
        &self.hospitals
    }

    /// Imaging centres' ids.
    pub fn imaging_centres(&self) -> &[OrgId] {
        &self.imaging_centres
    }

    /// Insurers' ids.
    pub fn insurers(&self) -> &[OrgId] {
        &self.insurers
    }

    /// Pharmacies' ids.
    pub fn pharmacies(&self) -> &[OrgId] {
        &self.pharmacies
    }

    /// The patient's home hospital (writes their records; holds their consent).
    /// Panics if `patient` is out of range.
    #[inline]
    pub fn home_hospital(&self, patient: PatientId) -> OrgId {
        assert!(
            patient.0 < self.patients as u64,
            "patient {} out of range",
            patient.0
        );
        // Patient ids fit in u32 (MAX_PATIENTS): a 32-bit division is cheaper.
        match self.hospitals.len() {
            0 => OrgId(0),
            h => self.hospitals[(patient.0 as u32 % h as u32) as usize],
        }
    }

    /// The insurer a provider bills for this patient (from eligibility), if any insurer
    /// exists. Panics if `patient` is out of range.
    #[inline]
    pub fn billed_payer(&self, patient: PatientId) -> Option<OrgId> {
        let b = self.payers[patient.0 as usize].0;
        (b != NONE).then_some(OrgId(b as u64))
    }

    /// The insurer covering this patient on the ledger (genesis), if any.
    /// Panics if `patient` is out of range.
    #[inline]
    pub fn coverage(&self, patient: PatientId) -> Option<OrgId> {
        let c = self.payers[patient.0 as usize].1;
        (c != NONE).then_some(OrgId(c as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::genesis::round_robin_home;

    #[test]
    fn home_hospital_is_the_genesis_round_robin_rule() {
        for hospitals in [0, 1, 3, 40] {
            let cfg = ConsortiumConfig {
                hospitals,
                patients: 10_000,
                ..ConsortiumConfig::default()
            };
            let c = Consortium::new(&cfg, 7).expect("valid consortium");
            for p in 0..cfg.patients as u64 {
                assert_eq!(
                    c.home_hospital(PatientId(p)),
                    round_robin_home(c.hospitals(), OrgId(0), PatientId(p)),
                    "hospitals {hospitals}, patient {p}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn home_hospital_rejects_unknown_patients() {
        let c = Consortium::new(&ConsortiumConfig::default(), 7).expect("valid consortium");
        c.home_hospital(PatientId(c.patients() as u64));
    }
}
