//! ListObjectsV2 and ListObjects: keys in byte order, common prefixes under a
//! delimiter, pagination that skips whole prefixes instead of walking them (and
//! the same walk for ListObjectVersions, in `versioning.rs`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{S3Front, error, quoted, timestamp};
use crate::meta::{BucketRow, ListedObject, ListedVersion, VersionRow};

/// Where a listing resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Resume {
    /// Strictly after this key.
    After(Vec<u8>),
    /// At or after this bound (just past a common prefix).
    From(Vec<u8>),
    /// After this version of this key (its older versions, then the next keys).
    AfterVersion(Vec<u8>, Box<VersionRow>),
}

impl Resume {
    fn key(&self) -> &[u8] {
        match self {
            Resume::After(k) | Resume::From(k) | Resume::AfterVersion(k, _) => k,
        }
    }
}

/// What a listing lists: objects, or versions.
pub(super) trait Listed {
    /// Its key.
    fn key(&self) -> &[u8];
    /// Where a listing resumes after it.
    fn resume_after(&self) -> Resume;
}

impl Listed for ListedObject {
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn resume_after(&self) -> Resume {
        Resume::After(self.key.clone())
    }
}

impl Listed for ListedVersion {
    fn key(&self) -> &[u8] {
        &self.version.key
    }
    fn resume_after(&self) -> Resume {
        Resume::AfterVersion(self.version.key.clone(), Box::new(self.version.clone()))
    }
}

/// One page of a listing.
#[derive(Debug)]
pub(super) struct Page<E> {
    pub(super) items: Vec<E>,
    pub(super) prefixes: Vec<Vec<u8>>,
    pub(super) truncated: bool,
    /// The last key or prefix returned.
    pub(super) last: Option<Vec<u8>>,
    /// Where the next page starts.
    pub(super) resume: Option<Resume>,
}

impl<E> Default for Page<E> {
    fn default() -> Self {
        Self { items: Vec::new(), prefixes: Vec::new(), truncated: false, last: None, resume: None }
    }
}

/// The smallest byte string greater than every string starting with `p`, if any.
fn upper_bound(p: &[u8]) -> Option<Vec<u8>> {
    let mut v = p.to_vec();
    while let Some(last) = v.pop() {
        if last < 0xFF {
            v.push(last + 1);
            return Some(v);
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encodes everything but unreserved characters and `/`, as S3 does for
/// `encoding-type=url` (clients decode with `unquote_plus`, so `+` must be escaped).
fn url_encode(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn encoder(encoding: Option<&EncodingType>) -> impl Fn(&[u8]) -> String + use<> {
    let url = encoding.is_some_and(|e| e.as_str() == EncodingType::URL);
    move |b: &[u8]| if url { url_encode(b) } else { String::from_utf8_lossy(b).into_owned() }
}

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

/// One page of a listing of `max` entries under `prefix`, from `resume`: entries
/// (from `fetch`, a batch at a time from where it is told) and common prefixes
/// under `delimiter`, skipping whole prefixes instead of walking them.
pub(super) async fn list_page<E, F, Fut>(
    fetch: F,
    prefix: &[u8],
    delimiter: Option<&[u8]>,
    resume: Option<Resume>,
    max: usize,
) -> S3Result<Page<E>>
where
    E: Listed,
    F: Fn(Resume) -> Fut,
    Fut: std::future::Future<Output = S3Result<Vec<E>>>,
{
    let mut page = Page::default();
    let mut cursor = match resume {
        Some(r) if r.key() >= prefix => r,
        _ => Resume::From(prefix.to_vec()),
    };
    if max == 0 {
        return Ok(page);
    }
    'outer: loop {
        let batch = fetch(cursor.clone()).await?;
        let Some(last) = batch.last().map(Listed::resume_after) else { break };
        for o in batch {
            if !o.key().starts_with(prefix) {
                break 'outer; // past the block of keys under the prefix
            }
            let rest = &o.key()[prefix.len()..];
            let cp = delimiter.and_then(|d| find(rest, d).map(|pos| o.key()[..prefix.len() + pos + d.len()].to_vec()));
            if page.items.len() + page.prefixes.len() == max {
                page.truncated = true;
                break 'outer;
            }
            match cp {
                Some(cp) => {
                    let next = upper_bound(&cp);
                    page.prefixes.push(cp.clone());
                    page.last = Some(cp);
                    match next {
                        Some(u) => {
                            page.resume = Some(Resume::From(u.clone()));
                            cursor = Resume::From(u);
                            continue 'outer;
                        }
                        None => break 'outer,
                    }
                }
                None => {
                    page.resume = Some(o.resume_after());
                    page.last = Some(o.key().to_vec());
                    page.items.push(o);
                }
            }
        }
        cursor = last;
    }
    if !page.truncated {
        page.resume = None;
    }
    Ok(page)
}

/// What every listing asks alike: its bucket, page size, prefix and delimiter.
pub(super) struct Listing {
    pub(super) bucket: BucketRow,
    pub(super) max: usize,
    pub(super) prefix: String,
    pub(super) delimiter: Option<String>,
}

impl S3Front {
    /// Reads what every listing asks alike (an empty delimiter is none).
    pub(super) async fn listing(
        &self,
        extensions: &http::Extensions,
        bucket: &str,
        max_keys: Option<i32>,
        prefix: Option<&String>,
        delimiter: Option<&String>,
    ) -> S3Result<Listing> {
        Ok(Listing {
            bucket: self.bucket(extensions, bucket).await?,
            max: self::max_keys(max_keys)?,
            prefix: prefix.cloned().unwrap_or_default(),
            delimiter: delimiter.filter(|d| !d.is_empty()).cloned(),
        })
    }

    /// One page of the visible objects of `bucket`.
    async fn objects_page(
        &self,
        bucket: &str,
        prefix: &[u8],
        delimiter: Option<&[u8]>,
        resume: Option<Resume>,
        max: usize,
    ) -> S3Result<Page<ListedObject>> {
        let fetch = |from: Resume| async move {
            let (key, exclusive) = match &from {
                Resume::From(k) => (k.as_slice(), false),
                other => (other.key(), true),
            };
            self.gw.meta.list_objects(bucket, key, exclusive, 1000).await.map_err(error::meta)
        };
        list_page(fetch, prefix, delimiter, resume, max).await
    }

    pub(super) async fn op_list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = req.input;
        let Listing { bucket, max, prefix, delimiter } =
            self.listing(&req.extensions, &i.bucket, i.max_keys, i.prefix.as_ref(), i.delimiter.as_ref()).await?;
        let owner = i.fetch_owner.unwrap_or(false).then(|| owner(&bucket.tenant));
        // An empty token is no token (as S3 treats `continuation-token=`).
        let resume = match i.continuation_token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => Some(decode_token(t)?),
            None => i.start_after.as_ref().map(|s| Resume::After(s.as_bytes().to_vec())),
        };
        let page = self
            .objects_page(&i.bucket, prefix.as_bytes(), delimiter.as_deref().map(str::as_bytes), resume, max)
            .await?;
        let enc = encoder(i.encoding_type.as_ref());
        let key_count = (page.items.len() + page.prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc(prefix.as_bytes())),
            delimiter: delimiter.map(|d| enc(d.as_bytes())),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            is_truncated: Some(page.truncated),
            continuation_token: i.continuation_token,
            next_continuation_token: page.resume.as_ref().map(encode_token),
            start_after: i.start_after.map(|s| enc(s.as_bytes())),
            encoding_type: i.encoding_type,
            contents: Some(page.items.iter().map(|o| object(o, &enc, owner.clone())).collect()),
            common_prefixes: Some(page.prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect()),
            ..Default::default()
        }))
    }

    pub(super) async fn op_list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let i = req.input;
        let Listing { bucket, max, prefix, delimiter } =
            self.listing(&req.extensions, &i.bucket, i.max_keys, i.prefix.as_ref(), i.delimiter.as_ref()).await?;
        // Version 1 lists each object's owner always.
        let owner = owner(&bucket.tenant);
        let resume = after_marker(i.marker.as_deref(), &prefix, delimiter.as_deref());
        let page = self
            .objects_page(&i.bucket, prefix.as_bytes(), delimiter.as_deref().map(str::as_bytes), resume, max)
            .await?;
        let enc = encoder(i.encoding_type.as_ref());
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            // Version 1 gives the prefix as sent even with `encoding-type=url` (S3
            // does, and botocore decodes it in version 2 answers only).
            prefix: Some(prefix),
            delimiter: delimiter.map(|d| enc(d.as_bytes())),
            marker: Some(i.marker.map(|m| enc(m.as_bytes())).unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            next_marker: page.truncated.then(|| page.last.as_deref().map(&enc)).flatten(),
            encoding_type: i.encoding_type,
            contents: Some(page.items.iter().map(|o| object(o, &enc, Some(owner.clone()))).collect()),
            common_prefixes: Some(page.prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect()),
            ..Default::default()
        }))
    }
}

/// Where a listing resumes after `marker` (ListObjects' marker, ListObjectVersions'
/// key marker): a marker that is a common prefix resumes past everything under it.
pub(super) fn after_marker(marker: Option<&str>, prefix: &str, delimiter: Option<&str>) -> Option<Resume> {
    let m = marker.filter(|m| !m.is_empty())?;
    let b = m.as_bytes().to_vec();
    Some(match delimiter {
        Some(d) if m.starts_with(prefix) && m.ends_with(d) => match upper_bound(&b) {
            Some(u) => Resume::From(u),
            None => Resume::After(b),
        },
        _ => Resume::After(b),
    })
}

/// The owner of a tenant's objects, as listings name it.
pub(super) fn owner(tenant: &str) -> Owner {
    Owner { display_name: Some(tenant.to_string()), id: Some(tenant.to_string()) }
}

fn object(o: &ListedObject, enc: &impl Fn(&[u8]) -> String, owner: Option<Owner>) -> Object {
    Object {
        owner,
        key: Some(enc(&o.key)),
        size: Some(o.size as i64),
        e_tag: Some(quoted(&o.etag)),
        last_modified: Some(timestamp(o.last_modified)),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        ..Default::default()
    }
}

fn encode_token(r: &Resume) -> String {
    let (flag, key) = match r {
        Resume::After(k) | Resume::AfterVersion(k, _) => (0u8, k),
        Resume::From(k) => (1u8, k),
    };
    let mut v = vec![flag];
    v.extend_from_slice(key);
    B64URL.encode(v)
}

fn decode_token(t: &str) -> S3Result<Resume> {
    let bad = || s3_error!(InvalidArgument, "The continuation token provided is incorrect");
    let v = B64URL.decode(t).map_err(|_| bad())?;
    match v.split_first() {
        Some((0, k)) => Ok(Resume::After(k.to_vec())),
        Some((1, k)) => Ok(Resume::From(k.to_vec())),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_encoding() {
        assert_eq!(upper_bound(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(upper_bound(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(upper_bound(&[0xFF, 0xFF]), None);
        assert_eq!(url_encode("a b+c/é".as_bytes()), "a%20b%2Bc/%C3%A9");
        for r in [Resume::After(b"k/x".to_vec()), Resume::From(vec![0, 255, 7])] {
            assert_eq!(decode_token(&encode_token(&r)).expect("round trip"), r);
        }
        assert!(decode_token("!!").is_err());
        assert!(decode_token(&B64URL.encode([9u8])).is_err());
        assert_eq!(find(b"a/b/c", b"/"), Some(1));
        assert_eq!(find(b"abc", b""), None);
    }
}
