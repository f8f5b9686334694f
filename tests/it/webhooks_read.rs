//! Agents reading webhook events: pull by cursor, the Server-Sent Events stream (live,
//! resumable, heartbeats, ends with the server), who may read which endpoint, retention,
//! and the `events` CLI. Events are stored through the store and announced on the app's
//! bus, as ingest does after each commit.

use std::time::{Duration, Instant};

use agentgate::ids::{EndpointId, WorkspaceId};
use agentgate::keys::{create_key, KeySpec};
use agentgate::policy::{Role, Scopes};
use agentgate::store::{NewEvent, WebhookEndpointRecord};
use agentgate::time::ManualClock;
use agentgate::webhooks::stream::StreamSettings;
use agentgate::webhooks::EventNotice;
use futures_util::StreamExt;
use serde_json::Value;

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::cli::{binary, run, stderr, stdout};

/// Creates an endpoint of the `stripe` connection in the workspace.
async fn endpoint_in(app: &TestApp, workspace: &WorkspaceId) -> EndpointId {
    let record = WebhookEndpointRecord {
        id: EndpointId::generate(),
        workspace_id: workspace.clone(),
        connection: "stripe".into(),
        event_types: Vec::new(),
        stripe_endpoint_id: None,
        created_at: agentgate::time::now_millis(),
    };
    let audit = crate::support::test_audit(workspace);
    app.store
        .insert_webhook_endpoint(&record, &audit)
        .await
        .unwrap();
    record.id
}

async fn endpoint(app: &TestApp) -> EndpointId {
    endpoint_in(app, &app.workspace).await
}

/// A Stripe event body as Stripe formats it (indented, so "as sent" is visible).
fn body(id: &str, event_type: &str) -> Vec<u8> {
    format!(
        "{{\n  \"id\": \"{id}\",\n  \"object\": \"event\",\n  \"type\": \"{event_type}\",\n  \"data\": {{\"object\": {{\"amount\": 1.50}}}}\n}}"
    )
    .into_bytes()
}

/// Now, in the store's milliseconds: events received now are safe from the server's own
/// retention task, which prunes at start.
fn recent() -> i64 {
    agentgate::time::now_millis()
}

/// Runs retention with the default event retention at `clock`'s now; returns how many
/// events went.
async fn prune_events(app: &TestApp, clock: &ManualClock) -> u64 {
    let retention = agentgate::retention::Retention::default();
    agentgate::retention::prune(app.store.as_ref(), &retention, clock)
        .await
        .unwrap()
        .events
}

/// The Stripe ids of stored events.
fn ids_of(events: &[agentgate::store::EventRecord]) -> Vec<&str> {
    events.iter().map(|e| e.event.event_id.as_str()).collect()
}

/// Stores an event received at `received_at` without announcing it; returns its cursor.
async fn store_at(
    app: &TestApp,
    endpoint: &EndpointId,
    id: &str,
    event_type: &str,
    received_at: i64,
) -> i64 {
    let event = NewEvent {
        endpoint_id: endpoint.clone(),
        workspace_id: app.workspace.clone(),
        event_id: id.into(),
        event_type: event_type.into(),
        received_at,
        payload: body(id, event_type),
    };
    app.store.insert_events(&[event]).await.unwrap()[0].expect("a new event")
}

/// Stores an event and announces it on the bus, as ingest does.
async fn ingest(app: &TestApp, endpoint: &EndpointId, id: &str, event_type: &str) -> i64 {
    let seq = store_at(app, endpoint, id, event_type, agentgate::time::now_millis()).await;
    app.events.publish(EventNotice {
        endpoint_id: endpoint.clone(),
        seq,
    });
    seq
}

async fn pull(app: &TestApp, key: &str, endpoint: &EndpointId, query: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(&format!("/v1/webhooks/{endpoint}/events{query}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn ids(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect()
}

/// One message of an SSE stream: `id`, `event`, `data`, or a comment.
#[derive(Debug, Default)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    comment: Option<String>,
}

/// A minimal SSE reader over a streaming response.
struct SseClient {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseClient {
    async fn open(app: &TestApp, endpoint: &EndpointId, last_event_id: Option<&str>) -> Self {
        let mut request = app
            .client
            .get(app.url(&format!("/v1/webhooks/{endpoint}/events/stream")))
            .bearer_auth(&app.key);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next message, or `None` when the stream ended; fails after 5 s.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message::default();
                for line in block.lines().filter(|line| !line.is_empty()) {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                    match field {
                        "" => message.comment = Some(value),
                        "id" => message.id = Some(value),
                        "event" => message.event = Some(value),
                        "data" => {
                            let data = message.data.get_or_insert_with(String::new);
                            if !data.is_empty() {
                                data.push('\n');
                            }
                            data.push_str(&value);
                        }
                        other => panic!("unexpected SSE field {other:?}"),
                    }
                }
                return Some(message);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.body.next())
                .await
                .expect("an SSE message within 5 s")?
                .ok()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next message that is an event (skipping heartbeats).
    async fn next_event(&mut self) -> Message {
        loop {
            let message = self.next().await.expect("the stream is open");
            if message.id.is_some() {
                return message;
            }
        }
    }
}

/// Stream settings with a long poll, so only the bus can deliver quickly.
fn bus_only() -> TestOptions {
    TestOptions {
        event_stream: StreamSettings {
            heartbeat: Duration::from_secs(15),
            poll: Duration::from_secs(60),
        },
        ..TestOptions::default()
    }
}

each_backend! {
    async fn pull_reads_oldest_first_by_cursor_and_filters_by_type(backend) {
        let app = TestApp::spawn(backend).await;
        let whe = endpoint(&app).await;
        let other = endpoint(&app).await;
        for n in 0..5 {
            let kind = if n % 2 == 0 { "customer.created" } else { "charge.succeeded" };
            ingest(&app, &whe, &format!("evt_{n}"), kind).await;
        }
        ingest(&app, &other, "evt_elsewhere", "customer.created").await;

        let (status, first) = pull(&app, &app.key, &whe, "?limit=2").await;
        assert_eq!(status, 200);
        assert_eq!(first["object"], "list");
        assert_eq!(first["url"], format!("/v1/webhooks/{whe}/events"));
        assert_eq!(ids(&first), ["evt_0", "evt_1"]);
        assert_eq!(first["has_more"], true);
        let item = &first["data"][0];
        assert_eq!(item["object"], "webhook_event");
        assert_eq!(item["type"], "customer.created");
        assert_eq!(item["event"]["id"], "evt_0");
        assert!(item["received_at"].as_str().unwrap().ends_with('Z'));
        let cursor = first["data"][1]["cursor"].as_str().unwrap().to_owned();

        let (_, rest) = pull(&app, &app.key, &whe, &format!("?after={cursor}")).await;
        assert_eq!(ids(&rest), ["evt_2", "evt_3", "evt_4"]);
        assert_eq!(rest["has_more"], false);

        let (_, customers) = pull(&app, &app.key, &whe, "?type=customer.created").await;
        assert_eq!(ids(&customers), ["evt_0", "evt_2", "evt_4"]);

        // The body is embedded byte for byte, as Stripe sent it.
        let raw = app
            .client
            .get(app.url(&format!("/v1/webhooks/{whe}/events?limit=1")))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let sent = String::from_utf8(body("evt_0", "customer.created")).unwrap();
        assert!(raw.contains(&format!("\"event\":{sent}}}")), "{raw}");
        app.stop().await;
    }

    async fn pull_clamps_the_limit_and_refuses_unknown_parameters(backend) {
        let app = TestApp::spawn(backend).await;
        let whe = endpoint(&app).await;
        for n in 0..105 {
            store_at(&app, &whe, &format!("evt_{n}"), "customer.created", recent()).await;
        }
        let (_, page) = pull(&app, &app.key, &whe, "?limit=500").await;
        assert_eq!(page["data"].as_array().unwrap().len(), 100);
        assert_eq!(page["has_more"], true);
        let (_, page) = pull(&app, &app.key, &whe, "?limit=0").await;
        assert_eq!(page["data"].as_array().unwrap().len(), 1);
        let (_, page) = pull(&app, &app.key, &whe, "").await;
        assert_eq!(page["data"].as_array().unwrap().len(), 10);

        let (status, error) = pull(&app, &app.key, &whe, "?starting_after=3").await;
        assert_eq!(status, 400);
        assert_eq!(error["error"]["code"], "parameter_unknown");
        let (status, error) = pull(&app, &app.key, &whe, "?after=abc").await;
        assert_eq!(status, 400);
        assert_eq!(error["error"]["param"], "after");
        app.stop().await;
    }

    async fn only_agent_keys_of_the_workspace_allowed_the_connection_read_events(backend) {
        let app = TestApp::spawn(backend).await;
        let whe = endpoint(&app).await;
        ingest(&app, &whe, "evt_1", "customer.created").await;

        // Another workspace's agent key: 404, as if the endpoint did not exist.
        let other = app.store.ensure_workspace("other").await.unwrap().id;
        let foreign = create_key(app.store.as_ref(), &other, KeySpec::agent("foreign"), &crate::support::test_origin())
            .await
            .unwrap()
            .key
            .to_string();
        let (status, error) = pull(&app, &foreign, &whe, "").await;
        assert_eq!(status, 404);
        assert_eq!(error["error"]["code"], "resource_missing");
        let unknown = EndpointId::generate();
        let (status, missing) = pull(&app, &app.key, &unknown, "").await;
        assert_eq!(status, 404);
        assert_eq!(
            error["error"]["message"].as_str().unwrap().replace(whe.as_str(), "ID"),
            missing["error"]["message"].as_str().unwrap().replace(unknown.as_str(), "ID"),
            "a foreign endpoint reads exactly like a missing one"
        );
        // The other workspace's own endpoint is readable by its key, not by ours.
        let theirs = endpoint_in(&app, &other).await;
        assert_eq!(pull(&app, &foreign, &theirs, "").await.0, 200);
        assert_eq!(pull(&app, &app.key, &theirs, "").await.0, 404);

        // An admin key manages, it does not read events.
        let admin = create_key(
            app.store.as_ref(),
            &app.workspace,
            KeySpec { name: "admin".into(), role: Role::Admin, ..KeySpec::default() },
            &crate::support::test_origin(),
        )
        .await
        .unwrap()
        .key
        .to_string();
        let (status, error) = pull(&app, &admin, &whe, "").await;
        assert_eq!(status, 403);
        assert_eq!(error["error"]["code"], "agentgate_scope_denied");

        // A key limited to other connections: 403 naming the connection scope.
        let scoped = |connections: Vec<String>| KeySpec {
            name: "scoped".into(),
            scopes: Scopes { connections, ..Scopes::default() },
            ..KeySpec::default()
        };
        let elsewhere = create_key(app.store.as_ref(), &app.workspace, scoped(vec!["billing".into()]), &crate::support::test_origin())
            .await
            .unwrap()
            .key
            .to_string();
        let (status, error) = pull(&app, &elsewhere, &whe, "").await;
        assert_eq!(status, 403);
        assert!(error["error"]["message"].as_str().unwrap().contains("connection"));
        let allowed = create_key(app.store.as_ref(), &app.workspace, scoped(vec!["stripe".into()]), &crate::support::test_origin())
            .await
            .unwrap()
            .key
            .to_string();
        assert_eq!(pull(&app, &allowed, &whe, "").await.0, 200);

        // No key at all.
        let response = app
            .client
            .get(app.url(&format!("/v1/webhooks/{whe}/events/stream")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        app.stop().await;
    }

    async fn every_read_of_an_identified_key_is_in_its_workspaces_log(backend) {
        let app = TestApp::spawn(backend).await;
        let whe = endpoint(&app).await;
        ingest(&app, &whe, "evt_1", "customer.created").await;
        let other = app.store.ensure_workspace("other").await.unwrap().id;
        let theirs = endpoint_in(&app, &other).await;

        let page = app
            .client
            .get(app.url(&format!("/v1/webhooks/{whe}/events?limit=5&type=customer.created")))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let page_request_id = page.headers()["agentgate-request-id"].to_str().unwrap().to_owned();
        let mut stream = SseClient::open(&app, &whe, None).await;
        assert_eq!(stream.next_event().await.event.as_deref(), Some("customer.created"));
        let (status, refused) = pull(&app, &app.key, &whe, "?colour=red").await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(pull(&app, &app.key, &theirs, "").await.0, 404);
        let anonymous = app.client.get(app.url(&format!("/v1/webhooks/{whe}/events"))).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);

        let mut records = app.logged(4).await;
        records.sort_by_key(|r| r.id);
        assert_eq!(records.len(), 4, "one entry a read of an identified key: {records:?}");
        let base = format!("/v1/webhooks/{whe}/events");
        let seen: Vec<_> = records.iter().map(|r| {
            let e = &r.entry;
            (e.operation.as_deref().unwrap(), e.path.as_str(), e.status, &*e.outcome, e.connection.as_str(), e.reason.as_deref())
        }).collect();
        assert_eq!(seen, vec![
            ("webhooks.events.list", &*format!("{base}?limit&type"), 200, "read", "stripe", None),
            ("webhooks.events.stream", &*format!("{base}/stream"), 200, "read", "stripe", None),
            ("webhooks.events.list", &*format!("{base}?colour"), 400, "caller", "stripe", Some("parameter_unknown colour")),
            ("webhooks.events.list", &*format!("/v1/webhooks/{theirs}/events"), 404, "caller", "", Some("resource_missing id")),
        ]);
        let key_id = app.key_id().await;
        for record in &records {
            let e = &record.entry;
            assert_eq!((e.key_id.as_str(), &*e.via, &*e.method), (key_id.as_str(), "http", "GET"));
            assert_eq!(e.client, Some(std::net::IpAddr::from([127, 0, 0, 1])));
        }
        assert_eq!(records[0].entry.request_id, page_request_id);
        let query = agentgate::store::LogQuery { limit: 100, ..Default::default() };
        let theirs_log = app.store.list_request_logs(&other, query).await.unwrap();
        assert!(theirs_log.iter().all(|r| crate::support::is_test_setup(&r.entry)), "nothing in the endpoint owner's log");
        app.stop().await;
    }

    async fn a_stream_opened_before_an_event_is_stored_receives_it_at_once(backend) {
        let app = TestApp::spawn_with(backend, bus_only()).await;
        let whe = endpoint(&app).await;
        let mut first = SseClient::open(&app, &whe, None).await;
        let mut second = SseClient::open(&app, &whe, None).await;
        let mut latencies = Vec::new();
        for n in 0..5 {
            let id = format!("evt_live_{n}");
            let started = Instant::now();
            let seq = ingest(&app, &whe, &id, "invoice.paid").await;
            let message = first.next_event().await;
            latencies.push(started.elapsed());
            assert_eq!(message.id, Some(seq.to_string()));
            assert_eq!(message.event.as_deref(), Some("invoice.paid"));
            let data = message.data.as_deref().unwrap();
            assert!(!data.contains('\n'), "one data line: {data}");
            assert!(data.contains(r#""data":{"object":{"amount":1.50}}"#), "{data}");
            let item: Value = serde_json::from_str(data).unwrap();
            assert_eq!(item["id"], id.as_str());
            assert_eq!(item["cursor"], seq.to_string());
            assert_eq!(item["event"]["type"], "invoice.paid");
            assert_eq!(second.next_event().await.id, Some(seq.to_string()), "every open stream");
        }
        latencies.sort();
        eprintln!("store + notice to SSE message: {latencies:?}");
        assert!(
            latencies[2] < Duration::from_millis(100),
            "median {:?} (the poll is 60 s, so this is the bus)",
            latencies[2]
        );
        app.stop().await;
    }

    async fn a_stream_resumed_with_last_event_id_receives_exactly_what_it_missed(backend) {
        let app = TestApp::spawn_with(backend, bus_only()).await;
        let whe = endpoint(&app).await;
        let backlog = ingest(&app, &whe, "evt_a", "customer.created").await;
        let mut stream = SseClient::open(&app, &whe, None).await;
        assert_eq!(stream.next_event().await.id, Some(backlog.to_string()), "the backlog first");
        let seen = ingest(&app, &whe, "evt_b", "customer.created").await;
        assert_eq!(stream.next_event().await.id, Some(seen.to_string()));
        drop(stream);

        let missed: Vec<String> = [
            ingest(&app, &whe, "evt_c", "customer.updated").await,
            ingest(&app, &whe, "evt_d", "customer.deleted").await,
        ]
        .iter()
        .map(i64::to_string)
        .collect();
        let mut resumed = SseClient::open(&app, &whe, Some(&seen.to_string())).await;
        assert_eq!(resumed.next_event().await.id.as_ref(), Some(&missed[0]));
        assert_eq!(resumed.next_event().await.id.as_ref(), Some(&missed[1]));
        let live = ingest(&app, &whe, "evt_e", "customer.created").await;
        let next = resumed.next_event().await;
        assert_eq!(next.id, Some(live.to_string()), "nothing twice, nothing skipped");
        let item: Value = serde_json::from_str(next.data.as_deref().unwrap()).unwrap();
        assert_eq!(item["id"], "evt_e");

        // `?after=` starts there too; Last-Event-ID wins over it on reconnect.
        let response = app
            .client
            .get(app.url(&format!("/v1/webhooks/{whe}/events/stream?after={backlog}")))
            .bearer_auth(&app.key)
            .header("Last-Event-ID", &missed[1])
            .send()
            .await
            .unwrap();
        let mut after = SseClient { body: response.bytes_stream().boxed(), buffer: String::new() };
        assert_eq!(after.next_event().await.id, Some(live.to_string()));
        app.stop().await;
    }

    async fn events_stored_without_a_notice_reach_the_stream_by_polling(backend) {
        let options = TestOptions {
            event_stream: StreamSettings {
                heartbeat: Duration::from_secs(15),
                poll: Duration::from_millis(200),
            },
            ..TestOptions::default()
        };
        let app = TestApp::spawn_with(backend, options).await;
        let whe = endpoint(&app).await;
        let mut stream = SseClient::open(&app, &whe, None).await;
        // As another instance would: stored, no notice on this process's bus.
        let seq = store_at(&app, &whe, "evt_remote", "customer.created", recent()).await;
        assert_eq!(stream.next_event().await.id, Some(seq.to_string()));
        app.stop().await;
    }

    async fn retention_prunes_events_older_than_the_retention(backend) {
        let app = TestApp::spawn(backend).await;
        let whe = endpoint(&app).await;
        let day = 24 * 60 * 60 * 1000;
        // A year ahead, so the server's own pruner (real clock) leaves these events alone.
        let now = recent() + 365 * day;
        store_at(&app, &whe, "evt_old", "customer.created", now - 31 * day).await;
        store_at(&app, &whe, "evt_edge", "customer.created", now - 30 * day + 1).await;
        store_at(&app, &whe, "evt_new", "customer.created", now - day).await;
        let clock = ManualClock::at(Duration::from_millis(now as u64));
        let pruned = prune_events(&app, &clock).await;
        assert_eq!(pruned, 1);
        let (_, page) = pull(&app, &app.key, &whe, "").await;
        assert_eq!(ids(&page), ["evt_edge", "evt_new"]);
        clock.advance(Duration::from_secs(60 * 60 * 24 * 365));
        // The newest event stays, however old: see the next test.
        let pruned = prune_events(&app, &clock).await;
        assert_eq!(pruned, 1);
        let (_, page) = pull(&app, &app.key, &whe, "").await;
        assert_eq!(ids(&page), ["evt_new"]);
        app.stop().await;
    }

    async fn pruning_every_old_event_keeps_the_newest_so_cursors_never_go_back(backend) {
        let app = TestApp::spawn(backend).await;
        let whe = endpoint(&app).await;
        let day = 24 * 60 * 60 * 1000;
        let now = recent() + 365 * day;
        store_at(&app, &whe, "evt_first", "customer.created", now - 40 * day).await;
        let newest = store_at(&app, &whe, "evt_second", "customer.created", now - 40 * day).await;
        let clock = ManualClock::at(Duration::from_millis(now as u64));
        assert_eq!(prune_events(&app, &clock).await, 1);
        // Had the newest gone too, SQLite would number the next event from 1 again, and an
        // agent (or a push destination) holding the newest's cursor would never see it.
        let next = store_at(&app, &whe, "evt_third", "customer.created", now).await;
        assert!(next > newest, "cursor {next} handed out again (newest was {newest})");
        let (_, page) = pull(&app, &app.key, &whe, &format!("?after={newest}")).await;
        assert_eq!(ids(&page), ["evt_third"]);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_deletes_in_chunks_until_nothing_old_is_left() {
    let app = TestApp::spawn(crate::support::backend::Backend::Sqlite).await;
    let whe = endpoint(&app).await;
    let now = recent();
    let events: Vec<NewEvent> = (0..2_500)
        .map(|n| NewEvent {
            endpoint_id: whe.clone(),
            workspace_id: app.workspace.clone(),
            event_id: format!("evt_{n}"),
            event_type: "customer.created".into(),
            received_at: now,
            payload: body(&format!("evt_{n}"), "customer.created"),
        })
        .collect();
    app.store.insert_events(&events).await.unwrap();
    let fresh = store_at(&app, &whe, "evt_fresh", "customer.created", now + 10).await;
    assert_eq!(app.store.prune_events(now + 10).await.unwrap(), 2_500);
    let left = app.store.list_events(&whe, 0, 100, None).await.unwrap();
    assert_eq!(left.iter().map(|r| r.seq).collect::<Vec<_>>(), [fresh]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_prunes_expired_events_and_log_entries_when_it_starts() {
    let app = TestApp::spawn(crate::support::backend::Backend::Sqlite).await;
    // This server's own first run is over before the old records are made, so the counts
    // below are the restarted server's.
    pruned_counts(&app).await;
    let whe = endpoint(&app).await;
    let day = 24 * 60 * 60 * 1000;
    let ancient = agentgate::time::now_millis() - 400 * day;
    store_at(&app, &whe, "evt_ancient", "customer.created", ancient).await;
    store_at(&app, &whe, "evt_recent", "customer.created", recent()).await;
    let entries = vec![
        agentgate::store::RequestLogEntry {
            created_at: ancient,
            ..crate::support::log_entry(&app.workspace, "req_ancient")
        },
        crate::support::log_entry(&app.workspace, "req_recent"),
    ];
    app.store
        .insert_request_logs(entries, &[], agentgate::store::LogPace::CatchUp)
        .await
        .unwrap();
    let app = app.restart().await;
    crate::support::eventually(Duration::from_secs(5), "the pruner", || async {
        let events = app.store.list_events(&whe, 0, 10, None).await.unwrap();
        let log = app.logged(0).await;
        let logged: Vec<&str> = log.iter().map(|e| e.entry.request_id.as_str()).collect();
        (ids_of(&events) == ["evt_recent"]
            && logged.contains(&"req_recent")
            && !logged.contains(&"req_ancient"))
        .then_some(())
    })
    .await;
    let metrics = pruned_counts(&app).await;
    for line in [
        "agentgate_retention_pruned_total{records=\"events\"} 1",
        "agentgate_retention_pruned_total{records=\"request_log\"} 1",
        "agentgate_retention_pruned_total{records=\"installation_audit\"} 0",
        "agentgate_retention_failures_total 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    app.stop().await;
}

/// The server's metrics once its first retention run has counted what it pruned.
async fn pruned_counts(app: &TestApp) -> String {
    crate::support::eventually(Duration::from_secs(5), "the first run counted", || async {
        let response = app.client.get(app.url("/metrics")).send().await.unwrap();
        let text = response.text().await.unwrap();
        text.contains("agentgate_retention_pruned_total{records=\"installation_audit\"}")
            .then_some(text)
    })
    .await
}

/// A retention run that fails is counted, for an alert: the records it could not delete
/// stay, and the database grows, until a later run succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_retention_run_is_counted() {
    let app = TestApp::spawn(crate::support::backend::Backend::Sqlite).await;
    pruned_counts(&app).await;
    let whe = endpoint(&app).await;
    let ancient = agentgate::time::now_millis() - 40 * 24 * 60 * 60 * 1000;
    store_at(&app, &whe, "evt_ancient", "customer.created", ancient).await;
    store_at(&app, &whe, "evt_recent", "customer.created", recent()).await;
    app.db.refuse_deletes("events", true).await;
    let app = app.restart().await;
    crate::support::eventually(Duration::from_secs(5), "the failure counted", || async {
        let response = app.client.get(app.url("/metrics")).send().await.unwrap();
        let text = response.text().await.unwrap();
        text.lines()
            .any(|l| l == "agentgate_retention_failures_total 1")
            .then_some(())
    })
    .await;
    let left = app.store.list_events(&whe, 0, 10, None).await.unwrap();
    assert_eq!(ids_of(&left), ["evt_ancient", "evt_recent"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_sends_heartbeats() {
    let options = TestOptions {
        event_stream: StreamSettings {
            heartbeat: Duration::from_millis(100),
            poll: Duration::from_secs(60),
        },
        ..TestOptions::default()
    };
    let app = TestApp::spawn_with(crate::support::backend::Backend::Sqlite, options).await;
    let whe = endpoint(&app).await;
    let mut stream = SseClient::open(&app, &whe, None).await;
    for _ in 0..2 {
        let message = stream.next().await.expect("open");
        assert_eq!(message.comment.as_deref(), Some("heartbeat"), "{message:?}");
        assert!(message.id.is_none());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_end_when_the_server_stops() {
    let app = TestApp::spawn(crate::support::backend::Backend::Sqlite).await;
    let whe = endpoint(&app).await;
    let mut stream = SseClient::open(&app, &whe, None).await;
    let started = Instant::now();
    app.stop().await;
    // The grace period is 10 s; the stream must not hold the shutdown that long.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(stream.next().await.is_none(), "the stream ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cli_lists_shows_and_tails() {
    use std::io::{BufRead, BufReader};

    let app = TestApp::spawn(crate::support::backend::Backend::Sqlite).await;
    let whe = endpoint(&app).await;
    let first = ingest(&app, &whe, "evt_cli_1", "customer.created").await;
    ingest(&app, &whe, "evt_cli_2", "charge.succeeded").await;
    let cli = |args: &[&str]| run(&app.db.url, &app.master_key, args, "");

    let listed = cli(&["events", "list", whe.as_str()]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    assert!(text.starts_with("CURSOR"), "{text}");
    assert!(
        text.contains("evt_cli_1") && text.contains("charge.succeeded"),
        "{text}"
    );

    let json = cli(&[
        "events",
        "list",
        whe.as_str(),
        "--after",
        &first.to_string(),
        "--type",
        "charge.succeeded",
        "--json",
    ]);
    let items: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["id"], "evt_cli_2");
    assert_eq!(items[0]["event"]["type"], "charge.succeeded");

    let shown = cli(&["events", "show", "evt_cli_1"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let event: Value = serde_json::from_str(&stdout(&shown)).unwrap();
    assert_eq!(event["id"], "evt_cli_1");
    assert!(
        stdout(&shown).contains("\n  \"object\": \"event\""),
        "pretty"
    );

    app.store.ensure_workspace("other").await.unwrap();
    let foreign = cli(&["events", "list", whe.as_str(), "--workspace", "other"]);
    assert!(!foreign.status.success());
    let missing = cli(&["events", "show", "evt_nope"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("evt_nope"),
        "{}",
        stderr(&missing)
    );

    let mut tail = binary()
        .args([
            "events",
            "tail",
            whe.as_str(),
            "--after",
            &first.to_string(),
            "--json",
        ])
        .env("AGENTGATE_DATABASE", &app.db.url)
        .env("AGENTGATE_MASTER_KEY", &app.master_key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let line: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(line["id"], "evt_cli_2");
    ingest(&app, &whe, "evt_cli_3", "invoice.paid").await;
    let line: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(line["id"], "evt_cli_3");
    tail.kill().unwrap();
    let _ = tail.wait();
    app.stop().await;
}

each_backend! {
    async fn an_event_posted_to_ingest_reaches_an_open_stream_and_pull(backend) {
        use agentgate::crypto::{MasterKey, Sealer};
        use agentgate::webhooks::endpoints::{add_secret, create_endpoint, SigningSecret};
        use base64::Engine;

        let app = TestApp::spawn_with(backend, bus_only()).await;
        let whe = create_endpoint(app.store.as_ref(), &app.workspace, "stripe", &[], &crate::support::test_origin())
            .await
            .unwrap();
        let master = base64::engine::general_purpose::STANDARD
            .decode(&app.master_key)
            .unwrap();
        let sealer = Sealer::new(&MasterKey::from_bytes(master.try_into().unwrap()));
        let secret = "whsec_readTestSecret0123456789";
        add_secret(
            app.store.as_ref(),
            &sealer,
            &whe,
            &SigningSecret::parse(secret).unwrap(),
            None,
            &crate::support::test_origin(),
        )
        .await
        .unwrap();
        let mut stream = SseClient::open(&app, &whe.id, None).await;

        let payload = body("evt_ingested", "payment_intent.succeeded");
        let now = agentgate::time::now_millis() / 1000;
        let signature = agentgate::webhooks::signature::sign(secret.as_bytes(), now, &payload);
        let started = Instant::now();
        let response = app
            .client
            .post(app.url(&format!("/webhooks/ingest/{}", whe.id)))
            .header("Stripe-Signature", format!("t={now},v1={signature}"))
            .header("Content-Type", "application/json")
            .body(payload.clone())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
        let acknowledged = started.elapsed();
        let message = stream.next_event().await;
        let streamed = started.elapsed();
        eprintln!("ingest 2xx after {acknowledged:?}, on the stream after {streamed:?}");
        assert_eq!(message.event.as_deref(), Some("payment_intent.succeeded"));
        assert!(
            streamed - acknowledged < Duration::from_millis(100),
            "on the stream {:?} after the 2xx",
            streamed - acknowledged
        );
        let item: Value = serde_json::from_str(message.data.as_deref().unwrap()).unwrap();
        assert_eq!(item["id"], "evt_ingested");

        let (status, page) = pull(&app, &app.key, &whe.id, "").await;
        assert_eq!(status, 200);
        assert_eq!(ids(&page), ["evt_ingested"]);
        assert_eq!(page["data"][0]["cursor"], item["cursor"]);
        app.stop().await;
    }
}
