//! Blocks: a header committing to the ops, receipts and resulting state, chained by hash.

use crate::codec::{Encode, StackBuf, HEADER_ENCODED_LEN};
use crate::hashing::{keyed, HEADER_KEY, RECEIPTS_ROOT_KEY};
use crate::merkle;
use crate::types::{Hash32, ShardId};
use crate::xshard::ShardOp;

/// A block header.
///
/// The genesis header of a shard has `height == 0`, `prev_hash == Genesis::hash()`, no ops,
/// and the shard's initial state root; block `h > 0` has `prev_hash == hash(header h-1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// The shard.
    pub shard: ShardId,
    /// Height (0 = genesis).
    pub height: u64,
    /// Hash of the previous header (the genesis config hash at height 0).
    pub prev_hash: Hash32,
    /// Merkle root (see [`crate::merkle`]) over the op ids.
    pub tx_root: Hash32,
    /// Commitment to the receipts: blake3 tree over their fixed 2-byte encodings.
    pub receipts_root: Hash32,
    /// State root after the block.
    pub state_root: Hash32,
    /// Block time, ms since the ledger epoch.
    pub timestamp_ms: u64,
    /// Number of ops.
    pub op_count: u32,
}

impl BlockHeader {
    /// Header hash: blake3 keyed by [`HEADER_KEY`] over the canonical encoding.
    pub fn hash(&self) -> Hash32 {
        let mut buf = StackBuf::<HEADER_ENCODED_LEN>::new();
        self.encode_to(&mut buf);
        keyed(&HEADER_KEY, buf.as_slice())
    }
}

/// A block: header and ops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Header.
    pub header: BlockHeader,
    /// Ops in execution order.
    pub ops: Vec<ShardOp>,
}

/// The tx root over `ops` (allocates one leaf buffer; shards reuse theirs instead).
pub fn tx_root(ops: &[ShardOp]) -> Hash32 {
    let leaves: Vec<Hash32> = ops.iter().map(ShardOp::id).collect();
    merkle::root(&leaves)
}

/// The receipts root over encoded receipts laid out back to back.
pub fn receipts_root_of_bytes(encoded_receipts: &[u8]) -> Hash32 {
    merkle::root_with_key(&RECEIPTS_ROOT_KEY, encoded_receipts)
}
