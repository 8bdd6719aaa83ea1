//! The `skyshard` service: the S3 front end, the object pipeline, placement,
//! presigning and transfers, metadata, the admin API and the edge store.
//!
//! The binary (the `skyshard` package in `tools/`) parses the command line and calls
//! in here, so that tests drive the same code in-process; the tools that are not the
//! service (admin CLI, benchmarks, status printer) live there too.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod backend;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod durability;
pub mod edge;
pub mod escrow;
pub mod evidence;
pub mod jobs;
pub mod keys;
pub mod ledger;
pub mod lifecycle;
pub mod meta;
pub mod net;
pub mod node;
pub mod pipeline;
pub mod placement;
pub mod recover;
pub mod rekey;
pub mod s3;
pub mod server;
pub mod state;
#[cfg(test)]
mod testing;
pub mod tls;
