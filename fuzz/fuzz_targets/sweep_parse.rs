//! Fuzz target `sweep_parse`: sweep files (`ledgersim sweep FILE`).
//!
//! Input is UTF-8 text parsed as a sweep file and expanded into its points, as
//! `ledgersim sweep` does before it runs anything. Both must return `Ok` or an error,
//! never panic, and the expansion must respect `MAX_SWEEP_POINTS`.
#![no_main]

use ledgersim::sweep::{expand, SweepFile, MAX_SWEEP_POINTS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = toml::from_str::<SweepFile>(text) else {
        return;
    };
    let mut params: Vec<String> = file.grid.keys().cloned().collect();
    for p in &file.points {
        for k in p.keys() {
            if !params.contains(k) {
                params.push(k.clone());
            }
        }
    }
    if let Ok(points) = expand(&file, &params, 1) {
        assert!(
            points.len() <= MAX_SWEEP_POINTS,
            "expand returned {} points, over MAX_SWEEP_POINTS",
            points.len()
        );
        for (i, p) in points.iter().enumerate() {
            assert_eq!(p.index, i, "points are numbered in order");
        }
    }
});
