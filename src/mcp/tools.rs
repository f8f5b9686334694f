//! The Stripe tools: one per catalog operation the key may call (the operations discovery
//! lists for it), plus `stripe_request` for keys that may use unlisted paths. A call becomes
//! the request an HTTP client would have sent to `/v1/connections/{connection}/...` and runs
//! through [`Proxy::call`], so validation, scopes, guardrails, idempotency, rate limits and
//! the request log apply exactly as over HTTP. This module never checks a permission itself.

use std::sync::{Arc, OnceLock};

use rmcp::model::{CallToolResult, JsonObject, Tool, ToolAnnotations};
use serde_json::{json, Map, Value};

use super::caller::Caller;
use super::reply;
use super::request::{
    build_request, operation_request, raw_request, CONNECTION, IDEMPOTENCY_KEY, STRIPE_ACCOUNT,
};
use crate::catalog::{json_schema, CatalogIndex, Operation};
use crate::policy::Role;
use crate::proxy::discovery::may_call;
use crate::proxy::{Proxy, Via};
use crate::store::Store;

/// The tool for any Stripe path, offered to keys that may use unlisted paths.
pub const STRIPE_REQUEST: &str = "stripe_request";

/// The catalog's operations as tools, and the calls that run them.
pub struct StripeTools {
    proxy: Arc<Proxy>,
    catalog: Arc<CatalogIndex>,
    store: Arc<dyn Store>,
    /// Each operation's tool without the per-key arguments, built on first use (the
    /// catalog never changes at run time).
    templates: OnceLock<Vec<Tool>>,
}
impl StripeTools {
    /// Tools running through `proxy`, the data plane of the worker that serves the session.
    pub fn new(proxy: Arc<Proxy>, catalog: Arc<CatalogIndex>, store: Arc<dyn Store>) -> Self {
        Self {
            proxy,
            catalog,
            store,
            templates: OnceLock::new(),
        }
    }

    /// The tools `caller`'s key may call.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<Tool>, CallToolResult> {
        let key = &caller.key;
        if key.role != Role::Agent {
            return Ok(Vec::new());
        }
        let connections = self.connections(caller).await?;
        let catalog = self.catalog.catalog();
        let templates = self.templates();
        let mut tools: Vec<Tool> = catalog
            .operations
            .iter()
            .zip(templates)
            .filter(|(op, _)| may_call(&key.scopes, op))
            .map(|(op, template)| {
                let mut tool = template.clone();
                let mut schema = (*tool.input_schema).clone();
                add_controls(&mut schema, caller, &connections, op.method == "POST");
                tool.input_schema = Arc::new(schema);
                tool
            })
            .collect();
        if key.scopes.allow.is_empty() || key.scopes.raw {
            tools.push(stripe_request_tool(caller, &connections));
        }
        Ok(tools)
    }

    /// Whether `name` is one of these tools (offered to this key or not: a call of an
    /// operation the key may not use is refused by the data plane, and logged as such).
    pub fn handles(&self, name: &str) -> bool {
        name == STRIPE_REQUEST || self.operation(name).is_some()
    }

    /// Runs the tool `name` with `arguments` through the data plane.
    pub async fn call(
        &self,
        caller: &Caller,
        name: &str,
        mut arguments: Map<String, Value>,
    ) -> CallToolResult {
        let outgoing = match name {
            STRIPE_REQUEST => raw_request(&mut arguments),
            _ => match self.operation(name) {
                Some(op) => operation_request(op, &mut arguments),
                None => Err(reply::invalid(None, format!("Unknown tool {name}."))),
            },
        };
        let outgoing = match outgoing {
            Ok(outgoing) => outgoing,
            Err(refusal) => return refusal,
        };
        let connection = match self.choose_connection(caller, &mut arguments).await {
            Ok(connection) => connection,
            Err(refusal) => return refusal,
        };
        let request = match build_request(caller, &connection, outgoing, &mut arguments) {
            Ok(request) => request,
            Err(refusal) => return refusal,
        };
        reply::from_response(self.proxy.call(request, Via::Mcp).await).await
    }

    fn templates(&self) -> &[Tool] {
        self.templates.get_or_init(|| {
            self.catalog
                .catalog()
                .operations
                .iter()
                .map(operation_tool)
                .collect()
        })
    }

    fn operation(&self, name: &str) -> Option<&Operation> {
        let catalog = self.catalog.catalog();
        catalog
            .operations
            .iter()
            .find(|op| tool_name(&op.id) == name)
    }

    /// The connections the key may use, by name.
    async fn connections(&self, caller: &Caller) -> Result<Vec<String>, CallToolResult> {
        let records = self
            .store
            .list_connections(&caller.key.workspace_id)
            .await
            .map_err(|error| {
                tracing::error!(%error, "listing connections for MCP failed");
                reply::internal()
            })?;
        let allowed = &caller.key.scopes.connections;
        Ok(records
            .into_iter()
            .map(|record| record.name)
            .filter(|name| allowed.is_empty() || allowed.contains(name))
            .collect())
    }

    /// The `connection` argument, or the only connection the key may use.
    async fn choose_connection(
        &self,
        caller: &Caller,
        arguments: &mut Map<String, Value>,
    ) -> Result<String, CallToolResult> {
        match arguments.remove(CONNECTION) {
            Some(Value::String(name)) => return Ok(name),
            Some(_) => {
                return Err(reply::invalid(
                    Some(CONNECTION),
                    "Invalid connection: pass a connection name.".into(),
                ))
            }
            None => {}
        }
        let mut usable = self.connections(caller).await?;
        match usable.len() {
            1 => Ok(usable.remove(0)),
            0 => Err(reply::invalid(
                Some(CONNECTION),
                "This key may use no connection of its workspace.".into(),
            )),
            _ => Err(reply::invalid(
                Some(CONNECTION),
                format!(
                    "This key may use several connections ({}); pass connection.",
                    usable.join(", ")
                ),
            )),
        }
    }
}

/// An operation id as a tool name: dots become underscores, since several MCP clients
/// accept only `[A-Za-z0-9_-]` (`customers.create` is the tool `customers_create`).
pub fn tool_name(operation: &str) -> String {
    operation.replace('.', "_")
}

/// An operation's tool: its parameters' JSON Schema from discovery, and a description an
/// agent can choose by.
fn operation_tool(op: &Operation) -> Tool {
    let schema = match json_schema::parameters_schema(op) {
        Value::Object(schema) => schema,
        _ => JsonObject::new(),
    };
    let description = format!(
        "{}. Stripe API operation {} ({} {}) through agentgate; arguments are Stripe's \
         parameters as JSON{}. Returns Stripe's JSON response.",
        summary(&op.id),
        op.id,
        op.method,
        op.path,
        if op.path_params.is_empty() {
            ""
        } else {
            ", path variables included"
        },
    );
    let annotations = ToolAnnotations::with_title(op.id.clone())
        .read_only(op.method == "GET")
        .destructive(op.method == "DELETE");
    Tool::new(tool_name(&op.id), description, schema)
        .with_title(op.id.clone())
        .with_annotations(annotations)
}

/// `payment_intents.cancel` as words: "Cancel payment intents".
fn summary(operation: &str) -> String {
    let (resource, verb) = operation.rsplit_once('.').unwrap_or(("", operation));
    let verb = verb.replace('_', " ");
    let mut words = verb.chars();
    let verb = match words.next() {
        Some(first) => first.to_uppercase().chain(words).collect(),
        None => String::new(),
    };
    let resource = resource.replace(['.', '_'], " ");
    format!("{verb} {resource}").trim().to_owned()
}

fn stripe_request_tool(caller: &Caller, connections: &[String]) -> Tool {
    let mut schema = json!({
        "type": "object",
        "properties": {
            "method": {"type": "string", "enum": ["GET", "POST", "DELETE"]},
            "path": {
                "type": "string",
                "description": "Stripe API path, e.g. /v1/balance or /v1/customers/cus_123",
                "pattern": "^/v[12]/",
            },
            "params": {
                "type": "object",
                "description": "Stripe's parameters as JSON: the query for GET and DELETE, \
                                the form body for POST (agentgate encodes them).",
            },
        },
        "required": ["method", "path"],
        "additionalProperties": false,
    });
    if let Value::Object(schema) = &mut schema {
        add_controls(schema, caller, connections, true);
    }
    let schema = match schema {
        Value::Object(schema) => schema,
        _ => JsonObject::new(),
    };
    Tool::new(
        STRIPE_REQUEST,
        "Any Stripe API request (method, path, params), for operations that have no tool \
         of their own. Goes through agentgate's checks like every other tool; returns \
         Stripe's JSON response.",
        schema,
    )
}

/// The agentgate arguments of every tool: the connection (when the key may use several),
/// the connected account (keys limited to some), the idempotency key (POSTs).
fn add_controls(schema: &mut JsonObject, caller: &Caller, connections: &[String], post: bool) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    let mut add = |name: &str, value: Value| {
        properties.entry(name).or_insert(value);
    };
    if connections.len() > 1 {
        add(
            CONNECTION,
            json!({"type": "string", "enum": connections,
                   "description": "agentgate connection (Stripe account) to use"}),
        );
    }
    let accounts = &caller.key.scopes.stripe_accounts;
    if !accounts.is_empty() {
        add(
            STRIPE_ACCOUNT,
            json!({"type": "string", "enum": accounts,
                   "description": "Connected account to act as (Stripe-Account)"}),
        );
    }
    if post {
        add(
            IDEMPOTENCY_KEY,
            json!({"type": "string", "maxLength": 255,
                   "description": "Idempotency-Key: retries with the same key run once"}),
        );
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_keep_to_the_characters_every_client_accepts() {
        assert_eq!(
            tool_name("payment_intents.cancel"),
            "payment_intents_cancel"
        );
        assert_eq!(summary("payment_intents.cancel"), "Cancel payment intents");
        assert_eq!(summary("customers.create"), "Create customers");
    }
}
