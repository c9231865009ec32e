//! Determinism hygiene: no wall clock or OS randomness outside the one allowed
//! wall-clock function (`sim::run::wall_clock_s`, used only for `wall_time_s`).

use std::path::{Path, PathBuf};

const FORBIDDEN: &[&str] = &[
    "Instant::now",
    "SystemTime",
    "thread_rng",
    "OsRng",
    "from_entropy",
    "rand::rng()",
];

/// The only function allowed to read a clock: (file, function name).
const ALLOWED_FN: (&str, &str) = ("sim/src/run.rs", "pub fn wall_clock_s()");

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Line ranges (1-based, inclusive) of the allowed function's body in `text`.
fn allowed_range(text: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.contains(ALLOWED_FN.1))?;
    let end = (start..lines.len()).find(|&i| lines[i] == "}")?;
    Some((start + 1, end + 1))
}

fn violations(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for krate in ["sim", "ledger-core", "workloads", "simrand"] {
        let mut files = Vec::new();
        rust_files(&root.join(krate).join("src"), &mut files);
        assert!(!files.is_empty(), "no sources found under {krate}/src");
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read source");
            let rel = f
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            let allowed = if rel == ALLOWED_FN.0 {
                allowed_range(&text)
            } else {
                None
            };
            for (i, line) in text.lines().enumerate() {
                let n = i + 1;
                if allowed.is_some_and(|(a, b)| (a..=b).contains(&n)) {
                    continue;
                }
                for pat in FORBIDDEN {
                    if line.contains(pat) {
                        found.push(format!("{rel}:{n}: `{pat}`: {}", line.trim()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn no_clock_or_os_randomness_outside_the_wall_clock_function() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let text = std::fs::read_to_string(root.join(ALLOWED_FN.0)).expect("run.rs");
    assert!(
        allowed_range(&text).is_some(),
        "the allowed wall-clock function is missing"
    );
    let found = violations(root);
    assert!(found.is_empty(), "forbidden calls:\n{}", found.join("\n"));
}

#[test]
fn the_check_catches_a_planted_violation() {
    let dir = tempdir();
    let src = dir.join("sim/src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for k in ["ledger-core", "workloads", "simrand"] {
        std::fs::create_dir_all(dir.join(k).join("src")).expect("mkdir");
        std::fs::write(dir.join(k).join("src/lib.rs"), "//! ok\n").expect("write");
    }
    std::fs::write(
        src.join("run.rs"),
        "pub fn wall_clock_s() -> f64 {\n    let _ = std::time::Instant::now();\n    0.0\n}\nfn bad() { let _ = std::time::SystemTime::now(); }\n",
    )
    .expect("write");
    let found = violations(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("run.rs:5"), "{found:?}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("sim-tidy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The one file allowed `unsafe` code: the prefetch hint (the workspace lints deny
/// `unsafe_code`; this file opts out for its `_mm_prefetch` calls).
const UNSAFE_FILE: &str = "ledger-core/src/prefetch.rs";

/// Lines of the workspace's crates (other than [`UNSAFE_FILE`]) that mention `unsafe`
/// (an `unsafe` block or function, or an opt-out of the `unsafe_code` lint); a
/// `forbid(unsafe_code)` is a stricter rule, not a use.
fn unsafe_outside_the_prefetch_hint(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for krate in [
        "sim",
        "ledger-core",
        "workloads",
        "simrand",
        "cli",
        "benches",
    ] {
        let mut files = Vec::new();
        rust_files(&root.join(krate), &mut files);
        for f in files {
            let rel = f
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            if rel == UNSAFE_FILE || rel.starts_with("sim/tests/tidy.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&f).expect("read source");
            for (i, line) in text.lines().enumerate() {
                if line.contains("unsafe") && !line.contains("forbid(unsafe_code)") {
                    found.push(format!("{rel}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn unsafe_code_only_in_the_prefetch_hint() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let text = std::fs::read_to_string(root.join(UNSAFE_FILE)).expect("prefetch.rs");
    assert!(
        text.contains("// SAFETY:"),
        "the prefetch hint's unsafe blocks must say why they are sound"
    );
    let found = unsafe_outside_the_prefetch_hint(root);
    assert!(
        found.is_empty(),
        "`unsafe` outside {UNSAFE_FILE}:\n{}",
        found.join("\n")
    );
}
