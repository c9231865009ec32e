//! The client layer: the workload's transaction stream, routing to shards, and
//! the operation arena that protocols see through [`crate::protocol::TxRef`].
//!
//! Each generated transaction becomes one *client transaction*; each client
//! transaction has one or more *operations* (one per shard it touches). Today a
//! cross-shard transaction is counted as cross-shard and ordered on its first
//! shard as a single operation; the arena already records the owning client
//! transaction per operation so that a two-phase commit (prepare on each shard,
//! then commit/abort) can add operations without changing protocols.

use ledger_core::types::{OrgId, PatientId, RecordId, ResourceKind, Tx};
use simrand::Stream;

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
pub struct Op {
    /// The ledger transaction.
    pub tx: Tx,
    /// The client transaction this operation belongs to.
    pub client_tx: u32,
    /// The shard that orders it.
    pub shard: u32,
    /// Bytes on the wire.
    pub size_bytes: u32,
}

/// One client transaction.
pub struct ClientTx {
    /// Submission time.
    pub submit_ns: u64,
    /// First inclusion in a block (longest-chain protocols), if any.
    pub included_ns: Option<u64>,
    /// Final time.
    pub done_ns: Option<u64>,
    /// Outcome.
    pub status: TxStatus,
    /// Touches more than one shard.
    pub cross_shard: bool,
    /// The workload's transaction kind label.
    pub kind: &'static str,
    /// The submitting client.
    pub client: u32,
}

/// A request from the workload generator.
pub struct TxRequest {
    /// Submission time, ns.
    pub at_ns: u64,
    /// Client id.
    pub client: u32,
    /// Transaction kind label.
    pub kind: &'static str,
    /// The transaction.
    pub tx: Tx,
    /// Off-chain payload bytes carried on the wire.
    pub payload_bytes: u64,
}

/// Stand-in workload generator used until the `workloads` crate is wired in:
/// Poisson arrivals at `offered_tps` of 900-byte EHR record writes (the FHIR
/// Observation size in WORKLOADS.md) for uniformly drawn patients, from stream
/// `client`.
pub struct StandInGenerator {
    rng: Stream,
    mean_gap_ns: f64,
    t_ns: f64,
    end_ns: u64,
    next_record: u64,
    clients: u32,
}

/// Patients in the stand-in workload.
const STANDIN_PATIENTS: u64 = 100_000;

impl StandInGenerator {
    /// A generator for `offered_tps` up to `end_ns`, seeded from `seed`.
    pub fn new(offered_tps: f64, end_ns: u64, seed: u64, clients: u32) -> Self {
        StandInGenerator {
            rng: Stream::new(seed, "client"),
            mean_gap_ns: if offered_tps > 0.0 { 1e9 / offered_tps } else { f64::INFINITY },
            t_ns: 0.0,
            end_ns,
            next_record: 0,
            clients: clients.max(1),
        }
    }

    /// The next request, or `None` past the end of the run.
    pub fn next_request(&mut self) -> Option<TxRequest> {
        if !self.mean_gap_ns.is_finite() {
            return None;
        }
        self.t_ns += self.rng.exponential(self.mean_gap_ns);
        let at_ns = self.t_ns as u64;
        if at_ns >= self.end_ns {
            return None;
        }
        let patient = PatientId(self.rng.below(STANDIN_PATIENTS));
        let client = self.rng.below(u64::from(self.clients)) as u32;
        self.next_record += 1;
        let tx = Tx::RecordWrite {
            record: RecordId(self.next_record),
            patient,
            author: OrgId(u64::from(client)),
            resource: ResourceKind::Observation,
            doc_hash: [0; 32],
            size_bytes: 900,
        };
        Some(TxRequest {
            at_ns,
            client,
            kind: "record_write",
            tx,
            payload_bytes: 0,
        })
    }
}

/// Encoded size of a transaction on the wire (stand-in until ledger-core's
/// `Tx::encoded_len` lands: a 64-byte signature plus a 96-byte body).
pub fn encoded_len(_tx: &Tx) -> u64 {
    160
}

/// The shards a transaction touches (stand-in until `ledger_core::routing::shards_of`):
/// the patient's home shard; payments touch the payer's and payee's shards.
pub fn shards_of(tx: &Tx, shards: u32) -> Vec<u32> {
    let s = u64::from(shards.max(1));
    let key = |x: u64| (x % s) as u32;
    match tx {
        Tx::RecordWrite { patient, .. }
        | Tx::RecordAccess { patient, .. }
        | Tx::ConsentGrant { patient, .. }
        | Tx::ConsentRevoke { patient, .. }
        | Tx::ImagingAnchor { patient, .. }
        | Tx::ClaimSubmit { patient, .. }
        | Tx::ClaimAdjudicate { patient, .. }
        | Tx::ClaimPay { patient, .. } => vec![key(patient.0)],
        Tx::Payment { from, to, .. } => {
            let (a, b) = (key(from.0), key(to.0));
            if a == b {
                vec![a]
            } else {
                vec![a, b]
            }
        }
        Tx::Supply { package, .. } => vec![key(package.0)],
    }
}
