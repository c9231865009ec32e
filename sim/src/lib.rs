//! ledgersim's deterministic discrete-event simulator.
//!
//! - [`arena`]: in-flight client transactions and operations, retired once finished.
//! - [`kernel`]: the event queue (virtual time in ns, FIFO ties, slab payloads).
//! - [`net`]: regions, latency matrix, jitter, bandwidth queues, loss, partitions.
//! - [`node`]: CPU cost model and cores.
//! - [`faults`]: faults on a schedule.
//! - [`idset`]: a paged bitmap set of operation ids (replicas' dedup sets).
//! - [`protocol`]: the sans-IO [`protocol::Replica`] / [`protocol::Protocol`] interface.
//! - [`protocols`]: the registry of consensus protocols.
//! - [`scenario`]: TOML scenarios, overrides, validation.
//! - [`run()`]: run a scenario, get a [`RunResult`] with the results files' contents.
//! - [`builtin`]: the built-in scenarios.
//! - [`committee`]: node → shard committee assignment; [`client`]: routing, 2PC, the cross-shard shaper.
//! - [`faultsuite`]: the fault-scenario suite's liveness bounds and analysis.
//! - [`swarm`]: randomized fault schedules within each protocol's tolerance.

pub mod arena;
pub mod builtin;
pub mod client;
pub mod committee;
pub mod error;
pub mod faults;
pub mod faultsuite;
pub mod idset;
pub mod kernel;
pub mod ledger;
pub mod metrics;
pub mod net;
pub mod node;
pub mod protocol;
pub mod protocols;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod store;
pub mod swarm;

pub use error::{ScenarioError, SimError};
pub use run::{run, RunOptions, RunResult};
pub use scenario::Scenario;
