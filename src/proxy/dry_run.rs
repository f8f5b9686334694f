//! `Agentgate-Dry-Run: true`: the request is authenticated, routed and validated like any
//! other, then described instead of sent. The Stripe key appears only in its masked form.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Uri};
use serde::Serialize;

use super::checks::DRY_RUN_HEADER;
use crate::catalog::Matched;

/// What agentgate would have sent to Stripe.
#[derive(Serialize)]
pub struct DryRun<'a> {
    /// Always `dry_run`.
    pub object: &'static str,
    /// The catalog operation, when the request is a listed one.
    pub operation: Option<&'a str>,
    /// Whether the request was checked against the catalog (and passed).
    pub validated: bool,
    /// The upstream request.
    pub request: DryRunRequest,
}

/// The upstream request of a dry run.
#[derive(Serialize)]
pub struct DryRunRequest {
    /// HTTP method.
    pub method: String,
    /// Absolute URL at Stripe.
    pub url: String,
    /// Headers as they would be sent, `authorization` masked; names in lower case, repeated
    /// values joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body as text (lossy where it is not UTF-8).
    pub body: String,
}

impl<'a> DryRun<'a> {
    /// The report for the request that would have been sent; `masked_key` stands in for
    /// the injected key.
    pub fn describe(
        matched: Option<&'a Matched<'_, '_>>,
        method: &http::Method,
        uri: &Uri,
        headers: &HeaderMap,
        masked_key: &str,
        body: &Bytes,
    ) -> Self {
        Self {
            object: "dry_run",
            operation: matched.map(|m| m.operation.id.as_str()),
            validated: matched.is_some(),
            request: DryRunRequest::new(method, uri, headers, masked_key, body),
        }
    }
}

impl DryRunRequest {
    /// Describes an upstream request; `masked_key` replaces the injected key.
    fn new(
        method: &http::Method,
        uri: &Uri,
        headers: &HeaderMap,
        masked_key: &str,
        body: &Bytes,
    ) -> Self {
        let mut shown: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let text = if name == header::AUTHORIZATION {
                format!("Bearer {masked_key}")
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            shown
                .entry(name.as_str().to_owned())
                .and_modify(|existing| {
                    existing.push_str(", ");
                    existing.push_str(&text);
                })
                .or_insert(text);
        }
        Self {
            method: method.to_string(),
            url: uri.to_string(),
            headers: shown,
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }
}

impl IntoResponse for DryRun<'_> {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(DRY_RUN_HEADER.clone(), HeaderValue::from_static("true"));
        response
    }
}
