//! Validation of a listed operation's parameters before anything is sent to Stripe.
//!
//! The request's query string and form body are decoded into a tree ([`form`]) and checked
//! against the operation's catalog entry: unknown and missing parameters, types, enum
//! values, lengths and path parameters. A refusal names the parameter the way Stripe does
//! (`line_items[0][price]`) and carries Stripe's error code where Stripe has one; where
//! Stripe answers without a code (an enum value, a boolean, a length) so does agentgate.
//! The rule that decides every doubtful case: never refuse what Stripe would accept.

pub mod form;
mod quick;

use std::borrow::Cow;

use crate::catalog::{Field, Kind, Operation, Schema};
use form::Node;

/// Why a request was refused: what Stripe's error object carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Stripe's error code, where Stripe uses one for this fault.
    pub code: Option<&'static str>,
    /// The parameter at fault in bracket notation, if the fault has one.
    pub param: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The decoded parameters of one request.
pub type Params<'a> = Vec<(Cow<'a, str>, Node<'a>)>;

/// Decodes the query string and (for form bodies) the body into one parameter tree.
pub fn decode<'a>(query: Option<&'a str>, body: Option<&'a [u8]>) -> Result<Params<'a>, Violation> {
    let sources = [query.map(str::as_bytes), body];
    // At most one top-level parameter per pair: the list is sized once, not grown.
    let most = sources
        .iter()
        .flatten()
        .map(|source| memchr::memchr_iter(b'&', source).count() + 1)
        .sum();
    let mut params = Vec::with_capacity(most);
    for source in sources.into_iter().flatten() {
        form::decode_into(source, &mut params).map_err(|conflict| Violation {
            code: None,
            param: Some(conflict.key.clone()),
            message: format!(
                "Invalid parameter {}: it was sent both as a single value and with named or \
                 listed parts.",
                conflict.key
            ),
        })?;
    }
    Ok(params)
}

/// Checks the path arguments (in template order) and the decoded parameters of `operation`.
pub fn validate(
    operation: &Operation,
    path_args: &[&str],
    params: &Params<'_>,
) -> Result<(), Violation> {
    check_path_args(operation, path_args)?;
    let mut path = ParamPath::default();
    check_fields(&operation.params, params, &mut path)
}

/// Decodes and checks a request's query string and form body against `operation`, with
/// the same answer as [`decode`] followed by [`validate`]. The common request is accepted
/// in one pass over its pairs without building the tree ([`quick`]); any other request, and
/// every refusal, goes through the tree, so what is refused and how the refusal reads are
/// decided in one place.
pub fn check(
    operation: &Operation,
    path_args: &[&str],
    query: Option<&str>,
    body: Option<&[u8]>,
) -> Result<(), Violation> {
    if quick::accepts(operation, path_args, query, body) {
        return Ok(());
    }
    validate(operation, path_args, &decode(query, body)?)
}

/// Whether the one-pass check alone accepts the request; public for the tests and fuzz
/// targets that compare it with the tree, which must accept whatever it accepts.
pub fn accepted_in_one_pass(
    operation: &Operation,
    path_args: &[&str],
    query: Option<&str>,
    body: Option<&[u8]>,
) -> bool {
    quick::accepts(operation, path_args, query, body)
}

fn check_path_args(operation: &Operation, path_args: &[&str]) -> Result<(), Violation> {
    for (param, value) in operation.path_params.iter().zip(path_args) {
        if let Some(max) = param.max_length {
            if value.chars().count() > max as usize {
                return Err(Violation {
                    code: None,
                    param: Some(param.name.clone()),
                    message: format!(
                        "Invalid {}: the id in the path must be at most {max} characters.",
                        param.name
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Where in the tree the check is, for naming a parameter as Stripe does.
#[derive(Default)]
struct ParamPath<'p> {
    parts: Vec<&'p str>,
}

impl<'p> ParamPath<'p> {
    fn name(&self) -> String {
        let mut out = String::new();
        for (index, part) in self.parts.iter().enumerate() {
            if index == 0 {
                out.push_str(part);
            } else {
                out.push('[');
                out.push_str(part);
                out.push(']');
            }
        }
        out
    }

    fn child(&self, part: &str) -> String {
        if self.parts.is_empty() {
            part.to_owned()
        } else {
            format!("{}[{part}]", self.name())
        }
    }
}

fn find_field<'c>(fields: &'c [Field], name: &str) -> Option<&'c Field> {
    field_index(fields, name).map(|index| &fields[index])
}

/// Where `name` is among `fields` (sorted by name). A search on the first byte alone finds
/// the few fields that start like `name` (names are short and spread over the alphabet);
/// only those are compared whole, and only when their lengths match.
fn field_index(fields: &[Field], name: &str) -> Option<usize> {
    let first = name.as_bytes().first();
    let start = fields.partition_point(|field| field.name.as_bytes().first() < first);
    (fields[start..].iter())
        .take_while(|field| field.name.as_bytes().first() == first)
        .position(|field| field.name == name)
        .map(|offset| start + offset)
}

fn check_fields<'p>(
    fields: &[Field],
    entries: &'p [(Cow<'p, str>, Node<'p>)],
    path: &mut ParamPath<'p>,
) -> Result<(), Violation> {
    for (name, node) in entries {
        let Some(field) = find_field(fields, name) else {
            let param = path.child(name);
            return Err(Violation {
                code: Some("parameter_unknown"),
                message: format!("Received unknown parameter: {param}"),
                param: Some(param),
            });
        };
        path.parts.push(name);
        let checked = match node {
            Node::Leaf(text) if text.is_empty() => check_empty(&field.schema, field.required, path),
            _ => check_value(&field.schema, node, path),
        };
        path.parts.pop();
        checked?;
    }
    for field in fields.iter().filter(|field| field.required) {
        if !entries.iter().any(|(name, _)| *name == field.name) {
            let param = path.child(&field.name);
            return Err(Violation {
                code: Some("parameter_missing"),
                message: format!("Missing required param: {param}."),
                param: Some(param),
            });
        }
    }
    Ok(())
}

fn check_value<'p>(
    schema: &Schema,
    node: &'p Node<'p>,
    path: &mut ParamPath<'p>,
) -> Result<(), Violation> {
    match node {
        Node::Leaf(text) if text.is_empty() => check_empty(schema, false, path),
        Node::Leaf(text) => check_text(schema, text, path),
        Node::Map(entries) => check_map(schema, entries, path),
        Node::List(items) => check_list(schema, items, path),
    }
}

/// The empty string unsets a field; fields Stripe marks as unsettable take it. An optional
/// plain string may take it too: the spec does not say whether Stripe refuses
/// `description=`, so it is forwarded. So may an object without properties
/// (`payment_method_data[affirm]`): an empty value is the only way to send an empty hash in
/// form encoding. Required fields and fields of other types (amounts, enums, objects with
/// properties) are refused, as Stripe does.
fn check_empty(schema: &Schema, required: bool, path: &ParamPath<'_>) -> Result<(), Violation> {
    let emptyable = schema.emptyable
        || (!required && matches!(schema.kind, Kind::String { .. }))
        || matches!(&schema.kind, Kind::Object { fields } if fields.is_empty())
        || matches!(&schema.kind, Kind::AnyOf { any_of } if any_of.iter().any(|alt| alt.emptyable));
    if emptyable {
        return Ok(());
    }
    let param = path.name();
    Err(Violation {
        code: Some("parameter_invalid_empty"),
        message: format!(
            "You passed an empty string for '{param}'. We assume empty values are an attempt to \
             unset a parameter; however '{param}' cannot be unset. You should remove '{param}' \
             from your request or supply a non-empty value."
        ),
        param: Some(param),
    })
}

fn invalid(path: &ParamPath<'_>, code: Option<&'static str>, message: String) -> Violation {
    Violation {
        code,
        param: Some(path.name()),
        message,
    }
}

/// A shortened, printable echo of a refused value.
fn echo(text: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}

fn check_text(schema: &Schema, text: &str, path: &ParamPath<'_>) -> Result<(), Violation> {
    match &schema.kind {
        Kind::String { max_length, .. } => match max_length {
            // A text no longer in bytes than the limit is within it in characters.
            Some(max) if text.len() > *max as usize && text.chars().count() > *max as usize => Err(invalid(
                path,
                None,
                format!(
                    "Invalid string: {}; must be at most {max} characters (param {}).",
                    echo(text),
                    path.name()
                ),
            )),
            _ => Ok(()),
        },
        Kind::Integer => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && text.parse::<i64>().is_ok() {
                Ok(())
            } else {
                Err(invalid(
                    path,
                    Some("parameter_invalid_integer"),
                    format!("Invalid integer: {} (param {}).", echo(text), path.name()),
                ))
            }
        }
        Kind::Number => match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(()),
            _ => Err(invalid(
                path,
                None,
                format!("Invalid decimal: {} (param {}).", echo(text), path.name()),
            )),
        },
        Kind::Boolean => match text {
            "true" | "false" => Ok(()),
            _ => Err(invalid(
                path,
                None,
                format!(
                    "Invalid boolean: {} (param {}); send true or false.",
                    echo(text),
                    path.name()
                ),
            )),
        },
        Kind::Enum { values, open } => {
            if *open || values.iter().any(|value| value == text) {
                Ok(())
            } else {
                Err(invalid(
                    path,
                    None,
                    format!("Invalid {}: must be one of {}", path.name(), one_of(values)),
                ))
            }
        }
        Kind::Object { .. } | Kind::Map { .. } => Err(invalid(
            path,
            None,
            format!(
                "Invalid object: {0} takes named parts such as {0}[name]=value, not a single value.",
                path.name()
            ),
        )),
        Kind::Array { .. } => Err(invalid(
            path,
            None,
            format!(
                "Invalid array: {0} takes a list such as {0}[0]=value, not a single value.",
                path.name()
            ),
        )),
        Kind::AnyOf { any_of } => first_match(any_of, |alt| check_text(alt, text, path), true),
    }
}

/// `a, b, or c`, as Stripe lists allowed values.
fn one_of(values: &[String]) -> String {
    match values {
        [] => String::new(),
        [only] => only.clone(),
        [first, second] => format!("{first} or {second}"),
        [init @ .., last] => format!("{}, or {last}", init.join(", ")),
    }
}

fn check_map<'p>(
    schema: &Schema,
    entries: &'p [(Cow<'p, str>, Node<'p>)],
    path: &mut ParamPath<'p>,
) -> Result<(), Violation> {
    match &schema.kind {
        Kind::Object { fields } => check_fields(fields, entries, path),
        Kind::Map { values } => {
            for (key, node) in entries {
                path.parts.push(key);
                // An empty value removes one key (`metadata[key]=`), whatever the values' type.
                let checked = match node {
                    Node::Leaf(text) if text.is_empty() => Ok(()),
                    _ => check_value(values, node, path),
                };
                path.parts.pop();
                checked?;
            }
            Ok(())
        }
        Kind::Array { items } => {
            let mut indexed = Vec::with_capacity(entries.len());
            for (key, node) in entries {
                match key.parse::<u32>() {
                    Ok(index) if key.bytes().all(|b| b.is_ascii_digit()) => {
                        indexed.push((index, key, node))
                    }
                    _ => {
                        return Err(invalid(
                            path,
                            None,
                            format!(
                            "Invalid array: {0} takes numbered items such as {0}[0], not {0}[{1}].",
                            path.name(),
                            echo(key)
                        ),
                        ))
                    }
                }
            }
            indexed.sort_by_key(|(index, _, _)| *index);
            for (_, key, node) in indexed {
                path.parts.push(key);
                let checked = check_value(items, node, path);
                path.parts.pop();
                checked?;
            }
            Ok(())
        }
        Kind::AnyOf { any_of } => first_match(any_of, |alt| check_map(alt, entries, path), false),
        _ => Err(not_a_container(schema, path)),
    }
}

fn check_list<'p>(
    schema: &Schema,
    items: &'p [Node<'p>],
    path: &mut ParamPath<'p>,
) -> Result<(), Violation> {
    match &schema.kind {
        Kind::Array { items: item_schema } => {
            let indices: Vec<String> = (0..items.len()).map(|i| i.to_string()).collect();
            for (node, index) in items.iter().zip(&indices) {
                let mut item_path = ParamPath {
                    parts: path.parts.clone(),
                };
                item_path.parts.push(index);
                check_value(item_schema, node, &mut item_path)?;
            }
            Ok(())
        }
        Kind::AnyOf { any_of } => first_match(any_of, |alt| check_list(alt, items, path), false),
        _ => Err(not_a_container(schema, path)),
    }
}

fn not_a_container(schema: &Schema, path: &ParamPath<'_>) -> Violation {
    let kind = match schema.kind {
        Kind::Integer => "integer",
        Kind::Number => "decimal",
        Kind::Boolean => "boolean",
        _ => "string",
    };
    invalid(
        path,
        None,
        format!(
            "Invalid {kind}: {} takes a single value, not named or listed parts.",
            path.name()
        ),
    )
}

/// Accepts when one alternative accepts; otherwise reports the error of the first
/// alternative of the sent shape (a single value or parts).
fn first_match(
    alternatives: &[Schema],
    mut check: impl FnMut(&Schema) -> Result<(), Violation>,
    single_value: bool,
) -> Result<(), Violation> {
    let mut first_error = None;
    let mut shaped_error = None;
    for alternative in alternatives {
        match check(alternative) {
            Ok(()) => return Ok(()),
            Err(error) => {
                let container = matches!(
                    alternative.kind,
                    Kind::Object { .. } | Kind::Map { .. } | Kind::Array { .. }
                );
                if shaped_error.is_none() && container != single_value {
                    shaped_error = Some(error.clone());
                }
                first_error.get_or_insert(error);
            }
        }
    }
    Err(shaped_error.or(first_error).unwrap_or_else(|| Violation {
        code: None,
        param: None,
        message: "No accepted form for this parameter.".into(),
    }))
}
