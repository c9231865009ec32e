//! Configuration: TOML round trip, overrides, validation errors naming fields.

use workloads::config::{ArrivalKind, ImagingMode, ScheduleSegment};
use workloads::{ConfigError, Consortium, ConsortiumConfig, Generator, WorkloadConfig};

fn field_of(e: ConfigError) -> String {
    match e {
        ConfigError::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn defaults_are_valid_and_round_trip_through_toml() {
    let cfg = WorkloadConfig::default();
    cfg.validate().expect("defaults valid");
    let text = toml::to_string(&cfg).expect("serialise");
    let back: WorkloadConfig = toml::from_str(&text).expect("deserialise");
    assert_eq!(back, cfg);
    ConsortiumConfig::default()
        .validate()
        .expect("defaults valid");
}

#[test]
fn partial_sections_fill_defaults_and_enums_are_lowercase() {
    let cfg: WorkloadConfig = toml::from_str(
        "[imaging]\nmode = \"onchain\"\nct_weight = 5.0\n[arrival]\nprocess = \"diurnal\"\n\
         [claims]\ndenial_rate = 0.3\n",
    )
    .expect("valid TOML");
    assert_eq!(cfg.imaging.mode, ImagingMode::Onchain);
    assert_eq!(cfg.imaging.ct_weight, 5.0);
    assert_eq!(
        cfg.imaging.ct_max_bytes,
        WorkloadConfig::default().imaging.ct_max_bytes
    );
    assert_eq!(cfg.arrival.process, ArrivalKind::Diurnal);
    assert_eq!(cfg.claims.denial_rate, 0.3);
    assert_eq!(cfg.hospital, WorkloadConfig::default().hospital);
    assert!(toml::from_str::<WorkloadConfig>("[claims]\ndenial_rat = 0.3\n").is_err());
    assert!(toml::from_str::<WorkloadConfig>("[imaging]\nmode = \"Onchain\"\n").is_err());
}

#[test]
fn validation_errors_name_the_field() {
    type Mutation = Box<dyn Fn(&mut WorkloadConfig)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|c| c.claims.denial_rate = 1.5),
            "claims.denial_rate",
        ),
        (
            Box::new(|c| c.claims.fraud_fraction = -0.1),
            "claims.fraud_fraction",
        ),
        (
            Box::new(|c| c.hospital.read_write_ratio = f64::NAN),
            "hospital.read_write_ratio",
        ),
        (
            Box::new(|c| c.hospital.read_write_ratio = -1.0),
            "hospital.read_write_ratio",
        ),
        (
            Box::new(|c| {
                c.mix.hospital = 0.0;
                c.mix.imaging = 0.0;
                c.mix.claims = 0.0;
                c.mix.supply_chain = 0.0;
            }),
            "mix",
        ),
        (Box::new(|c| c.mix.imaging = f64::INFINITY), "mix.imaging"),
        (
            Box::new(|c| c.hospital.resource_size_bytes.patient = 0.0),
            "hospital.resource_size_bytes.patient",
        ),
        (
            Box::new(|c| c.imaging.mr_max_bytes = 1),
            "imaging.mr_max_bytes",
        ),
        (
            Box::new(|c| c.supply_chain.max_hops = 1),
            "supply_chain.max_hops",
        ),
        (
            Box::new(|c| c.arrival.diurnal_profile[3] = -1.0),
            "arrival.diurnal_profile[3]",
        ),
        (
            Box::new(|c| c.arrival.start_hour = 24.0),
            "arrival.start_hour",
        ),
        (
            Box::new(|c| c.arrival.burst_low_rate_fraction = 2.0),
            "arrival.burst_low_rate_fraction",
        ),
        (
            Box::new(|c| {
                c.arrival.process = ArrivalKind::Schedule;
                c.arrival.schedule = vec![
                    ScheduleSegment {
                        start_s: 5.0,
                        tps: 1.0,
                    },
                    ScheduleSegment {
                        start_s: 5.0,
                        tps: 2.0,
                    },
                ];
            }),
            "arrival.schedule[1].start_s",
        ),
        (
            Box::new(|c| c.arrival.process = ArrivalKind::Schedule),
            "arrival.schedule",
        ),
        (
            Box::new(|c| c.claims.weekday_factors = [0.0; 7]),
            "claims.weekday_factors",
        ),
        (Box::new(|c| c.max_pending_steps = 0), "max_pending_steps"),
    ];
    for (mutate, field) in cases {
        let mut cfg = WorkloadConfig::default();
        mutate(&mut cfg);
        let e = cfg.validate().expect_err(field);
        assert!(e.to_string().contains(field), "{e}");
        assert_eq!(field_of(e), field);
    }
}

#[test]
fn generator_refuses_impossible_consortia_and_rates() {
    let no_pharmacy = Consortium::new(
        &ConsortiumConfig {
            pharmacies: 1,
            ..ConsortiumConfig::default()
        },
        1,
    )
    .expect("valid");
    let e = Generator::new(&WorkloadConfig::default(), &no_pharmacy, 10.0, 1)
        .err()
        .expect("refused");
    assert_eq!(field_of(e), "mix.supply_chain");
    let c = Consortium::new(&ConsortiumConfig::default(), 1).expect("valid");
    let e = Generator::new(&WorkloadConfig::default(), &c, -5.0, 1)
        .err()
        .expect("refused");
    assert_eq!(field_of(e), "offered_tps");
    let e = Consortium::new(
        &ConsortiumConfig {
            coverage_mismatch_fraction: 1.1,
            ..ConsortiumConfig::default()
        },
        1,
    )
    .expect_err("refused");
    assert_eq!(field_of(e), "consortium.coverage_mismatch_fraction");
    let e = Consortium::new(
        &ConsortiumConfig {
            regions: vec![],
            ..ConsortiumConfig::default()
        },
        1,
    )
    .expect_err("refused");
    assert_eq!(field_of(e), "consortium.regions");
}

#[test]
fn consortium_spec_is_genesis_ready() {
    let cfg = ConsortiumConfig::default();
    let c = Consortium::new(&cfg, 3).expect("valid");
    let spec = c.spec();
    assert_eq!(spec.orgs.len(), 12);
    for (i, o) in spec.orgs.iter().enumerate() {
        assert_eq!(o.id.0, i as u64);
        assert!(cfg.regions.contains(&o.region));
        assert_eq!(
            o.claim_limit_cents.is_some(),
            o.kind == ledger_core::types::OrgKind::Insurer
        );
    }
    let mismatched = (0..cfg.patients as u64)
        .filter(|p| {
            let p = ledger_core::types::PatientId(*p);
            c.coverage(p) != c.billed_payer(p)
        })
        .count() as f64
        / cfg.patients as f64;
    assert!((mismatched - 0.02).abs() < 0.003, "mismatch {mismatched}");
    assert!(spec.coverage.windows(2).all(|w| w[0].0 < w[1].0));
    let again = Consortium::new(&cfg, 3).expect("valid");
    assert_eq!(again.spec(), spec);
}
