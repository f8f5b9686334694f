//! Money guardrails over real HTTP: per-request caps on each guarded operation, daily totals
//! that Stripe's refusals release, that survive a restart and that concurrent requests
//! cannot pass together, and the operators' view of the day's totals. A refused request
//! never reaches the Stripe double.

use agentgate::policy::guardrails::utc_day;
use agentgate::policy::Scopes;
use serde_json::Value;

use crate::each_backend;
use crate::support::app::TestApp;
use crate::support::cli;
use crate::support::stripe_double::Reply;

/// An agent key with these per-request caps and daily limits (`usd:5000`).
async fn key_with(app: &TestApp, max_amount: &[&str], daily_limit: &[&str]) -> String {
    let scopes = Scopes {
        max_amount: max_amount.iter().map(|m| m.parse().unwrap()).collect(),
        daily_limit: daily_limit.iter().map(|m| m.parse().unwrap()).collect(),
        ..Scopes::default()
    };
    app.create_key_with("guarded", scopes).await
}

/// POSTs a form body to a Stripe path with `key`.
async fn post(app: &TestApp, key: &str, stripe_path: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/connections/stripe/{stripe_path}")))
        .bearer_auth(key)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// The status Stripe's double or agentgate answered a POST with.
async fn status(app: &TestApp, key: &str, stripe_path: &str, body: &str) -> u16 {
    post(app, key, stripe_path, body).await.status().as_u16()
}

/// The message of a guardrail refusal, after checking its status, code and shape.
async fn refused(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["agentgate-error"], "caller");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "agentgate_limit_exceeded", "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

/// The guardrail refusal of a POST, as [`refused`] reads it.
async fn refusal(app: &TestApp, key: &str, stripe_path: &str, body: &str) -> String {
    refused(post(app, key, stripe_path, body).await).await
}

/// The key's stored total for today in `currency`.
async fn today_total(app: &TestApp, currency: &str) -> i64 {
    let day = utc_day(agentgate::time::now_millis());
    let totals = app
        .store
        .list_guardrail_totals(&app.workspace, &day)
        .await
        .unwrap();
    totals
        .iter()
        .filter(|(_, money)| money.currency == currency)
        .map(|(_, money)| money.amount)
        .sum()
}

const CHECKOUT_UNDER: &str = "mode=payment&success_url=https://example.com\
    &line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=2000\
    &line_items[0][price_data][product_data][name]=Book&line_items[0][quantity]=2\
    &line_items[1][price_data][currency]=usd&line_items[1][price_data][unit_amount]=1000\
    &line_items[1][price_data][product_data][name]=Pen";

each_backend! {
    async fn per_request_caps_hold_for_each_guarded_operation(backend) {
        let app = TestApp::spawn(backend).await;
        let key = key_with(&app, &["usd:5000"], &[]).await;
        let over_checkout = CHECKOUT_UNDER.replace("[quantity]=2", "[quantity]=3");
        // (path, body, expected refusal fragment or None = forwarded)
        let cases: Vec<(&str, String, Option<&str>)> = vec![
            ("payment_intents", "amount=5000&currency=usd".into(), None),
            (
                "payment_intents",
                "amount=6000&currency=usd".into(),
                Some("This request's amount 6000 usd exceeds this key's per-request limit of \
                      5000 usd (max-amount usd:5000)."),
            ),
            ("payment_intents", "amount=900000&currency=eur".into(), None),
            ("payment_intents/pi_123", "amount=5000".into(), None),
            (
                "payment_intents/pi_123",
                "amount=5001".into(),
                Some("amount 5001 (its currency is not in the request, so every limit of this \
                      key applies) exceeds this key's per-request limit of 5000 usd"),
            ),
            ("payment_intents/pi_123", "amount=7000&currency=eur".into(), None),
            ("refunds", "charge=ch_1&amount=5000".into(), None),
            ("refunds", "charge=ch_1&amount=5001".into(), Some("(max-amount usd:5000)")),
            ("refunds", "charge=ch_1".into(), Some("a refund without `amount`")),
            ("prices", "currency=usd&unit_amount=5000&product=prod_1".into(), None),
            (
                "prices",
                "currency=usd&unit_amount=5001&product=prod_1".into(),
                Some("amount 5001 usd exceeds this key's per-request limit of 5000 usd"),
            ),
            ("prices", "currency=eur&unit_amount=9999999&product=prod_1".into(), None),
            ("checkout/sessions", CHECKOUT_UNDER.into(), None),
            (
                "checkout/sessions",
                over_checkout,
                Some("amount 7000 usd exceeds this key's per-request limit of 5000 usd"),
            ),
            (
                "checkout/sessions",
                "mode=payment&currency=usd&line_items[0][price]=price_1&line_items[0][quantity]=1"
                    .into(),
                Some("`line_items[0][price]` names a stored price"),
            ),
            (
                "checkout/sessions",
                "mode=payment&currency=eur&line_items[0][price]=price_1&line_items[0][quantity]=1"
                    .into(),
                None,
            ),
        ];
        let mut forwarded = 0;
        for (path, body, expected) in cases {
            let response = post(&app, &key, path, &body).await;
            match expected {
                None => {
                    assert_eq!(response.status(), 200, "{path} {body}");
                    forwarded += 1;
                }
                Some(fragment) => {
                    let message = refused(response).await;
                    assert!(message.contains(fragment), "{path} {body}: {message}");
                }
            }
            assert_eq!(app.double.received().len(), forwarded, "{path} {body}");
        }
        // Without limits nothing is read: the same over-cap request goes through.
        let response = app.post_form("payment_intents", "amount=6000&currency=usd").await;
        assert_eq!(response.status(), 200);
        app.stop().await;
    }

    async fn the_daily_total_refuses_the_request_that_would_pass_it(backend) {
        let app = TestApp::spawn(backend).await;
        let key = key_with(&app, &[], &["usd:10000"]).await;
        assert_eq!(status(&app, &key, "payment_intents", "amount=4000&currency=usd").await, 200);
        // A refund's currency is its charge's: it counts against every daily limit.
        assert_eq!(status(&app, &key, "refunds", "charge=ch_1&amount=4000").await, 200);
        let message = refusal(&app, &key, "payment_intents", "amount=4000&currency=usd").await;
        assert_eq!(
            message,
            "This request's amount 4000 usd would bring today's usd total to 12000, over this \
             key's daily limit of 10000 (daily-limit usd:10000)."
        );
        assert_eq!(app.double.received().len(), 2);
        assert_eq!(today_total(&app, "usd").await, 8000);
        // Other currencies are unlimited and updates do not count.
        assert_eq!(status(&app, &key, "payment_intents", "amount=900000&currency=eur").await, 200);
        assert_eq!(status(&app, &key, "payment_intents/pi_1", "amount=9000").await, 200);
        assert_eq!(status(&app, &key, "payment_intents", "amount=2000&currency=usd").await, 200);
        assert_eq!(today_total(&app, "usd").await, 10000);
        assert_eq!(today_total(&app, "eur").await, 0);
        app.stop().await;
    }

    async fn a_refusal_by_stripe_releases_the_reservation_and_a_server_error_does_not(backend) {
        let app = TestApp::spawn(backend).await;
        let key = key_with(&app, &[], &["usd:10000"]).await;
        let error = |status: u16| Reply::Json {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: r#"{"error":{"type":"card_error","code":"card_declined"}}"#.into(),
        };
        app.double.respond(error(402));
        assert_eq!(status(&app, &key, "payment_intents", "amount=6000&currency=usd").await, 402);
        app.double.respond(error(400));
        assert_eq!(status(&app, &key, "refunds", "charge=ch_1&amount=6000").await, 400);
        assert_eq!(today_total(&app, "usd").await, 0);
        // After a 5xx the money may have moved: it stays counted.
        app.double.respond(error(500));
        assert_eq!(status(&app, &key, "payment_intents", "amount=6000&currency=usd").await, 500);
        assert_eq!(today_total(&app, "usd").await, 6000);
        app.double.respond(Reply::stripe_ok("{}"));
        let message = refusal(&app, &key, "payment_intents", "amount=6000&currency=usd").await;
        assert!(message.contains("today's usd total to 12000"), "{message}");
        assert_eq!(status(&app, &key, "payment_intents", "amount=4000&currency=usd").await, 200);
        assert_eq!(app.double.received().len(), 4);
        app.stop().await;
    }

    async fn the_daily_total_survives_a_restart(backend) {
        let app = TestApp::spawn(backend).await;
        let key = key_with(&app, &[], &["usd:10000"]).await;
        assert_eq!(status(&app, &key, "payment_intents", "amount=7000&currency=usd").await, 200);
        let app = app.restart().await;
        let message = refusal(&app, &key, "payment_intents", "amount=7000&currency=usd").await;
        assert!(message.contains("today's usd total to 14000"), "{message}");
        assert_eq!(status(&app, &key, "payment_intents", "amount=3000&currency=usd").await, 200);
        assert_eq!(app.double.received().len(), 2);
        app.stop().await;
    }

    async fn concurrent_requests_cannot_pass_the_daily_limit_together(backend) {
        let app = TestApp::spawn(backend).await;
        let key = key_with(&app, &[], &["usd:10000"]).await;
        // Ten requests of 3000 against a limit of 10000: exactly three fit.
        let requests =
            (0..10).map(|_| post(&app, &key, "payment_intents", "amount=3000&currency=usd"));
        let statuses: Vec<u16> = futures_util::future::join_all(requests)
            .await
            .iter()
            .map(|response| response.status().as_u16())
            .collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 7, "{statuses:?}");
        assert_eq!(app.double.received().len(), 3);
        assert_eq!(today_total(&app, "usd").await, 9000);

        // The same race straight at the store, from tasks on both runtime threads: twenty
        // reservations of 700 in eur against 5000, seven fit.
        let day = utc_day(agentgate::time::now_millis());
        let key_id = app.store.list_keys(&app.workspace).await.unwrap().pop().unwrap().id;
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, workspace, key_id, day) =
                    (app.store.clone(), app.workspace.clone(), key_id.clone(), day.clone());
                tokio::spawn(async move {
                    let amount = ("eur:700".parse().unwrap(), 5000);
                    store
                        .reserve_guardrail_totals(&workspace, &key_id, &day, &[amount])
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut added = 0;
        for task in tasks {
            if task.await.unwrap().is_none() {
                added += 1;
            }
        }
        assert_eq!(added, 7);
        assert_eq!(today_total(&app, "eur").await, 4900);
        app.stop().await;
    }

    async fn operators_see_each_keys_totals_for_the_day(backend) {
        let app = TestApp::spawn(backend).await;
        let run = |args: &[&str]| cli::run(&app.db.url, &app.master_key, args, "");
        let created = run(&[
            "keys", "create", "--name", "shop agent", "--max-amount", "usd:5000",
            "--daily-limit", "usd:100000", "--json",
        ]);
        assert!(created.status.success(), "{}", cli::stderr(&created));
        let created: Value = serde_json::from_str(&cli::stdout(&created)).unwrap();
        let key = created["key"].as_str().unwrap();
        assert_eq!(status(&app, key, "payment_intents", "amount=3000&currency=usd").await, 200);
        let over = post(&app, key, "payment_intents", "amount=6000&currency=usd").await;
        assert!(refused(over).await.contains("(max-amount usd:5000)"));

        let usage = run(&["keys", "usage", "--json"]);
        assert!(usage.status.success(), "{}", cli::stderr(&usage));
        let usage: Value = serde_json::from_str(&cli::stdout(&usage)).unwrap();
        let today = utc_day(agentgate::time::now_millis());
        assert_eq!(usage.as_array().unwrap().len(), 1, "{usage}");
        assert_eq!(usage[0]["key_id"], created["id"]);
        assert_eq!(usage[0]["name"], "shop agent");
        assert_eq!(usage[0]["day"], today.as_str());
        assert_eq!(usage[0]["currency"], "usd");
        assert_eq!(usage[0]["total"], 3000);
        assert_eq!(usage[0]["limit"], 100000);

        let table = cli::stdout(&run(&["keys", "usage"]));
        let line = table.lines().find(|line| line.contains("shop agent")).unwrap_or_default();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 3..], ["usd", "3000", "100000"], "{table}");
        let other_day = run(&["keys", "usage", "--day", "2020-01-01", "--json"]);
        let other_day: Value = serde_json::from_str(&cli::stdout(&other_day)).unwrap();
        assert_eq!(other_day[0]["total"], 0);
        assert!(!run(&["keys", "usage", "--day", "yesterday"]).status.success());
        app.stop().await;
    }
}

each_backend! {
    async fn dry_runs_and_idempotent_replays_count_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let key = key_with(&app, &["usd:5000"], &["usd:10000"]).await;
        let dry = |body: &'static str| {
            app.client
                .post(app.url("/v1/connections/stripe/payment_intents"))
                .bearer_auth(&key)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Agentgate-Dry-Run", "true")
                .body(body)
                .send()
        };
        assert_eq!(dry("amount=4000&currency=usd").await.unwrap().status(), 200);
        refused(dry("amount=6000&currency=usd").await.unwrap()).await;
        assert_eq!(today_total(&app, "usd").await, 0, "a dry run counts nothing");

        app.double.respond(Reply::Json {
            status: 200,
            headers: vec![("Idempotent-Replayed".into(), "true".into())],
            body: "{}".into(),
        });
        assert_eq!(status(&app, &key, "payment_intents", "amount=4000&currency=usd").await, 200);
        assert_eq!(today_total(&app, "usd").await, 0, "a replay was counted by the first request");
        assert!(app.double.received().len() == 1, "dry runs send nothing");
        app.stop().await;
    }
}
