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

/// An RFC 3339 time `secs` from now (a retain-until date).
fn from_now(secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    t.format(&time::format_description::well_known::Rfc3339).expect("format")
}
