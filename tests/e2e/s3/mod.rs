//! The S3 API through real clients.

mod awscli;
mod backup;
mod boto;
mod copy;
mod edge_lock;
mod errors;
mod lifecycle;
mod lock;
mod races;
mod tagging;
mod versions;
