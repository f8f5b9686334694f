//! Validation of the listed operations over real HTTP: every one of the 30 operations is
//! forwarded when minimal and valid, and refused (never reaching the Stripe double) with
//! Stripe's error code and parameter name when a required parameter is missing, an unknown
//! one is added, or a value has the wrong type. Plus the switches that turn validation off,
//! dry runs, and the discovery endpoint.

use agentgate::catalog::{Catalog, Kind, Operation, Schema};
use serde_json::Value;

use crate::each_backend;
use crate::support::app::TestApp;
use crate::support::TEST_SECRET;

/// A minimal value that the schema accepts, as form pairs under `name`.
fn minimal(name: &str, schema: &Schema, out: &mut Vec<(String, String)>) {
    match &schema.kind {
        Kind::String { .. } => out.push((name.into(), "x".into())),
        Kind::Integer => out.push((name.into(), "1".into())),
        Kind::Number => out.push((name.into(), "1.5".into())),
        Kind::Boolean => out.push((name.into(), "true".into())),
        Kind::Enum { values, .. } => out.push((name.into(), values[0].clone())),
        Kind::Object { fields } => {
            let required: Vec<_> = fields.iter().filter(|f| f.required).collect();
            if required.is_empty() {
                // An object with no required part still has to be sent as parts.
                let first = &fields[0];
                minimal(&format!("{name}[{}]", first.name), &first.schema, out);
            }
            for field in required {
                minimal(&format!("{name}[{}]", field.name), &field.schema, out);
            }
        }
        Kind::Array { items } => minimal(&format!("{name}[0]"), items, out),
        Kind::Map { values } => minimal(&format!("{name}[k]"), values, out),
        Kind::AnyOf { any_of } => minimal(name, &any_of[0], out),
    }
}

fn encode(pairs: &[(String, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

/// The Stripe path of an operation with every path variable filled.
fn stripe_path(operation: &Operation) -> String {
    let mut path = operation.path.clone();
    for param in &operation.path_params {
        path = path.replace(&format!("{{{}}}", param.name), "obj_123");
    }
    path
}

/// Required parameters, minimal.
fn required_pairs(operation: &Operation) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for field in operation.params.iter().filter(|f| f.required) {
        minimal(&field.name, &field.schema, &mut pairs);
    }
    pairs
}

/// Sends `pairs` the way the SDKs do: in the query for GET and DELETE, as a form body for
/// POST.
async fn send(
    app: &TestApp,
    operation: &Operation,
    pairs: &[(String, String)],
) -> reqwest::Response {
    let path = stripe_path(operation);
    let url = app.url(&format!("/v1/connections/stripe{path}"));
    let encoded = encode(pairs);
    let request = match operation.method.as_str() {
        "POST" => app
            .client
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(encoded),
        method => {
            let url = if encoded.is_empty() {
                url
            } else {
                format!("{url}?{encoded}")
            };
            app.client.request(method.parse().unwrap(), url)
        }
    };
    request.bearer_auth(&app.key).send().await.expect("request")
}

/// Asserts a gateway refusal in Stripe's shape and returns the error object.
async fn refused(response: reqwest::Response, what: &str) -> Value {
    assert_eq!(response.status(), 400, "{what}");
    assert_eq!(response.headers()["agentgate-error"], "caller", "{what}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{what}");
    assert!(
        !body["error"]["message"].as_str().unwrap().is_empty(),
        "{what}"
    );
    body["error"].clone()
}

/// The first top-level parameter of the given kind, outside any `anyOf`.
fn first_param(operation: &Operation, wanted: fn(&Kind) -> bool) -> Option<&str> {
    operation
        .params
        .iter()
        .find(|field| wanted(&field.schema.kind))
        .map(|field| field.name.as_str())
}

each_backend! {
    async fn every_listed_operation_is_forwarded_when_valid_and_refused_when_not(backend) {
        let app = TestApp::spawn(backend).await;
        let catalog = Catalog::embedded();
        assert_eq!(catalog.operations.len(), 30);
        let mut forwarded = 0;
        for operation in &catalog.operations {
            let id = &operation.id;
            let valid = required_pairs(operation);
            let response = send(&app, operation, &valid).await;
            assert_eq!(response.status(), 200, "{id}: a minimal valid request is forwarded");
            forwarded += 1;
            let seen = app.double.received().pop().unwrap();
            assert_eq!(seen.method.as_str(), operation.method, "{id}");
            assert!(seen.target.starts_with(&stripe_path(operation)), "{id}");

            for field in operation.params.iter().filter(|f| f.required) {
                let without: Vec<_> = valid
                    .iter()
                    .filter(|(name, _)| name != &field.name && !name.starts_with(&format!("{}[", field.name)))
                    .cloned()
                    .collect();
                let error = refused(send(&app, operation, &without).await, id).await;
                assert_eq!(error["code"], "parameter_missing", "{id} without {}", field.name);
                assert_eq!(error["param"], field.name.as_str(), "{id}");
            }

            let mut unknown = valid.clone();
            unknown.push(("agentgate_not_a_param".into(), "1".into()));
            let error = refused(send(&app, operation, &unknown).await, id).await;
            assert_eq!(error["code"], "parameter_unknown", "{id}");
            assert_eq!(error["param"], "agentgate_not_a_param", "{id}");

            if let Some(name) = first_param(operation, |k| matches!(k, Kind::Integer)) {
                let mut wrong = valid.clone();
                wrong.push((name.into(), "twelve".into()));
                let error = refused(send(&app, operation, &wrong).await, id).await;
                assert_eq!(error["code"], "parameter_invalid_integer", "{id} {name}");
                assert_eq!(error["param"], name, "{id}");
            }
            if let Some(name) = first_param(operation, |k| matches!(k, Kind::Boolean)) {
                let mut wrong = valid.clone();
                wrong.push((name.into(), "yes".into()));
                let error = refused(send(&app, operation, &wrong).await, id).await;
                assert_eq!(error["param"], name, "{id}");
                assert!(error["message"].as_str().unwrap().contains("Invalid boolean"), "{id}");
            }
            if let Some(name) = first_param(operation, |k| matches!(k, Kind::Enum { open: false, .. })) {
                let mut wrong = valid.clone();
                wrong.push((name.into(), "not_a_listed_value".into()));
                let error = refused(send(&app, operation, &wrong).await, id).await;
                assert_eq!(error["param"], name, "{id}");
                assert!(error["message"].as_str().unwrap().contains("must be one of"), "{id}");
            }
            if let Some(name) = first_param(operation, |k| matches!(k, Kind::Object { .. })) {
                let mut wrong = valid.clone();
                wrong.push((format!("{name}[agentgate_bogus]"), "1".into()));
                let error = refused(send(&app, operation, &wrong).await, id).await;
                assert_eq!(error["code"], "parameter_unknown", "{id}");
                assert_eq!(error["param"], format!("{name}[agentgate_bogus]"), "{id}");
            }
        }
        assert_eq!(app.double.received().len(), forwarded, "no refused request reached Stripe");
        app.stop().await;
    }

    async fn nested_errors_name_the_parameter_as_stripe_does(backend) {
        let app = TestApp::spawn(backend).await;
        let body = "mode=payment&success_url=https%3A%2F%2Fexample.com\
                    &line_items[0][price]=price_1&line_items[0][quantity]=1\
                    &line_items[1][price_data][currency]=usd&line_items[1][price_data][unit_amount]=12x";
        let error = refused(app.post_form("checkout/sessions", body).await, "nested").await;
        assert_eq!(error["code"], "parameter_invalid_integer");
        assert_eq!(error["param"], "line_items[1][price_data][unit_amount]");

        let missing = "line_items[0][price_data][unit_amount]=100&line_items[0][quantity]=1&mode=payment";
        let error = refused(app.post_form("checkout/sessions", missing).await, "nested missing").await;
        assert_eq!(error["code"], "parameter_missing");
        assert_eq!(error["param"], "line_items[0][price_data][currency]");

        let empty = refused(app.post_form("payment_intents", "amount=&currency=usd").await, "empty").await;
        assert_eq!(empty["code"], "parameter_invalid_empty");
        assert_eq!(empty["param"], "amount");
        assert!(app.double.received().is_empty());
        app.stop().await;
    }

    async fn what_stripe_accepts_is_forwarded_unchanged(backend) {
        let app = TestApp::spawn(backend).await;
        let accepted = [
            ("customers", "email=a%40b.c&metadata[order]=7&metadata[old]=&expand[]=default_source&expand[]=tax_ids"),
            ("customers/cus_1", "description=&metadata="),
            ("payment_intents", "amount=2000&currency=usd&automatic_payment_methods[enabled]=true&capture_method=some_future_method"),
            ("checkout/sessions", "mode=payment&line_items[][price]=price_1&line_items[][quantity]=2&line_items[][price]=price_2"),
        ];
        for (path, body) in accepted {
            let response = app.post_form(path, body).await;
            assert_eq!(response.status(), 200, "{path} {body}");
            assert_eq!(app.double.received().last().unwrap().body, body.as_bytes());
        }
        let response = app.get("customers?created[gte]=1700000000&created[lt]=1800000000&limit=3").await;
        assert_eq!(response.status(), 200);
        let response = app.get("customers?created=1700000000").await;
        assert_eq!(response.status(), 200);
        let response = app.get("customers/search?query=email%3A%27a%40b.c%27").await;
        assert_eq!(response.status(), 200, "an unlisted sibling route is not read as customers.retrieve");
        assert_eq!(app.double.received().len(), 7);
        app.stop().await;
    }

    async fn a_json_body_on_a_listed_operation_is_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let response = app
            .client
            .post(app.url("/v1/connections/stripe/customers"))
            .bearer_auth(&app.key)
            .header("Content-Type", "application/json")
            .body(r#"{"email":"a@b.c"}"#)
            .send()
            .await
            .unwrap();
        let error = refused(response, "json").await;
        assert!(error["message"].as_str().unwrap().contains("application/x-www-form-urlencoded"));
        assert!(app.double.received().is_empty());
        app.stop().await;
    }

    async fn validation_can_be_switched_off_per_request_and_per_connection(backend) {
        let app = TestApp::spawn(backend).await;
        let unknown = "amount=100&currency=usd&brand_new_param=1";
        let refused_first = app.post_form("payment_intents", unknown).await;
        assert_eq!(refused_first.status(), 400);

        let response = app
            .client
            .post(app.url("/v1/connections/stripe/payment_intents"))
            .bearer_auth(&app.key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Agentgate-Validation", "off")
            .body(unknown)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let seen = app.double.single();
        assert_eq!(seen.body, unknown.as_bytes());
        assert!(seen.headers.get("agentgate-validation").is_none(), "agentgate's own headers stay here");

        let bad_switch = app
            .client
            .get(app.url("/v1/connections/stripe/customers"))
            .bearer_auth(&app.key)
            .header("Agentgate-Validation", "perhaps")
            .send()
            .await
            .unwrap();
        assert_eq!(bad_switch.status(), 400);

        agentgate::connections::set_connection_validation(app.store.as_ref(), &app.workspace, "stripe", false, &crate::support::test_origin())
            .await
            .unwrap();
        crate::support::eventually(std::time::Duration::from_secs(5), "validation off", || async {
            (app.post_form("payment_intents", unknown).await.status() == 200).then_some(())
        })
        .await;
        app.stop().await;
    }

    async fn a_dry_run_reports_the_upstream_request_without_sending_it(backend) {
        let app = TestApp::spawn(backend).await;
        let body = "amount=2000&currency=usd&metadata[order]=7";
        let response = app
            .client
            .post(app.url("/v1/connections/stripe/payment_intents?expand[]=customer"))
            .bearer_auth(&app.key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Idempotency-Key", "idem-1")
            .header("Agentgate-Dry-Run", "true")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["agentgate-dry-run"], "true");
        let text = response.text().await.unwrap();
        assert!(!text.contains(TEST_SECRET), "the Stripe key never appears");
        let report: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["object"], "dry_run");
        assert_eq!(report["operation"], "payment_intents.create");
        assert_eq!(report["validated"], true);
        let request = &report["request"];
        assert_eq!(request["method"], "POST");
        assert_eq!(request["url"], format!("{}/v1/payment_intents?expand[]=customer", app.double.base_url()));
        assert_eq!(request["body"], body);
        assert_eq!(request["headers"]["idempotency-key"], "idem-1");
        let authorization = request["headers"]["authorization"].as_str().unwrap();
        assert!(authorization.starts_with("Bearer sk_test_") && authorization.ends_with(&TEST_SECRET[TEST_SECRET.len() - 4..]));
        assert!(request["headers"].get("agentgate-dry-run").is_none());

        let invalid = app
            .client
            .post(app.url("/v1/connections/stripe/payment_intents"))
            .bearer_auth(&app.key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Agentgate-Dry-Run", "true")
            .body("currency=usd")
            .send()
            .await
            .unwrap();
        assert_eq!(refused(invalid, "dry run of an invalid request").await["code"], "parameter_missing");

        let unlisted = app
            .client
            .get(app.url("/v1/connections/stripe/balance"))
            .bearer_auth(&app.key)
            .header("Agentgate-Dry-Run", "1")
            .send()
            .await
            .unwrap();
        let report: Value = unlisted.json().await.unwrap();
        assert_eq!(report["operation"], Value::Null);
        assert_eq!(report["validated"], false);
        assert!(app.double.received().is_empty(), "a dry run sends nothing");
        let logged = app.logged(3).await;
        assert!(logged.iter().any(|entry| entry.entry.outcome == "dry_run"));
        app.stop().await;
    }

    async fn the_catalog_is_discoverable_with_json_schemas(backend) {
        let app = TestApp::spawn(backend).await;
        let anonymous = app.client.get(app.url("/v1/catalog/stripe")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let unknown = app.client.get(app.url("/v1/catalog/paypal")).bearer_auth(&app.key).send().await.unwrap();
        assert_eq!(unknown.status(), 404);

        let response = app.client.get(app.url("/v1/catalog/stripe")).bearer_auth(&app.key).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "list");
        assert_eq!(body["connection"], "stripe");
        assert_eq!(body["api_version"], "2026-07-29.dahlia");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 30);
        let create = data.iter().find(|op| op["id"] == "payment_intents.create").unwrap();
        assert_eq!(create["method"], "POST");
        assert_eq!(create["path"], "/v1/payment_intents");
        let schema = &create["parameters"];
        assert_eq!(schema["type"], "object");
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(required.contains(&"amount") && required.contains(&"currency"));
        assert_eq!(schema["properties"]["amount"]["type"], "integer");
        assert!(app.double.received().is_empty());
        app.stop().await;
    }
}
