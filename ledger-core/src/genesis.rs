//! Genesis configuration: the consortium's organisations, opening balances, insurer
//! coverage and claim limits, reference prices and fraud-rule parameters.
//!
//! Registry data (org kinds, limits, coverage, prices) is replicated read-only on every
//! shard; opening balances become `Account` keys on each organisation's home shard.
//! [`Genesis::hash`] commits to all of it and is anchored in every shard's genesis header.
//!
//! # Historic records
//!
//! Real patients arrive with a history. With [`Genesis::historic_records`] set, every
//! patient `p < patients` has [`HistoricRecords::count`]`(p)` records that predate the
//! ledger. They are implicit: nothing is stored per patient, in genesis or in state. A
//! historic record's id carries [`HISTORIC_RECORD_BIT`], the patient and an ordinal
//! ([`HistoricRecords::record_id`]); it exists iff its patient is below `patients` and its
//! ordinal below the patient's count. Its custodian is the patient's home hospital under
//! the home rule [`round_robin_home`] (hospitals in id order, `p % hospitals`; with no
//! hospital, the first organisation), which the workload generator's consortium uses too.
//! Record ids without the bit are ordinary (created by a `RecordWrite`); with historic
//! records enabled, a write may replace a historic record (custodian or consent, as for
//! any record) but never create one in the historic id space.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::codec::{Decode, DecodeError, Encode, Reader, Sink, MAX_GENESIS_ENTRIES};
use crate::hashing::GENESIS_KEY;
use crate::types::{AmountCents, Hash32, OrgId, OrgKind, PatientId, RecordId};

/// Default fraud rule: a claim billing more than this multiple of its service code's
/// reference price is flagged.
pub const DEFAULT_FRAUD_PRICE_MULTIPLE: u32 = 3;
/// Default fraud rule: at most this many claims per (provider, patient, service day).
pub const DEFAULT_MAX_DAILY_CLAIMS: u32 = 4;

/// Marks a historic record id (see the module docs).
pub const HISTORIC_RECORD_BIT: u64 = 1 << 63;
/// Bits of a historic record id holding the ordinal (the patient is above them).
pub const HISTORIC_ORDINAL_BITS: u32 = 24;
/// Limit on historic records per patient (the ordinal field).
pub const MAX_HISTORIC_RECORDS_PER_PATIENT: u32 = 1 << HISTORIC_ORDINAL_BITS;
/// Limit on patients with historic records (the patient field below the bit).
pub const MAX_HISTORIC_PATIENTS: u64 = 1 << (63 - HISTORIC_ORDINAL_BITS);
/// Default fewest historic records of a patient: 1,000 FHIR resources, the low end of
/// the 1,000 to 2,000 resources per patient over a record's life (Smile CDR and Health
/// Samurai FHIR benchmarks, WORKLOADS.md).
pub const DEFAULT_HISTORIC_MIN_PER_PATIENT: u32 = 1_000;
/// Default most historic records of a patient: 2,000 (the high end, same source); the
/// count is uniform between the two, mean 1,500.
pub const DEFAULT_HISTORIC_MAX_PER_PATIENT: u32 = 2_000;

/// Records that exist at genesis without a state entry (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoricRecords {
    /// Patients `0..patients` have historic records.
    pub patients: u64,
    /// Fewest historic records a patient has.
    pub min_per_patient: u32,
    /// Most historic records a patient has (`min..=max`, uniform over patients by a hash).
    pub max_per_patient: u32,
}

impl HistoricRecords {
    /// Patients `0..patients` with the default count range (mean 1,500).
    pub fn with_defaults(patients: u64) -> HistoricRecords {
        HistoricRecords {
            patients,
            min_per_patient: DEFAULT_HISTORIC_MIN_PER_PATIENT,
            max_per_patient: DEFAULT_HISTORIC_MAX_PER_PATIENT,
        }
    }

    /// How many historic records `patient` has: `min + h(p) mod (max - min + 1)` with a
    /// fixed 64-bit mix `h` (uniform in `min..=max`), 0 for patients out of range.
    #[inline]
    pub fn count(&self, patient: PatientId) -> u32 {
        if patient.0 >= self.patients {
            return 0;
        }
        let span = (self.max_per_patient - self.min_per_patient) as u64 + 1;
        let h = mix64(patient.0 ^ 0x6869_7374_6f72_6963); // "historic"
        self.min_per_patient + ((h as u128 * span as u128) >> 64) as u32
    }

    /// The id of `patient`'s historic record `n` (whether or not it exists).
    #[inline]
    pub fn record_id(patient: PatientId, n: u32) -> RecordId {
        RecordId(
            HISTORIC_RECORD_BIT
                | ((patient.0 & (MAX_HISTORIC_PATIENTS - 1)) << HISTORIC_ORDINAL_BITS)
                | (n & (MAX_HISTORIC_RECORDS_PER_PATIENT - 1)) as u64,
        )
    }

    /// `(patient, ordinal)` of an id in the historic id space, `None` for other ids.
    #[inline]
    pub fn split(id: RecordId) -> Option<(PatientId, u32)> {
        if id.0 & HISTORIC_RECORD_BIT == 0 {
            return None;
        }
        let low = id.0 & !HISTORIC_RECORD_BIT;
        Some((
            PatientId(low >> HISTORIC_ORDINAL_BITS),
            (low & (MAX_HISTORIC_RECORDS_PER_PATIENT as u64 - 1)) as u32,
        ))
    }

    /// The patient of historic record `id` if it exists.
    #[inline]
    pub fn patient_of(&self, id: RecordId) -> Option<PatientId> {
        let (p, n) = Self::split(id)?;
        (n < self.count(p)).then_some(p)
    }
}

/// The home rule shared by genesis and the workload generator: patient `p`'s home is
/// `hospitals[p % hospitals.len()]` (hospitals in id order), or `fallback` (the first
/// organisation) when there is no hospital.
#[inline]
pub fn round_robin_home(hospitals: &[OrgId], fallback: OrgId, patient: PatientId) -> OrgId {
    if hospitals.is_empty() {
        fallback
    } else {
        hospitals[(patient.0 % hospitals.len() as u64) as usize]
    }
}

/// A fixed 64-bit finaliser (splitmix64's): part of the historic-records rule, never
/// change it without changing the genesis encoding.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One consortium member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrgInfo {
    /// Identifier.
    pub id: OrgId,
    /// Kind of organisation.
    pub kind: OrgKind,
    /// Balance of its account at genesis.
    pub opening_balance_cents: AmountCents,
    /// Insurers: largest amount one claim may bill (0 = no limit). Others: 0.
    pub per_claim_limit_cents: AmountCents,
}

/// The genesis configuration (tables sorted by key, no duplicates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    /// Members, sorted by id.
    pub orgs: Vec<OrgInfo>,
    /// Explicit coverage `(patient, payer)`, sorted by patient.
    pub coverage: Vec<(PatientId, OrgId)>,
    /// When true, a patient without explicit coverage is covered by the insurer at index
    /// `patient.0 % insurers` of the insurers sorted by id (lets simulations with millions
    /// of patients avoid a coverage table).
    pub implicit_coverage: bool,
    /// Reference prices `(service_code, cents)`, sorted by code.
    pub reference_prices: Vec<(u32, AmountCents)>,
    /// Fraud rule: flag a claim whose amount exceeds this multiple of the reference price.
    pub fraud_price_multiple: u32,
    /// Fraud rule: flag the claim that would exceed this many claims per (provider, patient, day).
    pub max_daily_claims: u32,
    /// Records that predate the ledger (see the module docs); `None`: none.
    pub historic_records: Option<HistoricRecords>,
}

/// An invalid genesis configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// Two members share an id.
    #[error("duplicate organisation {0:?}")]
    DuplicateOrg(OrgId),
    /// A patient was given two payers.
    #[error("patient {0:?} covered twice")]
    DuplicateCoverage(PatientId),
    /// Coverage names an org that is not an insurer.
    #[error("coverage of {patient:?} names {payer:?}, which is not an insurer")]
    PayerNotInsurer {
        /// The patient.
        patient: PatientId,
        /// The org named.
        payer: OrgId,
    },
    /// A reference price was given twice.
    #[error("service code {0} priced twice")]
    DuplicatePrice(u32),
    /// A table exceeds [`MAX_GENESIS_ENTRIES`].
    #[error("genesis table {0} exceeds {MAX_GENESIS_ENTRIES} entries")]
    TooLarge(&'static str),
    /// Opening balances overflow `u64`.
    #[error("total opening balances overflow u64")]
    MoneyOverflow,
    /// Historic records out of their limits, or without any organisation to hold them.
    #[error("historic records need min_per_patient <= max_per_patient <= {MAX_HISTORIC_RECORDS_PER_PATIENT}, patients <= {MAX_HISTORIC_PATIENTS} and at least one organisation")]
    InvalidHistoricRecords,
}

/// Builds a [`Genesis`] for tests and demos.
#[derive(Clone, Debug, Default)]
pub struct GenesisBuilder {
    orgs: Vec<OrgInfo>,
    coverage: Vec<(PatientId, OrgId)>,
    prices: Vec<(u32, AmountCents)>,
    implicit_coverage: bool,
    fraud_price_multiple: Option<u32>,
    max_daily_claims: Option<u32>,
    historic_records: Option<HistoricRecords>,
}

impl GenesisBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a non-insurer member.
    pub fn org(mut self, id: OrgId, kind: OrgKind, opening_balance_cents: AmountCents) -> Self {
        self.orgs.push(OrgInfo {
            id,
            kind,
            opening_balance_cents,
            per_claim_limit_cents: 0,
        });
        self
    }
    /// Adds an insurer with its per-claim limit (0 = none).
    pub fn insurer(
        mut self,
        id: OrgId,
        opening_balance_cents: AmountCents,
        per_claim_limit_cents: AmountCents,
    ) -> Self {
        self.orgs.push(OrgInfo {
            id,
            kind: OrgKind::Insurer,
            opening_balance_cents,
            per_claim_limit_cents,
        });
        self
    }
    /// Covers `patient` by `payer`.
    pub fn cover(mut self, patient: PatientId, payer: OrgId) -> Self {
        self.coverage.push((patient, payer));
        self
    }
    /// Covers every `(patient, payer)` of `coverage`, as many [`GenesisBuilder::cover`]
    /// calls would (without a copy when nothing is covered yet: a consortium covers up
    /// to millions of patients).
    pub fn cover_all(mut self, coverage: Vec<(PatientId, OrgId)>) -> Self {
        if self.coverage.is_empty() {
            self.coverage = coverage;
        } else {
            self.coverage.extend(coverage);
        }
        self
    }
    /// Sets a reference price for a service code.
    pub fn reference_price(mut self, service_code: u32, cents: AmountCents) -> Self {
        self.prices.push((service_code, cents));
        self
    }
    /// Enables implicit coverage (see [`Genesis::implicit_coverage`]).
    pub fn implicit_coverage(mut self, on: bool) -> Self {
        self.implicit_coverage = on;
        self
    }
    /// Overrides the fraud rule parameters.
    pub fn fraud_rule(mut self, price_multiple: u32, max_daily_claims: u32) -> Self {
        self.fraud_price_multiple = Some(price_multiple);
        self.max_daily_claims = Some(max_daily_claims);
        self
    }
    /// Sets the records that predate the ledger (see [`Genesis::historic_records`]).
    pub fn historic_records(mut self, historic: Option<HistoricRecords>) -> Self {
        self.historic_records = historic;
        self
    }
    /// Validates and builds.
    pub fn build(self) -> Result<Genesis, GenesisError> {
        let g = Genesis {
            orgs: self.orgs,
            coverage: self.coverage,
            implicit_coverage: self.implicit_coverage,
            reference_prices: self.prices,
            fraud_price_multiple: self
                .fraud_price_multiple
                .unwrap_or(DEFAULT_FRAUD_PRICE_MULTIPLE),
            max_daily_claims: self.max_daily_claims.unwrap_or(DEFAULT_MAX_DAILY_CLAIMS),
            historic_records: self.historic_records,
        };
        g.normalized()
    }
}

impl Genesis {
    /// Sorts the tables and checks the configuration.
    pub fn normalized(mut self) -> Result<Genesis, GenesisError> {
        if self.orgs.len() > MAX_GENESIS_ENTRIES {
            return Err(GenesisError::TooLarge("orgs"));
        }
        if self.coverage.len() > MAX_GENESIS_ENTRIES {
            return Err(GenesisError::TooLarge("coverage"));
        }
        if self.reference_prices.len() > MAX_GENESIS_ENTRIES {
            return Err(GenesisError::TooLarge("reference prices"));
        }
        if !self.orgs.is_sorted_by_key(|o| o.id) {
            self.orgs.sort_by_key(|o| o.id);
        }
        for w in self.orgs.windows(2) {
            if w[0].id == w[1].id {
                return Err(GenesisError::DuplicateOrg(w[0].id));
            }
        }
        self.orgs
            .iter()
            .try_fold(0u64, |acc, o| acc.checked_add(o.opening_balance_cents))
            .ok_or(GenesisError::MoneyOverflow)?;
        // Coverage tables are usually built in strictly increasing patient order (then
        // sorted, without duplicates), and they can hold millions of entries: sort and
        // look for duplicates only otherwise.
        if !self.coverage.windows(2).all(|w| w[0].0 < w[1].0) {
            self.coverage.sort();
            for w in self.coverage.windows(2) {
                if w[0].0 == w[1].0 {
                    return Err(GenesisError::DuplicateCoverage(w[0].0));
                }
            }
        }
        // Payers already checked, direct-mapped by id: a consortium has few insurers,
        // so nearly every entry is a cache hit instead of a binary search over `orgs`.
        let mut checked = [None::<OrgId>; PAYER_CHECK_CACHE];
        for &(patient, payer) in &self.coverage {
            let slot = &mut checked[(payer.0 % PAYER_CHECK_CACHE as u64) as usize];
            if *slot == Some(payer) {
                continue;
            }
            let ok = self
                .orgs
                .binary_search_by_key(&payer, |o| o.id)
                .map(|i| self.orgs[i].kind == OrgKind::Insurer);
            if ok != Ok(true) {
                return Err(GenesisError::PayerNotInsurer { patient, payer });
            }
            *slot = Some(payer);
        }
        if let Some(h) = self.historic_records {
            if h.min_per_patient > h.max_per_patient
                || h.max_per_patient > MAX_HISTORIC_RECORDS_PER_PATIENT
                || h.patients > MAX_HISTORIC_PATIENTS
                || self.orgs.is_empty()
            {
                return Err(GenesisError::InvalidHistoricRecords);
            }
        }
        if !self.reference_prices.is_sorted() {
            self.reference_prices.sort();
        }
        for w in self.reference_prices.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(GenesisError::DuplicatePrice(w[0].0));
            }
        }
        Ok(self)
    }

    /// The genesis hash: blake3 keyed by [`GENESIS_KEY`] over the canonical encoding.
    ///
    /// The encoding is streamed into the hasher through a [`HASH_CHUNK_BYTES`] buffer
    /// rather than built whole (16 MB for a million covered patients); blake3 is a
    /// streaming hash, so the value is that of `keyed(&GENESIS_KEY, &self.to_bytes())`.
    pub fn hash(&self) -> Hash32 {
        let mut sink = HashSink::new(&GENESIS_KEY);
        self.encode_to(&mut sink);
        sink.finish()
    }

    /// Sum of all opening balances (the money supply, constant forever after).
    pub fn total_money(&self) -> u128 {
        self.orgs
            .iter()
            .map(|o| o.opening_balance_cents as u128)
            .sum()
    }
}

/// Distinct payers [`Genesis::normalized`] remembers as checked, and `CoverageIndex`
/// remembers the number of (direct-mapped by id).
const PAYER_CHECK_CACHE: usize = 64;

/// Bytes of encoding [`Genesis::hash`] buffers before feeding the hasher: large enough
/// for blake3's wide SIMD path (many 1 KiB chunks at once), small enough for L2.
const HASH_CHUNK_BYTES: usize = 64 * 1024;

/// A [`Sink`] that feeds a blake3 hasher whole [`HASH_CHUNK_BYTES`] buffers (every
/// update then starts at a multiple of it, where blake3 hashes the largest subtrees at
/// once), then the rest in [`HashSink::finish`].
struct HashSink {
    hasher: blake3::Hasher,
    buf: Box<[u8; HASH_CHUNK_BYTES]>,
    len: usize,
}

impl HashSink {
    fn new(key: &[u8; 32]) -> HashSink {
        HashSink {
            hasher: blake3::Hasher::new_keyed(key),
            buf: Box::new([0; HASH_CHUNK_BYTES]),
            len: 0,
        }
    }

    /// Fills the buffer from `bytes`, hashing it each time it is full.
    #[cold]
    fn put_across(&mut self, mut bytes: &[u8]) {
        while self.len + bytes.len() >= HASH_CHUNK_BYTES {
            let (head, rest) = bytes.split_at(HASH_CHUNK_BYTES - self.len);
            self.buf[self.len..].copy_from_slice(head);
            self.hasher.update(&self.buf[..]);
            self.len = 0;
            bytes = rest;
        }
        self.buf[..bytes.len()].copy_from_slice(bytes);
        self.len = bytes.len();
    }

    fn finish(mut self) -> Hash32 {
        self.hasher.update(&self.buf[..self.len]);
        *self.hasher.finalize().as_bytes()
    }
}

impl Sink for HashSink {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if end < HASH_CHUNK_BYTES {
            // The common case: a field of a few bytes (a constant length once inlined).
            self.buf[self.len..end].copy_from_slice(bytes);
            self.len = end;
        } else {
            self.put_across(bytes);
        }
    }
}

fn org_kind_tag(k: OrgKind) -> u8 {
    match k {
        OrgKind::Hospital => 0,
        OrgKind::ImagingCentre => 1,
        OrgKind::Insurer => 2,
        OrgKind::Pharmacy => 3,
    }
}

impl Encode for Genesis {
    fn encode_to<S: Sink>(&self, s: &mut S) {
        s.put(&(self.orgs.len() as u32).to_le_bytes());
        for o in &self.orgs {
            s.put(&o.id.0.to_le_bytes());
            s.put(&[org_kind_tag(o.kind)]);
            s.put(&o.opening_balance_cents.to_le_bytes());
            s.put(&o.per_claim_limit_cents.to_le_bytes());
        }
        s.put(&(self.coverage.len() as u32).to_le_bytes());
        for (p, o) in &self.coverage {
            // One put per entry (there can be millions): the same bytes as two.
            let mut entry = [0u8; 16];
            entry[..8].copy_from_slice(&p.0.to_le_bytes());
            entry[8..].copy_from_slice(&o.0.to_le_bytes());
            s.put(&entry);
        }
        s.put(&[self.implicit_coverage as u8]);
        s.put(&(self.reference_prices.len() as u32).to_le_bytes());
        for (c, p) in &self.reference_prices {
            s.put(&c.to_le_bytes());
            s.put(&p.to_le_bytes());
        }
        s.put(&self.fraud_price_multiple.to_le_bytes());
        s.put(&self.max_daily_claims.to_le_bytes());
        match self.historic_records {
            None => s.put(&[0]),
            Some(h) => {
                s.put(&[1]);
                s.put(&h.patients.to_le_bytes());
                s.put(&h.min_per_patient.to_le_bytes());
                s.put(&h.max_per_patient.to_le_bytes());
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.orgs.len() * 25
            + 4
            + self.coverage.len() * 16
            + 1
            + 4
            + self.reference_prices.len() * 12
            + 8
            + 1
            + if self.historic_records.is_some() {
                16
            } else {
                0
            }
    }
}

impl Decode for Genesis {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count("genesis orgs", MAX_GENESIS_ENTRIES.min(r.remaining() / 25))?;
        let mut orgs = Vec::with_capacity(n);
        for _ in 0..n {
            let id = OrgId(r.u64()?);
            let offset = r.offset();
            let kind = match r.u8()? {
                0 => OrgKind::Hospital,
                1 => OrgKind::ImagingCentre,
                2 => OrgKind::Insurer,
                3 => OrgKind::Pharmacy,
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "org kind",
                        tag,
                        offset,
                    })
                }
            };
            orgs.push(OrgInfo {
                id,
                kind,
                opening_balance_cents: r.u64()?,
                per_claim_limit_cents: r.u64()?,
            });
        }
        let n = r.count(
            "genesis coverage",
            MAX_GENESIS_ENTRIES.min(r.remaining() / 16),
        )?;
        let mut coverage = Vec::with_capacity(n);
        for _ in 0..n {
            coverage.push((PatientId(r.u64()?), OrgId(r.u64()?)));
        }
        let offset = r.offset();
        let implicit_coverage = match r.u8()? {
            0 => false,
            1 => true,
            _ => {
                return Err(DecodeError::Invalid {
                    what: "implicit coverage flag",
                    offset,
                })
            }
        };
        let n = r.count(
            "genesis reference prices",
            MAX_GENESIS_ENTRIES.min(r.remaining() / 12),
        )?;
        let mut reference_prices = Vec::with_capacity(n);
        for _ in 0..n {
            reference_prices.push((r.u32()?, r.u64()?));
        }
        let fraud_price_multiple = r.u32()?;
        let max_daily_claims = r.u32()?;
        let offset = r.offset();
        let historic_records = match r.u8()? {
            0 => None,
            1 => Some(HistoricRecords {
                patients: r.u64()?,
                min_per_patient: r.u32()?,
                max_per_patient: r.u32()?,
            }),
            _ => {
                return Err(DecodeError::Invalid {
                    what: "historic records flag",
                    offset,
                })
            }
        };
        let g = Genesis {
            orgs,
            coverage,
            implicit_coverage,
            reference_prices,
            fraud_price_multiple,
            max_daily_claims,
            historic_records,
        };
        let offset = r.offset();
        let normal = g.clone().normalized().map_err(|_| DecodeError::Invalid {
            what: "genesis tables",
            offset,
        })?;
        if normal != g {
            return Err(DecodeError::Invalid {
                what: "genesis table order",
                offset,
            });
        }
        Ok(g)
    }
}

/// Patient ids a dense coverage table may span beyond twice its entries (see
/// `CoverageIndex` in this module).
pub const DENSE_COVERAGE_SLACK: u64 = 1 << 16;

/// Explicit coverage, looked up by patient. Patient ids are usually dense (`0..n`): then
/// a table indexed by patient id holds a 4-byte payer number per patient (4 MB for a
/// million patients, built in one linear pass), instead of a hash map of 16-byte pairs
/// that costs a million inserts to build and a cache miss per lookup in a bigger
/// structure. Sparse ids (the largest id at least twice the entry count plus
/// [`DENSE_COVERAGE_SLACK`]) use a hash map. Both give the last entry for a patient
/// listed twice (a normalized genesis has none).
#[derive(Debug)]
enum CoverageIndex {
    Dense {
        /// `payer_number[patient]`: 0 uncovered, else 1 + index into `payers`.
        payer_number: Vec<u32>,
        payers: Vec<OrgId>,
    },
    Sparse(FxHashMap<PatientId, OrgId>),
}

impl CoverageIndex {
    fn new(coverage: &[(PatientId, OrgId)]) -> CoverageIndex {
        let max_id = coverage.iter().map(|(p, _)| p.0).max();
        let dense = max_id.is_some_and(|m| {
            m < (coverage.len() as u64).saturating_mul(2) + DENSE_COVERAGE_SLACK
                && coverage.len() < u32::MAX as usize
        });
        if !dense {
            return CoverageIndex::Sparse(coverage.iter().copied().collect());
        }
        let span = max_id.map_or(0, |m| m as usize + 1);
        let mut payer_number = vec![0u32; span];
        let mut payers: Vec<OrgId> = Vec::new();
        let mut number_of: FxHashMap<OrgId, u32> = FxHashMap::default();
        // Payer numbers already looked up, direct-mapped by id: nearly every entry hits
        // (a consortium has few insurers) and skips the hash map.
        let mut recent = [None::<(OrgId, u32)>; PAYER_CHECK_CACHE];
        for &(p, o) in coverage {
            let slot = &mut recent[(o.0 % PAYER_CHECK_CACHE as u64) as usize];
            let n = match *slot {
                Some((payer, n)) if payer == o => n,
                _ => {
                    let n = *number_of.entry(o).or_insert_with(|| {
                        payers.push(o);
                        payers.len() as u32
                    });
                    *slot = Some((o, n));
                    n
                }
            };
            payer_number[p.0 as usize] = n;
        }
        CoverageIndex::Dense {
            payer_number,
            payers,
        }
    }
    #[inline]
    fn get(&self, patient: PatientId) -> Option<OrgId> {
        match self {
            CoverageIndex::Dense {
                payer_number,
                payers,
            } => match payer_number.get(usize::try_from(patient.0).ok()?) {
                Some(&n) if n > 0 => Some(payers[n as usize - 1]),
                _ => None,
            },
            CoverageIndex::Sparse(m) => m.get(&patient).copied(),
        }
    }
}

/// Lookup tables derived from a [`Genesis`], shared read-only by every shard.
#[derive(Debug)]
pub struct GenesisIndex {
    /// The configuration.
    pub genesis: Genesis,
    /// Its hash.
    pub hash: Hash32,
    orgs: FxHashMap<OrgId, OrgInfo>,
    coverage: CoverageIndex,
    prices: FxHashMap<u32, AmountCents>,
    insurers: Vec<OrgId>,
    hospitals: Vec<OrgId>,
}

impl GenesisIndex {
    /// Builds the lookup tables (over a copy of `genesis`).
    pub fn new(genesis: &Genesis) -> Arc<GenesisIndex> {
        Self::from_genesis(genesis.clone())
    }

    /// Builds the lookup tables, keeping `genesis` (no copy of its tables, which can
    /// hold millions of coverage entries).
    pub fn from_genesis(genesis: Genesis) -> Arc<GenesisIndex> {
        let orgs: FxHashMap<_, _> = genesis.orgs.iter().map(|o| (o.id, *o)).collect();
        let insurers = genesis
            .orgs
            .iter()
            .filter(|o| o.kind == OrgKind::Insurer)
            .map(|o| o.id)
            .collect();
        let hospitals = genesis
            .orgs
            .iter()
            .filter(|o| o.kind == OrgKind::Hospital)
            .map(|o| o.id)
            .collect();
        Arc::new(GenesisIndex {
            hash: genesis.hash(),
            orgs,
            coverage: CoverageIndex::new(&genesis.coverage),
            prices: genesis.reference_prices.iter().copied().collect(),
            insurers,
            hospitals,
            genesis,
        })
    }
    /// Patient `p`'s home hospital by [`round_robin_home`] (`None` without organisations).
    #[inline]
    pub fn home_hospital(&self, patient: PatientId) -> Option<OrgId> {
        let first = self.genesis.orgs.first()?.id;
        Some(round_robin_home(&self.hospitals, first, patient))
    }
    /// `(patient, custodian)` of historic record `id` if it exists at genesis (see the
    /// module docs); `None` for every other id.
    #[inline]
    pub fn historic_record(&self, id: RecordId) -> Option<(PatientId, OrgId)> {
        let p = self.genesis.historic_records?.patient_of(id)?;
        Some((p, self.home_hospital(p)?))
    }
    /// Whether `id` lies in the historic id space of this genesis (which writes may not
    /// create records in).
    #[inline]
    pub fn is_historic_id(&self, id: RecordId) -> bool {
        self.genesis.historic_records.is_some() && id.0 & HISTORIC_RECORD_BIT != 0
    }
    /// A member's registry entry.
    #[inline]
    pub fn org(&self, id: OrgId) -> Option<&OrgInfo> {
        self.orgs.get(&id)
    }
    /// The payer covering `patient`, if any.
    #[inline]
    pub fn payer_of(&self, patient: PatientId) -> Option<OrgId> {
        if let Some(p) = self.coverage.get(patient) {
            return Some(p);
        }
        if self.genesis.implicit_coverage && !self.insurers.is_empty() {
            return Some(self.insurers[(patient.0 % self.insurers.len() as u64) as usize]);
        }
        None
    }
    /// Reference price of a service code.
    #[inline]
    pub fn reference_price(&self, service_code: u32) -> Option<AmountCents> {
        self.prices.get(&service_code).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn check(coverage: &[(PatientId, OrgId)], want_dense: bool) {
        let idx = CoverageIndex::new(coverage);
        assert_eq!(matches!(idx, CoverageIndex::Dense { .. }), want_dense);
        let model: BTreeMap<PatientId, OrgId> = coverage.iter().copied().collect();
        let top = coverage.iter().map(|(p, _)| p.0).max().unwrap_or(0);
        let near = coverage
            .iter()
            .flat_map(|(p, _)| [p.0.saturating_sub(1), p.0, p.0 + 1]);
        let probes = (0..(top + 3).min(5000)).chain(near).chain([
            top + 1,
            u64::MAX,
            top + DENSE_COVERAGE_SLACK * 4,
        ]);
        for p in probes {
            let p = PatientId(p);
            assert_eq!(idx.get(p), model.get(&p).copied(), "{p:?}");
        }
    }

    #[test]
    fn streamed_hash_is_the_hash_of_the_encoding() {
        // Encodings shorter than, equal to and several times HASH_CHUNK_BYTES (16 bytes
        // per coverage entry), with the chunk boundary falling inside an entry.
        for patients in [0u64, 3, 4_000, 4_095, 20_000, 70_001] {
            let mut b = GenesisBuilder::new()
                .org(OrgId(0), OrgKind::Hospital, 5)
                .insurer(OrgId(1), 7, 100)
                .insurer(OrgId(2), 9, 0)
                .reference_price(3, 40);
            for p in 0..patients {
                b = b.cover(PatientId(p), OrgId(1 + p % 2));
            }
            let g = b.build().expect("valid genesis");
            assert_eq!(
                g.hash(),
                crate::hashing::keyed(&GENESIS_KEY, &g.to_bytes()),
                "{patients} patients"
            );
        }
    }

    #[test]
    fn normalized_sorts_and_checks_unsorted_tables() {
        let g = GenesisBuilder::new()
            .insurer(OrgId(9), 1, 0)
            .org(OrgId(2), OrgKind::Hospital, 1)
            .insurer(OrgId(5), 1, 0)
            .cover(PatientId(3), OrgId(9))
            .cover_all(vec![(PatientId(7), OrgId(9)), (PatientId(1), OrgId(5))])
            .reference_price(8, 1)
            .reference_price(2, 1)
            .build()
            .expect("valid genesis");
        let ids: Vec<u64> = g.orgs.iter().map(|o| o.id.0).collect();
        assert_eq!(ids, [2, 5, 9]);
        let patients: Vec<u64> = g.coverage.iter().map(|c| c.0 .0).collect();
        assert_eq!(patients, [1, 3, 7]);
        assert_eq!(g.reference_prices, [(2, 1), (8, 1)]);
        // Duplicates, in order and out of order.
        for (patients, dup) in [([1, 2, 2, 3], 2), ([4, 2, 9, 4], 4)] {
            let mut b = GenesisBuilder::new().insurer(OrgId(1), 1, 0);
            for p in patients {
                b = b.cover(PatientId(p), OrgId(1));
            }
            assert_eq!(
                b.build(),
                Err(GenesisError::DuplicateCoverage(PatientId(dup)))
            );
        }
        // A payer that is not an insurer is refused even after insurers were checked
        // (the check remembers payers; it must not remember a wrong one).
        let bad = GenesisBuilder::new()
            .insurer(OrgId(1), 1, 0)
            .org(OrgId(1 + PAYER_CHECK_CACHE as u64), OrgKind::Hospital, 1)
            .cover(PatientId(0), OrgId(1))
            .cover(PatientId(1), OrgId(1 + PAYER_CHECK_CACHE as u64))
            .build();
        assert_eq!(
            bad,
            Err(GenesisError::PayerNotInsurer {
                patient: PatientId(1),
                payer: OrgId(1 + PAYER_CHECK_CACHE as u64)
            })
        );
    }

    #[test]
    fn dense_and_sparse_coverage_agree_with_a_map() {
        // Payers 7 and 7 + 64 share a slot of the payer-number cache.
        let payers = [OrgId(7), OrgId(3), OrgId(1 << 40), OrgId(7 + 64)];
        // Dense: ids 0..2000 with gaps, four payers, and one patient listed twice
        // (the last entry wins, as for a map built from the list).
        let mut dense: Vec<(PatientId, OrgId)> = (0..2000u64)
            .filter(|p| p % 5 != 3)
            .map(|p| (PatientId(p), payers[(p * 7 % 4) as usize]))
            .collect();
        dense.push((PatientId(10), OrgId(99)));
        check(&dense, true);
        // Sparse: ids far apart.
        let sparse: Vec<(PatientId, OrgId)> = (0..50u64)
            .map(|i| (PatientId(i * 1_000_003 + 17), payers[(i % 3) as usize]))
            .collect();
        check(&sparse, false);
        check(&[], false);
    }
}
