//! Synthetic healthcare workloads for ledgersim, grounded in published figures.
//!
//! Four domain workloads produce [`ledger_core::types::Tx`] sequences:
//! - **hospital** (EHR writes with a FHIR resource mix, audited reads, consent grants and
//!   revocations, unconsented and break-the-glass accesses),
//! - **imaging** (DICOM studies by modality, anchored by a content root, or sent on-chain),
//! - **claims** (submit → adjudicate → pay, denials, fraud, weekday and month-end shape),
//! - **supply chain** (serialized packages: commission → ship → receive → … → dispense),
//!
//! plus plain **payments** between organisations. Every default comes from
//! `WORKLOADS.md` (the source sits next to each constant in [`config`]).
//!
//! Transactions are generated *valid in order* where the real process is valid (a consent
//! is granted before the home hospital reads, adjudication follows submission, payment
//! follows approval, a package is received after it was shipped and dispensed by the
//! pharmacy holding it) and invalid at configured rates (unconsented accesses, denials,
//! fraud, coverage mismatches, cold-chain excursions). Rejection rates are therefore an
//! emergent outcome of ledger rules, configured fractions, and reordering under load.
//!
//! The [`Generator`] is what the simulator consumes: open-loop arrivals
//! ([`arrival`]), closed-loop clients with think time, or the replay of a trace file
//! ([`trace`]). All randomness comes from named [`simrand::Stream`]s, one per workload
//! (`workload/hospital`, `workload/imaging`, …), so enabling one workload does not shift
//! another's numbers.

pub mod arrival;
mod claims;
pub mod config;
pub mod consortium;
pub mod generator;
mod hospital;
mod imaging;
mod normal_quantiles;
mod patients;
mod supply;
mod synth;
pub mod trace;

pub use config::{
    ArrivalConfig, ArrivalKind, ClaimsConfig, HospitalConfig, ImagingConfig, ImagingMode,
    MixConfig, PaymentConfig, ResourceSizeBytes, ResourceWeights, ScheduleSegment,
    SupplyChainConfig, TraceConfig, WorkloadConfig,
};
pub use consortium::{Consortium, ConsortiumConfig, ConsortiumSpec, OrgSpec};
pub use generator::{Generator, GeneratorStats};
pub use hospital::historic_records;
pub use trace::{TraceError, TraceRow};

use ledger_core::types::Tx;

/// What kind of transaction a request is (for reports and per-kind metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    /// Hospital: an EHR record write.
    HospitalWrite,
    /// Hospital: an audited record access.
    HospitalRead,
    /// Hospital: a consent grant or revocation.
    Consent,
    /// Imaging: a study anchor (or on-chain study).
    Imaging,
    /// Claims: a claim submission.
    ClaimSubmit,
    /// Claims: an adjudication (approve or deny).
    ClaimAdjudicate,
    /// Claims: a payment of an approved claim.
    ClaimPay,
    /// A plain transfer between organisations.
    Payment,
    /// Supply chain: a serialized-package event.
    Supply,
}

impl WorkloadKind {
    /// Every kind, in declaration order.
    pub const ALL: [WorkloadKind; 9] = [
        WorkloadKind::HospitalWrite,
        WorkloadKind::HospitalRead,
        WorkloadKind::Consent,
        WorkloadKind::Imaging,
        WorkloadKind::ClaimSubmit,
        WorkloadKind::ClaimAdjudicate,
        WorkloadKind::ClaimPay,
        WorkloadKind::Payment,
        WorkloadKind::Supply,
    ];

    /// Stable snake_case name (reports, trace files).
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::HospitalWrite => "hospital_write",
            WorkloadKind::HospitalRead => "hospital_read",
            WorkloadKind::Consent => "consent",
            WorkloadKind::Imaging => "imaging",
            WorkloadKind::ClaimSubmit => "claim_submit",
            WorkloadKind::ClaimAdjudicate => "claim_adjudicate",
            WorkloadKind::ClaimPay => "claim_pay",
            WorkloadKind::Payment => "payment",
            WorkloadKind::Supply => "supply",
        }
    }

    /// The kind called `name` (inverse of [`WorkloadKind::name`]).
    pub fn from_name(name: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Index of the kind in [`WorkloadKind::ALL`] (for per-kind counter arrays).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One transaction request for the simulator to submit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxRequest {
    /// Virtual submission time, ns since the start of the run.
    pub at_ns: u64,
    /// The submitting client. Open loop and trace replay: the index of the submitting
    /// organisation (`OrgId.0`, an index into [`Consortium::orgs`]). Closed loop: the
    /// client slot in `0..arrival.clients`.
    pub client: u32,
    /// What kind of transaction this is.
    pub kind: WorkloadKind,
    /// The transaction.
    pub tx: Tx,
    /// Extra bytes sent with the transaction (on-chain imaging blobs; otherwise 0).
    pub payload_bytes: u64,
}

/// A configuration, consortium or trace that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A field has a value outside what is allowed.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// Dotted field path, e.g. `claims.denial_rate`.
        field: String,
        /// What is allowed and what was given.
        reason: String,
    },
    /// A trace file row is malformed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A trace file cannot be read.
    #[error("trace file `{path}`: {message}")]
    TraceFile {
        /// The path configured.
        path: String,
        /// The I/O error.
        message: String,
    },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
