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

/// The refusal of a presigned request whose lifetime is over seven days (S3
/// refuses them; s3s would accept any).
fn presign_lifetime(uri: &http::Uri) -> Option<Response<s3s::Body>> {
    let expires = uri.query()?.split('&').find_map(|p| p.strip_prefix("X-Amz-Expires="))?;
    if expires.parse::<u64>().is_ok_and(|s| s <= MAX_PRESIGN_SECONDS) {
        return None;
    }
    Some(xml_error(
        StatusCode::BAD_REQUEST,
        "AuthorizationQueryParametersError",
        "X-Amz-Expires must be less than a week (in seconds) that is 604800",
    ))
}

fn xml_error(status: StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
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
        let finish = move |mut r: Response<s3s::Body>, op: &str| {
            let sent = number(r.headers(), header::CONTENT_LENGTH.as_str()).unwrap_or(0);
            metrics.record(op, r.status().as_u16(), started.elapsed().as_secs_f64(), received, sent);
            if let Ok(v) = http::HeaderValue::from_str(&id) {
                r.headers_mut().insert("x-amz-request-id", v);
            }
            r
        };
        if req.method() != Method::PUT && declared.is_some_and(|n| n > MAX_XML_BODY) {
            return Box::pin(async move { Ok::<_, s3s::HttpError>(finish(too_big(), "none")) });
        }
        if let Some(refusal) = presign_lifetime(req.uri()) {
            return Box::pin(async move { Ok::<_, s3s::HttpError>(finish(refusal, "none")) });
        }
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
