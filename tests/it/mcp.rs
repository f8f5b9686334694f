//! MCP with a real client (the official `rmcp` SDK), over streamable HTTP to `/mcp` and over
//! stdio through the `agentgate mcp` binary relaying to it: the tool list follows the key's
//! scopes, a tool call reaches the Stripe double as the form request an SDK would send and
//! is logged as coming over MCP, a guardrail refusal is a tool error that never reaches
//! Stripe, and `wait_for_event` returns an event ingested while it waits.

use std::collections::BTreeSet;
use std::time::Duration;

use agentgate::policy::Scopes;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

use crate::each_backend;
use crate::support::app::TestApp;
use crate::support::cli::binary;
use crate::support::eventually;
use crate::support::stripe_double::Reply;

/// How the test client reaches agentgate.
#[derive(Clone, Copy, Debug)]
enum Transport {
    /// Streamable HTTP to `/mcp`.
    Http,
    /// stdio to `agentgate mcp --url .../mcp`.
    Stdio,
}

const BOTH: [Transport; 2] = [Transport::Http, Transport::Stdio];

type Client = RunningService<RoleClient, ()>;

/// An initialized MCP session for `key`.
async fn connect(app: &TestApp, key: &str, transport: Transport) -> Client {
    let url = app.url("/mcp");
    match transport {
        Transport::Http => {
            // The SDK's HTTP client takes the process's rustls provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(key);
            ().serve(StreamableHttpClientTransport::from_config(config))
                .await
                .expect("an MCP session over HTTP")
        }
        Transport::Stdio => {
            let mut command = tokio::process::Command::from(binary());
            command
                .args(["mcp", "--url", &url])
                .env("AGENTGATE_KEY", key)
                .kill_on_drop(true);
            ().serve(TokioChildProcess::new(command).expect("agentgate mcp starts"))
                .await
                .expect("an MCP session over stdio")
        }
    }
}

/// An agent key with these scopes.
async fn key_with(app: &TestApp, scopes: Scopes) -> String {
    app.create_key_with("mcp", scopes).await
}

async fn tool_names(client: &Client) -> BTreeSet<String> {
    let tools = client.list_all_tools().await.expect("tools/list");
    for tool in &tools {
        assert!(
            tool.description.as_deref().is_some_and(|d| d.len() > 20),
            "{} has a description",
            tool.name
        );
        assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
    }
    tools
        .into_iter()
        .map(|tool| tool.name.into_owned())
        .collect()
}

async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments are an object");
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .expect("tools/call answers")
}

/// The text of every content block, joined.
fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

each_backend! {
    async fn tool_lists_follow_the_keys_scopes(backend) {
        let app = TestApp::spawn(backend).await;
        let narrow = key_with(&app, Scopes {
            allow: vec!["customers.create".into(), "customers.retrieve".into()],
            ..Scopes::default()
        }).await;
        for transport in BOTH {
            let broad_client = connect(&app, &app.key, transport).await;
            let broad = tool_names(&broad_client).await;
            let narrow_client = connect(&app, &narrow, transport).await;
            let listed = narrow_client.list_all_tools().await.unwrap();
            let names = tool_names(&narrow_client).await;

            let expected: BTreeSet<String> =
                ["customers_create", "customers_retrieve"].map(String::from).into();
            assert_eq!(names, expected, "{transport:?}: only the allowed operations");
            assert!(names.is_subset(&broad), "{transport:?}");
            assert!(broad.len() > 20 && broad.contains("stripe_request"), "{transport:?}: {broad:?}");
            assert!(!broad.contains("wait_for_event"), "no endpoint, no event tools");
            let create = listed.iter().find(|t| t.name == "customers_create").unwrap();
            assert!(create.input_schema["properties"]["email"].is_object(), "{:?}", create.input_schema);
            let retrieve = listed.iter().find(|t| t.name == "customers_retrieve").unwrap();
            assert_eq!(retrieve.input_schema["required"], json!(["customer"]));
            broad_client.cancel().await.unwrap();
            narrow_client.cancel().await.unwrap();
        }
        app.stop().await;
    }

    async fn a_tool_call_reaches_stripe_as_a_form_request_logged_as_mcp(backend) {
        let app = TestApp::spawn(backend).await;
        app.double.respond(Reply::stripe_ok(r#"{"id":"cus_mcp1","object":"customer"}"#));
        for (n, transport) in BOTH.into_iter().enumerate() {
            let client = connect(&app, &app.key, transport).await;
            let result = call(&client, "customers_create", json!({
                "email": "ada@example.com",
                "metadata": {"plan": "pro"},
                "idempotency_key": format!("mcp-{n}"),
            })).await;
            assert_ne!(result.is_error, Some(true), "{transport:?}: {}", text(&result));
            assert_eq!(result.structured_content.as_ref().unwrap()["id"], "cus_mcp1");
            client.cancel().await.unwrap();

            let received = app.double.received();
            let sent = &received[n];
            assert_eq!(sent.method, "POST");
            assert_eq!(sent.target, "/v1/customers");
            let form: BTreeSet<(String, String)> = form_urlencoded::parse(&sent.body).into_owned().collect();
            let expected: BTreeSet<(String, String)> = [
                ("email", "ada@example.com"),
                ("metadata[plan]", "pro"),
            ].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
            assert_eq!(form, expected, "{transport:?}");
            assert_eq!(sent.headers["idempotency-key"], format!("mcp-{n}").as_str());
            assert_eq!(
                sent.headers["authorization"],
                format!("Bearer {}", crate::support::TEST_SECRET).as_str()
            );
        }
        let logged = app.logged(2).await;
        for record in &logged {
            assert_eq!(record.entry.via, "mcp");
            assert_eq!(record.entry.operation.as_deref(), Some("customers.create"));
            assert_eq!(record.entry.outcome, "forwarded");
        }
        app.stop().await;
    }

    async fn a_guardrail_refusal_is_a_tool_error_that_never_reaches_stripe(backend) {
        let app = TestApp::spawn(backend).await;
        let guarded = key_with(&app, Scopes {
            max_amount: vec!["usd:5000".parse().unwrap()],
            ..Scopes::default()
        }).await;
        for transport in BOTH {
            let client = connect(&app, &guarded, transport).await;
            let result = call(&client, "payment_intents_create", json!({
                "amount": 9000,
                "currency": "usd",
            })).await;
            assert_eq!(result.is_error, Some(true), "{transport:?}");
            let error = &result.structured_content.as_ref().unwrap()["error"];
            assert_eq!(error["code"], "agentgate_limit_exceeded", "{error}");
            let message = error["message"].as_str().unwrap();
            assert!(text(&result).contains(message), "the text carries the message");
            assert!(text(&result).contains("agentgate_limit_exceeded"), "and the code");
            client.cancel().await.unwrap();
        }
        assert!(app.double.received().is_empty(), "a refused call never reaches Stripe");
        let logged = app.logged(2).await;
        assert!(logged.iter().all(|r| r.entry.via == "mcp" && r.entry.outcome == "caller"));
        app.stop().await;
    }

    async fn wait_for_event_returns_an_event_ingested_while_it_waits(backend) {
        let app = TestApp::spawn(backend).await;
        let signed = SignedEndpoint::create(&app).await;
        signed.ingest(&app, "evt_before", "customer.created").await;
        for transport in BOTH {
            let client = connect(&app, &app.key, transport).await;
            let names = tool_names(&client).await;
            assert!(names.contains("wait_for_event") && names.contains("list_events"));
            let waiting = {
                let peer = client.peer().clone();
                tokio::spawn(async move {
                    let arguments = json!({"type": "invoice.paid", "timeout_seconds": 60});
                    let Value::Object(arguments) = arguments else { unreachable!() };
                    peer.call_tool(CallToolRequestParams::new("wait_for_event").with_arguments(arguments)).await
                })
            };
            // Events arrive until the wait returns one: whenever it began, it sees one
            // ingested after it started, and none from before.
            let mut sent = Vec::new();
            eventually(Duration::from_secs(20), "wait_for_event to return", || {
                let id = format!("evt_{transport:?}_{}", sent.len());
                sent.push(id.clone());
                let (app, signed, waiting) = (&app, &signed, &waiting);
                async move {
                    signed.ingest(app, "evt_other_type", "customer.updated").await;
                    signed.ingest(app, &id, "invoice.paid").await;
                    waiting.is_finished().then_some(())
                }
            }).await;
            let result = waiting.await.unwrap().expect("tools/call answers");
            assert_ne!(result.is_error, Some(true), "{}", text(&result));
            let item = result.structured_content.clone().unwrap();
            assert_eq!(item["type"], "invoice.paid");
            assert!(sent.contains(&item["id"].as_str().unwrap().to_owned()), "{item}");
            assert_eq!(item["event"]["id"], item["id"], "the event as Stripe sent it");

            let page = call(&client, "list_events", json!({"type": "invoice.paid", "limit": 100})).await;
            let data = page.structured_content.unwrap()["data"].as_array().unwrap().len();
            assert!(data >= 1);
            client.cancel().await.unwrap();
        }
        // Each tool call is an event read of the key, over MCP, in the request log.
        let key_id = app.key_id().await;
        let reads = eventually(Duration::from_secs(5), "the event reads logged", || async {
            let logged = app.logged(1).await;
            let reads: Vec<_> = logged.into_iter().map(|r| r.entry).filter(|e| e.via == "mcp").collect();
            (reads.len() >= 4).then_some(reads)
        }).await;
        let mut operations: Vec<&str> = reads.iter().map(|e| e.operation.as_deref().unwrap()).collect();
        operations.sort();
        assert_eq!(operations, ["webhooks.events.list", "webhooks.events.list", "webhooks.events.wait", "webhooks.events.wait"]);
        for read in &reads {
            assert_eq!((read.key_id.as_str(), read.status, &*read.outcome), (key_id.as_str(), 200, "read"));
            assert_eq!(read.connection, "stripe");
            assert!(read.path.starts_with(&format!("/v1/webhooks/{}/events", signed.id)), "{}", read.path);
        }
        app.stop().await;
    }
}

/// A webhook endpoint with a signing secret, fed through the real ingest route.
struct SignedEndpoint {
    id: agentgate::ids::EndpointId,
    secret: &'static str,
}

impl SignedEndpoint {
    async fn create(app: &TestApp) -> Self {
        let secret = "whsec_mcpTestSecret0123456789";
        let endpoint = app.signed_endpoint(&[], secret).await;
        Self {
            id: endpoint.id,
            secret,
        }
    }

    /// Posts a signed event to ingest, as Stripe does, and checks it was accepted.
    async fn ingest(&self, app: &TestApp, id: &str, event_type: &str) {
        let payload = json!({"id": id, "object": "event", "type": event_type}).to_string();
        let now = agentgate::time::now_millis() / 1000;
        let signature =
            agentgate::webhooks::signature::sign(self.secret.as_bytes(), now, payload.as_bytes());
        let response = app
            .client
            .post(app.url(&format!("/webhooks/ingest/{}", self.id)))
            .header("Stripe-Signature", format!("t={now},v1={signature}"))
            .header("Content-Type", "application/json")
            .body(payload)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "ingest accepts {id}");
    }
}

#[tokio::test]
async fn requests_without_a_valid_key_are_refused() {
    let app = TestApp::spawn(crate::support::backend::Backend::Sqlite).await;
    let response = app
        .client
        .post(app.url("/mcp"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let bogus = "agk_live_notARealKey0000000000000000";
    let output = tokio::process::Command::from(binary())
        .args(["mcp", "--url", &app.url("/mcp")])
        .env("AGENTGATE_KEY", bogus)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("agentgate mcp runs");
    assert!(
        !output.status.success(),
        "the relay cannot start without a valid key"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains(bogus),
        "the key never appears in errors: {stderr}"
    );
    app.stop().await;
}
