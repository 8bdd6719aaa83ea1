//! Presigning: the only component that holds location credentials turns (location,
//! method, fragment name) into a short-lived URL.
//!
//! | kind | URL | signature |
//! |---|---|---|
//! | `s3` | `endpoint/bucket/prefix/id/i` (path style) | SigV4 in the query string, `UNSIGNED-PAYLOAD`, no other signed headers |
//! | `swift` | `endpoint/container/prefix/id/i` | TempURL: HMAC-SHA256 over `METHOD\nEXPIRES\nPATH` |
//! | `edge` | `endpoint/f/prefix/id/i` | HMAC-SHA256 over `METHOD\nEXPIRES\nPATH` with the edge's secret |
//!
//! Fragment names carry no bucket name or object key: `prefix/<random seal id>/<index>`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;

use super::FragmentLock;
use crate::config::{Location, LocationKind};

/// HTTP methods a presigned URL may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Upload a fragment.
    Put,
    /// Read a fragment (or a range of it).
    Get,
    /// Delete a fragment.
    Delete,
    /// Delete many fragments (one request with their names).
    Post,
}

impl Method {
    /// The HTTP method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Put => "PUT",
            Method::Get => "GET",
            Method::Delete => "DELETE",
            Method::Post => "POST",
        }
    }
}

/// Presigning failed.
#[derive(Debug, thiserror::Error)]
pub enum PresignError {
    /// No location of that name.
    #[error("unknown location {0:?}")]
    UnknownLocation(String),
    /// The location cannot do this through a signed URL.
    #[error("location {location} does not support {what} through signed URLs")]
    Unsupported {
        /// The location.
        location: String,
        /// What was asked.
        what: &'static str,
    },
    /// The signer refused (bad endpoint, bad credentials format).
    #[error("cannot sign for location {location}: {reason}")]
    Sign {
        /// The location.
        location: String,
        /// Why.
        reason: String,
    },
}

/// How a listing's or a batch delete's request and answer are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// S3: `ListObjectsV2` XML (`Contents` with `Key`, `Size`, `LastModified`);
    /// `DeleteObjects` (`<Delete>` of keys, quiet, `Content-MD5`).
    S3,
    /// The edge store's JSON: `objects` with `name`, `size`, `modified`, and `next`;
    /// `{"names": […]}` answered with `{"failed": […]}`.
    Edge,
}

/// A URL that deletes many fragments of a location in one request.
#[derive(Debug, Clone)]
pub struct BatchDelete {
    /// Where to POST.
    pub url: url::Url,
    /// How to write the request and read its answer.
    pub dialect: Dialect,
    /// What goes before a fragment's name in the request (an S3 key's prefix).
    pub key_prefix: String,
}

/// Names a batch delete may carry at most (S3's limit).
pub const BATCH_DELETE_MAX: usize = 1000;

/// Issues short-lived URLs for one fragment and one method.
pub trait Presigner: Send + Sync + fmt::Debug {
    /// A URL allowing `method` on `object` at `location` for `ttl`.
    fn presign(&self, location: &str, method: Method, object: &str, ttl: Duration) -> Result<url::Url, PresignError>;

    /// A URL allowing the upload of `object` of `len` bytes at `location` for `ttl`:
    /// where the location can check it, the length is signed into the URL, so that
    /// the URL cannot store anything else.
    fn presign_put(&self, location: &str, object: &str, len: u64, ttl: Duration) -> Result<url::Url, PresignError> {
        let _ = len;
        self.presign(location, Method::Put, object, ttl)
    }

    /// As [`Presigner::presign_put`], for an upload that may replace what `object`
    /// holds: a record rewritten (S3 and Swift replace on any upload; an edge store
    /// only on a URL signed to, and never an object it holds locked).
    fn presign_replace(&self, location: &str, object: &str, len: u64, ttl: Duration) -> Result<url::Url, PresignError> {
        self.presign_put(location, object, len, ttl)
    }

    /// A URL listing up to 1,000 of the fragments at `location` whose names (below
    /// the location's prefix) sort after `after`, valid for `ttl`, and how its
    /// answer is written. A location that cannot be listed through a signed URL
    /// refuses ([`PresignError::Unsupported`]) rather than being listed some other
    /// way.
    fn presign_list(
        &self,
        location: &str,
        after: Option<&str>,
        ttl: Duration,
    ) -> Result<(url::Url, Dialect), PresignError> {
        let _ = (after, ttl);
        Err(PresignError::Unsupported { location: location.into(), what: "listing" })
    }

    /// A URL deleting up to [`BATCH_DELETE_MAX`] fragments at `location` in one
    /// request, valid for `ttl`. A location that cannot do that through a signed URL
    /// refuses ([`PresignError::Unsupported`]); its fragments are deleted one by one.
    fn presign_delete_batch(&self, location: &str, ttl: Duration) -> Result<BatchDelete, PresignError> {
        let _ = ttl;
        Err(PresignError::Unsupported { location: location.into(), what: "batch deletes" })
    }

    /// A URL locking `object` at `location` with `lock` (merged with the lock it
    /// has), valid for `ttl`. A location that enforces no retention refuses
    /// ([`PresignError::Unsupported`]).
    fn presign_retain(
        &self,
        location: &str,
        object: &str,
        lock: FragmentLock,
        ttl: Duration,
    ) -> Result<url::Url, PresignError> {
        let _ = (object, lock, ttl);
        Err(PresignError::Unsupported { location: location.into(), what: "retention" })
    }

    /// A URL reading the lock `object` is held under at `location`, valid for
    /// `ttl`; refused as [`Presigner::presign_retain`] is.
    fn presign_retention(&self, location: &str, object: &str, ttl: Duration) -> Result<url::Url, PresignError> {
        let _ = (object, ttl);
        Err(PresignError::Unsupported { location: location.into(), what: "retention" })
    }

    /// The catalog's locations changed (an operator added, updated or removed one).
    /// A signer in another process learns of changes from its own source and may
    /// ignore this.
    fn set_locations(&self, locations: &BTreeMap<String, Location>) {
        let _ = locations;
    }
}

/// The in-process presigner over configured locations.
pub struct LocationSigner {
    locations: RwLock<Arc<BTreeMap<String, Location>>>,
}

impl fmt::Debug for LocationSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocationSigner").finish_non_exhaustive()
    }
}

impl LocationSigner {
    /// A signer for `locations`.
    pub fn new(locations: BTreeMap<String, Location>) -> Self {
        Self { locations: RwLock::new(Arc::new(locations)) }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Joins URL path segments onto a base URL's path.
fn join_path(base: &url::Url, parts: &[&str]) -> url::Url {
    let mut u = base.clone();
    let mut path = base.path().trim_end_matches('/').to_string();
    for p in parts {
        for seg in p.split('/').filter(|s| !s.is_empty()) {
            path.push('/');
            path.push_str(seg);
        }
    }
    u.set_path(&path);
    u.set_query(None);
    u
}

/// The string a TempURL-style signature covers.
pub fn hmac_payload(method: &str, expires: u64, path: &str) -> String {
    format!("{method}\n{expires}\n{path}")
}

/// Hex HMAC-SHA256 of `payload` under `secret`.
pub fn hmac_hex(secret: &[u8], payload: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::sign(&key, payload.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Query parameter carrying an edge URL's expiry (Unix seconds).
pub const EDGE_EXPIRES: &str = "X-Sky-Expires";
/// Query parameter carrying an edge URL's signature.
pub const EDGE_SIGNATURE: &str = "X-Sky-Signature";
/// Query parameter carrying the length an edge upload URL allows (signed).
pub const EDGE_LENGTH: &str = "X-Sky-Length";
/// Query parameter carrying the lock an edge retain URL sets (signed; see
/// [`FragmentLock::param`]).
pub const EDGE_RETAIN: &str = "X-Sky-Retain";
/// Query parameter of an edge delete URL signed to bypass governance retention.
pub const EDGE_BYPASS: &str = "X-Sky-Bypass";
/// Query parameter of an edge upload URL signed to replace what the name holds (a
/// record rewritten; never a locked object).
pub const EDGE_REPLACE: &str = "X-Sky-Replace";

/// What an edge URL allows beyond its method and path, all of it signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeGrant {
    /// An upload of exactly this many bytes.
    pub length: Option<u64>,
    /// A lock to set.
    pub retain: Option<FragmentLock>,
    /// Deletes that bypass governance retention.
    pub bypass: bool,
    /// An upload that replaces what the name holds.
    pub replace: bool,
}

/// What an edge URL's signature covers: method, expiry, path, and what the URL
/// grants beyond them (the length an upload URL allows, a lock, a bypass).
fn edge_payload(method: &str, expires: u64, path: &str, grant: &EdgeGrant) -> String {
    let mut payload = hmac_payload(method, expires, path);
    if let Some(len) = grant.length {
        payload.push_str(&format!("\n{len}"));
    }
    if let Some(lock) = grant.retain {
        payload.push_str(&format!("\nretain={}", lock.param()));
    }
    if grant.bypass {
        payload.push_str("\nbypass");
    }
    if grant.replace {
        payload.push_str("\nreplace");
    }
    payload
}

/// An edge URL for `method` on the path `parts` below the endpoint, valid for `ttl`,
/// granting `grant`.
fn sign_edge(loc: &Location, method: &str, parts: &[&str], ttl: Duration, grant: EdgeGrant) -> url::Url {
    let mut url = join_path(&loc.endpoint, parts);
    let expires = unix_now() + ttl.as_secs();
    let sig = hmac_hex(loc.secret.as_bytes(), &edge_payload(method, expires, url.path(), &grant));
    let mut q = url.query_pairs_mut();
    q.append_pair(EDGE_EXPIRES, &expires.to_string());
    if let Some(len) = grant.length {
        q.append_pair(EDGE_LENGTH, &len.to_string());
    }
    if let Some(lock) = grant.retain {
        q.append_pair(EDGE_RETAIN, &lock.param());
    }
    if grant.bypass {
        q.append_pair(EDGE_BYPASS, "1");
    }
    if grant.replace {
        q.append_pair(EDGE_REPLACE, "1");
    }
    q.append_pair(EDGE_SIGNATURE, &sig);
    drop(q);
    url
}

impl Presigner for LocationSigner {
    fn presign_put(&self, location: &str, object: &str, len: u64, ttl: Duration) -> Result<url::Url, PresignError> {
        self.upload(location, object, len, ttl, false)
    }

    fn presign_replace(&self, location: &str, object: &str, len: u64, ttl: Duration) -> Result<url::Url, PresignError> {
        self.upload(location, object, len, ttl, true)
    }

    fn presign(&self, location: &str, method: Method, object: &str, ttl: Duration) -> Result<url::Url, PresignError> {
        self.with(location, |loc| match loc.kind {
            // The gateway deletes only what it has judged may go (garbage, or a
            // version whose governance retention a privileged key bypassed): its
            // deletes bypass governance locks, never compliance ones.
            LocationKind::Edge => {
                let grant = EdgeGrant { bypass: method == Method::Delete, ..EdgeGrant::default() };
                Ok(sign_edge(loc, method.as_str(), &["f", &loc.prefix, object], ttl, grant))
            }
            LocationKind::Swift => {
                let url = join_path(&loc.endpoint, &[&loc.container, &loc.prefix, object]);
                let expires = unix_now() + ttl.as_secs();
                let sig = hmac_hex(loc.secret.as_bytes(), &hmac_payload(method.as_str(), expires, url.path()));
                let mut url = url;
                url.query_pairs_mut()
                    .append_pair("temp_url_sig", &sig)
                    .append_pair("temp_url_expires", &expires.to_string());
                Ok(url)
            }
            LocationKind::S3 => {
                let url = join_path(&loc.endpoint, &[&loc.container, &loc.prefix, object]);
                sign_s3(loc, method, url, ttl).map_err(|reason| sign_error(location, reason))
            }
        })
    }

    fn presign_list(
        &self,
        location: &str,
        after: Option<&str>,
        ttl: Duration,
    ) -> Result<(url::Url, Dialect), PresignError> {
        self.with(location, |loc| match loc.kind {
            LocationKind::Edge => {
                let mut url = sign_edge(loc, "GET", &["l", &loc.prefix], ttl, EdgeGrant::default());
                if let Some(a) = after {
                    url.query_pairs_mut().append_pair("after", a);
                }
                Ok((url, Dialect::Edge))
            }
            LocationKind::S3 => {
                let mut url = join_path(&loc.endpoint, &[&loc.container]);
                let prefix = key_prefix(loc);
                url.query_pairs_mut().append_pair("list-type", "2").append_pair("max-keys", "1000");
                url.query_pairs_mut().append_pair("prefix", &prefix);
                if let Some(a) = after {
                    url.query_pairs_mut().append_pair("start-after", &format!("{prefix}{a}"));
                }
                let url = sign_s3(loc, Method::Get, url, ttl).map_err(|reason| sign_error(location, reason))?;
                Ok((url, Dialect::S3))
            }
            // TempURLs cover objects, not container listings.
            LocationKind::Swift => Err(PresignError::Unsupported { location: location.into(), what: "listing" }),
        })
    }

    fn presign_delete_batch(&self, location: &str, ttl: Duration) -> Result<BatchDelete, PresignError> {
        self.with(location, |loc| match loc.kind {
            LocationKind::Edge => {
                let grant = EdgeGrant { bypass: true, ..EdgeGrant::default() };
                let url = sign_edge(loc, "POST", &["d", &loc.prefix], ttl, grant);
                Ok(BatchDelete { url, dialect: Dialect::Edge, key_prefix: String::new() })
            }
            LocationKind::S3 => {
                let mut url = join_path(&loc.endpoint, &[&loc.container]);
                url.query_pairs_mut().append_pair("delete", "");
                let url = sign_s3(loc, Method::Post, url, ttl).map_err(|reason| sign_error(location, reason))?;
                Ok(BatchDelete { url, dialect: Dialect::S3, key_prefix: key_prefix(loc) })
            }
            // A bulk delete needs a Swift token; TempURLs cover one object each.
            LocationKind::Swift => Err(PresignError::Unsupported { location: location.into(), what: "batch deletes" }),
        })
    }

    fn presign_retain(
        &self,
        location: &str,
        object: &str,
        lock: FragmentLock,
        ttl: Duration,
    ) -> Result<url::Url, PresignError> {
        let grant = EdgeGrant { retain: Some(lock), ..EdgeGrant::default() };
        self.lock_url(location, "POST", object, ttl, grant)
    }

    fn presign_retention(&self, location: &str, object: &str, ttl: Duration) -> Result<url::Url, PresignError> {
        self.lock_url(location, "GET", object, ttl, EdgeGrant::default())
    }

    fn set_locations(&self, locations: &BTreeMap<String, Location>) {
        if let Ok(mut l) = self.locations.write() {
            *l = Arc::new(locations.clone());
        }
    }
}

impl LocationSigner {
    /// `f` of the location named `name`, as the signer knows it now.
    fn with<T>(&self, name: &str, f: impl FnOnce(&Location) -> Result<T, PresignError>) -> Result<T, PresignError> {
        let locations = self.locations.read().map(|l| l.clone()).unwrap_or_default();
        f(locations.get(name).ok_or_else(|| PresignError::UnknownLocation(name.into()))?)
    }

    /// An upload URL for `object` of `len` bytes; `replace`: it may replace what
    /// the name holds.
    fn upload(
        &self,
        location: &str,
        object: &str,
        len: u64,
        ttl: Duration,
        replace: bool,
    ) -> Result<url::Url, PresignError> {
        let edge = self.with(location, |loc| Ok(loc.kind == LocationKind::Edge))?;
        if !edge {
            return self.presign(location, Method::Put, object, ttl);
        }
        let grant = EdgeGrant { length: Some(len), replace, ..EdgeGrant::default() };
        self.with(location, |loc| Ok(sign_edge(loc, "PUT", &["f", &loc.prefix, object], ttl, grant)))
    }

    /// A URL on the lock of `object` (edge stores only: no other location enforces
    /// retention).
    fn lock_url(
        &self,
        location: &str,
        method: &str,
        object: &str,
        ttl: Duration,
        grant: EdgeGrant,
    ) -> Result<url::Url, PresignError> {
        self.with(location, |loc| match loc.kind {
            LocationKind::Edge => Ok(sign_edge(loc, method, &["r", &loc.prefix, object], ttl, grant)),
            LocationKind::S3 | LocationKind::Swift => {
                Err(PresignError::Unsupported { location: location.into(), what: "retention" })
            }
        })
    }
}

fn sign_error(location: &str, reason: String) -> PresignError {
    PresignError::Sign { location: location.into(), reason }
}

/// The S3 key prefix a location's fragments are written under (as `join_path`
/// builds their URLs): its prefix's segments, each followed by `/`.
fn key_prefix(loc: &Location) -> String {
    loc.prefix.split('/').filter(|s| !s.is_empty()).map(|s| format!("{s}/")).collect()
}

/// `url` (its query included) as a SigV4 query-string presigned URL: path style,
/// `UNSIGNED-PAYLOAD`, and no signed header but `host` — the transfer sends no
/// `x-amz-*` header at all.
fn sign_s3(loc: &Location, method: Method, url: url::Url, ttl: Duration) -> Result<url::Url, String> {
    use aws_sigv4::http_request::{
        PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;

    let identity =
        aws_credential_types::Credentials::new(&loc.access_key_id, loc.secret.as_str(), None, None, "skyshard").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(ttl);
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&loc.signing_region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable =
        SignableRequest::new(method.as_str(), url.as_str(), std::iter::empty(), SignableBody::UnsignedPayload)
            .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    let mut request = http::Request::builder().uri(url.as_str()).body(()).map_err(|e| e.to_string())?;
    instructions.apply_to_request_http1x(&mut request);
    url::Url::parse(&request.uri().to_string()).map_err(|e| e.to_string())
}

/// Checks an edge URL's signature and expiry: the edge server's half of the scheme.
/// `query` is the URL's query string. Constant-time comparison. Returns what the
/// URL grants beyond its method and path (a length an upload must have, a lock to
/// set, a governance bypass).
pub fn verify_edge(secret: &[u8], method: &str, path: &str, query: &str, now: u64) -> Result<EdgeGrant, &'static str> {
    let (mut expires, mut signature) = (None, None);
    let (mut length, mut retain, mut bypass, mut replace) = (None, None, false, false);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            EDGE_EXPIRES => expires = Some(v.into_owned()),
            EDGE_SIGNATURE => signature = Some(v.into_owned()),
            EDGE_LENGTH => length = Some(v.into_owned()),
            EDGE_RETAIN => retain = Some(v.into_owned()),
            EDGE_BYPASS => bypass = true,
            EDGE_REPLACE => replace = true,
            _ => {}
        }
    }
    let (Some(expires), Some(signature)) = (expires, signature) else { return Err("missing signature") };
    let expires: u64 = expires.parse().map_err(|_| "bad expiry")?;
    let length: Option<u64> = length.map(|l| l.parse().map_err(|_| "bad length")).transpose()?;
    let retain = retain.map(|r| FragmentLock::parse(&r).ok_or("bad retention")).transpose()?;
    let grant = EdgeGrant { length, retain, bypass, replace };
    let sig = decode_hex(&signature).ok_or("bad signature")?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, edge_payload(method, expires, path, &grant).as_bytes(), &sig)
        .map_err(|_| "signature mismatch")?;
    if now > expires {
        return Err("expired");
    }
    Ok(grant)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;
    use crate::config::Tier;

    fn loc(kind: LocationKind, endpoint: &str) -> Location {
        Location {
            name: "l".into(),
            kind,
            endpoint: url::Url::parse(endpoint).expect("url"),
            tier: Tier::Cloud,
            region: None,
            provider: None,
            jurisdiction: None,
            prefix: "sky".into(),
            container: "frags".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret: Zeroizing::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            signing_region: "us-east-1".into(),
            ca_file: None,
        }
    }

    fn signer(kind: LocationKind, endpoint: &str) -> LocationSigner {
        LocationSigner::new(BTreeMap::from([("l".to_string(), loc(kind, endpoint))]))
    }

    #[test]
    fn edge_urls_verify_only_for_their_method_path_and_time() {
        let s = signer(LocationKind::Edge, "http://127.0.0.1:9101");
        let u = s.presign("l", Method::Put, "abc/3", Duration::from_secs(60)).expect("sign");
        assert_eq!(u.path(), "/f/sky/abc/3");
        let secret = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let q = u.query().expect("query");
        let now = unix_now();
        assert_eq!(verify_edge(secret, "PUT", u.path(), q, now), Ok(EdgeGrant::default()));
        assert!(verify_edge(secret, "GET", u.path(), q, now).is_err(), "another method");
        assert!(verify_edge(secret, "PUT", "/f/sky/abc/4", q, now).is_err(), "another object");
        assert!(verify_edge(b"another secret", "PUT", u.path(), q, now).is_err(), "another edge");
        assert_eq!(verify_edge(secret, "PUT", u.path(), q, now + 61), Err("expired"));
        let forged = q.replace(&format!("{EDGE_EXPIRES}="), &format!("{EDGE_EXPIRES}=9"));
        assert!(verify_edge(secret, "PUT", u.path(), &forged, now).is_err(), "a changed expiry");
        assert!(verify_edge(secret, "PUT", u.path(), "", now).is_err());

        // An upload URL carries its length, signed: another length does not verify.
        let u = s.presign_put("l", "abc/5", 1234, Duration::from_secs(60)).expect("sign");
        let q = u.query().expect("query");
        assert_eq!(verify_edge(secret, "PUT", u.path(), q, now).map(|g| g.length), Ok(Some(1234)));
        let longer = q.replace(&format!("{EDGE_LENGTH}=1234"), &format!("{EDGE_LENGTH}=99999"));
        assert_eq!(verify_edge(secret, "PUT", u.path(), &longer, now), Err("signature mismatch"));
        let stripped: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(url::form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| k != EDGE_LENGTH))
            .finish();
        assert_eq!(verify_edge(secret, "PUT", u.path(), &stripped, now), Err("signature mismatch"), "stripped");

        // A retain URL carries its lock, signed: a weaker one does not verify, and
        // neither does a bypass added to a URL signed without one.
        let lock = FragmentLock { until: now + 86_400, compliance: true };
        let r = s.presign_retain("l", "abc/5", lock, Duration::from_secs(60)).expect("sign");
        assert_eq!(r.path(), "/r/sky/abc/5");
        let q = r.query().expect("query");
        assert_eq!(verify_edge(secret, "POST", r.path(), q, now).map(|g| g.retain), Ok(Some(lock)));
        let weaker = q.replace(&format!("{EDGE_RETAIN}=C"), &format!("{EDGE_RETAIN}=G"));
        assert_eq!(verify_edge(secret, "POST", r.path(), &weaker, now), Err("signature mismatch"));
        let d = s.presign("l", Method::Get, "abc/5", Duration::from_secs(60)).expect("sign");
        let bypassing = format!("{}&{EDGE_BYPASS}=1", d.query().expect("query"));
        assert_eq!(verify_edge(secret, "GET", d.path(), &bypassing, now), Err("signature mismatch"));
        let d = s.presign("l", Method::Delete, "abc/5", Duration::from_secs(60)).expect("sign");
        assert!(verify_edge(secret, "DELETE", d.path(), d.query().expect("q"), now).expect("verifies").bypass);
    }

    #[test]
    fn s3_urls_are_sigv4_query_signed_path_style() {
        let s = signer(LocationKind::S3, "http://127.0.0.1:9200");
        let u = s.presign("l", Method::Get, "abc/0", Duration::from_secs(900)).expect("sign");
        assert_eq!(u.path(), "/frags/sky/abc/0");
        let q: BTreeMap<String, String> = u.query_pairs().into_owned().collect();
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(q["X-Amz-Expires"], "900");
        assert_eq!(q["X-Amz-SignedHeaders"], "host");
        assert!(q["X-Amz-Credential"].starts_with("AKIDEXAMPLE/"));
        assert_eq!(q["X-Amz-Signature"].len(), 64);
        assert!(!u.as_str().contains("wJalr"), "the secret never appears in a URL");
    }

    #[test]
    fn swift_temp_urls() {
        let s = signer(LocationKind::Swift, "http://127.0.0.1:8080/v1/AUTH_test");
        let u = s.presign("l", Method::Put, "abc/1", Duration::from_secs(60)).expect("sign");
        assert_eq!(u.path(), "/v1/AUTH_test/frags/sky/abc/1");
        let q: BTreeMap<String, String> = u.query_pairs().into_owned().collect();
        let expires: u64 = q["temp_url_expires"].parse().expect("expiry");
        let expect = hmac_hex(b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", &format!("PUT\n{expires}\n{}", u.path()));
        assert_eq!(q["temp_url_sig"], expect);
    }

    #[test]
    fn listings_are_signed_for_edge_and_s3_and_refused_for_swift() {
        let ttl = Duration::from_secs(60);
        let (u, format) =
            signer(LocationKind::Edge, "http://127.0.0.1:9101").presign_list("l", Some("ab/1"), ttl).expect("edge");
        assert_eq!((u.path(), format), ("/l/sky", Dialect::Edge));
        let q = u.query().expect("query");
        let secret = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(verify_edge(secret, "GET", u.path(), q, unix_now()), Ok(EdgeGrant::default()));
        assert!(verify_edge(secret, "GET", "/l/other", q, unix_now()).is_err(), "another prefix");

        let mut nested = loc(LocationKind::S3, "http://127.0.0.1:9200");
        nested.prefix = "/a//b/".into();
        let s = LocationSigner::new(BTreeMap::from([("l".to_string(), nested)]));
        let (u, format) = s.presign_list("l", Some("ab/1"), ttl).expect("s3");
        assert_eq!((u.path(), format), ("/frags", Dialect::S3));
        let q: BTreeMap<String, String> = u.query_pairs().into_owned().collect();
        assert_eq!(
            (q["list-type"].as_str(), q["prefix"].as_str()),
            ("2", "a/b/"),
            "the prefix fragments are written under"
        );
        assert_eq!(q["start-after"], "a/b/ab/1");
        assert_eq!(q["X-Amz-Signature"].len(), 64);

        let swift = signer(LocationKind::Swift, "http://127.0.0.1:8080/v1/AUTH_test").presign_list("l", None, ttl);
        assert!(matches!(swift, Err(PresignError::Unsupported { .. })), "{swift:?}");
    }

    #[test]
    fn batch_deletes_are_signed_for_edge_and_s3_and_refused_for_swift() {
        let ttl = Duration::from_secs(60);
        let b = signer(LocationKind::Edge, "http://127.0.0.1:9101").presign_delete_batch("l", ttl).expect("edge");
        assert_eq!((b.url.path(), b.dialect, b.key_prefix.as_str()), ("/d/sky", Dialect::Edge, ""));
        let q = b.url.query().expect("query");
        let secret = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(verify_edge(secret, "POST", b.url.path(), q, unix_now()).map(|g| g.bypass), Ok(true));
        assert!(verify_edge(secret, "DELETE", b.url.path(), q, unix_now()).is_err(), "another method");
        let b = signer(LocationKind::S3, "http://127.0.0.1:9200").presign_delete_batch("l", ttl).expect("s3");
        assert_eq!((b.url.path(), b.dialect, b.key_prefix.as_str()), ("/frags", Dialect::S3, "sky/"));
        let q: BTreeMap<String, String> = b.url.query_pairs().into_owned().collect();
        assert!(q.contains_key("delete"));
        assert_eq!(q["X-Amz-Signature"].len(), 64);
        let swift = signer(LocationKind::Swift, "http://127.0.0.1:8080/v1/AUTH_test").presign_delete_batch("l", ttl);
        assert!(matches!(swift, Err(PresignError::Unsupported { .. })), "{swift:?}");
    }
}
