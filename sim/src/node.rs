//! The node model: CPU costs per operation and the cores that run handlers.
//!
//! A node handles one event at a time per core. A handler starts at
//! `max(arrival, earliest time a core is free)`; each charge made through
//! [`crate::protocol::Ctx`] pushes that core's free time further, so a leader that
//! must verify and sign for everyone queues work and becomes the bottleneck.
//!
//! # Default costs and how to recalibrate
//! - `verify_ns = 50_000`: one ed25519 signature verification, about 50 µs on a
//!   server core (typical figures: ed25519-dalek / libsodium report 40–60 µs
//!   single-threaded, without batching).
//! - `sign_ns = 20_000`: one ed25519 signature, about 15–25 µs (same sources).
//! - `hash_ns_per_byte = 0.67`: blake3 at about 1.5 GB/s single-threaded on
//!   multi-KB inputs (blake3's published per-core throughput with SIMD is higher;
//!   1–2 GB/s is what ledger-core's hashing benches see on small messages).
//! - `execute_ns_per_tx = 1_000`: executing one ledger transaction, about 1 µs
//!   (ledger-core's block-apply bench divided by the block's transaction count).
//!
//! To recalibrate for a machine, run `cargo bench -p benches` and set
//! `[node] hash_ns_per_byte` from the hashing bench (ns per byte),
//! `execute_ns_per_tx` from the block-apply bench (ns per block / txs per block),
//! and the signature costs from an ed25519 bench of your choice.

use serde::{Deserialize, Serialize};

/// CPU costs and core count of consensus nodes (`[node]` in a scenario).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuCosts {
    /// One signature verification, ns (ed25519, about 50 µs).
    pub verify_ns: u64,
    /// One signature, ns (ed25519, about 20 µs).
    pub sign_ns: u64,
    /// Hashing cost per byte, ns (blake3 at about 1.5 GB/s).
    pub hash_ns_per_byte: f64,
    /// Executing one transaction, ns (about 1 µs).
    pub execute_ns_per_tx: u64,
    /// Cores available for consensus work (handlers run one per core at a time).
    pub cores: u32,
    /// Most events that may wait in one node's input queue; arrivals beyond it are
    /// dropped and counted (a named limit on growth).
    pub max_inbox: u32,
}

impl Default for CpuCosts {
    fn default() -> Self {
        CpuCosts {
            verify_ns: 50_000,
            sign_ns: 20_000,
            hash_ns_per_byte: 0.67,
            execute_ns_per_tx: 1_000,
            cores: 1,
            max_inbox: 1_000_000,
        }
    }
}

/// The per-node charge calculator: [`CpuCosts`] scaled by a slow-node factor.
#[derive(Clone, Debug)]
pub struct ChargeModel {
    costs: CpuCosts,
    factor: f64,
}

impl ChargeModel {
    /// Charges from `costs` at normal speed.
    pub fn new(costs: &CpuCosts) -> Self {
        ChargeModel {
            costs: costs.clone(),
            factor: 1.0,
        }
    }

    /// Set the slowdown factor (1.0 = normal, 2.0 = every operation takes twice as long).
    pub fn set_factor(&mut self, factor: f64) {
        self.factor = factor;
    }

    /// The current slowdown factor.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    #[inline]
    fn scale(&self, ns: u64) -> u64 {
        if self.factor == 1.0 {
            ns
        } else {
            (ns as f64 * self.factor) as u64
        }
    }

    /// Cost of verifying `n` signatures.
    #[inline]
    pub fn verify(&self, n: u64) -> u64 {
        self.scale(self.costs.verify_ns.saturating_mul(n))
    }

    /// Cost of one signature.
    #[inline]
    pub fn sign(&self) -> u64 {
        self.scale(self.costs.sign_ns)
    }

    /// Cost of hashing `bytes` bytes.
    #[inline]
    pub fn hash(&self, bytes: u64) -> u64 {
        self.scale((bytes as f64 * self.costs.hash_ns_per_byte) as u64)
    }

    /// Cost of executing `n` transactions.
    #[inline]
    pub fn execute(&self, n: u64) -> u64 {
        self.scale(self.costs.execute_ns_per_tx.saturating_mul(n))
    }

    /// An arbitrary cost, scaled by the slowdown factor.
    #[inline]
    pub fn raw(&self, ns: u64) -> u64 {
        self.scale(ns)
    }
}
