//! The S3 API through real clients.

mod awscli;
mod boto;
mod copy;
mod errors;
mod lifecycle;
mod lock;
mod races;
mod tagging;
mod versions;
