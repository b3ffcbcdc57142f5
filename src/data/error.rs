//! Errors of the data API: a status and a JSON body `{"error": message, "code": code}`
//! (Upstash's `error` string, plus a code), where `code` is the backend's own when it has
//! one: the SQLSTATE, the Redis error's first word (`WRONGTYPE`), the Kafka error name.

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

#[derive(Debug)]
pub struct DataError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// More fields for the body (PostgreSQL's detail, hint and position).
    pub extra: Map<String, Value>,
}

impl DataError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> DataError {
        DataError {
            status,
            code: code.to_string(),
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> DataError {
        DataError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The backend could not be reached or failed mid-request.
    pub fn unavailable(message: impl Into<String>) -> DataError {
        DataError::new(StatusCode::BAD_GATEWAY, "backend_unavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> DataError {
        DataError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message)
    }
}

impl IntoResponse for DataError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("error".into(), Value::String(self.message));
        body.insert("code".into(), Value::String(self.code));
        (self.status, axum::Json(Value::Object(body))).into_response()
    }
}

/// A request body as JSON of type `T`: a body over the limit, malformed JSON or the wrong
/// shape each get a 4xx saying which.
pub fn body_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, DataError> {
    let body = body.map_err(|e| {
        let status = e.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            _ => "bad_request",
        };
        DataError::new(status, code, e.body_text())
    })?;
    serde_json::from_slice(&body).map_err(|e| DataError::bad_request(format!("request body: {e}")))
}

/// `{"result": value}`, the shape of every Upstash reply.
pub fn result(value: Value) -> Response {
    axum::Json(json!({ "result": value })).into_response()
}
