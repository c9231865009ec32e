//! The simulator's immutable block store, shared by all replicas of a run.
//!
//! Protocols create blocks with [`crate::protocol::Ctx::make_block`] and pass
//! [`BlockRef`] handles around in messages; the block's transactions live once in a
//! flat arena, so a broadcast of a block costs a handle, not a copy.

use crate::protocol::{BlockRef, NodeId, TxRef};

/// Bytes of a block header on the wire (parent hash, tx root, state root,
/// height, timestamp, proposer, signature): an estimate of a typical BFT header.
pub const BLOCK_HEADER_BYTES: u64 = 200;

/// Most blocks one run may create (a named limit on growth).
pub const MAX_BLOCKS: usize = 50_000_000;

const NO_PARENT: u32 = u32::MAX;

struct BlockMeta {
    tx_start: usize,
    tx_len: u32,
    parent: u32,
    creator: NodeId,
    size_bytes: u64,
    digest: [u8; 32],
}

/// Transactions hashed per `update` call of a block's digest (8 bytes each).
const DIGEST_GROUP_TXS: usize = 128;

/// Immutable blocks, addressed by [`BlockRef`].
#[derive(Default)]
pub struct BlockStore {
    blocks: Vec<BlockMeta>,
    txs: Vec<TxRef>,
}

impl BlockStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of blocks created.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether no block was created yet.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Create a block by `creator` holding `txs` on top of `parent`.
    ///
    /// Panics (an internal-limit assert) past [`MAX_BLOCKS`] blocks.
    pub fn make_block(
        &mut self,
        creator: NodeId,
        txs: &[TxRef],
        parent: Option<BlockRef>,
    ) -> BlockRef {
        assert!(
            self.blocks.len() < MAX_BLOCKS,
            "block store limit of {MAX_BLOCKS} blocks reached"
        );
        let index = self.blocks.len() as u32;
        let mut h = blake3::Hasher::new_derive_key("ledgersim sim block v1");
        h.update(&index.to_le_bytes());
        h.update(&creator.to_le_bytes());
        match parent {
            Some(p) => {
                h.update(&[1]);
                h.update(&self.digest(p));
            }
            None => {
                h.update(&[0]);
            }
        }
        let mut size = BLOCK_HEADER_BYTES;
        let tx_start = self.txs.len();
        // The same bytes as one `update` per field, in one `update` per 128 transactions
        // (blake3 hashes the concatenation either way; small updates cost per call).
        for group in txs.chunks(DIGEST_GROUP_TXS) {
            let mut buf = [0u8; DIGEST_GROUP_TXS * 8];
            for (t, out) in group.iter().zip(buf.chunks_exact_mut(8)) {
                out[..4].copy_from_slice(&t.id.to_le_bytes());
                out[4..].copy_from_slice(&t.size_bytes.to_le_bytes());
                size += u64::from(t.size_bytes);
            }
            h.update(&buf[..group.len() * 8]);
        }
        self.txs.extend_from_slice(txs);
        self.blocks.push(BlockMeta {
            tx_start,
            tx_len: txs.len() as u32,
            parent: parent.map_or(NO_PARENT, |p| p.0),
            creator,
            size_bytes: size,
            digest: *h.finalize().as_bytes(),
        });
        BlockRef(index)
    }

    fn meta(&self, b: BlockRef) -> &BlockMeta {
        match self.blocks.get(b.0 as usize) {
            Some(m) => m,
            None => panic!(
                "unknown block {b:?}: protocol used a BlockRef it did not get from the store"
            ),
        }
    }

    /// The block's transactions.
    pub fn txs(&self, b: BlockRef) -> &[TxRef] {
        let m = self.meta(b);
        &self.txs[m.tx_start..m.tx_start + m.tx_len as usize]
    }

    /// Header plus transaction bytes.
    pub fn size_bytes(&self, b: BlockRef) -> u64 {
        self.meta(b).size_bytes
    }

    /// The block's 32-byte digest.
    pub fn digest(&self, b: BlockRef) -> [u8; 32] {
        self.meta(b).digest
    }

    /// The block's parent.
    pub fn parent(&self, b: BlockRef) -> Option<BlockRef> {
        let p = self.meta(b).parent;
        (p != NO_PARENT).then_some(BlockRef(p))
    }

    /// The node that created the block.
    pub fn creator(&self, b: BlockRef) -> NodeId {
        self.meta(b).creator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest is blake3 over the fields in order, whatever the grouping of the
    /// transactions into `update` calls (checked across group boundaries).
    #[test]
    fn digest_is_the_hash_of_the_fields_in_order() {
        let mut store = BlockStore::new();
        let genesis = store.make_block(3, &[], None);
        for n in [0usize, 1, 127, 128, 129, 300] {
            let txs: Vec<TxRef> = (0..n as u32)
                .map(|i| TxRef {
                    id: i * 7 + 1,
                    size_bytes: 100 + i,
                })
                .collect();
            let b = store.make_block(5, &txs, Some(genesis));
            let mut h = blake3::Hasher::new_derive_key("ledgersim sim block v1");
            h.update(&b.0.to_le_bytes());
            h.update(&5u32.to_le_bytes());
            h.update(&[1]);
            h.update(&store.digest(genesis));
            for t in &txs {
                h.update(&t.id.to_le_bytes());
                h.update(&t.size_bytes.to_le_bytes());
            }
            assert_eq!(
                store.digest(b),
                *h.finalize().as_bytes(),
                "{n} transactions"
            );
            assert_eq!(store.txs(b), &txs[..]);
        }
    }
}
