//! An end-to-end demonstration: a small consortium on 4 shards runs every kind of
//! transaction (including rejected accesses, consent revocation and expiry, duplicate and
//! suspicious claims, cross-shard claim payments that abort on lock conflicts (the demo
//! runs [`crate::AccountLocking::Lock`]) or insufficient funds, and a supply chain with a cold-chain excursion), exports its block
//! log and verifies it. Fully deterministic: the script is arithmetic on patient numbers.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::exec::{Receipt, RejectReason};
use crate::genesis::{Genesis, GenesisBuilder, GenesisError};
use crate::log::{export, verify_dir, ExportError, VerifyError, VerifyReport};
use crate::shard::{AccountLocking, Ledger, LedgerConfig};
use crate::types::{
    AccessPurpose, ClaimId, ConsentScope, Hash32, Modality, OrgId, OrgKind, PackageId, PatientId,
    RecordId, ResourceKind, StudyId, SupplyEventKind, Tx, UserId,
};
use crate::xshard::{Coordinator, TxOutcome};

/// Shards in the demo.
pub const DEMO_SHARDS: u32 = 4;
/// Patients in the demo.
pub const DEMO_PATIENTS: u64 = 300;
/// Patients `DEMO_PATIENTS - 9 ..= DEMO_PATIENTS` have no insurance.
const UNCOVERED_FROM: u64 = DEMO_PATIENTS - 9;
const HOSPITALS: [OrgId; 3] = [OrgId(1), OrgId(2), OrgId(3)];
const IMAGING: OrgId = OrgId(10);
const BIG_INSURER: OrgId = OrgId(20);
const SMALL_INSURER: OrgId = OrgId(21);
const PHARMACY: OrgId = OrgId(30);
const DISTRIBUTOR: OrgId = OrgId(31);
const PACKAGES: u64 = 20;
const OFFICE_VISIT: u32 = 99213;
const CT_HEAD: u32 = 70450;
const LAB_PANEL: u32 = 80053;

/// Demo failure.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The demo genesis is invalid (a bug).
    #[error("genesis: {0}")]
    Genesis(#[from] GenesisError),
    /// Export failed.
    #[error("export: {0}")]
    Export(#[from] ExportError),
    /// The exported log did not verify.
    #[error("verify: {0}")]
    Verify(#[from] VerifyError),
    /// Money was created or destroyed (a bug).
    #[error("money not conserved: {before} before, {after} after")]
    MoneyNotConserved {
        /// Before.
        before: u128,
        /// After.
        after: u128,
    },
}

/// What the demo did.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Shards.
    pub shards: u32,
    /// Patients.
    pub patients: u64,
    /// Transactions submitted.
    pub submitted: u64,
    /// Single-shard txs accepted (incl. break-glass).
    pub accepted: u64,
    /// Break-glass emergency accesses (accepted, flagged).
    pub break_glass: u64,
    /// Single-shard rejections by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Record accesses rejected yet written to the audit trail.
    pub rejected_audited: u64,
    /// Cross-shard txs committed.
    pub cross_committed: u64,
    /// Cross-shard aborts by reason of the first `No` vote.
    pub cross_aborted: BTreeMap<&'static str, u64>,
    /// Blocks per shard (excl. genesis).
    pub blocks_per_shard: Vec<u64>,
    /// Money at genesis.
    pub money_before: u128,
    /// Money at the end.
    pub money_after: u128,
    /// Final state roots.
    pub state_roots: Vec<Hash32>,
    /// Where the log was exported.
    pub log_dir: PathBuf,
    /// Verification of the exported log.
    pub verify: VerifyReport,
}

fn hex8(h: &Hash32) -> String {
    h[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ledger-core demo: {} patients on {} shards",
            self.patients, self.shards
        )?;
        writeln!(f, "  submitted transactions : {}", self.submitted)?;
        writeln!(
            f,
            "  single-shard accepted  : {} (of which break-glass: {})",
            self.accepted, self.break_glass
        )?;
        writeln!(
            f,
            "  single-shard rejected  : {}",
            self.rejected.values().sum::<u64>()
        )?;
        for (r, n) in &self.rejected {
            writeln!(f, "      {r:<26} {n}")?;
        }
        writeln!(f, "  rejected but audited   : {}", self.rejected_audited)?;
        writeln!(f, "  cross-shard committed  : {}", self.cross_committed)?;
        writeln!(
            f,
            "  cross-shard aborted    : {}",
            self.cross_aborted.values().sum::<u64>()
        )?;
        for (r, n) in &self.cross_aborted {
            writeln!(f, "      {r:<26} {n}")?;
        }
        writeln!(f, "  blocks per shard       : {:?}", self.blocks_per_shard)?;
        writeln!(
            f,
            "  money before / after   : {} / {} cents",
            self.money_before, self.money_after
        )?;
        for (i, r) in self.state_roots.iter().enumerate() {
            writeln!(f, "  state root shard {i}     : {}…", hex8(r))?;
        }
        writeln!(
            f,
            "  log {} verified: {} blocks, {} ops, {} bytes",
            self.log_dir.display(),
            self.verify.blocks,
            self.verify.ops,
            self.verify.bytes
        )
    }
}

/// The demo consortium's genesis.
pub fn demo_genesis() -> Result<Genesis, GenesisError> {
    let mut b = GenesisBuilder::new()
        .org(HOSPITALS[0], OrgKind::Hospital, 1_000_000)
        .org(HOSPITALS[1], OrgKind::Hospital, 1_000_000)
        .org(HOSPITALS[2], OrgKind::Hospital, 1_000_000)
        .org(IMAGING, OrgKind::ImagingCentre, 500_000)
        .insurer(BIG_INSURER, 50_000_000, 500_000)
        .insurer(SMALL_INSURER, 60_000, 200_000)
        .org(PHARMACY, OrgKind::Pharmacy, 200_000)
        .org(DISTRIBUTOR, OrgKind::Pharmacy, 200_000)
        .reference_price(OFFICE_VISIT, 15_000)
        .reference_price(CT_HEAD, 120_000)
        .reference_price(LAB_PANEL, 5_000);
    for p in 1..UNCOVERED_FROM {
        b = b.cover(
            PatientId(p),
            if p % 2 == 0 {
                BIG_INSURER
            } else {
                SMALL_INSURER
            },
        );
    }
    b.build()
}

fn custodian(p: u64) -> OrgId {
    HOSPITALS[(p % 3) as usize]
}
fn grantee(p: u64) -> OrgId {
    HOSPITALS[((p + 1) % 3) as usize]
}
fn stranger(p: u64) -> OrgId {
    HOSPITALS[((p + 2) % 3) as usize]
}
fn payer(p: u64) -> OrgId {
    if p % 2 == 0 {
        BIG_INSURER
    } else {
        SMALL_INSURER
    }
}
fn access(p: u64, who: OrgId, purpose: AccessPurpose, at_ms: u64) -> Tx {
    Tx::RecordAccess {
        record: RecordId(p * 10),
        patient: PatientId(p),
        accessor: who,
        user: UserId(who.0 * 1000 + p % 7),
        purpose,
        at_ms,
    }
}

struct Tally<'a> {
    report: &'a mut DemoReport,
}

impl Tally<'_> {
    fn record(&mut self, txs: &[Tx], outcomes: &[TxOutcome]) {
        for (tx, o) in txs.iter().zip(outcomes) {
            self.report.submitted += 1;
            match o {
                TxOutcome::Single(Receipt::Accepted) => self.report.accepted += 1,
                TxOutcome::Single(Receipt::AcceptedBreakGlass) => {
                    self.report.accepted += 1;
                    self.report.break_glass += 1;
                }
                TxOutcome::Single(Receipt::Rejected(r)) => {
                    *self.report.rejected.entry(r.name()).or_default() += 1;
                    if matches!(tx, Tx::RecordAccess { .. }) {
                        self.report.rejected_audited += 1;
                    }
                }
                TxOutcome::Single(other) => panic!("single-shard tx answered {other:?}"),
                TxOutcome::Committed => self.report.cross_committed += 1,
                TxOutcome::Aborted(r) => {
                    *self.report.cross_aborted.entry(r.name()).or_default() += 1
                }
            }
        }
    }
}

/// Runs the demo, exports the log to `out_dir/ledger/` and verifies it.
pub fn run(out_dir: &Path) -> Result<DemoReport, DemoError> {
    let genesis = demo_genesis()?;
    // Lock mode, so that a second claim payment from one insurer in a round aborts on the
    // account lock (escrow, the default, would let both commit).
    let config = LedgerConfig {
        account_locking: AccountLocking::Lock,
        ..LedgerConfig::default()
    };
    let mut ledger = Ledger::with_config(&genesis, DEMO_SHARDS, config);
    let mut co = Coordinator::new(1);
    let log_dir = out_dir.join("ledger");
    let mut report = DemoReport {
        shards: DEMO_SHARDS,
        patients: DEMO_PATIENTS,
        submitted: 0,
        accepted: 0,
        break_glass: 0,
        rejected: BTreeMap::new(),
        rejected_audited: 0,
        cross_committed: 0,
        cross_aborted: BTreeMap::new(),
        blocks_per_shard: Vec::new(),
        money_before: ledger.total_money(),
        money_after: 0,
        state_roots: Vec::new(),
        log_dir: log_dir.clone(),
        verify: VerifyReport {
            shard_count: 0,
            blocks: 0,
            ops: 0,
            bytes: 0,
            state_roots: Vec::new(),
        },
    };
    let patients = 1..=DEMO_PATIENTS;
    let round = |ledger: &mut Ledger,
                 co: &mut Coordinator,
                 report: &mut DemoReport,
                 txs: Vec<Tx>,
                 t_ms: u64| {
        let out = co.run_round(ledger, &txs, t_ms);
        assert_eq!(
            ledger.total_money(),
            report.money_before,
            "money not conserved during the demo"
        );
        Tally { report }.record(&txs, &out);
        out
    };

    // Round 1: records, imaging, consents, commissioning.
    let mut txs = Vec::new();
    for p in patients.clone() {
        let h = *blake3::hash(&p.to_le_bytes()).as_bytes();
        txs.push(Tx::RecordWrite {
            record: RecordId(p * 10),
            patient: PatientId(p),
            author: custodian(p),
            resource: ResourceKind::Encounter,
            doc_hash: h,
            size_bytes: 2_000 + (p as u32 % 50) * 100,
        });
        if p % 5 == 0 {
            txs.push(Tx::ImagingAnchor {
                study: StudyId(p),
                patient: PatientId(p),
                centre: IMAGING,
                modality: if p % 10 == 0 {
                    Modality::Ct
                } else {
                    Modality::CrDx
                },
                content_root: h,
                size_bytes: 30_000_000 + p * 1000,
                chunk_count: 120,
            });
        }
        if p % 4 == 0 {
            txs.push(Tx::ConsentGrant {
                patient: PatientId(p),
                grantee: grantee(p),
                scope: ConsentScope::READ_RECORDS,
                expires_at_ms: 1_000_000,
            });
        }
        if p % 8 == 0 {
            txs.push(Tx::ConsentGrant {
                patient: PatientId(p),
                grantee: IMAGING,
                scope: ConsentScope::ALL,
                expires_at_ms: 5_000,
            });
        }
    }
    for k in 1..=PACKAGES {
        txs.push(Tx::Supply {
            package: PackageId(k),
            actor: DISTRIBUTOR,
            event: SupplyEventKind::Commission {
                product: 30_000 + k % 3,
            },
        });
    }
    round(&mut ledger, &mut co, &mut report, txs, 1_000);

    // Round 2: accesses, a replaced record, claims, shipping.
    let mut txs = Vec::new();
    for p in patients.clone() {
        if p % 3 == 0 {
            txs.push(access(p, custodian(p), AccessPurpose::Treatment, 2_000));
        }
        if p % 4 == 0 {
            txs.push(access(p, grantee(p), AccessPurpose::Treatment, 2_000));
        }
        if p % 7 == 0 && p % 4 != 0 {
            txs.push(access(p, grantee(p), AccessPurpose::Operations, 2_000));
        }
        if p % 25 == 0 {
            txs.push(access(p, stranger(p), AccessPurpose::Emergency, 2_000));
        }
        if p % 6 == 0 {
            // Replace by the custodian (accepted) and by a stranger without consent (rejected).
            for author in [custodian(p), stranger(p)] {
                txs.push(Tx::RecordWrite {
                    record: RecordId(p * 10),
                    patient: PatientId(p),
                    author,
                    resource: ResourceKind::Encounter,
                    doc_hash: *blake3::hash(&(p + 1).to_le_bytes()).as_bytes(),
                    size_bytes: 4_000,
                });
            }
        }
        if p % 50 == 0 {
            txs.push(Tx::ImagingAnchor {
                study: StudyId(p),
                patient: PatientId(p),
                centre: IMAGING,
                modality: Modality::Mr,
                content_root: [7; 32],
                size_bytes: 1,
                chunk_count: 1,
            });
        }
        let claim = |id: u64, code: u32, amount: u64| Tx::ClaimSubmit {
            claim: ClaimId(id),
            patient: PatientId(p),
            provider: custodian(p),
            payer: payer(p),
            service_code: code,
            service_day: 10,
            amount_cents: amount,
        };
        if p % 2 == 0 || p % 3 == 0 || p >= UNCOVERED_FROM {
            txs.push(claim(p, OFFICE_VISIT, 9_000 + (p % 10) * 400));
        }
        if p % 30 == 0 {
            txs.push(claim(p + 10_000, OFFICE_VISIT, 9_000));
        }
        if p % 45 == 0 {
            txs.push(claim(p + 20_000, CT_HEAD, 260_000));
        }
        if p % 40 == 0 {
            txs.push(claim(p + 30_000, LAB_PANEL, 50_000));
        }
    }
    for k in 1..=PACKAGES {
        let to = if k == PACKAGES { DISTRIBUTOR } else { PHARMACY };
        txs.push(Tx::Supply {
            package: PackageId(k),
            actor: DISTRIBUTOR,
            event: SupplyEventKind::Ship { to },
        });
    }
    txs.push(Tx::Supply {
        package: PackageId(PACKAGES + 1),
        actor: PHARMACY,
        event: SupplyEventKind::Receive,
    });
    round(&mut ledger, &mut co, &mut report, txs, 2_000);

    // Round 3: revocations, accesses after revoke / expiry, adjudication, receiving, excursions.
    let mut txs = Vec::new();
    for p in patients.clone() {
        if p % 8 == 0 {
            txs.push(Tx::ConsentRevoke {
                patient: PatientId(p),
                grantee: grantee(p),
            });
        }
        if p % 9 == 0 {
            txs.push(Tx::ConsentRevoke {
                patient: PatientId(p),
                grantee: DISTRIBUTOR,
            });
        }
    }
    for k in 1..=PACKAGES {
        txs.push(Tx::Supply {
            package: PackageId(k),
            actor: PHARMACY,
            event: SupplyEventKind::Receive,
        });
    }
    for k in [3, 7] {
        txs.push(Tx::Supply {
            package: PackageId(k),
            actor: PHARMACY,
            event: SupplyEventKind::TemperatureExcursion { celsius_x10: 112 },
        });
    }
    round(&mut ledger, &mut co, &mut report, txs, 10_000);

    let mut txs = Vec::new();
    let mut approved = Vec::new();
    for p in patients.clone() {
        if p % 8 == 0 {
            txs.push(access(p, grantee(p), AccessPurpose::Treatment, 11_000));
            txs.push(access(p, IMAGING, AccessPurpose::Treatment, 11_000));
        }
        if (p % 2 == 0 || p % 3 == 0) && p < UNCOVERED_FROM {
            let deny = p % 11 == 0;
            let amount = if deny { 0 } else { 8_000 + (p % 10) * 300 };
            txs.push(Tx::ClaimAdjudicate {
                claim: ClaimId(p),
                patient: PatientId(p),
                payer: payer(p),
                approved_cents: amount,
            });
            if !deny {
                approved.push((p, amount));
            }
        }
        if p % 13 == 0 {
            txs.push(Tx::ClaimAdjudicate {
                claim: ClaimId(p),
                patient: PatientId(p),
                payer: HOSPITALS[0],
                approved_cents: 1,
            });
        }
    }
    round(&mut ledger, &mut co, &mut report, txs, 11_000);

    // Payment rounds: cross-shard claim payments and transfers. Each round pays at most
    // one claim per insurer, plus (every third round) a second one from the same insurer
    // that aborts on the lock; KeyLocked aborts are retried, others dropped.
    let mut queue: VecDeque<(u64, u64)> = approved.into_iter().collect();
    let mut t = 20_000;
    let mut n_round = 0u64;
    while !queue.is_empty() {
        n_round += 1;
        let mut batch: Vec<(u64, u64)> = Vec::new();
        let mut rest = VecDeque::new();
        let mut used = [0u32; 2];
        while let Some((p, amt)) = queue.pop_front() {
            let i = (p % 2) as usize;
            let cap = if n_round % 3 == 0 { 2 } else { 1 };
            if used[i] < cap {
                used[i] += 1;
                batch.push((p, amt));
            } else {
                rest.push_back((p, amt));
            }
        }
        queue = rest;
        let mut txs: Vec<Tx> = batch
            .iter()
            .map(|&(p, amt)| Tx::ClaimPay {
                claim: ClaimId(p),
                patient: PatientId(p),
                payer: payer(p),
                provider: custodian(p),
                amount_cents: amt,
            })
            .collect();
        let pays = txs.len();
        if n_round % 4 == 0 {
            txs.push(Tx::Payment {
                from: HOSPITALS[(n_round % 3) as usize],
                to: PHARMACY,
                amount_cents: 2_500,
            });
            txs.push(Tx::Payment {
                from: IMAGING,
                to: IMAGING,
                amount_cents: 1,
            });
        }
        if n_round % 10 == 0 {
            txs.push(Tx::Payment {
                from: PHARMACY,
                to: DISTRIBUTOR,
                amount_cents: 10_000_000,
            });
        }
        let out = round(&mut ledger, &mut co, &mut report, txs, t);
        for (&(p, amt), o) in batch.iter().zip(&out[..pays]) {
            if *o == TxOutcome::Aborted(RejectReason::KeyLocked) {
                queue.push_back((p, amt));
            }
        }
        t += 1_000;
    }

    // Dispensing: quarantined packages are refused, a distributor may not dispense.
    let mut txs = Vec::new();
    for k in 1..=PACKAGES {
        let actor = if k == PACKAGES { DISTRIBUTOR } else { PHARMACY };
        txs.push(Tx::Supply {
            package: PackageId(k),
            actor,
            event: SupplyEventKind::Receive,
        });
        txs.push(Tx::Supply {
            package: PackageId(k),
            actor,
            event: SupplyEventKind::Dispense {
                patient: PatientId(k),
            },
        });
    }
    txs.push(Tx::Supply {
        package: PackageId(1),
        actor: PHARMACY,
        event: SupplyEventKind::Dispense {
            patient: PatientId(1),
        },
    });
    round(&mut ledger, &mut co, &mut report, txs, t);

    for s in &ledger.shards {
        s.check_invariants();
        assert_eq!(s.pending_xids(), 0, "a cross-shard tx was left undecided");
    }
    report.blocks_per_shard = ledger.shards.iter().map(|s| s.tip().height).collect();
    report.money_after = ledger.total_money();
    report.state_roots = ledger.state_roots();
    if report.money_after != report.money_before {
        return Err(DemoError::MoneyNotConserved {
            before: report.money_before,
            after: report.money_after,
        });
    }
    export(&ledger, &log_dir)?;
    report.verify = verify_dir(&log_dir)?;
    Ok(report)
}
