//! Retention of the request log and the installation's audit (`src/retention.rs`): what is
//! older than `--log-retention` goes, in chunks; `forever` keeps everything; and the newest
//! row of each table stays however old, so ids are never handed out again.

use std::time::Duration;

use agentgate::installation_audit::{Action, InstallationOrigin};
use agentgate::retention::{prune, LogRetention, Pruned, Retention};
use agentgate::store::{LogPace, LogQuery, PrunedLogs, RequestLogEntry};
use agentgate::time::ManualClock;

use crate::each_backend;
use crate::support::app::TestApp;
use crate::support::log_entry;

const DAY: i64 = 24 * 60 * 60 * 1000;

/// A time two years ahead: the server's own pruner, which runs at start on the real clock,
/// leaves entries made around it alone, while the tests' clock can make them old.
fn ahead() -> i64 {
    agentgate::time::now_millis() + 730 * DAY
}

/// Appends a request log entry of the app's workspace per `(request id, time)`.
async fn log_at(app: &TestApp, entries: &[(String, i64)]) {
    let entries: Vec<RequestLogEntry> = entries
        .iter()
        .map(|(request_id, at)| RequestLogEntry {
            created_at: *at,
            ..log_entry(&app.workspace, request_id)
        })
        .collect();
    app.store
        .insert_request_logs(entries, &[], LogPace::CatchUp)
        .await
        .unwrap();
}

/// Writes an installation audit record with `subject`, made at `at`.
async fn audit_at(app: &TestApp, subject: &str, at: i64) {
    let record = agentgate::store::InstallationRecord {
        created_at: at,
        ..InstallationOrigin::cli().applied(Action::WorkspaceCreated, subject)
    };
    app.store.record_installation(&record).await.unwrap();
}

/// The workspace's request log, oldest first, as (id, request id).
async fn log(app: &TestApp) -> Vec<(i64, String)> {
    let query = LogQuery {
        limit: 10_000,
        ..LogQuery::default()
    };
    let entries = app
        .store
        .list_request_logs(&app.workspace, query)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|e| (e.id, e.entry.request_id))
        .collect()
}

/// The installation's audit, oldest first, as (id, subject).
async fn audit(app: &TestApp) -> Vec<(i64, Option<String>)> {
    let mut records = app
        .store
        .list_installation_audit(None, 1_000)
        .await
        .unwrap();
    records.reverse();
    records.into_iter().map(|r| (r.id, r.subject)).collect()
}

fn request_ids(log: &[(i64, String)]) -> Vec<&str> {
    log.iter()
        .map(|(_, request_id)| request_id.as_str())
        .collect()
}

fn subjects(audit: &[(i64, Option<String>)]) -> Vec<Option<&str>> {
    audit
        .iter()
        .map(|(_, subject)| subject.as_deref())
        .collect()
}

each_backend! {
    async fn the_logs_keep_what_is_younger_than_the_log_retention(backend) {
        let app = TestApp::spawn(backend).await;
        let now = ahead();
        let keep = 365 * DAY;
        // More than two of the pruner's chunks of 1,000, so it has to go round.
        let old: Vec<(String, i64)> =
            (0..2_500).map(|n| (format!("old_{n}"), now - keep - DAY)).collect();
        for chunk in old.chunks(500) {
            log_at(&app, chunk).await;
        }
        log_at(&app, &[("edge".into(), now - keep + 1), ("recent".into(), now - DAY)]).await;
        audit_at(&app, "old", now - keep - DAY).await;
        audit_at(&app, "edge", now - keep + 1).await;
        audit_at(&app, "recent", now - DAY).await;
        let clock = ManualClock::at(Duration::from_millis(now as u64));

        let forever = Retention { logs: LogRetention::Forever, ..Retention::default() };
        let pruned = prune(app.store.as_ref(), &forever, &clock).await.unwrap();
        assert_eq!(pruned, Pruned::default());
        let logged = log(&app).await;
        let audited = audit(&app).await;
        assert!(logged.len() >= 2_502, "{} entries", logged.len());

        let pruned = prune(app.store.as_ref(), &Retention::default(), &clock).await.unwrap();
        assert_eq!(request_ids(&log(&app).await), ["edge", "recent"]);
        assert_eq!(subjects(&audit(&app).await), [Some("edge"), Some("recent")]);
        assert_eq!(
            pruned.logs,
            PrunedLogs {
                request_log: logged.len() as u64 - 2,
                installation_audit: audited.len() as u64 - 2,
            }
        );
        app.stop().await;
    }

    async fn pruning_every_old_entry_keeps_the_newest_so_ids_never_go_back(backend) {
        let app = TestApp::spawn(backend).await;
        let now = ahead();
        log_at(&app, &[("first".into(), now - 400 * DAY), ("second".into(), now - 400 * DAY)])
            .await;
        audit_at(&app, "first", now - 400 * DAY).await;
        audit_at(&app, "second", now - 400 * DAY).await;
        let clock = ManualClock::at(Duration::from_millis(now as u64));
        prune(app.store.as_ref(), &Retention::default(), &clock).await.unwrap();

        // Had the newest gone too, SQLite would number the next row from 1 again, and
        // `logs tail` or an API cursor holding the newest's id would never see it.
        let logged = log(&app).await;
        assert_eq!(request_ids(&logged), ["second"]);
        log_at(&app, &[("third".into(), now)]).await;
        let after = log(&app).await;
        assert_eq!(request_ids(&after), ["second", "third"]);
        assert!(after[1].0 > logged[0].0, "id {} handed out again", after[1].0);

        let audited = audit(&app).await;
        assert_eq!(subjects(&audited), [Some("second")]);
        audit_at(&app, "third", now).await;
        let after = audit(&app).await;
        assert_eq!(subjects(&after), [Some("second"), Some("third")]);
        assert!(after[1].0 > audited[0].0, "id {} handed out again", after[1].0);
        app.stop().await;
    }
}
