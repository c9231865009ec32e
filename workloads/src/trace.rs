//! Trace files: replay a recorded (or hand-written) request sequence.
//!
//! # Format
//! CSV, UTF-8, with exactly this header line and one request per row:
//! ```text
//! time_s,kind,key,size_bytes
//! 0.000125000,hospital_write,4711,913
//! 0.000250000,claim_submit,17,25000
//! ```
//! - `time_s`: submission time, seconds since the start of the run (decimal, finite,
//!   `>= 0`, nondecreasing from row to row); multiplied by `trace.time_scale`.
//! - `kind`: a [`WorkloadKind::name`]: `hospital_write`, `hospital_read`, `consent`,
//!   `imaging`, `claim_submit`, `claim_adjudicate`, `claim_pay`, `payment`, `supply`.
//! - `key`: an unsigned 64-bit integer naming the entity the row acts on.
//! - `size_bytes`: an unsigned 64-bit integer, the kind's size or amount.
//!
//! # Mapping to transactions
//! | kind | key | size_bytes | transaction |
//! |---|---|---|---|
//! | `hospital_write` | patient (mod patients) | document size | a new record of the patient by their home hospital |
//! | `hospital_read` | patient (mod patients) | 0 | an audited read of one of the patient's records (accessor as configured: home, unconsented or emergency) |
//! | `consent` | patient (mod patients) | 0 | a grant to the patient's home hospital |
//! | `imaging` | study id | study size | anchor (or on-chain study); patient, centre and modality derived from the key |
//! | `claim_submit` | claim id | amount, cents | submission; patient derived from the key, provider = home hospital, payer = billed payer |
//! | `claim_adjudicate` | claim id | approved, cents (0 = deny) | adjudication of that claim |
//! | `claim_pay` | claim id | amount, cents | payment of the approved amount |
//! | `payment` | `from << 32 \| to` (org indices, mod orgs) | amount, cents | transfer |
//! | `supply` | package id | 0 | the package's next event along a path derived from the key (commission, ship/receive per hop, dispense) |
//!
//! Rows that are malformed are refused with a [`TraceError`] naming the line (1 is the
//! header) and the column.

use std::io::{Read, Write};

use ledger_core::types::{SupplyEventKind, Tx};

use crate::{ConfigError, TxRequest, WorkloadKind};

/// The header every trace starts with.
pub const TRACE_HEADER: [&str; 4] = ["time_s", "kind", "key", "size_bytes"];

/// Latest time a trace may name, s (about 292 years in ns fits `u64`; this is 100 years).
pub const MAX_TRACE_TIME_S: f64 = 3.2e9;

/// One row of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceRow {
    /// Submission time, ns.
    pub time_ns: u64,
    /// Transaction kind.
    pub kind: WorkloadKind,
    /// Entity key (see the module docs).
    pub key: u64,
    /// Size or amount (see the module docs).
    pub size_bytes: u64,
}

/// A malformed trace row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}, column `{column}`: {message}")]
pub struct TraceError {
    /// 1-based line number (the header is line 1).
    pub line: u64,
    /// The offending column's name (`row` for a whole-row problem).
    pub column: String,
    /// What is wrong.
    pub message: String,
}

fn err(line: u64, column: &str, message: impl Into<String>) -> TraceError {
    TraceError {
        line,
        column: column.to_string(),
        message: message.into(),
    }
}

impl TraceRow {
    /// The row describing `req` (the inverse of replay, see the module docs).
    pub fn from_request(req: &TxRequest) -> TraceRow {
        let (key, size_bytes) = match &req.tx {
            Tx::RecordWrite {
                patient,
                size_bytes,
                ..
            } => (patient.0, *size_bytes as u64),
            Tx::RecordAccess { patient, .. } => (patient.0, 0),
            Tx::ConsentGrant { patient, .. } | Tx::ConsentRevoke { patient, .. } => (patient.0, 0),
            Tx::ImagingAnchor {
                study, size_bytes, ..
            } => (study.0, *size_bytes),
            Tx::ClaimSubmit {
                claim,
                amount_cents,
                ..
            } => (claim.0, *amount_cents),
            Tx::ClaimAdjudicate {
                claim,
                approved_cents,
                ..
            } => (claim.0, *approved_cents),
            Tx::ClaimPay {
                claim,
                amount_cents,
                ..
            } => (claim.0, *amount_cents),
            Tx::Payment {
                from,
                to,
                amount_cents,
            } => ((from.0 << 32) | (to.0 & 0xFFFF_FFFF), *amount_cents),
            Tx::Supply { package, event, .. } => {
                let _: &SupplyEventKind = event;
                (package.0, 0)
            }
        };
        TraceRow {
            time_ns: req.at_ns,
            kind: req.kind,
            key,
            size_bytes,
        }
    }
}

/// Parse a trace (see the module docs), refusing more than `max_rows` rows. Times are
/// multiplied by `time_scale`.
pub fn parse_trace<R: Read>(
    reader: R,
    time_scale: f64,
    max_rows: usize,
) -> Result<Vec<TraceRow>, TraceError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut line: u64 = 0;
    let mut last_ns = 0u64;
    loop {
        let more = rdr.read_record(&mut record).map_err(|e| {
            let l = e.position().map_or(line + 1, |p| p.line());
            err(l, "row", format!("unreadable CSV: {e}"))
        })?;
        if !more {
            break;
        }
        line = record.position().map_or(line + 1, |p| p.line());
        if rows.is_empty() && line <= 1 && record.iter().eq(TRACE_HEADER.iter().copied()) {
            continue;
        }
        if line <= 1 {
            return Err(err(
                line,
                "row",
                format!("the header must be `{}`", TRACE_HEADER.join(",")),
            ));
        }
        if record.len() != TRACE_HEADER.len() {
            return Err(err(
                line,
                "row",
                format!(
                    "expected {} columns, found {}",
                    TRACE_HEADER.len(),
                    record.len()
                ),
            ));
        }
        let time_s: f64 = record[0]
            .trim()
            .parse()
            .map_err(|_| err(line, "time_s", format!("not a number: `{}`", &record[0])))?;
        if !(0.0..=MAX_TRACE_TIME_S).contains(&time_s) {
            return Err(err(
                line,
                "time_s",
                format!("must be a finite time in [0, {MAX_TRACE_TIME_S}] s, got {time_s}"),
            ));
        }
        let time_ns = (time_s * time_scale * 1e9).round() as u64;
        if time_ns < last_ns {
            return Err(err(
                line,
                "time_s",
                format!("time goes backwards ({time_s} s is before the previous row)"),
            ));
        }
        last_ns = time_ns;
        let kind = WorkloadKind::from_name(record[1].trim()).ok_or_else(|| {
            let names: Vec<&str> = WorkloadKind::ALL.iter().map(|k| k.name()).collect();
            err(
                line,
                "kind",
                format!(
                    "unknown kind `{}` (one of {})",
                    &record[1],
                    names.join(", ")
                ),
            )
        })?;
        let key: u64 = record[2].trim().parse().map_err(|_| {
            err(
                line,
                "key",
                format!("not an unsigned integer: `{}`", &record[2]),
            )
        })?;
        let size_bytes: u64 = record[3].trim().parse().map_err(|_| {
            err(
                line,
                "size_bytes",
                format!("not an unsigned integer: `{}`", &record[3]),
            )
        })?;
        if rows.len() >= max_rows {
            return Err(err(
                line,
                "row",
                format!("more than trace.max_rows = {max_rows} rows"),
            ));
        }
        rows.push(TraceRow {
            time_ns,
            kind,
            key,
            size_bytes,
        });
    }
    Ok(rows)
}

/// Write `rows` as a trace (header included); times with nanosecond precision.
pub fn write_trace<W: Write>(mut writer: W, rows: &[TraceRow]) -> std::io::Result<()> {
    writeln!(writer, "{}", TRACE_HEADER.join(","))?;
    for r in rows {
        writeln!(
            writer,
            "{}.{:09},{},{},{}",
            r.time_ns / 1_000_000_000,
            r.time_ns % 1_000_000_000,
            r.kind.name(),
            r.key,
            r.size_bytes
        )?;
    }
    writer.flush()
}

/// Read and parse the trace file at `path`.
pub(crate) fn read_trace_file(
    path: &str,
    time_scale: f64,
    max_rows: usize,
) -> Result<Vec<TraceRow>, ConfigError> {
    let file = std::fs::File::open(path).map_err(|e| ConfigError::TraceFile {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    Ok(parse_trace(
        std::io::BufReader::new(file),
        time_scale,
        max_rows,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<TraceRow>, TraceError> {
        parse_trace(s.as_bytes(), 1.0, 1_000)
    }

    #[test]
    fn parses_good_rows() {
        let rows = parse("time_s,kind,key,size_bytes\n0.5,imaging,7,1000\n1.25,supply,3,0\n")
            .expect("valid trace");
        assert_eq!(
            rows,
            vec![
                TraceRow {
                    time_ns: 500_000_000,
                    kind: WorkloadKind::Imaging,
                    key: 7,
                    size_bytes: 1000
                },
                TraceRow {
                    time_ns: 1_250_000_000,
                    kind: WorkloadKind::Supply,
                    key: 3,
                    size_bytes: 0
                },
            ]
        );
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let h = "time_s,kind,key,size_bytes\n";
        let cases = [
            (
                format!("{h}0.1,imaging,7,1\nabc,imaging,7,1\n"),
                3,
                "time_s",
            ),
            (format!("{h}0.1,teleport,7,1\n"), 2, "kind"),
            (format!("{h}0.1,imaging,-7,1\n"), 2, "key"),
            (format!("{h}0.1,imaging,7,1.5\n"), 2, "size_bytes"),
            (format!("{h}0.1,imaging,7\n"), 2, "row"),
            (
                format!("{h}0.2,imaging,7,1\n0.1,imaging,7,1\n"),
                3,
                "time_s",
            ),
            (format!("{h}-1,imaging,7,1\n"), 2, "time_s"),
            (format!("{h}inf,imaging,7,1\n"), 2, "time_s"),
            (
                "time,kind,key,size\n0.1,imaging,7,1\n".to_string(),
                1,
                "row",
            ),
        ];
        for (text, line, column) in cases {
            let e = parse(&text).expect_err(&text);
            assert_eq!((e.line, e.column.as_str()), (line, column), "{text}: {e}");
            assert!(e.to_string().contains(&format!("line {line}")), "{e}");
        }
        let e = parse_trace(
            format!("{h}0,supply,1,0\n0,supply,1,0\n").as_bytes(),
            1.0,
            1,
        )
        .expect_err("too many rows");
        assert_eq!(e.line, 3);
    }
}
