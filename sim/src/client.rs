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

use ledger_core::{ShardOp, XId};
use workloads::WorkloadKind;

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
