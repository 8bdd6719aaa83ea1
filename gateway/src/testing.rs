//! What unit tests share.

use std::path::PathBuf;

/// An empty scratch directory `skyshard-<name>-<pid>` under the system's temporary
/// directory (emptied first if an earlier run left it).
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skyshard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
