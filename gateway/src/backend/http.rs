//! The real fragment store: each operation presigned for one fragment and one
//! method, then sent by the transfer client.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::transfer::{Transfer, TransferError};
use super::{
    BATCH_DELETE_MAX, Dialect, FragmentBody, FragmentLock, FragmentRef, FragmentStore, FragmentStream, ListPage,
    Listed, Method, PresignError, Presigner,
};

/// Largest listing answer read (1,000 names, with room to spare).
const MAX_LISTING: usize = 4 << 20;

/// Largest answer about a fragment's lock read.
const MAX_LOCK_ANSWER: usize = 4 << 10;

/// The lock an edge store answers with.
fn lock_answer(body: &[u8]) -> Result<Option<FragmentLock>, TransferError> {
    serde_json::from_slice::<super::LockAnswer>(body)
        .map(|a| a.lock)
        .map_err(|e| TransferError::Protocol(format!("lock answer: {e}")))
}

/// Fragments at locations reached through presigned URLs.
#[derive(Debug, Clone)]
pub struct PresignedStore {
    presigner: Arc<dyn Presigner>,
    transfer: Transfer,
    ttl: Duration,
}

impl PresignedStore {
    /// A store signing URLs valid for `ttl` with `presigner` and sending requests
    /// through `transfer`.
    pub fn new(presigner: Arc<dyn Presigner>, transfer: Transfer, ttl: Duration) -> Self {
        Self { presigner, transfer, ttl }
    }

    fn url(&self, at: &FragmentRef, method: Method) -> Result<url::Url, TransferError> {
        self.presigner.presign(&at.location, method, &at.name, self.ttl).map_err(unsigned)
    }
}

/// A presigner's refusal as a transfer error: nothing was sent.
fn unsigned(e: PresignError) -> TransferError {
    match e {
        PresignError::Unsupported { .. } => TransferError::Unsupported(e.to_string()),
        e => TransferError::Unsigned(e.to_string()),
    }
}

#[async_trait::async_trait]
impl FragmentStore for PresignedStore {
    async fn put(&self, at: &FragmentRef, body: FragmentBody) -> Result<(), TransferError> {
        let url = self.presigner.presign_put(&at.location, &at.name, at.len, self.ttl).map_err(unsigned)?;
        self.transfer.put(&at.location, url, at.len, body).await
    }

    async fn replace(&self, at: &FragmentRef, body: FragmentBody) -> Result<(), TransferError> {
        let url = self.presigner.presign_replace(&at.location, &at.name, at.len, self.ttl).map_err(unsigned)?;
        self.transfer.put(&at.location, url, at.len, body).await
    }

    async fn get(&self, at: &FragmentRef, range: Range<u64>) -> Result<FragmentStream, TransferError> {
        let url = self.url(at, Method::Get)?;
        self.transfer.get(&at.location, url, Some(range)).await
    }

    async fn delete(&self, at: &FragmentRef) -> Result<(), TransferError> {
        let url = self.url(at, Method::Delete)?;
        self.transfer.delete(&at.location, url).await
    }

    async fn retain(&self, at: &FragmentRef, lock: FragmentLock) -> Result<FragmentLock, TransferError> {
        let url = self.presigner.presign_retain(&at.location, &at.name, lock, self.ttl).map_err(unsigned)?;
        let answer =
            self.transfer.post_small(&at.location, "retain", url, bytes::Bytes::new(), &[], MAX_LOCK_ANSWER).await?;
        lock_answer(&answer)?.ok_or_else(|| TransferError::Protocol("the location answered no lock to a lock".into()))
    }

    async fn retention(&self, at: &FragmentRef) -> Result<Option<FragmentLock>, TransferError> {
        let url = self.presigner.presign_retention(&at.location, &at.name, self.ttl).map_err(unsigned)?;
        lock_answer(&self.transfer.get_small(&at.location, "retention", url, MAX_LOCK_ANSWER).await?)
    }

    async fn list(&self, location: &str, after: Option<&str>) -> Result<ListPage, TransferError> {
        let (url, format) = self.presigner.presign_list(location, after, self.ttl).map_err(unsigned)?;
        // An S3 listing names keys in full; the prefix it was asked for comes off.
        let prefix = url.query_pairs().find(|(k, _)| k == "prefix").map(|(_, v)| v.into_owned()).unwrap_or_default();
        let body = self.transfer.get_small(location, "list", url, MAX_LISTING).await?;
        match format {
            Dialect::Edge => {
                serde_json::from_slice(&body).map_err(|e| TransferError::Protocol(format!("listing: {e}")))
            }
            Dialect::S3 => parse_s3_listing(&body, &prefix),
        }
    }

    async fn delete_batch(&self, location: &str, names: &[String]) -> Result<Vec<(String, String)>, TransferError> {
        if names.len() > BATCH_DELETE_MAX {
            return Err(TransferError::Protocol(format!("{} names in one batch delete", names.len())));
        }
        let batch = self.presigner.presign_delete_batch(location, self.ttl).map_err(unsigned)?;
        match batch.dialect {
            Dialect::Edge => {
                let body = serde_json::to_vec(&super::DeleteBatch { names: names.to_vec() })
                    .map_err(|e| TransferError::Protocol(e.to_string()))?;
                let headers = [(http::header::CONTENT_TYPE, "application/json".to_string())];
                let answer = self
                    .transfer
                    .post_small(location, "delete_batch", batch.url, body.into(), &headers, MAX_LISTING)
                    .await?;
                let answer: super::DeleteBatchAnswer = serde_json::from_slice(&answer)
                    .map_err(|e| TransferError::Protocol(format!("batch delete: {e}")))?;
                Ok(answer.failed.into_iter().map(|f| (f.name, f.error)).collect())
            }
            Dialect::S3 => {
                let body = s3_delete_body(&batch.key_prefix, names);
                let md5 = {
                    use base64::Engine as _;
                    use md5::Digest as _;
                    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body))
                };
                let headers = [
                    (http::header::CONTENT_TYPE, "application/xml".to_string()),
                    (http::header::HeaderName::from_static("content-md5"), md5),
                ];
                let answer = self
                    .transfer
                    .post_small(location, "delete_batch", batch.url, body.into(), &headers, MAX_LISTING)
                    .await?;
                parse_s3_delete_errors(&answer, &batch.key_prefix)
            }
        }
    }
}

/// An S3 `DeleteObjects` request for `names` under `prefix`, quiet (the answer
/// lists only failures).
fn s3_delete_body(prefix: &str, names: &[String]) -> Vec<u8> {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>"#,
    );
    for n in names {
        xml.push_str("<Object><Key>");
        xml.push_str(&quick_xml::escape::escape(format!("{prefix}{n}")));
        xml.push_str("</Key></Object>");
    }
    xml.push_str("</Delete>");
    xml.into_bytes()
}

/// The `Error` entries of an S3 `DeleteObjects` answer: (name, code and message).
/// A key that was not there is deleted as far as we are concerned.
fn parse_s3_delete_errors(xml: &[u8], prefix: &str) -> Result<Vec<(String, String)>, TransferError> {
    use quick_xml::events::Event;
    let bad = |why: String| TransferError::Protocol(format!("batch delete: {why}"));
    let mut reader = quick_xml::Reader::from_reader(xml);
    let (mut path, mut failed, mut buf) = (Vec::<String>::new(), Vec::new(), Vec::new());
    let mut current: Option<[String; 3]> = None;
    let mut root = false;
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| bad(e.to_string()))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                root |= path.is_empty() && name == "DeleteResult";
                if name == "Error" && path.len() == 1 {
                    current = Some(Default::default());
                }
                path.push(name);
            }
            Event::Empty(e) => root |= path.is_empty() && e.local_name().as_ref() == b"DeleteResult",
            Event::End(_) => {
                if path.pop().as_deref() == Some("Error")
                    && let Some([key, code, message]) = current.take()
                    && code != "NoSuchKey"
                {
                    let name = key.strip_prefix(prefix).unwrap_or(&key).to_string();
                    failed.push((name, format!("{code}: {message}")));
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| bad(e.to_string()))?;
                let text = quick_xml::escape::unescape(&text).map_err(|e| bad(e.to_string()))?;
                let slot = match path.last().map(String::as_str) {
                    Some("Key") => 0,
                    Some("Code") => 1,
                    Some("Message") => 2,
                    _ => continue,
                };
                if let Some(c) = current.as_mut() {
                    c[slot].push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !root {
        return Err(bad("no DeleteResult in the answer".into()));
    }
    Ok(failed)
}

/// Reads an S3 `ListObjectsV2` answer: the keys (`prefix` taken off), sizes and
/// times; the next page starts after the last key when the answer is truncated.
fn parse_s3_listing(xml: &[u8], prefix: &str) -> Result<ListPage, TransferError> {
    use quick_xml::events::Event;
    let bad = |why: String| TransferError::Protocol(format!("listing: {why}"));
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut path: Vec<String> = Vec::new();
    let mut page = ListPage::default();
    let mut truncated = false;
    let mut current: Option<(String, u64, i64)> = None;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| bad(e.to_string()))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if name == "Contents" {
                    current = Some((String::new(), 0, 0));
                }
                path.push(name);
            }
            Event::End(_) => {
                if path.pop().as_deref() == Some("Contents")
                    && let Some((key, size, modified)) = current.take()
                {
                    let Some(name) = key.strip_prefix(prefix) else {
                        return Err(bad(format!("key {key:?} outside the prefix asked for")));
                    };
                    page.objects.push(Listed { name: name.to_string(), size, modified });
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| bad(e.to_string()))?;
                let text = quick_xml::escape::unescape(&text).map_err(|e| bad(e.to_string()))?;
                match (path.last().map(String::as_str), current.as_mut()) {
                    (Some("Key"), Some(c)) => c.0.push_str(&text),
                    (Some("Size"), Some(c)) => c.1 = text.trim().parse().map_err(|_| bad(format!("size {text:?}")))?,
                    (Some("LastModified"), Some(c)) => {
                        let t =
                            time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
                                .map_err(|e| bad(format!("time {text:?}: {e}")))?;
                        c.2 = (t.unix_timestamp_nanos() / 1_000_000) as i64;
                    }
                    (Some("IsTruncated"), None) => truncated = text.trim() == "true",
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if truncated {
        page.next = page.objects.last().map(|o| o.name.clone());
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_listings_are_read() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>frags</Name><Prefix>sky/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>sky/ab12/0</Key><LastModified>2026-11-29T12:00:00.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>1234</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>sky/ab12/1</Key><LastModified>2026-11-29T12:00:01Z</LastModified><Size>5</Size></Contents>
</ListBucketResult>"#;
        let page = parse_s3_listing(xml, "sky/").expect("parse");
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0], Listed { name: "ab12/0".into(), size: 1234, modified: 1_795_953_600_000 });
        assert_eq!(page.objects[1].modified, 1_795_953_601_000);
        assert_eq!(page.next.as_deref(), Some("ab12/1"));
        assert!(parse_s3_listing(xml, "other/").is_err(), "keys outside the prefix");
        assert!(
            parse_s3_listing(b"<ListBucketResult><Contents><Size>x</Size></Contents></ListBucketResult>", "").is_err()
        );
    }

    #[test]
    fn s3_batch_deletes_are_written_and_read() {
        let body = String::from_utf8(s3_delete_body("a/b/", &["ab/0".into(), "cd/1".into()])).expect("utf8");
        assert!(body.contains("<Quiet>true</Quiet>"));
        assert!(body.contains("<Object><Key>a/b/ab/0</Key></Object><Object><Key>a/b/cd/1</Key></Object>"), "{body}");
        let answer = br#"<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Error><Key>a/b/ab/0</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
<Error><Key>a/b/cd/1</Key><Code>NoSuchKey</Code><Message>gone</Message></Error>
</DeleteResult>"#;
        let failed = parse_s3_delete_errors(answer, "a/b/").expect("parse");
        assert_eq!(failed, [("ab/0".to_string(), "AccessDenied: Access Denied".to_string())], "NoSuchKey is deleted");
        assert_eq!(parse_s3_delete_errors(b"<DeleteResult/>", "").expect("empty"), []);
        assert!(parse_s3_delete_errors(b"<Error><Code>AccessDenied</Code></Error>", "").is_err(), "not a result");
    }
}
