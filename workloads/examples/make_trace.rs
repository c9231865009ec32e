//! Write a small example trace from the default consortium and a mixed workload.
//!
//! `cargo run -p workloads --release --example make_trace -- scenarios/traces/example.csv`

use workloads::config::MixConfig;
use workloads::trace::write_trace;
use workloads::{Consortium, ConsortiumConfig, Generator, TraceRow, WorkloadConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "scenarios/traces/example.csv".to_string());
    let cfg = WorkloadConfig {
        // Every family represented (the default mix is 98% hospital).
        mix: MixConfig {
            hospital: 60.0,
            imaging: 5.0,
            claims: 15.0,
            supply_chain: 15.0,
            payment: 5.0,
        },
        ..WorkloadConfig::default()
    };
    // A small panel, so that most hospital rows are reads and writes, not first consents.
    let consortium = Consortium::new(
        &ConsortiumConfig {
            patients: 100,
            ..ConsortiumConfig::default()
        },
        1,
    )?;
    let mut g = Generator::new(&cfg, &consortium, 40.0, 1)?;
    let rows: Vec<TraceRow> = (0..400)
        .map_while(|_| g.next_request())
        .map(|r| TraceRow::from_request(&r))
        .collect();
    write_trace(
        std::io::BufWriter::new(std::fs::File::create(&path)?),
        &rows,
    )?;
    eprintln!("wrote {} rows to {path}", rows.len());
    Ok(())
}
