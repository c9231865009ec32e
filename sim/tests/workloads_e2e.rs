//! Every workload runs end to end in the simulator from its shipped scenario file
//! (`scenarios/{hospital,imaging,claims,supply-chain,default}.toml`), and what the run
//! records matches the scenario's parameters within sampling error.
//!
//! The generator-level statistics (mean size per FHIR resource, read:write ratio over a
//! million draws, top-1%/top-5% patient shares, claim denials, supply-chain event counts)
//! are tested in `workloads/tests/generator.rs`; here the same workloads go through
//! clients, gateways, consensus and the ledger, and the checks are on the run's own
//! per-transaction records: which kinds commit, the diurnal shape of arrivals, the
//! unconsented-access rejection rate, the imaging payload in each mode and the claim flow.

use sim::client::{ClientTx, TxStatus};
use sim::{run, RunOptions, RunResult, Scenario};
use workloads::arrival::diurnal_multiplier;
use workloads::WorkloadKind;

/// Load `scenarios/<name>.toml` (the shipped file, not the embedded copy) with `overrides`,
/// recording one row per transaction.
fn shipped(name: &str, overrides: &[(&str, &str)]) -> Scenario {
    let path = format!("{}/../scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("shipped scenario file");
    let mut sets: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    sets.push(("metrics.record_transactions".into(), "true".into()));
    let s = Scenario::from_toml_str_with_overrides(&text, &path, &sets).expect("parse");
    assert_eq!(
        s,
        {
            let mut b = sim::builtin::get(name).expect("built-in of the same name");
            for (k, v) in &sets {
                b.apply_override(k, v).expect("override");
            }
            b
        },
        "scenarios/{name}.toml and the built-in `{name}` differ"
    );
    s
}

fn go(s: &Scenario) -> RunResult {
    let r = run(s, &RunOptions::default()).expect("run");
    assert!(r.invariants_checked() > 0, "{}: no commit checked", s.name);
    assert_eq!(
        r.summary_json()["invariants"]["violations"],
        0,
        "{}: invariant violations",
        s.name
    );
    assert!(!r.transactions.is_empty(), "{}: no records", s.name);
    r
}

fn final_status(t: &ClientTx) -> bool {
    matches!(t.status, TxStatus::Committed | TxStatus::Rejected)
}

/// Number of records of `kind` (any status) and of those that committed (accepted or
/// rejected by a ledger rule: both are ordered and final).
fn counts(r: &RunResult, kind: WorkloadKind) -> (u64, u64) {
    let of_kind = r.transactions.iter().filter(|t| t.kind == kind);
    let all = of_kind.clone().count() as u64;
    let done = of_kind.filter(|t| final_status(t)).count() as u64;
    (all, done)
}

/// The kinds present in the records.
fn kinds(r: &RunResult) -> Vec<WorkloadKind> {
    let mut k: Vec<WorkloadKind> = r.transactions.iter().map(|t| t.kind).collect();
    k.sort_by_key(|k| k.name());
    k.dedup();
    k
}

fn assert_commits_each(r: &RunResult, expected: &[WorkloadKind]) {
    let mut want: Vec<WorkloadKind> = expected.to_vec();
    want.sort_by_key(|k| k.name());
    assert_eq!(kinds(r), want, "{}: kinds submitted", r.scenario.name);
    for k in expected {
        let (all, done) = counts(r, *k);
        assert!(
            done > 0 && done * 10 >= all * 7,
            "{}: {} committed {done} of {all}",
            r.scenario.name,
            k.name()
        );
    }
}

#[test]
fn hospital_runs_with_the_diurnal_shape_and_rejects_unconsented_reads() {
    let s = shipped("hospital", &[]);
    assert_eq!(
        s.workload.arrival.day_length_s, s.duration_s,
        "one day per run"
    );
    let r = go(&s);
    assert_commits_each(
        &r,
        &[
            WorkloadKind::HospitalWrite,
            WorkloadKind::HospitalRead,
            WorkloadKind::Consent,
        ],
    );

    // Diurnal arrivals: submissions per 1 s bucket against the profile integrated over the
    // bucket (each bucket is 1.2 simulated hours), within 5 Poisson standard deviations,
    // and the realised peak-to-trough ratio within 10% of the expected one.
    let a = &s.workload.arrival;
    let mean = a.diurnal_profile.iter().sum::<f64>() / 24.0;
    let buckets = s.duration_s as usize;
    let mut observed = vec![0f64; buckets];
    for t in &r.transactions {
        let b = (t.submit_ns / 1_000_000_000) as usize;
        if b < buckets {
            observed[b] += 1.0;
        }
    }
    let hours_per_s = 24.0 / a.day_length_s;
    let expected: Vec<f64> = (0..buckets)
        .map(|b| {
            let steps = 100;
            (0..steps)
                .map(|k| {
                    let t = b as f64 + (k as f64 + 0.5) / steps as f64;
                    diurnal_multiplier(&a.diurnal_profile, (a.start_hour + t * hours_per_s) % 24.0)
                })
                .sum::<f64>()
                / steps as f64
                / mean
                * s.offered_tps
        })
        .collect();
    for (b, (o, e)) in observed.iter().zip(&expected).enumerate() {
        assert!(
            (o - e).abs() < 5.0 * e.sqrt(),
            "second {b}: {o} submissions, expected {e:.0}"
        );
    }
    let ratio = |v: &[f64]| {
        v.iter().cloned().fold(0.0, f64::max) / v.iter().cloned().fold(f64::INFINITY, f64::min)
    };
    let (ro, re) = (ratio(&observed), ratio(&expected));
    assert!(re > 2.4, "the profile's bucket peak-to-trough is {re}");
    assert!(
        (ro / re - 1.0).abs() < 0.10,
        "peak-to-trough {ro:.2}, expected {re:.2}"
    );

    // Reads by an organisation without consent are ordered, rejected and audited: the
    // rejected share of reads is the configured unconsented fraction (binomial error).
    let reads: Vec<&ClientTx> = r
        .transactions
        .iter()
        .filter(|t| t.kind == WorkloadKind::HospitalRead && final_status(t))
        .collect();
    let rejected = reads
        .iter()
        .filter(|t| t.status == TxStatus::Rejected)
        .count() as f64;
    let n = reads.len() as f64;
    let p = s.workload.hospital.unconsented_access_fraction;
    let sd = (n * p * (1.0 - p)).sqrt();
    assert!(
        (rejected - n * p).abs() < 5.0 * sd + 1.0,
        "{rejected} of {n} reads rejected, expected {:.0} ± {sd:.0}",
        n * p
    );
    // Records start warm (`warm_start_records`): every patient arrives with historic
    // records in the genesis, so over the whole run (not only once patients have records)
    // writes are the configured 1 in (1 + read_write_ratio) of record transactions, within
    // binomial error.
    let (reads_all, _) = counts(&r, WorkloadKind::HospitalRead);
    let (w, _) = counts(&r, WorkloadKind::HospitalWrite);
    let want = s.workload.hospital.read_write_ratio;
    let total = (reads_all + w) as f64;
    let q = 1.0 / (1.0 + want);
    let sd = (total * q * (1.0 - q)).sqrt();
    assert!(
        (w as f64 - total * q).abs() < 5.0 * sd,
        "{w} writes of {total} record transactions, expected {:.0} ± {sd:.0} (read:write {want})",
        total * q
    );
    // Historic records are read like any other: the rejected share of reads above is the
    // unconsented fraction alone, so no read of a historic record was UnknownRecord.
    // Cold records: a read drawn for a patient without a record becomes a write, so with
    // 100,000 patients the realised read:write ratio is far below the configured one.
    let cold = shipped(
        "hospital",
        &[("workload.hospital.warm_start_records", "false")],
    );
    let c = go(&cold);
    let cold_rw = counts(&c, WorkloadKind::HospitalRead).0 as f64
        / counts(&c, WorkloadKind::HospitalWrite).0 as f64;
    assert!(
        cold_rw < want / 2.0,
        "cold records: read:write {cold_rw:.2}"
    );
    // Consents start warm (`warm_start`): grants and revocations at their steady-state
    // rate (revocations 0.1%, each preceded by recording the pre-run consent), not one
    // grant per patient.
    let (consents, _) = counts(&r, WorkloadKind::Consent);
    let share = consents as f64 / r.transactions.len() as f64;
    let revoke = s.workload.hospital.consent_revoke_fraction;
    assert!(share < 4.0 * revoke, "consent share {share}");
    let cold = shipped("hospital", &[("workload.hospital.warm_start", "false")]);
    let c = go(&cold);
    let cold_share = counts(&c, WorkloadKind::Consent).0 as f64 / c.transactions.len() as f64;
    assert!(
        cold_share > 0.1,
        "cold start: every patient's first activity is a grant ({cold_share})"
    );
}

#[test]
fn hospital_read_write_ratio_matches_once_patients_have_records() {
    // Cold records (no history in genesis): with 300 patients, at most 300 of ~35,000
    // reads become first writes, and the owed reads are paid back once patients have
    // records: the realised ratio is the configured one less under 7%, plus binomial
    // noise (~1.5%).
    let cold = ("workload.hospital.warm_start_records", "false");
    let s = shipped("hospital", &[("consortium.patients", "300"), cold]);
    let r = go(&s);
    let (reads, _) = counts(&r, WorkloadKind::HospitalRead);
    let (writes, _) = counts(&r, WorkloadKind::HospitalWrite);
    let rw = reads as f64 / writes as f64;
    let want = s.workload.hospital.read_write_ratio;
    assert!(
        rw > want * 0.90 && rw < want * 1.05,
        "read:write {rw:.2}, configured {want}"
    );
    // Changing the parameter changes the realised ratio end to end.
    let s2 = shipped(
        "hospital",
        &[
            ("consortium.patients", "300"),
            ("workload.hospital.read_write_ratio", "2"),
            cold,
        ],
    );
    let r2 = go(&s2);
    let rw2 = counts(&r2, WorkloadKind::HospitalRead).0 as f64
        / counts(&r2, WorkloadKind::HospitalWrite).0 as f64;
    assert!(
        (rw2 - 2.0).abs() < 0.15,
        "read:write {rw2:.2}, configured 2"
    );
}

/// Expected mean and variance of a study's size: a mixture over modalities of log-uniform
/// sizes on `[lo, hi]` (mean `(hi - lo) / ln(hi / lo)`, second moment
/// `(hi^2 - lo^2) / (2 ln(hi / lo))`).
fn study_size_moments(c: &workloads::config::ImagingConfig) -> (f64, f64) {
    let m = [
        (c.ct_weight, c.ct_min_bytes, c.ct_max_bytes),
        (c.mr_weight, c.mr_min_bytes, c.mr_max_bytes),
        (c.crdx_weight, c.crdx_min_bytes, c.crdx_max_bytes),
        (
            c.mammography_weight,
            c.mammography_min_bytes,
            c.mammography_max_bytes,
        ),
        (
            c.tomosynthesis_weight,
            c.tomosynthesis_min_bytes,
            c.tomosynthesis_max_bytes,
        ),
        (
            c.ultrasound_weight,
            c.ultrasound_min_bytes,
            c.ultrasound_max_bytes,
        ),
        (c.petct_weight, c.petct_min_bytes, c.petct_max_bytes),
    ];
    let total: f64 = m.iter().map(|e| e.0).sum();
    let (mut m1, mut m2) = (0.0, 0.0);
    for (w, lo, hi) in m {
        let (lo, hi) = (lo as f64, hi as f64);
        let (e1, e2) = if hi > lo {
            let l = (hi / lo).ln();
            ((hi - lo) / l, (hi * hi - lo * lo) / (2.0 * l))
        } else {
            (lo, lo * lo)
        };
        m1 += w / total * e1;
        m2 += w / total * e2;
    }
    (m1, m2 - m1 * m1)
}

#[test]
fn imaging_runs_anchored_and_the_set_switch_sends_the_pixels() {
    // Anchor (the shipped default): only the content root goes on-chain.
    let anchor = shipped("imaging", &[]);
    assert_eq!(anchor.workload.imaging.mode, workloads::ImagingMode::Anchor);
    let r = go(&anchor);
    assert_commits_each(&r, &[WorkloadKind::Imaging]);
    assert!(
        r.transactions.iter().all(|t| t.payload_bytes == 0),
        "anchored studies carry no pixels"
    );
    let offered = r.submitted_tx() as f64 / r.measured_s();
    assert!(
        (offered / anchor.offered_tps - 1.0).abs() < 0.15,
        "{offered} studies/s offered, configured {}",
        anchor.offered_tps
    );

    // `--set workload.imaging.mode=onchain`: every study carries its bytes, with the
    // modality mix's mean size (within 4 standard errors), and the same seed gives the same
    // arrivals as the anchored run.
    let onchain = shipped("imaging", &[("workload.imaging.mode", "onchain")]);
    assert_eq!(
        onchain.workload.imaging.mode,
        workloads::ImagingMode::Onchain
    );
    let o = run(&onchain, &RunOptions::default()).expect("run onchain");
    assert_eq!(o.summary_json()["invariants"]["violations"], 0);
    assert_eq!(kinds(&o), vec![WorkloadKind::Imaging]);
    assert!(o.transactions.iter().all(|t| t.payload_bytes > 0));
    let n = o.transactions.len() as f64;
    let mean = o
        .transactions
        .iter()
        .map(|t| t.payload_bytes as f64)
        .sum::<f64>()
        / n;
    let (m, var) = study_size_moments(&onchain.workload.imaging);
    let se = (var / n).sqrt();
    assert!(
        (mean - m).abs() < 4.0 * se,
        "mean study {:.1} MB, expected {:.1} ± {:.1} MB over {n} studies",
        mean / 1e6,
        m / 1e6,
        se / 1e6
    );
    let times =
        |r: &RunResult| -> Vec<u64> { r.transactions.iter().map(|t| t.submit_ns).collect() };
    assert_eq!(
        times(&r),
        times(&o),
        "same seed, same arrivals in both modes"
    );
    // The pixels cost: 100 Mbps links cannot carry 20 studies/s of ~130 MB.
    assert!(
        o.committed_tx() * 10 < r.committed_tx(),
        "on-chain committed {} vs anchored {}",
        o.committed_tx(),
        r.committed_tx()
    );
}

#[test]
fn claims_run_submit_adjudicate_pay_across_shards() {
    let s = shipped("claims", &[]);
    let r = go(&s);
    assert_commits_each(
        &r,
        &[
            WorkloadKind::ClaimSubmit,
            WorkloadKind::ClaimAdjudicate,
            WorkloadKind::ClaimPay,
        ],
    );
    let (submits, _) = counts(&r, WorkloadKind::ClaimSubmit);
    let (adjudications, _) = counts(&r, WorkloadKind::ClaimAdjudicate);
    let (pays, _) = counts(&r, WorkloadKind::ClaimPay);
    // Adjudication follows each accepted submission after ~2 s and payment follows each
    // approval (1 - denial rate = 80%) after ~2 s more; flows still under way at the end
    // of the 20 s run lower both ratios by about 10% each.
    let adj = adjudications as f64 / submits as f64;
    assert!((0.75..=1.0).contains(&adj), "adjudications/submits {adj}");
    let pay = pays as f64 / adjudications as f64;
    let approve = 1.0 - s.workload.claims.denial_rate;
    assert!(
        pay < approve + 0.03 && pay > approve - 0.2,
        "payments/adjudications {pay}, approval rate {approve}"
    );
    // Payer and provider usually live on different shards: payments are cross-shard.
    let pay_cross = r
        .transactions
        .iter()
        .filter(|t| t.kind == WorkloadKind::ClaimPay && t.cross_shard())
        .count() as f64;
    assert!(
        pay_cross / pays as f64 > 0.5,
        "cross-shard payments {pay_cross} of {pays}"
    );
}

#[test]
fn supply_chain_runs_package_events() {
    let s = shipped("supply-chain", &[]);
    let r = go(&s);
    assert_commits_each(&r, &[WorkloadKind::Supply]);
    assert_eq!(
        r.rejected_tx(),
        0,
        "no package event breaks the state machine"
    );
}

#[test]
fn default_consortium_commits_every_kind_of_the_mix() {
    let s = shipped("default", &[]);
    assert!(s.shards > 1 && s.consensus == "pbft");
    let r = go(&s);
    assert_commits_each(
        &r,
        &[
            WorkloadKind::HospitalWrite,
            WorkloadKind::HospitalRead,
            WorkloadKind::Consent,
            WorkloadKind::Imaging,
            WorkloadKind::ClaimSubmit,
            WorkloadKind::ClaimAdjudicate,
            WorkloadKind::ClaimPay,
            WorkloadKind::Supply,
        ],
    );
    // Hospital traffic is 98.5% of the default mix by transaction count.
    let m = &s.workload.mix;
    let share = m.hospital / (m.hospital + m.imaging + m.claims + m.supply_chain + m.payment);
    let hosp = [
        WorkloadKind::HospitalWrite,
        WorkloadKind::HospitalRead,
        WorkloadKind::Consent,
    ]
    .iter()
    .map(|k| counts(&r, *k).0)
    .sum::<u64>() as f64;
    let n = r.transactions.len() as f64;
    let sd = (n * share * (1.0 - share)).sqrt();
    // Multi-step flows (claims, packages) still under way at the end add a small bias
    // towards hospital traffic: allow 5 standard deviations plus 0.3% of n.
    assert!(
        (hosp - n * share).abs() < 5.0 * sd + 0.003 * n,
        "hospital share {:.4}, configured {share:.4}",
        hosp / n
    );
}
