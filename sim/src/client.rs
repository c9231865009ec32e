//! The client layer: the workload's transaction stream, routing to shards,
//! client-led two-phase commit for cross-shard transactions, and the operation
//! arena that protocols see through [`crate::protocol::TxRef`].
//!
//! Each generated transaction becomes one *client transaction* ([`ClientTx`]);
//! each client transaction has one or more *operations* ([`Op`]), each ordered by
//! one shard's consensus:
//! - a single-shard transaction is one `ShardOp::Tx` on its shard;
//! - a cross-shard transaction (`ledger_core::shards_of` returns more than one
//!   shard) is one `ShardOp::Prepare` per involved shard; when every prepare has
//!   been executed the client decides — commit if every shard voted yes, abort
//!   otherwise — and submits a `ShardOp::Commit` to every shard (or a
//!   `ShardOp::Abort` to every shard that voted yes). The transaction is final
//!   when every decision operation has been executed. The client sits with the
//!   gateway, so the decision is submitted when the last vote is executed.
//!
//! Two-phase commit design (client-led, as OmniLedger's Atomix): the client is the
//! coordinator; each phase's operations are ordered by every involved shard's own
//! consensus, so a vote or decision is as durable as the shard's blocks. The client
//! keeps no lock and no state the shards depend on: if it resends, execution
//! deduplicates by operation id. Locks are no-wait (ledger-core `xshard`), so there
//! is no deadlock, and contention shows as aborts.
//!
//! Resends (`client_timeout_ms`, `client_retries`): an operation not executed within the
//! timeout is sent again, to the *next* gateway of the shard's committee (the gateway of
//! attempt `a` is `committee[(client + a) mod N]`), so a crashed gateway does not stall a
//! cross-shard transaction half-prepared.
//!
//! [`CrossShardShaper`] makes the measured cross-shard share track `cross_shard_fraction`.

use ledger_core::types::{OrgId, PatientId, ShardId, Tx};
use ledger_core::{ShardOp, XId};
use rustc_hash::FxHashMap;
use simrand::Stream;
use workloads::{Consortium, TxRequest, WorkloadKind};

/// Outcome of a client transaction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Submitted, not yet final.
    Pending,
    /// Ordered and accepted by the ledger.
    Committed,
    /// Ordered but rejected by a ledger rule (final, counted as committed too).
    Rejected,
    /// Cross-shard transaction aborted by the atomic commit.
    Aborted,
}

/// One operation in the arena (what a [`crate::protocol::TxRef`] points at).
#[derive(Clone, Debug)]
pub struct Op {
    /// The ledger operation.
    pub op: ShardOp,
    /// The client transaction this operation belongs to.
    pub client_tx: u32,
    /// The shard that orders it.
    pub shard: u32,
    /// Bytes on the wire (encoded operation plus any payload).
    pub size_bytes: u32,
    /// Executed already (a second ordering is ignored).
    pub executed: bool,
}

/// Phase of a cross-shard transaction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Single-shard transaction.
    Single,
    /// Waiting for prepare votes: (votes in, of which yes).
    Preparing {
        /// Votes executed so far.
        votes: u8,
        /// Yes votes so far (bit per involved shard index).
        yes_mask: u8,
    },
    /// Decision submitted; waiting for `remaining` decision operations.
    Deciding {
        /// Whether the decision is commit.
        commit: bool,
        /// Decision operations not yet executed.
        remaining: u8,
    },
    /// Final.
    Done,
}

/// One client transaction.
#[derive(Clone, Debug)]
pub struct ClientTx {
    /// Submission time.
    pub submit_ns: u64,
    /// First inclusion in a block (longest-chain protocols), if any.
    pub included_ns: Option<u64>,
    /// Final time.
    pub done_ns: Option<u64>,
    /// Outcome.
    pub status: TxStatus,
    /// The workload's transaction kind.
    pub kind: WorkloadKind,
    /// The submitting client.
    pub client: u32,
    /// Involved shards (first `n_shards` entries).
    pub shards: [u32; ledger_core::routing::MAX_SHARDS_PER_TX],
    /// Number of involved shards.
    pub n_shards: u8,
    /// Two-phase-commit progress.
    pub phase: Phase,
    /// Off-chain payload bytes carried with the transaction.
    pub payload_bytes: u64,
}

impl ClientTx {
    /// Whether the transaction touches more than one shard.
    pub fn cross_shard(&self) -> bool {
        self.n_shards > 1
    }

    /// The involved shards.
    pub fn shard_list(&self) -> &[u32] {
        &self.shards[..self.n_shards as usize]
    }
}

/// Encoded size of an operation on the wire: its canonical encoding plus a
/// 64-byte client signature.
pub fn op_size_bytes(op: &ShardOp) -> u64 {
    op.encoded_len() as u64 + CLIENT_SIGNATURE_BYTES
}

/// Bytes of the client's signature carried with every operation (ed25519).
pub const CLIENT_SIGNATURE_BYTES: u64 = 64;

/// The cross-shard transaction id of client transaction `i`.
pub fn xid_of(client_tx: u32) -> XId {
    XId(u64::from(client_tx))
}

/// Debt (cross-shard transactions owed to the target) at which the shaper replaces a
/// single-shard request by a cross-shard payment. Natively cross-shard requests are kept
/// from a debt of ½, so while the workload supplies enough of them none is injected; the
/// running count stays within this many transactions of `target × n`.
pub const INJECT_DEBT: f64 = 4.0;

/// Most patients the shaper probes when it looks for a patient homed on a given shard
/// (a named limit; with `S` shards about `S` probes are needed on average).
pub const MAX_REHOME_PROBES: u64 = 4096;

/// What the shaper did to one request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Shaped {
    /// Left as the workload made it.
    Kept,
    /// A natively cross-shard transaction made single-shard by re-homing.
    Rehomed,
    /// A single-shard request replaced by a cross-shard payment.
    Injected,
}

/// Counters of the cross-shard shaper (whole run).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ShaperStats {
    /// Requests seen.
    pub seen: u64,
    /// Requests that left the shaper cross-shard.
    pub cross: u64,
    /// Natively cross-shard requests made single-shard.
    pub rehomed: u64,
    /// Single-shard requests replaced by a cross-shard payment.
    pub injected: u64,
    /// Natively cross-shard requests the shaper wanted single-shard but could not
    /// re-home (claim payments, patients already seen on their own shard, payers
    /// alone on their shard).
    pub not_rehomable: u64,
}

/// The cross-shard shaper (`cross_shard_fraction`): decides, request by request, whether
/// a transaction leaves the client cross-shard, so that the running share of
/// cross-shard transactions tracks the target.
///
/// # Rule (deterministic; error diffusion)
/// Before request `n+1`, with `c` of the first `n` requests cross-shard, the *debt* is
/// `target·(n+1) − c`. A natively cross-shard request whose debt is below ½ is
/// **re-homed** (made single-shard); a natively single-shard request whose debt is at
/// least [`INJECT_DEBT`] is replaced by a cross-shard **payment**. So `c` stays within
/// [`INJECT_DEBT`] of `target·n` whenever requests can be shaped, the workload's own
/// cross-shard transactions are used first, and the measured fraction
/// tracks the target whatever the workload's natural share (which depends on `S`). Only the
/// payment's counterparty and amount draw from the stream `client/cross-shard`.
///
/// # Re-homing
/// Re-homing moves a transaction's *secondary* keys to its primary key's shard, keeping its
/// kind, size and parties' roles:
/// - a consent grant or revoke `(patient p, grantee g)`: the patient is re-homed onto `g`'s
///   shard as patient `p' = p + k·H` (`H` = hospitals, so `p'` has the same home hospital;
///   the smallest `k ≥ 1` with `patient_shard(p') = org_shard(g)`). The map `p → p'` is
///   sticky and applied to *every* later transaction naming `p` (records, reads, imaging,
///   claims), so the patient's history stays consistent on one shard. Only a patient not
///   yet seen can be re-homed (its earlier records live on its own shard); every patient
///   the shaper sees unmapped is pinned to itself.
/// - a payment `(from, to)`: the payee is replaced by another organisation homed on the
///   payer's shard, if there is one.
/// - a claim payment touches the patient's shard and the payer's and provider's accounts:
///   it cannot be re-homed; its share is a floor for the measured fraction.
///
/// This models data placement that co-locates a patient with the hospital that holds
/// their consent (what a by-organisation committee assignment suggests), not a change of
/// workload: the same transactions of the same sizes run, between different entities.
pub struct CrossShardShaper {
    target: f64,
    shards: u32,
    rng: Stream,
    /// Organisations by home shard.
    by_shard: Vec<Vec<OrgId>>,
    /// Whether a cross-shard payment can be made (two shards home organisations).
    can_inject: bool,
    patients: u64,
    stride: u64,
    /// Patient → the patient it is re-homed as (itself when pinned). Lookups only.
    rehome: FxHashMap<u64, u64>,
    /// Counters.
    pub stats: ShaperStats,
}

impl CrossShardShaper {
    /// A shaper toward `target` over `shards` shards for `consortium`; `None` when it
    /// can have no effect (one shard).
    pub fn new(target: f64, shards: u32, consortium: &Consortium, seed: u64) -> Option<Self> {
        if shards < 2 {
            return None;
        }
        let mut by_shard: Vec<Vec<OrgId>> = vec![Vec::new(); shards as usize];
        for o in consortium.orgs() {
            by_shard[ledger_core::routing::org_shard(o.id, shards).0 as usize].push(o.id);
        }
        let populated = by_shard.iter().filter(|v| !v.is_empty()).count();
        Some(CrossShardShaper {
            target: target.clamp(0.0, 1.0),
            shards,
            rng: Stream::new(seed, "client/cross-shard"),
            by_shard,
            can_inject: populated >= 2,
            patients: u64::from(consortium.patients()),
            stride: consortium.hospitals().len().max(1) as u64,
            rehome: FxHashMap::default(),
            stats: ShaperStats::default(),
        })
    }

    /// Shape request `req` (submitted by `client`) in place; returns what was done.
    pub fn shape(&mut self, req: &mut TxRequest) -> Shaped {
        self.apply_rehome(&mut req.tx);
        let native = ledger_core::shards_of(&req.tx, self.shards).is_cross_shard();
        let debt = self.target * (self.stats.seen + 1) as f64 - self.stats.cross as f64;
        let mut what = Shaped::Kept;
        if native && debt < 0.5 {
            if self.try_rehome(&mut req.tx) {
                what = Shaped::Rehomed;
                self.stats.rehomed += 1;
            } else {
                self.stats.not_rehomable += 1;
            }
        } else if !native && debt >= INJECT_DEBT && self.can_inject {
            req.tx = self.payment(req.client);
            req.kind = WorkloadKind::Payment;
            req.payload_bytes = 0;
            what = Shaped::Injected;
            self.stats.injected += 1;
        }
        self.pin(&req.tx);
        self.stats.seen += 1;
        if ledger_core::shards_of(&req.tx, self.shards).is_cross_shard() {
            self.stats.cross += 1;
        }
        what
    }

    /// Replace a re-homed patient by its new identity.
    fn apply_rehome(&self, tx: &mut Tx) {
        if self.rehome.is_empty() {
            return;
        }
        if let Some(p) = patient_mut(tx) {
            if let Some(&q) = self.rehome.get(&p.0) {
                *p = PatientId(q);
            }
        }
    }

    /// Pin the transaction's patient to itself if it is not mapped yet.
    fn pin(&mut self, tx: &Tx) {
        if let Some(p) = patient_of(tx) {
            self.rehome.entry(p.0).or_insert(p.0);
        }
    }

    fn try_rehome(&mut self, tx: &mut Tx) -> bool {
        match tx {
            Tx::ConsentGrant {
                patient, grantee, ..
            }
            | Tx::ConsentRevoke { patient, grantee } => {
                if self.rehome.contains_key(&patient.0) {
                    return false;
                }
                let want = ledger_core::routing::org_shard(*grantee, self.shards);
                let Some(q) = self.patient_on(patient.0, want) else {
                    return false;
                };
                self.rehome.insert(patient.0, q);
                *patient = PatientId(q);
                true
            }
            Tx::Payment { from, to, .. } => {
                let home = ledger_core::routing::org_shard(*from, self.shards).0 as usize;
                let mates: Vec<OrgId> = self.by_shard[home]
                    .iter()
                    .copied()
                    .filter(|o| o != from)
                    .collect();
                if mates.is_empty() {
                    return false;
                }
                *to = mates[(to.0 as usize) % mates.len()];
                true
            }
            _ => false,
        }
    }

    /// The first patient `p + k·stride` (k ≥ 1, wrapping) homed on shard `want`.
    fn patient_on(&self, p: u64, want: ShardId) -> Option<u64> {
        if self.patients < 2 {
            return None;
        }
        (1..=MAX_REHOME_PROBES)
            .map(|k| (p + k * self.stride) % self.patients)
            .find(|&q| {
                q != p && ledger_core::routing::patient_shard(PatientId(q), self.shards) == want
            })
    }

    /// A payment between organisations on two different shards: from the submitting
    /// organisation (or a random one), to a random organisation on another shard,
    /// $1 to $100.
    fn payment(&mut self, client: u32) -> Tx {
        let by_shard = &self.by_shard;
        let rng = &mut self.rng;
        let all: usize = by_shard.iter().map(Vec::len).sum();
        let from = by_shard
            .iter()
            .flatten()
            .copied()
            .find(|o| o.0 == u64::from(client))
            .unwrap_or_else(|| {
                let i = rng.below(all as u64) as usize;
                by_shard
                    .iter()
                    .flatten()
                    .copied()
                    .nth(i)
                    .unwrap_or(OrgId(0))
            });
        let home = ledger_core::routing::org_shard(from, self.shards).0 as usize;
        let others: usize = all - by_shard[home].len();
        let mut i = rng.below(others.max(1) as u64) as usize;
        let mut to = from;
        for (s, orgs) in by_shard.iter().enumerate() {
            if s == home {
                continue;
            }
            if i < orgs.len() {
                to = orgs[i];
                break;
            }
            i -= orgs.len();
        }
        Tx::Payment {
            from,
            to,
            amount_cents: rng.range_inclusive(100, 10_000),
        }
    }
}

/// The patient a transaction names, if any.
pub fn patient_of(tx: &Tx) -> Option<PatientId> {
    match tx {
        Tx::RecordWrite { patient, .. }
        | Tx::RecordAccess { patient, .. }
        | Tx::ImagingAnchor { patient, .. }
        | Tx::ClaimSubmit { patient, .. }
        | Tx::ClaimAdjudicate { patient, .. }
        | Tx::ClaimPay { patient, .. }
        | Tx::ConsentGrant { patient, .. }
        | Tx::ConsentRevoke { patient, .. } => Some(*patient),
        Tx::Payment { .. } | Tx::Supply { .. } => None,
    }
}

fn patient_mut(tx: &mut Tx) -> Option<&mut PatientId> {
    match tx {
        Tx::RecordWrite { patient, .. }
        | Tx::RecordAccess { patient, .. }
        | Tx::ImagingAnchor { patient, .. }
        | Tx::ClaimSubmit { patient, .. }
        | Tx::ClaimAdjudicate { patient, .. }
        | Tx::ClaimPay { patient, .. }
        | Tx::ConsentGrant { patient, .. }
        | Tx::ConsentRevoke { patient, .. } => Some(patient),
        Tx::Payment { .. } | Tx::Supply { .. } => None,
    }
}
