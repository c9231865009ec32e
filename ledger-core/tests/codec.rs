//! Canonical encoding: round trips, lengths, and garbage never panics.

mod common;

use common::*;
use ledger_core::block::{Block, BlockHeader};
use ledger_core::codec::{Decode, DecodeError, Encode, MAX_TX_ENCODED_LEN};
use ledger_core::exec::{Receipt, RejectReason};
use ledger_core::genesis::Genesis;
use ledger_core::types::Tx;
use ledger_core::{ShardOp, Vote};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn tx_round_trips(tx in arb_tx()) {
        let mut buf = vec![0xAA];
        tx.encode_into(&mut buf);
        prop_assert_eq!(buf.len() - 1, tx.encoded_len());
        prop_assert!(tx.encoded_len() <= MAX_TX_ENCODED_LEN);
        prop_assert_eq!(Tx::decode(&buf[1..]).unwrap(), tx.clone());
        // Trailing bytes are rejected.
        buf.push(0);
        let is_trailing = matches!(Tx::decode(&buf[1..]), Err(DecodeError::TrailingBytes { .. }));
        prop_assert!(is_trailing);
    }

    #[test]
    fn op_round_trips(op in arb_op()) {
        let b = op.to_bytes();
        prop_assert_eq!(b.len(), op.encoded_len());
        prop_assert_eq!(ShardOp::decode(&b).unwrap(), op);
    }

    #[test]
    fn block_round_trips(block in arb_block()) {
        let b = block.to_bytes();
        prop_assert_eq!(b.len(), block.encoded_len());
        let d = Block::decode(&b).unwrap();
        prop_assert_eq!(&d, &block);
        prop_assert_eq!(d.header.hash(), block.header.hash());
        // Every strict prefix fails to decode.
        for cut in [0, 1, b.len() / 2, b.len() - 1] {
            prop_assert!(Block::decode(&b[..cut]).is_err());
        }
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Tx::decode(&bytes);
        let _ = ShardOp::decode(&bytes);
        let _ = Block::decode(&bytes);
        let _ = BlockHeader::decode(&bytes);
        let _ = Receipt::decode(&bytes);
        let _ = Genesis::decode(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(op in arb_op(), pos in any::<usize>(), val in any::<u8>()) {
        let mut b = op.to_bytes();
        let i = pos % b.len();
        b[i] = val;
        if let Ok(d) = ShardOp::decode(&b) {
            // Anything accepted re-encodes to the same bytes (canonical).
            prop_assert_eq!(d.to_bytes(), b);
        }
    }
}

#[test]
fn receipts_round_trip() {
    let mut all = vec![
        Receipt::Accepted,
        Receipt::AcceptedBreakGlass,
        Receipt::Committed,
        Receipt::Aborted,
        Receipt::Vote(Vote::Yes),
    ];
    for r in RejectReason::ALL {
        all.push(Receipt::Rejected(*r));
        all.push(Receipt::Vote(Vote::No(*r)));
        assert_eq!(RejectReason::from_code(r.code()), Some(*r));
    }
    for r in all {
        assert_eq!(Receipt::decode(&r.to_bytes()).unwrap(), r);
    }
    assert!(
        Receipt::decode(&[2, 0]).is_err(),
        "reason code 0 is not a reason"
    );
    assert!(
        Receipt::decode(&[0, 1]).is_err(),
        "non-zero padding rejected"
    );
}

#[test]
fn huge_op_count_is_rejected_without_allocation() {
    let mut b = vec![0u8; ledger_core::codec::HEADER_ENCODED_LEN];
    let n = b.len();
    b[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Block::decode(&b),
        Err(DecodeError::LimitExceeded { .. })
    ));
    b[n - 4..].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        Block::decode(&b),
        Err(DecodeError::UnexpectedEnd { .. })
    ));
}

#[test]
fn tx_id_is_domain_separated_and_stable() {
    let tx = Tx::Payment {
        from: ledger_core::types::OrgId(1),
        to: ledger_core::types::OrgId(2),
        amount_cents: 5,
    };
    assert_eq!(tx.id(), tx.clone().id());
    assert_ne!(tx.id(), *blake3::hash(&tx.to_bytes()).as_bytes());
    assert_ne!(tx.id(), ShardOp::Tx(tx.clone()).id());
}
