//! Shared proptest strategies.
#![allow(dead_code)]

use ledger_core::block::{Block, BlockHeader};
use ledger_core::types::*;
use ledger_core::{ShardOp, XId};
use proptest::prelude::*;

pub fn arb_hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>()
}

pub fn arb_tx() -> impl Strategy<Value = Tx> {
    let resource = prop_oneof![
        Just(ResourceKind::Observation),
        Just(ResourceKind::Encounter),
        Just(ResourceKind::MedicationRequest),
        Just(ResourceKind::Condition),
        Just(ResourceKind::Procedure),
        Just(ResourceKind::Patient),
        Just(ResourceKind::DocumentReference),
    ];
    let purpose = prop_oneof![
        Just(AccessPurpose::Treatment),
        Just(AccessPurpose::Payment),
        Just(AccessPurpose::Operations),
        Just(AccessPurpose::Emergency),
    ];
    let modality = prop_oneof![
        Just(Modality::Ct),
        Just(Modality::Mr),
        Just(Modality::CrDx),
        Just(Modality::Mammography),
        Just(Modality::Ultrasound),
        Just(Modality::PetCt),
    ];
    let event = prop_oneof![
        any::<u64>().prop_map(|product| SupplyEventKind::Commission { product }),
        any::<u64>().prop_map(|t| SupplyEventKind::Ship { to: OrgId(t) }),
        Just(SupplyEventKind::Receive),
        any::<u64>().prop_map(|p| SupplyEventKind::Dispense {
            patient: PatientId(p)
        }),
        any::<i16>().prop_map(|c| SupplyEventKind::TemperatureExcursion { celsius_x10: c }),
    ];
    let u = any::<u64>;
    prop_oneof![
        (u(), u(), u(), resource, arb_hash(), any::<u32>()).prop_map(
            |(r, p, a, resource, h, s)| Tx::RecordWrite {
                record: RecordId(r),
                patient: PatientId(p),
                author: OrgId(a),
                resource,
                doc_hash: h,
                size_bytes: s
            }
        ),
        (u(), u(), u(), u(), purpose, u()).prop_map(|(r, p, a, us, purpose, at)| {
            Tx::RecordAccess {
                record: RecordId(r),
                patient: PatientId(p),
                accessor: OrgId(a),
                user: UserId(us),
                purpose,
                at_ms: at,
            }
        }),
        (u(), u(), any::<u8>(), u()).prop_map(|(p, g, s, e)| Tx::ConsentGrant {
            patient: PatientId(p),
            grantee: OrgId(g),
            scope: ConsentScope(s),
            expires_at_ms: e
        }),
        (u(), u()).prop_map(|(p, g)| Tx::ConsentRevoke {
            patient: PatientId(p),
            grantee: OrgId(g)
        }),
        (u(), u(), u(), modality, arb_hash(), u(), any::<u32>()).prop_map(
            |(s, p, c, modality, h, sz, n)| {
                Tx::ImagingAnchor {
                    study: StudyId(s),
                    patient: PatientId(p),
                    centre: OrgId(c),
                    modality,
                    content_root: h,
                    size_bytes: sz,
                    chunk_count: n,
                }
            }
        ),
        (u(), u(), u(), u(), any::<u32>(), any::<u32>(), u()).prop_map(
            |(c, p, pr, py, code, day, a)| {
                Tx::ClaimSubmit {
                    claim: ClaimId(c),
                    patient: PatientId(p),
                    provider: OrgId(pr),
                    payer: OrgId(py),
                    service_code: code,
                    service_day: day,
                    amount_cents: a,
                }
            }
        ),
        (u(), u(), u(), u()).prop_map(|(c, p, py, a)| Tx::ClaimAdjudicate {
            claim: ClaimId(c),
            patient: PatientId(p),
            payer: OrgId(py),
            approved_cents: a
        }),
        (u(), u(), u(), u(), u()).prop_map(|(c, p, py, pr, a)| Tx::ClaimPay {
            claim: ClaimId(c),
            patient: PatientId(p),
            payer: OrgId(py),
            provider: OrgId(pr),
            amount_cents: a
        }),
        (u(), u(), u()).prop_map(|(f, t, a)| Tx::Payment {
            from: OrgId(f),
            to: OrgId(t),
            amount_cents: a
        }),
        (u(), u(), event).prop_map(|(p, a, event)| Tx::Supply {
            package: PackageId(p),
            actor: OrgId(a),
            event
        }),
    ]
}

pub fn arb_op() -> impl Strategy<Value = ShardOp> {
    prop_oneof![
        arb_tx().prop_map(ShardOp::Tx),
        (any::<u64>(), arb_tx()).prop_map(|(x, tx)| ShardOp::Prepare { xid: XId(x), tx }),
        any::<u64>().prop_map(|x| ShardOp::Commit { xid: XId(x) }),
        any::<u64>().prop_map(|x| ShardOp::Abort { xid: XId(x) }),
    ]
}

pub fn arb_block() -> impl Strategy<Value = Block> {
    (
        any::<u32>(),
        any::<u64>(),
        arb_hash(),
        arb_hash(),
        arb_hash(),
        arb_hash(),
        any::<u64>(),
        prop::collection::vec(arb_op(), 0..20),
    )
        .prop_map(|(s, h, a, b, c, d, t, ops)| Block {
            header: BlockHeader {
                shard: ShardId(s),
                height: h,
                prev_hash: a,
                tx_root: b,
                receipts_root: c,
                state_root: d,
                timestamp_ms: t,
                op_count: ops.len() as u32,
            },
            ops,
        })
}
