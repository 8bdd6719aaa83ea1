//! This process's identity among the replicas sharing a metadata store.
//!
//! A replica's id lives in `<data_dir>/node.id`, created on first start, and the
//! running process holds an exclusive lock on that file. The lock is what makes the
//! id mean "this process": a second `skyshard serve` on the same data directory is
//! refused, so when a replica starts, nothing else can be writing under its id, and
//! whatever its earlier runs left half done (pending writes, leases) is certainly
//! dead and can be cleaned up at once instead of after a grace period.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use offload::random::SecureRandom;

use crate::meta::now_ms;

/// Length of a generated node id.
const ID_LEN: usize = 16;

/// Why this process cannot take its node identity.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Another live process holds the data directory.
    #[error("data directory {} is in use by another skyshard process (it holds the lock on {})", .dir.display(), .file.display())]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// Its locked id file.
        file: PathBuf,
    },
    /// The id file could not be read, written or locked.
    #[error("node id file {}: {source}", .file.display())]
    Io {
        /// The id file.
        file: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// No randomness for a new id.
    #[error("cannot generate a node id: {0}")]
    Random(String),
}

/// The running node: its id, when it started, and the lock that keeps the id its own.
#[derive(Debug)]
pub struct Node {
    id: String,
    started_ms: i64,
    _lock: File,
}

impl Node {
    /// Takes the identity kept in `data_dir`, creating it on first start.
    pub fn claim(data_dir: &Path, random: &dyn SecureRandom) -> Result<Node, NodeError> {
        let path = data_dir.join("node.id");
        let io = |source| NodeError::Io { file: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(NodeError::InUse { dir: data_dir.to_path_buf(), file: path });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let id = match text.trim() {
            kept if valid(kept) => kept.to_string(),
            _ => {
                let id = crate::keys::random_token(random, ID_LEN, crate::keys::SECRET_ALPHABET)
                    .map_err(|e| NodeError::Random(e.to_string()))?;
                file.set_len(0).map_err(io)?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                file.write_all(id.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                id
            }
        };
        Ok(Node { id, started_ms: now_ms(), _lock: file })
    }

    /// The id, stable across restarts on the same data directory.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When this process took the identity (ms since the epoch). Pending work
    /// recorded under this id before then belongs to a run that has ended.
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }
}

fn valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random() -> offload::random::SystemRandom {
        offload::random::SystemRandom::new()
    }

    fn scratch(name: &str) -> PathBuf {
        crate::testing::scratch_dir(&format!("node-{name}"))
    }

    #[test]
    fn the_id_is_kept_and_only_one_process_holds_it() {
        let dir = scratch("claim");
        let first = Node::claim(&dir, &random()).expect("claim");
        assert_eq!(first.id().len(), ID_LEN);
        match Node::claim(&dir, &random()) {
            Err(NodeError::InUse { .. }) => {}
            other => panic!("a second claim must be refused, got {other:?}"),
        }
        let id = first.id().to_string();
        drop(first);
        let again = Node::claim(&dir, &random()).expect("claim after release");
        assert_eq!(again.id(), id, "a restart keeps its id");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_id_file_gets_a_fresh_id() {
        let dir = scratch("damaged");
        std::fs::write(dir.join("node.id"), "not an id\n\0").expect("write");
        let node = Node::claim(&dir, &random()).expect("claim");
        assert!(valid(node.id()));
        assert_eq!(std::fs::read_to_string(dir.join("node.id")).expect("read"), node.id());
        drop(node);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
