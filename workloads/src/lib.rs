//! workloads (in progress)
