//! Block execution: each committed block is executed once per shard (not per
//! replica; the per-replica cost is the CPU model's job).
//!
//! Stand-in until ledger-core's `ShardLedger::apply_block` lands: every
//! operation is accepted and a per-shard height check guards the order.

use ledger_core::types::Tx;

/// Executes committed blocks, one ledger per shard.
pub struct Executor {
    next_height: Vec<u64>,
}

impl Executor {
    /// One ledger per shard.
    pub fn new(shards: u32) -> Self {
        Executor {
            next_height: vec![1; shards as usize],
        }
    }

    /// Execute the operations of block `height` of `shard` at `timestamp_ms`;
    /// returns per operation whether it was accepted (`false` = rejected by a rule).
    pub fn apply<'a>(
        &mut self,
        shard: u32,
        height: u64,
        ops: impl Iterator<Item = &'a Tx>,
        timestamp_ms: u64,
    ) -> Result<Vec<bool>, String> {
        let _ = timestamp_ms;
        let next = &mut self.next_height[shard as usize];
        if height != *next {
            return Err(format!("block at height {height} executed, expected {next}"));
        }
        *next += 1;
        Ok(ops.map(|_| true).collect())
    }
}
