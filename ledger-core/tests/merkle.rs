//! Merkle roots and proofs.

use ledger_core::merkle::{prove, root};
use ledger_core::types::Hash32;
use proptest::prelude::*;

fn leaves(n: usize, salt: u8) -> Vec<Hash32> {
    (0..n)
        .map(|i| *blake3::hash(&[(i as u64).to_le_bytes().as_slice(), &[salt]].concat()).as_bytes())
        .collect()
}

#[test]
fn every_index_proves_and_wrong_ones_fail() {
    for n in [1usize, 2, 3, 31, 32, 33, 63, 64, 65, 100, 257, 1000, 1025] {
        let l = leaves(n, 0);
        let r = root(&l);
        for i in 0..n {
            let p = prove(&l, i).unwrap();
            assert!(p.verify(&r, &l[i], i), "n={n} i={i}");
            let wrong_leaf = leaves(1, 9)[0];
            assert!(
                !p.verify(&r, &wrong_leaf, i),
                "wrong leaf accepted n={n} i={i}"
            );
            if n > 1 {
                let j = (i + 1) % n;
                assert!(
                    !p.verify(&r, &l[i], j) || l[i] == l[j],
                    "wrong index accepted n={n} i={i}"
                );
            }
            assert!(!p.verify(&r, &l[i], n + i), "index past the end accepted");
            let other_root = root(&l[..n - 1]);
            assert!(n == 1 || !p.verify(&other_root, &l[i], i));
        }
        assert!(prove(&l, n).is_none());
    }
}

#[test]
fn no_duplication_ambiguity() {
    // CVE-2012-2459: [a, b, c] and [a, b, c, c] must have different roots.
    for n in [3usize, 33, 65] {
        let l = leaves(n, 1);
        let mut dup = l.clone();
        dup.push(*l.last().unwrap());
        assert_ne!(root(&l), root(&dup));
    }
    assert_ne!(root(&[]), root(&[[0u8; 32]]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn tampered_proofs_fail(n in 1usize..300, i in 0usize..300, which in 0usize..64, bit in 0u8..8) {
        let i = i % n;
        let l = leaves(n, 2);
        let r = root(&l);
        let mut p = prove(&l, i).unwrap();
        prop_assert!(p.verify(&r, &l[i], i));
        let slots = p.chunk_leaves.len() + p.siblings.len();
        let k = which % slots;
        if k < p.chunk_leaves.len() {
            p.chunk_leaves[k][0] ^= 1 << bit;
        } else {
            p.siblings[k - p.chunk_leaves.len()][5] ^= 1 << bit;
        }
        prop_assert!(!p.verify(&r, &l[i], i));
    }
}
