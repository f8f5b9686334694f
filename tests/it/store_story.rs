//! The store as a story run on both backends, and the rule that both have the same
//! migrations.

use agentgate::store::{LogPace, LogQuery, RequestLogEntry, StoreError};

use crate::each_backend;
use crate::support::app::open_store;
use crate::support::backend::TestDb;

#[test]
fn both_backends_have_the_same_migration_names() {
    let names = |dir: &str| {
        let mut names: Vec<String> =
            std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        names.sort();
        names
    };
    let sqlite = names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, names("postgres"));
}

each_backend! {
    async fn keys_and_logs_round_trip_and_stay_in_their_workspace(backend) {
        let db = TestDb::create(backend).await;
        let store = open_store(&db.url).await;
        let default = store.ensure_workspace("default").await.unwrap();
        let other = store.ensure_workspace("other").await.unwrap();
        assert_eq!(store.ensure_workspace("default").await.unwrap(), default, "idempotent");
        let created = agentgate::keys::create_key(store.as_ref(), &default.id, agentgate::keys::KeySpec::agent("a"), &crate::support::test_origin()).await.unwrap();
        let found = store.find_key_by_hash(&created.record.hash).await.unwrap().unwrap();
        assert_eq!(found, created.record);
        assert!(store.list_keys(&other.id).await.unwrap().is_empty());
        assert!(matches!(store.revoke_key(&other.id, &created.record.id, 1, &crate::support::test_audit(&other.id)).await, Err(StoreError::NotFound)));
        let before = store.generation().await.unwrap();
        store.revoke_key(&default.id, &created.record.id, 5, &crate::support::test_audit(&default.id)).await.unwrap();
        assert!(store.generation().await.unwrap() > before, "a revocation moves the generation");
        let entry = |i: i64| RequestLogEntry {
            created_at: i,
            idempotency_key: Some("k".into()),
            outcome: if i % 2 == 0 { "forwarded".into() } else { "caller".into() },
            reason: (i % 2 == 1).then(|| "agentgate_scope_denied operation".into()),
            via: if i % 3 == 0 { "mcp".into() } else { "http".into() },
            ..crate::support::log_entry(&default.id, &format!("agr_{i}"))
        };
        let entries: Vec<_> = (0..1200).map(entry).collect();
        store.insert_request_logs(entries.clone(), &[(created.record.id.clone(), 77)], LogPace::Share).await.unwrap();
        let keys = store.list_keys(&default.id).await.unwrap();
        assert_eq!(keys[0].last_used_at, Some(77));
        let newest = store.list_request_logs(&default.id, LogQuery { after_id: None, limit: 3, ..LogQuery::default() }).await.unwrap();
        assert_eq!(newest.iter().map(|r| r.entry.created_at).collect::<Vec<_>>(), [1197, 1198, 1199]);
        assert_eq!(newest[0].entry, entry(1197), "every column round-trips, operation and reason included");
        // 1,200 rows are 37 statements of 32 rows and one of 16: every row of every
        // statement comes back as it went in, in order.
        let all = store.list_request_logs(&default.id, LogQuery { after_id: None, limit: 1200, ..LogQuery::default() }).await.unwrap();
        assert!(all.into_iter().map(|r| r.entry).eq(entries), "every row round-trips in order");
        let after = store.list_request_logs(&default.id, LogQuery { after_id: Some(newest[0].id), limit: 10, ..LogQuery::default() }).await.unwrap();
        assert_eq!(after.len(), 2);
        assert!(store.list_request_logs(&other.id, LogQuery { after_id: None, limit: 10, ..LogQuery::default() }).await.unwrap().is_empty());
    }
}
