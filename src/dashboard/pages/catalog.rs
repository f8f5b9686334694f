//! `/catalog`: the operations agentgate validates (what `agentgate catalog list` prints),
//! each with its top-level parameters, so an operator choosing `--allow` patterns on the key
//! form sees what each id means. The full JSON Schemas are what agents read from
//! `GET /v1/catalog/{connection}`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::super::layout::{self, Nav};
use super::super::session::Operator;
use super::super::DashState;
use crate::catalog::{Field, Kind};

/// `GET /catalog`
pub async fn list(State(state): State<Arc<DashState>>, operator: Operator) -> Response {
    let catalog = state.settings.shared.catalog.catalog().clone();
    let body = html! {
        p.hint {
            (catalog.operations.len()) " operations are checked against Stripe's API description "
            "before they are forwarded; other Stripe paths pass through unchecked for keys allowed "
            "to use them. Agents read the JSON Schemas at " code { "GET /v1/catalog/{connection}" } "."
        }
        table {
            thead { tr { th { "Operation" } th { "Request" } th { "Parameters" } } }
            tbody {
                @for op in &catalog.operations {
                    tr {
                        td { code { (op.id) } }
                        td { code { (op.method) " " (op.path) } }
                        td {
                            @if op.params.is_empty() {
                                span.hint { "none" }
                            } @else {
                                details {
                                    summary { (op.params.len()) " (" (required_count(&op.params)) " required)" }
                                    ul.params {
                                        @for field in &op.params {
                                            li {
                                                code { (field.name) } " " span.hint { (kind_label(&field.schema.kind)) }
                                                @if field.required { " " span.badge { "required" } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&operator, Nav::Catalog, "Operation catalog", None, body)
}

fn required_count(fields: &[Field]) -> usize {
    fields.iter().filter(|f| f.required).count()
}

/// A parameter's shape in a word or two.
fn kind_label(kind: &Kind) -> String {
    match kind {
        Kind::String { .. } => "string".into(),
        Kind::Integer => "integer".into(),
        Kind::Number => "number".into(),
        Kind::Boolean => "boolean".into(),
        Kind::Enum { values, open } => {
            let shown: Vec<&str> = values.iter().take(4).map(String::as_str).collect();
            let more = if values.len() > 4 || *open {
                ", …"
            } else {
                ""
            };
            format!("one of {}{more}", shown.join(", "))
        }
        Kind::Object { .. } => "object".into(),
        Kind::Array { .. } => "list".into(),
        Kind::Map { .. } => "map".into(),
        Kind::AnyOf { any_of } => {
            let shapes: Vec<String> = any_of.iter().map(|s| kind_label(&s.kind)).collect();
            shapes.join(" or ")
        }
    }
}
