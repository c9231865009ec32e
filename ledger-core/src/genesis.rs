//! Genesis configuration: the consortium's organisations, opening balances, insurer
//! coverage and claim limits, reference prices and fraud-rule parameters.
//!
//! Registry data (org kinds, limits, coverage, prices) is replicated read-only on every
//! shard; opening balances become `Account` keys on each organisation's home shard.
//! [`Genesis::hash`] commits to all of it and is anchored in every shard's genesis header.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::codec::{Decode, DecodeError, Encode, Reader, Sink, MAX_GENESIS_ENTRIES};
use crate::hashing::{keyed, GENESIS_KEY};
use crate::types::{AmountCents, Hash32, OrgId, OrgKind, PatientId};

/// Default fraud rule: a claim billing more than this multiple of its service code's
/// reference price is flagged.
pub const DEFAULT_FRAUD_PRICE_MULTIPLE: u32 = 3;
/// Default fraud rule: at most this many claims per (provider, patient, service day).
pub const DEFAULT_MAX_DAILY_CLAIMS: u32 = 4;

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
        self.orgs.sort_by_key(|o| o.id);
        for w in self.orgs.windows(2) {
            if w[0].id == w[1].id {
                return Err(GenesisError::DuplicateOrg(w[0].id));
            }
        }
        self.orgs
            .iter()
            .try_fold(0u64, |acc, o| acc.checked_add(o.opening_balance_cents))
            .ok_or(GenesisError::MoneyOverflow)?;
        self.coverage.sort();
        for w in self.coverage.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(GenesisError::DuplicateCoverage(w[0].0));
            }
        }
        for &(patient, payer) in &self.coverage {
            let ok = self
                .orgs
                .binary_search_by_key(&payer, |o| o.id)
                .map(|i| self.orgs[i].kind == OrgKind::Insurer);
            if ok != Ok(true) {
                return Err(GenesisError::PayerNotInsurer { patient, payer });
            }
        }
        self.reference_prices.sort();
        for w in self.reference_prices.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(GenesisError::DuplicatePrice(w[0].0));
            }
        }
        Ok(self)
    }

    /// The genesis hash: blake3 keyed by [`GENESIS_KEY`] over the canonical encoding.
    pub fn hash(&self) -> Hash32 {
        keyed(&GENESIS_KEY, &self.to_bytes())
    }

    /// Sum of all opening balances (the money supply, constant forever after).
    pub fn total_money(&self) -> u128 {
        self.orgs
            .iter()
            .map(|o| o.opening_balance_cents as u128)
            .sum()
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
            s.put(&p.0.to_le_bytes());
            s.put(&o.0.to_le_bytes());
        }
        s.put(&[self.implicit_coverage as u8]);
        s.put(&(self.reference_prices.len() as u32).to_le_bytes());
        for (c, p) in &self.reference_prices {
            s.put(&c.to_le_bytes());
            s.put(&p.to_le_bytes());
        }
        s.put(&self.fraud_price_multiple.to_le_bytes());
        s.put(&self.max_daily_claims.to_le_bytes());
    }
    fn encoded_len(&self) -> usize {
        4 + self.orgs.len() * 25
            + 4
            + self.coverage.len() * 16
            + 1
            + 4
            + self.reference_prices.len() * 12
            + 8
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
        let g = Genesis {
            orgs,
            coverage,
            implicit_coverage,
            reference_prices,
            fraud_price_multiple: r.u32()?,
            max_daily_claims: r.u32()?,
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

/// Lookup tables derived from a [`Genesis`], shared read-only by every shard.
#[derive(Debug)]
pub struct GenesisIndex {
    /// The configuration.
    pub genesis: Genesis,
    /// Its hash.
    pub hash: Hash32,
    orgs: FxHashMap<OrgId, OrgInfo>,
    coverage: FxHashMap<PatientId, OrgId>,
    prices: FxHashMap<u32, AmountCents>,
    insurers: Vec<OrgId>,
}

impl GenesisIndex {
    /// Builds the lookup tables.
    pub fn new(genesis: &Genesis) -> Arc<GenesisIndex> {
        let orgs: FxHashMap<_, _> = genesis.orgs.iter().map(|o| (o.id, *o)).collect();
        let insurers = genesis
            .orgs
            .iter()
            .filter(|o| o.kind == OrgKind::Insurer)
            .map(|o| o.id)
            .collect();
        Arc::new(GenesisIndex {
            genesis: genesis.clone(),
            hash: genesis.hash(),
            orgs,
            coverage: genesis.coverage.iter().copied().collect(),
            prices: genesis.reference_prices.iter().copied().collect(),
            insurers,
        })
    }
    /// A member's registry entry.
    #[inline]
    pub fn org(&self, id: OrgId) -> Option<&OrgInfo> {
        self.orgs.get(&id)
    }
    /// The payer covering `patient`, if any.
    pub fn payer_of(&self, patient: PatientId) -> Option<OrgId> {
        if let Some(p) = self.coverage.get(&patient) {
            return Some(*p);
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
