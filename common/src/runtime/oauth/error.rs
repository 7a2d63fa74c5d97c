//! OAuth error answers, one enum of the codes the RFCs define and one place that renders them:
//! RFC 6749 §5.2 (token endpoint), §4.1.2.1 (authorization redirects), RFC 7591 §3.2.2
//! (registration), RFC 8707 §2 (`invalid_target`), RFC 6749 + RFC 8628 (`slow_down`).

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error code of the OAuth RFCs, as this server sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    InvalidTarget,
    InvalidClientMetadata,
    AccessDenied,
    TemporarilyUnavailable,
    SlowDown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::AccessDenied => "access_denied",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::SlowDown => "slow_down",
        }
    }

    /// The HTTP status of a JSON answer carrying this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::SlowDown => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error answer: `{"error", "error_description"}`, never cached, readable from any
/// origin (the endpoints are called from browsers too).
#[derive(Debug)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// The store could not take or confirm the change.
    pub fn unavailable(e: &crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store unavailable at an OAuth endpoint");
        let description = match e {
            // Stored, but a replica has not confirmed it: saying "nothing changed" would lie.
            crate::store::StoreError::Lagging(_) => {
                "the change is stored but not yet confirmed by every server; try again shortly"
            }
            _ => "the server's store is unavailable; nothing was changed, try again shortly",
        };
        Self::new(ErrorCode::TemporarilyUnavailable, description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.code.status(),
            Json(json!({ "error": self.code.as_str(), "error_description": self.description })),
        )
            .into_response();
        no_store(response.headers_mut());
        super::cors(response)
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1), on every token-bearing or
/// error answer.
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_is_sent_as_the_rfcs_spell_it_with_its_status() {
        let all = [
            (ErrorCode::InvalidRequest, "invalid_request", 400),
            (ErrorCode::InvalidClient, "invalid_client", 401),
            (ErrorCode::InvalidGrant, "invalid_grant", 400),
            (
                ErrorCode::UnsupportedGrantType,
                "unsupported_grant_type",
                400,
            ),
            (
                ErrorCode::UnsupportedResponseType,
                "unsupported_response_type",
                400,
            ),
            (ErrorCode::InvalidScope, "invalid_scope", 400),
            (ErrorCode::InvalidTarget, "invalid_target", 400),
            (
                ErrorCode::InvalidClientMetadata,
                "invalid_client_metadata",
                400,
            ),
            (ErrorCode::AccessDenied, "access_denied", 400),
            (
                ErrorCode::TemporarilyUnavailable,
                "temporarily_unavailable",
                503,
            ),
            (ErrorCode::SlowDown, "slow_down", 429),
        ];
        for (code, text, status) in all {
            assert_eq!(code.as_str(), text);
            assert_eq!(code.status().as_u16(), status, "{text}");
        }
    }

    #[tokio::test]
    async fn an_error_answer_is_json_uncached_and_readable_from_any_origin() {
        let response =
            OAuthError::new(ErrorCode::InvalidGrant, "the code is unknown").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let headers = response.headers();
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::PRAGMA], "no-cache");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({ "error": "invalid_grant", "error_description": "the code is unknown" })
        );
    }
}
