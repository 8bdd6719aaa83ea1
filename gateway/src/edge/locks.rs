//! Fragment locks: a retention the edge store enforces itself, so that neither a
//! compromised gateway nor a stolen secret can delete locked data before its date.
//!
//! `POST /r/<path>?X-Sky-Retain=C<unix secs>` (signed) locks the fragment at
//! `/f/<path>`: the lock is kept beside it under `locks/<path>` and is only ever
//! strengthened (the later date; compliance once either was). `GET /r/<path>`
//! answers the lock in force. A delete — one fragment or a batch — of a locked
//! fragment is refused before its date: in compliance mode always, in governance
//! mode unless the URL was signed to bypass it. One mutex orders every change of a
//! lock and every delete, so that no delete slips between a lock's check and its
//! change.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{EdgeState, plain, tmp_path, tree_path};
use crate::backend::{EdgeGrant, FragmentLock, LockAnswer};

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The lock kept at `file`, if any.
fn read(file: &Path) -> std::io::Result<Option<FragmentLock>> {
    match std::fs::read_to_string(file) {
        Ok(s) => FragmentLock::parse(s.trim())
            .map(Some)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "unreadable lock file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Keeps `lock` at `file` durably: a synced temporary file renamed into place, then
/// the directory synced.
fn write(root: &Path, file: &Path, lock: FragmentLock) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(root);
    std::fs::create_dir_all(dir)?;
    let tmp = tmp_path(root)?;
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(lock.param().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    std::fs::File::open(dir)?.sync_all()
}

/// Deletes the fragment `object` (whose lock is kept at `lock_file`) unless its
/// lock forbids it at `now`: `Ok(Err(why))` then. A fragment not there is deleted.
pub(super) fn delete_unless_locked(
    state: &EdgeState,
    object: &Path,
    lock_file: &Path,
    now: u64,
    bypass: bool,
) -> std::io::Result<Result<(), String>> {
    let _order = state.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(why) = read(lock_file)?.and_then(|l| l.blocks(now, bypass)) {
        return Ok(Err(format!("the fragment is locked: {why}")));
    }
    match std::fs::remove_file(object) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::fs::remove_file(lock_file) {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ok(())),
        Err(e) => Err(e),
    }
}

/// Moves the written temporary file `tmp` over `object` unless a lock in force
/// protects what `object` holds (`Ok(Err(why))` then, and `tmp` is removed).
pub(super) fn replace(state: &EdgeState, tmp: &Path, object: &Path) -> std::io::Result<Result<(), String>> {
    let _order = state.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let lock_file = lock_of(&state.root, object).ok_or_else(|| std::io::Error::other("object outside the store"))?;
    if let Some(why) = read(&lock_file)?.and_then(|l| l.blocks(now_secs(), false)) {
        let _ = std::fs::remove_file(tmp);
        return Ok(Err(format!("the object is locked: {why}")));
    }
    let moved = std::fs::rename(tmp, object);
    if moved.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    moved.map(Ok)
}

/// Deletes one fragment (`DELETE /f/<path>`, its file `object`), as
/// [`delete_unless_locked`] allows.
pub(super) async fn delete(state: Arc<EdgeState>, object: PathBuf, bypass: bool) -> std::io::Result<Response> {
    let Some(lock_file) = lock_of(&state.root, &object) else {
        return Ok(plain(StatusCode::BAD_REQUEST, "bad object path"));
    };
    let done =
        tokio::task::spawn_blocking(move || delete_unless_locked(&state, &object, &lock_file, now_secs(), bypass))
            .await
            .map_err(std::io::Error::other)??;
    Ok(match done {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(why) => (StatusCode::FORBIDDEN, why).into_response(),
    })
}

/// Answers `GET` (the lock in force) and `POST` (lock, as `grant` signs) on
/// `/r/<rel>`.
pub(super) async fn respond(state: Arc<EdgeState>, method: Method, rel: String, grant: EdgeGrant) -> Response {
    let (Some(object), Some(lock_file)) =
        (tree_path(&state.root, "objects", &rel), tree_path(&state.root, "locks", &rel))
    else {
        return plain(StatusCode::BAD_REQUEST, "bad object path");
    };
    let set = match method {
        Method::GET => None,
        Method::POST => match grant.retain {
            Some(lock) => Some(lock),
            None => return plain(StatusCode::BAD_REQUEST, "no retention signed into the URL"),
        },
        _ => return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    };
    let answer = tokio::task::spawn_blocking(move || -> std::io::Result<Option<LockAnswer>> {
        let _order = state.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !object.is_file() {
            return Ok(None);
        }
        let held = read(&lock_file)?;
        let lock = match set {
            Some(lock) => {
                let merged = lock.merge(held);
                if Some(merged) != held {
                    write(&state.root, &lock_file, merged)?;
                }
                Some(merged)
            }
            None => held,
        };
        Ok(Some(LockAnswer { lock }))
    })
    .await;
    match answer {
        Ok(Ok(Some(a))) => axum::Json(a).into_response(),
        Ok(Ok(None)) => plain(StatusCode::NOT_FOUND, "no such object"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "edge lock request failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
        }
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "storage error"),
    }
}

/// The lock file of the object file `object` (under `objects/`): the same path
/// under `locks/`.
pub(super) fn lock_of(root: &Path, object: &Path) -> Option<PathBuf> {
    object.strip_prefix(root.join("objects")).ok().map(|rel| root.join("locks").join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_blocks_deletes_until_its_date_and_governance_gives_way_to_a_bypass() {
        let root = crate::testing::scratch_dir("edge-locks");
        let state = EdgeState::new(root.clone(), b"secret").expect("store");
        let object = root.join("objects/aa/1");
        let lock_file = lock_of(&root, &object).expect("lock path");
        std::fs::create_dir_all(object.parent().expect("dir")).expect("dir");
        std::fs::write(&object, b"x").expect("write");
        let now = 1_000;
        write(&root, &lock_file, FragmentLock { until: 2_000, compliance: false }).expect("lock");
        let refused = delete_unless_locked(&state, &object, &lock_file, now, false).expect("io");
        assert_eq!(refused, Err("the fragment is locked: governance retention until 2000".into()));
        // Made compliance: a bypass no longer helps, until the date passes.
        let merged = FragmentLock { until: 1_500, compliance: true }.merge(read(&lock_file).expect("read"));
        assert_eq!(merged, FragmentLock { until: 2_000, compliance: true }, "the later date, and compliance");
        write(&root, &lock_file, merged).expect("lock");
        assert!(delete_unless_locked(&state, &object, &lock_file, now, true).expect("io").is_err());
        assert!(object.exists());
        assert_eq!(delete_unless_locked(&state, &object, &lock_file, 2_001, false).expect("io"), Ok(()));
        assert!(!object.exists() && !lock_file.exists(), "the fragment and its lock are gone");
        std::fs::write(root.join("locks/aa/2"), b"junk").expect("write");
        assert!(read(&root.join("locks/aa/2")).is_err(), "an unreadable lock is an error, not no lock");
    }
}
