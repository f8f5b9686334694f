//! Roles, scopes and workspaces on the data plane: a request outside a key's scopes gets
//! 403 naming the missing permission, a key never reaches another workspace's connection,
//! expired and rotated keys stop working, and nothing refused reaches Stripe.

use agentgate::keys::{create_key, rotate_key, KeySpec};
use agentgate::policy::{Role, Scopes};
use serde_json::Value;

use crate::each_backend;
use crate::support::app::TestApp;
use crate::support::{cli, TEST_SECRET};

/// Scopes, method, path, extra header, and the permission expected to refuse (or `None`:
/// forwarded).
type ScopeCase = (
    Scopes,
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
    Option<&'static str>,
);

async fn key_with(app: &TestApp, role: Role, scopes: Scopes) -> String {
    let spec = KeySpec {
        name: "scoped".into(),
        role,
        scopes,
        expires_at: None,
    };
    app.create_key_from(spec).await
}

/// Sends `method path` (under the `stripe` connection unless `path` names another) with
/// `key` and optional extra header.
async fn call(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    header: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(
            method.parse().unwrap(),
            app.url(&format!("/v1/connections/{path}")),
        )
        .bearer_auth(key);
    if method == "POST" {
        request = request
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("amount=100&currency=usd");
    }
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

/// The permission a 403 names, after checking Stripe's shape.
async fn denied(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["agentgate-error"], "caller");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "agentgate_scope_denied");
    let message = body["error"]["message"].as_str().unwrap();
    message
        .rsplit("Missing permission: ")
        .next()
        .unwrap()
        .trim_end_matches('.')
        .to_owned()
}

each_backend! {
    async fn each_scope_refuses_what_it_does_not_allow(backend) {
        let app = TestApp::spawn(backend).await;
        app.store_connection("live", "sk_live_51LiveKeyForScopeTests000000000000").await;
        let cases: Vec<ScopeCase> = vec![
            // (scopes, method, path, header, expected refusal or None = forwarded)
            (Scopes { allow: vec!["customers.*".into()], ..Scopes::default() }, "GET", "stripe/customers", None, None),
            (Scopes { allow: vec!["customers.*".into()], ..Scopes::default() }, "POST", "stripe/payment_intents", None, Some("operation")),
            (Scopes { allow: vec!["*.list".into()], ..Scopes::default() }, "GET", "stripe/balance", None, Some("raw")),
            (Scopes { allow: vec!["*.list".into()], raw: true, ..Scopes::default() }, "GET", "stripe/balance", None, None),
            (Scopes { read_only: true, ..Scopes::default() }, "POST", "stripe/payment_intents", None, Some("read_only")),
            (Scopes { read_only: true, ..Scopes::default() }, "GET", "stripe/payment_intents", None, None),
            (Scopes { test_only: true, ..Scopes::default() }, "GET", "live/customers", None, Some("test_only")),
            (Scopes { test_only: true, ..Scopes::default() }, "GET", "stripe/customers", None, None),
            (Scopes { connections: vec!["stripe".into()], ..Scopes::default() }, "GET", "live/customers", None, Some("connection")),
            (Scopes { stripe_accounts: vec!["acct_1".into()], ..Scopes::default() }, "GET", "stripe/customers", None, Some("stripe_account")),
            (Scopes { stripe_accounts: vec!["acct_1".into()], ..Scopes::default() }, "GET", "stripe/customers", Some(("Stripe-Account", "acct_2")), Some("stripe_account")),
            (Scopes { stripe_accounts: vec!["acct_1".into()], ..Scopes::default() }, "GET", "stripe/customers", Some(("Stripe-Account", "acct_1")), None),
            (Scopes { ips: vec!["10.0.0.0/8".parse().unwrap()], ..Scopes::default() }, "GET", "stripe/customers", None, Some("ip")),
            (Scopes { ips: vec!["127.0.0.0/8".parse().unwrap()], ..Scopes::default() }, "GET", "stripe/customers", None, None),
        ];
        let mut forwarded = 0;
        for (scopes, method, path, header, expected) in cases {
            let what = format!("{} {method} {path} {header:?}", scopes.summary());
            let key = key_with(&app, Role::Agent, scopes).await;
            let response = call(&app, &key, method, path, header).await;
            match expected {
                None => {
                    assert_eq!(response.status(), 200, "{what}");
                    forwarded += 1;
                }
                Some(permission) => assert_eq!(denied(response).await, permission, "{what}"),
            }
            assert_eq!(app.double.received().len(), forwarded, "{what}: refused requests never reach Stripe");
        }
        let logged = app.logged(14).await;
        let reasons: Vec<_> = logged.iter().filter_map(|r| r.entry.reason.clone()).collect();
        assert!(reasons.contains(&"agentgate_scope_denied operation".to_owned()), "{reasons:?}");
        assert!(logged.iter().any(|r| r.entry.operation.as_deref() == Some("payment_intents.create")));
        app.stop().await;
    }

    async fn an_admin_key_calls_no_connection(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = key_with(&app, Role::Admin, Scopes::default()).await;
        assert_eq!(denied(call(&app, &admin, "GET", "stripe/customers", None).await).await, "role");
        assert!(app.double.received().is_empty());
        app.stop().await;
    }

    async fn a_key_never_reaches_another_workspaces_connection(backend) {
        let app = TestApp::spawn(backend).await;
        let other = app.store.ensure_workspace("b").await.unwrap();
        let spec = KeySpec::agent("tenant b");
        let b_key = create_key(app.store.as_ref(), &other.id, spec, &crate::support::test_origin()).await.unwrap().key.to_string();
        // Workspace b has no connections: the default workspace's `stripe` does not exist for it.
        for (method, path) in [("GET", "stripe/customers"), ("POST", "stripe/payment_intents"), ("GET", "stripe/v1/balance")] {
            let response = call(&app, &b_key, method, path, None).await;
            assert_eq!(response.status(), 404, "{method} {path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "resource_missing");
        }
        let catalog = app.client.get(app.url("/v1/catalog/stripe")).bearer_auth(&b_key).send().await.unwrap();
        assert_eq!(catalog.status(), 404);
        assert!(app.double.received().is_empty(), "nothing of workspace b reaches the default workspace's Stripe key");
        app.stop().await;
    }

    async fn expired_and_rotated_keys_stop_working(backend) {
        let app = TestApp::spawn(backend).await;
        let spec = KeySpec { expires_at: Some(agentgate::time::now_millis() - 1), ..KeySpec::agent("expired") };
        let expired = create_key(app.store.as_ref(), &app.workspace, spec, &crate::support::test_origin()).await.unwrap().key.to_string();
        let response = call(&app, &expired, "GET", "stripe/customers", None).await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "api_key_expired");
        let logged = app.logged(1).await;
        assert_eq!(logged[0].entry.reason.as_deref(), Some("api_key_expired"), "a known key's refusal is audited");
        assert_eq!(logged[0].entry.status, 401);

        let scopes = Scopes { read_only: true, ..Scopes::default() };
        let spec = KeySpec { scopes: scopes.clone(), ..KeySpec::agent("rotating") };
        let old = create_key(app.store.as_ref(), &app.workspace, spec, &crate::support::test_origin()).await.unwrap();
        let old_key = old.key.to_string();
        assert_eq!(call(&app, &old_key, "GET", "stripe/customers", None).await.status(), 200);
        let rotated = rotate_key(app.store.as_ref(), &app.workspace, &old.record.id, agentgate::time::now_millis(), &crate::support::test_origin())
            .await
            .unwrap();
        assert_eq!(rotated.record.scopes, scopes, "the new key keeps the scopes");
        let new_key = rotated.key.to_string();
        crate::support::eventually(std::time::Duration::from_secs(5), "old key expired", || async {
            (call(&app, &old_key, "GET", "stripe/customers", None).await.status() == 401).then_some(())
        })
        .await;
        assert_eq!(call(&app, &new_key, "GET", "stripe/customers", None).await.status(), 200);
        assert_eq!(denied(call(&app, &new_key, "POST", "stripe/payment_intents", None).await).await, "read_only");
        app.stop().await;
    }

    async fn scopes_are_set_and_shown_by_the_cli_in_a_workspace(backend) {
        let app = TestApp::spawn(backend).await;
        let run = |args: &[&str]| cli::run(&app.db.url, &app.master_key, args, "");
        let created = run(&["workspaces", "create", "acme"]);
        assert!(created.status.success(), "{}", cli::stderr(&created));
        assert!(!run(&["workspaces", "create", "acme"]).status.success(), "a name is created once");
        assert!(!run(&["--workspace", "nope", "keys", "list"]).status.success(), "unknown workspace refused");
        let made = run(&[
            "--workspace", "acme", "keys", "create", "--name", "bot", "--allow", "customers.*", "--allow", "refunds.create",
            "--read-only", "--test-only", "--max-amount", "usd:5000", "--rate", "5:10", "--idempotency", "derive", "--json",
        ]);
        assert!(made.status.success(), "{}", cli::stderr(&made));
        let key: Value = serde_json::from_slice(&made.stdout).unwrap();
        assert_eq!(key["scopes"]["allow"], serde_json::json!(["customers.*", "refunds.create"]));
        assert_eq!(key["scopes"]["max_amount"][0]["amount"], 5000);
        let listed = cli::stdout(&run(&["--workspace", "acme", "keys", "list"]));
        assert!(listed.contains("allow=customers.*,refunds.create read-only test-only max-amount=usd:5000"), "{listed}");
        assert!(listed.contains("rate=5:10") && listed.contains("idempotency=derive"), "{listed}");
        let default_keys = cli::stdout(&run(&["keys", "list"]));
        assert!(!default_keys.contains("bot"), "keys stay in their workspace");
        let typo = run(&["keys", "create", "--name", "x", "--allow", "customer.*"]);
        assert!(!typo.status.success());
        assert!(cli::stderr(&typo).contains("names no operation"));
        let workspaces = cli::stdout(&run(&["workspaces", "list"]));
        assert!(workspaces.contains("acme") && workspaces.contains("default"));
        assert!(!String::from_utf8_lossy(&made.stderr).contains(TEST_SECRET));
        app.stop().await;
    }
}

each_backend! {
    async fn the_catalog_lists_what_the_key_may_call(backend) {
        let app = TestApp::spawn(backend).await;
        let scopes = Scopes { allow: vec!["customers.*".into(), "refunds.create".into()], read_only: true, ..Scopes::default() };
        let key = key_with(&app, Role::Agent, scopes).await;
        let response = app.client.get(app.url("/v1/catalog/stripe")).bearer_auth(&key).send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|op| op["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["customers.list", "customers.retrieve"]);
        app.stop().await;
    }
}

each_backend! {
    async fn workspace_a_keys_reach_nothing_of_workspace_b_on_the_data_plane(backend) {
        let app = TestApp::spawn(backend).await;
        let b = app.store.ensure_workspace("b").await.unwrap();
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &app.master_key).unwrap();
        let sealer = agentgate::crypto::Sealer::new(&agentgate::crypto::MasterKey::from_bytes(bytes.try_into().unwrap()));
        let b_secret = agentgate::connections::stripe::StripeSecret::parse("sk_test_51WorkspaceBSecret000000000000000000").unwrap();
        agentgate::connections::set_stripe_connection(app.store.as_ref(), &sealer, &b.id, "b-stripe", &b_secret, &crate::support::test_origin())
            .await
            .unwrap();
        let agent = app.key.clone();
        let admin = key_with(&app, Role::Admin, Scopes::default()).await;
        let routes = [
            ("GET", "/v1/connections/b-stripe/customers"),
            ("GET", "/v1/connections/b-stripe/customers/cus_1"),
            ("POST", "/v1/connections/b-stripe/payment_intents"),
            ("DELETE", "/v1/connections/b-stripe/customers/cus_1"),
            ("GET", "/v1/connections/b-stripe/v1/balance"),
            ("POST", "/v1/connections/b-stripe/v2/core/events"),
            ("GET", "/v1/catalog/b-stripe"),
        ];
        for key in [&agent, &admin] {
            for (method, path) in routes {
                let mut request = app.client.request(method.parse().unwrap(), app.url(path)).bearer_auth(key);
                if method == "POST" {
                    request = request.header("Content-Type", "application/x-www-form-urlencoded").body("amount=1&currency=usd");
                }
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 404, "{method} {path}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "resource_missing", "{method} {path}");
            }
        }
        assert!(app.double.received().is_empty(), "workspace b's Stripe key was never used");
        app.stop().await;
    }
}
