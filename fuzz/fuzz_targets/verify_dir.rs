//! Fuzz target `verify_dir`: `ledger_core::log::verify_dir` on a corrupted shard file.
//!
//! Once per process the ledger-core demo exports a real block log to a temporary
//! directory. Each input replaces one shard's log file (the first byte picks the shard,
//! the rest is the file) next to the genuine manifest and the other shards' files, and
//! the directory is verified. Verification must return `Ok` only for the genuine file
//! and otherwise an error that names a shard; it must never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ledger_core::log::{shard_file_name, verify_dir};
use libfuzzer_sys::fuzz_target;

/// The demo's block log: its directory and the genuine bytes of each shard file.
struct Fixture {
    dir: PathBuf,
    shards: Vec<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root =
            std::env::temp_dir().join(format!("ledgersim-fuzz-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create the fixture directory");
        let report = ledger_core::demo::run(&root).expect("the ledger-core demo runs");
        let dir = report.log_dir;
        let shards = (0..report.shards)
            .map(|s| std::fs::read(dir.join(shard_file_name(s))).expect("read a demo shard file"))
            .collect();
        Fixture { dir, shards }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let shard = selector as usize % f.shards.len();
    let path = f.dir.join(shard_file_name(shard as u32));
    std::fs::write(&path, bytes).expect("write the fuzzed shard file");
    let result = verify_dir(&f.dir);
    std::fs::write(&path, &f.shards[shard]).expect("restore the shard file");
    match result {
        Ok(_) => assert_eq!(
            bytes,
            &f.shards[shard][..],
            "verify_dir accepted a shard file that differs from the exported one"
        ),
        Err(e) => {
            let _ = e.to_string();
            assert!(
                e.shard().is_some(),
                "a shard-file error names no shard: {e}"
            );
        }
    }
});
