//! A small, deterministic block-application driver for instruction-count profiling:
//!
//! ```text
//! cargo build -p ledger-core --release --example apply_profile
//! valgrind --tool=callgrind --toggle-collect='*apply_block*' \
//!     target/release/examples/apply_profile 4 4096
//! callgrind_annotate callgrind.out.<pid>
//! ```
//!
//! Arguments: `blocks` (default 4) measured blocks of `ops` (default 4096) single-shard ops of
//! a realistic healthcare mix on one shard, after 8 warm-up blocks. Prints the state root so
//! the work cannot be optimised away. The mix mirrors `benches::ledger_fixtures::MixGen`.

use ledger_core::genesis::{Genesis, GenesisBuilder};
use ledger_core::routing::splitmix64;
use ledger_core::types::*;
use ledger_core::{Ledger, LedgerConfig, ShardOp};

const PATIENTS: u64 = 100_000;
const HOSPITALS: u64 = 8;
const IMAGING: [u64; 2] = [101, 102];
const INSURERS: [u64; 4] = [201, 202, 203, 204];
const PHARMACIES: [u64; 2] = [301, 302];
/// Most remembered records / claims / packages (bounded generator memory).
const MAX_REMEMBERED: usize = 65_536;

fn genesis() -> Genesis {
    let mut b = GenesisBuilder::new()
        .implicit_coverage(true)
        .reference_price(99213, 15_000);
    for h in 1..=HOSPITALS {
        b = b.org(OrgId(h), OrgKind::Hospital, 1 << 40);
    }
    for i in IMAGING {
        b = b.org(OrgId(i), OrgKind::ImagingCentre, 1 << 40);
    }
    for i in INSURERS {
        b = b.insurer(OrgId(i), 1 << 50, 0);
    }
    for p in PHARMACIES {
        b = b.org(OrgId(p), OrgKind::Pharmacy, 1 << 40);
    }
    b.build().expect("profile genesis is valid")
}

#[derive(Default)]
struct Mix {
    next: u64,
    claims: Vec<(ClaimId, PatientId, OrgId)>,
    written: Vec<(RecordId, PatientId, OrgId)>,
    packages: Vec<PackageId>,
}

impl Mix {
    fn tx(&mut self) -> Tx {
        self.next += 1;
        let x = splitmix64(self.next);
        let id = self.next;
        let p = PatientId(x % PATIENTS);
        let hosp = OrgId(1 + (x >> 20) % HOSPITALS);
        let k = (x >> 40) % 100;
        match k {
            0..=29 if !self.written.is_empty() => {
                let (record, patient, cust) = self.written[(x >> 8) as usize % self.written.len()];
                Tx::RecordAccess {
                    record,
                    patient,
                    accessor: if k < 20 { cust } else { hosp },
                    user: UserId(x & 0xffff),
                    purpose: AccessPurpose::Treatment,
                    at_ms: id,
                }
            }
            0..=49 => {
                if self.written.len() < MAX_REMEMBERED {
                    self.written.push((RecordId(id), p, hosp));
                }
                Tx::RecordWrite {
                    record: RecordId(id),
                    patient: p,
                    author: hosp,
                    resource: ResourceKind::Observation,
                    doc_hash: [x as u8; 32],
                    size_bytes: 2_048,
                }
            }
            50..=59 => Tx::ConsentGrant {
                patient: p,
                grantee: hosp,
                scope: ConsentScope::READ_RECORDS,
                expires_at_ms: u64::MAX,
            },
            60..=69 => {
                let payer = OrgId(INSURERS[(p.0 % INSURERS.len() as u64) as usize]);
                if self.claims.len() < MAX_REMEMBERED {
                    self.claims.push((ClaimId(id), p, payer));
                }
                Tx::ClaimSubmit {
                    claim: ClaimId(id),
                    patient: p,
                    provider: hosp,
                    payer,
                    service_code: 99213,
                    service_day: id as u32,
                    amount_cents: 12_000,
                }
            }
            70..=74 if !self.claims.is_empty() => {
                let i = (x >> 8) as usize % self.claims.len();
                let (claim, patient, payer) = self.claims.swap_remove(i);
                Tx::ClaimAdjudicate {
                    claim,
                    patient,
                    payer,
                    approved_cents: 10_000,
                }
            }
            70..=84 => Tx::Payment {
                from: hosp,
                to: OrgId(1 + (hosp.0 % HOSPITALS)),
                amount_cents: 100,
            },
            85..=94 => {
                if k % 2 == 0 || self.packages.is_empty() {
                    if self.packages.len() < MAX_REMEMBERED {
                        self.packages.push(PackageId(id));
                    }
                    Tx::Supply {
                        package: PackageId(id),
                        actor: OrgId(PHARMACIES[0]),
                        event: SupplyEventKind::Commission { product: 42 },
                    }
                } else {
                    let i = (x >> 8) as usize % self.packages.len();
                    Tx::Supply {
                        package: self.packages.swap_remove(i),
                        actor: OrgId(PHARMACIES[0]),
                        event: SupplyEventKind::Ship {
                            to: OrgId(PHARMACIES[1]),
                        },
                    }
                }
            }
            _ => Tx::ImagingAnchor {
                study: StudyId(id),
                patient: p,
                centre: OrgId(IMAGING[(x & 1) as usize]),
                modality: Modality::Ct,
                content_root: [k as u8; 32],
                size_bytes: 150 << 20,
                chunk_count: 600,
            },
        }
    }
    fn block(&mut self, n: usize) -> Vec<ShardOp> {
        (0..n).map(|_| ShardOp::Tx(self.tx())).collect()
    }
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let blocks = arg(1, 4);
    let ops = arg(2, 4096);
    let g = genesis();
    let mut ledger = Ledger::with_config(
        &g,
        1,
        LedgerConfig {
            log_max_bytes: None,
            ..LedgerConfig::default()
        },
    );
    let mut mix = Mix::default();
    for t in 0..8 {
        let b = mix.block(ops);
        ledger.shards[0].apply_block(b, t);
    }
    let mut accepted = 0usize;
    for t in 0..blocks {
        let b = mix.block(ops);
        let applied = ledger.shards[0].apply_block(b, 100 + t as u64);
        accepted += applied.receipts.iter().filter(|r| r.is_success()).count();
    }
    println!(
        "{blocks} blocks x {ops} ops, {accepted} accepted, state root {:02x?}",
        &ledger.shards[0].state_root()[..8]
    );
}
