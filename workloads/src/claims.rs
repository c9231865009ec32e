//! Claims workload: submit (837) → adjudicate → pay (835).
//!
//! A flow starts with a submission by the patient's provider (the home hospital, or an
//! imaging centre for `imaging_provider_fraction` of claims) to the payer eligibility
//! named (`Consortium::billed_payer`). The payer adjudicates after an exponential delay,
//! denying `denial_rate` of claims (approved 0, the flow ends) and approving the billed
//! amount otherwise; an approved claim is paid (amount = approved) after another delay.
//! Fraudulent claims (`fraud_fraction`) either re-bill the previous claim's (patient,
//! service, day) under a new id (duplicate billing) or inflate the amount (upcoding);
//! the ledger's rules decide what is caught.

use ledger_core::types::{ClaimId, OrgId, PatientId, Tx};
use simrand::Stream;

use crate::patients::PatientTable;

use crate::config::ClaimsConfig;
use crate::consortium::Consortium;
use crate::synth::{secs_to_ns, LognormalTable};
use crate::WorkloadKind;

/// The state of one claim between its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClaimFlow {
    pub(crate) claim: u64,
    pub(crate) patient: u64,
    pub(crate) provider: u64,
    pub(crate) payer: u64,
    pub(crate) amount: u64,
    pub(crate) approved: u64,
    /// `false`: adjudication is next; `true`: payment is next.
    pub(crate) approved_pending_pay: bool,
}

/// Claim-rate multiplier of simulated day `day` (day 0 is a Monday).
pub(crate) fn day_factor(cfg: &ClaimsConfig, day: u64) -> f64 {
    let week = cfg.weekday_factors[(day % 7) as usize];
    let month_len = cfg.month_length_days as u64;
    let in_month = day % month_len;
    if in_month + cfg.month_end_days as u64 >= month_len {
        week * cfg.month_end_factor
    } else {
        week
    }
}

pub(crate) struct Claims {
    rng: Stream,
    denial_rate: f64,
    fraud_fraction: f64,
    fraud_duplicate_fraction: f64,
    fraud_amount_multiplier: f64,
    /// Mean billed amount, cents (median × exp(σ²/2)).
    amount_mean: f64,
    amount_factor: LognormalTable,
    imaging_provider_fraction: f64,
    adjudication_delay_mean_s: f64,
    payment_delay_mean_s: f64,
    service_codes: u64,
    day_ns: u64,
    next_claim: u64,
    /// (patient, provider, payer, service code, day) of the last honest claim.
    last: Option<(u64, u64, u64, u32, u32)>,
    imaging_centres: Vec<OrgId>,
}

impl Claims {
    pub(crate) fn new(
        cfg: &ClaimsConfig,
        consortium: &Consortium,
        day_ns: u64,
        rng: Stream,
    ) -> Claims {
        Claims {
            rng,
            denial_rate: cfg.denial_rate,
            fraud_fraction: cfg.fraud_fraction,
            fraud_duplicate_fraction: cfg.fraud_duplicate_fraction,
            fraud_amount_multiplier: cfg.fraud_amount_multiplier,
            amount_mean: cfg.amount_median_cents as f64
                * libm::exp(0.5 * cfg.amount_sigma * cfg.amount_sigma),
            amount_factor: LognormalTable::new(cfg.amount_sigma),
            imaging_provider_fraction: cfg.imaging_provider_fraction,
            adjudication_delay_mean_s: cfg.adjudication_delay_mean_s,
            payment_delay_mean_s: cfg.payment_delay_mean_s,
            service_codes: cfg.service_codes as u64,
            day_ns: day_ns.max(1),
            next_claim: 0,
            last: None,
            imaging_centres: consortium.imaging_centres().to_vec(),
        }
    }

    /// Expected transactions per claim flow (submit, adjudicate, pay unless denied).
    pub(crate) fn tx_per_flow(cfg: &ClaimsConfig) -> f64 {
        3.0 - cfg.denial_rate
    }

    /// Start a claim: the submission and the flow waiting for adjudication, with the
    /// delay until it. `None` if the patient has no payer to bill (no insurer).
    #[inline]
    pub(crate) fn start(
        &mut self,
        at_ns: u64,
        patients: &PatientTable,
        consortium: &Consortium,
    ) -> Option<(Tx, ClaimFlow, u64)> {
        let claim = self.next_claim;
        self.next_claim += 1;
        let fraud = self.rng.bernoulli(self.fraud_fraction);
        let duplicate = fraud && self.rng.bernoulli(self.fraud_duplicate_fraction);
        let mut amount = (self.amount_mean * self.amount_factor.sample(&mut self.rng)).max(1.0);
        let (patient, provider, payer, code, day) = match (duplicate, self.last) {
            (true, Some(last)) => last,
            _ => {
                let p = patients.sample(&mut self.rng) as u64;
                let payer = consortium.billed_payer(PatientId(p))?.0;
                let provider = if !self.imaging_centres.is_empty()
                    && self.rng.bernoulli(self.imaging_provider_fraction)
                {
                    self.imaging_centres[self.rng.below(self.imaging_centres.len() as u64) as usize]
                        .0
                } else {
                    consortium.home_hospital(PatientId(p)).0
                };
                let code = self.rng.below(self.service_codes) as u32;
                let day = (at_ns / self.day_ns).min(u32::MAX as u64) as u32;
                (p, provider, payer, code, day)
            }
        };
        if fraud && !duplicate {
            amount *= self.fraud_amount_multiplier;
        }
        if !fraud {
            self.last = Some((patient, provider, payer, code, day));
        }
        let amount = amount.min(u64::MAX as f64 / 2.0).round() as u64;
        let flow = ClaimFlow {
            claim,
            patient,
            provider,
            payer,
            amount,
            approved: 0,
            approved_pending_pay: false,
        };
        let tx = Self::submit_tx(&flow, code, day);
        let delay = secs_to_ns(self.rng.exponential(self.adjudication_delay_mean_s));
        Some((tx, flow, delay))
    }

    pub(crate) fn submit_tx(f: &ClaimFlow, service_code: u32, service_day: u32) -> Tx {
        Tx::ClaimSubmit {
            claim: ClaimId(f.claim),
            patient: PatientId(f.patient),
            provider: OrgId(f.provider),
            payer: OrgId(f.payer),
            service_code,
            service_day,
            amount_cents: f.amount,
        }
    }

    /// The flow's next step: `(tx, kind, delay until the step after, if any)`.
    #[inline]
    pub(crate) fn step(&mut self, f: &mut ClaimFlow) -> (Tx, WorkloadKind, Option<u64>) {
        if f.approved_pending_pay {
            return (Self::pay_tx(f), WorkloadKind::ClaimPay, None);
        }
        let denied = self.rng.bernoulli(self.denial_rate);
        f.approved = if denied { 0 } else { f.amount };
        let tx = Self::adjudicate_tx(f);
        if denied {
            (tx, WorkloadKind::ClaimAdjudicate, None)
        } else {
            f.approved_pending_pay = true;
            let delay = secs_to_ns(self.rng.exponential(self.payment_delay_mean_s));
            (tx, WorkloadKind::ClaimAdjudicate, Some(delay))
        }
    }

    pub(crate) fn adjudicate_tx(f: &ClaimFlow) -> Tx {
        Tx::ClaimAdjudicate {
            claim: ClaimId(f.claim),
            patient: PatientId(f.patient),
            payer: OrgId(f.payer),
            approved_cents: f.approved,
        }
    }

    pub(crate) fn pay_tx(f: &ClaimFlow) -> Tx {
        Tx::ClaimPay {
            claim: ClaimId(f.claim),
            patient: PatientId(f.patient),
            payer: OrgId(f.payer),
            provider: OrgId(f.provider),
            amount_cents: f.approved,
        }
    }
}
