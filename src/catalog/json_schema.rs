//! JSON Schemas (draft 2020-12) of operations' parameters, for discovery: agents and tool
//! definitions read what an operation takes without learning the catalog's own format.
//! The schemas describe the logical values; the form encoding stays the validator's concern.

use serde_json::{json, Map, Value};

use super::{Field, Kind, Operation, Schema};

/// The parameters of `op` as one object schema: path variables (required strings) and the
/// operation's parameters, with unknown names refused as Stripe refuses them.
pub fn parameters_schema(op: &Operation) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for param in &op.path_params {
        let mut schema = json!({"type": "string", "minLength": 1});
        if let Some(max_length) = param.max_length {
            schema["maxLength"] = max_length.into();
        }
        properties.insert(param.name.clone(), schema);
        required.push(param.name.clone());
    }
    object_schema(&op.params, properties, required)
}

/// One operation as discovery lists it: id, method, path template, the template's
/// variables and [`parameters_schema`].
pub fn operation_json(op: &Operation) -> Value {
    json!({
        "id": op.id,
        "method": op.method,
        "path": op.path,
        "path_params": op.path_params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        "parameters": parameters_schema(op),
    })
}

/// The JSON Schema of one value's shape.
pub fn schema_json(schema: &Schema) -> Value {
    let value = kind_json(&schema.kind);
    if !schema.emptyable {
        return value;
    }
    let empty = json!({"type": "string", "const": ""});
    // An alternative list absorbs the empty string instead of nesting one more `anyOf`.
    let mut alternatives = match value {
        Value::Object(mut object) if object.len() == 1 && object.contains_key("anyOf") => {
            match object.remove("anyOf") {
                Some(Value::Array(alternatives)) => alternatives,
                _ => unreachable!("kind_json writes anyOf as an array"),
            }
        }
        other => vec![other],
    };
    alternatives.push(empty);
    json!({ "anyOf": alternatives })
}

fn kind_json(kind: &Kind) -> Value {
    match kind {
        Kind::String { max_length, format } => {
            let mut schema = json!({"type": "string"});
            if let Some(max_length) = max_length {
                schema["maxLength"] = (*max_length).into();
            }
            if let Some(format) = format {
                schema["format"] = format.as_str().into();
            }
            schema
        }
        Kind::Integer => json!({"type": "integer"}),
        Kind::Number => json!({"type": "number"}),
        Kind::Boolean => json!({"type": "boolean"}),
        Kind::Enum {
            values,
            open: false,
        } => json!({"type": "string", "enum": values}),
        Kind::Enum { values, open: true } => json!({
            "anyOf": [{"type": "string", "enum": values}, {"type": "string"}]
        }),
        Kind::Object { fields } => object_schema(fields, Map::new(), Vec::new()),
        Kind::Array { items } => json!({"type": "array", "items": schema_json(items)}),
        Kind::Map { values } => {
            json!({"type": "object", "additionalProperties": schema_json(values)})
        }
        Kind::AnyOf { any_of } => {
            json!({"anyOf": any_of.iter().map(schema_json).collect::<Vec<_>>()})
        }
    }
}

/// A closed object schema of `fields` after the `properties` and `required` already given.
fn object_schema(
    fields: &[Field],
    mut properties: Map<String, Value>,
    mut required: Vec<String>,
) -> Value {
    for field in fields {
        properties.insert(field.name.clone(), schema_json(&field.schema));
        if field.required {
            required.push(field.name.clone());
        }
    }
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = required.into();
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::PathParam;

    fn string(max_length: Option<u32>) -> Schema {
        Schema {
            kind: Kind::String {
                max_length,
                format: None,
            },
            emptyable: false,
        }
    }

    fn field(name: &str, required: bool, schema: Schema) -> Field {
        Field {
            name: name.into(),
            required,
            schema,
        }
    }

    #[test]
    fn path_variables_and_required_params_are_required_and_nothing_else_is_allowed() {
        let op = Operation {
            id: "customers.update".into(),
            method: "POST".into(),
            path: "/v1/customers/{customer}".into(),
            path_params: vec![PathParam {
                name: "customer".into(),
                max_length: Some(5000),
            }],
            params: vec![
                field("email", true, string(Some(512))),
                field("name", false, string(None)),
            ],
        };
        let schema = parameters_schema(&op);
        assert_eq!(schema["required"], json!(["customer", "email"]));
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["properties"]["customer"],
            json!({"type": "string", "minLength": 1, "maxLength": 5000})
        );
        assert_eq!(
            schema["properties"]["email"],
            json!({"type": "string", "maxLength": 512})
        );
        let listed = operation_json(&op);
        assert_eq!(listed["path_params"], json!(["customer"]));
        assert_eq!(listed["parameters"], schema);
    }

    #[test]
    fn enums_open_and_closed_and_emptyable_values_have_one_shape_each() {
        let closed = Schema {
            kind: Kind::Enum {
                values: vec!["a".into()],
                open: false,
            },
            emptyable: true,
        };
        assert_eq!(
            schema_json(&closed),
            json!({"anyOf": [{"type": "string", "enum": ["a"]}, {"type": "string", "const": ""}]})
        );
        let open = Schema {
            kind: Kind::Enum {
                values: vec!["a".into()],
                open: true,
            },
            emptyable: true,
        };
        assert_eq!(
            schema_json(&open),
            json!({"anyOf": [
                {"type": "string", "enum": ["a"]},
                {"type": "string"},
                {"type": "string", "const": ""}
            ]})
        );
    }

    #[test]
    fn maps_arrays_and_nested_objects_nest_their_schemas() {
        let map = Schema {
            kind: Kind::Map {
                values: Box::new(string(Some(500))),
            },
            emptyable: false,
        };
        assert_eq!(
            schema_json(&map),
            json!({"type": "object", "additionalProperties": {"type": "string", "maxLength": 500}})
        );
        let nested = Schema {
            kind: Kind::Array {
                items: Box::new(Schema {
                    kind: Kind::Object {
                        fields: vec![field("price", true, string(None))],
                    },
                    emptyable: false,
                }),
            },
            emptyable: false,
        };
        assert_eq!(
            schema_json(&nested),
            json!({"type": "array", "items": {
                "type": "object",
                "properties": {"price": {"type": "string"}},
                "required": ["price"],
                "additionalProperties": false
            }})
        );
    }
}
