//! The outermost layer of the S3 endpoint, in front of s3s: requests whose body
//! must be held in memory (XML: CompleteMultipartUpload, DeleteObjects, …) are
//! refused with `MaxMessageLengthExceeded` when they announce more than the limit,
//! before a byte of the body is read. Object bodies (PUT) stream and are exempt.
//! Every request gets an id (`x-amz-request-id`, and the `request_id` of its
//! tracing span) and is counted in the per-operation metrics.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode, header};
use s3s::service::S3Service;
use tracing::Instrument as _;

use super::telemetry::{OpSlot, S3Metrics};

/// Largest XML request body accepted. A CompleteMultipartUpload of 10,000 parts is
/// about 1 MiB; S3 itself refuses larger ones.
pub const MAX_XML_BODY: u64 = 2 << 20;

/// Largest file of a browser form upload (POST object): s3s holds it whole in
/// memory before the write begins, so it is bounded well below S3's 5 GiB (larger
/// files go by PUT or multipart, as browsers using presigned URLs do).
pub const POST_OBJECT_MAX: u64 = 64 << 20;

/// The S3 service behind its request limits.
#[derive(Clone)]
pub struct Guarded {
    inner: S3Service,
    metrics: Arc<S3Metrics>,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded").finish_non_exhaustive()
    }
}

impl Guarded {
    /// Puts `inner` behind the limits, counting requests in `metrics`.
    pub fn new(inner: S3Service, metrics: Arc<S3Metrics>) -> Self {
        Self { inner, metrics }
    }
}

fn too_big() -> Response<s3s::Body> {
    xml_error(StatusCode::BAD_REQUEST, "MaxMessageLengthExceeded", "Your request was too big.")
}

/// Longest lifetime of a presigned request, as S3 allows (seven days).
const MAX_PRESIGN_SECONDS: u64 = 7 * 24 * 3600;

/// The refusal of a presigned request whose lifetime is negative (403, as S3) or
/// over seven days (S3 refuses them; s3s would accept any).
fn presign_lifetime(uri: &http::Uri) -> Option<Response<s3s::Body>> {
    let expires = uri.query()?.split('&').find_map(|p| p.strip_prefix("X-Amz-Expires="))?;
    if expires.parse::<u64>().is_ok_and(|s| s <= MAX_PRESIGN_SECONDS) {
        return None;
    }
    if expires.parse::<i64>().is_ok_and(|s| s < 0) {
        return Some(xml_error(
            StatusCode::FORBIDDEN,
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be non-negative",
        ));
    }
    Some(xml_error(
        StatusCode::BAD_REQUEST,
        "AuthorizationQueryParametersError",
        "X-Amz-Expires must be less than a week (in seconds) that is 604800",
    ))
}

/// Reads a request as S3 reads it where s3s is stricter: an unsigned `Range` that
/// is not one well-formed byte range is ignored (S3 serves the whole object; s3s
/// would refuse the request) — a signed one must stay as it was signed, and s3s
/// refuses it — and a SigV4 request dated by `Date` alone (RFC 9110 allows it; S3
/// accepts it) gets the same instant as `X-Amz-Date`, which s3s requires.
fn normalise(method: &Method, uri: &http::Uri, headers: &mut http::HeaderMap) {
    if matches!(*method, Method::GET | Method::HEAD)
        && let Some(range) = headers.get(header::RANGE)
        && !range.to_str().is_ok_and(one_byte_range)
        && !signed_headers(uri, headers).split(';').any(|h| h.trim().eq_ignore_ascii_case("range"))
    {
        headers.remove(header::RANGE);
    }
    let sigv4 = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256"));
    if sigv4
        && !headers.contains_key("x-amz-date")
        && let Some(date) = headers.get(header::DATE).and_then(|v| v.to_str().ok())
        && let Ok(t) = time::OffsetDateTime::parse(date.trim(), &time::format_description::well_known::Rfc2822)
    {
        let t = t.to_offset(time::UtcOffset::UTC);
        let iso = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        if let Ok(v) = http::HeaderValue::from_str(&iso) {
            headers.insert("x-amz-date", v);
        }
    }
}

/// The `SignedHeaders` of a SigV4 request (its Authorization header, or the
/// `X-Amz-SignedHeaders` of a presigned URL); empty if it has none.
fn signed_headers(uri: &http::Uri, headers: &http::HeaderMap) -> String {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').find_map(|p| p.trim().strip_prefix("SignedHeaders=")));
    let from_query = || uri.query()?.split('&').find_map(|p| p.strip_prefix("X-Amz-SignedHeaders="));
    // In a query the separator is %3B.
    from_header.or_else(from_query).unwrap_or_default().replace("%3B", ";").replace("%3b", ";")
}

/// Whether `value` is one byte range: `bytes=FIRST-LAST` (FIRST <= LAST),
/// `bytes=FIRST-` or `bytes=-SUFFIX`.
fn one_byte_range(value: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let Some((first, last)) = value.trim().strip_prefix("bytes=").and_then(|r| r.split_once('-')) else {
        return false;
    };
    match (first.is_empty(), last.is_empty()) {
        (true, false) => digits(last),
        (false, true) => digits(first),
        (false, false) => digits(first) && digits(last) && first.parse::<u64>().ok() <= last.parse::<u64>().ok(),
        (true, true) => false,
    }
}

/// A POST object whose form fails a condition of its policy is refused as S3
/// refuses it: 403 AccessDenied (s3s answers 400 InvalidPolicyDocument, which S3
/// keeps for a policy it cannot read).
fn policy_refusal(r: &mut Response<s3s::Body>) {
    let failed = r.status() == StatusCode::BAD_REQUEST
        && r.body().bytes().is_some_and(|b| {
            let t = String::from_utf8_lossy(&b);
            t.contains("<Code>InvalidPolicyDocument</Code>") && t.contains("Policy condition")
        });
    if failed {
        *r = xml_error(StatusCode::FORBIDDEN, "AccessDenied", "Invalid according to Policy: Policy Condition failed");
    }
}

/// Completes an error body as S3 writes it: every `<Error>` carries the request id
/// (`<RequestId>`, also in `x-amz-request-id`) and a `<Message>` (clients print it:
/// boto3 prints "Unknown" without one).
fn complete_error(r: &mut Response<s3s::Body>, id: &str) {
    if r.status().as_u16() < 400 {
        return;
    }
    let Some(bytes) = r.body().bytes() else { return };
    let Ok(text) = std::str::from_utf8(&bytes) else { return };
    let (Some(end), Some(code)) = (text.rfind("</Error>"), between(text, "<Code>", "</Code>")) else { return };
    let mut out = String::with_capacity(text.len() + 120);
    out.push_str(&text[..end]);
    if !text.contains("<Message>") {
        out.push_str("<Message>");
        out.push_str(default_message(code, r.status()));
        out.push_str("</Message>");
    }
    if !text.contains("<RequestId>") {
        out.push_str("<RequestId>");
        out.push_str(id);
        out.push_str("</RequestId>");
    }
    out.push_str(&text[end..]);
    if let Ok(v) = http::HeaderValue::from_str(&out.len().to_string())
        && r.headers().contains_key(header::CONTENT_LENGTH)
    {
        r.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    *r.body_mut() = s3s::Body::from(out);
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}

/// S3's message for an error code given without one.
fn default_message(code: &str, status: StatusCode) -> &'static str {
    match code {
        "NoSuchBucket" => "The specified bucket does not exist",
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchUpload" => {
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted \
             or completed."
        }
        "NoSuchVersion" => "The specified version does not exist.",
        "AccessDenied" => "Access Denied",
        "BucketNotEmpty" => "The bucket you tried to delete is not empty",
        "BucketAlreadyExists" => {
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. \
             Please select a different name and try again."
        }
        "BucketAlreadyOwnedByYou" => {
            "Your previous request to create the named bucket succeeded and you already own it."
        }
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and \
             signing method."
        }
        "PreconditionFailed" => "At least one of the pre-conditions you specified did not hold",
        "InvalidRange" => "The requested range is not satisfiable",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "NotImplemented" => "A header you provided implies functionality that is not implemented",
        "MalformedXML" => "The XML you provided was not well-formed or did not validate against our published schema",
        "InvalidPart" => {
            "One or more of the specified parts could not be found. The part may not have been uploaded, or the \
             specified entity tag may not match the part's entity tag."
        }
        "InvalidPartOrder" => "The list of parts was not in ascending order. Parts must be ordered by part number.",
        "SlowDown" => "Please reduce your request rate.",
        _ if status.is_server_error() => "We encountered an internal error. Please try again.",
        _ => "The request could not be processed as sent.",
    }
}

pub(super) fn xml_error(status: StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut r = Response::new(s3s::Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    r
}

fn bad_digest(which: &str) -> Response<s3s::Body> {
    xml_error(
        StatusCode::BAD_REQUEST,
        "BadDigest",
        &format!("The {which} you specified did not match what we received."),
    )
}

impl hyper::service::Service<Request<crate::net::Body>> for Guarded {
    type Response = Response<s3s::Body>;
    type Error = s3s::HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<crate::net::Body>) -> Self::Future {
        let mut req = req.map(s3s::Body::http_body);
        let started = Instant::now();
        let id = self.metrics.request_id();
        let span = tracing::info_span!("s3", request_id = %id);
        let metrics = self.metrics.clone();
        let number = |h: &http::HeaderMap, name: &str| {
            h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        };
        let declared = number(req.headers(), header::CONTENT_LENGTH.as_str());
        let received = declared.or_else(|| number(req.headers(), "x-amz-decoded-content-length")).unwrap_or(0);
        // An empty body sent with `Expect: 100-continue` gets no `100 Continue`
        // (there is nothing to continue with), and botocore (boto/botocore#3755)
        // then reads the next response on the connection against this one's
        // status: such a connection is closed after its answer.
        let close = declared == Some(0)
            && req.headers().get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        // A browser's form upload (POST object) carries a file: held whole in
        // memory by s3s, up to its own bound.
        let form = req.method() == Method::POST
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
        let finish = move |mut r: Response<s3s::Body>, op: &str| {
            if form {
                policy_refusal(&mut r);
            }
            complete_error(&mut r, &id);
            let sent = number(r.headers(), header::CONTENT_LENGTH.as_str()).unwrap_or(0);
            metrics.record(op, r.status().as_u16(), started.elapsed().as_secs_f64(), received, sent);
            if let Ok(v) = http::HeaderValue::from_str(&id) {
                r.headers_mut().insert("x-amz-request-id", v);
            }
            if close {
                r.headers_mut().insert(header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            r
        };
        let max_body = if form { POST_OBJECT_MAX + MAX_XML_BODY } else { MAX_XML_BODY };
        if req.method() != Method::PUT && declared.is_some_and(|n| n > max_body) {
            return Box::pin(async move { Ok::<_, s3s::HttpError>(finish(too_big(), "none")) });
        }
        if let Some(refusal) = presign_lifetime(req.uri()) {
            return Box::pin(async move { Ok::<_, s3s::HttpError>(finish(refusal, "none")) });
        }
        let (method, uri) = (req.method().clone(), req.uri().clone());
        normalise(&method, &uri, req.headers_mut());
        let slot = OpSlot::default();
        req.extensions_mut().insert(slot.clone());
        let inner = self.inner.clone();
        let digests = req.method() == Method::POST
            && (req.headers().contains_key("content-md5")
                || req
                    .headers()
                    .keys()
                    .any(|k| k.as_str().starts_with("x-amz-checksum-") && k != "x-amz-checksum-type"));
        let fut = async move {
            if form && !digests {
                return match super::form::prepare(req).await {
                    Ok(req) => inner.call(req).await,
                    Err(refusal) => Ok(refusal),
                };
            }
            if !digests {
                return inner.call(req).await;
            }
            // The whole (XML) body is read and checked before anything acts on it.
            let (parts, body) = req.into_parts();
            let limited = http_body_util::Limited::new(body, MAX_XML_BODY as usize);
            let bytes = match http_body_util::BodyExt::collect(limited).await {
                Ok(c) => c.to_bytes(),
                Err(_) => return Ok(too_big()),
            };
            if let Err(which) = super::checksum::check_whole_body(&parts.headers, &bytes) {
                return Ok(bad_digest(which));
            }
            inner.call(http::Request::from_parts(parts, s3s::Body::from(bytes))).await
        };
        Box::pin(
            async move {
                let r = fut.await?;
                Ok(finish(r, slot.0.get().map_or("none", String::as_str)))
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Response<s3s::Body>) -> String {
        String::from_utf8(r.body().bytes().expect("a whole body").to_vec()).expect("utf-8")
    }

    #[test]
    fn error_bodies_get_a_request_id_and_a_message() {
        let mut r = Response::new(s3s::Body::from("<Error><Code>NoSuchKey</Code></Error>".to_string()));
        *r.status_mut() = StatusCode::NOT_FOUND;
        complete_error(&mut r, "0123abcd");
        assert_eq!(
            text(r),
            "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>\
             <RequestId>0123abcd</RequestId></Error>"
        );
        // A message given is kept; a success is left alone.
        let mut r = xml_error(StatusCode::BAD_REQUEST, "BadDigest", "mine");
        complete_error(&mut r, "77");
        let t = text(r);
        assert!(t.contains("<Message>mine</Message><RequestId>77</RequestId></Error>"), "{t}");
        let mut r = Response::new(s3s::Body::from("<Error><Code>X</Code></Error>".to_string()));
        complete_error(&mut r, "1");
        assert!(!text(r).contains("RequestId"), "a 200 is not an error");
    }

    #[test]
    fn ranges_s3_would_ignore_are_dropped_and_date_dates_sigv4() {
        for good in ["bytes=0-0", "bytes=5-", "bytes=-7", "bytes=10-99"] {
            assert!(one_byte_range(good), "{good}");
        }
        for bad in ["bytes=5-2", "bytes=0-1,4-5", "bytes=-", "items=0-1", "bytes=a-b", "bytes= 1-2"] {
            assert!(!one_byte_range(bad), "{bad}");
        }
        let mut h = http::HeaderMap::new();
        h.insert(header::RANGE, http::HeaderValue::from_static("bytes=0-1,4-5"));
        h.insert(
            header::AUTHORIZATION,
            http::HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x, SignedHeaders=date;host, Signature=0"),
        );
        h.insert(header::DATE, http::HeaderValue::from_static("Mon, 30 Nov 2026 08:01:02 GMT"));
        let uri = http::Uri::from_static("/b/k");
        normalise(&Method::GET, &uri, &mut h);
        assert!(!h.contains_key(header::RANGE));
        assert_eq!(h.get("x-amz-date").and_then(|v| v.to_str().ok()), Some("20261130T080102Z"));
        // A signed Range stays as signed.
        let mut h = http::HeaderMap::new();
        h.insert(header::RANGE, http::HeaderValue::from_static("bytes=0-1,4-5"));
        let presigned = http::Uri::from_static("/b/k?X-Amz-SignedHeaders=host%3Brange&X-Amz-Signature=0");
        normalise(&Method::GET, &presigned, &mut h);
        assert!(h.contains_key(header::RANGE));
    }

    #[test]
    fn presigned_lifetimes_are_refused_as_s3_refuses_them() {
        let uri = |q: &str| format!("/b/k?X-Amz-Expires={q}&X-Amz-Signature=0").parse::<http::Uri>().expect("uri");
        assert!(presign_lifetime(&uri("604800")).is_none());
        assert_eq!(presign_lifetime(&uri("604801")).map(|r| r.status()), Some(StatusCode::BAD_REQUEST));
        assert_eq!(presign_lifetime(&uri("-1")).map(|r| r.status()), Some(StatusCode::FORBIDDEN));
    }
}
