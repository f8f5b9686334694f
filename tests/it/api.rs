//! The management API over real HTTP: every route with an admin key, the role and key
//! checks on every route, workspace isolation on every route that names a resource (and
//! on agents' event reads), bad
//! input, the request log's filters and cursor, the audit of management actions (without
//! secrets), and the OpenAPI document held against the routes that exist.

use agentgate::connections::set_stripe_connection;
use agentgate::connections::stripe::StripeSecret;
use agentgate::crypto::{MasterKey, Sealer};
use agentgate::ids::{EndpointId, WorkspaceId};
use agentgate::keys::{create_key, KeySpec};
use agentgate::policy::Role;
use agentgate::store::{NewEvent, RequestLogRecord};
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::TEST_SECRET;

/// A replacement Stripe key for the PUT tests (a canary of its own).
const NEW_SECRET: &str = "sk_test_51ApiReplacementSecret00000000000000abcd";

/// An admin key of `workspace`: its text and id.
async fn admin_key(app: &TestApp, workspace: &WorkspaceId) -> (String, String) {
    let spec = KeySpec {
        name: "admin".into(),
        role: Role::Admin,
        ..Default::default()
    };
    let created = create_key(
        app.store.as_ref(),
        workspace,
        spec,
        &crate::support::test_origin(),
    )
    .await
    .unwrap();
    (created.key.to_string(), created.record.id.to_string())
}

/// An agent key of `workspace`: its id.
async fn agent_key_id(app: &TestApp, workspace: &WorkspaceId) -> String {
    let created = create_key(
        app.store.as_ref(),
        workspace,
        KeySpec::agent("agent"),
        &crate::support::test_origin(),
    )
    .await
    .unwrap();
    created.record.id.to_string()
}

/// One management call: the status and the JSON body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Stores a connection in any workspace, as the CLI would.
async fn store_connection(app: &TestApp, workspace: &WorkspaceId, name: &str, secret: &str) {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&app.master_key)
        .unwrap();
    let sealer = Sealer::new(&MasterKey::from_bytes(bytes.try_into().unwrap()));
    let secret = StripeSecret::parse(secret).unwrap();
    set_stripe_connection(
        app.store.as_ref(),
        &sealer,
        workspace,
        name,
        &secret,
        &crate::support::test_origin(),
    )
    .await
    .unwrap();
}

/// What a route's path may name: `{name}` is a connection; `{id}` a key, a webhook
/// endpoint or a push destination, by the path's first segment.
struct RouteIds<'a> {
    connection: &'a str,
    key: &'a str,
    endpoint: &'a str,
    destination: &'a str,
}

impl RouteIds<'_> {
    /// The path with its placeholders filled.
    fn fill(&self, path: &str) -> String {
        let id = if path.starts_with("/api/v1/keys/") {
            self.key
        } else if path.starts_with("/api/v1/webhooks/") {
            self.endpoint
        } else {
            self.destination
        };
        path.replace("{name}", self.connection).replace("{id}", id)
    }

    /// Whether a filled path names one of these resources.
    fn named_in(&self, path: &str) -> bool {
        let named = |id: &str| path.split('/').any(|segment| segment == id);
        [self.connection, self.key, self.endpoint, self.destination]
            .into_iter()
            .any(named)
    }
}

/// Every management route in the OpenAPI document, its path filled from `ids`, with a
/// body the route accepts.
fn every_route(ids: &RouteIds<'_>) -> Vec<(Method, String, Option<Value>)> {
    let spec = agentgate::api::openapi();
    let mut routes = Vec::new();
    for (path, item) in &spec.paths.paths {
        let path = ids.fill(path);
        let operations = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
        ];
        for (method, operation) in operations {
            if operation.is_none() || path == agentgate::api::OPENAPI_PATH {
                continue;
            }
            let body = match (method.as_str(), path.as_str()) {
                ("PUT", _) => Some(json!({ "secret_key": NEW_SECRET })),
                ("POST", "/api/v1/keys") => Some(json!({ "name": "made" })),
                ("POST", "/api/v1/webhooks") => Some(json!({ "connection": "stripe" })),
                ("POST", p) if p.ends_with("/secrets") => {
                    Some(json!({ "secret": "whsec_everyRouteProbeSecret123" }))
                }
                ("POST", p) if p.ends_with("/destinations") => {
                    Some(json!({ "url": "http://127.0.0.1:9/", "allow_private": true }))
                }
                _ => None,
            };
            routes.push((method, path.clone(), body));
        }
    }
    routes
}

/// Waits until the log holds an entry that `matches`.
async fn logged_where(
    app: &TestApp,
    matches: impl Fn(&RequestLogRecord) -> bool,
) -> Vec<RequestLogRecord> {
    crate::support::eventually(
        std::time::Duration::from_secs(5),
        "an audit entry",
        || async {
            let records = app.logged(0).await;
            records.iter().any(&matches).then_some(records)
        },
    )
    .await
}

each_backend! {
    async fn every_route_answers_an_admin_key_of_the_workspace(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, _) = admin_key(&app, &app.workspace).await;
        let key = Some(admin.as_str());
        let (status, workspace) = call(&app, Method::GET, "/api/v1/workspace", key, None).await;
        assert_eq!((status, workspace["name"].as_str()), (200, Some("default")));
        assert_eq!(workspace["id"], app.workspace.as_str());
        let put = json!({ "secret_key": NEW_SECRET });
        let (status, connection) = call(&app, Method::PUT, "/api/v1/connections/second", key, Some(put)).await;
        assert_eq!(status, 200, "{connection}");
        assert_eq!((connection["mode"].as_str(), connection["key_type"].as_str()), (Some("test"), Some("secret")));
        assert_eq!(connection["last4"], "abcd");
        let (status, list) = call(&app, Method::GET, "/api/v1/connections", key, None).await;
        assert_eq!((status, list["data"].as_array().unwrap().len()), (200, 2));
        let (status, one) = call(&app, Method::GET, "/api/v1/connections/stripe", key, None).await;
        assert_eq!((status, one["name"].as_str()), (200, Some("stripe")));
        let body = json!({ "name": "ci", "scopes": { "allow": ["customers.*"], "max_amount": ["usd:5000"], "rate": "5:10" }, "expires_at": "2100-01-01T00:00:00Z" });
        let (status, created) = call(&app, Method::POST, "/api/v1/keys", key, Some(body)).await;
        assert_eq!(status, 200, "{created}");
        assert!(created["key"].as_str().unwrap().starts_with("agk_"));
        assert_eq!(created["scopes"]["max_amount"], json!(["usd:5000"]));
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, keys) = call(&app, Method::GET, "/api/v1/keys", key, None).await;
        assert_eq!((status, keys["data"].as_array().unwrap().len()), (200, 3));
        assert!(keys["data"].as_array().unwrap().iter().all(|k| k.get("key").is_none() && k.get("hash").is_none()));
        let rotate = json!({ "old_expires_at": "2099-01-01T00:00:00Z" });
        let (status, rotated) = call(&app, Method::POST, &format!("/api/v1/keys/{id}/rotate"), key, Some(rotate)).await;
        assert_eq!((status, rotated["name"].as_str()), (200, Some("ci")));
        assert_ne!(rotated["key"], created["key"]);
        let (status, revoked) = call(&app, Method::POST, &format!("/api/v1/keys/{id}/revoke"), key, None).await;
        assert_eq!((status, revoked["status"].as_str()), (200, Some("revoked")));
        let (status, removed) = call(&app, Method::DELETE, "/api/v1/connections/second", key, None).await;
        assert_eq!((status, removed["deleted"].as_bool()), (200, Some(true)));
        let (status, logs) = call(&app, Method::GET, "/api/v1/logs", key, None).await;
        assert_eq!((status, logs["object"].as_str()), (200, Some("list")));
        for body in [workspace, connection, list, one, keys, revoked, logs] {
            assert!(!body.to_string().contains(NEW_SECRET) && !body.to_string().contains(TEST_SECRET));
        }
        app.stop().await;
    }

    async fn agent_keys_get_403_and_missing_keys_401_on_every_route(backend) {
        let app = TestApp::spawn(backend).await;
        let target = agent_key_id(&app, &app.workspace).await;
        let ids = RouteIds { connection: "stripe", key: &target, endpoint: &target, destination: &target };
        for (method, path, body) in every_route(&ids) {
            let (status, error) = call(&app, method.clone(), &path, Some(&app.key), body.clone()).await;
            assert_eq!(status, 403, "{method} {path}: {error}");
            assert_eq!(error["error"]["code"], "agentgate_admin_required");
            let (status, error) = call(&app, method.clone(), &path, None, body).await;
            assert_eq!(status, 401, "{method} {path}: {error}");
            assert_eq!(error["error"]["code"], "api_key_missing");
        }
        let keys = app.store.list_keys(&app.workspace).await.unwrap();
        assert!(keys.iter().all(|k| k.revoked_at.is_none() && k.expires_at.is_none()));
        let connection = app.store.find_connection(&app.workspace, "stripe").await.unwrap().unwrap();
        assert_eq!(connection.secret_hint, format!("sk_test_…{}", &TEST_SECRET[TEST_SECRET.len() - 4..]));
        let refusals = logged_where(&app, |r| r.entry.reason.as_deref() == Some("agentgate_admin_required")).await;
        let refused = refusals.iter().filter(|r| r.entry.reason.as_deref() == Some("agentgate_admin_required")).count();
        assert!(refused >= 1);
        app.stop().await;
    }

    async fn workspace_a_gets_404_on_every_route_naming_workspace_b_and_changes_nothing(backend) {
        let options = TestOptions { api_allow_private_destinations: true, ..TestOptions::default() };
        let app = TestApp::spawn_with(backend, options).await;
        let (admin, _) = admin_key(&app, &app.workspace).await;
        let b = app.store.ensure_workspace("b").await.unwrap().id;
        store_connection(&app, &b, "b-only", TEST_SECRET).await;
        let b_key = agent_key_id(&app, &b).await;
        let (b_admin, _) = admin_key(&app, &b).await;
        let b_agent = create_key(app.store.as_ref(), &b, KeySpec::agent("b-reader"), &crate::support::test_origin()).await.unwrap().key.to_string();
        let create = json!({ "connection": "b-only" });
        let (status, endpoint) = call(&app, Method::POST, "/api/v1/webhooks", Some(&b_admin), Some(create)).await;
        assert_eq!(status, 200, "{endpoint}");
        let b_endpoint = endpoint["id"].as_str().unwrap().to_owned();
        // Stored before the destination exists, so nothing is pushed to it.
        let event = NewEvent {
            endpoint_id: EndpointId::from_stored(b_endpoint.clone()),
            workspace_id: b.clone(),
            event_id: "evt_b_only".into(),
            event_type: "customer.created".into(),
            received_at: agentgate::time::now_millis(),
            payload: br#"{"id":"evt_b_only","object":"event","type":"customer.created"}"#.to_vec(),
        };
        app.store.insert_events(&[event]).await.unwrap();
        let create = json!({ "url": "http://127.0.0.1:9/", "allow_private": true });
        let destinations = format!("/api/v1/webhooks/{b_endpoint}/destinations");
        let (status, destination) = call(&app, Method::POST, &destinations, Some(&b_admin), Some(create)).await;
        assert_eq!(status, 200, "{destination}");
        let b_destination = destination["id"].as_str().unwrap().to_owned();
        // B as B sees it, through B's own admin key (its keys through the store: using a
        // key moves its `last_used_at`).
        let b_state = || async {
            let mut seen = Vec::new();
            for path in ["/api/v1/connections".to_owned(), format!("/api/v1/webhooks/{b_endpoint}"), destinations.clone()] {
                seen.push(call(&app, Method::GET, &path, Some(&b_admin), None).await);
            }
            let keys = app.store.list_keys(&b).await.unwrap();
            let keys: Vec<_> = keys.into_iter().map(|k| (k.id, k.revoked_at, k.expires_at, k.scopes)).collect();
            (seen, keys)
        };
        let before = b_state().await;

        // Every route that names a resource, with B's: 404, as for one that does not exist.
        let ids = RouteIds { connection: "b-only", key: &b_key, endpoint: &b_endpoint, destination: &b_destination };
        let mut named = 0;
        for (method, path, body) in every_route(&ids) {
            // A PUT of B's connection name creates A's own connection (below).
            if !ids.named_in(&path) || method == Method::PUT {
                continue;
            }
            let (status, error) = call(&app, method.clone(), &path, Some(&admin), body).await;
            assert_eq!(status, 404, "{method} {path}: {error}");
            assert_eq!(error["error"]["code"], "resource_missing", "{method} {path}");
            named += 1;
        }
        assert!(named >= 12, "only {named} routes name a resource");
        for path in [format!("/v1/webhooks/{b_endpoint}/events"), format!("/v1/webhooks/{b_endpoint}/events/stream")] {
            let (status, error) = call(&app, Method::GET, &path, Some(&app.key), None).await;
            assert_eq!(status, 404, "{path}: {error}");
        }
        let (status, events) = call(&app, Method::GET, &format!("/v1/webhooks/{b_endpoint}/events"), Some(&b_agent), None).await;
        assert_eq!((status, events["data"][0]["id"].as_str()), (200, Some("evt_b_only")), "B's own agent reads it");

        // Lists never show B's rows.
        for path in ["/api/v1/connections", "/api/v1/keys", "/api/v1/webhooks", "/api/v1/usage"] {
            let (status, list) = call(&app, Method::GET, path, Some(&admin), None).await;
            assert_eq!(status, 200, "{path}: {list}");
            let text = list.to_string();
            for b_id in ["b-only", &b_key, &b_endpoint, &b_destination] {
                assert!(!text.contains(b_id), "{path} shows {b_id}: {text}");
            }
        }
        let (_, logs) = call(&app, Method::GET, &format!("/api/v1/logs?key={b_key}"), Some(&admin), None).await;
        assert_eq!(logs["data"], json!([]));
        let (_, workspace) = call(&app, Method::GET, "/api/v1/workspace", Some(&admin), None).await;
        assert_eq!(workspace["name"], "default");
        // A PUT of B's connection name creates A's own connection of that name.
        let put = json!({ "secret_key": NEW_SECRET });
        let (status, _) = call(&app, Method::PUT, "/api/v1/connections/b-only", Some(&admin), Some(put)).await;
        assert_eq!(status, 200);
        assert_eq!(b_state().await, before, "B is unchanged");
        let b_connection = app.store.find_connection(&b, "b-only").await.unwrap().unwrap();
        assert!(b_connection.secret_hint.ends_with(&TEST_SECRET[TEST_SECRET.len() - 4..]));
        assert!(app.double.received().is_empty());
        app.stop().await;
    }

    async fn an_admin_key_may_add_a_private_destination_only_when_the_operator_allows_it(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, _) = admin_key(&app, &app.workspace).await;
        let (_, endpoint) = call(&app, Method::POST, "/api/v1/webhooks", Some(&admin), Some(json!({ "connection": "stripe" }))).await;
        let endpoint = endpoint["id"].as_str().unwrap().to_owned();
        let destinations = format!("/api/v1/webhooks/{endpoint}/destinations");
        let private = json!({ "url": "http://127.0.0.1:9/", "allow_private": true });
        let (status, error) = call(&app, Method::POST, &destinations, Some(&admin), Some(private.clone())).await;
        assert_eq!((status, error["error"]["param"].as_str()), (400, Some("allow_private")), "{error}");
        assert!(error["error"]["message"].as_str().unwrap().contains("--allow-private"), "{error}");
        let (_, list) = call(&app, Method::GET, &destinations, Some(&admin), None).await;
        assert_eq!(list["data"], json!([]), "nothing was stored");
        // The operator's CLI may.
        let added = crate::support::cli::run(&app.db.url, &app.master_key, &["destinations", "add", &endpoint, "--url", "http://127.0.0.1:9/", "--allow-private"], "");
        assert!(added.status.success(), "{}", crate::support::cli::stderr(&added));
        app.stop().await;

        let options = TestOptions { api_allow_private_destinations: true, ..TestOptions::default() };
        let app = TestApp::spawn_with(backend, options).await;
        let (admin, _) = admin_key(&app, &app.workspace).await;
        let (_, endpoint) = call(&app, Method::POST, "/api/v1/webhooks", Some(&admin), Some(json!({ "connection": "stripe" }))).await;
        let destinations = format!("/api/v1/webhooks/{}/destinations", endpoint["id"].as_str().unwrap());
        let (status, created) = call(&app, Method::POST, &destinations, Some(&admin), Some(private)).await;
        assert_eq!((status, created["allow_private"].as_bool()), (200, Some(true)), "{created}");
        app.stop().await;
    }

    async fn a_connection_key_set_through_the_api_is_injected_on_the_next_request(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, _) = admin_key(&app, &app.workspace).await;
        assert_eq!(app.get("customers").await.status(), 200);
        let put = json!({ "secret_key": NEW_SECRET });
        let (status, _) = call(&app, Method::PUT, "/api/v1/connections/stripe", Some(&admin), Some(put)).await;
        assert_eq!(status, 200);
        assert_eq!(app.get("customers").await.status(), 200);
        let last = app.double.received().pop().unwrap();
        assert_eq!(last.headers["authorization"], format!("Bearer {NEW_SECRET}").as_str());
        let (status, _) = call(&app, Method::DELETE, "/api/v1/connections/stripe", Some(&admin), None).await;
        assert_eq!(status, 200);
        assert_eq!(app.get("customers").await.status(), 404);
        app.stop().await;
    }

    async fn bad_input_gets_400_in_stripe_shape_and_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, admin_id) = admin_key(&app, &app.workspace).await;
        // Everything but `last_used_at`, which the audit of each refusal moves.
        let keys = || async {
            let records = app.store.list_keys(&app.workspace).await.unwrap();
            records.into_iter().map(|k| (k.id, k.revoked_at, k.expires_at, k.scopes)).collect::<Vec<_>>()
        };
        let keys_before = keys().await;
        let cases: Vec<(Method, String, &str, Option<&str>)> = vec![
            (Method::POST, "/api/v1/keys".into(), "{not json", None),
            (Method::POST, "/api/v1/keys".into(), r#"{"name":"x","colour":"red"}"#, Some("colour")),
            (Method::POST, "/api/v1/keys".into(), r#"{"role":"agent"}"#, Some("name")),
            (Method::POST, "/api/v1/keys".into(), r#"{"name":"x","role":"root"}"#, None),
            (Method::POST, "/api/v1/keys".into(), r#"{"name":"x","scopes":{"max_amount":["5000"]}}"#, Some("scopes[max_amount]")),
            (Method::POST, "/api/v1/keys".into(), r#"{"name":"x","scopes":{"allow":["nope.*"]}}"#, Some("scopes[allow]")),
            (Method::POST, "/api/v1/keys".into(), r#"{"name":"x","expires_at":"tomorrow"}"#, Some("expires_at")),
            (Method::POST, "/api/v1/keys".into(), r#"{"name":"x","expires_at":"2001-01-01T00:00:00Z"}"#, Some("expires_at")),
            (Method::POST, "/api/v1/keys".into(), r#"{"name":"  "}"#, Some("name")),
            (Method::POST, format!("/api/v1/keys/{admin_id}/rotate"), r#"{"old_expires_at":5}"#, None),
            (Method::PUT, "/api/v1/connections/stripe".into(), r#"{"secret_key":"pk_test_123456"}"#, Some("secret_key")),
            (Method::PUT, "/api/v1/connections/stripe".into(), "{}", Some("secret_key")),
            (Method::PUT, "/api/v1/connections/bad.name".into(), r#"{"secret_key":"sk_test_123456"}"#, Some("name")),
        ];
        for (method, path, body, param) in cases {
            let response = app.client.request(method.clone(), app.url(&path)).bearer_auth(&admin)
                .header("Content-Type", "application/json").body(body).send().await.unwrap();
            assert_eq!(response.status(), 400, "{method} {path} {body}");
            assert_eq!(response.headers()["agentgate-error"], "caller");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
            assert_eq!(error["error"]["param"].as_str(), param, "{body}: {error}");
        }
        for query in ["limit=0", "limit=101", "status=abc", "colour=red", "since=yesterday"] {
            let (status, error) = call(&app, Method::GET, &format!("/api/v1/logs?{query}"), Some(&admin), None).await;
            assert_eq!(status, 400, "{query}: {error}");
        }
        let (status, error) = call(&app, Method::PATCH, "/api/v1/keys", Some(&admin), None).await;
        assert_eq!((status, error["error"]["code"].as_str()), (405, Some("method_not_allowed")));
        assert_eq!(keys().await, keys_before);
        let connection = app.store.find_connection(&app.workspace, "stripe").await.unwrap().unwrap();
        assert!(connection.secret_hint.starts_with("sk_test_") && app.store.find_connection(&app.workspace, "bad.name").await.unwrap().is_none());
        app.stop().await;
    }

    async fn management_actions_and_refusals_are_audited_without_secrets(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, admin_id) = admin_key(&app, &app.workspace).await;
        let put = json!({ "secret_key": NEW_SECRET });
        call(&app, Method::PUT, "/api/v1/connections/stripe", Some(&admin), Some(put)).await;
        let (_, created) = call(&app, Method::POST, "/api/v1/keys", Some(&admin), Some(json!({ "name": "audited" }))).await;
        let new_key = created["key"].as_str().unwrap().to_owned();
        let refused = json!({ "secret_key": "sk_test_bad!", "extra": TEST_SECRET });
        call(&app, Method::PUT, "/api/v1/connections/stripe", Some(&admin), Some(refused)).await;
        call(&app, Method::GET, "/api/v1/connections/missing", Some(&admin), None).await;
        let records = logged_where(&app, |r| r.entry.status == 404).await;
        let entry = |operation: &str, status: u16| {
            records.iter().find(|r| r.entry.operation.as_deref() == Some(operation) && r.entry.status == status)
                .unwrap_or_else(|| panic!("no {operation} {status} entry in {records:#?}")).entry.clone()
        };
        let set = entry("api.connections.set", 200);
        assert_eq!((&*set.outcome, set.connection.as_str(), set.key_id.as_str()), ("applied", "stripe", admin_id.as_str()));
        assert_eq!(set.path, "/api/v1/connections/stripe");
        assert_eq!(entry("api.keys.create", 200).outcome, "applied");
        let bad = entry("api.connections.set", 400);
        assert_eq!(bad.reason.as_deref(), Some("parameter_unknown extra"));
        assert_eq!(entry("api.connections.retrieve", 404).reason.as_deref(), Some("resource_missing connection"));
        let everything = format!("{records:?}");
        let (_, logs) = call(&app, Method::GET, "/api/v1/logs?limit=100", Some(&admin), None).await;
        for text in [everything, logs.to_string()] {
            for secret in [TEST_SECRET, NEW_SECRET, new_key.as_str(), admin.as_str()] {
                assert!(!text.contains(secret), "a secret reached the log");
            }
        }
        app.stop().await;
    }

    async fn logs_filter_by_key_status_operation_and_time_and_page_newest_first(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, admin_id) = admin_key(&app, &app.workspace).await;
        for _ in 0..3 {
            app.get("customers").await;
        }
        app.post_form("customers", "name=x").await;
        assert_eq!(app.post_form("customers", "colour=red").await.status(), 400);
        let records = app.logged(5).await;
        let agent_id = records[0].entry.key_id.to_string();
        let get = |query: String| {
            let admin = admin.clone();
            let app = &app;
            async move { call(app, Method::GET, &format!("/api/v1/logs?{query}"), Some(&admin), None).await.1 }
        };
        let all = get("limit=100".into()).await;
        let ids: Vec<i64> = all["data"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
        let page1 = get("limit=2".into()).await;
        assert_eq!(page1["has_more"], true);
        let last = page1["data"][1]["id"].as_i64().unwrap();
        let page2 = get(format!("limit=2&starting_after={last}")).await;
        assert_eq!(page2["data"][0]["id"].as_i64().unwrap(), ids[2]);
        let tail = get(format!("limit=100&starting_after={}", ids[ids.len() - 2])).await;
        assert_eq!((tail["data"].as_array().unwrap().len(), &tail["has_more"]), (1, &json!(false)));
        let created = get("operation=customers.create".into()).await;
        assert_eq!(created["data"].as_array().unwrap().len(), 2);
        assert_eq!(created["data"][0]["operation"], "customers.create");
        let refused = get("status=400".into()).await;
        assert!(refused["data"].as_array().unwrap().iter().all(|e| e["status"] == 400 && e["reason"].is_string()));
        assert_eq!(refused["data"].as_array().unwrap().len(), 1);
        let by_agent = get(format!("key={agent_id}&limit=100")).await;
        assert_eq!(by_agent["data"].as_array().unwrap().len(), 5);
        assert_eq!(get(format!("key={admin_id}")).await["data"], json!([]));
        let first_at = records[0].entry.created_at;
        let future = get(format!("since={}", first_at + 3_600_000)).await;
        assert_eq!(future["data"], json!([]));
        let window = get(format!("since={first_at}&until=2100-01-01T00:00:00Z&limit=100")).await;
        assert_eq!(window["data"].as_array().unwrap().len(), 5);
        let before = get(format!("until={first_at}")).await;
        let before = before["data"].as_array().unwrap();
        assert!(before.iter().all(|e| e["path"] == "test set-up"), "only the set-up came first: {before:?}");
        app.stop().await;
    }

    async fn the_openapi_document_describes_exactly_the_routes_that_answer(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, _) = admin_key(&app, &app.workspace).await;
        let response = app.client.get(app.url("/api/v1/openapi.json")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let served: Value = response.json().await.unwrap();
        assert_eq!(served["openapi"], "3.1.0");
        assert_eq!(served, serde_json::to_value(agentgate::api::openapi()).unwrap());
        let all = [Method::GET, Method::PUT, Method::POST, Method::DELETE, Method::PATCH];
        for (path, item) in served["paths"].as_object().unwrap() {
            for method in &all {
                let documented = item.get(method.as_str().to_ascii_lowercase()).is_some();
                let target = agent_key_id(&app, &app.workspace).await;
                let concrete = path.replace("{name}", "stripe").replace("{id}", &target);
                let body = match (method.as_str(), path.as_str()) {
                    ("PUT", _) => Some(json!({ "secret_key": TEST_SECRET })),
                    ("POST", "/api/v1/keys") => Some(json!({ "name": "probe" })),
                    _ => None,
                };
                let (status, answer) = call(&app, method.clone(), &concrete, Some(&admin), body).await;
                if documented {
                    // A 404 for the probe's made-up id (`resource_missing`) still proves the route.
                    let unrouted = status == 404 && answer["error"]["code"] != "resource_missing";
                    assert!(!unrouted && status != 405, "documented {method} {path} answered {status}: {answer}");
                } else {
                    assert_eq!(status, 405, "undocumented {method} {path} answered {status}");
                }
            }
        }
        let (status, _) = call(&app, Method::GET, "/api/v1/nothing-here", Some(&admin), None).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}

each_backend! {
    async fn guardrail_usage_shows_each_keys_day_totals(backend) {
        let app = TestApp::spawn(backend).await;
        let (admin, _) = admin_key(&app, &app.workspace).await;
        let spec = KeySpec {
            name: "payer".into(),
            scopes: agentgate::policy::Scopes { daily_limit: vec!["usd:10000".parse().unwrap()], ..Default::default() },
            ..Default::default()
        };
        let payer = create_key(app.store.as_ref(), &app.workspace, spec, &crate::support::test_origin()).await.unwrap();
        let response = app
            .client
            .post(app.url("/v1/connections/stripe/payment_intents"))
            .bearer_auth(payer.key.as_str())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("amount=2500&currency=usd")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let (status, usage) = call(&app, Method::GET, "/api/v1/usage", Some(&admin), None).await;
        assert_eq!(status, 200, "{usage}");
        let row = usage["data"].as_array().unwrap().iter().find(|u| u["key_id"] == payer.record.id.as_str()).unwrap();
        assert_eq!((row["currency"].as_str(), row["total"].as_i64(), row["limit"].as_i64()), (Some("usd"), Some(2500), Some(10000)));
        let (status, other_day) = call(&app, Method::GET, "/api/v1/usage?day=2020-01-01", Some(&admin), None).await;
        assert_eq!(status, 200);
        assert!(other_day["data"].as_array().unwrap().iter().all(|u| u["total"] == 0));
        let (status, error) = call(&app, Method::GET, "/api/v1/usage?day=yesterday", Some(&admin), None).await;
        assert_eq!((status, error["error"]["param"].as_str()), (400, Some("day")));
        app.stop().await;
    }
}
