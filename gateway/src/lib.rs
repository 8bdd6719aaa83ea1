//! The `skyshard` service: the S3 front end, the object pipeline, placement,
//! presigning and transfers, metadata, the admin API — and the commands that
//! measure them.
//!
//! The binary (`src/main.rs`) only parses the command line and calls in here, so that
//! tests drive the same code in-process.

#![forbid(unsafe_code)]

pub mod bench;
pub mod config;
pub mod meta;
pub mod units;
