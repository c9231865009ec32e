use workloads::config::MixConfig;
use workloads::{Consortium, ConsortiumConfig, Generator, WorkloadConfig};
fn main() {
    let fam = std::env::args().nth(1).unwrap_or_default();
    let n: u64 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(10_000_000);
    let w = |f: &str| if f == fam { 1.0 } else { 0.0 };
    let mut cfg = WorkloadConfig::default();
    if fam != "default" {
        cfg.mix = MixConfig { hospital: w("hospital"), imaging: w("imaging"), claims: w("claims"), supply_chain: w("supply_chain"), payment: w("payment") };
    }
    let c = Consortium::new(&ConsortiumConfig::default(), 1).unwrap();
    let mut g = Generator::new(&cfg, &c, 10_000.0, 42).unwrap();
    let mut acc = 0u64;
    for _ in 0..n { acc = acc.wrapping_add(std::hint::black_box(g.next_request()).unwrap().at_ns); }
    println!("{acc}");
}
