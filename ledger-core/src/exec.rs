//! Transaction execution rules: receipts, rejection reasons, and the per-shard executor.
//!
//! A shard executes only *its part* of a transaction: the keys it owns (see
//! [`crate::routing`]). For a single-shard transaction that is the whole transaction; for a
//! cross-shard one each involved shard validates and stages its own part during
//! [`crate::xshard::ShardOp::Prepare`], from its own state plus fields of the transaction:
//!
//! | tx | patient shard | org / package shard(s) |
//! |---|---|---|
//! | `ConsentGrant` | writes `Consent(patient, grantee)` | grantee: writes `GranteeIndex(grantee, patient)` |
//! | `ConsentRevoke` | consent must exist; removes it | grantee: index must exist; removes it |
//! | `ClaimPay` | claim Approved, parties match, amount == approved; → Paid | payer: balance ≥ amount, debit; provider: credit |
//! | `Payment` | — | from: balance ≥ amount, debit; to: credit |
//!
//! Under [`crate::AccountLocking::Escrow`] a prepared debit checks the *available* balance
//! and becomes a hold, and the credit is applied at commit (see [`crate::xshard`]).
//!
//! Rules are listed on [`RejectReason`] and in the functions below. Fraud rule (documented
//! and committed in genesis): a claim is `FraudSuspected` if its amount exceeds
//! `fraud_price_multiple ×` the service code's reference price, or if it would be claim
//! number `max_daily_claims + 1` (or later) by the same provider for the same patient on the
//! same service day.

use rustc_hash::FxHashMap;

use crate::genesis::GenesisIndex;
use crate::hashing::{keyed, AUDIT_KEY};
use crate::routing::{org_shard, package_shard, patient_shard};
use crate::state::{
    AuditEntry, ClaimEntry, ClaimStatus, ConsentEntry, Key, PackageEntry, PackageStatus,
    RecordEntry, State, StudyEntry, Value,
};
use crate::types::{
    AccessPurpose, AmountCents, ConsentScope, OrgId, OrgKind, PatientId, ShardId, SupplyEventKind,
    Tx,
};
use crate::xshard::{Vote, XId};

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident = $code:expr,)*) => {
        /// Why a transaction (or a shard's part of one) was rejected. Codes are stable
        /// (they are part of the receipt encoding).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RejectReason {
            $($(#[$doc])* $name,)*
        }
        impl RejectReason {
            /// Every reason, in code order.
            pub const ALL: &'static [RejectReason] = &[$(RejectReason::$name,)*];
            /// Stable one-byte code.
            pub fn code(self) -> u8 {
                match self { $(RejectReason::$name => $code,)* }
            }
            /// Reason for a code.
            pub fn from_code(code: u8) -> Option<RejectReason> {
                match code { $($code => Some(RejectReason::$name),)* _ => None }
            }
            /// Name of the reason (as in the source).
            pub fn name(self) -> &'static str {
                match self { $(RejectReason::$name => stringify!($name),)* }
            }
        }
    };
}

reasons! {
    /// An org named by the tx is not in the genesis registry.
    UnknownOrg = 1,
    /// An org of the wrong kind (e.g. a non-insurer as payer, a non-provider billing).
    WrongOrgKind = 2,
    /// The record does not exist.
    UnknownRecord = 3,
    /// The record/claim belongs to another patient than the tx says.
    PatientMismatch = 4,
    /// A record replace by an org that is neither custodian nor consented.
    NotCustodian = 5,
    /// Access without any consent (and not an emergency).
    NoConsent = 6,
    /// The consent expired (`at_ms ≥ expires_at_ms`).
    ConsentExpired = 7,
    /// The consent does not cover the needed scope.
    ConsentScopeInsufficient = 8,
    /// A grant with an empty or undefined scope.
    InvalidScope = 9,
    /// Revoke of a consent that does not exist.
    NoSuchConsent = 10,
    /// The study id is already anchored.
    DuplicateStudy = 11,
    /// A study with zero chunks or zero bytes.
    EmptyStudy = 12,
    /// The payer does not cover the patient.
    NotCovered = 13,
    /// The claim id already exists.
    DuplicateClaimId = 14,
    /// A claim for the same patient, service code and day exists.
    DuplicateClaim = 15,
    /// Amount over the payer's per-claim limit.
    OverClaimLimit = 16,
    /// The fraud rule fired (see module docs).
    FraudSuspected = 17,
    /// A zero amount where a positive one is needed.
    ZeroAmount = 18,
    /// The claim does not exist.
    UnknownClaim = 19,
    /// Adjudication by an org that is not the claim's payer.
    NotClaimPayer = 20,
    /// The claim is not in the state the tx needs.
    InvalidClaimState = 21,
    /// Approved amount above the billed amount.
    ApprovedOverBilled = 22,
    /// Payer/provider of a payment differ from the claim's.
    ClaimPartyMismatch = 23,
    /// Paid amount differs from the approved amount.
    AmountMismatch = 24,
    /// The paying account's balance is below the amount.
    InsufficientFunds = 25,
    /// A credit would overflow the receiving account.
    BalanceOverflow = 26,
    /// Payer and payee are the same account.
    SelfPayment = 27,
    /// The package does not exist.
    UnknownPackage = 28,
    /// The package serial is already commissioned.
    DuplicatePackage = 29,
    /// The actor does not hold the package.
    NotHolder = 30,
    /// The actor is not the shipment's addressee.
    NotAddressee = 31,
    /// Only a pharmacy may dispense.
    NotAPharmacy = 32,
    /// The package had a temperature excursion and may not be dispensed.
    Quarantined = 33,
    /// The supply event is not valid in the package's state.
    InvalidSupplyTransition = 34,
    /// A key the tx touches is locked by a prepared cross-shard tx (no-wait policy).
    KeyLocked = 35,
    /// The tx touches no key of this shard.
    WrongShard = 36,
    /// A cross-shard tx sent as a single-shard op (it needs Prepare/Commit).
    CrossShardTx = 37,
    /// A Prepare sent to a shard the tx does not involve.
    NotInvolved = 38,
    /// A Prepare reusing a pending xid.
    DuplicateXId = 39,
    /// Commit/Abort of an xid with nothing prepared on this shard.
    UnknownXId = 40,
    /// More pending cross-shard txs than the shard's limit.
    TooManyPending = 41,
}

/// The outcome of one op in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Receipt {
    /// Executed and applied.
    Accepted,
    /// A break-the-glass emergency access: allowed without consent, flagged and audited.
    AcceptedBreakGlass,
    /// Rejected. Nothing was applied, except that a `RecordAccess` is always audited.
    Rejected(RejectReason),
    /// A shard's vote on a `Prepare`.
    Vote(Vote),
    /// A `Commit` applied the staged writes.
    Committed,
    /// An `Abort` dropped the staged writes.
    Aborted,
}

impl Receipt {
    /// Whether the op took effect as asked (accepted, voted yes, committed or aborted).
    pub fn is_success(&self) -> bool {
        !matches!(self, Receipt::Rejected(_) | Receipt::Vote(Vote::No(_)))
    }
}

/// A write buffered during execution: `Some(v)` sets, `None` removes.
pub type Write = (Key, Option<Value>);

/// The account movements of one shard's part of a cross-shard tx under escrow: at most
/// one debit and one credit (every money-moving tx has one payer and one payee).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EscrowPart {
    /// Account debited and amount: moved into a hold at prepare, finalised at commit.
    pub debit: Option<(OrgId, AmountCents)>,
    /// Account credited and amount: applied at commit.
    pub credit: Option<(OrgId, AmountCents)>,
}

/// Execution context for one tx on one shard.
pub(crate) struct Ctx<'a> {
    pub state: &'a State,
    pub locks: &'a FxHashMap<Key, XId>,
    pub writes: &'a mut Vec<Write>,
    /// In prepare mode: every key read or written (to lock).
    pub touched: Option<&'a mut Vec<Key>>,
    /// Debits minus credits applied by this part (non-zero only for cross-shard parts).
    pub money_out: i128,
    /// In an escrow prepare ([`crate::shard::AccountLocking::Escrow`]): account debits and
    /// credits are recorded here instead of being written or locked.
    pub escrow: Option<&'a mut EscrowPart>,
    pub g: &'a GenesisIndex,
    pub shard: ShardId,
    pub shard_count: u32,
    pub now_ms: u64,
}

type R<T> = Result<T, RejectReason>;

impl Ctx<'_> {
    #[inline]
    fn check(&mut self, k: &Key) -> R<()> {
        if !self.locks.is_empty() && self.locks.contains_key(k) {
            return Err(RejectReason::KeyLocked);
        }
        if let Some(t) = self.touched.as_deref_mut() {
            t.push(*k);
        }
        Ok(())
    }
    #[inline]
    fn get(&mut self, k: Key) -> R<Option<Value>> {
        self.check(&k)?;
        if let Some((_, v)) = self.writes.iter().rev().find(|(wk, _)| *wk == k) {
            return Ok(*v);
        }
        Ok(self.state.get(&k).copied())
    }
    #[inline]
    fn set(&mut self, k: Key, v: Value) -> R<()> {
        self.check(&k)?;
        self.writes.push((k, Some(v)));
        Ok(())
    }
    #[inline]
    fn del(&mut self, k: Key) -> R<()> {
        self.check(&k)?;
        self.writes.push((k, None));
        Ok(())
    }
    #[inline]
    fn patient_here(&self, p: PatientId) -> bool {
        patient_shard(p, self.shard_count) == self.shard
    }
    #[inline]
    fn org_here(&self, o: OrgId) -> bool {
        org_shard(o, self.shard_count) == self.shard
    }
    #[inline]
    fn org(&self, o: OrgId) -> R<OrgKind> {
        self.g
            .org(o)
            .map(|i| i.kind)
            .ok_or(RejectReason::UnknownOrg)
    }
    fn balance(&mut self, o: OrgId) -> R<AmountCents> {
        match self.get(Key::Account(o))? {
            Some(Value::Balance(b)) => Ok(b),
            _ => Err(RejectReason::UnknownOrg),
        }
    }
    /// Available balance of `o` read without locking (escrow prepare).
    fn escrow_balance(&self, o: OrgId) -> R<AmountCents> {
        match self.state.get(&Key::Account(o)) {
            Some(Value::Balance(b)) => Ok(*b),
            _ => Err(RejectReason::UnknownOrg),
        }
    }
    fn debit(&mut self, o: OrgId, amount: AmountCents) -> R<()> {
        if self.escrow.is_some() {
            if self.escrow_balance(o)? < amount {
                return Err(RejectReason::InsufficientFunds);
            }
            let part = self.escrow.as_deref_mut().expect("escrow part present");
            assert!(
                part.debit.is_none(),
                "a tx part debited two accounts under escrow"
            );
            part.debit = Some((o, amount));
            return Ok(());
        }
        let b = self.balance(o)?;
        if b < amount {
            return Err(RejectReason::InsufficientFunds);
        }
        self.set(Key::Account(o), Value::Balance(b - amount))?;
        self.money_out += amount as i128;
        Ok(())
    }
    fn credit(&mut self, o: OrgId, amount: AmountCents) -> R<()> {
        if self.escrow.is_some() {
            // Early overflow check on the current balance; the credit itself lands at commit.
            self.escrow_balance(o)?
                .checked_add(amount)
                .ok_or(RejectReason::BalanceOverflow)?;
            let part = self.escrow.as_deref_mut().expect("escrow part present");
            assert!(
                part.credit.is_none(),
                "a tx part credited two accounts under escrow"
            );
            part.credit = Some((o, amount));
            return Ok(());
        }
        let b = self.balance(o)?;
        let nb = b.checked_add(amount).ok_or(RejectReason::BalanceOverflow)?;
        self.set(Key::Account(o), Value::Balance(nb))?;
        self.money_out -= amount as i128;
        Ok(())
    }
    fn consent_allows(
        &mut self,
        patient: PatientId,
        org: OrgId,
        scope: ConsentScope,
        at_ms: u64,
    ) -> R<()> {
        match self.get(Key::Consent(patient, org))? {
            Some(Value::Consent(c)) => {
                if !c.scope.contains(scope) {
                    Err(RejectReason::ConsentScopeInsufficient)
                } else if at_ms >= c.expires_at_ms {
                    Err(RejectReason::ConsentExpired)
                } else {
                    Ok(())
                }
            }
            _ => Err(RejectReason::NoConsent),
        }
    }
}

/// Calls `f` with the state keys that executing `tx` looks up first (on any shard; keys a
/// shard does not own are simply absent from its state). Used to warm the cache before a
/// block executes (see [`State::warm`]): a hint, never a decision, so a missing or
/// extra key changes speed only.
#[inline]
pub(crate) fn hot_keys(tx: &Tx, mut f: impl FnMut(Key)) {
    match *tx {
        Tx::RecordWrite { record, .. } => f(Key::Record(record)),
        Tx::RecordAccess {
            record,
            patient,
            accessor,
            ..
        } => {
            f(Key::Record(record));
            f(Key::Consent(patient, accessor));
            f(Key::Audit(patient));
        }
        Tx::ConsentGrant {
            patient, grantee, ..
        }
        | Tx::ConsentRevoke { patient, grantee } => {
            f(Key::Consent(patient, grantee));
            f(Key::GranteeIndex(grantee, patient));
        }
        Tx::ImagingAnchor { study, .. } => f(Key::Study(study)),
        Tx::ClaimSubmit {
            claim,
            patient,
            provider,
            service_code,
            service_day,
            ..
        } => {
            f(Key::Claim(claim));
            f(Key::ClaimDedup(patient, service_code, service_day));
            f(Key::ClaimDaily(patient, provider, service_day));
        }
        Tx::ClaimAdjudicate { claim, .. } => f(Key::Claim(claim)),
        Tx::ClaimPay {
            claim,
            payer,
            provider,
            ..
        } => {
            f(Key::Claim(claim));
            f(Key::Account(payer));
            f(Key::Account(provider));
        }
        Tx::Payment { from, to, .. } => {
            f(Key::Account(from));
            f(Key::Account(to));
        }
        Tx::Supply { package, .. } => f(Key::Package(package)),
    }
}

fn is_provider(k: OrgKind) -> bool {
    k != OrgKind::Insurer
}

/// Executes this shard's part of `tx`. `Ok(receipt)` means: apply the buffered writes
/// (the receipt may still be `Rejected` for an audited access); `Err` means: discard them.
pub(crate) fn execute(tx: &Tx, cx: &mut Ctx<'_>) -> R<Receipt> {
    use RejectReason as E;
    match *tx {
        Tx::RecordWrite {
            record,
            patient,
            author,
            resource,
            doc_hash,
            size_bytes,
        } => {
            if !is_provider(cx.org(author)?) {
                return Err(E::WrongOrgKind);
            }
            let existing = match cx.get(Key::Record(record))? {
                Some(Value::Record(r)) => Some(r),
                Some(_) => unreachable_value(),
                // A historic record (no state entry yet): version 1, held by the home
                // hospital since genesis.
                None => match cx.g.historic_record(record) {
                    Some((p, custodian)) => Some(RecordEntry {
                        patient: p,
                        custodian,
                        resource,
                        doc_hash: [0; 32],
                        size_bytes: 0,
                        version: 1,
                    }),
                    None if cx.g.is_historic_id(record) => return Err(E::UnknownRecord),
                    None => None,
                },
            };
            let entry = match existing {
                None => RecordEntry {
                    patient,
                    custodian: author,
                    resource,
                    doc_hash,
                    size_bytes,
                    version: 1,
                },
                Some(r) => {
                    if r.patient != patient {
                        return Err(E::PatientMismatch);
                    }
                    if r.custodian != author {
                        let now = cx.now_ms;
                        cx.consent_allows(patient, author, ConsentScope::READ_RECORDS, now)
                            .map_err(|e| {
                                if e == E::KeyLocked {
                                    e
                                } else {
                                    E::NotCustodian
                                }
                            })?;
                    }
                    RecordEntry {
                        resource,
                        doc_hash,
                        size_bytes,
                        version: r.version.saturating_add(1),
                        ..r
                    }
                }
            };
            cx.set(Key::Record(record), Value::Record(entry))?;
            Ok(Receipt::Accepted)
        }
        Tx::RecordAccess {
            record,
            patient,
            accessor,
            user,
            purpose,
            at_ms,
        } => {
            let outcome = access_decision(cx, record, patient, accessor, purpose, at_ms);
            let (otag, ocode) = match outcome {
                Ok(Receipt::AcceptedBreakGlass) => (1u8, 0u8),
                Ok(_) => (0, 0),
                Err(r) => (2, r.code()),
            };
            let prev = match cx.get(Key::Audit(patient))? {
                Some(Value::Audit(a)) => a,
                _ => AuditEntry {
                    count: 0,
                    head: [0; 32],
                },
            };
            // One blake3 block: the three one-byte fields tweak the key (see AuditEntry).
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&prev.head);
            buf[32..40].copy_from_slice(&record.0.to_le_bytes());
            buf[40..48].copy_from_slice(&accessor.0.to_le_bytes());
            buf[48..56].copy_from_slice(&user.0.to_le_bytes());
            buf[56..64].copy_from_slice(&at_ms.to_le_bytes());
            let mut key = AUDIT_KEY;
            key[29] = purpose as u8;
            key[30] = otag;
            key[31] = ocode;
            let head = keyed(&key, &buf);
            cx.set(
                Key::Audit(patient),
                Value::Audit(AuditEntry {
                    count: prev.count + 1,
                    head,
                }),
            )?;
            Ok(outcome.unwrap_or_else(Receipt::Rejected))
        }
        Tx::ConsentGrant {
            patient,
            grantee,
            scope,
            expires_at_ms,
        } => {
            cx.org(grantee)?;
            if scope.0 == 0 || scope.0 & !ConsentScope::ALL.0 != 0 {
                return Err(E::InvalidScope);
            }
            let entry = Value::Consent(ConsentEntry {
                scope,
                expires_at_ms,
            });
            if cx.patient_here(patient) {
                cx.set(Key::Consent(patient, grantee), entry)?;
            }
            if cx.org_here(grantee) {
                cx.set(Key::GranteeIndex(grantee, patient), entry)?;
            }
            Ok(Receipt::Accepted)
        }
        Tx::ConsentRevoke { patient, grantee } => {
            cx.org(grantee)?;
            if cx.patient_here(patient) {
                if cx.get(Key::Consent(patient, grantee))?.is_none() {
                    return Err(E::NoSuchConsent);
                }
                cx.del(Key::Consent(patient, grantee))?;
            }
            if cx.org_here(grantee) {
                if cx.get(Key::GranteeIndex(grantee, patient))?.is_none() {
                    return Err(E::NoSuchConsent);
                }
                cx.del(Key::GranteeIndex(grantee, patient))?;
            }
            Ok(Receipt::Accepted)
        }
        Tx::ImagingAnchor {
            study,
            patient,
            centre,
            modality,
            content_root,
            size_bytes,
            chunk_count,
        } => {
            if !matches!(cx.org(centre)?, OrgKind::Hospital | OrgKind::ImagingCentre) {
                return Err(E::WrongOrgKind);
            }
            if chunk_count == 0 || size_bytes == 0 {
                return Err(E::EmptyStudy);
            }
            if cx.get(Key::Study(study))?.is_some() {
                return Err(E::DuplicateStudy);
            }
            let v = StudyEntry {
                patient,
                centre,
                modality,
                content_root,
                size_bytes,
                chunk_count,
            };
            cx.set(Key::Study(study), Value::Study(v))?;
            Ok(Receipt::Accepted)
        }
        Tx::ClaimSubmit {
            claim,
            patient,
            provider,
            payer,
            service_code,
            service_day,
            amount_cents,
        } => {
            if !is_provider(cx.org(provider)?) || cx.org(payer)? != OrgKind::Insurer {
                return Err(E::WrongOrgKind);
            }
            if cx.g.payer_of(patient) != Some(payer) {
                return Err(E::NotCovered);
            }
            if amount_cents == 0 {
                return Err(E::ZeroAmount);
            }
            let limit =
                cx.g.org(payer)
                    .map(|o| o.per_claim_limit_cents)
                    .unwrap_or(0);
            if limit > 0 && amount_cents > limit {
                return Err(E::OverClaimLimit);
            }
            if cx.get(Key::Claim(claim))?.is_some() {
                return Err(E::DuplicateClaimId);
            }
            let dedup = Key::ClaimDedup(patient, service_code, service_day);
            if cx.get(dedup)?.is_some() {
                return Err(E::DuplicateClaim);
            }
            if let Some(price) = cx.g.reference_price(service_code) {
                if amount_cents as u128 > price as u128 * cx.g.genesis.fraud_price_multiple as u128
                {
                    return Err(E::FraudSuspected);
                }
            }
            let daily = Key::ClaimDaily(patient, provider, service_day);
            let n = match cx.get(daily)? {
                Some(Value::Count(n)) => n,
                _ => 0,
            };
            if n >= cx.g.genesis.max_daily_claims {
                return Err(E::FraudSuspected);
            }
            let entry = ClaimEntry {
                patient,
                provider,
                payer,
                service_code,
                service_day,
                billed_cents: amount_cents,
                approved_cents: 0,
                status: ClaimStatus::Submitted,
            };
            cx.set(Key::Claim(claim), Value::Claim(entry))?;
            cx.set(dedup, Value::ClaimRef(claim))?;
            cx.set(daily, Value::Count(n + 1))?;
            Ok(Receipt::Accepted)
        }
        Tx::ClaimAdjudicate {
            claim,
            patient,
            payer,
            approved_cents,
        } => {
            let c = match cx.get(Key::Claim(claim))? {
                Some(Value::Claim(c)) => c,
                _ => return Err(E::UnknownClaim),
            };
            if c.patient != patient {
                return Err(E::PatientMismatch);
            }
            if c.payer != payer {
                return Err(E::NotClaimPayer);
            }
            if c.status != ClaimStatus::Submitted {
                return Err(E::InvalidClaimState);
            }
            if approved_cents > c.billed_cents {
                return Err(E::ApprovedOverBilled);
            }
            let status = if approved_cents == 0 {
                ClaimStatus::Denied
            } else {
                ClaimStatus::Approved
            };
            cx.set(
                Key::Claim(claim),
                Value::Claim(ClaimEntry {
                    approved_cents,
                    status,
                    ..c
                }),
            )?;
            Ok(Receipt::Accepted)
        }
        Tx::ClaimPay {
            claim,
            patient,
            payer,
            provider,
            amount_cents,
        } => {
            if payer == provider {
                return Err(E::SelfPayment);
            }
            if cx.org(payer)? != OrgKind::Insurer || !is_provider(cx.org(provider)?) {
                return Err(E::WrongOrgKind);
            }
            if amount_cents == 0 {
                return Err(E::ZeroAmount);
            }
            if cx.patient_here(patient) {
                let c = match cx.get(Key::Claim(claim))? {
                    Some(Value::Claim(c)) => c,
                    _ => return Err(E::UnknownClaim),
                };
                if c.patient != patient {
                    return Err(E::PatientMismatch);
                }
                if c.payer != payer || c.provider != provider {
                    return Err(E::ClaimPartyMismatch);
                }
                if c.status != ClaimStatus::Approved {
                    return Err(E::InvalidClaimState);
                }
                if c.approved_cents != amount_cents {
                    return Err(E::AmountMismatch);
                }
                cx.set(
                    Key::Claim(claim),
                    Value::Claim(ClaimEntry {
                        status: ClaimStatus::Paid,
                        ..c
                    }),
                )?;
            }
            if cx.org_here(payer) {
                cx.debit(payer, amount_cents)?;
            }
            if cx.org_here(provider) {
                cx.credit(provider, amount_cents)?;
            }
            Ok(Receipt::Accepted)
        }
        Tx::Payment {
            from,
            to,
            amount_cents,
        } => {
            if from == to {
                return Err(E::SelfPayment);
            }
            cx.org(from)?;
            cx.org(to)?;
            if amount_cents == 0 {
                return Err(E::ZeroAmount);
            }
            if cx.org_here(from) {
                cx.debit(from, amount_cents)?;
            }
            if cx.org_here(to) {
                cx.credit(to, amount_cents)?;
            }
            Ok(Receipt::Accepted)
        }
        Tx::Supply {
            package,
            actor,
            event,
        } => {
            let actor_kind = cx.org(actor)?;
            debug_assert_eq!(package_shard(package, cx.shard_count), cx.shard);
            let key = Key::Package(package);
            let cur = match cx.get(key)? {
                Some(Value::Package(p)) => Some(p),
                _ => None,
            };
            let next = match (event, cur) {
                (SupplyEventKind::Commission { product }, None) => PackageEntry {
                    product,
                    holder: actor,
                    status: PackageStatus::Held,
                    excursions: 0,
                    last_excursion_x10: 0,
                },
                (SupplyEventKind::Commission { .. }, Some(_)) => return Err(E::DuplicatePackage),
                (_, None) => return Err(E::UnknownPackage),
                (SupplyEventKind::Ship { to }, Some(p)) => {
                    if p.status != PackageStatus::Held {
                        return Err(E::InvalidSupplyTransition);
                    }
                    if p.holder != actor {
                        return Err(E::NotHolder);
                    }
                    cx.org(to)?;
                    if to == actor {
                        return Err(E::InvalidSupplyTransition);
                    }
                    PackageEntry {
                        status: PackageStatus::InTransit { to },
                        ..p
                    }
                }
                (SupplyEventKind::Receive, Some(p)) => match p.status {
                    PackageStatus::InTransit { to } if to == actor => PackageEntry {
                        holder: actor,
                        status: PackageStatus::Held,
                        ..p
                    },
                    PackageStatus::InTransit { .. } => return Err(E::NotAddressee),
                    _ => return Err(E::InvalidSupplyTransition),
                },
                (SupplyEventKind::Dispense { patient }, Some(p)) => {
                    if p.status != PackageStatus::Held {
                        return Err(E::InvalidSupplyTransition);
                    }
                    if p.holder != actor {
                        return Err(E::NotHolder);
                    }
                    if actor_kind != OrgKind::Pharmacy {
                        return Err(E::NotAPharmacy);
                    }
                    if p.excursions > 0 {
                        return Err(E::Quarantined);
                    }
                    PackageEntry {
                        status: PackageStatus::Dispensed { patient },
                        ..p
                    }
                }
                (SupplyEventKind::TemperatureExcursion { celsius_x10 }, Some(p)) => {
                    let involved = match p.status {
                        PackageStatus::Held => p.holder == actor,
                        PackageStatus::InTransit { to } => p.holder == actor || to == actor,
                        PackageStatus::Dispensed { .. } => return Err(E::InvalidSupplyTransition),
                    };
                    if !involved {
                        return Err(E::NotHolder);
                    }
                    PackageEntry {
                        excursions: p.excursions.saturating_add(1),
                        last_excursion_x10: celsius_x10,
                        ..p
                    }
                }
            };
            cx.set(key, Value::Package(next))?;
            Ok(Receipt::Accepted)
        }
    }
}

/// A key held a value of another variant: impossible, each key kind stores one variant.
fn unreachable_value() -> ! {
    panic!("state invariant broken: a key holds a value of the wrong variant")
}

fn access_decision(
    cx: &mut Ctx<'_>,
    record: crate::types::RecordId,
    patient: PatientId,
    accessor: OrgId,
    purpose: AccessPurpose,
    at_ms: u64,
) -> R<Receipt> {
    cx.org(accessor)?;
    // A record in state, or else a historic one (exists at genesis by rule, custodian
    // the patient's home hospital: see `crate::genesis`).
    let (rec_patient, custodian) = match cx.get(Key::Record(record))? {
        Some(Value::Record(r)) => (r.patient, r.custodian),
        _ => {
            cx.g.historic_record(record)
                .ok_or(RejectReason::UnknownRecord)?
        }
    };
    if rec_patient != patient {
        return Err(RejectReason::PatientMismatch);
    }
    if custodian == accessor {
        return Ok(Receipt::Accepted);
    }
    match cx.consent_allows(patient, accessor, ConsentScope::READ_RECORDS, at_ms) {
        Ok(()) => Ok(Receipt::Accepted),
        Err(RejectReason::KeyLocked) => Err(RejectReason::KeyLocked),
        Err(_) if purpose == AccessPurpose::Emergency => Ok(Receipt::AcceptedBreakGlass),
        Err(e) => Err(e),
    }
}
