//! Tool results: Stripe's JSON answer as the result, and every refusal (Stripe's, or the
//! gateway's in Stripe's shape) as a tool error (`isError`) carrying the error's message
//! and code, so an agent reads the same thing over MCP as over HTTP.

use axum::response::Response;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::error::GatewayError;
use crate::validation::Violation;

/// Largest answer read into a tool result; Stripe's largest pages are far smaller.
const MAX_ANSWER_BYTES: usize = 32 << 20;

/// The result of a data-plane (or event) answer: its JSON on success, a tool error with
/// the error's message and code otherwise.
pub async fn from_response(response: Response) -> CallToolResult {
    let status = response.status();
    let body = match Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::warn!(%error, "reading an answer for an MCP tool call failed");
            return from_error(GatewayError::BodyUnreadable);
        }
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    if status.is_success() {
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = json.filter(Value::is_object);
        return result;
    }
    error_result(status, json, text)
}

/// A gateway refusal made before anything reached the data plane, in the same shape.
pub fn from_error(error: GatewayError) -> CallToolResult {
    let body = serde_json::to_value(error.body()).ok();
    let text = body.as_ref().map(Value::to_string).unwrap_or_default();
    error_result(error.status(), body, text)
}

/// A tool error: a line with the message, code and status, then the error's JSON.
fn error_result(status: StatusCode, json: Option<Value>, text: String) -> CallToolResult {
    let field = |name: &str| {
        json.as_ref()
            .and_then(|json| json["error"][name].as_str())
            .map(str::to_owned)
    };
    let mut summary = field("message").unwrap_or_else(|| format!("HTTP {status}"));
    if let Some(code) = field("code") {
        summary.push_str(&format!(" (code: {code})"));
    }
    summary.push_str(&format!(" [HTTP {}]", status.as_u16()));
    let mut result =
        CallToolResult::error(vec![ContentBlock::text(summary), ContentBlock::text(text)]);
    result.structured_content = json.filter(Value::is_object);
    result
}

/// An argument that cannot make a request.
pub fn invalid(param: Option<&str>, message: String) -> CallToolResult {
    from_error(invalid_argument(param, message))
}

/// A required argument that is absent.
pub fn missing(param: &str) -> CallToolResult {
    from_error(missing_argument(param))
}

/// The error of [`invalid`], for callers that record it before it becomes a tool result.
pub fn invalid_argument(param: Option<&str>, message: String) -> GatewayError {
    GatewayError::Invalid(Violation {
        code: Some("parameter_invalid"),
        param: param.map(str::to_owned),
        message,
    })
}

/// The error of [`missing`], for callers that record it before it becomes a tool result.
pub fn missing_argument(param: &str) -> GatewayError {
    GatewayError::Invalid(Violation {
        code: Some("parameter_missing"),
        param: Some(param.to_owned()),
        message: format!("Missing required param: {param}."),
    })
}

/// Our fault; the cause is logged where it happened.
pub fn internal() -> CallToolResult {
    from_error(GatewayError::Internal)
}
