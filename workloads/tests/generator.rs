//! Statistical and behavioural tests of the workload generator.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use ledger_core::types::{OrgKind, SupplyEventKind, Tx};
use workloads::config::{ArrivalKind, ImagingMode, MixConfig};
use workloads::trace::{parse_trace, write_trace};
use workloads::{
    Consortium, ConsortiumConfig, Generator, TraceConfig, TraceRow, TxRequest, WorkloadConfig,
    WorkloadKind,
};

fn only(mix: &str) -> MixConfig {
    let mut m = MixConfig {
        hospital: 0.0,
        imaging: 0.0,
        claims: 0.0,
        supply_chain: 0.0,
        payment: 0.0,
    };
    match mix {
        "hospital" => m.hospital = 1.0,
        "imaging" => m.imaging = 1.0,
        "claims" => m.claims = 1.0,
        "supply_chain" => m.supply_chain = 1.0,
        "payment" => m.payment = 1.0,
        _ => panic!("unknown family {mix}"),
    }
    m
}

fn consortium(patients: u32) -> Consortium {
    Consortium::new(
        &ConsortiumConfig {
            patients,
            ..ConsortiumConfig::default()
        },
        7,
    )
    .expect("valid consortium")
}

fn take(g: &mut Generator, n: usize) -> Vec<TxRequest> {
    (0..n)
        .map(|_| g.next_request().expect("unbounded arrivals"))
        .collect()
}

#[test]
fn write_sizes_match_configured_means_and_read_write_ratio() {
    let cfg = WorkloadConfig {
        mix: only("hospital"),
        ..WorkloadConfig::default()
    };
    let c = consortium(10_000);
    let mut g = Generator::new(&cfg, &c, 1_000.0, 1).expect("valid");
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let (mut reads, mut writes) = (0u64, 0u64);
    for r in take(&mut g, 1_000_000) {
        match r.tx {
            Tx::RecordWrite {
                resource,
                size_bytes,
                ..
            } => {
                writes += 1;
                let e = sums.entry(format!("{resource:?}")).or_default();
                e.0 += size_bytes as f64;
                e.1 += 1.0;
            }
            Tx::RecordAccess { .. } => reads += 1,
            _ => {}
        }
    }
    let s = &cfg.hospital.resource_size_bytes;
    let expected = [
        ("Observation", s.observation),
        ("Encounter", s.encounter),
        ("MedicationRequest", s.medication_request),
        ("Condition", s.condition),
        ("Procedure", s.procedure),
        ("Patient", s.patient),
        ("DocumentReference", s.document_reference),
    ];
    for (name, mean) in expected {
        let (sum, n) = sums[name];
        // Lognormal sigma 0.5: CV 0.53; with n >= ~1,000 writes the mean is within 5%.
        let got = sum / n;
        assert!(
            (got / mean - 1.0).abs() < 0.05,
            "{name}: mean {got} vs {mean} (n {n})"
        );
    }
    let ratio = reads as f64 / writes as f64;
    // The first access of a patient without records is a write; at 10k patients and
    // ~110k writes this shifts the ratio by under 2%.
    assert!((ratio - 8.0).abs() < 0.25, "read:write {ratio}");
}

#[test]
fn patient_activity_concentration_matches_meps_shares() {
    // sigma 1.6 (spending-like): top 1% of patients ≈ 22% of activity, top 5% ≈ 50%
    // (AHRQ MEPS); the lognormal gives 23.4% and 48.2% in the limit.
    let cfg = WorkloadConfig {
        mix: only("hospital"),
        ..WorkloadConfig::default()
    };
    let n = 50_000u32;
    let c = consortium(n);
    let mut g = Generator::new(&cfg, &c, 1_000.0, 2).expect("valid");
    let mut counts = vec![0u64; n as usize];
    let draws = 2_000_000;
    for r in take(&mut g, draws) {
        let p = match r.tx {
            Tx::RecordWrite { patient, .. }
            | Tx::RecordAccess { patient, .. }
            | Tx::ConsentGrant { patient, .. }
            | Tx::ConsentRevoke { patient, .. } => patient,
            other => panic!("non-hospital tx {other:?}"),
        };
        counts[p.0 as usize] += 1;
    }
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let total: u64 = counts.iter().sum();
    let share = |frac: f64| {
        let k = (n as f64 * frac) as usize;
        counts[..k].iter().sum::<u64>() as f64 / total as f64
    };
    let (top1, top5, bottom50) = (share(0.01), share(0.05), 1.0 - share(0.5));
    assert!((top1 - 0.22).abs() < 0.03, "top 1% share {top1}");
    assert!((top5 - 0.50).abs() < 0.04, "top 5% share {top5}");
    assert!(bottom50 < 0.08, "bottom 50% share {bottom50}");
}

#[test]
fn open_loop_rate_matches_offered_tps() {
    let cfg = WorkloadConfig::default();
    let c = consortium(10_000);
    let mut g = Generator::new(&cfg, &c, 5_000.0, 3).expect("valid");
    let mut last = 0;
    let mut n = 0u64;
    loop {
        let r = g.next_request().expect("unbounded");
        assert!(r.at_ns >= last, "time went backwards");
        last = r.at_ns;
        if r.at_ns >= 20_000_000_000 {
            break;
        }
        n += 1;
    }
    let tps = n as f64 / 20.0;
    assert!((tps / 5_000.0 - 1.0).abs() < 0.02, "tps {tps}");
}

#[test]
fn same_seed_same_sequence_different_seed_differs() {
    let cfg = WorkloadConfig {
        mix: MixConfig {
            hospital: 10.0,
            imaging: 1.0,
            claims: 3.0,
            supply_chain: 3.0,
            payment: 1.0,
        },
        ..WorkloadConfig::default()
    };
    let c = consortium(5_000);
    let a = take(
        &mut Generator::new(&cfg, &c, 100.0, 9).expect("valid"),
        20_000,
    );
    let b = take(
        &mut Generator::new(&cfg, &c, 100.0, 9).expect("valid"),
        20_000,
    );
    let d = take(
        &mut Generator::new(&cfg, &c, 100.0, 10).expect("valid"),
        20_000,
    );
    assert_eq!(a, b);
    assert_ne!(a, d);
}

#[test]
fn enabling_imaging_does_not_shift_hospital_draws() {
    let c = consortium(5_000);
    let writes = |imaging: f64| -> Vec<(u64, u64, u32)> {
        let cfg = WorkloadConfig {
            mix: MixConfig {
                hospital: 1.0,
                imaging,
                claims: 0.0,
                supply_chain: 0.0,
                payment: 0.0,
            },
            ..WorkloadConfig::default()
        };
        let mut g = Generator::new(&cfg, &c, 100.0, 4).expect("valid");
        take(&mut g, 30_000)
            .into_iter()
            .filter_map(|r| match r.tx {
                Tx::RecordWrite {
                    record,
                    patient,
                    size_bytes,
                    ..
                } => Some((record.0, patient.0, size_bytes)),
                _ => None,
            })
            .take(2_000)
            .collect()
    };
    let without = writes(0.0);
    let with = writes(0.5);
    assert_eq!(without.len(), 2_000);
    assert_eq!(without, with);
}

#[test]
fn imaging_payload_onchain_vs_anchor() {
    let c = consortium(1_000);
    let mut cfg = WorkloadConfig {
        mix: only("imaging"),
        ..WorkloadConfig::default()
    };
    let anchor = take(
        &mut Generator::new(&cfg, &c, 10.0, 5).expect("valid"),
        20_000,
    );
    cfg.imaging.mode = ImagingMode::Onchain;
    let onchain = take(
        &mut Generator::new(&cfg, &c, 10.0, 5).expect("valid"),
        20_000,
    );
    let mut ct = (0.0, 0.0);
    for (a, o) in anchor.iter().zip(&onchain) {
        assert_eq!(a.tx, o.tx, "mode must not change the transaction");
        assert_eq!(a.payload_bytes, 0);
        let Tx::ImagingAnchor {
            size_bytes,
            modality,
            chunk_count,
            ..
        } = o.tx
        else {
            panic!("not imaging: {:?}", o.tx)
        };
        assert_eq!(o.payload_bytes, size_bytes);
        assert_eq!(
            chunk_count as u64,
            size_bytes.div_ceil(cfg.imaging.chunk_size_bytes)
        );
        if modality == ledger_core::types::Modality::Ct {
            assert!(
                (150_000_000..=1_000_000_000).contains(&size_bytes),
                "{size_bytes}"
            );
            ct.0 += size_bytes as f64;
            ct.1 += 1.0;
        }
    }
    // Log-uniform on [a, b]: mean (b - a) / ln(b / a).
    let (a, b) = (150e6_f64, 1e9_f64);
    let expected = (b - a) / (b / a).ln();
    let got = ct.0 / ct.1;
    assert!(
        (got / expected - 1.0).abs() < 0.03,
        "CT mean {got} vs {expected}"
    );
}

#[test]
fn claims_flow_is_ordered_and_denials_match() {
    let cfg = WorkloadConfig {
        mix: only("claims"),
        ..WorkloadConfig::default()
    };
    let c = consortium(5_000);
    let mut g = Generator::new(&cfg, &c, 200.0, 6).expect("valid");
    // claim -> (submit time, amount, adjudicated (time, approved), paid)
    type ClaimSeen = (u64, u64, Option<(u64, u64)>, bool);
    let mut claims: BTreeMap<u64, ClaimSeen> = BTreeMap::new();
    let (mut adjudicated, mut denied) = (0u64, 0u64);
    for r in take(&mut g, 60_000) {
        match r.tx {
            Tx::ClaimSubmit {
                claim,
                amount_cents,
                provider,
                payer,
                ..
            } => {
                assert_ne!(provider, payer);
                assert_eq!(c.orgs()[payer.0 as usize].kind, OrgKind::Insurer);
                assert!(claims
                    .insert(claim.0, (r.at_ns, amount_cents, None, false))
                    .is_none());
            }
            Tx::ClaimAdjudicate {
                claim,
                approved_cents,
                ..
            } => {
                let e = claims
                    .get_mut(&claim.0)
                    .expect("adjudication before submission");
                assert!(r.at_ns >= e.0, "adjudicated before submitted");
                assert!(e.2.is_none(), "adjudicated twice");
                assert!(approved_cents == 0 || approved_cents == e.1);
                e.2 = Some((r.at_ns, approved_cents));
                adjudicated += 1;
                denied += u64::from(approved_cents == 0);
            }
            Tx::ClaimPay {
                claim,
                amount_cents,
                ..
            } => {
                let e = claims.get_mut(&claim.0).expect("payment before submission");
                let (t, approved) = e.2.expect("payment before adjudication");
                assert!(r.at_ns >= t, "paid before adjudicated");
                assert!(approved > 0, "denied claim paid");
                assert_eq!(amount_cents, approved);
                assert!(!e.3, "paid twice");
                e.3 = true;
            }
            other => panic!("non-claim tx {other:?}"),
        }
    }
    let rate = denied as f64 / adjudicated as f64;
    // 20% denial; n ≈ 20,000 adjudications: sd 0.003.
    assert!((rate - 0.20).abs() < 0.015, "denial rate {rate}");
    assert!(claims.values().filter(|e| e.3).count() > 10_000);
}

#[test]
fn supply_chain_events_follow_the_state_machine() {
    let cfg = WorkloadConfig {
        mix: only("supply_chain"),
        ..WorkloadConfig::default()
    };
    let c = consortium(1_000);
    let mut g = Generator::new(&cfg, &c, 200.0, 8).expect("valid");
    #[derive(Default)]
    struct Pkg {
        holder: Option<u64>,
        in_transit_to: Option<u64>,
        events: u32,
        dispensed: bool,
        quarantined: bool,
    }
    let mut pkgs: BTreeMap<u64, Pkg> = BTreeMap::new();
    for r in take(&mut g, 80_000) {
        let Tx::Supply {
            package,
            actor,
            event,
        } = r.tx
        else {
            panic!("non-supply tx")
        };
        let p = pkgs.entry(package.0).or_default();
        assert!(
            !p.dispensed && !p.quarantined,
            "event after the end: {event:?}"
        );
        p.events += 1;
        match event {
            SupplyEventKind::Commission { .. } => {
                assert_eq!(p.events, 1);
                p.holder = Some(actor.0);
            }
            SupplyEventKind::Ship { to } => {
                assert_eq!(p.holder, Some(actor.0), "ship by non-holder");
                assert!(p.in_transit_to.is_none());
                assert_ne!(to, actor);
                p.in_transit_to = Some(to.0);
            }
            SupplyEventKind::Receive => {
                assert_eq!(
                    p.in_transit_to.take(),
                    Some(actor.0),
                    "receive by non-addressee"
                );
                p.holder = Some(actor.0);
            }
            SupplyEventKind::Dispense { .. } => {
                assert_eq!(p.holder, Some(actor.0));
                assert!(p.in_transit_to.is_none());
                assert_eq!(c.orgs()[actor.0 as usize].kind, OrgKind::Pharmacy);
                assert!((6..=8).contains(&p.events), "{} events", p.events);
                p.dispensed = true;
            }
            SupplyEventKind::TemperatureExcursion { celsius_x10 } => {
                assert!(celsius_x10 > 80);
                assert_eq!(p.holder, Some(actor.0));
                p.quarantined = true;
            }
        }
    }
    let done = pkgs.values().filter(|p| p.dispensed).count();
    let quarantined = pkgs.values().filter(|p| p.quarantined).count();
    assert!(done > 5_000, "{done} dispensed");
    let rate = quarantined as f64 / (done + quarantined) as f64;
    assert!(rate > 0.004 && rate < 0.02, "excursion rate {rate}");
}

#[test]
fn closed_loop_never_exceeds_client_count() {
    let mut cfg = WorkloadConfig::default();
    cfg.arrival.process = ArrivalKind::Closed;
    cfg.arrival.clients = 16;
    cfg.arrival.think_time_ms = 5.0;
    cfg.mix.claims = 500_000.0;
    cfg.mix.supply_chain = 500_000.0;
    let c = consortium(1_000);
    let mut g = Generator::new(&cfg, &c, 0.0, 11).expect("valid");
    assert!(g.is_closed_loop());
    assert!(g.next_request().is_none());
    let init = g.initial_requests();
    assert_eq!(init.len(), 16);
    assert!(g.initial_requests().is_empty(), "clients started twice");
    // A toy server: each request completes 3 ms after it is submitted.
    let mut events: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let mut outstanding = [false; 16];
    for r in init {
        assert!(!outstanding[r.client as usize]);
        outstanding[r.client as usize] = true;
        events.push(Reverse((r.at_ns + 3_000_000, r.client)));
    }
    let mut kinds = [0u64; 9];
    for _ in 0..50_000 {
        let Reverse((now, client)) = events.pop().expect("clients never stop");
        assert!(outstanding[client as usize]);
        outstanding[client as usize] = false;
        let r = g.on_complete(client, now).expect("client continues");
        assert_eq!(r.client, client);
        assert!(r.at_ns >= now);
        kinds[r.kind.index()] += 1;
        outstanding[client as usize] = true;
        assert!(outstanding.iter().filter(|o| **o).count() <= 16);
        events.push(Reverse((r.at_ns + 3_000_000, client)));
    }
    assert!(g.on_complete(99, 0).is_none(), "unknown client");
    assert!(kinds[WorkloadKind::ClaimPay.index()] > 0 && kinds[WorkloadKind::Supply.index()] > 0);
}

#[test]
fn trace_round_trip_and_example_file() {
    let cfg = WorkloadConfig {
        mix: MixConfig {
            hospital: 10.0,
            imaging: 1.0,
            claims: 3.0,
            supply_chain: 3.0,
            payment: 1.0,
        },
        ..WorkloadConfig::default()
    };
    let c = consortium(2_000);
    let reqs = take(
        &mut Generator::new(&cfg, &c, 100.0, 12).expect("valid"),
        3_000,
    );
    let rows: Vec<TraceRow> = reqs.iter().map(TraceRow::from_request).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.csv");
    write_trace(std::fs::File::create(&path).expect("create"), &rows).expect("write");
    let parsed =
        parse_trace(std::fs::File::open(&path).expect("open"), 1.0, 10_000).expect("parse");
    assert_eq!(parsed, rows);

    let replay_cfg = WorkloadConfig {
        trace: Some(TraceConfig {
            path: path.to_string_lossy().into_owned(),
            ..TraceConfig::default()
        }),
        ..cfg.clone()
    };
    let mut g = Generator::new(&replay_cfg, &c, 0.0, 12).expect("valid trace");
    let mut replayed = Vec::new();
    while let Some(r) = g.next_request() {
        replayed.push(TraceRow::from_request(&r));
    }
    assert_eq!(replayed, rows);

    // The committed example trace parses and replays.
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/traces/example.csv"
    );
    let ex_cfg = WorkloadConfig {
        trace: Some(TraceConfig {
            path: example.to_string(),
            ..TraceConfig::default()
        }),
        ..cfg
    };
    let mut g = Generator::new(&ex_cfg, &consortium(100_000), 0.0, 1).expect("example trace");
    let mut n = 0;
    while g.next_request().is_some() {
        n += 1;
    }
    assert!((100..=2_000).contains(&n), "{n} rows");

    // A missing file is an error naming the path.
    let bad = WorkloadConfig {
        trace: Some(TraceConfig {
            path: "/nonexistent/trace.csv".into(),
            ..TraceConfig::default()
        }),
        ..WorkloadConfig::default()
    };
    let e = Generator::new(&bad, &c, 0.0, 1)
        .err()
        .expect("missing file");
    assert!(e.to_string().contains("/nonexistent/trace.csv"), "{e}");
}

#[test]
fn records_warm_start_reads_existing_records_at_the_configured_ratio_from_the_start() {
    use ledger_core::genesis::HistoricRecords;
    use std::collections::BTreeSet;
    let c = consortium(200_000);
    let run = |warm: bool| {
        let mut cfg = WorkloadConfig {
            mix: only("hospital"),
            ..WorkloadConfig::default()
        };
        cfg.hospital.warm_start_records = warm;
        let historic = workloads::historic_records(&cfg.hospital, &c);
        assert_eq!(historic.is_some(), warm);
        let mut g = Generator::new(&cfg, &c, 1_000.0, 3).expect("valid");
        let (mut reads, mut writes, mut historic_reads) = (0u64, 0u64, 0u64);
        let mut written = BTreeSet::new();
        for r in take(&mut g, 20_000) {
            match r.tx {
                Tx::RecordWrite { record, .. } => {
                    assert!(
                        HistoricRecords::split(record).is_none(),
                        "writes use fresh ids"
                    );
                    written.insert(record);
                    writes += 1;
                }
                Tx::RecordAccess {
                    record, patient, ..
                } => {
                    reads += 1;
                    match historic.and_then(|h| h.patient_of(record)) {
                        Some(p) => {
                            assert_eq!(p, patient, "a historic record of the patient read");
                            historic_reads += 1;
                        }
                        None => assert!(written.contains(&record), "read of {record:?}"),
                    }
                }
                _ => {}
            }
        }
        (reads, writes, historic_reads)
    };
    // Warm: writes are 1 in 9 record transactions from the first one (binomial, 5 sd).
    let (reads, writes, historic_reads) = run(true);
    let n = (reads + writes) as f64;
    let sd = (n * (1.0 / 9.0) * (8.0 / 9.0)).sqrt();
    assert!(
        (writes as f64 - n / 9.0).abs() < 5.0 * sd,
        "{writes} writes of {n}, expected {:.0} ± {sd:.0}",
        n / 9.0
    );
    assert!(
        historic_reads as f64 > 0.95 * reads as f64,
        "{historic_reads} of {reads}"
    );
    // Cold: most reads are drawn for patients without a record and become writes.
    let (reads, writes, historic_reads) = run(false);
    assert_eq!(historic_reads, 0);
    assert!(
        (reads as f64) < 2.0 * writes as f64,
        "cold {reads}:{writes}"
    );
}
