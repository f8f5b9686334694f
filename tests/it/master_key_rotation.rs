//! `agentgate master-key rotate` while the server serves: stopped half-way (by its batch
//! limit, then by SIGKILL) and run again, every secret stays readable through the running
//! server, and in the end every secret is on the new key and the key file holds only it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use agentgate::crypto::{MasterKey, MasterKeySource, Sealer, SecretPurpose};
use agentgate::store::sealed::SealedTable;
use agentgate::store::Store;
use agentgate::webhooks::endpoints::{add_secret, create_endpoint, SigningSecret};
use agentgate::webhooks::push::{create_destination, DestinationSpec};

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::cli::{binary, stderr, stdout};
use crate::support::eventually;

const CONNECTIONS: usize = 6;

fn secret_of(index: usize) -> String {
    format!("sk_test_51RotationCanary{index}abcdefghijklmnopqrstuv")
}

/// `agentgate master-key rotate ARGS` with the master key from the key file, as an
/// operator runs it.
pub fn rotate_command(app: &TestApp, key_file: &Path, args: &[&str]) -> Command {
    let mut command = binary();
    command
        .arg("master-key")
        .arg("rotate")
        .args(args)
        .env("AGENTGATE_DATABASE", &app.db.url)
        .env("AGENTGATE_MASTER_KEY_FILE", key_file)
        .env_remove("AGENTGATE_MASTER_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

pub fn run(mut command: Command) -> Output {
    command.output().expect("agentgate runs")
}

fn key_file_keys(path: &Path) -> Vec<MasterKey> {
    MasterKey::load_all(MasterKeySource::File {
        path: path.to_path_buf(),
        create_if_missing: false,
    })
    .expect("the key file reads")
}

/// Every sealed row, opened with `sealer`: (table, id, on the sealer's current key).
async fn open_everything(store: &dyn Store, sealer: &Sealer) -> Vec<(SealedTable, String, bool)> {
    let mut seen = Vec::new();
    for table in SealedTable::ALL {
        for row in store.sealed_page(table, "", 10_000).await.unwrap() {
            sealer
                .open(table.purpose(), &row.workspace_id, &row.id, &row.secret)
                .unwrap_or_else(|e| panic!("{} {} does not open: {e}", table.name(), row.id));
            seen.push((table, row.id.clone(), sealer.is_current(&row.secret)));
        }
    }
    seen
}

/// The `stripe` connection still answers with its key.
async fn every_connection_is_untouched(app: &TestApp) {
    assert_eq!(app.get("customers").await.status(), 200);
}

/// Every connection answers through the running server, with its own key reaching Stripe.
async fn every_connection_serves(app: &TestApp) {
    for index in 0..CONNECTIONS {
        let response = app
            .client
            .get(app.url(&format!("/v1/connections/c{index}/customers")))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "connection c{index}");
        let sent = app.double.received().pop().unwrap();
        assert_eq!(
            sent.headers["authorization"],
            format!("Bearer {}", secret_of(index)).as_str()
        );
    }
}

async fn store_secrets(app: &TestApp, key_file: &Path) {
    for index in 0..CONNECTIONS {
        app.store_connection(&format!("c{index}"), &secret_of(index))
            .await;
    }
    let sealer = Sealer::new(&key_file_keys(key_file).remove(0));
    let endpoint = create_endpoint(
        app.store.as_ref(),
        &app.workspace,
        "c0",
        &[],
        &crate::support::test_origin(),
    )
    .await
    .unwrap();
    let whsec = SigningSecret::parse("whsec_RotationCanary0123456789").unwrap();
    add_secret(
        app.store.as_ref(),
        &sealer,
        &endpoint,
        &whsec,
        None,
        &crate::support::test_origin(),
    )
    .await
    .unwrap();
    let spec = DestinationSpec {
        endpoint: endpoint.id.clone(),
        url: "http://127.0.0.1:9/hook".into(),
        event_types: Vec::new(),
        allow_private: true,
    };
    create_destination(
        app.store.as_ref(),
        &sealer,
        &app.workspace,
        spec,
        0,
        &crate::support::test_origin(),
    )
    .await
    .unwrap();
}

each_backend! {
    async fn rotation_stopped_half_way_and_resumed_keeps_every_secret_readable(backend) {
        let options = TestOptions { master_key_file: true, ..Default::default() };
        let app = TestApp::spawn_with(backend, options).await;
        let key_file: PathBuf = app.db.dir.path().join("master.key");
        store_secrets(&app, &key_file).await;
        let old = key_file_keys(&key_file).remove(0);
        every_connection_serves(&app).await;

        // Two batches of one secret, then stop: a rotation half done.
        let first = run(rotate_command(&app, &key_file, &["--generate", "--batch-size", "1", "--max-batches", "2"]));
        assert!(first.status.success(), "{}", stderr(&first));
        assert!(stdout(&first).contains("run `agentgate master-key rotate` again"), "{}", stdout(&first));
        let keys = key_file_keys(&key_file);
        assert_eq!(keys.len(), 2, "new key first, old key kept for opening");
        // The installation's audit has the run's start and where it stopped: two batches of
        // one secret, and the database's key check value.
        let new_key = Sealer::new(&keys[0]).key_id_hex();
        let recorded: Vec<_> = app.store.list_installation_audit(None, 10).await.unwrap().into_iter().rev()
            .map(|r| (r.action, r.subject, r.outcome, r.detail))
            .collect();
        assert_eq!(
            recorded,
            vec![
                ("cli.master_key.rotate".to_owned(), Some(new_key.clone()), "started".to_owned(), None),
                ("cli.master_key.rotate".to_owned(), Some(new_key), "stopped".to_owned(), Some("re-sealed 3 secret(s)".to_owned())),
            ]
        );
        assert!(keys[1].same_as(&old));
        let new_only = Sealer::new(&keys[0]);
        let both = Sealer::with_previous(&keys[0], &keys[1..]);
        let halfway = open_everything(app.store.as_ref(), &both).await;
        let on_new = halfway.iter().filter(|(_, _, current)| *current).count();
        assert_eq!(on_new, 2, "two batches of one: {halfway:?}");
        every_connection_serves(&app).await;

        // Run again and SIGKILL it once it has re-sealed more (or wherever it is, if it is
        // already done); then finish.
        let mut killed = rotate_command(&app, &key_file, &["--batch-size", "1"]).spawn().unwrap();
        eventually(Duration::from_secs(30), "the second run to make progress or end", || {
            let store = app.store.clone();
            let both = &both;
            let exited = killed.try_wait().ok().flatten().is_some();
            async move {
                let rows = open_everything(store.as_ref(), both).await;
                let on_new = rows.iter().filter(|(_, _, current)| *current).count();
                (exited || on_new > 2).then_some(())
            }
        })
        .await;
        let _ = killed.kill();
        let _ = killed.wait();
        every_connection_serves(&app).await;
        let done = run(rotate_command(&app, &key_file, &[]));
        assert!(done.status.success(), "{}", stderr(&done));
        // (The killed run may have finished, old key removal included, before the kill.)
        assert!(stdout(&done).contains("are on master key"), "{}", stdout(&done));

        let keys = key_file_keys(&key_file);
        assert_eq!(keys.len(), 1, "only the new key is left");
        let rows = open_everything(app.store.as_ref(), &new_only).await;
        assert_eq!(rows.len(), CONNECTIONS + 3, "the stripe connection, c0..c5, a webhook and a push secret: {rows:?}");
        assert!(rows.iter().all(|(_, _, current)| *current), "all on the new key: {rows:?}");
        let old_only = Sealer::new(&old);
        let row = app.store.sealed_page(SealedTable::Connections, "", 1).await.unwrap().remove(0);
        assert!(old_only.open(SecretPurpose::StripeKey, &row.workspace_id, &row.id, &row.secret).is_err());
        every_connection_serves(&app).await;

        app.stop().await;
    }

    async fn a_rotation_from_a_key_file_that_does_not_open_the_database_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let wrong = app.db.dir.path().join("wrong.key");
        MasterKey::write_key_file(&wrong, &[&MasterKey::generate()]).unwrap();
        let before = std::fs::read(&wrong).unwrap();
        let refused = run(rotate_command(&app, &wrong, &["--generate"]));
        assert!(!refused.status.success());
        assert!(stderr(&refused).contains("does not match"), "{}", stderr(&refused));
        assert_eq!(std::fs::read(&wrong).unwrap(), before, "the key file is untouched");
        every_connection_is_untouched(&app).await;
        app.stop().await;
    }

    async fn a_server_started_with_the_old_key_after_rotation_refuses_to_start(backend) {
        let options = TestOptions { master_key_file: true, ..Default::default() };
        let app = TestApp::spawn_with(backend, options).await;
        let key_file = app.db.dir.path().join("master.key");
        let done = run(rotate_command(&app, &key_file, &["--generate"]));
        assert!(done.status.success(), "{}", stderr(&done));
        let old = app.master_key.clone();
        let output = binary()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("AGENTGATE_DATABASE", &app.db.url)
            .env("AGENTGATE_MASTER_KEY", &old)
            .env_remove("AGENTGATE_MASTER_KEY_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(stderr(&output).contains("does not match"), "{}", stderr(&output));
        app.stop().await;
    }
}
