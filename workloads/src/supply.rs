//! Supply-chain workload: serialized packages moving commission → ship → receive →
//! (ship → receive)* → dispense, along a path of distinct consecutive pharmacies /
//! distributors (GS1 US DSCSA guideline: 6 to 9 events per package).
//!
//! The first organisation of the path commissions the package (acting as
//! manufacturer), every ship is by the current holder to the next organisation, every
//! receive by that addressee, and the last holder (a pharmacy) dispenses to a patient.
//! With probability `excursion_rate` a temperature excursion is recorded by the holder
//! after one (uniformly chosen) receive; the package is then quarantined and the flow
//! stops.

use ledger_core::types::{OrgId, PackageId, PatientId, SupplyEventKind, Tx};
use simrand::Stream;

use crate::patients::PatientTable;

use crate::config::{SupplyChainConfig, MAX_HOPS};
use crate::consortium::Consortium;
use crate::synth::secs_to_ns;

const PATH_LEN: usize = MAX_HOPS as usize + 1;
/// No excursion for this package.
const NO_EXCURSION: u8 = u8::MAX;
/// Stage value: the excursion event is next.
const STAGE_EXCURSION: u8 = u8::MAX;

/// The state of one package between its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SupplyFlow {
    pub(crate) package: u64,
    path: [u32; PATH_LEN],
    hops: u8,
    /// Index of the next event: `2h + 1` ships hop h (h < hops), `2h + 2` receives it,
    /// `2 hops + 1` dispenses; [`STAGE_EXCURSION`] records the excursion.
    stage: u8,
    excursion_hop: u8,
    patient: u64,
}

pub(crate) struct Supply {
    rng: Stream,
    min_hops: u64,
    max_hops: u64,
    excursion_rate: f64,
    step_delay_mean_s: f64,
    products: u64,
    next_package: u64,
    pharmacies: Vec<OrgId>,
}

impl Supply {
    pub(crate) fn new(cfg: &SupplyChainConfig, consortium: &Consortium, rng: Stream) -> Supply {
        Supply {
            rng,
            min_hops: cfg.min_hops as u64,
            max_hops: cfg.max_hops as u64,
            excursion_rate: cfg.excursion_rate,
            step_delay_mean_s: cfg.step_delay_mean_s,
            products: cfg.products as u64,
            next_package: 0,
            pharmacies: consortium.pharmacies().to_vec(),
        }
    }

    /// Whether paths of distinct consecutive organisations exist (2+ pharmacies).
    pub(crate) fn can_run(&self) -> bool {
        self.pharmacies.len() >= 2
    }

    /// Expected events per package (excursions shorten a few flows; ignored).
    pub(crate) fn tx_per_flow(cfg: &SupplyChainConfig) -> f64 {
        2.0 + (cfg.min_hops + cfg.max_hops) as f64
    }

    /// Commission a new package: the event and its flow, with the delay to its first ship.
    #[inline]
    pub(crate) fn start(&mut self, patients: &PatientTable) -> (Tx, SupplyFlow, u64) {
        let package = self.next_package;
        self.next_package += 1;
        let hops = self.rng.range_inclusive(self.min_hops, self.max_hops) as usize;
        let n = self.pharmacies.len() as u64;
        let mut path = [0u32; PATH_LEN];
        path[0] = self.rng.below(n) as u32;
        for i in 1..=hops {
            // Uniform among the pharmacies other than the previous holder.
            let k = self.rng.below(n - 1) as u32;
            path[i] = if k >= path[i - 1] { k + 1 } else { k };
        }
        let excursion_hop = if self.rng.bernoulli(self.excursion_rate) {
            self.rng.below(hops as u64) as u8
        } else {
            NO_EXCURSION
        };
        let patient = patients.sample(&mut self.rng) as u64;
        let product = self.rng.below(self.products);
        let flow = SupplyFlow {
            package,
            path,
            hops: hops as u8,
            stage: 1,
            excursion_hop,
            patient,
        };
        let tx = Tx::Supply {
            package: PackageId(package),
            actor: self.org(path[0]),
            event: SupplyEventKind::Commission { product },
        };
        (tx, flow, self.delay())
    }

    #[inline]
    fn org(&self, i: u32) -> OrgId {
        self.pharmacies[i as usize]
    }

    #[inline]
    fn delay(&mut self) -> u64 {
        secs_to_ns(self.rng.exponential(self.step_delay_mean_s))
    }

    /// The package's next event and the delay to the one after, if any.
    #[inline]
    pub(crate) fn step(&mut self, f: &mut SupplyFlow) -> (Tx, Option<u64>) {
        let package = PackageId(f.package);
        if f.stage == STAGE_EXCURSION {
            let h = f.excursion_hop as usize;
            // Outside the 2–8 °C cold chain: 8.1 °C to 25 °C.
            let celsius_x10 = 81 + self.rng.below(170) as i16;
            let tx = Tx::Supply {
                package,
                actor: self.org(f.path[h + 1]),
                event: SupplyEventKind::TemperatureExcursion { celsius_x10 },
            };
            return (tx, None);
        }
        let e = f.stage as usize;
        let hops = f.hops as usize;
        if e == 2 * hops + 1 {
            let tx = Tx::Supply {
                package,
                actor: self.org(f.path[hops]),
                event: SupplyEventKind::Dispense {
                    patient: PatientId(f.patient),
                },
            };
            return (tx, None);
        }
        let h = (e - 1) / 2;
        let tx = if e % 2 == 1 {
            Tx::Supply {
                package,
                actor: self.org(f.path[h]),
                event: SupplyEventKind::Ship {
                    to: self.org(f.path[h + 1]),
                },
            }
        } else {
            Tx::Supply {
                package,
                actor: self.org(f.path[h + 1]),
                event: SupplyEventKind::Receive,
            }
        };
        if e % 2 == 0 && h == f.excursion_hop as usize {
            f.stage = STAGE_EXCURSION;
        } else {
            f.stage += 1;
        }
        let delay = self.delay();
        (tx, Some(delay))
    }

    /// A flow for a package first seen in a trace: its path derived from the key.
    pub(crate) fn trace_flow(&self, package: u64, patients: u32) -> SupplyFlow {
        let n = self.pharmacies.len() as u64;
        let mut z = crate::synth::mix64(package);
        let hops = (self.min_hops + z % (self.max_hops - self.min_hops + 1)) as usize;
        let mut path = [0u32; PATH_LEN];
        z = crate::synth::mix64(z);
        path[0] = (z % n) as u32;
        for i in 1..=hops {
            z = crate::synth::mix64(z);
            let k = (z % (n - 1)) as u32;
            path[i] = if k >= path[i - 1] { k + 1 } else { k };
        }
        SupplyFlow {
            package,
            path,
            hops: hops as u8,
            stage: 0,
            excursion_hop: NO_EXCURSION,
            patient: crate::synth::mix64(z) % patients.max(1) as u64,
        }
    }

    /// The next event of a trace flow (stage 0 is the commission). Once the package was
    /// dispensed, further rows dispense it again (the ledger rejects them).
    pub(crate) fn trace_step(&mut self, f: &mut SupplyFlow) -> Tx {
        if f.stage == 0 {
            f.stage = 1;
            return Tx::Supply {
                package: PackageId(f.package),
                actor: self.org(f.path[0]),
                event: SupplyEventKind::Commission {
                    product: crate::synth::mix64(f.package) % self.products,
                },
            };
        }
        let last = 2 * f.hops + 1;
        if f.stage >= last {
            f.stage = last;
        }
        self.step(f).0
    }
}
