//! A Stripe OpenAPI description (`spec3.json` of `stripe/openapi`): for operators who pin an
//! API version other than the embedded catalog's. Only the request side of the listed
//! operations is read: path and query parameters, and the form body's schema.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{captured, route, template_variables, ImportError};
use crate::catalog::{Catalog, Field, Kind, Operation, PathParam, Schema, LISTED};

/// The form body's schema inside an operation object (a JSON pointer).
const FORM_BODY: &str = "/requestBody/content/application~1x-www-form-urlencoded/schema";

/// The catalog of the listed operations as `spec` describes them.
pub(super) fn convert(spec: &Value) -> Result<Catalog, ImportError> {
    let api_version = spec
        .pointer("/info/version")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("info", "no `version`"))?;
    let paths = spec
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("paths", "not an object"))?;
    let missing: Vec<String> = LISTED
        .iter()
        .filter(|(_, method, path)| operation_object(paths, method, path).is_none())
        .map(|(id, method, path)| format!("{id} ({})", route(method, path)))
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::Missing(missing));
    }
    let mut reader = Reader {
        spec,
        active_refs: Vec::new(),
    };
    let operations = LISTED
        .iter()
        .map(|(id, method, path)| reader.operation(paths, id, method, path))
        .collect::<Result<_, _>>()?;
    Ok(Catalog {
        api_version: api_version.to_owned(),
        source: "Stripe OpenAPI description (spec3.json)".to_owned(),
        passthrough: passthrough(paths),
        operations,
    })
}

fn operation_object<'a>(
    paths: &'a Map<String, Value>,
    method: &str,
    path: &str,
) -> Option<&'a Value> {
    paths.get(path)?.get(method.to_ascii_lowercase())
}

/// Every route of the spec that a listed template would capture, sorted.
fn passthrough(paths: &Map<String, Value>) -> Vec<String> {
    let mut routes = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().into_iter().flat_map(Map::keys) {
            let method = method.to_ascii_uppercase();
            if captured(&method, path) {
                routes.push(route(&method, path));
            }
        }
    }
    routes.sort();
    routes
}

/// The template's variables in path order, with the length limit their `in: path`
/// parameter states.
fn path_params(path: &str, parameters: &[&Value]) -> Vec<PathParam> {
    template_variables(path)
        .into_iter()
        .map(|name| PathParam {
            name: name.to_owned(),
            max_length: parameters
                .iter()
                .find(|p| p["in"] == "path" && p["name"] == name)
                .and_then(|p| length(&p["schema"])),
        })
        .collect()
}

fn invalid(at: &str, reason: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        at: at.to_owned(),
        reason: reason.into(),
    }
}

/// Converts schemas, following `$ref`s with the chain being followed on a stack, so that a
/// reference cycle is an error instead of endless recursion.
struct Reader<'a> {
    spec: &'a Value,
    active_refs: Vec<&'a str>,
}

impl<'a> Reader<'a> {
    fn operation(
        &mut self,
        paths: &'a Map<String, Value>,
        id: &str,
        method: &str,
        path: &str,
    ) -> Result<Operation, ImportError> {
        let node = operation_object(paths, method, path).expect("checked by convert");
        // Path-item parameters apply to every method (OpenAPI 3.0, "Path Item Object").
        let parameters: Vec<&'a Value> = [&paths[path], node]
            .into_iter()
            .filter_map(|holder| holder.get("parameters").and_then(Value::as_array))
            .flatten()
            .collect();
        Ok(Operation {
            id: id.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            path_params: path_params(path, &parameters),
            params: self.params(node, &parameters, id)?,
        })
    }

    /// Query parameters and form body properties, by name. DELETE parameters are declared
    /// as a form body but SDKs send them in the query string; the catalog lists them once
    /// and the validator accepts both places.
    fn params(
        &mut self,
        node: &'a Value,
        parameters: &[&'a Value],
        id: &str,
    ) -> Result<Vec<Field>, ImportError> {
        let mut params = BTreeMap::new();
        for parameter in parameters.iter().filter(|p| p["in"] == "query") {
            let name = parameter["name"]
                .as_str()
                .ok_or_else(|| invalid(id, "a query parameter without a name"))?;
            let schema = self.schema(&parameter["schema"], &format!("{id} {name}"))?;
            let required = parameter["required"].as_bool().unwrap_or(false);
            params.insert(name.to_owned(), field(name, required, schema));
        }
        if let Some(body) = node.pointer(FORM_BODY) {
            let Kind::Object { fields } = self.schema(body, id)?.kind else {
                return Err(invalid(id, "the form body is not an object"));
            };
            for field in fields {
                params.entry(field.name.clone()).or_insert(field);
            }
        }
        Ok(params.into_values().collect())
    }

    fn schema(&mut self, node: &'a Value, at: &str) -> Result<Schema, ImportError> {
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            return self.reference(reference, at);
        }
        if let Some(alternatives) = node.get("anyOf").and_then(Value::as_array) {
            return self.any_of(alternatives, at);
        }
        let kind = match node.get("type").and_then(Value::as_str) {
            Some("string") | None if node.get("enum").is_some() => return enumeration(node, at),
            Some("string") => Kind::String {
                max_length: length(node),
                format: node
                    .get("format")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
            Some("integer") => Kind::Integer,
            Some("number") => Kind::Number,
            Some("boolean") => Kind::Boolean,
            Some("array") => Kind::Array {
                items: Box::new(match node.get("items") {
                    Some(items) => self.schema(items, &format!("{at}[]"))?,
                    None => text(),
                }),
            },
            Some("object") => self.object(node, at)?,
            None if node.get("properties").is_some() => self.object(node, at)?,
            Some(other) => return Err(invalid(at, format!("unsupported type `{other}`"))),
            None => return Err(invalid(at, "a schema without `type`, `$ref` or `anyOf`")),
        };
        Ok(Schema {
            kind,
            emptyable: false,
        })
    }

    /// Follows `#/components/schemas/...` (any local JSON pointer, in fact).
    fn reference(&mut self, reference: &'a str, at: &str) -> Result<Schema, ImportError> {
        if self.active_refs.contains(&reference) {
            return Err(invalid(at, format!("`$ref` cycle through {reference}")));
        }
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| self.spec.pointer(pointer))
            .ok_or_else(|| invalid(at, format!("unresolved `$ref` {reference}")))?;
        self.active_refs.push(reference);
        let schema = self.schema(target, at);
        self.active_refs.pop();
        schema
    }

    /// Stripe writes "X, or empty to unset" as `anyOf: [X, {type: string, enum: [""]}]`:
    /// that becomes X marked emptyable; other alternatives stay an `AnyOf`.
    fn any_of(&mut self, alternatives: &'a [Value], at: &str) -> Result<Schema, ImportError> {
        let mut emptyable = false;
        let mut kept = Vec::new();
        for (index, alternative) in alternatives.iter().enumerate() {
            let schema = self.schema(alternative, &format!("{at} (anyOf {index})"))?;
            match &schema.kind {
                Kind::Enum {
                    values,
                    open: false,
                } if values.is_empty() && schema.emptyable => emptyable = true,
                _ => kept.push(schema),
            }
        }
        let mut schema = match kept.len() {
            0 => only_empty(),
            1 => kept.remove(0),
            _ => Schema {
                kind: Kind::AnyOf { any_of: kept },
                emptyable: false,
            },
        };
        schema.emptyable |= emptyable;
        Ok(schema)
    }

    /// An object with `properties` is a record (nested `required` list included); one with
    /// only `additionalProperties` is a map. A bare `{type: object}` takes any keys, so it
    /// becomes a map of text rather than an object that refuses every key.
    fn object(&mut self, node: &'a Value, at: &str) -> Result<Kind, ImportError> {
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            let required: Vec<&str> = node
                .get("required")
                .and_then(Value::as_array)
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut fields = Vec::with_capacity(properties.len());
            for (name, property) in properties {
                let schema = self.schema(property, &format!("{at}.{name}"))?;
                fields.push(field(name, required.contains(&name.as_str()), schema));
            }
            fields.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(Kind::Object { fields });
        }
        let values = match node.get("additionalProperties") {
            Some(Value::Bool(false)) => return Ok(Kind::Object { fields: Vec::new() }),
            Some(values @ Value::Object(_)) => self.schema(values, &format!("{at}.*"))?,
            _ => text(),
        };
        Ok(Kind::Map {
            values: Box::new(values),
        })
    }
}

/// A string enum; `""` among the values means emptyable, and `x-stripeBypassValidation`
/// means Stripe accepts values outside the list.
fn enumeration(node: &Value, at: &str) -> Result<Schema, ImportError> {
    let mut values = Vec::new();
    let mut emptyable = false;
    for value in node["enum"].as_array().into_iter().flatten() {
        match value.as_str() {
            Some("") => emptyable = true,
            Some(value) => values.push(value.to_owned()),
            None => return Err(invalid(at, format!("a non-string enum value {value}"))),
        }
    }
    let open = node["x-stripeBypassValidation"].as_bool().unwrap_or(false);
    Ok(Schema {
        kind: Kind::Enum { values, open },
        emptyable,
    })
}

fn length(node: &Value) -> Option<u32> {
    node.get("maxLength")
        .and_then(Value::as_u64)
        .and_then(|length| u32::try_from(length).ok())
}

fn field(name: &str, required: bool, schema: Schema) -> Field {
    Field {
        name: name.to_owned(),
        required,
        schema,
    }
}

/// Text of any length: the shape of values the description leaves untyped.
fn text() -> Schema {
    Schema {
        kind: Kind::String {
            max_length: None,
            format: None,
        },
        emptyable: false,
    }
}

/// Accepts only the empty string (an `anyOf` of nothing but `enum: [""]`).
fn only_empty() -> Schema {
    Schema {
        kind: Kind::Enum {
            values: Vec::new(),
            open: false,
        },
        emptyable: true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(spec: &Value, node: &Value) -> Result<Schema, ImportError> {
        let mut reader = Reader {
            spec,
            active_refs: Vec::new(),
        };
        reader.schema(node, "test")
    }

    #[test]
    fn a_reference_cycle_is_an_error_not_a_stack_overflow() {
        let spec = json!({"components": {"schemas": {
            "a": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/b"}}},
            "b": {"type": "array", "items": {"$ref": "#/components/schemas/a"}}
        }}});
        let error = read(&spec, &json!({"$ref": "#/components/schemas/a"})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "test.b[]: `$ref` cycle through #/components/schemas/a"
        );
        let unresolved = read(&spec, &json!({"$ref": "#/components/schemas/zz"})).unwrap_err();
        assert!(unresolved.to_string().contains("unresolved `$ref`"));
    }

    #[test]
    fn the_empty_string_alternative_becomes_emptyable_and_others_stay_alternatives() {
        let spec = json!({});
        let unset = json!({"type": "string", "enum": [""]});
        let one = read(&spec, &json!({"anyOf": [{"type": "integer"}, unset]})).unwrap();
        assert_eq!(
            one,
            Schema {
                kind: Kind::Integer,
                emptyable: true
            }
        );
        let two = read(
            &spec,
            &json!({"anyOf": [{"type": "integer"}, {"type": "boolean"}, unset]}),
        )
        .unwrap();
        assert!(two.emptyable && matches!(&two.kind, Kind::AnyOf { any_of } if any_of.len() == 2));
        let listed = read(&spec, &json!({"type": "string", "enum": ["a", ""]})).unwrap();
        assert!(listed.emptyable);
        assert_eq!(
            listed.kind,
            Kind::Enum {
                values: vec!["a".into()],
                open: false
            }
        );
    }

    #[test]
    fn objects_without_properties_are_maps_unless_closed() {
        let spec = json!({});
        let closed = read(
            &spec,
            &json!({"type": "object", "additionalProperties": false}),
        )
        .unwrap();
        assert_eq!(closed.kind, Kind::Object { fields: Vec::new() });
        let free = read(&spec, &json!({"type": "object"})).unwrap();
        assert_eq!(
            free.kind,
            Kind::Map {
                values: Box::new(text())
            }
        );
        let odd = read(&spec, &json!({"type": "file"})).unwrap_err();
        assert_eq!(odd.to_string(), "test: unsupported type `file`");
    }
}
