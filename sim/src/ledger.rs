//! Block execution in ledger-core: each committed block is executed once per
//! shard (not per replica; the per-replica cost is the CPU model's job).

use ledger_core::types::OrgKind;
use ledger_core::{
    AccountLocking, AppliedBlock, Genesis, GenesisBuilder, HistoricRecords, Ledger, LedgerConfig,
    ShardOp, XId,
};
use workloads::Consortium;

/// The sharded ledger of a run, at the consortium's genesis.
pub struct Executor {
    ledger: Ledger,
    genesis_money: u128,
}

/// The ledger genesis of a consortium: every organisation with its opening
/// balance (insurers with their per-claim limit), the patients' coverage, and the
/// records that predate the run (`historic`, from [`workloads::historic_records`]).
pub fn genesis_of(
    consortium: &Consortium,
    historic: Option<HistoricRecords>,
) -> Result<Genesis, String> {
    let spec = consortium.spec();
    let mut b = GenesisBuilder::new();
    for o in &spec.orgs {
        b = match o.kind {
            OrgKind::Insurer => b.insurer(
                o.id,
                o.opening_balance_cents,
                o.claim_limit_cents.unwrap_or(0),
            ),
            k => b.org(o.id, k, o.opening_balance_cents),
        };
    }
    b = b.cover_all(spec.coverage);
    b = b.historic_records(historic);
    b.build().map_err(|e| format!("consortium genesis: {e}"))
}

impl Executor {
    /// Ledgers for `shards` shards at `genesis`; `log_max_bytes` keeps each shard's
    /// block log in memory (for export) up to that many bytes, `None` keeps none;
    /// `account_locking` is how cross-shard prepares treat accounts.
    pub fn new(
        genesis: Genesis,
        shards: u32,
        log_max_bytes: Option<usize>,
        account_locking: AccountLocking,
    ) -> Self {
        let config = LedgerConfig {
            log_max_bytes,
            account_locking,
        };
        let genesis_money = genesis.total_money();
        Executor {
            ledger: Ledger::from_genesis(genesis, shards, config),
            genesis_money,
        }
    }

    /// Execute a block of `ops` on `shard` at `timestamp_ms`.
    pub fn apply(&mut self, shard: u32, ops: Vec<ShardOp>, timestamp_ms: u64) -> AppliedBlock {
        self.ledger.shards[shard as usize].apply_block(ops, timestamp_ms)
    }

    /// Whether `shard` still holds cross-shard transaction `xid` prepared (locks, holds).
    pub fn is_prepared(&self, shard: u32, xid: XId) -> bool {
        self.ledger.shards[shard as usize].is_prepared(xid)
    }

    /// Current height of `shard`'s ledger.
    pub fn height(&self, shard: u32) -> u64 {
        self.ledger.shards[shard as usize].tip().height
    }

    /// Money conservation: balances plus money in flight between shards equal the
    /// genesis supply. Returns `(now, genesis)` when they differ.
    pub fn money_mismatch(&self) -> Option<(i128, u128)> {
        let total: i128 = self.ledger.shards.iter().map(|s| s.money()).sum();
        (total != self.genesis_money as i128).then_some((total, self.genesis_money))
    }

    /// The ledger (for export with `ledger_core::log::export`).
    pub fn into_ledger(self) -> Ledger {
        self.ledger
    }
}
