//! `agentgate catalog`: the committed catalog is exactly what importing the extraction gives
//! and agrees with the extraction node by node; a small description in the shape of
//! Stripe's OpenAPI file (built here, none is committed) imports with its shapes intact; listing works without a database or master key.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};

use agentgate::catalog::{Catalog, Field, Kind, Operation, LISTED};

use crate::support::cli::{binary, stderr, stdout};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed() -> PathBuf {
    manifest_dir().join("src/catalog/stripe.json")
}

/// A text parameter or property of at most `max` characters.
fn text(max: u64) -> Value {
    json!({"type": "string", "maxLength": max})
}

/// Stripe's idiom for "this value, or the empty string to unset it".
fn or_empty(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "string", "enum": [""]}]})
}

/// An operation whose parameters travel in a form body, as Stripe's POST and DELETE do.
fn form_operation(path_params: Value, properties: Value, required: &[&str]) -> Value {
    json!({
        "parameters": path_params,
        "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "additionalProperties": false,
            "properties": properties, "required": required,
        }}}},
        "responses": {},
    })
}

fn path_param(name: &str, max: u64) -> Value {
    json!({"in": "path", "name": name, "required": true, "schema": text(max)})
}

fn query_param(name: &str, schema: Value) -> Value {
    json!({"in": "query", "name": name, "required": false, "schema": schema})
}

/// A small OpenAPI description in the shape of Stripe's spec3.json, written for this test:
/// the idioms the importer must keep (`$ref`, `anyOf` with `""`, maps, arrays of objects,
/// `x-stripeBypassValidation`, form bodies on DELETE, path parameter lengths) on a few
/// operations, and a bare stub (path parameters only) for every other listed operation,
/// since an import needs all of them.
fn excerpt_spec() -> Value {
    let expand = json!({"type": "array", "items": text(5000)});
    let metadata = or_empty(json!({"type": "object", "additionalProperties": {"type": "string"}}));
    let address = json!({"$ref": "#/components/schemas/optional_fields_customer_address"});
    let created_range = json!({"type": "object", "properties": {
        "gt": {"type": "integer"}, "gte": {"type": "integer"},
        "lt": {"type": "integer"}, "lte": {"type": "integer"},
    }});
    let customer_fields = json!({
        "address": or_empty(address.clone()),
        "balance": {"type": "integer"},
        "email": text(512),
        "expand": expand,
        "metadata": metadata,
        "shipping": or_empty(json!({"type": "object", "required": ["address", "name"], "properties": {
            "address": address, "name": text(5000), "phone": text(5000),
        }})),
        "tax_exempt": {"type": "string", "enum": ["", "exempt", "none", "reverse"]},
        "tax_id_data": {"type": "array", "items": {"type": "object", "required": ["type", "value"], "properties": {
            "type": {"type": "string", "maxLength": 5000, "enum": ["ad_nrt", "eu_vat", "us_ein"],
                     "x-stripeBypassValidation": true},
            "value": {"type": "string"},
        }}},
    });
    let listing = |extra: Value| json!({"parameters": [query_param("expand", expand.clone()), extra], "responses": {}});
    let mut spec = json!({
        "openapi": "3.0.0",
        "info": {"version": "2026-07-29.dahlia"},
        "components": {"schemas": {"optional_fields_customer_address": {"type": "object", "properties": {
            "city": text(5000), "country": text(5000), "line1": text(5000), "postal_code": text(5000),
        }}}},
        "paths": {
            "/v1/customers": {
                "get": listing(query_param("created", json!({"anyOf": [created_range, {"type": "integer"}]}))),
                "post": form_operation(json!([]), customer_fields, &[]),
            },
            "/v1/customers/{customer}": {
                "get": {"parameters": [path_param("customer", 5000), query_param("expand", expand.clone())], "responses": {}},
            },
            "/v1/customers/search": {"get": listing(json!({"in": "query", "name": "query", "required": true, "schema": text(5000)}))},
            "/v1/invoices/upcoming": {"get": listing(query_param("limit", json!({"type": "integer"})))},
            "/v1/products/search": {"get": listing(query_param("limit", json!({"type": "integer"})))},
            "/v1/payment_intents": {"post": form_operation(json!([]), json!({
                "amount": {"type": "integer"},
                "currency": {"type": "string", "format": "currency"},
                "metadata": metadata,
                "statement_descriptor": text(22),
            }), &["amount", "currency"])},
            "/v1/subscriptions/{subscription_exposed_id}": {"delete": form_operation(
                json!([path_param("subscription_exposed_id", 5000)]),
                json!({"expand": expand, "invoice_now": {"type": "boolean"}, "prorate": {"type": "boolean"}}),
                &[],
            )},
            "/v1/checkout/sessions/{session}": {"get": {"parameters": [path_param("session", 66)], "responses": {}}},
        },
    });
    let paths = spec["paths"].as_object_mut().unwrap();
    for (_, method, path) in LISTED {
        let item = paths.entry(path).or_insert_with(|| json!({}));
        let method = method.to_ascii_lowercase();
        if item.get(&method).is_some() {
            continue;
        }
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| path_param(name, 5000))
            .collect();
        item[method] = json!({"parameters": parameters, "responses": {}});
    }
    spec
}

/// [`excerpt_spec`] written to a file, for the command line.
fn excerpt(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("spec3_excerpt.json");
    std::fs::write(&path, excerpt_spec().to_string()).unwrap();
    path
}

/// The extraction, or `None` (after saying so) where `../shared/stripe` is not checked out.
fn oracle() -> Option<PathBuf> {
    let path = manifest_dir().join("../shared/stripe/operations.json");
    if path.exists() {
        return Some(path);
    }
    println!("SKIP: ../shared/stripe not present");
    None
}

/// Runs `agentgate catalog ARGS` in an empty directory with a database that cannot be
/// reached and no master key, so any use of either fails the command.
fn catalog(args: &[&Path]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    binary()
        .arg("catalog")
        .args(args)
        .current_dir(dir.path())
        .env("AGENTGATE_DATABASE", "postgres://127.0.0.1:1/unreachable")
        .env_remove("AGENTGATE_MASTER_KEY")
        .env_remove("AGENTGATE_MASTER_KEY_FILE")
        .output()
        .expect("agentgate runs")
}

fn import(file: &Path) -> Catalog {
    let output = catalog(&[Path::new("import"), file]);
    assert!(output.status.success(), "{}", stderr(&output));
    Catalog::from_json(&stdout(&output)).expect("import prints a catalog")
}

fn operation<'a>(catalog: &'a Catalog, id: &str) -> &'a Operation {
    catalog
        .operation(id)
        .unwrap_or_else(|| panic!("{id} listed"))
}

fn field<'a>(fields: &'a [Field], name: &str) -> &'a Field {
    let found = fields.iter().find(|field| field.name == name);
    found.unwrap_or_else(|| panic!("field {name}"))
}

fn fields(kind: &Kind) -> &[Field] {
    match kind {
        Kind::Object { fields } => fields,
        other => panic!("an object, not {other:?}"),
    }
}

#[test]
fn importing_the_extraction_gives_the_committed_catalog_byte_for_byte() {
    let Some(oracle) = oracle() else { return };
    let output = catalog(&[Path::new("import"), &oracle]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        output.stdout == std::fs::read(committed()).unwrap(),
        "src/catalog/stripe.json drifted: regenerate it with \
         `agentgate catalog import ../shared/stripe/operations.json --out src/catalog/stripe.json`"
    );
    let summary = stderr(&output);
    assert!(
        summary.contains("30 operations") && summary.contains("2026-07-29.dahlia"),
        "{summary}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("catalog.json");
    let written = catalog(&[Path::new("import"), &oracle, Path::new("--out"), &out]);
    assert!(written.status.success() && written.stdout.is_empty());
    assert_eq!(std::fs::read(&out).unwrap(), output.stdout);
}

#[test]
fn the_committed_catalog_agrees_with_the_extraction_node_by_node() {
    let Some(oracle) = oracle() else { return };
    let oracle: Value = serde_json::from_str(&std::fs::read_to_string(oracle).unwrap()).unwrap();
    let catalog = Catalog::from_json(&std::fs::read_to_string(committed()).unwrap()).unwrap();
    assert_eq!(catalog.api_version, oracle["_meta"]["api_version"]);
    let expected = oracle["operations"].as_array().unwrap();
    assert_eq!(catalog.operations.len(), expected.len());
    let mut compared = 0;
    for (op, want) in catalog.operations.iter().zip(expected) {
        assert_eq!(
            (op.id.as_str(), op.method.as_str(), op.path.as_str()),
            (
                want["id"].as_str().unwrap(),
                want["method"].as_str().unwrap(),
                want["path"].as_str().unwrap(),
            )
        );
        let path_params: Vec<(&str, Option<u64>)> = want["path_params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap(),
                    p.get("maxLength").and_then(Value::as_u64),
                )
            })
            .collect();
        let got: Vec<(&str, Option<u64>)> = op
            .path_params
            .iter()
            .map(|p| (p.name.as_str(), p.max_length.map(u64::from)))
            .collect();
        assert_eq!(got, path_params, "{}", op.id);
        let params: Vec<(String, &Value)> = want["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p))
            .collect();
        compared += same_fields(&op.params, params, &op.id);
    }
    assert!(compared > 2000, "only {compared} nodes compared");
}

/// Checks `fields` against the extraction's (name, node) pairs; returns the nodes compared.
fn same_fields(fields: &[Field], mut want: Vec<(String, &Value)>, at: &str) -> usize {
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    let want_names: Vec<&str> = want.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, want_names, "{at}");
    let mut compared = 0;
    for (field, (name, node)) in fields.iter().zip(&want) {
        let at = format!("{at} {name}");
        let required = node
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        assert_eq!(field.required, required, "{at}: required");
        compared += same_schema(&field.schema, node, &at);
    }
    compared
}

/// Checks one catalog schema against an extraction node, recursively.
fn same_schema(schema: &agentgate::catalog::Schema, node: &Value, at: &str) -> usize {
    let emptyable = node
        .get("emptyable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    assert_eq!(schema.emptyable, emptyable, "{at}: emptyable");
    let children = match (node["type"].as_str().unwrap(), &schema.kind) {
        ("string", Kind::String { max_length, format }) => {
            let verified = node.get("maxLength").and_then(Value::as_u64);
            assert_eq!(max_length.map(u64::from), verified, "{at}: maxLength");
            assert_eq!(format.as_deref(), node["format"].as_str(), "{at}: format");
            0
        }
        ("integer", Kind::Integer) | ("number", Kind::Number) | ("boolean", Kind::Boolean) => 0,
        ("enum", Kind::Enum { values, open }) => {
            let want: Vec<&str> = node["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(values, &want, "{at}: values");
            assert_eq!(*open, node["open"].as_bool().unwrap_or(false), "{at}: open");
            0
        }
        ("object", Kind::Object { fields }) => {
            let properties = node["properties"].as_object().unwrap();
            let want = properties
                .iter()
                .map(|(name, p)| (name.clone(), p))
                .collect();
            same_fields(fields, want, at)
        }
        ("array", Kind::Array { items }) => same_schema(items, &node["items"], &format!("{at}[]")),
        ("map", Kind::Map { values }) => same_schema(values, &node["values"], &format!("{at}.*")),
        ("anyOf", Kind::AnyOf { any_of }) => {
            let want = node["anyOf"].as_array().unwrap();
            assert_eq!(any_of.len(), want.len(), "{at}: alternatives");
            any_of
                .iter()
                .zip(want)
                .map(|(alt, node)| same_schema(alt, node, at))
                .sum()
        }
        (want, got) => panic!("{at}: the extraction says {want}, the catalog {got:?}"),
    };
    children + 1
}

#[test]
fn an_openapi_excerpt_imports_with_refs_resolved_and_stripe_idioms_kept() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = import(&excerpt(&dir));
    assert_eq!(catalog.api_version, "2026-07-29.dahlia");
    let ids: Vec<&str> = catalog.operations.iter().map(|op| op.id.as_str()).collect();
    assert_eq!(ids, LISTED.map(|(id, _, _)| id));
    assert_eq!(
        catalog.passthrough,
        ["GET /v1/customers/search", "GET /v1/invoices/upcoming"]
    );

    let created = &field(&operation(&catalog, "customers.list").params, "created").schema;
    let Kind::AnyOf { any_of } = &created.kind else {
        panic!("created: {created:?}")
    };
    assert_eq!(
        field(fields(&any_of[0].kind), "gte").schema.kind,
        Kind::Integer
    );
    assert_eq!(any_of[1].kind, Kind::Integer);

    let create = &operation(&catalog, "customers.create").params;
    let address = &field(create, "address").schema;
    assert!(address.emptyable, "anyOf [$ref, enum [\"\"]]");
    let city = &field(fields(&address.kind), "city").schema.kind;
    assert_eq!(
        city,
        &Kind::String {
            max_length: Some(5000),
            format: None
        },
        "the $ref resolved"
    );
    let metadata = &field(create, "metadata").schema;
    let text = Kind::String {
        max_length: None,
        format: None,
    };
    assert!(
        metadata.emptyable && matches!(&metadata.kind, Kind::Map { values } if values.kind == text)
    );
    let tax_exempt = &field(create, "tax_exempt").schema;
    assert!(tax_exempt.emptyable, "enum with \"\"");
    assert_eq!(
        tax_exempt.kind,
        Kind::Enum {
            values: vec!["exempt".into(), "none".into(), "reverse".into()],
            open: false
        }
    );
    let Kind::Array { items } = &field(create, "tax_id_data").schema.kind else {
        panic!("an array")
    };
    let tax_type = field(fields(&items.kind), "type");
    assert!(
        tax_type.required && matches!(tax_type.schema.kind, Kind::Enum { open: true, .. }),
        "x-stripeBypassValidation"
    );
    let shipping = &field(create, "shipping").schema;
    let shipping_fields = fields(&shipping.kind);
    assert!(
        shipping.emptyable
            && field(shipping_fields, "address").required
            && field(shipping_fields, "name").required
    );
    assert!(!field(shipping_fields, "phone").required);
    assert!(create.iter().all(|f| !f.required));

    let retrieve = operation(&catalog, "customers.retrieve");
    assert_eq!(
        (
            retrieve.path_params[0].name.as_str(),
            retrieve.path_params[0].max_length
        ),
        ("customer", Some(5000))
    );
    assert!(operation(&catalog, "customers.delete").params.is_empty());
    let cancel: Vec<&str> = operation(&catalog, "subscriptions.cancel")
        .params
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        cancel,
        ["expand", "invoice_now", "prorate"],
        "DELETE's form body is read"
    );
    let intent = &operation(&catalog, "payment_intents.create").params;
    assert!(field(intent, "amount").required && field(intent, "currency").required);
    assert_eq!(
        operation(&catalog, "checkout.sessions.retrieve").path_params[0].max_length,
        Some(66)
    );
}

#[test]
fn list_prints_every_operation_and_json_gives_a_parameters_schema_for_each() {
    let table = catalog(&[Path::new("list")]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.starts_with("ID"), "{text}");
    for (id, _, _) in LISTED {
        assert!(text.contains(id), "{id} missing from\n{text}");
    }
    let json = catalog(&[Path::new("list"), Path::new("--json")]);
    assert!(json.status.success(), "{}", stderr(&json));
    let list: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(list["api_version"], "2026-07-29.dahlia");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 30);
    for (entry, (id, method, path)) in data.iter().zip(LISTED) {
        assert_eq!(
            (
                entry["id"].as_str(),
                entry["method"].as_str(),
                entry["path"].as_str()
            ),
            (Some(id), Some(method), Some(path))
        );
        assert_eq!(entry["parameters"]["type"], "object", "{id}");
        assert_eq!(entry["parameters"]["additionalProperties"], false, "{id}");
    }
    let intent = &data[8]["parameters"];
    assert_eq!(
        intent["required"],
        serde_json::json!(["amount", "currency"])
    );
}

#[test]
fn list_reads_another_catalog_with_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("excerpt.json");
    let spec = excerpt(&dir);
    let imported = catalog(&[Path::new("import"), &spec, Path::new("--out"), &out]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    let json = catalog(&[
        Path::new("list"),
        Path::new("--json"),
        Path::new("--catalog"),
        &out,
    ]);
    let list: Value = serde_json::from_str(&stdout(&json)).unwrap();
    let metadata = &list["data"][1]["parameters"]["properties"]["metadata"];
    assert_eq!(
        metadata["anyOf"][1],
        serde_json::json!({"type": "string", "const": ""}),
        "{metadata}"
    );
}

#[test]
fn importing_something_else_fails_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let neither = dir.path().join("neither.json");
    std::fs::write(&neither, r#"{"swagger":"2.0","definitions":{}}"#).unwrap();
    let not_json = dir.path().join("notes.txt");
    std::fs::write(&not_json, "customers.list GET /v1/customers\n").unwrap();
    let mut spec = excerpt_spec();
    spec["paths"].as_object_mut().unwrap().remove("/v1/payouts");
    let partial = dir.path().join("partial.json");
    std::fs::write(&partial, spec.to_string()).unwrap();
    for (file, reason) in [
        (&neither, "neither an operations extraction"),
        (&not_json, "not JSON"),
        (
            &partial,
            "lacks listed operations: payouts.list (GET /v1/payouts)",
        ),
    ] {
        let output = catalog(&[Path::new("import"), file]);
        assert!(!output.status.success(), "{}", file.display());
        let message = stderr(&output);
        assert!(
            message.contains(reason) && message.contains(&file.display().to_string()),
            "{message}"
        );
        assert!(output.stdout.is_empty());
    }
}
