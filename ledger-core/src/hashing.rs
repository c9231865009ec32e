//! Domain-separated blake3 hashing.
//!
//! Every digest the ledger computes is a blake3 *keyed* hash whose 32-byte key names
//! its purpose (transaction id, shard-op id, state leaf, audit chain, ...). Two digests of
//! different purposes therefore never collide except by a blake3 collision, even if their
//! inputs are byte-identical. The keys are ASCII labels zero-padded to 32 bytes.

use crate::types::Hash32;

/// Builds a 32-byte domain key from an ASCII label (zero padded). Fails to compile if the
/// label is longer than 32 bytes.
pub const fn domain_key(label: &str) -> [u8; 32] {
    let b = label.as_bytes();
    assert!(b.len() <= 32, "domain label longer than 32 bytes");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// Key for [`crate::types::Tx::id`].
pub const TX_ID_KEY: [u8; 32] = domain_key("ledgersim/v1/tx-id");
/// Key for shard-operation ids (the leaves of a block's tx root).
pub const OP_ID_KEY: [u8; 32] = domain_key("ledgersim/v1/shard-op-id");
/// Key for the Merkle tree over op ids (see [`crate::merkle`]).
pub const TX_ROOT_KEY: [u8; 32] = domain_key("ledgersim/v1/tx-root");
/// Key for the commitment over a block's receipts.
pub const RECEIPTS_ROOT_KEY: [u8; 32] = domain_key("ledgersim/v1/receipts-root");
/// Key for a state leaf digest `H(key, value)`.
pub const STATE_LEAF_KEY: [u8; 32] = domain_key("ledgersim/v1/state-leaf");
/// Key for the state root (hash of the AdHash accumulator and the key count).
pub const STATE_ROOT_KEY: [u8; 32] = domain_key("ledgersim/v1/state-root");
/// Key for a block header hash.
pub const HEADER_KEY: [u8; 32] = domain_key("ledgersim/v1/block-header");
/// Key for the genesis configuration hash.
pub const GENESIS_KEY: [u8; 32] = domain_key("ledgersim/v1/genesis");
/// Key for the per-patient audit hash chain.
pub const AUDIT_KEY: [u8; 32] = domain_key("ledgersim/v1/audit-chain");
/// Key for the exported log manifest checksum.
pub const MANIFEST_KEY: [u8; 32] = domain_key("ledgersim/v1/log-manifest");

/// blake3 keyed hash of `bytes` under `key`.
#[inline]
pub fn keyed(key: &[u8; 32], bytes: &[u8]) -> Hash32 {
    *blake3::keyed_hash(key, bytes).as_bytes()
}
