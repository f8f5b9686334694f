//! The validator (`src/validation/mod.rs`) with the embedded catalog (`src/catalog/`).
//! The first byte picks an operation and a mode.
//!
//! - Arbitrary input: the rest is the query or body. Properties: an accepted request
//!   names only the operation's parameters and all of its required ones; a refusal names a
//!   parameter that was sent, or that the operation or its path has; the gateway's entry
//!   point (`check`) answers as decoding and validating do, and what its one-pass check
//!   accepts they accept.
//! - Generated input: the rest drives a generator that writes a request the catalog allows
//!   (required fields, in-range lengths, listed enum values, integers, booleans, nested
//!   objects, lists and maps). Property: it is accepted, since agentgate must never
//!   refuse what Stripe would accept.
#![no_main]

use std::sync::LazyLock;

use agentgate::catalog::{Catalog, Field, Kind, Operation, Schema};
use agentgate::validation::{accepted_in_one_pass, check, decode, validate};
use libfuzzer_sys::fuzz_target;

static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::embedded);

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let operations = &CATALOG.operations;
    let operation = &operations[usize::from(choice >> 1) % operations.len()];
    if choice & 1 == 0 {
        arbitrary_request(operation, rest);
    } else {
        generated_request(operation, rest);
    }
});

fn arbitrary_request(operation: &Operation, input: &[u8]) {
    let args: Vec<&str> = operation.path_params.iter().map(|_| "id_1").collect();
    let tree = decode(None, Some(input)).and_then(|params| validate(operation, &args, &params));
    if accepted_in_one_pass(operation, &args, None, Some(input)) {
        assert_eq!(tree, Ok(()), "{}: accepted in one pass only", operation.id);
    }
    assert_eq!(check(operation, &args, None, Some(input)), tree, "{}", operation.id);
    let Ok(params) = decode(None, Some(input)) else {
        return;
    };
    match validate(operation, &args, &params) {
        Ok(()) => {
            for (name, _) in &params {
                assert!(
                    operation.params.iter().any(|field| field.name == *name),
                    "{}: accepted the unknown parameter {name:?}",
                    operation.id
                );
            }
            for field in operation.params.iter().filter(|field| field.required) {
                assert!(
                    params.iter().any(|(name, _)| *name == field.name),
                    "{}: accepted a request without {}",
                    operation.id,
                    field.name
                );
            }
        }
        Err(violation) => {
            assert!(!violation.message.is_empty());
            if let Some(param) = &violation.param {
                let root = param.split('[').next().unwrap_or_default();
                let sent = |name: &str| param == name || param.starts_with(&format!("{name}["));
                let known = params.iter().any(|(name, _)| sent(name))
                    || operation.params.iter().any(|field| field.name == root)
                    || operation.path_params.iter().any(|path| path.name == root);
                assert!(known, "{}: the refusal names {param:?}", operation.id);
            }
        }
    }
}

fn generated_request(operation: &Operation, input: &[u8]) {
    let mut bytes = Bytes(input);
    let args: Vec<String> = operation
        .path_params
        .iter()
        .map(|param| {
            let len = param.max_length.unwrap_or(24).clamp(1, 24);
            bytes.text(len as usize)
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut pairs = Vec::new();
    fields(&operation.params, None, &mut bytes, &mut pairs);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let params = decode(None, Some(body.as_bytes())).expect("generated pairs never conflict");
    if let Err(violation) = validate(operation, &args, &params) {
        panic!(
            "{}: refused a request the catalog allows: {violation:?}\nbody: {body}",
            operation.id
        );
    }
}

/// Fuzz bytes read as choices; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        first
    }

    fn coin(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }

    /// A non-empty string of at most `max` characters, some outside ASCII.
    fn text(&mut self, max: usize) -> String {
        const CHARS: [char; 12] = ['a', 'Z', '0', '_', ' ', '[', ']', '&', '=', '%', 'é', '€'];
        let len = 1 + self.below(max.min(16));
        (0..len).map(|_| CHARS[self.below(CHARS.len())]).collect()
    }
}

/// Appends pairs for some of `fields` (every required one, at least one in all).
fn fields(
    fields: &[Field],
    prefix: Option<&str>,
    bytes: &mut Bytes,
    out: &mut Vec<(String, String)>,
) {
    let before = out.len();
    for field in fields {
        if field.required || bytes.coin() {
            let key = match prefix {
                Some(prefix) => format!("{prefix}[{}]", field.name),
                None => field.name.clone(),
            };
            value(&field.schema, &key, bytes, out);
        }
    }
    if out.len() == before && prefix.is_some() {
        if let Some(field) = fields.first() {
            let key = format!("{}[{}]", prefix.unwrap_or_default(), field.name);
            value(&field.schema, &key, bytes, out);
        }
    }
}

/// Appends pairs that give `key` a value `schema` allows.
fn value(schema: &Schema, key: &str, bytes: &mut Bytes, out: &mut Vec<(String, String)>) {
    let leaf = |out: &mut Vec<(String, String)>, text: String| out.push((key.to_owned(), text));
    match &schema.kind {
        Kind::String { max_length, .. } => {
            let max = max_length.map_or(5000, |max| max as usize);
            if max == 0 {
                leaf(out, String::new());
            } else {
                let text = bytes.text(max);
                leaf(out, text);
            }
        }
        Kind::Integer => {
            let number = i64::from(bytes.byte()) - 64;
            leaf(out, number.to_string());
        }
        Kind::Number => {
            let text = ["0", "1.5", "-2", "1e3", "0.0001"][bytes.below(5)];
            leaf(out, text.to_owned());
        }
        Kind::Boolean => {
            let text = if bytes.coin() { "true" } else { "false" };
            leaf(out, text.to_owned());
        }
        Kind::Enum { values, open } => {
            if values.is_empty() || (*open && bytes.coin()) {
                let text = bytes.text(8);
                leaf(out, text);
            } else {
                leaf(out, values[bytes.below(values.len())].clone());
            }
        }
        Kind::Object { fields: properties } => {
            if properties.is_empty() {
                leaf(out, String::new());
            } else {
                fields(properties, Some(key), bytes, out);
            }
        }
        Kind::Array { items } => {
            let scalar = !matches!(
                items.kind,
                Kind::Object { .. } | Kind::Array { .. } | Kind::Map { .. } | Kind::AnyOf { .. }
            );
            let appended = scalar && bytes.coin();
            for index in 0..1 + bytes.below(2) {
                let item = if appended {
                    format!("{key}[]")
                } else {
                    format!("{key}[{index}]")
                };
                value(items, &item, bytes, out);
            }
        }
        Kind::Map { values } => {
            for index in 0..1 + bytes.below(2) {
                value(values, &format!("{key}[k{index}]"), bytes, out);
            }
        }
        Kind::AnyOf { any_of } => {
            if let Some(alternative) = any_of.get(bytes.below(any_of.len())) {
                value(alternative, key, bytes, out);
            }
        }
    }
}
