//! Fuzz target `block_decode`: ledger-core's canonical decoders on arbitrary bytes.
//!
//! The first byte picks the type (block, header, shard op, transaction, receipt,
//! genesis); the rest is decoded. Decoding must return `Err` or a value, never panic,
//! and never allocate more than the input can justify. Whatever decodes must re-encode
//! to exactly the input bytes (the encoding is canonical: one encoding per value), and
//! `encoded_len` must agree with the encoding.
#![no_main]

use ledger_core::block::{Block, BlockHeader};
use ledger_core::codec::{Decode, Encode};
use ledger_core::exec::Receipt;
use ledger_core::genesis::Genesis;
use ledger_core::types::Tx;
use ledger_core::xshard::ShardOp;
use libfuzzer_sys::fuzz_target;

/// Decode `bytes` as `T`; if it decodes, check the canonical round trip.
fn round_trip<T: Decode + Encode>(what: &str, bytes: &[u8]) {
    if let Ok(v) = T::decode(bytes) {
        let again = v.to_bytes();
        assert_eq!(
            again, bytes,
            "{what}: decode then encode did not give back the input"
        );
        assert_eq!(
            v.encoded_len(),
            bytes.len(),
            "{what}: encoded_len disagrees with the encoding"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => round_trip::<Block>("block", rest),
        1 => round_trip::<BlockHeader>("block header", rest),
        2 => {
            round_trip::<ShardOp>("shard op", rest);
            if let Ok(op) = ShardOp::decode(rest) {
                // The id hashes the encoding on a fixed stack buffer: must not overflow.
                let _ = op.id();
            }
        }
        3 => {
            round_trip::<Tx>("tx", rest);
            if let Ok(tx) = Tx::decode(rest) {
                let _ = tx.id();
            }
        }
        4 => round_trip::<Receipt>("receipt", rest),
        _ => round_trip::<Genesis>("genesis", rest),
    }
});
