//! `ledgersim verify` on damaged block logs: a real log from `ledgersim demo`, copied and
//! then truncated, reordered, bit-flipped, replaced with random bytes, stripped of its
//! manifest; plus an empty directory and a missing path. Each must exit 1 with a message
//! naming the shard, the height and what failed (where that applies), never a panic;
//! the untouched copy must exit 0.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Length of a shard file's preamble: magic, shard, shard count.
const PREAMBLE_BYTES: usize = 16;
/// Bytes after each frame's block: the stored header hash.
const FRAME_HASH_BYTES: usize = 32;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ledgersim")
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn verify(dir: &Path) -> Outcome {
    let out = Command::new(bin())
        .arg("verify")
        .arg(dir)
        .output()
        .expect("run ledgersim verify");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// Assert `verify dir` fails with exit 1, no panic, and a message containing every `expect`.
fn assert_refused(dir: &Path, what: &str, expect: &[&str]) -> String {
    let o = verify(dir);
    assert_eq!(
        o.code,
        Some(1),
        "{what}: expected exit 1, got {:?}\nstdout: {}\nstderr: {}",
        o.code,
        o.stdout,
        o.stderr
    );
    assert!(
        !o.stderr.contains("panicked"),
        "{what}: panicked: {}",
        o.stderr
    );
    assert!(
        o.stderr.starts_with("ledgersim: failed:"),
        "{what}: unexpected stderr: {}",
        o.stderr
    );
    assert!(
        !o.stdout.contains("intact"),
        "{what}: reported intact: {}",
        o.stdout
    );
    for e in expect {
        assert!(
            o.stderr.contains(e),
            "{what}: message lacks {e:?}: {}",
            o.stderr
        );
    }
    o.stderr
}

/// A demo block log, exported once per test into its own temp dir.
struct Log {
    _root: tempfile::TempDir,
    ledger: PathBuf,
}

fn demo_log() -> Log {
    let root = tempfile::tempdir().expect("temp dir");
    let out = Command::new(bin())
        .arg("demo")
        .arg("--out")
        .arg(root.path().join("demo"))
        .output()
        .expect("run ledgersim demo");
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ledger = root.path().join("demo").join("ledger");
    assert!(
        ledger.join("manifest.bin").is_file(),
        "demo wrote no manifest"
    );
    Log {
        _root: root,
        ledger,
    }
}

/// A fresh copy of the log directory, named `name`, next to it.
fn copy_of(log: &Log, name: &str) -> PathBuf {
    let dst = log.ledger.with_file_name(name);
    std::fs::create_dir_all(&dst).expect("create copy dir");
    for e in std::fs::read_dir(&log.ledger).expect("read log dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy file");
    }
    dst
}

fn shard_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read log dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("shard-") && n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

/// Byte ranges `(start, end)` of each frame (length prefix to stored hash) of a shard file.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = PREAMBLE_BYTES;
    while at + 4 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let end = at + 4 + len + FRAME_HASH_BYTES;
        assert!(end <= bytes.len(), "the demo's own shard file is malformed");
        out.push((at, end));
        at = end;
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift64*), no OS randomness.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn untouched_copy_verifies() {
    let log = demo_log();
    let dir = copy_of(&log, "intact");
    let o = verify(&dir);
    assert_eq!(o.code, Some(0), "intact log refused: {}", o.stderr);
    assert!(o.stdout.contains("intact"), "{}", o.stdout);
}

#[test]
fn truncated_shard_file_names_shard_and_height() {
    let log = demo_log();
    let files = shard_files(&log.ledger);
    assert!(files.len() >= 2, "the demo should export several shards");
    for (s, f) in files.iter().enumerate() {
        let dir = copy_of(&log, &format!("trunc-{s}"));
        let bytes = std::fs::read(dir.join(f)).expect("read");
        let fr = frames(&bytes);
        // Cut inside the middle frame: the file ends inside a block.
        let (start, end) = fr[fr.len() / 2];
        std::fs::write(dir.join(f), &bytes[..(start + end) / 2]).expect("write");
        let height = fr.len() / 2;
        assert_refused(
            &dir,
            &format!("{f} truncated mid-frame"),
            &[&format!("shard {s} height {height}"), "truncated"],
        );
        // Cut at a frame boundary: the blocks left are fine, but fewer than the manifest says.
        std::fs::write(dir.join(f), &bytes[..start]).expect("write");
        assert_refused(
            &dir,
            &format!("{f} truncated at a frame boundary"),
            &[&format!("shard {s}"), "manifest says"],
        );
    }
}

#[test]
fn reordered_blocks_are_refused() {
    let log = demo_log();
    let files = shard_files(&log.ledger);
    let f = &files[0];
    let dir = copy_of(&log, "reordered");
    let bytes = std::fs::read(dir.join(f)).expect("read");
    let fr = frames(&bytes);
    assert!(fr.len() >= 4, "shard 0 has too few blocks to reorder");
    // Swap blocks 1 and 2.
    let (a0, a1) = fr[1];
    let (b0, b1) = fr[2];
    let mut swapped = bytes[..a0].to_vec();
    swapped.extend_from_slice(&bytes[b0..b1]);
    swapped.extend_from_slice(&bytes[a0..a1]);
    swapped.extend_from_slice(&bytes[b1..]);
    assert_eq!(swapped.len(), bytes.len());
    std::fs::write(dir.join(f), &swapped).expect("write");
    assert_refused(
        &dir,
        "blocks 1 and 2 swapped",
        &["shard 0 height 1", "height mismatch"],
    );
}

#[test]
fn flipped_bytes_anywhere_in_any_shard_file_are_caught() {
    let log = demo_log();
    for (s, f) in shard_files(&log.ledger).iter().enumerate() {
        let original = std::fs::read(log.ledger.join(f)).expect("read");
        let fr = frames(&original);
        // The preamble, the first frame's length, the genesis block, inside a later block's
        // header and ops, a stored hash, and the last byte.
        let mid = fr[fr.len() / 2];
        let offsets = [
            0,
            9,
            13,
            PREAMBLE_BYTES,
            PREAMBLE_BYTES + 4 + 10,
            fr[1].0 + 4 + 20,
            mid.0 + 4 + 50,
            mid.0 + 4 + 200.min(mid.1 - mid.0 - 40),
            mid.1 - 1,
            original.len() - 1,
        ];
        let dir = copy_of(&log, &format!("flip-{s}"));
        for &off in &offsets {
            let mut bytes = original.clone();
            bytes[off] ^= 0x5a;
            std::fs::write(dir.join(f), &bytes).expect("write");
            let msg = assert_refused(
                &dir,
                &format!("{f} byte {off} flipped"),
                &[&format!("shard {s}")],
            );
            // Past the preamble, the message says which block.
            if off >= PREAMBLE_BYTES {
                assert!(
                    msg.contains("height") || msg.contains("blocks, manifest says"),
                    "{f} byte {off}: message names no height: {msg}"
                );
            }
        }
    }
}

#[test]
fn random_bytes_instead_of_a_file_are_refused() {
    let log = demo_log();
    let files = shard_files(&log.ledger);
    for (s, f) in files.iter().enumerate() {
        let dir = copy_of(&log, &format!("random-{s}"));
        let len = std::fs::metadata(dir.join(f)).expect("stat").len() as usize;
        std::fs::write(dir.join(f), noise(s as u64 + 1, len)).expect("write");
        assert_refused(
            &dir,
            &format!("{f} replaced by random bytes"),
            &[&format!("shard {s}"), "preamble"],
        );
        // Random bytes behind a genuine preamble: the frames are garbage.
        let mut bytes = std::fs::read(log.ledger.join(f)).expect("read");
        let tail = bytes.len() - PREAMBLE_BYTES;
        bytes.truncate(PREAMBLE_BYTES);
        bytes.extend(noise(s as u64 + 100, tail));
        std::fs::write(dir.join(f), &bytes).expect("write");
        assert_refused(
            &dir,
            &format!("{f}: genuine preamble, random frames"),
            &[&format!("shard {s} height 0")],
        );
    }
    let dir = copy_of(&log, "random-manifest");
    let len = std::fs::metadata(dir.join("manifest.bin"))
        .expect("stat")
        .len() as usize;
    std::fs::write(dir.join("manifest.bin"), noise(7, len)).expect("write");
    assert_refused(&dir, "random manifest", &["manifest"]);
}

#[test]
fn appended_garbage_and_missing_files_are_refused() {
    let log = demo_log();
    let files = shard_files(&log.ledger);
    let dir = copy_of(&log, "appended");
    let mut bytes = std::fs::read(dir.join(&files[1])).expect("read");
    bytes.extend_from_slice(&noise(3, 100));
    std::fs::write(dir.join(&files[1]), &bytes).expect("write");
    assert_refused(&dir, "garbage appended to shard 1", &["shard 1"]);

    let dir = copy_of(&log, "no-shard");
    std::fs::remove_file(dir.join(&files[2])).expect("remove");
    assert_refused(&dir, "shard file deleted", &["shard 2", "missing"]);

    let dir = copy_of(&log, "no-manifest");
    std::fs::remove_file(dir.join("manifest.bin")).expect("remove");
    assert_refused(&dir, "manifest deleted", &["manifest.bin"]);

    let dir = copy_of(&log, "empty-manifest");
    std::fs::write(dir.join("manifest.bin"), b"").expect("write");
    assert_refused(&dir, "empty manifest", &["manifest"]);

    let empty = log.ledger.with_file_name("empty-dir");
    std::fs::create_dir_all(&empty).expect("mkdir");
    assert_refused(&empty, "empty directory", &["manifest.bin"]);

    let missing = log.ledger.with_file_name("does-not-exist");
    assert_refused(&missing, "nonexistent path", &["does-not-exist"]);

    let file = log.ledger.join(&files[0]);
    assert_refused(&file, "a file instead of a directory", &["manifest.bin"]);
}
