//! The edge store's bulk operations: a listing of the fragments below a prefix
//! (`GET /l/<prefix>`: JSON, 1,000 names a page, `after=` the last name of the page
//! before) and a batch delete (`POST /d/<prefix>` with `{"names": […]}`, at most
//! 1,000; answered with the names that could not be deleted).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::locks::{delete_unless_locked, lock_of};
use super::{EdgeState, object_path, plain};
use crate::backend::{BATCH_DELETE_MAX, DeleteBatch, DeleteBatchAnswer, DeleteFailure, ListPage, Listed};

/// Names a listing page holds at most.
const LIST_PAGE: usize = 1000;

/// Up to `limit` objects below `dir` (two levels: `<seal>/<index>`) with names after
/// `after`, in byte order of their names.
pub(super) fn list(dir: &Path, after: Option<&str>, limit: usize) -> std::io::Result<ListPage> {
    let mut objects = Vec::new();
    let mut seals: Vec<String> = match std::fs::read_dir(dir) {
        Ok(d) => d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    seals.sort();
    let after_seal = after.and_then(|a| a.split('/').next()).unwrap_or("");
    for seal in seals.into_iter().filter(|s| s.as_str() >= after_seal) {
        let mut names: Vec<String> = match std::fs::read_dir(dir.join(&seal)) {
            Ok(d) => d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect(),
            Err(_) => continue,
        };
        names.sort();
        for n in names {
            let name = format!("{seal}/{n}");
            if after.is_some_and(|a| name.as_str() <= a) {
                continue;
            }
            if objects.len() == limit {
                let next = objects.last().map(|o: &Listed| o.name.clone());
                return Ok(ListPage { objects, next });
            }
            let Ok(meta) = std::fs::metadata(dir.join(&seal).join(&n)) else { continue };
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            objects.push(Listed { name, size: meta.len(), modified });
        }
    }
    Ok(ListPage { objects, next: None })
}

/// Largest batch delete request read.
const MAX_BATCH_BODY: usize = 1 << 20;

/// Answers `GET /l/<prefix>?after=…`.
pub(super) async fn list_response(root: &Path, prefix: &str, query: &str) -> Response {
    let after = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "after").map(|(_, v)| v.into_owned());
    let Some(dir) = object_path(root, &format!("/f/{prefix}")) else {
        return plain(StatusCode::BAD_REQUEST, "bad prefix");
    };
    match tokio::task::spawn_blocking(move || list(&dir, after.as_deref(), LIST_PAGE)).await {
        Ok(Ok(page)) => axum::Json(page).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "edge listing failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
        }
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "storage error"),
    }
}

/// Answers `POST /d/<prefix>`: every name checked before anything is deleted; a
/// locked fragment stays (and is answered as failed), as a delete of it alone
/// would (`bypass`: governance locks give way).
pub(super) async fn delete_response(state: Arc<EdgeState>, prefix: &str, req: Request, bypass: bool) -> Response {
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_BATCH_BODY).await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "batch too large");
    };
    let Ok(batch) = serde_json::from_slice::<DeleteBatch>(&body) else {
        return plain(StatusCode::BAD_REQUEST, "bad batch");
    };
    if batch.names.len() > BATCH_DELETE_MAX {
        return plain(StatusCode::BAD_REQUEST, "too many names");
    }
    let root = state.root.clone();
    let files: Option<Vec<(String, PathBuf)>> =
        batch.names.into_iter().map(|n| object_path(&root, &format!("/f/{prefix}/{n}")).map(|f| (n, f))).collect();
    let Some(files) = files else {
        return plain(StatusCode::BAD_REQUEST, "bad name");
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match tokio::task::spawn_blocking(move || delete_all(&state, &files, now, bypass)).await {
        Ok(failed) => axum::Json(DeleteBatchAnswer { failed }).into_response(),
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "storage error"),
    }
}

/// Deletes every file its lock allows at `now`; what could not be deleted (a file
/// not there is deleted).
fn delete_all(state: &EdgeState, files: &[(String, PathBuf)], now: u64, bypass: bool) -> Vec<DeleteFailure> {
    files
        .iter()
        .filter_map(|(name, file)| {
            let lock_file = lock_of(&state.root, file)?;
            let error = match delete_unless_locked(state, file, &lock_file, now, bypass) {
                Ok(Ok(())) => return None,
                Ok(Err(locked)) => locked,
                Err(e) => e.kind().to_string(),
            };
            Some(DeleteFailure { name: name.clone(), error })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_page_in_name_order() {
        let dir = crate::testing::scratch_dir("edge-list");
        for (seal, i) in [("bb", 1), ("aa", 10), ("aa", 2), ("cc", 0)] {
            std::fs::create_dir_all(dir.join(seal)).expect("dir");
            std::fs::write(dir.join(seal).join(i.to_string()), b"xyz").expect("file");
        }
        let first = list(&dir, None, 2).expect("list");
        let names: Vec<&str> = first.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["aa/10", "aa/2"]);
        assert_eq!(first.next.as_deref(), Some("aa/2"));
        let rest = list(&dir, first.next.as_deref(), 10).expect("list");
        let names: Vec<&str> = rest.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!((names, rest.next), (vec!["bb/1", "cc/0"], None));
        assert_eq!(rest.objects[0].size, 3);
        assert!(list(&dir.join("none"), None, 10).expect("empty").objects.is_empty());
    }

    #[test]
    fn batch_deletes_count_what_is_gone_as_deleted() {
        let root = crate::testing::scratch_dir("edge-delete");
        let state = EdgeState::new(root.clone(), b"secret").expect("store");
        let dir = root.join("objects");
        std::fs::create_dir_all(dir.join("aa")).expect("dir");
        std::fs::write(dir.join("aa/1"), b"x").expect("file");
        std::fs::create_dir_all(dir.join("aa/2")).expect("a directory where a file should be");
        std::fs::write(dir.join("aa/2/x"), b"x").expect("file");
        let files: Vec<(String, PathBuf)> =
            ["aa/1", "aa/2", "aa/3"].iter().map(|n| (n.to_string(), dir.join(n))).collect();
        let failed = delete_all(&state, &files, 0, false);
        assert_eq!(failed.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["aa/2"], "{failed:?}");
        assert!(!dir.join("aa/1").exists());
    }
}
