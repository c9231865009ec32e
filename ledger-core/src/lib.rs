//! ledger-core (in progress)
pub mod types;
