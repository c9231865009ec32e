//! Export + offline verification, and tamper detection.

use std::path::Path;

use ledger_core::log::{shard_file_name, verify_dir, VerifyError};

fn demo_log(dir: &Path) {
    let report = ledger_core::demo::run(dir).expect("demo runs");
    assert_eq!(report.money_before, report.money_after);
    assert!(report.cross_committed > 0);
    assert!(report.rejected_audited > 0);
    assert!(report.cross_aborted.contains_key("KeyLocked"), "{report}");
    assert!(
        report.cross_aborted.contains_key("InsufficientFunds"),
        "{report}"
    );
    for r in [
        "NoConsent",
        "ConsentExpired",
        "DuplicateClaim",
        "Quarantined",
        "FraudSuspected",
        "NotCovered",
        "OverClaimLimit",
    ] {
        assert!(report.rejected.contains_key(r), "missing {r} in\n{report}");
    }
    assert!(report.break_glass > 0);
    let text = report.to_string();
    assert!(text.contains("cross-shard committed"));
}

/// Frame boundaries of a shard file: (height, start, end) of each frame.
fn frames(bytes: &[u8]) -> Vec<(u64, usize, usize)> {
    let mut out = Vec::new();
    let mut off = 16;
    let mut h = 0;
    while off < bytes.len() {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        out.push((h, off, off + 4 + len + 32));
        off += 4 + len + 32;
        h += 1;
    }
    out
}

#[test]
fn demo_exports_and_every_sampled_flip_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    demo_log(tmp.path());
    let dir = tmp.path().join("ledger");
    let ok = verify_dir(&dir).unwrap();
    assert_eq!(ok.shard_count, 4);
    for s in 0..4u32 {
        let path = dir.join(shard_file_name(s));
        let original = std::fs::read(&path).unwrap();
        let fr = frames(&original);
        // Sample positions: one varying byte in every block; in the first three and last two
        // blocks also the length prefix, header, ops and stored-hash regions.
        for (i, &(h, start, end)) in fr.iter().enumerate() {
            let len = end - start;
            let mut positions = vec![start + (h as usize * 37 + 11) % len];
            if i < 3 || i + 2 >= fr.len() {
                positions.extend([
                    start,
                    start + 3,
                    start + 4,
                    start + 20,
                    start + 100,
                    start + 150,
                    end - 40,
                    end - 33,
                    end - 32,
                    end - 1,
                ]);
            }
            for pos in positions.into_iter().filter(|&p| p >= start && p < end) {
                let mut b = original.clone();
                b[pos] ^= 0x5a;
                std::fs::write(&path, &b).unwrap();
                let err = verify_dir(&dir).expect_err("flipped byte must fail verification");
                assert_eq!(err.shard(), Some(s), "pos {pos}: {err}");
                assert_eq!(
                    err.height(),
                    Some(h),
                    "shard {s} pos {pos} (frame {h} {start}..{end}): {err}"
                );
            }
        }
        // Preamble flips.
        for pos in 0..16 {
            let mut b = original.clone();
            b[pos] ^= 1;
            std::fs::write(&path, &b).unwrap();
            let err = verify_dir(&dir).unwrap_err();
            assert_eq!(err.shard(), Some(s));
        }
        // Truncation at frame boundaries and inside frames.
        for &(_, start, end) in fr.iter().skip(1).step_by(17) {
            for cut in [start, (start + end) / 2] {
                std::fs::write(&path, &original[..cut]).unwrap();
                let err = verify_dir(&dir).unwrap_err();
                assert_eq!(err.shard(), Some(s), "{err}");
            }
        }
        // Reordered blocks: swap the last two frames.
        if fr.len() >= 3 {
            let (_, a0, a1) = fr[fr.len() - 2];
            let (_, _, b1) = fr[fr.len() - 1];
            let mut b = original[..a0].to_vec();
            b.extend_from_slice(&original[a1..b1]);
            b.extend_from_slice(&original[a0..a1]);
            std::fs::write(&path, &b).unwrap();
            let err = verify_dir(&dir).unwrap_err();
            assert_eq!(
                (err.shard(), err.height()),
                (Some(s), Some(fr.len() as u64 - 2)),
                "{err}"
            );
        }
        std::fs::write(&path, &original).unwrap();
        verify_dir(&dir).unwrap();
    }
    // Manifest flips.
    let mpath = dir.join("manifest.bin");
    let m = std::fs::read(&mpath).unwrap();
    for pos in (0..m.len()).step_by(13) {
        let mut b = m.clone();
        b[pos] ^= 0x80;
        std::fs::write(&mpath, &b).unwrap();
        assert!(matches!(verify_dir(&dir), Err(VerifyError::Manifest(_))));
    }
    std::fs::write(&mpath, &m).unwrap();
    // Deleted shard file.
    std::fs::remove_file(dir.join(shard_file_name(2))).unwrap();
    assert!(matches!(
        verify_dir(&dir),
        Err(VerifyError::MissingShardFile { shard: 2, .. })
    ));
}

#[test]
fn demo_is_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ra = ledger_core::demo::run(a.path()).unwrap();
    let rb = ledger_core::demo::run(b.path()).unwrap();
    assert_eq!(ra.state_roots, rb.state_roots);
    for s in 0..4 {
        let fa = std::fs::read(a.path().join("ledger").join(shard_file_name(s))).unwrap();
        let fb = std::fs::read(b.path().join("ledger").join(shard_file_name(s))).unwrap();
        assert_eq!(fa, fb);
    }
}

#[test]
fn demo_report_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let r = ledger_core::demo::run(tmp.path()).unwrap();
    let t = std::time::Instant::now();
    verify_dir(&tmp.path().join("ledger")).unwrap();
    println!("{r}\nverify took {:?}", t.elapsed());
}

/// An escrow-mode ledger (the default) exports and verifies; the manifest binds the mode:
/// replaying the same blocks under `Lock` (manifest byte 12, checksum recomputed) fails.
#[test]
fn escrow_log_verifies_and_mode_is_bound() {
    use ledger_core::genesis::GenesisBuilder;
    use ledger_core::hashing::{keyed, MANIFEST_KEY};
    use ledger_core::types::{OrgId, OrgKind, Tx};
    use ledger_core::{AccountLocking, Coordinator, Ledger};

    let mut b = GenesisBuilder::new().insurer(OrgId(100), 1_000_000, 0);
    for h in 1..=6 {
        b = b.org(OrgId(h), OrgKind::Hospital, 0);
    }
    let g = b.build().unwrap();
    let mut l = Ledger::new(&g, 4);
    assert_eq!(l.account_locking(), AccountLocking::Escrow);
    let mut co = Coordinator::new(1);
    for round in 0..4u64 {
        // Six concurrent payments from one hot insurer account per round.
        let txs: Vec<Tx> = (1..=6)
            .map(|h| Tx::Payment {
                from: OrgId(100),
                to: OrgId(h),
                amount_cents: 10 + round,
            })
            .collect();
        co.run_round(&mut l, &txs, round * 10);
        assert_eq!(l.total_money(), g.total_money());
    }
    assert!(
        co.stats.committed > 4,
        "escrow lets hot-account payments commit"
    );
    assert_eq!(co.stats.aborted, 0);
    let tmp = tempfile::tempdir().unwrap();
    ledger_core::log::export(&l, tmp.path()).unwrap();
    let report = verify_dir(tmp.path()).unwrap();
    assert_eq!(report.state_roots, l.state_roots());

    let mpath = tmp.path().join("manifest.bin");
    let mut m = std::fs::read(&mpath).unwrap();
    assert_eq!(m[12], AccountLocking::Escrow.code());
    m.truncate(m.len() - 32);
    m[12] = AccountLocking::Lock.code();
    let sum = keyed(&MANIFEST_KEY, &m);
    m.extend_from_slice(&sum);
    std::fs::write(&mpath, &m).unwrap();
    assert!(matches!(
        verify_dir(tmp.path()),
        Err(VerifyError::Mismatch { .. })
    ));
}
