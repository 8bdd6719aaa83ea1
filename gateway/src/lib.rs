//! The `skyshard` service: the S3 front end, the object pipeline, placement,
//! presigning and transfers, metadata, the admin API — and the commands that
//! measure them.
//!
//! The binary (`src/main.rs`) only parses the command line and calls in here, so that
//! tests drive the same code in-process.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod backend;
pub mod bench;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod edge;
pub mod jobs;
pub mod keys;
pub mod meta;
pub mod net;
pub mod node;
pub mod pipeline;
pub mod placement;
pub mod s3;
pub mod server;
pub mod state;
pub mod status;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod units;
