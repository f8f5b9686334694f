//! The catalog check of a data-plane request: the agentgate request headers that steer it,
//! reading the body when it must be inspected, and validating a listed operation.

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderName, Method};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::catalog::Matched;
use crate::error::GatewayError;
use crate::validation::{self, Params, Violation};

/// `Agentgate-Validation: off` forwards a listed operation without checking it, for one
/// request (the connection setting does the same for all).
pub static VALIDATION_HEADER: HeaderName = HeaderName::from_static("agentgate-validation");
/// `Agentgate-Dry-Run: true` validates and authorizes, then reports what would be sent to
/// Stripe instead of sending it.
pub static DRY_RUN_HEADER: HeaderName = HeaderName::from_static("agentgate-dry-run");

/// What the names of agentgate's request headers start with.
const SWITCH_PREFIX: &str = "agentgate-";

/// What the caller asked of agentgate for this request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controls {
    /// Check listed operations against the catalog (unless the connection says otherwise).
    pub validate: bool,
    /// Report instead of forwarding.
    pub dry_run: bool,
}

impl Controls {
    /// What a request that sends neither header asks for.
    const DEFAULT: Self = Self {
        validate: true,
        dry_run: false,
    };

    /// Reads the agentgate request headers; an unreadable value is refused rather than
    /// guessed at, so `Agentgate-Dry-Run: yes please` never sends a request by accident.
    pub fn read(headers: &HeaderMap) -> Result<Self, GatewayError> {
        // Nearly every request sends neither: a look at each of its few names costs less
        // than hashing both switches' names for lookups that find nothing.
        if !headers
            .keys()
            .any(|name| name.as_str().starts_with(SWITCH_PREFIX))
        {
            return Ok(Self::DEFAULT);
        }
        Ok(Self {
            validate: switch(headers, &VALIDATION_HEADER, Self::DEFAULT.validate)?,
            dry_run: switch(headers, &DRY_RUN_HEADER, Self::DEFAULT.dry_run)?,
        })
    }
}

fn switch(headers: &HeaderMap, name: &HeaderName, default: bool) -> Result<bool, GatewayError> {
    let Some(value) = headers.get(name) else {
        return Ok(default);
    };
    match value
        .to_str()
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Ok("on" | "true" | "1") => Ok(true),
        Ok("off" | "false" | "0") => Ok(false),
        _ => Err(GatewayError::Invalid(Violation {
            code: None,
            param: None,
            message: format!("Invalid {name} header: send on/true or off/false."),
        })),
    }
}

/// Reads the whole request body, up to `limit` bytes, within `timeout`.
pub async fn read_body(
    body: Incoming,
    limit: u64,
    timeout: std::time::Duration,
) -> Result<Bytes, GatewayError> {
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => {
            Err(GatewayError::BodyTooLarge { limit })
        }
        Ok(Err(_)) | Err(_) => Err(GatewayError::BodyUnreadable),
    }
}

/// Decodes a request's parameters: the query string, and for POST and DELETE the form
/// body (the SDKs send DELETE parameters in the query; both are accepted).
pub fn decode_params<'a>(parts: &'a Parts, body: &'a [u8]) -> Result<Params<'a>, GatewayError> {
    validation::decode(parts.uri.query(), form_body(parts, body)?).map_err(GatewayError::Invalid)
}

/// Validates a listed operation's path arguments and already decoded parameters.
pub fn check_operation(matched: &Matched<'_, '_>, params: &Params<'_>) -> Result<(), GatewayError> {
    validation::validate(matched.operation, &matched.path_args, params)
        .map_err(GatewayError::Invalid)
}

/// Validates a listed operation's path arguments and parameters when nothing else needs
/// them decoded: the common request is checked without building the parameter tree.
pub fn check_request(
    matched: &Matched<'_, '_>,
    parts: &Parts,
    body: &[u8],
) -> Result<(), GatewayError> {
    let body = form_body(parts, body)?;
    validation::check(
        matched.operation,
        &matched.path_args,
        parts.uri.query(),
        body,
    )
    .map_err(GatewayError::Invalid)
}

/// The body as form parameters: none for GET or an empty body, and a refusal when its
/// declared type is not a form.
fn form_body<'a>(parts: &Parts, body: &'a [u8]) -> Result<Option<&'a [u8]>, GatewayError> {
    if body.is_empty() || parts.method == Method::GET {
        return Ok(None);
    }
    check_content_type(&parts.headers)?;
    Ok(Some(body))
}

/// Stripe's v1 API reads parameters from form bodies only; a JSON body would be ignored by
/// Stripe and the request refused there, so it is refused here with a clearer reason.
fn check_content_type(headers: &HeaderMap) -> Result<(), GatewayError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let value = value.as_bytes();
    let media_type = value
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if media_type.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        return Ok(());
    }
    Err(GatewayError::Invalid(Violation {
        code: None,
        param: None,
        message: format!(
            "Invalid request: Stripe's v1 API takes parameters as \
             application/x-www-form-urlencoded, not {}.",
            crate::proxy::target::loggable_raw_path(&String::from_utf8_lossy(media_type))
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn controls(lines: &[(&str, &str)]) -> Result<Controls, GatewayError> {
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        Controls::read(&headers)
    }

    #[test]
    fn switches_are_read_in_any_case_and_default_when_absent() {
        let defaults = Controls {
            validate: true,
            dry_run: false,
        };
        assert_eq!(Controls::DEFAULT, defaults);
        assert_eq!(controls(&[]).unwrap(), defaults);
        assert_eq!(
            controls(&[("content-type", "text/plain"), ("agentgate-other", "x")]).unwrap(),
            defaults
        );
        assert_eq!(
            controls(&[
                ("Agentgate-Validation", " OFF "),
                ("AGENTGATE-DRY-RUN", "1")
            ])
            .unwrap(),
            Controls {
                validate: false,
                dry_run: true,
            }
        );
        assert_eq!(
            controls(&[("host", "a"), ("agentgate-dry-run", "true")]).unwrap(),
            Controls {
                validate: true,
                dry_run: true,
            }
        );
        assert!(controls(&[("agentgate-dry-run", "yes please")]).is_err());
    }

    fn content_type(value: &[u8]) -> Result<(), GatewayError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_bytes(value).unwrap(),
        );
        check_content_type(&headers)
    }

    #[test]
    fn a_form_is_recognised_in_any_case_with_parameters_and_anything_else_is_named() {
        assert!(check_content_type(&HeaderMap::new()).is_ok());
        for form in [
            &b"application/x-www-form-urlencoded"[..],
            b" Application/X-WWW-Form-Urlencoded ; charset=utf-8",
        ] {
            assert!(content_type(form).is_ok());
        }
        for (other, named) in [
            (&b"application/json"[..], "not application/json."),
            (b"application/x-www-form-urlencodedx", "urlencodedx."),
            (b"text/\xffplain; charset=utf-8", "not text/plain."),
        ] {
            let Err(GatewayError::Invalid(violation)) = content_type(other) else {
                panic!("{other:?} passed as a form");
            };
            assert!(violation.message.ends_with(named), "{}", violation.message);
        }
    }
}
