//! Historic records: records that exist at genesis by rule, without a state entry.

use ledger_core::codec::{Decode, Encode};
use ledger_core::exec::{Receipt, RejectReason};
use ledger_core::genesis::{Genesis, GenesisBuilder, HistoricRecords};
use ledger_core::state::{Key, Value};
use ledger_core::types::*;
use ledger_core::{Coordinator, Ledger, TxOutcome};

const H1: OrgId = OrgId(1);
const H2: OrgId = OrgId(2);
const H3: OrgId = OrgId(3);
const INS: OrgId = OrgId(20);
const PATIENTS: u64 = 100;

fn genesis(historic: bool) -> Genesis {
    GenesisBuilder::new()
        .org(H1, OrgKind::Hospital, 10_000)
        .org(H2, OrgKind::Hospital, 10_000)
        .org(H3, OrgKind::Hospital, 0)
        .insurer(INS, 100_000, 0)
        .historic_records(historic.then(|| HistoricRecords::with_defaults(PATIENTS)))
        .build()
        .unwrap()
}

/// The home rule: hospitals in id order, round robin.
fn home(p: u64) -> OrgId {
    [H1, H2, H3][(p % 3) as usize]
}

fn count(p: u64) -> u32 {
    HistoricRecords::with_defaults(PATIENTS).count(PatientId(p))
}

fn access(record: RecordId, p: u64, who: OrgId, purpose: AccessPurpose) -> Tx {
    Tx::RecordAccess {
        record,
        patient: PatientId(p),
        accessor: who,
        user: UserId(9),
        purpose,
        at_ms: 50,
    }
}

fn write(record: RecordId, p: u64, author: OrgId) -> Tx {
    Tx::RecordWrite {
        record,
        patient: PatientId(p),
        author,
        resource: ResourceKind::Observation,
        doc_hash: [7; 32],
        size_bytes: 10,
    }
}

fn run(l: &mut Ledger, co: &mut Coordinator, tx: Tx) -> TxOutcome {
    co.run_round(l, &[tx], 100)[0]
}

fn audit(l: &Ledger, p: u64) -> u64 {
    let s = ledger_core::routing::patient_shard(PatientId(p), l.shard_count() as u32).0 as usize;
    match l.shards[s].state().get(&Key::Audit(PatientId(p))) {
        Some(Value::Audit(a)) => a.count,
        _ => 0,
    }
}

fn record_entry(l: &Ledger, p: u64, r: RecordId) -> Option<Value> {
    let s = ledger_core::routing::patient_shard(PatientId(p), l.shard_count() as u32).0 as usize;
    l.shards[s].state().get(&Key::Record(r)).copied()
}

#[test]
fn historic_record_read_by_home_is_accepted() {
    for shards in [1, 3] {
        let mut l = Ledger::new(&genesis(true), shards);
        let mut co = Coordinator::new(1);
        for p in [0, 4, 41, PATIENTS - 1] {
            for n in [0, count(p) - 1] {
                let r = HistoricRecords::record_id(PatientId(p), n);
                let before = audit(&l, p);
                assert_eq!(
                    run(
                        &mut l,
                        &mut co,
                        access(r, p, home(p), AccessPurpose::Treatment)
                    ),
                    TxOutcome::Single(Receipt::Accepted),
                    "patient {p} record {n} on {shards} shards"
                );
                assert_eq!(audit(&l, p), before + 1, "the read is audited");
                assert_eq!(record_entry(&l, p, r), None, "a read materialises nothing");
            }
        }
    }
}

#[test]
fn historic_record_read_by_stranger_needs_consent_and_is_audited() {
    for shards in [1, 3] {
        let mut l = Ledger::new(&genesis(true), shards);
        let mut co = Coordinator::new(1);
        let p = 7; // home H2
        let stranger = H1;
        assert_ne!(home(p), stranger);
        let r = HistoricRecords::record_id(PatientId(p), 3);
        assert_eq!(
            run(
                &mut l,
                &mut co,
                access(r, p, stranger, AccessPurpose::Treatment)
            ),
            TxOutcome::Single(Receipt::Rejected(RejectReason::NoConsent))
        );
        assert_eq!(audit(&l, p), 1, "a rejected access is audited");
        assert_eq!(
            run(
                &mut l,
                &mut co,
                access(r, p, stranger, AccessPurpose::Emergency)
            ),
            TxOutcome::Single(Receipt::AcceptedBreakGlass)
        );
        assert_eq!(audit(&l, p), 2);
        let grant = Tx::ConsentGrant {
            patient: PatientId(p),
            grantee: stranger,
            scope: ConsentScope::READ_RECORDS,
            expires_at_ms: 1_000,
        };
        assert!(matches!(
            run(&mut l, &mut co, grant),
            TxOutcome::Committed | TxOutcome::Single(Receipt::Accepted)
        ));
        assert_eq!(
            run(
                &mut l,
                &mut co,
                access(r, p, stranger, AccessPurpose::Treatment)
            ),
            TxOutcome::Single(Receipt::Accepted),
            "consent lets another hospital read a historic record"
        );
        // Another patient named in the tx than the one in the id.
        assert_eq!(
            run(
                &mut l,
                &mut co,
                access(r, p + 3, home(p), AccessPurpose::Treatment)
            ),
            TxOutcome::Single(Receipt::Rejected(RejectReason::PatientMismatch))
        );
    }
}

#[test]
fn historic_ids_out_of_range_are_unknown() {
    let mut l = Ledger::new(&genesis(true), 3);
    let mut co = Coordinator::new(1);
    let p = 10;
    let unknown = TxOutcome::Single(Receipt::Rejected(RejectReason::UnknownRecord));
    // Ordinal at the patient's count: does not exist; audited all the same.
    let r = HistoricRecords::record_id(PatientId(p), count(p));
    assert_eq!(
        run(
            &mut l,
            &mut co,
            access(r, p, home(p), AccessPurpose::Treatment)
        ),
        unknown
    );
    assert_eq!(audit(&l, p), 1);
    // A patient beyond the genesis patients has no historic records.
    let q = PATIENTS + 2;
    let r = HistoricRecords::record_id(PatientId(q), 0);
    assert_eq!(
        run(
            &mut l,
            &mut co,
            access(r, q, home(q), AccessPurpose::Treatment)
        ),
        unknown
    );
    // Writes cannot create records in the historic id space.
    let r = HistoricRecords::record_id(PatientId(p), count(p) + 5);
    assert_eq!(run(&mut l, &mut co, write(r, p, home(p))), unknown);
    assert_eq!(record_entry(&l, p, r), None);
    // Without historic records in genesis, the same ids are ordinary and do not exist.
    let mut cold = Ledger::new(&genesis(false), 3);
    let r = HistoricRecords::record_id(PatientId(p), 0);
    assert_eq!(
        run(
            &mut cold,
            &mut co,
            access(r, p, home(p), AccessPurpose::Treatment)
        ),
        unknown
    );
}

#[test]
fn historic_record_replace_follows_custodian_rules() {
    let mut l = Ledger::new(&genesis(true), 3);
    let mut co = Coordinator::new(1);
    let p = 5; // home H3
    let r = HistoricRecords::record_id(PatientId(p), 1);
    assert_eq!(
        run(&mut l, &mut co, write(r, p, H1)),
        TxOutcome::Single(Receipt::Rejected(RejectReason::NotCustodian))
    );
    assert_eq!(
        run(&mut l, &mut co, write(r, p + 1, home(p))),
        TxOutcome::Single(Receipt::Rejected(RejectReason::PatientMismatch))
    );
    assert_eq!(
        run(&mut l, &mut co, write(r, p, home(p))),
        TxOutcome::Single(Receipt::Accepted)
    );
    match record_entry(&l, p, r) {
        Some(Value::Record(e)) => {
            assert_eq!(e.version, 2, "replaces the genesis version");
            assert_eq!(e.custodian, home(p));
            assert_eq!(e.patient, PatientId(p));
        }
        other => panic!("expected a record entry, got {other:?}"),
    }
}

#[test]
fn unread_historic_records_leave_state_roots_unchanged() {
    let warm = Ledger::new(&genesis(true), 3);
    let cold = Ledger::new(&genesis(false), 3);
    assert_eq!(warm.state_roots(), cold.state_roots());
    assert_ne!(
        genesis(true).hash(),
        genesis(false).hash(),
        "committed in genesis"
    );
    // The same fresh-record traffic gives the same roots with or without a history.
    let (mut warm, mut cold) = (warm, cold);
    let mut co = Coordinator::new(1);
    for p in 0..20 {
        let r = RecordId(p << 24);
        for l in [&mut warm, &mut cold] {
            assert_eq!(
                run(l, &mut co, write(r, p, home(p))),
                TxOutcome::Single(Receipt::Accepted)
            );
        }
    }
    assert_eq!(warm.state_roots(), cold.state_roots());
}

#[test]
fn genesis_with_history_round_trips_and_validates() {
    let g = genesis(true);
    assert_eq!(Genesis::decode(&g.to_bytes()).unwrap(), g);
    let g = genesis(false);
    assert_eq!(Genesis::decode(&g.to_bytes()).unwrap(), g);
    let bad = GenesisBuilder::new()
        .org(H1, OrgKind::Hospital, 0)
        .historic_records(Some(HistoricRecords {
            patients: 10,
            min_per_patient: 5,
            max_per_patient: 4,
        }))
        .build();
    assert!(bad.is_err());
    let no_orgs = GenesisBuilder::new()
        .historic_records(Some(HistoricRecords::with_defaults(10)))
        .build();
    assert!(no_orgs.is_err());
}

#[test]
fn historic_counts_are_uniform_in_the_documented_range() {
    let h = HistoricRecords::with_defaults(1 << 20);
    let n = 200_000u64;
    let counts: Vec<u32> = (0..n).map(|p| h.count(PatientId(p))).collect();
    assert!(counts.iter().all(|&c| (1_000..=2_000).contains(&c)));
    let mean = counts.iter().map(|&c| c as f64).sum::<f64>() / n as f64;
    // Uniform on 1000..=2000: mean 1500, sd ≈ 289, standard error ≈ 0.65.
    assert!((mean - 1_500.0).abs() < 5.0, "mean {mean}");
    assert!(counts.contains(&1_000) && counts.contains(&2_000));
    assert_eq!(h.count(PatientId(1 << 20)), 0, "out of range");
}
