//! Export of the per-shard block logs to a directory, and offline verification.
//!
//! # Layout of `<dir>`
//! - `manifest.bin`: `b"LSMANI02"`, `u32` shard count, `u8` account-locking code
//!   ([`crate::AccountLocking::code`]; replay must use the same mode), `u32` genesis length, the canonical
//!   genesis encoding, then per shard `u64` block count (incl. genesis) and the 32-byte tip
//!   header hash, then a 32-byte blake3 checksum (keyed by `MANIFEST_KEY`) of all prior bytes.
//! - `shard-NNNN.log`: `b"LSLOG001"`, `u32` shard, `u32` shard count, then one frame per
//!   block from the genesis block on: `u32 len | block (canonical encoding) | 32-byte header hash`.
//!
//! # What [`verify_dir`] checks
//! Streaming one frame at a time (memory bounded by one block): every block decodes (limits
//! enforced, garbage is an error, never a panic); heights are consecutive and the shard
//! field right; the genesis block equals the one derived from the manifest's genesis;
//! `prev_hash` chains; the tx root recomputes from the ops; replaying the ops from genesis
//! reproduces the receipts root and the state root; the stored header hash matches the
//! header (which pins fields nothing else covers, such as the timestamp, to this height);
//! the block count and tip hash match the manifest. Any flipped byte in a shard file is
//! therefore caught, and the error names the shard, the height and what failed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write as _};
use std::path::{Path, PathBuf};

use crate::block::{Block, BlockHeader};
use crate::codec::{Decode, DecodeError, Encode, Reader, MAX_BLOCK_BYTES};
use crate::genesis::{Genesis, GenesisIndex};
use crate::hashing::{keyed, MANIFEST_KEY};
use crate::merkle;
use crate::shard::{AccountLocking, Ledger, LedgerConfig, ShardLedger};
use crate::types::{Hash32, ShardId};
use crate::xshard::ShardOp;

const MANIFEST_MAGIC: &[u8; 8] = b"LSMANI02";
const LOG_MAGIC: &[u8; 8] = b"LSLOG001";
/// Name of the manifest file.
pub const MANIFEST_FILE: &str = "manifest.bin";
/// Most shards a manifest may list.
pub const MAX_LOG_SHARDS: u32 = 1 << 16;
/// Largest manifest accepted (bytes).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 30;

/// File name of shard `s`'s log.
pub fn shard_file_name(s: u32) -> String {
    format!("shard-{s:04}.log")
}

/// Failure to export a log.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Filesystem error.
    #[error("writing {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The shard was built without a block log.
    #[error("shard {0} has no block log (logging disabled)")]
    LogDisabled(u32),
    /// The shard's log hit its byte cap and is incomplete.
    #[error("shard {0}'s block log overflowed its cap and is incomplete")]
    LogOverflowed(u32),
}

/// Why a log directory failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Filesystem error.
    #[error("reading {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The manifest is missing, corrupt or inconsistent.
    #[error("manifest: {0}")]
    Manifest(String),
    /// A shard's log file is missing.
    #[error("shard {shard}: log file {path} is missing")]
    MissingShardFile {
        /// Shard.
        shard: u32,
        /// Expected path.
        path: PathBuf,
    },
    /// A shard file's preamble (magic, shard, shard count) is wrong.
    #[error("shard {shard}: bad file preamble")]
    BadPreamble {
        /// Shard.
        shard: u32,
    },
    /// The file ends inside a frame.
    #[error("shard {shard} height {height}: truncated at byte {offset}")]
    Truncated {
        /// Shard.
        shard: u32,
        /// Height of the block being read.
        height: u64,
        /// File offset of the frame.
        offset: u64,
    },
    /// A frame's length exceeds `MAX_BLOCK_BYTES`.
    #[error("shard {shard} height {height}: frame length {len} over the limit")]
    FrameTooLarge {
        /// Shard.
        shard: u32,
        /// Height.
        height: u64,
        /// Length found.
        len: u64,
    },
    /// A block does not decode.
    #[error("shard {shard} height {height}: decode error at byte {offset} of the file: {source}")]
    Decode {
        /// Shard.
        shard: u32,
        /// Height.
        height: u64,
        /// File offset of the frame.
        offset: u64,
        /// Cause.
        source: DecodeError,
    },
    /// A header check failed.
    #[error("shard {shard} height {height}: {what} mismatch")]
    Mismatch {
        /// Shard.
        shard: u32,
        /// Height.
        height: u64,
        /// What failed: "shard id", "height", "genesis block", "prev-hash chain", "tx root",
        /// "receipts root", "state root on replay", "header hash".
        what: &'static str,
    },
    /// The log ends at a different block than the manifest says.
    #[error(
        "shard {shard}: log has {found} blocks, manifest says {expected} (or tip hash differs)"
    )]
    Tip {
        /// Shard.
        shard: u32,
        /// Blocks found.
        found: u64,
        /// Blocks the manifest lists.
        expected: u64,
    },
}

impl VerifyError {
    /// The shard the error is about, if any.
    pub fn shard(&self) -> Option<u32> {
        match self {
            VerifyError::MissingShardFile { shard, .. }
            | VerifyError::BadPreamble { shard }
            | VerifyError::Truncated { shard, .. }
            | VerifyError::FrameTooLarge { shard, .. }
            | VerifyError::Decode { shard, .. }
            | VerifyError::Mismatch { shard, .. }
            | VerifyError::Tip { shard, .. } => Some(*shard),
            _ => None,
        }
    }
    /// The block height the error is about, if any.
    pub fn height(&self) -> Option<u64> {
        match self {
            VerifyError::Truncated { height, .. }
            | VerifyError::FrameTooLarge { height, .. }
            | VerifyError::Decode { height, .. }
            | VerifyError::Mismatch { height, .. } => Some(*height),
            _ => None,
        }
    }
}

/// What a successful verification covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Shards verified.
    pub shard_count: u32,
    /// Blocks verified (incl. one genesis block per shard).
    pub blocks: u64,
    /// Ops replayed.
    pub ops: u64,
    /// Bytes of shard logs read.
    pub bytes: u64,
    /// Final state root of each shard.
    pub state_roots: Vec<Hash32>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes every shard's block log and the manifest to `dir` (created if needed).
pub fn export(ledger: &Ledger, dir: &Path) -> Result<(), ExportError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let n = ledger.shard_count() as u32;
    let mut manifest = Vec::new();
    manifest.extend_from_slice(MANIFEST_MAGIC);
    manifest.extend_from_slice(&n.to_le_bytes());
    manifest.push(ledger.account_locking().code());
    let g = ledger.genesis().genesis.to_bytes();
    manifest.extend_from_slice(&(g.len() as u32).to_le_bytes());
    manifest.extend_from_slice(&g);
    for s in &ledger.shards {
        let id = s.shard().0;
        let log = s.log().ok_or(ExportError::LogDisabled(id))?;
        if log.overflowed() {
            return Err(ExportError::LogOverflowed(id));
        }
        let path = dir.join(shard_file_name(id));
        let f = File::create(&path).map_err(io_err(&path))?;
        let mut w = BufWriter::new(f);
        w.write_all(LOG_MAGIC).map_err(io_err(&path))?;
        w.write_all(&id.to_le_bytes()).map_err(io_err(&path))?;
        w.write_all(&n.to_le_bytes()).map_err(io_err(&path))?;
        w.write_all(log.bytes()).map_err(io_err(&path))?;
        w.flush().map_err(io_err(&path))?;
        manifest.extend_from_slice(&log.blocks().to_le_bytes());
        manifest.extend_from_slice(&s.tip_hash());
    }
    let sum = keyed(&MANIFEST_KEY, &manifest);
    manifest.extend_from_slice(&sum);
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, &manifest).map_err(io_err(&path))?;
    Ok(())
}

struct Manifest {
    locking: AccountLocking,
    genesis: Genesis,
    tips: Vec<(u64, Hash32)>,
}

fn read_manifest(dir: &Path) -> Result<Manifest, VerifyError> {
    let path = dir.join(MANIFEST_FILE);
    let f = File::open(&path).map_err(|source| VerifyError::Io {
        path: path.clone(),
        source,
    })?;
    let mut bytes = Vec::new();
    f.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| VerifyError::Io {
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES || bytes.len() < 8 + 32 {
        return Err(VerifyError::Manifest("size out of range".into()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if keyed(&MANIFEST_KEY, body) != sum {
        return Err(VerifyError::Manifest("checksum mismatch".into()));
    }
    let bad = |e: DecodeError| VerifyError::Manifest(e.to_string());
    let mut r = Reader::new(body);
    if r.take(8).map_err(bad)? != MANIFEST_MAGIC {
        return Err(VerifyError::Manifest("bad magic".into()));
    }
    let n = r.u32().map_err(bad)?;
    if n == 0 || n > MAX_LOG_SHARDS {
        return Err(VerifyError::Manifest(format!(
            "shard count {n} out of range"
        )));
    }
    let code = r.u8().map_err(bad)?;
    let locking = AccountLocking::from_code(code)
        .ok_or_else(|| VerifyError::Manifest(format!("unknown account-locking code {code}")))?;
    let glen = r.u32().map_err(bad)? as usize;
    let genesis = Genesis::decode(r.take(glen).map_err(bad)?).map_err(bad)?;
    let mut tips = Vec::with_capacity(n as usize);
    for _ in 0..n {
        tips.push((r.u64().map_err(bad)?, r.hash().map_err(bad)?));
    }
    r.finish().map_err(bad)?;
    Ok(Manifest {
        locking,
        genesis,
        tips,
    })
}

/// Verifies an exported log directory (see the module docs). Streams each shard file.
pub fn verify_dir(dir: &Path) -> Result<VerifyReport, VerifyError> {
    let m = read_manifest(dir)?;
    let n = m.tips.len() as u32;
    let g = GenesisIndex::new(&m.genesis);
    let mut report = VerifyReport {
        shard_count: n,
        blocks: 0,
        ops: 0,
        bytes: 0,
        state_roots: Vec::new(),
    };
    let mut frame = Vec::new();
    let mut leaves: Vec<Hash32> = Vec::new();
    for s in 0..n {
        let path = dir.join(shard_file_name(s));
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VerifyError::MissingShardFile { shard: s, path })
            }
            Err(source) => return Err(VerifyError::Io { path, source }),
        };
        let io = |source| VerifyError::Io {
            path: path.clone(),
            source,
        };
        let mut rd = BufReader::with_capacity(1 << 20, f);
        let mut pre = [0u8; 16];
        if read_full(&mut rd, &mut pre).map_err(io)? != 16
            || &pre[..8] != LOG_MAGIC
            || pre[8..12] != s.to_le_bytes()
            || pre[12..16] != n.to_le_bytes()
        {
            return Err(VerifyError::BadPreamble { shard: s });
        }
        let mut offset: u64 = 16;
        let config = LedgerConfig {
            log_max_bytes: None,
            account_locking: m.locking,
        };
        let mut replay = ShardLedger::with_config(g.clone(), ShardId(s), n, config);
        let mut height: u64 = 0;
        let mut prev_stored_hash: Option<Hash32> = None;
        let mismatch = |height: u64, what: &'static str| VerifyError::Mismatch {
            shard: s,
            height,
            what,
        };
        loop {
            let mut lenb = [0u8; 4];
            match read_full(&mut rd, &mut lenb).map_err(io)? {
                0 => break,
                4 => {}
                _ => {
                    return Err(VerifyError::Truncated {
                        shard: s,
                        height,
                        offset,
                    })
                }
            }
            let len = u32::from_le_bytes(lenb) as usize;
            if len > MAX_BLOCK_BYTES {
                return Err(VerifyError::FrameTooLarge {
                    shard: s,
                    height,
                    len: len as u64,
                });
            }
            frame.resize(len + 32, 0);
            if read_full(&mut rd, &mut frame).map_err(io)? != len + 32 {
                return Err(VerifyError::Truncated {
                    shard: s,
                    height,
                    offset,
                });
            }
            let block = Block::decode(&frame[..len]).map_err(|source| VerifyError::Decode {
                shard: s,
                height,
                offset,
                source,
            })?;
            let mut stored_hash = [0u8; 32];
            stored_hash.copy_from_slice(&frame[len..]);
            let h: &BlockHeader = &block.header;
            if h.shard != ShardId(s) {
                return Err(mismatch(height, "shard id"));
            }
            if h.height != height {
                return Err(mismatch(height, "height"));
            }
            if height == 0 {
                if h != replay.tip() || !block.ops.is_empty() {
                    return Err(mismatch(0, "genesis block"));
                }
            } else {
                if Some(h.prev_hash) != prev_stored_hash || h.prev_hash != replay.tip_hash() {
                    return Err(mismatch(height, "prev-hash chain"));
                }
                leaves.clear();
                leaves.extend(block.ops.iter().map(ShardOp::id));
                if merkle::root(&leaves) != h.tx_root {
                    return Err(mismatch(height, "tx root"));
                }
                report.ops += block.ops.len() as u64;
                let header = block.header;
                let applied = replay.apply_block(block.ops, header.timestamp_ms);
                if applied.header.receipts_root != header.receipts_root {
                    return Err(mismatch(height, "receipts root"));
                }
                if applied.header.state_root != header.state_root {
                    return Err(mismatch(height, "state root on replay"));
                }
            }
            if replay.tip().hash() != stored_hash || replay.tip() != &block_header_of(&frame[..len])
            {
                return Err(mismatch(height, "header hash"));
            }
            prev_stored_hash = Some(stored_hash);
            offset += 4 + len as u64 + 32;
            height += 1;
        }
        let (expected, tip) = m.tips[s as usize];
        if height != expected || prev_stored_hash != Some(tip) {
            return Err(VerifyError::Tip {
                shard: s,
                found: height,
                expected,
            });
        }
        report.blocks += height;
        report.bytes += offset;
        report.state_roots.push(replay.state_root());
    }
    Ok(report)
}

/// The header of an already-decoded frame (cannot fail: the frame decoded as a block).
fn block_header_of(frame: &[u8]) -> BlockHeader {
    let mut r = Reader::new(frame);
    BlockHeader::decode_from(&mut r)
        .unwrap_or_else(|e| panic!("a decoded block's header failed to re-decode: {e}"))
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
