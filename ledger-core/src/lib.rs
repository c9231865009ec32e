//! ledger-core: a sharded healthcare ledger.
//!
//! Transactions ([`types::Tx`]) have a canonical binary encoding ([`codec`]) and blake3
//! ids; blocks ([`block`]) commit to their ops with a blake3 Merkle root ([`merkle`]), to
//! their receipts, and to the shard's state root, which is maintained incrementally
//! ([`state`]). Keys are routed to shards by jump consistent hashing ([`routing`]); each
//! shard ([`shard::ShardLedger`]) executes the domain rules ([`exec`]) and takes part in
//! an atomic two-phase cross-shard commit ([`xshard`]). Block logs can be exported and
//! verified offline ([`log`]); [`demo`] runs a small consortium end to end.

pub mod block;
pub mod codec;
pub mod demo;
pub mod exec;
pub mod genesis;
pub mod hashing;
pub mod log;
pub mod merkle;
pub mod prefetch;
pub mod routing;
pub mod shard;
pub mod state;
pub mod table;
pub mod types;
pub mod xshard;

pub use block::{Block, BlockHeader};
pub use codec::{Decode, DecodeError, Encode, MAX_BLOCK_BYTES, MAX_BLOCK_TXS};
pub use exec::{Receipt, RejectReason};
pub use genesis::{Genesis, GenesisBuilder, HistoricRecords, OrgInfo};
pub use routing::{shards_of, ShardSet};
pub use shard::{AccountLocking, AppliedBlock, Ledger, LedgerConfig, ShardLedger};
pub use xshard::{Coordinator, ShardOp, TxOutcome, Vote, XId};
