//! Results output: atomic files, atomically assembled result directories, interrupt handling and
//! schema-checked loading of the files described in `docs/results.md`.
//!
//! Everything the CLI writes goes through [`write_atomic`] (a file appears whole or not at all) or
//! a [`ResultDir`] (a results directory appears whole or not at all). The loaders
//! ([`load_summary`], [`load_timeseries`], [`load_latency`], [`load_table_csv`]) check the
//! contract and name the file, key, line and column of whatever does not match it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest result file the loaders read, in bytes (a summary, a time series, a sweep table).
pub const MAX_LOAD_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest number of data rows the CSV loaders accept in one file.
pub const MAX_CSV_ROWS: usize = 10_000_000;
/// Largest number of columns the CSV loaders accept in one file.
pub const MAX_CSV_COLUMNS: usize = 4096;
/// Length of the hex `trace_digest` in `summary.json`.
pub const TRACE_DIGEST_HEX_LEN: usize = 64;

/// The file names of a results directory (docs/results.md).
pub mod files {
    /// Run summary, one JSON object.
    pub const SUMMARY: &str = "summary.json";
    /// Per-second time series.
    pub const TIMESERIES: &str = "timeseries.csv";
    /// Latency distribution of committed transactions.
    pub const LATENCY: &str = "latency.csv";
    /// The fully resolved scenario.
    pub const SCENARIO: &str = "scenario.toml";
    /// Opt-in per-transaction log, gzip-compressed.
    pub const TRANSACTIONS: &str = "transactions.csv.gz";
    /// One row per protocol of a comparison.
    pub const COMPARE: &str = "compare.csv";
    /// One row per point of a sweep.
    pub const SWEEP: &str = "sweep.csv";
    /// The self-contained HTML report.
    pub const REPORT: &str = "report.html";
    /// The sub-directory of a sweep that holds one results directory per point.
    pub const POINTS_DIR: &str = "points";
}

/// Metric columns of `compare.csv` and `sweep.csv`, in their contractual order. The first
/// [`REQUIRED_METRIC_COLUMNS`] are in every table ever written; later ones were added since
/// (a table without them still loads; their cells are then absent).
pub const METRIC_COLUMNS: [&str; 27] = [
    "status",
    "seed",
    "throughput_tps",
    "offered_tps",
    "committed_tx",
    "aborted_tx",
    "rejected_tx",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p99",
    "latency_ms_p999",
    "latency_ms_mean",
    "cross_shard_fraction",
    "cross_shard_abort_rate",
    "stale_rate",
    "view_changes",
    "messages_total",
    "messages_bytes",
    "events",
    "invariant_violations",
    "trace_digest",
    "wall_time_s",
    "cross_shard_latency_ms_p50",
    "cross_shard_latency_ms_p99",
    "single_shard_latency_ms_p50",
    "single_shard_latency_ms_p99",
    "blocks_committed",
];

/// How many leading [`METRIC_COLUMNS`] a loaded table must have.
pub const REQUIRED_METRIC_COLUMNS: usize = 22;

/// Metric columns that hold text, not numbers.
const TEXT_METRIC_COLUMNS: [&str; 2] = ["status", "trace_digest"];

/// Errors of writing and loading result files.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// An I/O operation on a path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("write", "rename", ...).
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file is not valid JSON.
    #[error("{file}: invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A required key is absent from a JSON file.
    #[error("{file}: missing key `{key}`")]
    MissingKey {
        /// The file.
        file: PathBuf,
        /// Dotted path of the key, e.g. `latency_ms.p99`.
        key: String,
    },
    /// A key holds a value of the wrong type.
    #[error("{file}: key `{key}` should be {expected}, found {found}")]
    WrongType {
        /// The file.
        file: PathBuf,
        /// Dotted path of the key.
        key: String,
        /// The type the contract requires.
        expected: &'static str,
        /// What the file holds.
        found: String,
    },
    /// A CSV file lacks a required column.
    #[error("{file}: missing column `{column}` in the header")]
    MissingColumn {
        /// The file.
        file: PathBuf,
        /// The column name.
        column: String,
    },
    /// A CSV cell could not be parsed.
    #[error("{file}: line {line}, column `{column}`: {message}")]
    BadCell {
        /// The file.
        file: PathBuf,
        /// 1-based line number in the file (the header is line 1).
        line: u64,
        /// The column name.
        column: String,
        /// What is wrong with it.
        message: String,
    },
    /// A CSV file is malformed (ragged rows, bad quoting, empty).
    #[error("{file}: line {line}: {message}")]
    BadCsv {
        /// The file.
        file: PathBuf,
        /// 1-based line number (0 if unknown).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A file or table exceeds one of the named limits of this module.
    #[error("{file}: {what} exceeds the limit of {limit}")]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// What is too large.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A name given to [`ResultDir::add_file`] is not a plain relative path.
    #[error("invalid file name `{0}` for a results directory (must be relative, without `..`)")]
    BadName(String),
    /// The target exists and is not a results directory, so it is not replaced.
    #[error("{0} exists and is not a results directory (no summary.json, compare.csv or sweep.csv); refusing to replace it")]
    NotResultsDir(PathBuf),
    /// The interrupt handler could not be installed.
    #[error("cannot install the interrupt handler: {0}")]
    Signal(String),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OutputError {
    let path = path.to_path_buf();
    move |source| OutputError::Io { op, path, source }
}

// ---------------------------------------------------------------------------------------------
// Atomic files
// ---------------------------------------------------------------------------------------------

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary sibling name for `path`: `.<name>.tmp-<pid>-<counter>`, unique in this process.
fn temp_sibling(path: &Path, tag: &str) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let tmp_name = format!(".{name}.{tag}-{}-{n}", std::process::id());
    match path.parent() {
        Some(p) => p.join(tmp_name),
        None => PathBuf::from(tmp_name),
    }
}

/// Flushes a directory's entry table to disk (best effort: not all platforms allow it).
fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory (named with the
/// process id and a counter) is written, fsynced and renamed over `path`. Readers see the old
/// file or the new one, never a part. On error the temporary file is removed.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), OutputError> {
    let path = path.as_ref();
    let tmp = temp_sibling(path, "tmp");
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err("rename into", path))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    } else if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    result
}

/// Compresses `bytes` with gzip (default level).
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>, OutputError> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4 + 64),
        flate2::Compression::default(),
    );
    enc.write_all(bytes)
        .and_then(|_| enc.finish())
        .map_err(io_err("gzip", Path::new("<memory>")))
}

// ---------------------------------------------------------------------------------------------
// Result directories
// ---------------------------------------------------------------------------------------------

/// Whether `dir` looks like a results directory this program wrote (or is empty), and so may be
/// replaced by a new one.
pub fn is_results_dir(dir: &Path) -> bool {
    if [files::SUMMARY, files::COMPARE, files::SWEEP]
        .iter()
        .any(|f| dir.join(f).is_file())
    {
        return true;
    }
    match fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => false,
    }
}

/// Checks that a relative name stays inside the directory.
fn checked_relative(name: &str) -> Result<&Path, OutputError> {
    let p = Path::new(name);
    let ok = !name.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(p)
    } else {
        Err(OutputError::BadName(name.to_string()))
    }
}

/// A results directory being assembled.
///
/// Files go into `<DIR>.tmp-<pid>` (a sibling of the target); [`ResultDir::finish`] renames it to
/// `<DIR>`. Dropping a builder that was not finished (an error, a panic, an interrupt) removes the
/// temporary directory, so no partial results are ever left under the target name.
#[derive(Debug)]
pub struct ResultDir {
    target: PathBuf,
    tmp: PathBuf,
    finished: bool,
}

impl ResultDir {
    /// Starts assembling a results directory that will become `target`.
    ///
    /// Fails early (before any work is done) if `target` exists and is not a results directory.
    pub fn create(target: impl AsRef<Path>) -> Result<Self, OutputError> {
        let target = target.as_ref().to_path_buf();
        if target.exists() && !is_results_dir(&target) {
            return Err(OutputError::NotResultsDir(target));
        }
        let mut tmp_name = target
            .file_name()
            .ok_or_else(|| OutputError::BadName(target.display().to_string()))?
            .to_os_string();
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = target.with_file_name(tmp_name);
        if let Some(parent) = target.parent() {
            if !parent.as_os_str().is_empty() {
                fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
            }
        }
        if tmp.exists() {
            // A leftover of this same pid (a previous builder in this process): it is ours.
            fs::remove_dir_all(&tmp).map_err(io_err("remove stale", &tmp))?;
        }
        fs::create_dir(&tmp).map_err(io_err("create directory", &tmp))?;
        Ok(Self {
            target,
            tmp,
            finished: false,
        })
    }

    /// The temporary directory being filled (write plots and reports here before finishing).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final path the directory will have after [`ResultDir::finish`].
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes `bytes` as `name` (a relative path; sub-directories are created) atomically, and
    /// returns the path written.
    pub fn add_file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, OutputError> {
        let rel = checked_relative(name)?;
        let path = self.tmp.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
        }
        write_atomic(&path, bytes)?;
        Ok(path)
    }

    /// Writes `bytes` gzip-compressed as `name` (give the `.gz` suffix yourself).
    pub fn add_gz_file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, OutputError> {
        let gz = gzip(bytes)?;
        self.add_file(name, &gz)
    }

    /// Renames the assembled directory into place and returns the final path.
    ///
    /// If the target already holds a previous results directory it is replaced: the old one is
    /// renamed to a backup, the new one renamed into place, then the backup removed. If the second
    /// rename fails the old directory is put back.
    pub fn finish(mut self) -> Result<PathBuf, OutputError> {
        sync_dir(&self.tmp);
        if self.target.exists() {
            if !is_results_dir(&self.target) {
                return Err(OutputError::NotResultsDir(self.target.clone()));
            }
            let backup = temp_sibling(&self.target, "old");
            fs::rename(&self.target, &backup)
                .map_err(io_err("rename old results", &self.target))?;
            if let Err(e) = fs::rename(&self.tmp, &self.target) {
                let _ = fs::rename(&backup, &self.target);
                return Err(io_err("rename into", &self.target)(e));
            }
            self.finished = true;
            fs::remove_dir_all(&backup).map_err(io_err("remove old results", &backup))?;
        } else {
            fs::rename(&self.tmp, &self.target).map_err(io_err("rename into", &self.target))?;
            self.finished = true;
        }
        if let Some(parent) = self.target.parent() {
            sync_dir(parent);
        }
        Ok(self.target.clone())
    }
}

impl Drop for ResultDir {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Interrupts
// ---------------------------------------------------------------------------------------------

static INTERRUPT_FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs a SIGINT/SIGTERM (Ctrl-C) handler once per process and returns the flag it sets.
///
/// Long-running commands poll the flag (`flag.load(Ordering::Relaxed)`) between steps, stop, and
/// let [`ResultDir`] drop so nothing partial is left. A second interrupt while the flag is
/// already set exits the process at once with status 130. Calling this again returns the same
/// flag.
pub fn install_interrupt_flag() -> Result<Arc<AtomicBool>, OutputError> {
    if let Some(flag) = INTERRUPT_FLAG.get() {
        return Ok(Arc::clone(flag));
    }
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&flag);
    ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .map_err(|e| OutputError::Signal(e.to_string()))?;
    Ok(Arc::clone(INTERRUPT_FLAG.get_or_init(|| flag)))
}

// ---------------------------------------------------------------------------------------------
// summary.json
// ---------------------------------------------------------------------------------------------

/// `latency_ms` of `summary.json`; `None` where the file holds `null` (nothing committed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Median commit latency, ms.
    pub p50: Option<f64>,
    /// 90th percentile, ms.
    pub p90: Option<f64>,
    /// 99th percentile, ms.
    pub p99: Option<f64>,
    /// 99.9th percentile, ms.
    pub p999: Option<f64>,
    /// Maximum, ms.
    pub max: Option<f64>,
    /// Mean, ms.
    pub mean: Option<f64>,
}

/// Count and size of one message type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageCount {
    /// Messages sent.
    pub count: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// `messages` of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesSummary {
    /// Messages sent in total.
    pub total: u64,
    /// Bytes sent in total.
    pub bytes: u64,
    /// Per message type.
    pub by_type: BTreeMap<String, MessageCount>,
}

/// `cross_shard` of `summary.json`; `None` where the file holds `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossShardSummary {
    /// Fraction of committed transactions that spanned shards.
    pub fraction: Option<f64>,
    /// Fraction of cross-shard transactions aborted.
    pub abort_rate: Option<f64>,
    /// Median latency of cross-shard transactions, ms.
    pub latency_ms_p50: Option<f64>,
    /// 99th percentile latency of cross-shard transactions, ms.
    pub latency_ms_p99: Option<f64>,
    /// Median latency of single-shard transactions, ms.
    pub single_shard_latency_ms_p50: Option<f64>,
    /// 99th percentile latency of single-shard transactions, ms.
    pub single_shard_latency_ms_p99: Option<f64>,
}

/// `forks` of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForksSummary {
    /// Blocks mined/proposed that did not end in the final chain.
    pub stale_blocks: u64,
    /// Stale blocks / all blocks; `None` where the file holds `null`.
    pub stale_rate: Option<f64>,
    /// Chain reorganisations.
    pub reorgs: u64,
}

/// `invariants` of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvariantsSummary {
    /// Invariant checks performed.
    pub checked: u64,
    /// Violations found (anything above 0 is a failed run).
    pub violations: u64,
}

/// The stable keys of `summary.json` (docs/results.md). Serializes to exactly those keys;
/// [`load_summary`] checks every key and type before building it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Master seed.
    pub seed: u64,
    /// Consensus protocol name.
    pub consensus: String,
    /// Number of shards.
    pub shards: u64,
    /// Total consensus nodes.
    pub nodes: u64,
    /// Simulated seconds run.
    pub sim_time_s: f64,
    /// Wall-clock seconds (non-deterministic).
    pub wall_time_s: f64,
    /// Events processed by the kernel.
    pub events: u64,
    /// Events per wall-clock second (non-deterministic).
    pub events_per_wall_s: f64,
    /// Simulated seconds per wall-clock second (non-deterministic).
    pub sim_s_per_wall_s: f64,
    /// Transactions submitted after warm-up.
    pub submitted_tx: u64,
    /// Transactions committed (accepted or rejected by a rule).
    pub committed_tx: u64,
    /// Committed but rejected by a ledger rule.
    pub rejected_tx: u64,
    /// Cross-shard transactions aborted.
    pub aborted_tx: u64,
    /// Committed transactions per measured second.
    pub throughput_tps: f64,
    /// Submitted transactions per measured second.
    pub offered_tps: f64,
    /// Commit latency percentiles.
    pub latency_ms: LatencySummary,
    /// Message counts.
    pub messages: MessagesSummary,
    /// Cross-shard statistics.
    pub cross_shard: CrossShardSummary,
    /// Fork statistics.
    pub forks: ForksSummary,
    /// View changes / leader elections / epoch changes.
    pub view_changes: u64,
    /// Blocks committed.
    pub blocks_committed: u64,
    /// blake3 over every commit in order, 64 hex chars.
    pub trace_digest: String,
    /// Invariant checking.
    pub invariants: InvariantsSummary,
}

/// What a key of `summary.json` must hold.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    UInt,
    Num,
    NumOrNull,
    Obj,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::UInt => "a non-negative integer",
            Kind::Num => "a number",
            Kind::NumOrNull => "a number or null",
            Kind::Obj => "an object",
        }
    }
    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Str => v.is_string(),
            Kind::UInt => v.is_u64(),
            Kind::Num => v.is_number(),
            Kind::NumOrNull => v.is_number() || v.is_null(),
            Kind::Obj => v.is_object(),
        }
    }
}

/// Every stable key of `summary.json` with its type; parents come before their children.
const SUMMARY_SCHEMA: &[(&str, Kind)] = &[
    ("scenario", Kind::Str),
    ("seed", Kind::UInt),
    ("consensus", Kind::Str),
    ("shards", Kind::UInt),
    ("nodes", Kind::UInt),
    ("sim_time_s", Kind::Num),
    ("wall_time_s", Kind::Num),
    ("events", Kind::UInt),
    ("events_per_wall_s", Kind::Num),
    ("sim_s_per_wall_s", Kind::Num),
    ("submitted_tx", Kind::UInt),
    ("committed_tx", Kind::UInt),
    ("rejected_tx", Kind::UInt),
    ("aborted_tx", Kind::UInt),
    ("throughput_tps", Kind::Num),
    ("offered_tps", Kind::Num),
    ("latency_ms", Kind::Obj),
    ("latency_ms.p50", Kind::NumOrNull),
    ("latency_ms.p90", Kind::NumOrNull),
    ("latency_ms.p99", Kind::NumOrNull),
    ("latency_ms.p999", Kind::NumOrNull),
    ("latency_ms.max", Kind::NumOrNull),
    ("latency_ms.mean", Kind::NumOrNull),
    ("messages", Kind::Obj),
    ("messages.total", Kind::UInt),
    ("messages.bytes", Kind::UInt),
    ("messages.by_type", Kind::Obj),
    ("cross_shard", Kind::Obj),
    ("cross_shard.fraction", Kind::NumOrNull),
    ("cross_shard.abort_rate", Kind::NumOrNull),
    ("cross_shard.latency_ms_p50", Kind::NumOrNull),
    ("cross_shard.latency_ms_p99", Kind::NumOrNull),
    ("cross_shard.single_shard_latency_ms_p50", Kind::NumOrNull),
    ("cross_shard.single_shard_latency_ms_p99", Kind::NumOrNull),
    ("forks", Kind::Obj),
    ("forks.stale_blocks", Kind::UInt),
    ("forks.stale_rate", Kind::NumOrNull),
    ("forks.reorgs", Kind::UInt),
    ("view_changes", Kind::UInt),
    ("blocks_committed", Kind::UInt),
    ("trace_digest", Kind::Str),
    ("invariants", Kind::Obj),
    ("invariants.checked", Kind::UInt),
    ("invariants.violations", Kind::UInt),
];

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() > 40 => "a string".into(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, OutputError> {
    let meta = fs::metadata(path).map_err(io_err("read", path))?;
    if meta.len() > MAX_LOAD_FILE_BYTES {
        return Err(OutputError::TooLarge {
            file: path.to_path_buf(),
            what: "file size",
            limit: MAX_LOAD_FILE_BYTES,
        });
    }
    fs::read(path).map_err(io_err("read", path))
}

/// Checks a parsed `summary.json` against the contract and builds the typed [`Summary`].
/// `file` is only used to name the file in errors.
pub fn summary_from_json(file: &Path, value: &Value) -> Result<Summary, OutputError> {
    if !value.is_object() {
        return Err(OutputError::WrongType {
            file: file.to_path_buf(),
            key: "(top level)".into(),
            expected: "an object",
            found: describe(value),
        });
    }
    for &(key, kind) in SUMMARY_SCHEMA {
        let mut cur = value;
        for part in key.split('.') {
            cur = cur.get(part).ok_or_else(|| OutputError::MissingKey {
                file: file.to_path_buf(),
                key: key.to_string(),
            })?;
        }
        if !kind.accepts(cur) {
            return Err(OutputError::WrongType {
                file: file.to_path_buf(),
                key: key.to_string(),
                expected: kind.name(),
                found: describe(cur),
            });
        }
    }
    if let Some(by_type) = value["messages"]["by_type"].as_object() {
        for (name, entry) in by_type {
            for field in ["count", "bytes"] {
                let key = format!("messages.by_type.{name}.{field}");
                match entry.get(field) {
                    None => {
                        return Err(OutputError::MissingKey {
                            file: file.to_path_buf(),
                            key,
                        })
                    }
                    Some(v) if !v.is_u64() => {
                        return Err(OutputError::WrongType {
                            file: file.to_path_buf(),
                            key,
                            expected: Kind::UInt.name(),
                            found: describe(v),
                        })
                    }
                    Some(_) => {}
                }
            }
        }
    }
    let digest = value["trace_digest"].as_str().unwrap_or_default();
    if digest.len() != TRACE_DIGEST_HEX_LEN || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(OutputError::WrongType {
            file: file.to_path_buf(),
            key: "trace_digest".into(),
            expected: "64 hex characters",
            found: describe(&value["trace_digest"]),
        });
    }
    serde_json::from_value(value.clone()).map_err(|e| OutputError::Json {
        file: file.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Loads and schema-checks `DIR/summary.json`. A missing key or a wrong type is an error that
/// names the file and the dotted key.
pub fn load_summary(dir: impl AsRef<Path>) -> Result<Summary, OutputError> {
    let file = dir.as_ref().join(files::SUMMARY);
    let bytes = read_limited(&file)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| OutputError::Json {
        file: file.clone(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    summary_from_json(&file, &value)
}

// ---------------------------------------------------------------------------------------------
// CSV files
// ---------------------------------------------------------------------------------------------

/// A CSV file read whole: its header and its records with their line numbers.
struct RawCsv {
    file: PathBuf,
    header: Vec<String>,
    records: Vec<(u64, csv::StringRecord)>,
}

impl RawCsv {
    fn read(file: &Path) -> Result<Self, OutputError> {
        let bytes = read_limited(file)?;
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(bytes.as_slice());
        let csv_err = |e: csv::Error| OutputError::BadCsv {
            file: file.to_path_buf(),
            line: e.position().map(|p| p.line()).unwrap_or(0),
            message: e.to_string(),
        };
        let header: Vec<String> = rdr
            .headers()
            .map_err(csv_err)?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        if header.is_empty() || header.iter().all(|h| h.is_empty()) {
            return Err(OutputError::BadCsv {
                file: file.to_path_buf(),
                line: 1,
                message: "empty file or header".into(),
            });
        }
        if header.len() > MAX_CSV_COLUMNS {
            return Err(OutputError::TooLarge {
                file: file.to_path_buf(),
                what: "column count",
                limit: MAX_CSV_COLUMNS as u64,
            });
        }
        let mut records = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(csv_err)?;
            if records.len() >= MAX_CSV_ROWS {
                return Err(OutputError::TooLarge {
                    file: file.to_path_buf(),
                    what: "row count",
                    limit: MAX_CSV_ROWS as u64,
                });
            }
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            records.push((line, rec));
        }
        Ok(Self {
            file: file.to_path_buf(),
            header,
            records,
        })
    }

    fn column(&self, name: &str) -> Result<usize, OutputError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| OutputError::MissingColumn {
                file: self.file.clone(),
                column: name.to_string(),
            })
    }

    fn bad(&self, line: u64, col: usize, message: String) -> OutputError {
        OutputError::BadCell {
            file: self.file.clone(),
            line,
            column: self.header[col].clone(),
            message,
        }
    }

    fn opt_f64(
        &self,
        line: u64,
        rec: &csv::StringRecord,
        col: usize,
    ) -> Result<Option<f64>, OutputError> {
        let s = rec.get(col).unwrap_or("").trim();
        if s.is_empty() {
            return Ok(None);
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(self.bad(line, col, format!("`{s}` is not a finite number"))),
        }
    }

    fn f64(&self, line: u64, rec: &csv::StringRecord, col: usize) -> Result<f64, OutputError> {
        self.opt_f64(line, rec, col)?
            .ok_or_else(|| self.bad(line, col, "empty, a number is required".into()))
    }

    fn u64(&self, line: u64, rec: &csv::StringRecord, col: usize) -> Result<u64, OutputError> {
        let s = rec.get(col).unwrap_or("").trim();
        s.parse::<u64>()
            .map_err(|_| self.bad(line, col, format!("`{s}` is not a non-negative integer")))
    }
}

/// One row of `timeseries.csv`: the simulated second `[t_s, t_s + 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeseriesRow {
    /// Start of the one-second bucket, simulated seconds.
    pub t_s: f64,
    /// Whether the second is part of the warm-up.
    pub warmup: bool,
    /// Transactions submitted in that second.
    pub offered_tps: f64,
    /// Transactions committed in that second.
    pub committed_tps: f64,
    /// Transactions committed but rejected by a rule.
    pub rejected_tps: f64,
    /// Cross-shard transactions aborted.
    pub aborted_tps: f64,
    /// Median commit latency, ms (`None` if nothing committed).
    pub latency_ms_p50: Option<f64>,
    /// 99th percentile commit latency, ms (`None` if nothing committed).
    pub latency_ms_p99: Option<f64>,
    /// Bytes sent on the network.
    pub bytes_sent: u64,
    /// View changes in that second.
    pub view_changes: u64,
}

/// Loads and checks `DIR/timeseries.csv`; errors name the file, the line and the column.
pub fn load_timeseries(dir: impl AsRef<Path>) -> Result<Vec<TimeseriesRow>, OutputError> {
    let raw = RawCsv::read(&dir.as_ref().join(files::TIMESERIES))?;
    let c = |n: &str| raw.column(n);
    let (t, w, off, com, rej, abo, p50, p99, bytes, vc) = (
        c("t_s")?,
        c("warmup")?,
        c("offered_tps")?,
        c("committed_tps")?,
        c("rejected_tps")?,
        c("aborted_tps")?,
        c("latency_ms_p50")?,
        c("latency_ms_p99")?,
        c("bytes_sent")?,
        c("view_changes")?,
    );
    let mut rows = Vec::with_capacity(raw.records.len());
    for (line, rec) in &raw.records {
        let line = *line;
        let warmup = match raw.u64(line, rec, w)? {
            0 => false,
            1 => true,
            other => return Err(raw.bad(line, w, format!("`{other}` is not 0 or 1"))),
        };
        rows.push(TimeseriesRow {
            t_s: raw.f64(line, rec, t)?,
            warmup,
            offered_tps: raw.f64(line, rec, off)?,
            committed_tps: raw.f64(line, rec, com)?,
            rejected_tps: raw.f64(line, rec, rej)?,
            aborted_tps: raw.f64(line, rec, abo)?,
            latency_ms_p50: raw.opt_f64(line, rec, p50)?,
            latency_ms_p99: raw.opt_f64(line, rec, p99)?,
            bytes_sent: raw.u64(line, rec, bytes)?,
            view_changes: raw.u64(line, rec, vc)?,
        });
    }
    Ok(rows)
}

/// One row of `latency.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyPoint {
    /// Percentile, 0 to 100.
    pub percentile: f64,
    /// Commit latency at that percentile, ms.
    pub latency_ms: f64,
}

/// Loads and checks `DIR/latency.csv` (percentiles within 0..=100, non-negative latencies);
/// errors name the file, the line and the column. A run that committed nothing after warm-up
/// writes its percentile rows with an empty `latency_ms`: those rows are skipped (no
/// distribution), so such a run loads as an empty list.
pub fn load_latency(dir: impl AsRef<Path>) -> Result<Vec<LatencyPoint>, OutputError> {
    let raw = RawCsv::read(&dir.as_ref().join(files::LATENCY))?;
    let (p, l) = (raw.column("percentile")?, raw.column("latency_ms")?);
    let mut out = Vec::with_capacity(raw.records.len());
    for (line, rec) in &raw.records {
        let percentile = raw.f64(*line, rec, p)?;
        if !(0.0..=100.0).contains(&percentile) {
            return Err(raw.bad(*line, p, format!("{percentile} is outside 0..=100")));
        }
        let Some(latency_ms) = raw.opt_f64(*line, rec, l)? else {
            continue;
        };
        if latency_ms < 0.0 {
            return Err(raw.bad(*line, l, format!("{latency_ms} is negative")));
        }
        out.push(LatencyPoint {
            percentile,
            latency_ms,
        });
    }
    Ok(out)
}

/// One cell of a comparison or sweep table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A number.
    Num(f64),
    /// Text (a protocol name, a status, a digest).
    Text(String),
    /// Nothing (a failed point's metrics).
    Empty,
}

impl Cell {
    /// The number, if the cell holds one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Num(v) => Some(*v),
            _ => None,
        }
    }
    /// The cell as it appears in the file (numbers formatted back).
    pub fn to_text(&self) -> String {
        match self {
            Cell::Num(v) => format!("{v}"),
            Cell::Text(s) => s.clone(),
            Cell::Empty => String::new(),
        }
    }
}

/// One data row of a table with its 1-based line number in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// Cells, one per header column.
    pub cells: Vec<Cell>,
}

/// Which kind of table a CSV file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// `compare.csv`: first column `protocol`.
    Compare,
    /// `sweep.csv`: first column `point`, then the swept parameters.
    Sweep,
}

/// `compare.csv` or `sweep.csv`, checked: every metric column is present and every numeric
/// metric cell is a number or empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file it was read from.
    pub file: PathBuf,
    /// Compare or sweep.
    pub kind: TableKind,
    /// Column names.
    pub header: Vec<String>,
    /// Data rows in file order.
    pub rows: Vec<TableRow>,
}

impl Table {
    /// Index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// For a sweep, the swept parameter columns (between `point` and `status`); for a
    /// comparison, empty.
    pub fn param_columns(&self) -> &[String] {
        match (self.kind, self.column("status")) {
            (TableKind::Sweep, Some(status)) => &self.header[1..status],
            _ => &[],
        }
    }

    /// A row's cell by column name.
    pub fn cell<'a>(&self, row: &'a TableRow, name: &str) -> Option<&'a Cell> {
        self.column(name).and_then(|i| row.cells.get(i))
    }

    /// A row's number by column name.
    pub fn num(&self, row: &TableRow, name: &str) -> Option<f64> {
        self.cell(row, name).and_then(Cell::as_f64)
    }

    /// Whether a row's status is `ok`.
    pub fn is_ok(&self, row: &TableRow) -> bool {
        matches!(self.cell(row, "status"), Some(Cell::Text(s)) if s == "ok")
    }
}

/// Loads `compare.csv` or `sweep.csv` (recognised by the first column, `protocol` or `point`).
///
/// Metric columns that hold numbers must parse as finite numbers or be empty; other columns are
/// numbers where they parse as one and text otherwise. Errors name the file, the line and the
/// column.
pub fn load_table_csv(path: impl AsRef<Path>) -> Result<Table, OutputError> {
    let raw = RawCsv::read(path.as_ref())?;
    let kind = match raw.header[0].as_str() {
        "protocol" => TableKind::Compare,
        "point" => TableKind::Sweep,
        other => {
            return Err(OutputError::BadCsv {
                file: raw.file.clone(),
                line: 1,
                message: format!("first column is `{other}`, expected `protocol` or `point`"),
            })
        }
    };
    for m in &METRIC_COLUMNS[..REQUIRED_METRIC_COLUMNS] {
        raw.column(m)?;
    }
    let numeric: Vec<bool> = raw
        .header
        .iter()
        .map(|h| METRIC_COLUMNS.contains(&h.as_str()) && !TEXT_METRIC_COLUMNS.contains(&h.as_str()))
        .collect();
    let mut rows = Vec::with_capacity(raw.records.len());
    for (line, rec) in &raw.records {
        let mut cells = Vec::with_capacity(raw.header.len());
        for (i, is_num) in numeric.iter().enumerate() {
            let s = rec.get(i).unwrap_or("").trim();
            let cell = if *is_num {
                match raw.opt_f64(*line, rec, i)? {
                    Some(v) => Cell::Num(v),
                    None => Cell::Empty,
                }
            } else if s.is_empty() {
                Cell::Empty
            } else if i > 0 && !TEXT_METRIC_COLUMNS.contains(&raw.header[i].as_str()) {
                match s.parse::<f64>() {
                    Ok(v) if v.is_finite() => Cell::Num(v),
                    _ => Cell::Text(s.to_string()),
                }
            } else {
                Cell::Text(s.to_string())
            };
            cells.push(cell);
        }
        rows.push(TableRow { line: *line, cells });
    }
    Ok(Table {
        file: raw.file,
        kind,
        header: raw.header,
        rows,
    })
}

fn opt_num(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// The metric cells of one `compare.csv` / `sweep.csv` row, in [`METRIC_COLUMNS`] order.
///
/// `status` is `ok` or `failed: <reason>`; with `summary == None` (a failed point) every metric
/// cell but the status is empty.
pub fn metric_cells(status: &str, summary: Option<&Summary>) -> Vec<String> {
    let Some(s) = summary else {
        let mut v = vec![String::new(); METRIC_COLUMNS.len()];
        v[0] = status.to_string();
        return v;
    };
    vec![
        status.to_string(),
        s.seed.to_string(),
        format!("{}", s.throughput_tps),
        format!("{}", s.offered_tps),
        s.committed_tx.to_string(),
        s.aborted_tx.to_string(),
        s.rejected_tx.to_string(),
        opt_num(s.latency_ms.p50),
        opt_num(s.latency_ms.p90),
        opt_num(s.latency_ms.p99),
        opt_num(s.latency_ms.p999),
        opt_num(s.latency_ms.mean),
        opt_num(s.cross_shard.fraction),
        opt_num(s.cross_shard.abort_rate),
        opt_num(s.forks.stale_rate),
        s.view_changes.to_string(),
        s.messages.total.to_string(),
        s.messages.bytes.to_string(),
        s.events.to_string(),
        s.invariants.violations.to_string(),
        s.trace_digest.clone(),
        format!("{}", s.wall_time_s),
        opt_num(s.cross_shard.latency_ms_p50),
        opt_num(s.cross_shard.latency_ms_p99),
        opt_num(s.cross_shard.single_shard_latency_ms_p50),
        opt_num(s.cross_shard.single_shard_latency_ms_p99),
        s.blocks_committed.to_string(),
    ]
}
