//! Merkle roots and inclusion proofs over 32-byte leaf hashes, built on blake3's own tree.
//!
//! # Construction
//! The root of the leaves `l_0 .. l_{n-1}` is `blake3::keyed_hash(TX_ROOT_KEY, l_0 || .. || l_{n-1})`.
//! blake3 *is* a Merkle tree: the input is split into 1 KiB chunks (here 32 leaves each),
//! each chunk is hashed to a chaining value, and parent nodes hash exactly 64 bytes (two
//! child chaining values) with a compression function call. So:
//! - **Domain separation** between leaves and inner nodes comes from blake3's flags: chunk
//!   compressions carry `CHUNK_START`/`CHUNK_END`, parent compressions carry `PARENT`, the
//!   final one `ROOT`; keying by [`TX_ROOT_KEY`] separates this tree from every other hash.
//! - **Odd nodes** are neither duplicated nor padded: blake3's left subtree is always the
//!   largest power-of-two number of chunks strictly smaller than the input, and the last,
//!   possibly partial, right subtree is *promoted* as it is. The tree shape is a function of
//!   the input length alone (32·n bytes), so the CVE-2012-2459 ambiguity (Bitcoin's
//!   duplicated odd node letting `[a, b, c]` and `[a, b, c, c]` share a root) cannot occur:
//!   different leaf lists are different inputs.
//! - **Speed**: the root costs exactly raw blake3 over the leaf bytes (SIMD across chunks,
//!   no allocation), instead of one single-block hash per node.
//!
//! # Proofs
//! A [`MerkleProof`] for leaf `i` holds the leaf count, the whole 1 KiB chunk containing the
//! leaf (≤ 32 leaves, the leaf's siblings at the bottom level), and one 32-byte chaining
//! value per tree level above the chunk (`⌈log2(n/32)⌉`). Proofs are therefore ~1 KiB
//! larger than a binary-tree proof; that is the price of the 4× cheaper root, and roots are
//! computed for every block while proofs are asked for rarely.

use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, HasherExt, Mode,
};

use crate::hashing::TX_ROOT_KEY;
use crate::types::Hash32;

/// blake3's chunk length: 32 leaves of 32 bytes.
pub const CHUNK_LEN: usize = 1024;
/// Leaf width in bytes.
pub const LEAF_LEN: usize = 32;
/// Leaves per blake3 chunk.
pub const LEAVES_PER_CHUNK: usize = CHUNK_LEN / LEAF_LEN;

/// Merkle root over `leaves` (keyed by [`TX_ROOT_KEY`]). The root of no leaves is the keyed
/// hash of the empty input.
#[inline]
pub fn root(leaves: &[Hash32]) -> Hash32 {
    root_with_key(&TX_ROOT_KEY, leaves.as_flattened())
}

/// Merkle root over fixed-width leaves already laid out in `bytes`, under the domain `key`
/// (used for receipts, whose leaves are 2 bytes wide).
#[inline]
pub fn root_with_key(key: &[u8; 32], bytes: &[u8]) -> Hash32 {
    *blake3::keyed_hash(key, bytes).as_bytes()
}

/// An inclusion proof for one leaf (see the module docs for the layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleProof {
    /// Number of leaves in the tree.
    pub leaf_count: u64,
    /// The leaves of the blake3 chunk holding the proven leaf (including it).
    pub chunk_leaves: Vec<Hash32>,
    /// Chaining values of the sibling subtrees, from the chunk level up to the root.
    pub siblings: Vec<Hash32>,
}

fn subtree_cv(bytes: &[u8], offset: usize, len: usize) -> Hash32 {
    let mut h = blake3::Hasher::new_keyed(&TX_ROOT_KEY);
    h.set_input_offset(offset as u64);
    h.update(&bytes[offset..offset + len]);
    h.finalize_non_root()
}

/// Which side each sibling sits on, bottom-up, for the chunk starting at `chunk_start`
/// in an input of `total` bytes: `true` means the sibling is the right child.
/// Returns the number of levels.
fn sibling_sides(total: usize, chunk_start: usize, sides: &mut [bool; 64]) -> usize {
    let (mut start, mut len, mut depth) = (0usize, total, 0usize);
    while len > CHUNK_LEN {
        let left = left_subtree_len(len as u64) as usize;
        if chunk_start < start + left {
            sides[depth] = true;
            len = left;
        } else {
            sides[depth] = false;
            start += left;
            len -= left;
        }
        depth += 1;
    }
    sides[..depth].reverse();
    depth
}

/// Builds the inclusion proof of `leaves[index]`. Returns `None` if `index` is out of range.
pub fn prove(leaves: &[Hash32], index: usize) -> Option<MerkleProof> {
    if index >= leaves.len() {
        return None;
    }
    let bytes = leaves.as_flattened();
    let total = bytes.len();
    let chunk_start = (index / LEAVES_PER_CHUNK) * CHUNK_LEN;
    let chunk_end = (chunk_start + CHUNK_LEN).min(total);
    let chunk_leaves = leaves[chunk_start / LEAF_LEN..chunk_end / LEAF_LEN].to_vec();
    let mut siblings = Vec::new();
    let (mut start, mut len) = (0usize, total);
    while len > CHUNK_LEN {
        let left = left_subtree_len(len as u64) as usize;
        if chunk_start < start + left {
            siblings.push(subtree_cv(bytes, start + left, len - left));
            len = left;
        } else {
            siblings.push(subtree_cv(bytes, start, left));
            start += left;
            len -= left;
        }
    }
    siblings.reverse();
    Some(MerkleProof {
        leaf_count: leaves.len() as u64,
        chunk_leaves,
        siblings,
    })
}

impl MerkleProof {
    /// Whether this proof shows that `leaf` is leaf number `index` of the tree with `root`.
    /// Any inconsistency (wrong leaf, wrong index, wrong shape) yields `false`.
    pub fn verify(&self, root: &Hash32, leaf: &Hash32, index: usize) -> bool {
        let n = self.leaf_count;
        if n == 0 || index as u64 >= n || n > (usize::MAX / LEAF_LEN) as u64 {
            return false;
        }
        let total = n as usize * LEAF_LEN;
        let chunk_start = (index / LEAVES_PER_CHUNK) * CHUNK_LEN;
        let chunk_len = CHUNK_LEN.min(total - chunk_start);
        if self.chunk_leaves.len() * LEAF_LEN != chunk_len
            || self.chunk_leaves[index % LEAVES_PER_CHUNK] != *leaf
        {
            return false;
        }
        let mut sides = [false; 64];
        let depth = sibling_sides(total, chunk_start, &mut sides);
        if depth != self.siblings.len() {
            return false;
        }
        let chunk = self.chunk_leaves.as_flattened();
        if depth == 0 {
            return root_with_key(&TX_ROOT_KEY, chunk) == *root;
        }
        let mut h = blake3::Hasher::new_keyed(&TX_ROOT_KEY);
        h.set_input_offset(chunk_start as u64);
        h.update(chunk);
        let mut cv = h.finalize_non_root();
        let mode = Mode::KeyedHash(&TX_ROOT_KEY);
        for (level, sib) in self.siblings.iter().enumerate() {
            let (l, r) = if sides[level] { (&cv, sib) } else { (sib, &cv) };
            if level + 1 == depth {
                return merge_subtrees_root(l, r, mode).as_bytes() == root;
            }
            cv = merge_subtrees_non_root(l, r, mode);
        }
        false
    }
}
