//! Workload configuration: the `[workload]` section of a scenario file.
//!
//! Every struct denies unknown fields and fills missing ones from its `Default`, so a
//! scenario only names what it changes, and a dotted override such as
//! `workload.imaging.mode=onchain` or `workload.claims.denial_rate=0.3` maps to one
//! field. Enums are lowercase strings. Each default names its source in
//! `WORKLOADS.md`; "est." marks a bounded estimate where no figure was published.
//!
//! Units are the last part of a field name (`_s`, `_ms`, `_bytes`, `_cents`, `_days`).

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The whole workload: what mix of transactions, how each workload behaves, and how
/// requests arrive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    /// Share of transactions per workload family.
    pub mix: MixConfig,
    /// Hospital EHR, consent and audited access.
    pub hospital: HospitalConfig,
    /// Imaging studies.
    pub imaging: ImagingConfig,
    /// Insurance claims pipeline.
    pub claims: ClaimsConfig,
    /// Drug supply chain (serialized packages).
    pub supply_chain: SupplyChainConfig,
    /// Plain transfers between organisations.
    pub payment: PaymentConfig,
    /// Arrival process (open loop) or closed-loop clients.
    pub arrival: ArrivalConfig,
    /// Replay a trace file instead of generating arrivals (absent: generate).
    pub trace: Option<TraceConfig>,
    /// Limit on scheduled follow-up steps of multi-step flows (claim adjudication and
    /// payment, supply-chain hops) waiting in the generator. When full, a new flow's
    /// follow-ups are dropped and counted in `GeneratorStats::dropped_steps`.
    pub max_pending_steps: usize,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            mix: MixConfig::default(),
            hospital: HospitalConfig::default(),
            imaging: ImagingConfig::default(),
            claims: ClaimsConfig::default(),
            supply_chain: SupplyChainConfig::default(),
            payment: PaymentConfig::default(),
            arrival: ArrivalConfig::default(),
            trace: None,
            max_pending_steps: DEFAULT_MAX_PENDING_STEPS,
        }
    }
}

/// Default [`WorkloadConfig::max_pending_steps`]: one million scheduled steps
/// (about 64 MB at the worst case), far above the steady state of any default
/// (claims and supply chain delays of a few seconds at tens of thousands of tx/s).
pub const DEFAULT_MAX_PENDING_STEPS: usize = 1 << 20;

/// Relative transaction volume per workload family. The generator normalises these
/// weights: they are the expected *transaction* shares (a claim flow is 2–3 transactions,
/// a package 6–9), so `offered_tps` is the total transaction rate. Defaults are
/// transactions per day of one 400-bed hospital.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixConfig {
    /// Hospital transactions per day: 1.1 million audited accesses (Hedda et al., AMIA
    /// 2017) plus writes at the 8:1 read:write default (137,500) = 1,237,500.
    pub hospital: f64,
    /// Imaging studies per day: 350, the middle of 300 to 400 for a 400-bed hospital
    /// (est., ACR survey AJR 1995 with growth from Smith-Bindman JAMA 2019).
    pub imaging: f64,
    /// Claim transactions per day: one claim per encounter (about 1,000 encounters a day,
    /// AHA / CDC NHAMCS 2019; est. one claim each) × 2.8 transactions per claim (submit,
    /// adjudicate, pay unless denied at 20%) = 2,800.
    pub claims: f64,
    /// Supply-chain events per day: 5.8 billion prescriptions (IQVIA 2018) over about
    /// 5 billion claims a year (CAQH) is 1.16 packages per claim, so 1,160 packages a day
    /// × 7 events (GS1: 6 to 9) = 8,120 (est.).
    pub supply_chain: f64,
    /// Plain transfers per day: no published figure, off by default.
    pub payment: f64,
}

impl Default for MixConfig {
    fn default() -> Self {
        MixConfig {
            hospital: 1_237_500.0,
            imaging: 350.0,
            claims: 2_800.0,
            supply_chain: 8_120.0,
            payment: 0.0,
        }
    }
}

/// Relative frequency of FHIR resource kinds among EHR writes. No published mix: est.
/// from the composition of synthetic bulk FHIR exports (observations dominate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceWeights {
    /// Observation (vitals, labs). est. 60.
    pub observation: f64,
    /// Encounter. est. 8.
    pub encounter: f64,
    /// MedicationRequest. est. 10.
    pub medication_request: f64,
    /// Condition. est. 6.
    pub condition: f64,
    /// Procedure. est. 6.
    pub procedure: f64,
    /// Patient (demographics). est. 1.
    pub patient: f64,
    /// DocumentReference. est. 9.
    pub document_reference: f64,
}

impl Default for ResourceWeights {
    fn default() -> Self {
        ResourceWeights {
            observation: 60.0,
            encounter: 8.0,
            medication_request: 10.0,
            condition: 6.0,
            procedure: 6.0,
            patient: 1.0,
            document_reference: 9.0,
        }
    }
}

/// Mean size of each FHIR resource kind (minified JSON), measured on
/// smart-on-fhir/sample-bulk-fhir-datasets (WORKLOADS.md). Sizes are drawn from a
/// lognormal with this mean and `HospitalConfig::size_sigma`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceSizeBytes {
    /// Observation: 0.9 KB.
    pub observation: f64,
    /// Encounter: 1.6 KB.
    pub encounter: f64,
    /// MedicationRequest: 1.1 KB.
    pub medication_request: f64,
    /// Condition: 1.0 KB.
    pub condition: f64,
    /// Procedure: 0.83 KB.
    pub procedure: f64,
    /// Patient: 3.4 KB.
    pub patient: f64,
    /// DocumentReference: 3.3 KB.
    pub document_reference: f64,
}

impl Default for ResourceSizeBytes {
    fn default() -> Self {
        ResourceSizeBytes {
            observation: 900.0,
            encounter: 1_600.0,
            medication_request: 1_100.0,
            condition: 1_000.0,
            procedure: 830.0,
            patient: 3_400.0,
            document_reference: 3_300.0,
        }
    }
}

impl ResourceWeights {
    pub(crate) fn as_array(&self) -> [f64; 7] {
        [
            self.observation,
            self.encounter,
            self.medication_request,
            self.condition,
            self.procedure,
            self.patient,
            self.document_reference,
        ]
    }
}

impl ResourceSizeBytes {
    pub(crate) fn as_array(&self) -> [f64; 7] {
        [
            self.observation,
            self.encounter,
            self.medication_request,
            self.condition,
            self.procedure,
            self.patient,
            self.document_reference,
        ]
    }
}

/// Field names of the resource kinds, in `as_array` order (for error messages).
pub(crate) const RESOURCE_FIELDS: [&str; 7] = [
    "observation",
    "encounter",
    "medication_request",
    "condition",
    "procedure",
    "patient",
    "document_reference",
];

/// Hospital workload: EHR writes, audited reads, consent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HospitalConfig {
    /// Audited reads per write. No published ratio: default 8 (sweep 2 to 20, est.);
    /// one sample session in PMC8200270 shows 10 views to 1 modify.
    pub read_write_ratio: f64,
    /// FHIR resource mix of writes.
    pub resource_weights: ResourceWeights,
    /// Mean resource sizes (smart-on-fhir/sample-bulk-fhir-datasets).
    pub resource_size_bytes: ResourceSizeBytes,
    /// Sigma of the lognormal resource size around its mean. est. 0.5 (sizes vary
    /// about ±50% around the measured means).
    pub size_sigma: f64,
    /// Sigma of the lognormal patient activity weights. Default 1.6: "lognormal with
    /// sigma about 1.6 reproduces" the MEPS shares (top 1% of patients: 22% of
    /// spending, top 5%: about 50%; AHRQ MEPS Statistical Briefs 81 and 309). The
    /// spending fit is used rather than the encounter fit (sigma 1.0 to 1.2, est.)
    /// because ledger traffic tracks care intensity: an inpatient stay writes and reads
    /// hundreds of records, an office visit a handful, so transactions per patient
    /// concentrate like spending, not like visit counts.
    pub patient_activity_sigma: f64,
    /// Fraction of reads made by an organisation without consent (rejected and audited
    /// by the ledger). No published figure: est. 0.01.
    pub unconsented_access_fraction: f64,
    /// Fraction of reads that are break-the-glass emergency accesses by another
    /// hospital (allowed without consent, audited). est. 0.005.
    pub emergency_access_fraction: f64,
    /// Fraction of hospital transactions that revoke the patient's consent to the home
    /// hospital (re-granted at the patient's next activity). est. 0.001.
    pub consent_revoke_fraction: f64,
    /// How long a consent grant lasts, days. est. 365 (annual renewal).
    pub consent_duration_days: f64,
    /// Clinicians per hospital (user ids of accesses): 25,000 providers over 93
    /// hospitals in the Indiana HIE (IHIE 2016) ≈ 270.
    pub clinicians_per_hospital: u32,
    /// Start in the steady state (default true): every patient's home consent was granted
    /// before the run, at a uniformly random time within the last `consent_duration_days`,
    /// so consent grants occur at their renewal and re-grant rate. `false`: the ledger
    /// starts cold and every patient's first activity in the run is a consent grant (in a
    /// short run over many patients, most transactions).
    pub warm_start: bool,
    /// Records in their steady state (default true): every patient arrives with a
    /// history, the historic records of the ledger genesis
    /// ([`ledger_core::genesis::HistoricRecords`], 1,000 to 2,000 per patient, uniform by
    /// a hash of the patient: the lifetime resource count of WORKLOADS.md). Reads pick
    /// among a patient's historic records and those written in the run, so the realised
    /// read:write ratio is `read_write_ratio` from the start. `false`: the genesis holds no
    /// records, a read drawn for a patient without one becomes a write (and the read is
    /// owed to a later patient), so short runs over many patients are write-heavy.
    pub warm_start_records: bool,
}

impl Default for HospitalConfig {
    fn default() -> Self {
        HospitalConfig {
            read_write_ratio: 8.0,
            resource_weights: ResourceWeights::default(),
            resource_size_bytes: ResourceSizeBytes::default(),
            size_sigma: 0.5,
            patient_activity_sigma: 1.6,
            unconsented_access_fraction: 0.01,
            emergency_access_fraction: 0.005,
            consent_revoke_fraction: 0.001,
            consent_duration_days: 365.0,
            clinicians_per_hospital: 270,
            warm_start: true,
            warm_start_records: true,
        }
    }
}

/// Where imaging pixels go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImagingMode {
    /// Anchor the study's content root on-chain; pixels stay off-chain (payload 0).
    Anchor,
    /// Send the whole study with the transaction (payload = study size).
    Onchain,
}

/// Imaging workload. Study sizes are drawn **log-uniformly** between each modality's
/// minimum and maximum (a scale-free spread over the published range: as many studies
/// between 150 and 300 MB as between 500 MB and 1 GB for CT), with the weights below.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagingConfig {
    /// `anchor` (default: content root only, the natural ledger design) or `onchain`
    /// (the blob travels with the transaction: the contrast case).
    pub mode: ImagingMode,
    /// Chunk size under the content root: about 0.5 MB, one CT slice (vendor storage
    /// tables).
    pub chunk_size_bytes: u64,
    /// CT share of studies. est. 20 (no published modality mix in WORKLOADS.md).
    pub ct_weight: f64,
    /// CT minimum: 150 MB (300 slices of about 0.5 MB; vendor storage tables).
    pub ct_min_bytes: u64,
    /// CT maximum: 1 GB (2,000 slices).
    pub ct_max_bytes: u64,
    /// MR share. est. 10.
    pub mr_weight: f64,
    /// MR minimum: 50 MB (est., matrix × 16 bit × 200 images).
    pub mr_min_bytes: u64,
    /// MR maximum: 300 MB (est., 1,000 images).
    pub mr_max_bytes: u64,
    /// CR/DX share. est. 45 (radiography is the most common study).
    pub crdx_weight: f64,
    /// CR/DX minimum: 12 MB (est., ±20% around "about 15 MB", 2 images of 7.5 MB; PACS
    /// storage calculator).
    pub crdx_min_bytes: u64,
    /// CR/DX maximum: 18 MB (est., see minimum).
    pub crdx_max_bytes: u64,
    /// 2D mammography share. est. 6.
    pub mammography_weight: f64,
    /// 2D mammography minimum: 75 MB (vendor tables).
    pub mammography_min_bytes: u64,
    /// 2D mammography maximum: 150 MB (vendor tables).
    pub mammography_max_bytes: u64,
    /// Tomosynthesis share (modality code Mammography). est. 2.
    pub tomosynthesis_weight: f64,
    /// Tomosynthesis minimum: 20 MB (vendor tables).
    pub tomosynthesis_min_bytes: u64,
    /// Tomosynthesis maximum: 1 GB (vendor tables).
    pub tomosynthesis_max_bytes: u64,
    /// Ultrasound share. est. 15.
    pub ultrasound_weight: f64,
    /// Ultrasound minimum: 10 MB (est.).
    pub ultrasound_min_bytes: u64,
    /// Ultrasound maximum: 100 MB (est.).
    pub ultrasound_max_bytes: u64,
    /// PET-CT share. est. 2.
    pub petct_weight: f64,
    /// PET-CT minimum: 100 MB (est.).
    pub petct_min_bytes: u64,
    /// PET-CT maximum: 300 MB (est.).
    pub petct_max_bytes: u64,
}

const MB: u64 = 1_000_000;

impl Default for ImagingConfig {
    fn default() -> Self {
        ImagingConfig {
            mode: ImagingMode::Anchor,
            chunk_size_bytes: 500_000,
            ct_weight: 20.0,
            ct_min_bytes: 150 * MB,
            ct_max_bytes: 1_000 * MB,
            mr_weight: 10.0,
            mr_min_bytes: 50 * MB,
            mr_max_bytes: 300 * MB,
            crdx_weight: 45.0,
            crdx_min_bytes: 12 * MB,
            crdx_max_bytes: 18 * MB,
            mammography_weight: 6.0,
            mammography_min_bytes: 75 * MB,
            mammography_max_bytes: 150 * MB,
            tomosynthesis_weight: 2.0,
            tomosynthesis_min_bytes: 20 * MB,
            tomosynthesis_max_bytes: 1_000 * MB,
            ultrasound_weight: 15.0,
            ultrasound_min_bytes: 10 * MB,
            ultrasound_max_bytes: 100 * MB,
            petct_weight: 2.0,
            petct_min_bytes: 100 * MB,
            petct_max_bytes: 300 * MB,
        }
    }
}

impl ImagingConfig {
    /// `(field prefix, weight, min_bytes, max_bytes)` per modality entry, in the order
    /// ct, mr, crdx, mammography, tomosynthesis, ultrasound, petct.
    pub(crate) fn entries(&self) -> [(&'static str, f64, u64, u64); 7] {
        [
            ("ct", self.ct_weight, self.ct_min_bytes, self.ct_max_bytes),
            ("mr", self.mr_weight, self.mr_min_bytes, self.mr_max_bytes),
            (
                "crdx",
                self.crdx_weight,
                self.crdx_min_bytes,
                self.crdx_max_bytes,
            ),
            (
                "mammography",
                self.mammography_weight,
                self.mammography_min_bytes,
                self.mammography_max_bytes,
            ),
            (
                "tomosynthesis",
                self.tomosynthesis_weight,
                self.tomosynthesis_min_bytes,
                self.tomosynthesis_max_bytes,
            ),
            (
                "ultrasound",
                self.ultrasound_weight,
                self.ultrasound_min_bytes,
                self.ultrasound_max_bytes,
            ),
            (
                "petct",
                self.petct_weight,
                self.petct_min_bytes,
                self.petct_max_bytes,
            ),
        ]
    }
}

/// Claims pipeline: eligibility → submit (837) → adjudicate → pay (835).
///
/// Eligibility (270/271) is a query answered off-ledger: the provider learns the payer
/// it bills from it. A patient whose genesis coverage does not match that payer
/// (`consortium.coverage_mismatch_fraction`) is billed anyway and the ledger rejects the
/// claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimsConfig {
    /// Fraction of adjudications that deny (approved 0): about 20% of in-network claims
    /// are denied; insurers range from 1% to 54% (KFF, 2023 marketplace plans).
    pub denial_rate: f64,
    /// Fraction of claims that are fraudulent: 3% (conservative) to 10% of spending
    /// (NHCAA via a GWU/RWJF report); default 3%.
    pub fraud_fraction: f64,
    /// Of fraudulent claims, the fraction that re-bill an already billed (patient,
    /// service, day) under a new claim id (duplicate billing); the rest are upcoded.
    /// est. 0.5.
    pub fraud_duplicate_fraction: f64,
    /// Amount multiplier of an upcoded fraudulent claim. est. 10.
    pub fraud_amount_multiplier: f64,
    /// Median billed amount, cents. est. $200.
    pub amount_median_cents: u64,
    /// Sigma of the lognormal billed amount. est. 1.2.
    pub amount_sigma: f64,
    /// Fraction of claims billed by an imaging centre rather than the home hospital.
    /// est. 0.1.
    pub imaging_provider_fraction: f64,
    /// Mean delay from submission to adjudication, s (exponential). Real adjudication
    /// takes days; simulated runs are minutes, so this is compressed (est. 2 s).
    pub adjudication_delay_mean_s: f64,
    /// Mean delay from approval to payment, s (exponential; compressed, est. 2 s).
    pub payment_delay_mean_s: f64,
    /// Multipliers of the claim rate per day of the week, Monday first (day 0 of the run
    /// is a Monday). "Mostly weekdays, Monday peak" (est.); they average 1 over a week.
    pub weekday_factors: [f64; 7],
    /// Length of a billing month in simulated days (est. 30).
    pub month_length_days: u32,
    /// Last days of each month with the month-end burst (est. 3).
    pub month_end_days: u32,
    /// Claim-rate multiplier during the month-end days ("month-end bursts", est. 1.5).
    pub month_end_factor: f64,
    /// Number of distinct service codes (CPT-like; about 10,000 CPT codes, est.).
    pub service_codes: u32,
}

impl Default for ClaimsConfig {
    fn default() -> Self {
        ClaimsConfig {
            denial_rate: 0.20,
            fraud_fraction: 0.03,
            fraud_duplicate_fraction: 0.5,
            fraud_amount_multiplier: 10.0,
            amount_median_cents: 20_000,
            amount_sigma: 1.2,
            imaging_provider_fraction: 0.1,
            adjudication_delay_mean_s: 2.0,
            payment_delay_mean_s: 2.0,
            weekday_factors: [1.55, 1.35, 1.3, 1.3, 1.25, 0.15, 0.1],
            month_length_days: 30,
            month_end_days: 3,
            month_end_factor: 1.5,
            service_codes: 10_000,
        }
    }
}

/// Drug supply chain: each package is commissioned, shipped and received along a path
/// of `hops` pharmacies/distributors, and dispensed by the last holder, so a package
/// makes `2 + 2 × hops` events: 6 with 2 hops (manufacturer → wholesaler → pharmacy),
/// 8 with 3, plus one when a temperature excursion is recorded: 6 to 9 as in the GS1 US
/// DSCSA guideline (pack/unpack aggregation events do not reach the ledger).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupplyChainConfig {
    /// Fewest ship/receive hops per package (GS1: 2).
    pub min_hops: u32,
    /// Most ship/receive hops per package (GS1: 3; at most `MAX_HOPS`).
    pub max_hops: u32,
    /// Fraction of packages with a cold-chain temperature excursion, recorded by the
    /// holder after a receive; the package is quarantined and the flow stops there.
    /// est. 0.01.
    pub excursion_rate: f64,
    /// Mean delay between consecutive events of a package, s (exponential; compressed,
    /// est. 1 s).
    pub step_delay_mean_s: f64,
    /// Number of distinct products (GTIN-like codes). est. 10,000.
    pub products: u32,
}

/// Most ship/receive hops a package may take.
pub const MAX_HOPS: u32 = 6;

impl Default for SupplyChainConfig {
    fn default() -> Self {
        SupplyChainConfig {
            min_hops: 2,
            max_hops: 3,
            excursion_rate: 0.01,
            step_delay_mean_s: 1.0,
            products: 10_000,
        }
    }
}

/// Plain transfers between organisations (no published figure; off in the default mix).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentConfig {
    /// Median transfer, cents. est. $1,000.
    pub amount_median_cents: u64,
    /// Sigma of the lognormal amount. est. 1.0.
    pub amount_sigma: f64,
    /// Fraction of payments made by one hot payer (the first insurer, or organisation 0
    /// without insurers), e.g. a clearing house paying out; the rest pick a payer
    /// uniformly. Contention probe: under `account_locking = "lock"` concurrent payments
    /// from the hot payer's account abort. Default 0 (no hot payer).
    pub hot_payer_fraction: f64,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        PaymentConfig {
            amount_median_cents: 100_000,
            amount_sigma: 1.0,
            hot_payer_fraction: 0.0,
        }
    }
}

/// Arrival process kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalKind {
    /// Evenly spaced arrivals at the offered rate.
    Constant,
    /// Homogeneous Poisson process at the offered rate.
    Poisson,
    /// Non-homogeneous Poisson with the hour-of-day profile (thinning).
    Diurnal,
    /// Two-state Markov-modulated Poisson (on/off when `burst_low_rate_fraction` is 0).
    Bursty,
    /// Piecewise-constant rate schedule (a Diablo-style load map), Poisson within.
    Schedule,
    /// Closed loop: `clients` clients, each with one outstanding request.
    Closed,
}

/// One segment of a rate schedule: from `start_s` until the next segment's start
/// (or `ArrivalConfig::end_s`), transactions arrive at `tps`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSegment {
    /// Segment start, s since the start of the run.
    pub start_s: f64,
    /// Transaction rate in the segment, tx/s (absolute; `offered_tps` is ignored).
    pub tps: f64,
}

/// How requests arrive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArrivalConfig {
    /// `constant`, `poisson` (default), `diurnal`, `bursty`, `schedule` or `closed`.
    pub process: ArrivalKind,
    /// Rate multiplier per hour of day (00h first), normalised to mean 1, linearly
    /// interpolated between hour midpoints. Default: the ED census shape of the NHAMCS
    /// 2001 analysis and Karas 1977: 2.8x swing (0.80 at 04-05h to 2.24 at 19-20h), day
    /// shift (08-16h) 1.8x and evening (16-24h) 2.1x the 00-08h level, peaks 10-13h and
    /// 19-20h. The hourly values are fitted to those constraints (est.).
    pub diurnal_profile: [f64; 24],
    /// Hour of day at the start of the run (0 to 24). Default 0.
    pub start_hour: f64,
    /// Length of a simulated day, s: 86,400 (shorten to compress the diurnal, weekly
    /// and month-end shapes into a short run). Also the day of claims' weekday shape.
    pub day_length_s: f64,
    /// Day-to-day over-dispersion: each day's rate is multiplied by a Gamma(k, 1/k)
    /// draw (mean 1, CV 1/sqrt(k)), after Kim and Whitt (MSOM 2014). 0 disables (default).
    pub daily_gamma_shape: f64,
    /// Bursty: mean length of a burst (high-rate state), s. est. 10.
    pub burst_on_mean_s: f64,
    /// Bursty: mean length of a quiet period (low-rate state), s. est. 30.
    pub burst_off_mean_s: f64,
    /// Bursty: low-state rate as a fraction of the high-state rate (0 = on/off). est. 0.2.
    /// The rates are set so that the long-run mean is the offered rate.
    pub burst_low_rate_fraction: f64,
    /// Schedule: the load map, segments in increasing `start_s`.
    pub schedule: Vec<ScheduleSegment>,
    /// Open loop: no arrivals at or after this time, s (absent: unbounded).
    pub end_s: Option<f64>,
    /// Closed loop: number of clients. est. 100.
    pub clients: u32,
    /// Closed loop: mean think time between a completion and the next request, ms
    /// (exponential). est. 1,000.
    pub think_time_ms: f64,
}

/// Default hour-of-day profile (see [`ArrivalConfig::diurnal_profile`]): 00-08h average
/// 1.0, 08-16h average 1.8, 16-24h average 2.1, max/min = 2.24/0.80 = 2.8.
pub const DEFAULT_DIURNAL_PROFILE: [f64; 24] = [
    1.15, 1.05, 0.95, 0.85, 0.80, 0.80, 1.00, 1.40, // 00-08h: mean 1.0
    1.50, 1.75, 2.00, 2.05, 2.05, 2.00, 1.60, 1.45, // 08-16h: mean 1.8, peak 10-13h
    1.95, 2.05, 2.15, 2.24, 2.24, 2.15, 2.02, 2.00, // 16-24h: mean 2.1, peak 19-20h
];

impl Default for ArrivalConfig {
    fn default() -> Self {
        ArrivalConfig {
            process: ArrivalKind::Poisson,
            diurnal_profile: DEFAULT_DIURNAL_PROFILE,
            start_hour: 0.0,
            day_length_s: 86_400.0,
            daily_gamma_shape: 0.0,
            burst_on_mean_s: 10.0,
            burst_off_mean_s: 30.0,
            burst_low_rate_fraction: 0.2,
            schedule: Vec::new(),
            end_s: None,
            clients: 100,
            think_time_ms: 1_000.0,
        }
    }
}

/// Replay a trace file (format in [`crate::trace`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    /// Path of the CSV trace.
    pub path: String,
    /// Multiply trace times by this (0.5 replays twice as fast). Default 1.
    pub time_scale: f64,
    /// Refuse traces with more rows than this (memory bound). Default 10 million.
    pub max_rows: usize,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            path: String::new(),
            time_scale: 1.0,
            max_rows: 10_000_000,
        }
    }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

pub(crate) fn check_non_negative(field: &str, v: f64) -> Result<(), ConfigError> {
    if !v.is_finite() || v < 0.0 {
        return Err(ConfigError::invalid(
            field,
            format!("must be a finite number >= 0, got {v}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_positive(field: &str, v: f64) -> Result<(), ConfigError> {
    if !v.is_finite() || v <= 0.0 {
        return Err(ConfigError::invalid(
            field,
            format!("must be a finite number > 0, got {v}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_fraction(field: &str, v: f64) -> Result<(), ConfigError> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(ConfigError::invalid(
            field,
            format!("must be a fraction in [0, 1], got {v}"),
        ));
    }
    Ok(())
}

fn check_weights(field: &str, names: &[&str], weights: &[f64]) -> Result<(), ConfigError> {
    for (n, w) in names.iter().zip(weights) {
        check_non_negative(&format!("{field}.{n}"), *w)?;
    }
    if weights.iter().sum::<f64>() <= 0.0 {
        return Err(ConfigError::invalid(
            field,
            "weights are all zero: at least one must be > 0",
        ));
    }
    Ok(())
}

impl WorkloadConfig {
    /// Check every field; the error names the first offending field (dotted path under
    /// `workload`) and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let m = &self.mix;
        check_weights(
            "mix",
            &["hospital", "imaging", "claims", "supply_chain", "payment"],
            &[m.hospital, m.imaging, m.claims, m.supply_chain, m.payment],
        )?;

        let h = &self.hospital;
        check_non_negative("hospital.read_write_ratio", h.read_write_ratio)?;
        check_weights(
            "hospital.resource_weights",
            &RESOURCE_FIELDS,
            &h.resource_weights.as_array(),
        )?;
        for (n, s) in RESOURCE_FIELDS.iter().zip(h.resource_size_bytes.as_array()) {
            check_positive(&format!("hospital.resource_size_bytes.{n}"), s)?;
        }
        check_non_negative("hospital.size_sigma", h.size_sigma)?;
        check_non_negative("hospital.patient_activity_sigma", h.patient_activity_sigma)?;
        if h.patient_activity_sigma > 5.0 {
            return Err(ConfigError::invalid(
                "hospital.patient_activity_sigma",
                format!(
                    "must be at most 5 (weights overflow), got {}",
                    h.patient_activity_sigma
                ),
            ));
        }
        check_fraction(
            "hospital.unconsented_access_fraction",
            h.unconsented_access_fraction,
        )?;
        check_fraction(
            "hospital.emergency_access_fraction",
            h.emergency_access_fraction,
        )?;
        if h.unconsented_access_fraction + h.emergency_access_fraction > 1.0 {
            return Err(ConfigError::invalid(
                "hospital.emergency_access_fraction",
                "unconsented_access_fraction + emergency_access_fraction must be at most 1",
            ));
        }
        check_fraction(
            "hospital.consent_revoke_fraction",
            h.consent_revoke_fraction,
        )?;
        check_positive("hospital.consent_duration_days", h.consent_duration_days)?;
        if h.clinicians_per_hospital == 0 {
            return Err(ConfigError::invalid(
                "hospital.clinicians_per_hospital",
                "must be at least 1",
            ));
        }

        let im = &self.imaging;
        if im.chunk_size_bytes == 0 {
            return Err(ConfigError::invalid(
                "imaging.chunk_size_bytes",
                "must be at least 1",
            ));
        }
        let entries = im.entries();
        for (name, w, lo, hi) in entries {
            check_non_negative(&format!("imaging.{name}_weight"), w)?;
            if lo == 0 {
                return Err(ConfigError::invalid(
                    format!("imaging.{name}_min_bytes"),
                    "must be at least 1",
                ));
            }
            if hi < lo {
                return Err(ConfigError::invalid(
                    format!("imaging.{name}_max_bytes"),
                    format!("must be >= {name}_min_bytes ({lo}), got {hi}"),
                ));
            }
        }
        if entries.iter().map(|e| e.1).sum::<f64>() <= 0.0 {
            return Err(ConfigError::invalid(
                "imaging",
                "modality weights (*_weight) are all zero: at least one must be > 0",
            ));
        }

        let c = &self.claims;
        check_fraction("claims.denial_rate", c.denial_rate)?;
        check_fraction("claims.fraud_fraction", c.fraud_fraction)?;
        check_fraction(
            "claims.fraud_duplicate_fraction",
            c.fraud_duplicate_fraction,
        )?;
        check_positive("claims.fraud_amount_multiplier", c.fraud_amount_multiplier)?;
        if c.amount_median_cents == 0 {
            return Err(ConfigError::invalid(
                "claims.amount_median_cents",
                "must be at least 1",
            ));
        }
        check_non_negative("claims.amount_sigma", c.amount_sigma)?;
        check_fraction(
            "claims.imaging_provider_fraction",
            c.imaging_provider_fraction,
        )?;
        check_non_negative(
            "claims.adjudication_delay_mean_s",
            c.adjudication_delay_mean_s,
        )?;
        check_non_negative("claims.payment_delay_mean_s", c.payment_delay_mean_s)?;
        for (i, f) in c.weekday_factors.iter().enumerate() {
            check_non_negative(&format!("claims.weekday_factors[{i}]"), *f)?;
        }
        if c.weekday_factors.iter().sum::<f64>() <= 0.0 {
            return Err(ConfigError::invalid(
                "claims.weekday_factors",
                "are all zero: at least one day must be > 0",
            ));
        }
        if c.month_length_days == 0 {
            return Err(ConfigError::invalid(
                "claims.month_length_days",
                "must be at least 1",
            ));
        }
        if c.month_end_days > c.month_length_days {
            return Err(ConfigError::invalid(
                "claims.month_end_days",
                format!(
                    "must be at most month_length_days ({}), got {}",
                    c.month_length_days, c.month_end_days
                ),
            ));
        }
        check_non_negative("claims.month_end_factor", c.month_end_factor)?;
        if c.service_codes == 0 {
            return Err(ConfigError::invalid(
                "claims.service_codes",
                "must be at least 1",
            ));
        }

        let s = &self.supply_chain;
        if s.min_hops == 0 {
            return Err(ConfigError::invalid(
                "supply_chain.min_hops",
                "must be at least 1",
            ));
        }
        if s.max_hops < s.min_hops || s.max_hops > MAX_HOPS {
            return Err(ConfigError::invalid(
                "supply_chain.max_hops",
                format!(
                    "must be in min_hops..={MAX_HOPS} ({}..={MAX_HOPS}), got {}",
                    s.min_hops, s.max_hops
                ),
            ));
        }
        check_fraction("supply_chain.excursion_rate", s.excursion_rate)?;
        check_non_negative("supply_chain.step_delay_mean_s", s.step_delay_mean_s)?;
        if s.products == 0 {
            return Err(ConfigError::invalid(
                "supply_chain.products",
                "must be at least 1",
            ));
        }

        let p = &self.payment;
        if p.amount_median_cents == 0 {
            return Err(ConfigError::invalid(
                "payment.amount_median_cents",
                "must be at least 1",
            ));
        }
        check_non_negative("payment.amount_sigma", p.amount_sigma)?;
        check_fraction("payment.hot_payer_fraction", p.hot_payer_fraction)?;

        self.arrival.validate()?;

        if let Some(t) = &self.trace {
            if t.path.is_empty() {
                return Err(ConfigError::invalid("trace.path", "must name a file"));
            }
            check_positive("trace.time_scale", t.time_scale)?;
            if t.max_rows == 0 {
                return Err(ConfigError::invalid("trace.max_rows", "must be at least 1"));
            }
        }
        if self.max_pending_steps == 0 {
            return Err(ConfigError::invalid(
                "max_pending_steps",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl ArrivalConfig {
    /// Check the arrival fields (part of [`WorkloadConfig::validate`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, v) in self.diurnal_profile.iter().enumerate() {
            check_non_negative(&format!("arrival.diurnal_profile[{i}]"), *v)?;
        }
        if self.diurnal_profile.iter().sum::<f64>() <= 0.0 {
            return Err(ConfigError::invalid(
                "arrival.diurnal_profile",
                "is all zero: at least one hour must be > 0",
            ));
        }
        if !self.start_hour.is_finite() || !(0.0..24.0).contains(&self.start_hour) {
            return Err(ConfigError::invalid(
                "arrival.start_hour",
                format!("must be in [0, 24), got {}", self.start_hour),
            ));
        }
        check_positive("arrival.day_length_s", self.day_length_s)?;
        check_non_negative("arrival.daily_gamma_shape", self.daily_gamma_shape)?;
        check_positive("arrival.burst_on_mean_s", self.burst_on_mean_s)?;
        check_positive("arrival.burst_off_mean_s", self.burst_off_mean_s)?;
        check_fraction(
            "arrival.burst_low_rate_fraction",
            self.burst_low_rate_fraction,
        )?;
        let mut prev = f64::NEG_INFINITY;
        for (i, seg) in self.schedule.iter().enumerate() {
            check_non_negative(&format!("arrival.schedule[{i}].start_s"), seg.start_s)?;
            check_non_negative(&format!("arrival.schedule[{i}].tps"), seg.tps)?;
            if seg.start_s <= prev {
                return Err(ConfigError::invalid(
                    format!("arrival.schedule[{i}].start_s"),
                    format!("must be greater than the previous segment's start ({prev})"),
                ));
            }
            prev = seg.start_s;
        }
        if self.process == ArrivalKind::Schedule && self.schedule.is_empty() {
            return Err(ConfigError::invalid(
                "arrival.schedule",
                "process is `schedule` but no segments are given",
            ));
        }
        if let Some(end) = self.end_s {
            check_non_negative("arrival.end_s", end)?;
        }
        if self.process == ArrivalKind::Closed && self.clients == 0 {
            return Err(ConfigError::invalid(
                "arrival.clients",
                "must be at least 1",
            ));
        }
        check_non_negative("arrival.think_time_ms", self.think_time_ms)?;
        Ok(())
    }
}
