//! The operations extraction (`../shared/stripe/operations.json`, see its `_meta.legend`):
//! parameter trees read from stripe-python's generated params and checked against the
//! current spec. Its node types map one to one onto [`Kind`].

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{captured, route, template_variables, ImportError};
use crate::catalog::{Catalog, Field, Kind, Operation, PathParam, Schema, LISTED};

/// What `source` says for a catalog read from the extraction.
const SOURCE: &str =
    "operations.json extraction (stripe-python 15.4.0 params, checked against the spec)";

/// Stripe routes that a listed template could capture (`GET /v1/customers/search` looks like
/// `customers.retrieve`). The extraction describes only the listed operations, so these come
/// from Stripe's API reference (NOTES.md, "Pagination and search"). [`convert`] keeps only
/// those that a listed template of the same method really captures: today neither
/// `products.retrieve` nor `prices.retrieve` is listed, so their searches drop out until one is.
const PASSTHROUGH: [&str; 8] = [
    "GET /v1/charges/search",
    "GET /v1/customers/search",
    "GET /v1/invoices/search",
    "GET /v1/invoices/upcoming",
    "GET /v1/payment_intents/search",
    "GET /v1/prices/search",
    "GET /v1/products/search",
    "GET /v1/subscriptions/search",
];

/// The file as a whole; only `_meta.api_version` and `operations` are read.
#[derive(Deserialize)]
pub(super) struct Extraction {
    #[serde(rename = "_meta")]
    meta: Meta,
    operations: Vec<ExtractedOperation>,
}

#[derive(Deserialize)]
struct Meta {
    api_version: String,
}

#[derive(Deserialize)]
struct ExtractedOperation {
    id: String,
    method: String,
    path: String,
    #[serde(default)]
    path_params: Vec<ExtractedPathParam>,
    #[serde(default)]
    params: Vec<Param>,
}

/// A path variable. Like every node, it may carry `maxLength_2023` instead of `maxLength`;
/// that field is deliberately not read (see [`Node`]).
#[derive(Deserialize)]
struct ExtractedPathParam {
    name: String,
    #[serde(rename = "maxLength")]
    max_length: Option<u32>,
}

/// A top-level parameter. `sdk_only` and `spec_only` parameters are accepted like any other
/// (Stripe takes both), so they are read only to make sure they stay optional.
#[derive(Deserialize)]
struct Param {
    name: String,
    #[serde(default)]
    sdk_only: bool,
    #[serde(default)]
    spec_only: bool,
    #[serde(flatten)]
    property: Property,
}

/// A parameter or object property: a node plus its `required` flag.
#[derive(Deserialize)]
struct Property {
    #[serde(default)]
    required: bool,
    #[serde(flatten)]
    node: Node,
}

/// A value's shape. `maxLength` is kept: it was read from the current spec. The
/// extraction's `maxLength_2023` is dropped on purpose: it comes from the 2023 spec, was
/// sometimes wrong by now (`invoice_settings.custom_fields[].name`: 30 then, 40 now), and
/// a gateway must never refuse a request that Stripe accepts.
#[derive(Deserialize)]
struct Node {
    #[serde(flatten)]
    shape: Shape,
    #[serde(default)]
    emptyable: bool,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Shape {
    String {
        #[serde(rename = "maxLength")]
        max_length: Option<u32>,
        format: Option<String>,
    },
    Integer,
    Number,
    Boolean,
    Enum {
        values: Vec<String>,
        #[serde(default)]
        open: bool,
    },
    Object {
        #[serde(default)]
        properties: BTreeMap<String, Property>,
    },
    Array {
        items: Box<Node>,
    },
    Map {
        values: Box<Node>,
    },
    #[serde(rename = "anyOf")]
    AnyOf {
        #[serde(rename = "anyOf")]
        any_of: Vec<Node>,
    },
}

/// The catalog of the listed operations, in [`LISTED`] order.
pub(super) fn convert(extraction: Extraction) -> Result<Catalog, ImportError> {
    let mut by_id: BTreeMap<String, ExtractedOperation> = extraction
        .operations
        .into_iter()
        .map(|operation| (operation.id.clone(), operation))
        .collect();
    let unlisted: Vec<String> = by_id
        .keys()
        .filter(|id| !LISTED.iter().any(|(listed, _, _)| listed == id))
        .cloned()
        .collect();
    if !unlisted.is_empty() {
        return Err(ImportError::Unlisted(unlisted));
    }
    let missing: Vec<String> = LISTED
        .iter()
        .filter(|(id, _, _)| !by_id.contains_key(*id))
        .map(|(id, method, path)| format!("{id} ({})", route(method, path)))
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::Missing(missing));
    }
    let operations = LISTED
        .iter()
        .map(|(id, method, path)| {
            let extracted = by_id.remove(*id).expect("checked above");
            operation(extracted, method, path)
        })
        .collect::<Result<_, _>>()?;
    Ok(Catalog {
        api_version: extraction.meta.api_version,
        source: SOURCE.to_owned(),
        passthrough: passthrough(),
        operations,
    })
}

/// The routes of [`PASSTHROUGH`] that a listed template captures.
fn passthrough() -> Vec<String> {
    PASSTHROUGH
        .iter()
        .filter(|entry| {
            entry
                .split_once(' ')
                .is_some_and(|(method, path)| captured(method, path))
        })
        .map(|entry| (*entry).to_owned())
        .collect()
}

fn operation(
    extracted: ExtractedOperation,
    method: &str,
    path: &str,
) -> Result<Operation, ImportError> {
    if extracted.method != method || extracted.path != path {
        return Err(ImportError::Mismatch {
            id: extracted.id,
            expected: route(method, path),
            found: route(&extracted.method, &extracted.path),
        });
    }
    let names: Vec<&str> = extracted
        .path_params
        .iter()
        .map(|param| param.name.as_str())
        .collect();
    if names != template_variables(path) {
        return Err(ImportError::Invalid {
            at: extracted.id,
            reason: format!("path_params {names:?} do not match the template {path}"),
        });
    }
    let path_params = extracted
        .path_params
        .into_iter()
        .map(|param| PathParam {
            name: param.name,
            max_length: param.max_length,
        })
        .collect();
    let mut params: Vec<Field> = extracted
        .params
        .into_iter()
        .map(|param| {
            let optional = param.sdk_only || param.spec_only;
            let mut field = field(param.name, param.property);
            field.required &= !optional;
            field
        })
        .collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Operation {
        id: extracted.id,
        method: extracted.method,
        path: extracted.path,
        path_params,
        params,
    })
}

fn field(name: String, property: Property) -> Field {
    Field {
        name,
        required: property.required,
        schema: schema(property.node),
    }
}

fn schema(node: Node) -> Schema {
    let mut emptyable = node.emptyable;
    let kind = match node.shape {
        Shape::String { max_length, format } => Kind::String { max_length, format },
        Shape::Integer => Kind::Integer,
        Shape::Number => Kind::Number,
        Shape::Boolean => Kind::Boolean,
        Shape::Enum { mut values, open } => {
            // The legend says "" is never listed; should it be, it means `emptyable`.
            emptyable |= values.iter().any(String::is_empty);
            values.retain(|value| !value.is_empty());
            Kind::Enum { values, open }
        }
        Shape::Object { properties } => Kind::Object {
            fields: properties
                .into_iter()
                .map(|(name, property)| field(name, property))
                .collect(),
        },
        Shape::Array { items } => Kind::Array {
            items: Box::new(schema(*items)),
        },
        Shape::Map { values } => Kind::Map {
            values: Box::new(schema(*values)),
        },
        Shape::AnyOf { any_of } => Kind::AnyOf {
            any_of: any_of.into_iter().map(schema).collect(),
        },
    };
    Schema { kind, emptyable }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: &str) -> Schema {
        schema(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn the_2023_length_hint_is_dropped_and_the_verified_one_kept() {
        let hinted = node(r#"{"type":"string","maxLength_2023":30}"#);
        assert_eq!(
            hinted.kind,
            Kind::String {
                max_length: None,
                format: None
            }
        );
        let verified = node(r#"{"type":"string","maxLength":40,"format":"decimal"}"#);
        assert_eq!(
            verified.kind,
            Kind::String {
                max_length: Some(40),
                format: Some("decimal".into())
            }
        );
    }

    #[test]
    fn object_properties_become_sorted_fields_with_their_required_flags() {
        let object = node(
            r#"{"type":"object","emptyable":true,"properties":{
                "zeta":{"type":"integer"},
                "alpha":{"type":"enum","values":["a"],"open":true,"required":true}}}"#,
        );
        assert!(object.emptyable);
        let Kind::Object { fields } = object.kind else {
            panic!("an object")
        };
        assert_eq!(fields[0].name, "alpha");
        assert!(fields[0].required && !fields[1].required);
        assert_eq!(
            fields[0].schema.kind,
            Kind::Enum {
                values: vec!["a".into()],
                open: true
            }
        );
    }

    #[test]
    fn only_routes_a_listed_template_captures_pass_through() {
        let routes = passthrough();
        assert!(routes.contains(&"GET /v1/invoices/upcoming".to_owned()));
        assert!(
            !routes.contains(&"GET /v1/products/search".to_owned()),
            "no products.retrieve"
        );
        assert_eq!(routes.len(), 6);
    }
}
