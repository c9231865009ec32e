//! Domain types of the healthcare ledger: identifiers, organisations, transactions.
//!
//! Every identifier is a `u64` newtype. Documents, imaging pixels and claim
//! attachments never enter the ledger: a transaction carries their blake3 hash
//! and byte size only.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        pub struct $name(pub u64);
    };
}

id_type!(
    /// An organisation of the consortium (hospital, imaging centre, insurer, pharmacy).
    OrgId
);
id_type!(
    /// A patient. A patient's records, consents, audit trail and claims live on the
    /// patient's home shard (see [`crate::routing`]).
    PatientId
);
id_type!(
    /// An EHR record (one FHIR-like resource, versioned by rewrites).
    RecordId
);
id_type!(
    /// An insurance claim.
    ClaimId
);
id_type!(
    /// An imaging study (one DICOM study, anchored by the Merkle root of its chunks).
    StudyId
);
id_type!(
    /// A serialized drug package (DSCSA serial number).
    PackageId
);
id_type!(
    /// A clinician or staff member acting for an organisation.
    UserId
);

/// A shard index in `0..shard_count`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct ShardId(pub u32);

/// A 32-byte blake3 digest.
pub type Hash32 = [u8; 32];

/// Money in cents. Balances are unsigned: no transaction may overdraw an account.
pub type AmountCents = u64;

/// Kind of consortium member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OrgKind {
    /// A hospital: writes and reads EHR records, submits claims.
    Hospital,
    /// An imaging centre: anchors imaging studies, submits claims.
    ImagingCentre,
    /// An insurer (payer): adjudicates and pays claims.
    Insurer,
    /// A pharmacy or distributor: supply-chain events, dispensing.
    Pharmacy,
}

/// FHIR-like resource kinds an EHR write may carry (sizes in `workloads`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceKind {
    /// FHIR Observation (vital sign, lab result).
    Observation,
    /// FHIR Encounter.
    Encounter,
    /// FHIR MedicationRequest.
    MedicationRequest,
    /// FHIR Condition.
    Condition,
    /// FHIR Procedure.
    Procedure,
    /// FHIR Patient (demographics).
    Patient,
    /// FHIR DocumentReference (a document, by hash).
    DocumentReference,
}

/// Imaging modality (DICOM modality codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Modality {
    /// Computed tomography.
    Ct,
    /// Magnetic resonance.
    Mr,
    /// Computed / digital radiography (chest X-ray).
    CrDx,
    /// Mammography (2D or tomosynthesis).
    Mammography,
    /// Ultrasound.
    Ultrasound,
    /// PET-CT.
    PetCt,
}

/// What a consent grant covers, as a bit set.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct ConsentScope(pub u8);

impl ConsentScope {
    /// Read clinical records (all resource kinds except imaging).
    pub const READ_RECORDS: ConsentScope = ConsentScope(1);
    /// Read imaging studies.
    pub const READ_IMAGING: ConsentScope = ConsentScope(2);
    /// Use records for a claim (insurers).
    pub const CLAIMS: ConsentScope = ConsentScope(4);
    /// Research use (de-identified).
    pub const RESEARCH: ConsentScope = ConsentScope(8);
    /// Every defined scope bit.
    pub const ALL: ConsentScope = ConsentScope(15);

    /// Whether every bit of `other` is granted by `self`.
    pub fn contains(self, other: ConsentScope) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Why a clinician accesses a record (kept in the audit trail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AccessPurpose {
    /// Direct care.
    Treatment,
    /// Billing and claims.
    Payment,
    /// Operations, quality, audit.
    Operations,
    /// Break-the-glass emergency access (allowed without consent, always audited).
    Emergency,
}

/// A step in a serialized package's life (GS1 / DSCSA events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SupplyEventKind {
    /// The manufacturer commissions the serial number (creates the package).
    Commission {
        /// GTIN-like product code.
        product: u64,
    },
    /// The holder ships the package to another organisation.
    Ship {
        /// Receiving organisation.
        to: OrgId,
    },
    /// The addressee receives a shipped package and becomes its holder.
    Receive,
    /// A pharmacy holding the package dispenses it to a patient (terminal).
    Dispense {
        /// The patient the package was dispensed to.
        patient: PatientId,
    },
    /// A cold-chain temperature excursion, in tenths of a degree Celsius.
    TemperatureExcursion {
        /// Temperature observed, in 0.1 °C.
        celsius_x10: i16,
    },
}

/// A ledger transaction. Sizes are of the off-chain objects a transaction refers to;
/// the object bytes themselves never enter the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tx {
    /// Write (create or replace) an EHR record: the document's hash and size.
    RecordWrite {
        /// The record written.
        record: RecordId,
        /// Whose record it is.
        patient: PatientId,
        /// The writing organisation (becomes the record's custodian on create).
        author: OrgId,
        /// FHIR-like kind of the resource.
        resource: ResourceKind,
        /// blake3 hash of the document.
        doc_hash: Hash32,
        /// Document size in bytes.
        size_bytes: u32,
    },
    /// An audited access to a record. Without a valid consent (and not an
    /// emergency) it is rejected, and the attempt is still written to the audit trail.
    RecordAccess {
        /// The record read.
        record: RecordId,
        /// Whose record it is.
        patient: PatientId,
        /// The organisation reading.
        accessor: OrgId,
        /// The person reading.
        user: UserId,
        /// Why.
        purpose: AccessPurpose,
        /// Time of access, ms since the ledger epoch (checked against consent expiry).
        at_ms: u64,
    },
    /// A patient grants an organisation access of some scope until an expiry.
    ConsentGrant {
        /// The patient granting.
        patient: PatientId,
        /// The organisation receiving access.
        grantee: OrgId,
        /// What the grant covers.
        scope: ConsentScope,
        /// Expiry, ms since the ledger epoch (exclusive).
        expires_at_ms: u64,
    },
    /// A patient revokes an organisation's access.
    ConsentRevoke {
        /// The patient revoking.
        patient: PatientId,
        /// The organisation losing access.
        grantee: OrgId,
    },
    /// Anchor an imaging study: the blake3 Merkle root over its chunks and its size.
    ImagingAnchor {
        /// The study.
        study: StudyId,
        /// Whose study it is.
        patient: PatientId,
        /// The imaging centre or hospital that acquired it.
        centre: OrgId,
        /// Modality.
        modality: Modality,
        /// Merkle root over the study's chunks.
        content_root: Hash32,
        /// Total study size in bytes.
        size_bytes: u64,
        /// Number of chunks under `content_root`.
        chunk_count: u32,
    },
    /// A provider submits a claim to the patient's payer.
    ClaimSubmit {
        /// The claim.
        claim: ClaimId,
        /// The patient treated.
        patient: PatientId,
        /// The provider billing.
        provider: OrgId,
        /// The payer billed.
        payer: OrgId,
        /// Procedure / service code (CPT-like).
        service_code: u32,
        /// Day of service, days since the ledger epoch.
        service_day: u32,
        /// Amount billed.
        amount_cents: AmountCents,
    },
    /// The payer adjudicates a submitted claim: approve an amount or deny.
    ClaimAdjudicate {
        /// The claim.
        claim: ClaimId,
        /// Whose claim (routing).
        patient: PatientId,
        /// The payer deciding (must be the claim's payer).
        payer: OrgId,
        /// Approved amount; 0 denies the claim.
        approved_cents: AmountCents,
    },
    /// The payer pays an approved claim: money moves from payer to provider.
    ClaimPay {
        /// The claim.
        claim: ClaimId,
        /// Whose claim (routing).
        patient: PatientId,
        /// The payer paying.
        payer: OrgId,
        /// The provider paid.
        provider: OrgId,
        /// Amount paid (must equal the approved amount).
        amount_cents: AmountCents,
    },
    /// A plain transfer between two organisations' accounts.
    Payment {
        /// Payer account.
        from: OrgId,
        /// Payee account.
        to: OrgId,
        /// Amount.
        amount_cents: AmountCents,
    },
    /// A drug supply-chain event on a serialized package.
    Supply {
        /// The package.
        package: PackageId,
        /// The organisation recording the event.
        actor: OrgId,
        /// What happened.
        event: SupplyEventKind,
    },
}

/// A transaction together with the off-chain payload bytes that travel with it on
/// the wire (non-zero only for imaging studies sent on-chain). Ledger-core never
/// stores the payload; the simulator charges its bytes to the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxEnvelope {
    /// The transaction.
    pub tx: Tx,
    /// Extra bytes carried with the transaction (on-chain imaging blobs).
    pub payload_bytes: u64,
}
