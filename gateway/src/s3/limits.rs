//! The outermost layer of the S3 endpoint, in front of s3s: requests whose body
//! must be held in memory (XML: CompleteMultipartUpload, DeleteObjects, …) are
//! refused with `MaxMessageLengthExceeded` when they announce more than the limit,
//! before a byte of the body is read. Object bodies (PUT) stream and are exempt.

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use s3s::service::S3Service;

/// Largest XML request body accepted. A CompleteMultipartUpload of 10,000 parts is
/// about 1 MiB; S3 itself refuses larger ones.
pub const MAX_XML_BODY: u64 = 2 << 20;

/// The S3 service behind its request limits.
#[derive(Clone)]
pub struct Guarded {
    inner: S3Service,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded").finish_non_exhaustive()
    }
}

impl Guarded {
    /// Puts `inner` behind the limits.
    pub fn new(inner: S3Service) -> Self {
        Self { inner }
    }
}

fn too_big() -> Response<s3s::Body> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>MaxMessageLengthExceeded</Code>\
                <Message>Your request was too big.</Message></Error>";
    let mut r = Response::new(s3s::Body::from(body.to_string()));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    r
}

impl hyper::service::Service<Request<Incoming>> for Guarded {
    type Response = Response<s3s::Body>;
    type Error = s3s::HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let declared =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if req.method() != Method::PUT && declared.is_some_and(|n| n > MAX_XML_BODY) {
            return Box::pin(async { Ok::<_, s3s::HttpError>(too_big()) });
        }
        hyper::service::Service::call(&self.inner, req)
    }
}
