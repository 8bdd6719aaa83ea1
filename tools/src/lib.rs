//! The tools of the `skyshard` command that are not the service: the admin CLI (a
//! client of the admin REST API), the benchmarks and the offload status printer.
//!
//! They live apart from the service library (`gateway`) so that what the gateway
//! runs stays free of their dependencies: `anyhow` for their error reports,
//! `plotters` for charts, `indicatif` for progress bars, and the baselines the
//! benchmarks compare against. The binary (`src/main.rs`) parses the command line
//! and calls the service library or these.

#![forbid(unsafe_code)]

pub mod admin;
pub mod bench;
pub mod escrow;
pub mod recover;
pub mod status;
