//! A tool call as the data-plane request an HTTP client would have sent: the method, the
//! Stripe path with its variables filled in, Stripe's parameters form-encoded into the query
//! or the body, agentgate's own arguments as headers, and the caller's credentials. It only
//! builds; the data plane decides.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request};
use rmcp::model::CallToolResult;
use serde_json::{Map, Value};

use super::caller::Caller;
use super::reply;
use crate::catalog::Operation;
use crate::proxy::{headers, CONNECTIONS_PREFIX};

/// The argument naming the connection.
pub const CONNECTION: &str = "connection";
/// The argument naming the connected account (`Stripe-Account`).
pub const STRIPE_ACCOUNT: &str = "stripe_account";
/// The argument carrying the `Idempotency-Key`.
pub const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// The Stripe request a tool call stands for.
pub struct Outgoing {
    method: Method,
    /// The Stripe path with its variables filled in (`/v1/customers/cus_1`).
    path: String,
    /// Parameters: the query string of GET and DELETE, the form body of POST.
    params: Map<String, Value>,
}

/// A catalog operation's request: path variables out of the arguments into the path.
pub fn operation_request(
    op: &Operation,
    arguments: &mut Map<String, Value>,
) -> Result<Outgoing, CallToolResult> {
    let mut path = op.path.clone();
    for param in &op.path_params {
        let value = match arguments.remove(&param.name) {
            Some(Value::String(text)) => text,
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                return Err(reply::missing(&param.name));
            }
        };
        path = path.replace(&format!("{{{}}}", param.name), &path_segment(&value));
    }
    let method = Method::from_bytes(op.method.as_bytes()).unwrap_or(Method::GET);
    Ok(Outgoing {
        method,
        path,
        params: take_params(op, arguments),
    })
}

/// The operation's own parameters; agentgate's arguments stay behind, unless the operation
/// has a parameter of the same name (then it is Stripe's).
fn take_params(op: &Operation, arguments: &mut Map<String, Value>) -> Map<String, Value> {
    let ours = [CONNECTION, STRIPE_ACCOUNT, IDEMPOTENCY_KEY];
    let names: Vec<String> = arguments.keys().cloned().collect();
    let mut params = Map::new();
    for name in names {
        let stripes = op.params.iter().any(|field| field.name == name);
        if stripes || !ours.contains(&name.as_str()) {
            if let Some(value) = arguments.remove(&name) {
                params.insert(name, value);
            }
        }
    }
    params
}

/// `stripe_request`'s request, from its `method`, `path` and `params` arguments.
pub fn raw_request(arguments: &mut Map<String, Value>) -> Result<Outgoing, CallToolResult> {
    let method = match arguments.remove("method") {
        Some(Value::String(method)) => method.to_ascii_uppercase(),
        _ => return Err(reply::missing("method")),
    };
    let method = match method.as_str() {
        "GET" | "POST" | "DELETE" => Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
        _ => {
            return Err(reply::invalid(
                Some("method"),
                "Invalid method: use GET, POST or DELETE.".into(),
            ))
        }
    };
    let path = match arguments.remove("path") {
        Some(Value::String(path)) if path.starts_with('/') => path,
        Some(Value::String(path)) => format!("/{path}"),
        _ => return Err(reply::missing("path")),
    };
    let params = match arguments.remove("params") {
        Some(Value::Object(params)) => params,
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return Err(reply::invalid(
                Some("params"),
                "Invalid params: pass an object of Stripe parameters.".into(),
            ))
        }
    };
    Ok(Outgoing {
        method,
        path,
        params,
    })
}

/// The data-plane request an HTTP client would send for `outgoing`, with the caller's
/// credentials, so the data plane authenticates and checks it as theirs.
pub fn build_request(
    caller: &Caller,
    connection: &str,
    outgoing: Outgoing,
    arguments: &mut Map<String, Value>,
) -> Result<Request<Bytes>, CallToolResult> {
    let form = super::form::encode(&outgoing.params);
    let in_query = outgoing.method != Method::POST;
    let mut uri = format!("{CONNECTIONS_PREFIX}{connection}{}", outgoing.path);
    if in_query && !form.is_empty() {
        uri.push(if uri.contains('?') { '&' } else { '?' });
        uri.push_str(&form);
    }
    let body = if in_query { Bytes::new() } else { form.into() };
    let mut request = Request::builder()
        .method(outgoing.method)
        .uri(uri)
        .header(header::AUTHORIZATION, caller.authorization.clone())
        .header(header::CONTENT_LENGTH, body.len())
        .body(body)
        .map_err(|_| reply::invalid(Some("path"), "Invalid path: not a URL path.".into()))?;
    let headers = request.headers_mut();
    if !in_query {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    agentgate_headers(headers, arguments)?;
    if let Some(client) = caller.client {
        request.extensions_mut().insert(client);
    }
    Ok(request)
}

/// `stripe_account` and `idempotency_key` as the headers an HTTP client would send.
fn agentgate_headers(
    headers: &mut HeaderMap,
    arguments: &mut Map<String, Value>,
) -> Result<(), CallToolResult> {
    for (argument, name) in [
        (STRIPE_ACCOUNT, &headers::STRIPE_ACCOUNT),
        (IDEMPOTENCY_KEY, &headers::IDEMPOTENCY_KEY),
    ] {
        if let Some(Value::String(value)) = arguments.remove(argument) {
            let value = HeaderValue::from_str(&value)
                .map_err(|_| reply::invalid(Some(argument), format!("Invalid {argument}.")))?;
            headers.insert(name.clone(), value);
        }
    }
    Ok(())
}

/// A path variable's value as one path segment: everything but unreserved characters
/// percent-encoded (RFC 3986 §2.3), so a value can never add a segment.
fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_variables_cannot_add_segments() {
        assert_eq!(path_segment("cus_1"), "cus_1");
        assert_eq!(path_segment("../v1/x?y"), "..%2Fv1%2Fx%3Fy");
    }
}
