//! The installation's own audit (`src/installation_audit.rs`): workspaces created,
//! operators created and their passwords reset, dashboard sign-ins and master-key rotations
//! are recorded with who did them, through which surface and from where; a change whose
//! record cannot be written is not made; and no password, token or key is ever in a record.

use std::path::Path;
use std::process::Stdio;

use agentgate::crypto::{MasterKey, MasterKeySource, Sealer};
use agentgate::store::InstallationAuditEntry;
use reqwest::StatusCode;
use serde_json::Value;

use crate::dashboard::{setup_path, Browser, PASSWORD};
use crate::each_backend;
use crate::master_key_rotation::{rotate_command, run};
use crate::support::app::{TestApp, TestOptions};
use crate::support::cli::{self, binary, stderr, stdout};

/// A password given to the CLI on stdin.
const CLI_PASSWORD: &str = "installation audit canary password";

/// A name typed into the sign-in form that no operator has: it could be a password.
const UNKNOWN_NAME: &str = "TypedMyPassword123";

/// `agentgate master-key rotate ARGS` with the master key from the app's key file.
fn rotate(app: &TestApp, key_file: &Path, args: &[&str]) -> std::process::Output {
    run(rotate_command(app, key_file, args))
}

/// The CLI on the app's database with the key from the environment.
fn cli_run(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    cli::run(&app.db.url, &app.master_key, args, stdin)
}

/// The first key of a key file.
fn current_key(path: &Path) -> MasterKey {
    MasterKey::load_all(MasterKeySource::File {
        path: path.to_path_buf(),
        create_if_missing: false,
    })
    .unwrap()
    .remove(0)
}

/// Every record, oldest first, read from the store.
async fn records(app: &TestApp) -> Vec<InstallationAuditEntry> {
    let mut all = app.store.list_installation_audit(None, 1000).await.unwrap();
    all.reverse();
    all
}

/// A record's (actor, action, subject, outcome, detail).
fn summary(r: &InstallationAuditEntry) -> (&str, &str, Option<&str>, &str, Option<&str>) {
    (
        &r.actor,
        &r.action,
        r.subject.as_deref(),
        &r.outcome,
        r.detail.as_deref(),
    )
}

each_backend! {
    async fn cli_changes_and_master_key_rotations_are_recorded(backend) {
        let options = TestOptions { master_key_file: true, ..Default::default() };
        let app = TestApp::spawn_with(backend, options).await;
        let key_file = app.db.dir.path().join("master.key");
        let password_line = format!("{CLI_PASSWORD}\n");
        for (args, stdin) in [
            (&["workspaces", "create", "acme"][..], ""),
            (&["operators", "create", "ada"][..], password_line.as_str()),
            (&["operators", "reset-password", "ada"][..], password_line.as_str()),
        ] {
            let output = cli_run(&app, args, stdin);
            assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        }
        let done = rotate(&app, &key_file, &["--generate"]);
        assert!(done.status.success(), "{}", stderr(&done));
        let new_key = Sealer::new(&current_key(&key_file)).key_id_hex();

        let all = records(&app).await;
        let summaries: Vec<_> = all.iter().map(summary).collect();
        assert_eq!(
            summaries,
            vec![
                ("cli", "cli.workspaces.create", Some("acme"), "applied", None),
                ("cli", "cli.operators.create", Some("ada"), "applied", None),
                ("cli", "cli.operators.reset_password", Some("ada"), "applied", None),
                ("cli", "cli.master_key.rotate", Some(new_key.as_str()), "started", None),
                (
                    "cli",
                    "cli.master_key.rotate",
                    Some(new_key.as_str()),
                    "finished",
                    // The app's Stripe key and the database's key check value.
                    Some("re-sealed 2 secret(s); all 1 on this key"),
                ),
            ]
        );
        for record in &all {
            assert_eq!((record.via.as_str(), record.instance.as_deref()), ("cli", None));
            assert_eq!(record.client, None);
            assert!(record.request_id.starts_with("agr_"), "{record:?}");
        }
        assert!(all.windows(2).all(|w| w[0].created_at <= w[1].created_at));

        // The CLI lists them oldest first; no password and no key is in the listing.
        let listed = cli_run(&app, &["audit", "list", "--json"], "");
        assert!(listed.status.success(), "{}", stderr(&listed));
        let json: Value = serde_json::from_str(&stdout(&listed)).unwrap();
        let actions: Vec<&str> = json.as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
        assert_eq!(actions.first(), Some(&"cli.workspaces.create"));
        assert_eq!(actions.len(), 5);
        assert_eq!(json[4]["outcome"], "finished");
        let page = cli_run(&app, &["audit", "list", "--limit", "2", "--before", &all[2].id.to_string()], "");
        let table = stdout(&page);
        assert!(table.contains("cli.workspaces.create") && table.contains("cli.operators.create"), "{table}");
        assert!(!table.contains("reset_password"), "{table}");
        let key_text = current_key(&key_file).to_base64();
        for output in [stdout(&listed), table] {
            assert!(!output.contains(CLI_PASSWORD));
            assert!(!output.contains(key_text.as_str()));
        }
        let dump = app.db.dump();
        assert!(!dump.windows(CLI_PASSWORD.len()).any(|w| w == CLI_PASSWORD.as_bytes()));
        app.stop().await;
    }

    async fn dashboard_sign_ins_and_changes_are_recorded_with_the_client(backend) {
        let app = TestApp::spawn(backend).await;
        let done = Browser::new(&app).set_up(&app).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);

        let mut guesser = Browser::from_address(&app, "127.0.0.2");
        assert_eq!(guesser.sign_in("ada", "not the password at all").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(guesser.sign_in(UNKNOWN_NAME, PASSWORD).await.status, StatusCode::UNAUTHORIZED);

        let mut ada = Browser::from_address(&app, "127.0.0.3");
        assert_eq!(ada.sign_in("ada", PASSWORD).await.location(), "/");
        let page = ada.get("/workspaces").await;
        let created = ada.post("/workspaces", &[("csrf", &page.csrf()), ("name", "acme")]).await;
        assert!(created.body.contains("Created workspace"), "{}", created.body);
        let page = ada.get("/operators").await;
        let added = ada.post("/operators", &[("csrf", &page.csrf()), ("name", "grace"), ("password", PASSWORD), ("confirm", PASSWORD)]).await;
        assert!(added.body.contains("Added operator"), "{}", added.body);

        let all = records(&app).await;
        let seen: Vec<_> = all.iter().map(|r| (summary(r), r.client.as_deref())).collect();
        assert_eq!(
            seen,
            vec![
                (("setup_link", "dashboard.operators.create", Some("ada"), "applied", None), Some("127.0.0.1")),
                (("operator:ada", "dashboard.operators.sign_in", Some("ada"), "applied", None), Some("127.0.0.1")),
                (("operator:ada", "dashboard.operators.sign_in", Some("ada"), "refused", Some("wrong_password")), Some("127.0.0.2")),
                (("visitor", "dashboard.operators.sign_in", None, "refused", Some("unknown_name")), Some("127.0.0.2")),
                (("operator:ada", "dashboard.operators.sign_in", Some("ada"), "applied", None), Some("127.0.0.3")),
                (("operator:ada", "dashboard.workspaces.create", Some("acme"), "applied", None), Some("127.0.0.3")),
                (("operator:ada", "dashboard.operators.create", Some("grace"), "applied", None), Some("127.0.0.3")),
            ]
        );
        for record in &all {
            assert_eq!((record.via.as_str(), record.instance.as_deref()), ("dashboard", Some("test")));
        }

        // The Audit page shows them; the name nobody has is in no record and on no page.
        let audit = ada.get("/audit").await;
        assert_eq!(audit.status, StatusCode::OK);
        for text in ["dashboard.operators.sign_in", "wrong_password", "unknown_name", "setup_link", "127.0.0.2"] {
            assert!(audit.body.contains(text), "{text} on the Audit page");
        }
        assert!(!audit.body.contains(UNKNOWN_NAME));

        // Signing out is recorded too.
        assert_eq!(ada.post("/logout", &[("csrf", &audit.csrf())]).await.location(), "/login");
        let last = records(&app).await.pop().unwrap();
        assert_eq!(
            (summary(&last), last.client.as_deref()),
            (("operator:ada", "dashboard.operators.sign_out", Some("ada"), "applied", None), Some("127.0.0.3"))
        );
        let dump = app.db.dump();
        for secret in [UNKNOWN_NAME, PASSWORD] {
            assert!(!dump.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in the database");
        }
        app.stop().await;
    }

    async fn an_installation_change_whose_record_cannot_be_written_is_not_made(backend) {
        let options = TestOptions { master_key_file: true, ..Default::default() };
        let app = TestApp::spawn_with(backend, options).await;
        let key_file = app.db.dir.path().join("master.key");
        let path = setup_path(&app).await;
        let mut setup = Browser::new(&app);
        let form = setup.get(&path).await;
        app.db.refuse_inserts("installation_audit", true).await;

        // The setup link's operator, a workspace, an operator, a rotation: none is made.
        let first = setup.post(&path, &[("csrf", &form.csrf()), ("name", "ada"), ("password", PASSWORD), ("confirm", PASSWORD)]).await;
        assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(app.store.find_operator_by_name("ada").await.unwrap().is_none());
        let workspace = cli_run(&app, &["workspaces", "create", "acme"], "");
        assert!(!workspace.status.success());
        assert!(app.store.find_workspace("acme").await.unwrap().is_none());
        let operator = cli_run(&app, &["operators", "create", "bob"], &format!("{CLI_PASSWORD}\n"));
        assert!(!operator.status.success());
        assert!(app.store.find_operator_by_name("bob").await.unwrap().is_none());
        let key_file_before = std::fs::read(&key_file).unwrap();
        let rotation = rotate(&app, &key_file, &["--generate"]);
        assert!(!rotation.status.success());
        assert!(stderr(&rotation).contains("nothing was changed"), "{}", stderr(&rotation));
        assert_eq!(std::fs::read(&key_file).unwrap(), key_file_before, "the key file is untouched");

        // An operator made while records can be written cannot sign in while they cannot;
        // a wrong password is still refused.
        app.db.refuse_inserts("installation_audit", false).await;
        let made = cli_run(&app, &["operators", "create", "ada"], &format!("{CLI_PASSWORD}\n"));
        assert!(made.status.success(), "{}", stderr(&made));
        app.db.refuse_inserts("installation_audit", true).await;
        let mut browser = Browser::new(&app);
        assert_eq!(browser.sign_in("ada", CLI_PASSWORD).await.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(browser.get("/").await.location(), "/login", "no session was started");
        assert_eq!(browser.sign_in("ada", "not the password at all").await.status, StatusCode::UNAUTHORIZED);

        app.db.refuse_inserts("installation_audit", false).await;
        let summaries: Vec<(String, String)> = records(&app).await.into_iter().map(|r| (r.action, r.outcome)).collect();
        assert_eq!(summaries, vec![("cli.operators.create".to_owned(), "applied".to_owned())]);
        app.stop().await;
    }
}

/// `audit list` refuses a limit outside 1..=1000 before opening anything.
#[test]
fn audit_list_refuses_a_limit_out_of_range() {
    for limit in ["0", "1001"] {
        let output = binary()
            .args(["audit", "list", "--limit", limit])
            .env("AGENTGATE_DATABASE", "sqlite://never-opened.db")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(stderr(&output).contains("--limit"), "{}", stderr(&output));
    }
}
