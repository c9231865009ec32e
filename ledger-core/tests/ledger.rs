//! Execution, cross-shard atomicity, conservation, consent, order independence.

use ledger_core::exec::{Receipt, RejectReason};
use ledger_core::genesis::{Genesis, GenesisBuilder};
use ledger_core::state::{Key, Value};
use ledger_core::types::*;
use ledger_core::{
    shards_of, AccountLocking, Coordinator, Ledger, LedgerConfig, ShardOp, TxOutcome, Vote, XId,
};
use proptest::prelude::*;

const H1: OrgId = OrgId(1);
const H2: OrgId = OrgId(2);
const H3: OrgId = OrgId(3);
const INS: OrgId = OrgId(20);
const INS2: OrgId = OrgId(21);
const PHARM: OrgId = OrgId(30);

fn genesis() -> Genesis {
    let mut b = GenesisBuilder::new()
        .org(H1, OrgKind::Hospital, 10_000)
        .org(H2, OrgKind::Hospital, 10_000)
        .org(H3, OrgKind::Hospital, 0)
        .org(PHARM, OrgKind::Pharmacy, 5_000)
        .insurer(INS, 100_000, 50_000)
        .insurer(INS2, 3_000, 0)
        .reference_price(1, 10_000);
    for p in 0..64 {
        b = b.cover(PatientId(p), if p % 2 == 0 { INS } else { INS2 });
    }
    b.build().unwrap()
}

fn ledger_with(g: &Genesis, shards: u32, account_locking: AccountLocking) -> Ledger {
    Ledger::with_config(
        g,
        shards,
        LedgerConfig {
            account_locking,
            ..LedgerConfig::default()
        },
    )
}

fn arb_locking() -> impl Strategy<Value = AccountLocking> {
    prop_oneof![Just(AccountLocking::Lock), Just(AccountLocking::Escrow)]
}

fn one(ledger: &mut Ledger, co: &mut Coordinator, tx: Tx, t: u64) -> TxOutcome {
    co.run_round(ledger, &[tx], t)[0]
}

fn audit(ledger: &Ledger, p: PatientId) -> u64 {
    let s = ledger_core::routing::patient_shard(p, ledger.shard_count() as u32).0 as usize;
    match ledger.shards[s].state().get(&Key::Audit(p)) {
        Some(Value::Audit(a)) => a.count,
        _ => 0,
    }
}

fn write(p: u64, author: OrgId) -> Tx {
    Tx::RecordWrite {
        record: RecordId(p),
        patient: PatientId(p),
        author,
        resource: ResourceKind::Observation,
        doc_hash: [1; 32],
        size_bytes: 10,
    }
}
fn access(p: u64, who: OrgId, purpose: AccessPurpose, at_ms: u64) -> Tx {
    Tx::RecordAccess {
        record: RecordId(p),
        patient: PatientId(p),
        accessor: who,
        user: UserId(9),
        purpose,
        at_ms,
    }
}

#[test]
fn consent_enforced_and_audited() {
    for shards in [1, 3] {
        let mut l = Ledger::new(&genesis(), shards);
        let mut co = Coordinator::new(1);
        let p = 5;
        assert_eq!(
            one(&mut l, &mut co, write(p, H1), 10),
            TxOutcome::Single(Receipt::Accepted)
        );
        // Custodian reads.
        assert_eq!(
            one(
                &mut l,
                &mut co,
                access(p, H1, AccessPurpose::Treatment, 20),
                20
            ),
            TxOutcome::Single(Receipt::Accepted)
        );
        // No consent: rejected AND audited.
        let before = audit(&l, PatientId(p));
        assert_eq!(
            one(
                &mut l,
                &mut co,
                access(p, H2, AccessPurpose::Treatment, 30),
                30
            ),
            TxOutcome::Single(Receipt::Rejected(RejectReason::NoConsent))
        );
        assert_eq!(
            audit(&l, PatientId(p)),
            before + 1,
            "rejected access must be audited"
        );
        // Emergency: break glass.
        assert_eq!(
            one(
                &mut l,
                &mut co,
                access(p, H2, AccessPurpose::Emergency, 31),
                31
            ),
            TxOutcome::Single(Receipt::AcceptedBreakGlass)
        );
        // Grant, read, revoke, read again.
        let grant = Tx::ConsentGrant {
            patient: PatientId(p),
            grantee: H2,
            scope: ConsentScope::READ_RECORDS,
            expires_at_ms: 1_000,
        };
        let g = one(&mut l, &mut co, grant, 40);
        assert!(
            matches!(
                g,
                TxOutcome::Committed | TxOutcome::Single(Receipt::Accepted)
            ),
            "{g:?}"
        );
        assert_eq!(
            one(
                &mut l,
                &mut co,
                access(p, H2, AccessPurpose::Treatment, 50),
                50
            ),
            TxOutcome::Single(Receipt::Accepted)
        );
        // Expiry honoured.
        assert_eq!(
            one(
                &mut l,
                &mut co,
                access(p, H2, AccessPurpose::Treatment, 1_000),
                1_000
            ),
            TxOutcome::Single(Receipt::Rejected(RejectReason::ConsentExpired))
        );
        let revoke = Tx::ConsentRevoke {
            patient: PatientId(p),
            grantee: H2,
        };
        let r = one(&mut l, &mut co, revoke.clone(), 60);
        assert!(matches!(
            r,
            TxOutcome::Committed | TxOutcome::Single(Receipt::Accepted)
        ));
        assert_eq!(
            one(
                &mut l,
                &mut co,
                access(p, H2, AccessPurpose::Treatment, 70),
                70
            ),
            TxOutcome::Single(Receipt::Rejected(RejectReason::NoConsent))
        );
        // Revoke of a non-existent consent is rejected.
        let r = one(&mut l, &mut co, revoke, 80);
        assert!(matches!(
            r,
            TxOutcome::Aborted(RejectReason::NoSuchConsent)
                | TxOutcome::Single(Receipt::Rejected(RejectReason::NoSuchConsent))
        ));
        assert_eq!(
            audit(&l, PatientId(p)),
            6,
            "every access attempt is audited"
        );
        // Non-custodian replace without consent rejected.
        assert_eq!(
            one(&mut l, &mut co, write(p, H2), 90),
            TxOutcome::Single(Receipt::Rejected(RejectReason::NotCustodian))
        );
        for s in &l.shards {
            s.check_invariants();
        }
    }
}

#[test]
fn claims_lifecycle_and_rules() {
    let mut l = Ledger::new(&genesis(), 4);
    let mut co = Coordinator::new(1);
    let sub = |c: u64, p: u64, payer: OrgId, code: u32, day: u32, amt: u64| Tx::ClaimSubmit {
        claim: ClaimId(c),
        patient: PatientId(p),
        provider: H1,
        payer,
        service_code: code,
        service_day: day,
        amount_cents: amt,
    };
    let rej = |r| TxOutcome::Single(Receipt::Rejected(r));
    let ok = TxOutcome::Single(Receipt::Accepted);
    assert_eq!(one(&mut l, &mut co, sub(1, 2, INS, 1, 1, 20_000), 1), ok);
    assert_eq!(
        one(&mut l, &mut co, sub(1, 2, INS, 1, 2, 20_000), 1),
        rej(RejectReason::DuplicateClaimId)
    );
    assert_eq!(
        one(&mut l, &mut co, sub(2, 2, INS, 1, 1, 20_000), 1),
        rej(RejectReason::DuplicateClaim)
    );
    assert_eq!(
        one(&mut l, &mut co, sub(3, 2, INS2, 1, 3, 20_000), 1),
        rej(RejectReason::NotCovered)
    );
    assert_eq!(
        one(&mut l, &mut co, sub(4, 2, INS, 2, 3, 60_000), 1),
        rej(RejectReason::OverClaimLimit)
    );
    assert_eq!(
        one(&mut l, &mut co, sub(5, 2, INS, 1, 4, 30_001), 1),
        rej(RejectReason::FraudSuspected)
    );
    assert_eq!(
        one(&mut l, &mut co, sub(6, 100, INS, 1, 4, 1), 1),
        rej(RejectReason::NotCovered)
    );
    // Daily-count fraud rule: 4 claims allowed per (provider, patient, day), the 5th flagged.
    for c in 0..4 {
        assert_eq!(
            one(
                &mut l,
                &mut co,
                sub(10 + c, 4, INS, 100 + c as u32, 9, 100),
                1
            ),
            ok
        );
    }
    assert_eq!(
        one(&mut l, &mut co, sub(20, 4, INS, 200, 9, 100), 1),
        rej(RejectReason::FraudSuspected)
    );
    // Adjudication rules.
    let adj = |payer, amt| Tx::ClaimAdjudicate {
        claim: ClaimId(1),
        patient: PatientId(2),
        payer,
        approved_cents: amt,
    };
    assert_eq!(
        one(&mut l, &mut co, adj(INS2, 100), 2),
        rej(RejectReason::NotClaimPayer)
    );
    assert_eq!(
        one(&mut l, &mut co, adj(INS, 20_001), 2),
        rej(RejectReason::ApprovedOverBilled)
    );
    let pay = |amt| Tx::ClaimPay {
        claim: ClaimId(1),
        patient: PatientId(2),
        payer: INS,
        provider: H1,
        amount_cents: amt,
    };
    assert!(matches!(
        one(&mut l, &mut co, pay(15_000), 3),
        TxOutcome::Aborted(RejectReason::InvalidClaimState)
    ));
    assert_eq!(one(&mut l, &mut co, adj(INS, 15_000), 2), ok);
    assert_eq!(
        one(&mut l, &mut co, adj(INS, 15_000), 2),
        rej(RejectReason::InvalidClaimState)
    );
    let money = l.total_money();
    assert!(matches!(
        one(&mut l, &mut co, pay(14_999), 3),
        TxOutcome::Aborted(RejectReason::AmountMismatch)
    ));
    let h1_before = balance(&l, H1);
    assert_eq!(one(&mut l, &mut co, pay(15_000), 3), TxOutcome::Committed);
    assert_eq!(balance(&l, H1), h1_before + 15_000);
    assert!(matches!(
        one(&mut l, &mut co, pay(15_000), 3),
        TxOutcome::Aborted(RejectReason::InvalidClaimState)
    ));
    assert_eq!(l.total_money(), money);
}

fn balance(l: &Ledger, o: OrgId) -> u64 {
    let s = ledger_core::routing::org_shard(o, l.shard_count() as u32).0 as usize;
    match l.shards[s].state().get(&Key::Account(o)) {
        Some(Value::Balance(b)) => *b,
        _ => panic!("no account"),
    }
}

#[test]
fn supply_chain_rules() {
    let mut l = Ledger::new(&genesis(), 2);
    let mut co = Coordinator::new(1);
    let s = |pkg: u64, actor, event| Tx::Supply {
        package: PackageId(pkg),
        actor,
        event,
    };
    let rej = |r| TxOutcome::Single(Receipt::Rejected(r));
    let ok = TxOutcome::Single(Receipt::Accepted);
    for pkg in [1, 2] {
        assert_eq!(
            one(
                &mut l,
                &mut co,
                s(pkg, H1, SupplyEventKind::Commission { product: 7 }),
                1
            ),
            ok
        );
        assert_eq!(
            one(
                &mut l,
                &mut co,
                s(pkg, H2, SupplyEventKind::Ship { to: PHARM }),
                1
            ),
            rej(RejectReason::NotHolder)
        );
        assert_eq!(
            one(
                &mut l,
                &mut co,
                s(pkg, H1, SupplyEventKind::Ship { to: PHARM }),
                1
            ),
            ok
        );
        assert_eq!(
            one(&mut l, &mut co, s(pkg, H2, SupplyEventKind::Receive), 1),
            rej(RejectReason::NotAddressee)
        );
        assert_eq!(
            one(&mut l, &mut co, s(pkg, PHARM, SupplyEventKind::Receive), 1),
            ok
        );
    }
    assert_eq!(
        one(
            &mut l,
            &mut co,
            s(1, H1, SupplyEventKind::Commission { product: 7 }),
            1
        ),
        rej(RejectReason::DuplicatePackage)
    );
    assert_eq!(
        one(
            &mut l,
            &mut co,
            s(
                2,
                PHARM,
                SupplyEventKind::TemperatureExcursion { celsius_x10: 99 }
            ),
            1
        ),
        ok
    );
    assert_eq!(
        one(
            &mut l,
            &mut co,
            s(
                2,
                PHARM,
                SupplyEventKind::Dispense {
                    patient: PatientId(1)
                }
            ),
            1
        ),
        rej(RejectReason::Quarantined)
    );
    assert_eq!(
        one(
            &mut l,
            &mut co,
            s(
                1,
                PHARM,
                SupplyEventKind::Dispense {
                    patient: PatientId(1)
                }
            ),
            1
        ),
        ok
    );
    assert_eq!(
        one(
            &mut l,
            &mut co,
            s(
                1,
                PHARM,
                SupplyEventKind::Dispense {
                    patient: PatientId(1)
                }
            ),
            1
        ),
        rej(RejectReason::InvalidSupplyTransition)
    );
    assert_eq!(
        one(&mut l, &mut co, s(9, PHARM, SupplyEventKind::Receive), 1),
        rej(RejectReason::UnknownPackage)
    );
}

#[test]
fn commit_or_abort_of_unknown_xid_is_a_clean_rejection() {
    let mut l = Ledger::new(&genesis(), 2);
    let r = l.shards[0].apply_block(
        vec![
            ShardOp::Commit { xid: XId(77) },
            ShardOp::Abort { xid: XId(78) },
        ],
        5,
    );
    assert_eq!(
        r.receipts,
        vec![Receipt::Rejected(RejectReason::UnknownXId); 2]
    );
}

#[test]
fn default_is_escrow() {
    assert_eq!(
        LedgerConfig::default().account_locking,
        AccountLocking::Escrow
    );
    assert_eq!(
        Ledger::new(&genesis(), 2).account_locking(),
        AccountLocking::Escrow
    );
    for m in [AccountLocking::Lock, AccountLocking::Escrow] {
        assert_eq!(AccountLocking::from_code(m.code()), Some(m));
    }
    assert_eq!(AccountLocking::from_code(7), None);
}

#[test]
fn no_wait_locking() {
    let g = genesis();
    let n = 8u32;
    let mut l = ledger_with(&g, n, AccountLocking::Lock);
    // Find a cross-shard payment.
    let tx = Tx::Payment {
        from: INS,
        to: H1,
        amount_cents: 10,
    };
    let set = shards_of(&tx, n);
    if !set.is_cross_shard() {
        return;
    }
    let from_shard = ledger_core::routing::org_shard(INS, n).0 as usize;
    let a = l.shards[from_shard].apply_block(
        vec![ShardOp::Prepare {
            xid: XId(1),
            tx: tx.clone(),
        }],
        1,
    );
    assert_eq!(a.receipts[0], Receipt::Vote(Vote::Yes));
    let b = l.shards[from_shard].apply_block(
        vec![
            ShardOp::Prepare {
                xid: XId(2),
                tx: tx.clone(),
            },
            ShardOp::Prepare {
                xid: XId(1),
                tx: tx.clone(),
            },
        ],
        2,
    );
    assert_eq!(
        b.receipts,
        vec![
            Receipt::Vote(Vote::No(RejectReason::KeyLocked)),
            Receipt::Vote(Vote::No(RejectReason::DuplicateXId))
        ]
    );
    let c = l.shards[from_shard].apply_block(
        vec![
            ShardOp::Abort { xid: XId(1) },
            ShardOp::Prepare { xid: XId(2), tx },
        ],
        3,
    );
    assert_eq!(c.receipts, vec![Receipt::Aborted, Receipt::Vote(Vote::Yes)]);
}

/// The smallest shard count where two hospitals live off `INS`'s shard, and those two.
fn hot_insurer_setup() -> (u32, OrgId, OrgId) {
    (2..=16u32)
        .find_map(|n| {
            let ins = ledger_core::routing::org_shard(INS, n);
            let hs: Vec<OrgId> = [H1, H2, H3]
                .into_iter()
                .filter(|h| ledger_core::routing::org_shard(*h, n) != ins)
                .collect();
            (hs.len() >= 2).then(|| (n, hs[0], hs[1]))
        })
        .expect("some shard count separates the insurer from two hospitals")
}

/// Two approved claims of patients covered by `INS`, paid to `h_a` and `h_b` in one round.
fn two_claim_payments(l: &mut Ledger, co: &mut Coordinator, h_a: OrgId, h_b: OrgId) -> Vec<Tx> {
    let mut pays = Vec::new();
    for (p, h) in [(0u64, h_a), (2, h_b)] {
        let submit = Tx::ClaimSubmit {
            claim: ClaimId(p),
            patient: PatientId(p),
            provider: h,
            payer: INS,
            service_code: 1,
            service_day: 0,
            amount_cents: 1_000,
        };
        assert_eq!(one(l, co, submit, 1), TxOutcome::Single(Receipt::Accepted));
        let adj = Tx::ClaimAdjudicate {
            claim: ClaimId(p),
            patient: PatientId(p),
            payer: INS,
            approved_cents: 900,
        };
        assert_eq!(one(l, co, adj, 2), TxOutcome::Single(Receipt::Accepted));
        pays.push(Tx::ClaimPay {
            claim: ClaimId(p),
            patient: PatientId(p),
            payer: INS,
            provider: h,
            amount_cents: 900,
        });
    }
    pays
}

#[test]
fn hot_insurer_two_claim_payments_in_one_block() {
    let g = genesis();
    let (n, h_a, h_b) = hot_insurer_setup();
    for (mode, second) in [
        (
            AccountLocking::Lock,
            TxOutcome::Aborted(RejectReason::KeyLocked),
        ),
        (AccountLocking::Escrow, TxOutcome::Committed),
    ] {
        let mut l = ledger_with(&g, n, mode);
        let mut co = Coordinator::new(1);
        let pays = two_claim_payments(&mut l, &mut co, h_a, h_b);
        let before = balance(&l, INS);
        let out = co.run_round(&mut l, &pays, 3);
        assert_eq!(out, vec![TxOutcome::Committed, second], "{mode:?}");
        let paid = if second == TxOutcome::Committed {
            1800
        } else {
            900
        };
        assert_eq!(balance(&l, INS), before - paid, "{mode:?}");
        assert_eq!(l.total_money(), g.total_money());
    }
}

#[test]
fn escrow_still_locks_hot_patients() {
    let g = genesis();
    let (n, h_a, _) = hot_insurer_setup();
    let mut l = ledger_with(&g, n, AccountLocking::Escrow);
    let mut co = Coordinator::new(1);
    let pays = two_claim_payments(&mut l, &mut co, h_a, h_a);
    // The same claim paid twice in one round: the claim key is locked by the first.
    let out = co.run_round(&mut l, &[pays[0].clone(), pays[0].clone()], 3);
    assert_eq!(
        out,
        vec![
            TxOutcome::Committed,
            TxOutcome::Aborted(RejectReason::KeyLocked)
        ]
    );
    assert_eq!(l.total_money(), g.total_money());
}

#[test]
fn escrow_holds_reduce_available_balance() {
    // INS2 (3_000) pays H1 and H2 cross-shard; single-shard txs on INS2's shard see only
    // the available balance while a hold is pending.
    let g = genesis();
    let n = 8u32;
    let ins_shard = ledger_core::routing::org_shard(INS2, n);
    let Some(other) = [H1, H2, H3]
        .into_iter()
        .find(|h| ledger_core::routing::org_shard(*h, n) != ins_shard)
    else {
        return;
    };
    let local = [H1, H2, H3, PHARM, INS]
        .into_iter()
        .find(|h| ledger_core::routing::org_shard(*h, n) == ins_shard);
    let mut l = ledger_with(&g, n, AccountLocking::Escrow);
    let s = ins_shard.0 as usize;
    let pay = |to: OrgId, amount_cents| Tx::Payment {
        from: INS2,
        to,
        amount_cents,
    };
    let r = l.shards[s].apply_block(
        vec![
            ShardOp::Prepare {
                xid: XId(1),
                tx: pay(other, 2_000),
            },
            ShardOp::Prepare {
                xid: XId(2),
                tx: pay(other, 1_500),
            },
            ShardOp::Prepare {
                xid: XId(3),
                tx: pay(other, 1_000),
            },
        ],
        1,
    );
    assert_eq!(
        r.receipts,
        vec![
            Receipt::Vote(Vote::Yes),
            Receipt::Vote(Vote::No(RejectReason::InsufficientFunds)),
            Receipt::Vote(Vote::Yes)
        ]
    );
    assert_eq!(l.shards[s].held_cents(), 3_000);
    assert_eq!(l.shards[s].locked_keys(), 0);
    assert_eq!(balance(&l, INS2), 0);
    assert_eq!(l.total_money(), g.total_money());
    if let Some(local) = local {
        let r = l.shards[s].apply_block(vec![ShardOp::Tx(pay(local, 1))], 2);
        assert_eq!(
            r.receipts,
            vec![Receipt::Rejected(RejectReason::InsufficientFunds)]
        );
    }
    // Abort releases xid 1's hold; commit finalises xid 3's debit.
    let r = l.shards[s].apply_block(
        vec![
            ShardOp::Abort { xid: XId(1) },
            ShardOp::Commit { xid: XId(3) },
        ],
        3,
    );
    assert_eq!(r.receipts, vec![Receipt::Aborted, Receipt::Committed]);
    assert_eq!(l.shards[s].held_cents(), 0);
    assert_eq!(balance(&l, INS2), 2_000);
    l.shards[s].check_invariants();
    // Money is conserved while xid 3 is committed here but not yet credited elsewhere.
    assert_eq!(l.total_money(), g.total_money());
    let o = ledger_core::routing::org_shard(other, n).0 as usize;
    let before = balance(&l, other);
    let r = l.shards[o].apply_block(
        vec![
            ShardOp::Prepare {
                xid: XId(3),
                tx: pay(other, 1_000),
            },
            ShardOp::Commit { xid: XId(3) },
        ],
        4,
    );
    assert_eq!(
        r.receipts,
        vec![Receipt::Vote(Vote::Yes), Receipt::Committed]
    );
    assert_eq!(balance(&l, other), before + 1_000);
    assert_eq!(l.total_money(), g.total_money());
}

fn arb_money_tx() -> impl Strategy<Value = Tx> {
    let org = prop_oneof![
        Just(H1),
        Just(H2),
        Just(H3),
        Just(PHARM),
        Just(INS),
        Just(INS2)
    ];
    prop_oneof![
        (org.clone(), org.clone(), 0u64..8_000).prop_map(|(f, t, a)| Tx::Payment {
            from: f,
            to: t,
            amount_cents: a
        }),
        (0u64..16, 0u64..30_000).prop_map(|(p, a)| Tx::ClaimSubmit {
            claim: ClaimId(p),
            patient: PatientId(p),
            provider: if p % 3 == 0 { H2 } else { H1 },
            payer: if p % 2 == 0 { INS } else { INS2 },
            service_code: 1,
            service_day: 0,
            amount_cents: a
        }),
        (0u64..16, 0u64..30_000).prop_map(|(p, a)| Tx::ClaimAdjudicate {
            claim: ClaimId(p),
            patient: PatientId(p),
            payer: if p % 2 == 0 { INS } else { INS2 },
            approved_cents: a
        }),
        (0u64..16, 0u64..30_000).prop_map(|(p, a)| Tx::ClaimPay {
            claim: ClaimId(p),
            patient: PatientId(p),
            payer: if p % 2 == 0 { INS } else { INS2 },
            provider: if p % 3 == 0 { H2 } else { H1 },
            amount_cents: a
        }),
        (0u64..16, org.clone()).prop_map(|(p, g)| Tx::ConsentGrant {
            patient: PatientId(p),
            grantee: g,
            scope: ConsentScope::ALL,
            expires_at_ms: 100
        }),
        (0u64..16, org).prop_map(|(p, g)| Tx::ConsentRevoke {
            patient: PatientId(p),
            grantee: g
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Money is conserved at every step, cross-shard txs are all-or-nothing, and the
    /// state roots do not depend on parallel vs sequential execution.
    #[test]
    fn conservation_atomicity_and_determinism(
        rounds in prop::collection::vec(prop::collection::vec(arb_money_tx(), 1..12), 1..8),
        shards in 1u32..5,
        locking in arb_locking(),
    ) {
        let g = genesis();
        let mut par = ledger_with(&g, shards, locking);
        let mut co = Coordinator::new(1);
        let money = g.total_money();
        prop_assert_eq!(par.total_money(), money);
        // Replica fed the same per-shard blocks, applied sequentially in reverse shard order.
        let mut seq = ledger_with(&g, shards, locking);
        for (i, txs) in rounds.iter().enumerate() {
            let outcomes = co.run_round(&mut par, txs, i as u64 * 10);
            prop_assert_eq!(par.total_money(), money);
            for (tx, o) in txs.iter().zip(&outcomes) {
                if let TxOutcome::Committed = o {
                    prop_assert!(shards_of(tx, shards).is_cross_shard());
                }
            }
            for s in &par.shards {
                prop_assert_eq!(s.pending_xids(), 0);
                prop_assert_eq!(s.locked_keys(), 0);
                s.check_invariants();
            }
        }
        // Re-execute the logged blocks sequentially, shards in reverse order.
        for s in (0..shards as usize).rev() {
            let log = par.shards[s].log().unwrap().bytes().to_vec();
            let mut off = 0;
            let mut first = true;
            while off < log.len() {
                let len = u32::from_le_bytes(log[off..off + 4].try_into().unwrap()) as usize;
                let block = <ledger_core::Block as ledger_core::Decode>::decode(&log[off + 4..off + 4 + len]).unwrap();
                off += 4 + len + 32;
                if first { first = false; continue; }
                let mut per: Vec<Vec<ShardOp>> = vec![Vec::new(); shards as usize];
                per[s] = block.ops;
                let applied = seq.apply_blocks_sequential(per, block.header.timestamp_ms);
                prop_assert_eq!(applied[s].as_ref().unwrap().header, block.header);
            }
        }
        prop_assert_eq!(seq.state_roots(), par.state_roots());
        prop_assert_eq!(seq.total_money(), money);
    }

    /// A cross-shard tx whose parts are prepared but then aborted leaves no trace, and a
    /// committed one is applied on every involved shard.
    #[test]
    fn atomic_all_or_nothing(
        amount in 1u64..20_000,
        commit in any::<bool>(),
        locking in arb_locking(),
    ) {
        let g = genesis();
        let n = 4;
        let mut l = ledger_with(&g, n, locking);
        let tx = Tx::Payment { from: INS, to: H2, amount_cents: amount };
        let set = shards_of(&tx, n);
        let roots_before = l.state_roots();
        let (b_ins, b_h2) = (balance(&l, INS), balance(&l, H2));
        let mut per = vec![Vec::new(); n as usize];
        for s in set.iter() {
            per[s.0 as usize].push(ShardOp::Prepare { xid: XId(9), tx: tx.clone() });
        }
        let r = l.apply_blocks_parallel(per, 1);
        let all_yes = set.iter().all(|s| r[s.0 as usize].as_ref().unwrap().receipts[0] == Receipt::Vote(Vote::Yes));
        prop_assert!(all_yes);
        prop_assert_eq!(l.total_money(), g.total_money());
        let held: u128 = l.shards.iter().map(|s| s.held_cents()).sum();
        let expect_held = match locking {
            AccountLocking::Escrow => amount as u128,
            AccountLocking::Lock => 0,
        };
        prop_assert_eq!(held, expect_held);
        let mut per = vec![Vec::new(); n as usize];
        for s in set.iter() {
            per[s.0 as usize].push(if commit { ShardOp::Commit { xid: XId(9) } } else { ShardOp::Abort { xid: XId(9) } });
        }
        l.apply_blocks_parallel(per, 2);
        prop_assert_eq!(l.total_money(), g.total_money());
        if commit {
            prop_assert_eq!(balance(&l, INS), b_ins - amount);
            prop_assert_eq!(balance(&l, H2), b_h2 + amount);
        } else {
            prop_assert_eq!(l.state_roots(), roots_before);
        }
    }

    /// Partial commit: one shard commits before the other; total money is still constant.
    #[test]
    fn money_constant_mid_commit(
        amount in 1u64..20_000,
        locking in arb_locking(),
        commit in any::<bool>(),
        reverse in any::<bool>(),
    ) {
        let g = genesis();
        let n = 8;
        let tx = Tx::Payment { from: INS, to: H1, amount_cents: amount };
        let set = shards_of(&tx, n);
        prop_assume!(set.is_cross_shard());
        let mut l = ledger_with(&g, n, locking);
        for s in set.iter() {
            l.shards[s.0 as usize].apply_block(vec![ShardOp::Prepare { xid: XId(1), tx: tx.clone() }], 1);
            prop_assert_eq!(l.total_money(), g.total_money());
        }
        let mut order: Vec<_> = set.iter().collect();
        if reverse {
            order.reverse();
        }
        let op = if commit { ShardOp::Commit { xid: XId(1) } } else { ShardOp::Abort { xid: XId(1) } };
        for s in order {
            l.shards[s.0 as usize].apply_block(vec![op.clone()], 2);
            prop_assert_eq!(l.total_money(), g.total_money());
            l.shards[s.0 as usize].check_invariants();
        }
        let paid = if commit { amount } else { 0 };
        prop_assert_eq!(balance(&l, INS), 100_000 - paid);
        prop_assert_eq!(balance(&l, H1), 10_000 + paid);
    }
}

#[test]
fn routing_is_stable_and_in_range() {
    for n in 1..20u32 {
        for p in 0..500u64 {
            let s = ledger_core::routing::patient_shard(PatientId(p), n);
            assert!(s.0 < n);
        }
    }
    // Jump hash moves about 1/(n+1) keys when growing.
    let moved = (0..10_000u64)
        .filter(|&p| {
            ledger_core::routing::patient_shard(PatientId(p), 4)
                != ledger_core::routing::patient_shard(PatientId(p), 5)
        })
        .count();
    assert!((1500..2500).contains(&moved), "moved {moved}");
}

/// `apply_blocks_parallel` pins shard `i` to pool worker `i % threads`; whatever the pool
/// size and however many shards have no block this round, it returns exactly what the
/// sequential apply returns, in shard order, and leaves the same state.
#[test]
fn parallel_apply_matches_sequential_for_any_pool_size() {
    let g = genesis();
    for threads in [1usize, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for shards in [1u32, 3, 8] {
            let mut par = ledger_with(&g, shards, AccountLocking::Escrow);
            let mut seq = ledger_with(&g, shards, AccountLocking::Escrow);
            for round in 0..6u64 {
                let mut per: Vec<Vec<ShardOp>> = vec![Vec::new(); shards as usize];
                for p in 0..64u64 {
                    // Round 3 leaves every shard but one empty; other rounds skip some patients.
                    if (round == 3 && p % 7 != 0) || (p + round) % 5 == 0 {
                        continue;
                    }
                    let tx = if round % 2 == 0 {
                        write(round * 1_000 + p, if p % 2 == 0 { H1 } else { H2 })
                    } else {
                        access((round - 1) * 1_000 + p, H3, AccessPurpose::Treatment, round)
                    };
                    let set = shards_of(&tx, shards);
                    assert!(!set.is_cross_shard());
                    per[set.as_slice()[0].0 as usize].push(ShardOp::Tx(tx));
                }
                let a = pool.install(|| par.apply_blocks_parallel(per.clone(), round));
                let b = seq.apply_blocks_sequential(per.clone(), round);
                assert_eq!(a, b, "threads {threads}, shards {shards}, round {round}");
                for (i, ops) in per.iter().enumerate() {
                    assert_eq!(a[i].is_some(), !ops.is_empty(), "shard {i} round {round}");
                }
            }
            assert_eq!(par.state_roots(), seq.state_roots());
        }
    }
}
