//! Skyshard end to end: the release binary, real clients, real locations, real
//! databases. One test binary; every scenario that touches metadata runs on SQLite
//! and on PostgreSQL.

mod admin;
mod backends;
mod cache;
mod custody;
mod durability;
mod failures;
mod hostile;
mod operate;
mod packs;
mod s3;
mod scaleout;
mod sovereignty;
mod tls;
mod wan;

/// Runs a scenario `fn(Db)` as two tests, on SQLite and on PostgreSQL.
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn sqlite() {
                    super::$scenario(e2e::Db::Sqlite);
                }
                #[test]
                fn postgres() {
                    super::$scenario(e2e::Db::Postgres);
                }
            }
        )*
    };
}
pub(crate) use on_both_databases;
