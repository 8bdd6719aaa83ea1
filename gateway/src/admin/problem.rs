//! Errors of the admin API as RFC 9457 `application/problem+json`, and the bearer
//! token check in front of `/v1`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Admin;

/// The media type of errors.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error (RFC 9457).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

impl Problem {
    /// A problem of `status` with `detail`; the type is named after the status.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        let slug = title.to_lowercase().replace(' ', "-");
        Self {
            kind: format!("https://skyshard.invalid/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 500, logged; the client sees no internals.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "admin request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the gateway's log")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(self)).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<crate::meta::MetaError> for Problem {
    fn from(e: crate::meta::MetaError) -> Self {
        Problem::internal(e)
    }
}

impl From<crate::auth::CredentialError> for Problem {
    fn from(e: crate::auth::CredentialError) -> Self {
        match e {
            crate::auth::CredentialError::Exists(id) => Problem::conflict(format!("access key {id} exists")),
            crate::auth::CredentialError::NoTenant(t) => {
                Problem::bad_request(format!("no tenant {t:?}; create it first (skyshard admin tenants create)"))
            }
            e => Problem::internal(e),
        }
    }
}

impl From<crate::catalog::CatalogError> for Problem {
    fn from(e: crate::catalog::CatalogError) -> Self {
        Problem::internal(e)
    }
}

impl From<axum::extract::rejection::JsonRejection> for Problem {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        Problem::new(e.status(), e.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for Problem {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Problem::new(e.status(), e.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for Problem {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        Problem::new(e.status(), e.body_text())
    }
}

/// A JSON object body: anything else (an array, a scalar, malformed JSON, another
/// content type, fields of the wrong type or unknown) is a problem, never a guess.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "the body must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(ApiJson)
            .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
    }
}

/// Rejects requests without a valid `Authorization: Bearer` admin token.
pub async fn require_token(State(admin): State<Arc<Admin>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = presented else {
        return Problem::new(StatusCode::UNAUTHORIZED, "an admin token is required: Authorization: Bearer <token>")
            .into_response();
    };
    match super::token::verify(&admin.gw.meta, token).await {
        Ok(true) => {
            // A change to the catalog reaches the locations before it is answered.
            let changes = req.method() != axum::http::Method::GET;
            let res = next.run(req).await;
            if changes && res.status().is_success() {
                admin.gw.publish_catalog().await;
            }
            res
        }
        Ok(false) => Problem::new(StatusCode::UNAUTHORIZED, "the admin token is not valid").into_response(),
        Err(e) => Problem::internal(e).into_response(),
    }
}

/// Answers routes that do not exist.
pub async fn not_found() -> Problem {
    Problem::not_found("no such route")
}
