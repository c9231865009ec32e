//! The ledgersim command-line program's library: results output, plots and reports.
//!
//! The binary (`src/main.rs`) parses arguments and maps errors to exit codes; everything it
//! writes goes through [`output`] (atomic files and directories), [`plot`] and [`report`].

pub mod cmd;
pub mod faults;
pub mod output;
pub mod plot;
pub mod report;
pub mod sweep;
