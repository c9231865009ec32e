//! Imaging workload: one transaction per DICOM study.
//!
//! A study's size is log-uniform between its modality's bounds (see
//! [`crate::config::ImagingConfig`]); it is split into `ceil(size / chunk_size_bytes)`
//! chunks. The content root is Merkle-like without touching pixels: chunks are grouped
//! into at most [`MERKLE_GROUPS_MAX`] groups (series-like), each group's digest is
//! derived from `(study, group, chunks in group)` by a cheap mixer standing for the hash
//! of its chunk hashes, and the root is the blake3 hash of the concatenated group
//! digests. In `anchor` mode only the root travels (payload 0); in `onchain` mode the
//! whole study does (payload = size).

use ledger_core::types::{Hash32, Modality, OrgId, PatientId, StudyId, Tx};
use simrand::{AliasTable, Stream};

use crate::patients::PatientTable;

use crate::config::{ImagingConfig, ImagingMode};
use crate::consortium::Consortium;
use crate::synth::{mix64, synth_digest};

/// Most groups (series) under a content root: bounds the hashing cost of a study.
pub const MERKLE_GROUPS_MAX: u64 = 8;

/// Modality code of each `ImagingConfig::entries` entry.
const MODALITIES: [Modality; 7] = [
    Modality::Ct,
    Modality::Mr,
    Modality::CrDx,
    Modality::Mammography,
    Modality::Mammography,
    Modality::Ultrasound,
    Modality::PetCt,
];

/// The content root of a study of `chunk_count` chunks (see module docs).
pub fn content_root(study: StudyId, chunk_count: u32) -> Hash32 {
    let chunks = chunk_count.max(1) as u64;
    let groups = chunks.min(MERKLE_GROUPS_MAX);
    let mut buf = [0u8; 32 * MERKLE_GROUPS_MAX as usize];
    for g in 0..groups {
        // Chunks in group g (the first groups take the remainder).
        let in_group = chunks / groups + u64::from(g < chunks % groups);
        let leaf = synth_digest(study.0, mix64(g) ^ in_group);
        buf[(g * 32) as usize..(g * 32 + 32) as usize].copy_from_slice(&leaf);
    }
    *blake3::hash(&buf[..(groups * 32) as usize]).as_bytes()
}

pub(crate) struct Imaging {
    rng: Stream,
    modalities: AliasTable,
    /// Per entry: (ln min, ln max) of the size in bytes.
    log_bounds: [(f64, f64); 7],
    chunk_size_bytes: u64,
    onchain: bool,
    next_study: u64,
    /// Organisations acquiring studies: imaging centres, else hospitals.
    centres: Vec<OrgId>,
}

impl Imaging {
    pub(crate) fn new(cfg: &ImagingConfig, consortium: &Consortium, rng: Stream) -> Imaging {
        let entries = cfg.entries();
        let weights = entries.map(|e| e.1);
        let modalities = AliasTable::new(&weights)
            .unwrap_or_else(|| panic!("validated modality weights rejected: {weights:?}"));
        let log_bounds = entries.map(|e| (libm::log(e.2 as f64), libm::log(e.3 as f64)));
        let centres = if consortium.imaging_centres().is_empty() {
            consortium.hospitals().to_vec()
        } else {
            consortium.imaging_centres().to_vec()
        };
        Imaging {
            rng,
            modalities,
            log_bounds,
            chunk_size_bytes: cfg.chunk_size_bytes,
            onchain: cfg.mode == ImagingMode::Onchain,
            next_study: 0,
            centres,
        }
    }

    /// Whether any organisation can acquire studies.
    pub(crate) fn has_centres(&self) -> bool {
        !self.centres.is_empty()
    }

    /// The next study: `(tx, payload_bytes)`.
    #[inline]
    pub(crate) fn next(&mut self, patients: &PatientTable) -> (Tx, u64) {
        let p = patients.sample(&mut self.rng) as u64;
        let m = self.modalities.sample(&mut self.rng);
        let (lo, hi) = self.log_bounds[m];
        let size = libm::exp(lo + (hi - lo) * self.rng.uniform()).round() as u64;
        let centre = self.centres[self.rng.below(self.centres.len() as u64) as usize];
        let study = StudyId(self.next_study);
        self.next_study += 1;
        self.study(study, PatientId(p), centre, MODALITIES[m], size.max(1))
    }

    /// A study transaction with given facts: `(tx, payload_bytes)`.
    pub(crate) fn study(
        &self,
        study: StudyId,
        patient: PatientId,
        centre: OrgId,
        modality: Modality,
        size_bytes: u64,
    ) -> (Tx, u64) {
        let chunks = size_bytes
            .div_ceil(self.chunk_size_bytes)
            .clamp(1, u32::MAX as u64) as u32;
        let tx = Tx::ImagingAnchor {
            study,
            patient,
            centre,
            modality,
            content_root: content_root(study, chunks),
            size_bytes,
            chunk_count: chunks,
        };
        (tx, if self.onchain { size_bytes } else { 0 })
    }

    /// An acquiring organisation for a trace row (derived from the key).
    pub(crate) fn centre_for(&self, key: u64) -> OrgId {
        self.centres[(mix64(key) % self.centres.len() as u64) as usize]
    }

    /// A modality for a trace row (derived from the key).
    pub(crate) fn modality_for(key: u64) -> Modality {
        MODALITIES[(mix64(key ^ 0x5eed) % MODALITIES.len() as u64) as usize]
    }
}
