//! Reading a catalog from Stripe's published descriptions: the operations extraction in
//! `../shared/stripe/operations.json` or a Stripe OpenAPI description (`spec3.json`). Both
//! readers produce exactly the operations of [`LISTED`]; neither ever invents a limit that
//! the source does not state.

mod openapi;
mod oracle;

use serde_json::Value;

use super::{Catalog, LISTED};

/// Why a description could not be turned into a catalog. The messages name the operation
/// and parameter at fault, so an operator can tell a bad file from a changed Stripe API.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not JSON at all.
    #[error("not JSON")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but neither format.
    #[error(
        "neither an operations extraction (with `_meta` and `operations`) nor an OpenAPI \
         description (with `openapi` and `paths`)"
    )]
    UnknownFormat,
    /// An operations extraction whose structure does not follow its legend.
    #[error("malformed operations extraction")]
    Extraction(#[source] serde_json::Error),
    /// Listed operations the description does not have.
    #[error("the description lacks listed operations: {}", .0.join(", "))]
    Missing(Vec<String>),
    /// Operations in an extraction that agentgate does not list (it would drop them
    /// silently otherwise).
    #[error("the extraction has operations agentgate does not list: {}", .0.join(", "))]
    Unlisted(Vec<String>),
    /// A listed operation described with another method or path.
    #[error("{id}: expected {expected}, found {found}")]
    Mismatch {
        /// The operation's id.
        id: String,
        /// Method and path from [`LISTED`].
        expected: String,
        /// Method and path in the description.
        found: String,
    },
    /// A part of the description that cannot be read as a parameter's shape.
    #[error("{at}: {reason}")]
    Invalid {
        /// Operation and parameter path, `customers.create address.city`.
        at: String,
        /// What is wrong there.
        reason: String,
    },
}

/// Reads an operations extraction or a Stripe OpenAPI description, whichever `text` is, into
/// a catalog of the [`LISTED`] operations in that order.
pub fn import(text: &str) -> Result<Catalog, ImportError> {
    let value: Value = serde_json::from_str(text).map_err(ImportError::NotJson)?;
    if value.get("_meta").is_some() && value.get("operations").is_some() {
        // Parsed again from the text so that structural errors carry line and column.
        let extraction = serde_json::from_str(text).map_err(ImportError::Extraction)?;
        oracle::convert(extraction)
    } else if value.get("openapi").is_some() && value.get("paths").is_some() {
        openapi::convert(&value)
    } else {
        Err(ImportError::UnknownFormat)
    }
}

/// Whether `path` would be captured by the listed `template` although it is another route:
/// same segment count, equal literals, and at least one literal where the template has a
/// variable (`/v1/customers/search` for `/v1/customers/{customer}`). Variables in `path`
/// only match variables in the template.
fn captured_by(path: &str, template: &str) -> bool {
    let path: Vec<&str> = path.split('/').collect();
    let template: Vec<&str> = template.split('/').collect();
    if path.len() != template.len() {
        return false;
    }
    let mut literal_for_variable = false;
    for (segment, pattern) in path.iter().zip(&template) {
        match (is_variable(segment), is_variable(pattern)) {
            (false, true) => literal_for_variable = true,
            (false, false) if segment != pattern => return false,
            (true, false) => return false,
            _ => {}
        }
    }
    literal_for_variable
}

/// Whether a route (`GET`, `/v1/customers/search`) is captured by a listed template of the
/// same method.
fn captured(method: &str, path: &str) -> bool {
    LISTED
        .iter()
        .any(|(_, listed_method, template)| *listed_method == method && captured_by(path, template))
}

fn is_variable(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// The variable names of a path template, in order.
fn template_variables(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter(|segment| is_variable(segment))
        .map(|segment| &segment[1..segment.len() - 1])
        .collect()
}

/// `GET /v1/customers`, as messages and `passthrough` write a route.
fn route(method: &str, path: &str) -> String {
    format!("{method} {path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_in_a_variable_position_is_captured() {
        assert!(captured_by(
            "/v1/customers/search",
            "/v1/customers/{customer}"
        ));
        assert!(captured("GET", "/v1/invoices/upcoming"));
        assert!(
            !captured("POST", "/v1/invoices/upcoming"),
            "no listed POST template"
        );
    }

    #[test]
    fn the_template_itself_and_other_shapes_are_not_captured() {
        assert!(!captured_by(
            "/v1/customers/{customer}",
            "/v1/customers/{customer}"
        ));
        assert!(!captured_by("/v1/customers", "/v1/customers/{customer}"));
        assert!(!captured_by(
            "/v1/refunds/search",
            "/v1/customers/{customer}"
        ));
        assert!(!captured_by(
            "/v1/payment_intents/{intent}/capture",
            "/v1/payment_intents/{intent}/cancel"
        ));
    }

    #[test]
    fn unknown_formats_and_non_json_are_refused_with_their_reason() {
        assert!(matches!(
            import("{\"a\":1}"),
            Err(ImportError::UnknownFormat)
        ));
        assert!(matches!(import("not json"), Err(ImportError::NotJson(_))));
    }

    #[test]
    fn template_variables_come_in_path_order() {
        assert_eq!(
            template_variables("/v1/a/{first}/b/{second}"),
            ["first", "second"]
        );
    }
}
