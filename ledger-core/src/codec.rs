//! Canonical binary encoding of everything the ledger hashes or stores.
//!
//! Format rules (hand written, no serde on the wire):
//! - integers are little-endian and fixed width (`u8`, `u16`, `u32`, `u64`, `i16`);
//! - enum variants are a `u8` tag followed by their fields in declaration order;
//! - hashes are 32 raw bytes;
//! - variable-length sequences carry a `u32` count prefix checked against a named limit
//!   ([`MAX_BLOCK_TXS`], [`MAX_GENESIS_ENTRIES`]) before anything is allocated.
//!
//! Every type has exactly one encoding, so `decode(encode(x)) == x` and
//! `encode(decode(b)) == b` for every accepted `b`. Decoding is bounds-checked, never
//! panics, rejects unknown tags and rejects trailing bytes.

use crate::block::{Block, BlockHeader};
use crate::exec::{Receipt, RejectReason};
use crate::hashing::{keyed, OP_ID_KEY, TX_ID_KEY};
use crate::types::{
    AccessPurpose, ClaimId, ConsentScope, Hash32, Modality, OrgId, PackageId, PatientId, RecordId,
    ResourceKind, StudyId, SupplyEventKind, Tx, UserId,
};
use crate::xshard::{ShardOp, Vote, XId};

/// Most operations a block may hold.
pub const MAX_BLOCK_TXS: usize = 1 << 20;
/// Most bytes an encoded block may take.
pub const MAX_BLOCK_BYTES: usize = 128 << 20;
/// Largest encoding of a [`Tx`] (an `ImagingAnchor`).
pub const MAX_TX_ENCODED_LEN: usize = 70;
/// Largest encoding of a [`ShardOp`] (a `Prepare` of the largest tx).
pub const MAX_OP_ENCODED_LEN: usize = 1 + 8 + MAX_TX_ENCODED_LEN;
/// Encoded size of a [`BlockHeader`].
pub const HEADER_ENCODED_LEN: usize = 4 + 8 + 32 * 4 + 8 + 4;
/// Encoded size of a [`Receipt`] (fixed width: tag, reason code).
pub const RECEIPT_ENCODED_LEN: usize = 2;
/// Most entries of any one genesis table (orgs, coverage, reference prices).
pub const MAX_GENESIS_ENTRIES: usize = 1 << 24;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before a field was complete.
    #[error("unexpected end of input at byte {offset}: needed {needed} more bytes")]
    UnexpectedEnd {
        /// Byte offset where the field started.
        offset: usize,
        /// Bytes the field needed.
        needed: usize,
    },
    /// A `u8` tag named no variant.
    #[error("unknown {what} tag {tag} at byte {offset}")]
    UnknownTag {
        /// What was being decoded.
        what: &'static str,
        /// The tag found.
        tag: u8,
        /// Byte offset of the tag.
        offset: usize,
    },
    /// Bytes were left over after a complete value.
    #[error("{remaining} trailing bytes after byte {offset}")]
    TrailingBytes {
        /// Where the value ended.
        offset: usize,
        /// How many bytes followed.
        remaining: usize,
    },
    /// A length or count exceeded its named limit.
    #[error("{what} of {value} exceeds the limit {limit} (at byte {offset})")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The limit.
        limit: u64,
        /// Byte offset of the length field.
        offset: usize,
    },
    /// A field held a value its type does not allow.
    #[error("invalid {what} at byte {offset}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Byte offset of the field.
        offset: usize,
    },
}

/// A byte sink an encoder writes to: a `Vec<u8>` or a fixed stack buffer.
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A fixed-capacity stack buffer, used to hash small values without allocating.
pub struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackBuf<N> {
    /// An empty buffer.
    #[inline]
    pub fn new() -> Self {
        Self {
            buf: [0u8; N],
            len: 0,
        }
    }
    /// The bytes written so far.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> Default for StackBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Sink for StackBuf<N> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        assert!(
            end <= N,
            "StackBuf<{N}> overflow: an encoding exceeded its declared maximum"
        );
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }
}

/// A value with a canonical encoding.
pub trait Encode {
    /// Writes the canonical encoding to `sink`.
    fn encode_to<S: Sink>(&self, sink: &mut S);
    /// Length of the canonical encoding in bytes (computed without encoding).
    fn encoded_len(&self) -> usize;
    /// Appends the canonical encoding to `out` (reuse `out` across calls).
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.encode_to(out);
    }
    /// The canonical encoding in a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode_to(&mut v);
        v
    }
}

/// A value decodable from its canonical encoding.
pub trait Decode: Sized {
    /// Decodes one value from the reader's current position.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// Decodes exactly one value from `bytes` (trailing bytes are an error).
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// A bounds-checked cursor over bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }
    /// Current byte offset.
    pub fn offset(&self) -> usize {
        self.pos
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    /// Errors unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError::TrailingBytes {
                offset: self.pos,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }
    /// Reads `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::UnexpectedEnd {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    /// Reads a `u8`.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    /// Reads a little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// Reads a little-endian `i16`.
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_le_bytes(self.array()?))
    }
    /// Reads a little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// Reads a little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// Reads a 32-byte hash.
    pub fn hash(&mut self) -> Result<Hash32, DecodeError> {
        self.array()
    }
    /// Reads a `u32` count and checks it against `limit`.
    pub fn count(&mut self, what: &'static str, limit: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let n = self.u32()? as usize;
        if n > limit {
            return Err(DecodeError::LimitExceeded {
                what,
                value: n as u64,
                limit: limit as u64,
                offset,
            });
        }
        Ok(n)
    }
    fn tag(&mut self) -> Result<(u8, usize), DecodeError> {
        let at = self.pos;
        Ok((self.u8()?, at))
    }
}

#[inline]
fn put_u64<S: Sink>(s: &mut S, v: u64) {
    s.put(&v.to_le_bytes());
}
#[inline]
fn put_u32<S: Sink>(s: &mut S, v: u32) {
    s.put(&v.to_le_bytes());
}

fn resource_tag(r: ResourceKind) -> u8 {
    match r {
        ResourceKind::Observation => 0,
        ResourceKind::Encounter => 1,
        ResourceKind::MedicationRequest => 2,
        ResourceKind::Condition => 3,
        ResourceKind::Procedure => 4,
        ResourceKind::Patient => 5,
        ResourceKind::DocumentReference => 6,
    }
}
fn resource_from(r: &mut Reader<'_>) -> Result<ResourceKind, DecodeError> {
    let (t, offset) = r.tag()?;
    Ok(match t {
        0 => ResourceKind::Observation,
        1 => ResourceKind::Encounter,
        2 => ResourceKind::MedicationRequest,
        3 => ResourceKind::Condition,
        4 => ResourceKind::Procedure,
        5 => ResourceKind::Patient,
        6 => ResourceKind::DocumentReference,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "resource kind",
                tag,
                offset,
            })
        }
    })
}
fn purpose_tag(p: AccessPurpose) -> u8 {
    match p {
        AccessPurpose::Treatment => 0,
        AccessPurpose::Payment => 1,
        AccessPurpose::Operations => 2,
        AccessPurpose::Emergency => 3,
    }
}
fn purpose_from(r: &mut Reader<'_>) -> Result<AccessPurpose, DecodeError> {
    let (t, offset) = r.tag()?;
    Ok(match t {
        0 => AccessPurpose::Treatment,
        1 => AccessPurpose::Payment,
        2 => AccessPurpose::Operations,
        3 => AccessPurpose::Emergency,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "access purpose",
                tag,
                offset,
            })
        }
    })
}
/// The canonical `u8` tag of a modality.
pub fn modality_tag(m: Modality) -> u8 {
    match m {
        Modality::Ct => 0,
        Modality::Mr => 1,
        Modality::CrDx => 2,
        Modality::Mammography => 3,
        Modality::Ultrasound => 4,
        Modality::PetCt => 5,
    }
}
/// Decodes a modality tag.
pub fn modality_from(r: &mut Reader<'_>) -> Result<Modality, DecodeError> {
    let (t, offset) = r.tag()?;
    Ok(match t {
        0 => Modality::Ct,
        1 => Modality::Mr,
        2 => Modality::CrDx,
        3 => Modality::Mammography,
        4 => Modality::Ultrasound,
        5 => Modality::PetCt,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "modality",
                tag,
                offset,
            })
        }
    })
}

/// The canonical `u8` tag of a resource kind (used by state encodings too).
pub fn resource_kind_tag(r: ResourceKind) -> u8 {
    resource_tag(r)
}
/// Decodes a resource kind tag.
pub fn resource_kind_from(r: &mut Reader<'_>) -> Result<ResourceKind, DecodeError> {
    resource_from(r)
}

impl Encode for Tx {
    fn encode_to<S: Sink>(&self, s: &mut S) {
        match self {
            Tx::RecordWrite {
                record,
                patient,
                author,
                resource,
                doc_hash,
                size_bytes,
            } => {
                s.put(&[0]);
                put_u64(s, record.0);
                put_u64(s, patient.0);
                put_u64(s, author.0);
                s.put(&[resource_tag(*resource)]);
                s.put(doc_hash);
                put_u32(s, *size_bytes);
            }
            Tx::RecordAccess {
                record,
                patient,
                accessor,
                user,
                purpose,
                at_ms,
            } => {
                s.put(&[1]);
                put_u64(s, record.0);
                put_u64(s, patient.0);
                put_u64(s, accessor.0);
                put_u64(s, user.0);
                s.put(&[purpose_tag(*purpose)]);
                put_u64(s, *at_ms);
            }
            Tx::ConsentGrant {
                patient,
                grantee,
                scope,
                expires_at_ms,
            } => {
                s.put(&[2]);
                put_u64(s, patient.0);
                put_u64(s, grantee.0);
                s.put(&[scope.0]);
                put_u64(s, *expires_at_ms);
            }
            Tx::ConsentRevoke { patient, grantee } => {
                s.put(&[3]);
                put_u64(s, patient.0);
                put_u64(s, grantee.0);
            }
            Tx::ImagingAnchor {
                study,
                patient,
                centre,
                modality,
                content_root,
                size_bytes,
                chunk_count,
            } => {
                s.put(&[4]);
                put_u64(s, study.0);
                put_u64(s, patient.0);
                put_u64(s, centre.0);
                s.put(&[modality_tag(*modality)]);
                s.put(content_root);
                put_u64(s, *size_bytes);
                put_u32(s, *chunk_count);
            }
            Tx::ClaimSubmit {
                claim,
                patient,
                provider,
                payer,
                service_code,
                service_day,
                amount_cents,
            } => {
                s.put(&[5]);
                put_u64(s, claim.0);
                put_u64(s, patient.0);
                put_u64(s, provider.0);
                put_u64(s, payer.0);
                put_u32(s, *service_code);
                put_u32(s, *service_day);
                put_u64(s, *amount_cents);
            }
            Tx::ClaimAdjudicate {
                claim,
                patient,
                payer,
                approved_cents,
            } => {
                s.put(&[6]);
                put_u64(s, claim.0);
                put_u64(s, patient.0);
                put_u64(s, payer.0);
                put_u64(s, *approved_cents);
            }
            Tx::ClaimPay {
                claim,
                patient,
                payer,
                provider,
                amount_cents,
            } => {
                s.put(&[7]);
                put_u64(s, claim.0);
                put_u64(s, patient.0);
                put_u64(s, payer.0);
                put_u64(s, provider.0);
                put_u64(s, *amount_cents);
            }
            Tx::Payment {
                from,
                to,
                amount_cents,
            } => {
                s.put(&[8]);
                put_u64(s, from.0);
                put_u64(s, to.0);
                put_u64(s, *amount_cents);
            }
            Tx::Supply {
                package,
                actor,
                event,
            } => {
                s.put(&[9]);
                put_u64(s, package.0);
                put_u64(s, actor.0);
                match event {
                    SupplyEventKind::Commission { product } => {
                        s.put(&[0]);
                        put_u64(s, *product);
                    }
                    SupplyEventKind::Ship { to } => {
                        s.put(&[1]);
                        put_u64(s, to.0);
                    }
                    SupplyEventKind::Receive => s.put(&[2]),
                    SupplyEventKind::Dispense { patient } => {
                        s.put(&[3]);
                        put_u64(s, patient.0);
                    }
                    SupplyEventKind::TemperatureExcursion { celsius_x10 } => {
                        s.put(&[4]);
                        s.put(&celsius_x10.to_le_bytes());
                    }
                }
            }
        }
    }

    #[inline]
    fn encoded_len(&self) -> usize {
        match self {
            Tx::RecordWrite { .. } => 62,
            Tx::RecordAccess { .. } => 42,
            Tx::ConsentGrant { .. } => 26,
            Tx::ConsentRevoke { .. } => 17,
            Tx::ImagingAnchor { .. } => 70,
            Tx::ClaimSubmit { .. } => 49,
            Tx::ClaimAdjudicate { .. } => 33,
            Tx::ClaimPay { .. } => 41,
            Tx::Payment { .. } => 25,
            Tx::Supply { event, .. } => {
                17 + match event {
                    SupplyEventKind::Receive => 1,
                    SupplyEventKind::TemperatureExcursion { .. } => 3,
                    _ => 9,
                }
            }
        }
    }
}

impl Decode for Tx {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Tx::RecordWrite {
                record: RecordId(r.u64()?),
                patient: PatientId(r.u64()?),
                author: OrgId(r.u64()?),
                resource: resource_from(r)?,
                doc_hash: r.hash()?,
                size_bytes: r.u32()?,
            },
            1 => Tx::RecordAccess {
                record: RecordId(r.u64()?),
                patient: PatientId(r.u64()?),
                accessor: OrgId(r.u64()?),
                user: UserId(r.u64()?),
                purpose: purpose_from(r)?,
                at_ms: r.u64()?,
            },
            2 => Tx::ConsentGrant {
                patient: PatientId(r.u64()?),
                grantee: OrgId(r.u64()?),
                scope: ConsentScope(r.u8()?),
                expires_at_ms: r.u64()?,
            },
            3 => Tx::ConsentRevoke {
                patient: PatientId(r.u64()?),
                grantee: OrgId(r.u64()?),
            },
            4 => Tx::ImagingAnchor {
                study: StudyId(r.u64()?),
                patient: PatientId(r.u64()?),
                centre: OrgId(r.u64()?),
                modality: modality_from(r)?,
                content_root: r.hash()?,
                size_bytes: r.u64()?,
                chunk_count: r.u32()?,
            },
            5 => Tx::ClaimSubmit {
                claim: ClaimId(r.u64()?),
                patient: PatientId(r.u64()?),
                provider: OrgId(r.u64()?),
                payer: OrgId(r.u64()?),
                service_code: r.u32()?,
                service_day: r.u32()?,
                amount_cents: r.u64()?,
            },
            6 => Tx::ClaimAdjudicate {
                claim: ClaimId(r.u64()?),
                patient: PatientId(r.u64()?),
                payer: OrgId(r.u64()?),
                approved_cents: r.u64()?,
            },
            7 => Tx::ClaimPay {
                claim: ClaimId(r.u64()?),
                patient: PatientId(r.u64()?),
                payer: OrgId(r.u64()?),
                provider: OrgId(r.u64()?),
                amount_cents: r.u64()?,
            },
            8 => Tx::Payment {
                from: OrgId(r.u64()?),
                to: OrgId(r.u64()?),
                amount_cents: r.u64()?,
            },
            9 => {
                let package = PackageId(r.u64()?);
                let actor = OrgId(r.u64()?);
                let (etag, eoff) = r.tag()?;
                let event = match etag {
                    0 => SupplyEventKind::Commission { product: r.u64()? },
                    1 => SupplyEventKind::Ship {
                        to: OrgId(r.u64()?),
                    },
                    2 => SupplyEventKind::Receive,
                    3 => SupplyEventKind::Dispense {
                        patient: PatientId(r.u64()?),
                    },
                    4 => SupplyEventKind::TemperatureExcursion {
                        celsius_x10: r.i16()?,
                    },
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "supply event",
                            tag,
                            offset: eoff,
                        })
                    }
                };
                Tx::Supply {
                    package,
                    actor,
                    event,
                }
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "tx",
                    tag,
                    offset,
                })
            }
        })
    }
}

impl Tx {
    /// The transaction id: blake3 keyed by [`TX_ID_KEY`] over the canonical encoding.
    /// Encodes on the stack; never allocates.
    #[inline]
    pub fn id(&self) -> Hash32 {
        let mut buf = StackBuf::<MAX_TX_ENCODED_LEN>::new();
        self.encode_to(&mut buf);
        keyed(&TX_ID_KEY, buf.as_slice())
    }
    /// Length of the canonical encoding in bytes (a table lookup, no encoding).
    #[inline]
    pub fn encoded_len(&self) -> usize {
        Encode::encoded_len(self)
    }
    /// Appends the canonical encoding to `out`.
    #[inline]
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        Encode::encode_into(self, out)
    }
    /// Decodes exactly one transaction from `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Tx, DecodeError> {
        <Tx as Decode>::decode(bytes)
    }
}

impl Encode for ShardOp {
    fn encode_to<S: Sink>(&self, s: &mut S) {
        match self {
            ShardOp::Tx(tx) => {
                s.put(&[0]);
                tx.encode_to(s);
            }
            ShardOp::Prepare { xid, tx } => {
                s.put(&[1]);
                put_u64(s, xid.0);
                tx.encode_to(s);
            }
            ShardOp::Commit { xid } => {
                s.put(&[2]);
                put_u64(s, xid.0);
            }
            ShardOp::Abort { xid } => {
                s.put(&[3]);
                put_u64(s, xid.0);
            }
        }
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        match self {
            ShardOp::Tx(tx) => 1 + Encode::encoded_len(tx),
            ShardOp::Prepare { tx, .. } => 9 + Encode::encoded_len(tx),
            ShardOp::Commit { .. } | ShardOp::Abort { .. } => 9,
        }
    }
}

impl Decode for ShardOp {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => ShardOp::Tx(Tx::decode_from(r)?),
            1 => {
                let xid = XId(r.u64()?);
                ShardOp::Prepare {
                    xid,
                    tx: Tx::decode_from(r)?,
                }
            }
            2 => ShardOp::Commit { xid: XId(r.u64()?) },
            3 => ShardOp::Abort { xid: XId(r.u64()?) },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "shard op",
                    tag,
                    offset,
                })
            }
        })
    }
}

impl ShardOp {
    /// The op id (a leaf of the block's tx root): blake3 keyed by [`OP_ID_KEY`] over the
    /// canonical encoding. Never allocates.
    #[inline]
    pub fn id(&self) -> Hash32 {
        let mut buf = StackBuf::<MAX_OP_ENCODED_LEN>::new();
        self.encode_to(&mut buf);
        keyed(&OP_ID_KEY, buf.as_slice())
    }
    /// Length of the canonical encoding in bytes.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        Encode::encoded_len(self)
    }
    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        Encode::encode_into(self, out)
    }
    /// Decodes exactly one op from `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<ShardOp, DecodeError> {
        <ShardOp as Decode>::decode(bytes)
    }
}

impl Encode for Receipt {
    fn encode_to<S: Sink>(&self, s: &mut S) {
        let (tag, code) = match self {
            Receipt::Accepted => (0, 0),
            Receipt::AcceptedBreakGlass => (1, 0),
            Receipt::Rejected(r) => (2, r.code()),
            Receipt::Vote(Vote::Yes) => (3, 0),
            Receipt::Vote(Vote::No(r)) => (4, r.code()),
            Receipt::Committed => (5, 0),
            Receipt::Aborted => (6, 0),
        };
        s.put(&[tag, code]);
    }
    fn encoded_len(&self) -> usize {
        RECEIPT_ENCODED_LEN
    }
}

impl Decode for Receipt {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        let (code, coff) = r.tag()?;
        let reason = || {
            RejectReason::from_code(code).ok_or(DecodeError::UnknownTag {
                what: "reject reason",
                tag: code,
                offset: coff,
            })
        };
        let no_code = |v: Receipt| {
            if code == 0 {
                Ok(v)
            } else {
                Err(DecodeError::Invalid {
                    what: "receipt padding",
                    offset: coff,
                })
            }
        };
        match tag {
            0 => no_code(Receipt::Accepted),
            1 => no_code(Receipt::AcceptedBreakGlass),
            2 => Ok(Receipt::Rejected(reason()?)),
            3 => no_code(Receipt::Vote(Vote::Yes)),
            4 => Ok(Receipt::Vote(Vote::No(reason()?))),
            5 => no_code(Receipt::Committed),
            6 => no_code(Receipt::Aborted),
            tag => Err(DecodeError::UnknownTag {
                what: "receipt",
                tag,
                offset,
            }),
        }
    }
}

impl Encode for BlockHeader {
    fn encode_to<S: Sink>(&self, s: &mut S) {
        put_u32(s, self.shard.0);
        put_u64(s, self.height);
        s.put(&self.prev_hash);
        s.put(&self.tx_root);
        s.put(&self.receipts_root);
        s.put(&self.state_root);
        put_u64(s, self.timestamp_ms);
        put_u32(s, self.op_count);
    }
    fn encoded_len(&self) -> usize {
        HEADER_ENCODED_LEN
    }
}

impl Decode for BlockHeader {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let shard = crate::types::ShardId(r.u32()?);
        let height = r.u64()?;
        let prev_hash = r.hash()?;
        let tx_root = r.hash()?;
        let receipts_root = r.hash()?;
        let state_root = r.hash()?;
        let timestamp_ms = r.u64()?;
        let offset = r.offset();
        let op_count = r.u32()?;
        if op_count as usize > MAX_BLOCK_TXS {
            return Err(DecodeError::LimitExceeded {
                what: "block op count",
                value: op_count as u64,
                limit: MAX_BLOCK_TXS as u64,
                offset,
            });
        }
        Ok(BlockHeader {
            shard,
            height,
            prev_hash,
            tx_root,
            receipts_root,
            state_root,
            timestamp_ms,
            op_count,
        })
    }
}

impl Encode for Block {
    fn encode_to<S: Sink>(&self, s: &mut S) {
        assert_eq!(
            self.header.op_count as usize,
            self.ops.len(),
            "block header op_count disagrees with its ops"
        );
        self.header.encode_to(s);
        for op in &self.ops {
            op.encode_to(s);
        }
    }
    fn encoded_len(&self) -> usize {
        HEADER_ENCODED_LEN + self.ops.iter().map(Encode::encoded_len).sum::<usize>()
    }
}

impl Decode for Block {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.remaining() > MAX_BLOCK_BYTES {
            return Err(DecodeError::LimitExceeded {
                what: "block bytes",
                value: r.remaining() as u64,
                limit: MAX_BLOCK_BYTES as u64,
                offset: r.offset(),
            });
        }
        let header = BlockHeader::decode_from(r)?;
        // Each op takes at least 9 bytes: a count the input cannot hold is rejected before
        // reserving memory for it.
        let n = header.op_count as usize;
        if n > r.remaining() / 9 {
            return Err(DecodeError::UnexpectedEnd {
                offset: r.offset(),
                needed: n * 9 - r.remaining(),
            });
        }
        let mut ops = Vec::with_capacity(n);
        for _ in 0..n {
            ops.push(ShardOp::decode_from(r)?);
        }
        Ok(Block { header, ops })
    }
}
