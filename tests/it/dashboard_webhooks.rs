//! The dashboard's webhook endpoint page over plain HTTP: the signing secret pasted or made
//! by registering in Stripe (never shown), push destinations (their secret shown once),
//! replay, the live event stream behind the session, and CSRF on every one of its forms.

use std::time::Duration;

use agentgate::store::NewEvent;
use agentgate::webhooks::endpoints::create_endpoint;
use agentgate::webhooks::signature;
use futures_util::StreamExt;
use reqwest::StatusCode;

use crate::dashboard::{Browser, Page};
use crate::each_backend;
use crate::support::app::TestApp;
use crate::support::eventually;

/// A signing secret pasted into the page: a canary that must never come back.
const WHSEC: &str = "whsec_DashboardPastedSecret0123456789abcdef";
/// The secret the Stripe double hands back on registration: never shown either.
const FROM_STRIPE: &str = "whsec_DashboardRegisteredSecret987654321";

/// Mints an endpoint of the `stripe` connection from the page; returns its page path.
async fn mint(browser: &mut Browser) -> String {
    let list = browser.get("/webhook-endpoints").await;
    let minted = browser
        .post(
            "/webhook-endpoints",
            &[
                ("csrf", &list.csrf()),
                ("connection", "stripe"),
                ("event_types", ""),
            ],
        )
        .await;
    assert_eq!(minted.status, StatusCode::SEE_OTHER, "{}", minted.body);
    minted.location().to_owned()
}

/// A signed-in operator's browser and a freshly minted endpoint's page path, with
/// [`WHSEC`] pasted as its signing secret.
async fn endpoint_with_secret(app: &TestApp) -> (Browser, String) {
    let mut browser = Browser::new(app);
    browser.set_up(app).await;
    let path = mint(&mut browser).await;
    let page = browser.get(&path).await;
    let saved = browser
        .post(
            &format!("{path}/secret"),
            &[("csrf", &page.csrf()), ("secret", WHSEC)],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    (browser, path)
}

/// Posts one event signed with `secret` to the endpoint at `page` (its last segment is the id).
async fn ingest(app: &TestApp, page: &str, event_id: &str, secret: &str) -> StatusCode {
    let id = page.rsplit('/').next().unwrap();
    let payload = format!(
        r#"{{"id":"{event_id}","object":"event","type":"customer.created","data":{{"object":{{}}}}}}"#
    );
    let at = agentgate::time::now_millis() / 1000;
    let header = format!(
        "t={at},v1={}",
        signature::sign(secret.as_bytes(), at, payload.as_bytes())
    );
    app.client
        .post(app.url(&format!("/webhooks/ingest/{id}")))
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", header)
        .body(payload)
        .send()
        .await
        .unwrap()
        .status()
}

/// Opens the live event list of the endpoint at `page` from the start, as the signed-in
/// browser.
async fn open_live(app: &TestApp, browser: &Browser, page: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("{page}/live?after=0")))
        .header("cookie", browser.cookie_header())
        .send()
        .await
        .unwrap()
}

fn assert_no_secret(page: &Page, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !page.body.contains(secret),
            "a signing secret reached the page"
        );
    }
}

each_backend! {
    async fn the_signing_secret_is_pasted_with_csrf_and_never_shown(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let path = mint(&mut browser).await;
        let page = browser.get(&path).await;
        assert!(page.body.contains("No signing secret yet"), "{}", page.body);
        assert!(page.body.contains("Register in Stripe"));

        let missing = browser.post(&format!("{path}/secret"), &[("secret", WHSEC)]).await;
        let forged = browser.post(&format!("{path}/secret"), &[("csrf", "forged"), ("secret", WHSEC)]).await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN);
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert_eq!(ingest(&app, &path, "evt_refused", WHSEC).await, StatusCode::BAD_REQUEST);

        let wrong = browser.post(&format!("{path}/secret"), &[("csrf", &page.csrf()), ("secret", "sk_test_not_a_whsec")]).await;
        assert!(wrong.body.contains("Refused"), "{}", wrong.body);
        assert!(!wrong.body.contains("sk_test_not_a_whsec"));

        let saved = browser.post(&format!("{path}/secret"), &[("csrf", &page.csrf()), ("secret", WHSEC)]).await;
        assert_eq!(saved.status, StatusCode::OK);
        assert!(saved.body.contains("Signing secret configured"), "{}", saved.body);
        assert_no_secret(&saved, &[WHSEC]);
        assert_eq!(ingest(&app, &path, "evt_dash_1", WHSEC).await, StatusCode::OK);
        let shown = browser.get(&path).await;
        assert!(shown.body.contains("evt_dash_1"));
        assert_no_secret(&shown, &[WHSEC]);
        assert!(shown.body.contains(&format!("href=\"{path}/events/evt_dash_1\"")), "{}", shown.body);
        let event = browser.get(&format!("{path}/events/evt_dash_1")).await;
        assert_eq!(event.status, StatusCode::OK);
        assert!(event.body.contains("&quot;id&quot;: &quot;evt_dash_1&quot;"), "the payload, escaped: {}", event.body);
        assert_eq!(browser.get(&format!("{path}/events/evt_nope")).await.status, StatusCode::NOT_FOUND);

        // A roll: the new secret, with the old one stopping now.
        assert!(shown.body.contains("name=\"expire_others_in\""));
        let rolled_in = "whsec_RolledInFromTheDashboard0123456789";
        let rolled = browser.post(&format!("{path}/secret"), &[("csrf", &page.csrf()), ("secret", rolled_in), ("expire_others_in", "0")]).await;
        assert!(rolled.body.contains("the other secrets stop verifying in 0s"), "{}", rolled.body);
        assert_no_secret(&rolled, &[WHSEC, rolled_in]);
        assert_eq!(ingest(&app, &path, "evt_dash_2", rolled_in).await, StatusCode::OK);
        assert_eq!(ingest(&app, &path, "evt_dash_3", WHSEC).await, StatusCode::BAD_REQUEST, "the old secret stopped");
    }

    async fn register_in_stripe_stores_stripes_secret_without_showing_it(backend) {
        use crate::support::stripe_double::Reply;
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let path = mint(&mut browser).await;
        let page = browser.get(&path).await;
        assert_eq!(browser.post(&format!("{path}/register"), &[]).await.status, StatusCode::FORBIDDEN);
        app.double.respond(Reply::stripe_ok(&format!(r#"{{"id":"we_dash","object":"webhook_endpoint","secret":"{FROM_STRIPE}"}}"#)));
        let registered = browser.post(&format!("{path}/register"), &[("csrf", &page.csrf())]).await;
        assert_eq!(registered.status, StatusCode::OK);
        assert!(registered.body.contains("Registered in Stripe as we_dash"), "{}", registered.body);
        assert!(registered.body.contains("Signing secret configured"));
        assert_eq!(app.double.single().target, "/v1/webhook_endpoints");
        assert_no_secret(&registered, &[FROM_STRIPE]);
        assert_eq!(ingest(&app, &path, "evt_registered", FROM_STRIPE).await, StatusCode::OK);
        assert_no_secret(&browser.get(&path).await, &[FROM_STRIPE]);
    }

    async fn destinations_are_added_once_shown_replayed_and_removed_with_csrf(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let path = mint(&mut browser).await;
        let page = browser.get(&path).await;
        let csrf = page.csrf();
        browser.post(&format!("{path}/secret"), &[("csrf", &csrf), ("secret", WHSEC)]).await;
        let fields = [("url", "http://127.0.0.1:9/hook"), ("event_types", ""), ("allow_private", "1")];
        assert_eq!(browser.post(&format!("{path}/destinations"), &fields).await.status, StatusCode::FORBIDDEN);
        let workspace = app.workspace.clone();
        assert!(app.store.list_push_destinations(&workspace, None).await.unwrap().is_empty());

        let private = browser.post(&format!("{path}/destinations"), &[("csrf", &csrf), ("url", "http://127.0.0.1:9/hook")]).await;
        assert!(private.body.contains("Refused"), "{}", private.body);

        let added = browser.post(&format!("{path}/destinations"), &[&[("csrf", csrf.as_str())][..], &fields[..]].concat()).await;
        assert_eq!(added.status, StatusCode::OK);
        let marker = "id=\"destination-secret\">";
        let start = added.body.find(marker).expect("the secret, once") + marker.len();
        let secret = added.body[start..start + added.body[start..].find('<').unwrap()].to_owned();
        assert!(secret.starts_with("whsec_"), "{secret}");
        let listed = browser.get(&path).await;
        assert!(listed.body.contains("http://127.0.0.1:9/hook") && listed.body.contains("enabled"));
        assert_no_secret(&listed, &[&secret, WHSEC]);

        assert_eq!(ingest(&app, &path, "evt_replay_me", WHSEC).await, StatusCode::OK);
        assert_eq!(browser.post(&format!("{path}/replay"), &[("event_id", "evt_replay_me")]).await.status, StatusCode::FORBIDDEN);
        let replayed = browser.post(&format!("{path}/replay"), &[("csrf", &csrf), ("event_id", "evt_replay_me")]).await;
        assert!(replayed.body.contains("1 new deliveries"), "{}", replayed.body);
        assert!(replayed.body.contains("Replay a time range"));
        assert_eq!(ingest(&app, &path, "evt_replay_too", WHSEC).await, StatusCode::OK);
        let day = |offset: i64| {
            let millis = agentgate::time::now_millis() + offset * 86_400_000;
            agentgate::time::rfc3339(millis)[..10].to_owned()
        };
        let (yesterday, tomorrow) = (day(-1), day(1));
        let backwards = browser.post(&format!("{path}/replay"), &[("csrf", &csrf), ("since", &tomorrow), ("until", &yesterday)]).await;
        assert!(backwards.body.contains("The range ends before it starts."), "{}", backwards.body);
        let garbled = browser.post(&format!("{path}/replay"), &[("csrf", &csrf), ("since", "last week"), ("until", &tomorrow)]).await;
        assert!(garbled.body.contains("is not a time such as"), "{}", garbled.body);
        let ranged = browser.post(&format!("{path}/replay"), &[("csrf", &csrf), ("since", &yesterday), ("until", &tomorrow), ("destination", "")]).await;
        assert!(ranged.body.contains("2 new deliveries"), "both events of the range: {}", ranged.body);
        let past = browser.post(&format!("{path}/replay"), &[("csrf", &csrf), ("since", "2020-01-01"), ("until", "2020-01-02")]).await;
        assert!(past.body.contains("Refused"), "no event in that range: {}", past.body);

        let destination = app.store.list_push_destinations(&workspace, None).await.unwrap().remove(0);
        let switch = format!("{path}/destinations/{}/state", destination.id);
        assert_eq!(browser.post(&switch, &[("state", "disabled")]).await.status, StatusCode::FORBIDDEN);
        let disabled = browser.post(&switch, &[("csrf", &csrf), ("state", "disabled")]).await;
        assert!(disabled.body.contains("disabled: nothing is pushed"), "{}", disabled.body);
        let refused = browser.post(&format!("{path}/replay"), &[("csrf", &csrf), ("event_id", "evt_replay_me")]).await;
        assert!(refused.body.contains("no enabled destination"), "{}", refused.body);
        let enabled = browser.post(&switch, &[("csrf", &csrf), ("state", "enabled")]).await;
        assert!(enabled.body.contains("enabled; replay"), "{}", enabled.body);
        let remove = format!("{path}/destinations/{}/remove", destination.id);
        assert_eq!(browser.post(&remove, &[]).await.status, StatusCode::FORBIDDEN);
        let removed = browser.post(&remove, &[("csrf", &csrf)]).await;
        assert!(removed.body.contains("removed"), "{}", removed.body);
        assert!(app.store.list_push_destinations(&workspace, None).await.unwrap().is_empty());
    }

    async fn an_operators_reads_of_events_are_in_the_workspaces_log(backend) {
        let app = TestApp::spawn(backend).await;
        let (mut browser, path) = endpoint_with_secret(&app).await;
        assert_eq!(ingest(&app, &path, "evt_read_1", WHSEC).await, StatusCode::OK);
        assert_eq!(browser.get(&format!("{path}/events/evt_read_1")).await.status, StatusCode::OK);
        assert_eq!(browser.get(&format!("{path}/events/evt_nope")).await.status, StatusCode::NOT_FOUND);
        let live = open_live(&app, &browser, &path).await;
        assert_eq!(live.status(), StatusCode::OK);
        drop(live);

        let reads = eventually(Duration::from_secs(5), "the operator's four reads", || async {
            let reads: Vec<_> = app
                .logged(0)
                .await
                .into_iter()
                .filter(|r| r.entry.operation.as_deref().is_some_and(|op| op.starts_with("dashboard.webhooks.events.")))
                .collect();
            (reads.len() >= 4).then_some(reads)
        })
        .await;
        let seen: Vec<(&str, &str, &str)> = reads
            .iter()
            .map(|r| (r.entry.operation.as_deref().unwrap(), &*r.entry.method, r.entry.path.as_str()))
            .collect();
        let secret_path = format!("{path}/secret");
        let event_path = format!("{path}/events/evt_read_1");
        let live_path = format!("{path}/live");
        assert_eq!(
            seen,
            vec![
                ("dashboard.webhooks.events.list", "GET", path.as_str()),
                ("dashboard.webhooks.events.list", "POST", secret_path.as_str()),
                ("dashboard.webhooks.events.show", "GET", event_path.as_str()),
                ("dashboard.webhooks.events.stream", "GET", live_path.as_str()),
            ]
        );
        for read in &reads {
            let entry = &read.entry;
            assert_eq!((entry.key_id.as_str(), &*entry.via, &*entry.outcome), ("operator:ada", "dashboard", "read"));
            assert_eq!((entry.connection.as_str(), entry.status), ("stripe", 200));
            assert_eq!(entry.client, Some("127.0.0.1".parse().unwrap()));
        }
    }

    async fn an_endpoint_page_shows_its_newest_events_however_many_it_has(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let origin = crate::support::test_origin();
        let endpoint = create_endpoint(app.store.as_ref(), &app.workspace, "stripe", &[], &origin)
            .await
            .unwrap();
        // More than the 10,000 events the page once read from the oldest on.
        let total = 10_060;
        let now = agentgate::time::now_millis();
        for batch in (0..total).collect::<Vec<_>>().chunks(1_000) {
            let events: Vec<NewEvent> = batch
                .iter()
                .map(|i| NewEvent {
                    endpoint_id: endpoint.id.clone(),
                    workspace_id: app.workspace.clone(),
                    event_id: format!("evt_many_{i:05}"),
                    event_type: "customer.created".into(),
                    received_at: now,
                    payload: b"{}".to_vec(),
                })
                .collect();
            app.store.insert_events(&events).await.unwrap();
        }

        let page = browser.get(&format!("/webhook-endpoints/{}", endpoint.id)).await;
        assert_eq!(page.status, StatusCode::OK);
        let shown = page.body.matches("<code>evt_many_").count();
        assert_eq!(shown, 50, "the newest 50");
        assert!(page.body.contains("<code>evt_many_10059</code>"), "the newest is shown");
        assert!(page.body.contains("<code>evt_many_10010</code>"));
        assert!(!page.body.contains("<code>evt_many_10009</code>"));
        let newest = app.store.last_event_seq(&endpoint.id).await.unwrap().unwrap();
        assert!(page.body.contains(&format!("data-after=\"{newest}\"")), "the live list follows from the newest");
    }

    async fn the_live_list_streams_new_events_to_the_signed_in_operator_only(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let path = mint(&mut browser).await;
        let page = browser.get(&path).await;
        assert!(page.body.contains(&format!("data-live=\"{path}/live\"")), "{}", page.body);
        browser.post(&format!("{path}/secret"), &[("csrf", &page.csrf()), ("secret", WHSEC)]).await;

        let anonymous = Browser::new(&app).get(&format!("{path}/live")).await;
        assert_eq!(anonymous.location(), "/login");

        assert_eq!(ingest(&app, &path, "evt_before", WHSEC).await, StatusCode::OK);
        let response = open_live(&app, &browser, &path).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let mut body = response.bytes_stream();
        let mut seen = String::new();
        let sent_later = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ingest(&app, &path, "evt_after", WHSEC).await
        };
        let read = async {
            while !seen.contains("evt_after") {
                let chunk = body.next().await.expect("the stream stays open").unwrap();
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        let (status, ()) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(sent_later, read) })
            .await
            .expect("both events streamed");
        assert_eq!(status, StatusCode::OK);
        assert!(seen.contains("evt_before") && seen.contains("\"event_type\":\"customer.created\""), "{seen}");
        assert!(seen.find("evt_before") < seen.find("evt_after"));
    }
}

each_backend! {
    async fn an_endpoint_is_removed_from_its_page(backend) {
        let app = TestApp::spawn(backend).await;
        let (mut browser, path) = endpoint_with_secret(&app).await;
        let page = browser.get(&path).await;
        assert_eq!(
            ingest(&app, &path, "evt_before", WHSEC).await,
            StatusCode::OK
        );
        let remove = format!("{path}/remove");
        assert!(page.body.contains(&format!("action=\"{remove}\"")));

        let forged = browser.post(&remove, &[]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert_eq!(browser.get(&path).await.status, StatusCode::OK);

        let removed = browser.post(&remove, &[("csrf", &page.csrf())]).await;
        assert_eq!(removed.status, StatusCode::OK);
        let id = path.rsplit('/').next().unwrap();
        assert!(
            removed.body.contains(&format!("Endpoint {id} removed")),
            "{}",
            removed.body
        );
        assert!(!removed.body.contains(&format!("href=\"{path}\"")));
        assert_eq!(browser.get(&path).await.status, StatusCode::NOT_FOUND);
        assert!(!ingest(&app, &path, "evt_after", WHSEC).await.is_success());
        let again = browser.post(&remove, &[("csrf", &page.csrf())]).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND);
    }
}
