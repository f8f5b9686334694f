//! The CLI on the same database as the server: secrets from stdin, keys shown once,
//! `--json` for scripts, and a server that refuses to start with the wrong master key.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::each_backend;
use crate::support::backend::{Backend, TestDb};
use crate::support::cli::{self, binary, stderr, stdout, AtTerminal};
use crate::support::TEST_SECRET;

fn master_key() -> String {
    agentgate::crypto::MasterKey::generate()
        .to_base64()
        .to_string()
}

each_backend! {
    async fn connections_set_reads_stdin_and_prints_only_the_masked_key(backend) {
        let db = TestDb::create(backend).await;
        let key = master_key();
        let output = cli::run(&db.url, &key, &["connections", "set", "stripe"], &format!("{TEST_SECRET}\n"));
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(stdout(&output), "stripe: sk_test_…fXYZ (test mode, secret key)\n");
        let listed = cli::run(&db.url, &key, &["connections", "list", "--json"], "");
        let json: Value = serde_json::from_str(&stdout(&listed)).unwrap();
        assert_eq!(json[0]["name"], "stripe");
        assert_eq!(json[0]["key"], "sk_test_…fXYZ");
        assert_eq!(json[0]["mode"], "test");
        assert_eq!(json[0]["key_type"], "secret");
        for output in [&output, &listed] {
            assert!(!stdout(output).contains(TEST_SECRET) && !stderr(output).contains(TEST_SECRET));
        }
        let removed = cli::run(&db.url, &key, &["connections", "remove", "stripe"], "");
        assert!(removed.status.success(), "{}", stderr(&removed));
        let empty = cli::run(&db.url, &key, &["connections", "list", "--json"], "");
        assert_eq!(stdout(&empty).trim(), "[]");
    }

    async fn connections_set_refuses_a_malformed_key_without_echoing_it(backend) {
        let db = TestDb::create(backend).await;
        let key = master_key();
        for bad in ["pk_test_51PublishableKeyValue00000000", "sk_test_has spaces in it 1234", "whsec_notAStripeApiKey123456"] {
            let output = cli::run(&db.url, &key, &["connections", "set", "stripe"], bad);
            assert!(!output.status.success());
            assert!(stderr(&output).contains("refused the key"), "{}", stderr(&output));
            assert!(!stderr(&output).contains(bad) && !stdout(&output).contains(bad));
        }
        let listed = cli::run(&db.url, &key, &["connections", "list", "--json"], "");
        assert_eq!(stdout(&listed).trim(), "[]", "nothing stored");
    }

    async fn keys_create_prints_the_key_alone_and_list_never_shows_it(backend) {
        let db = TestDb::create(backend).await;
        let key = master_key();
        let created = cli::run(&db.url, &key, &["keys", "create", "--name", "billing-agent"], "");
        assert!(created.status.success(), "{}", stderr(&created));
        let agent_key = stdout(&created);
        assert!(agentgate::keys::format::parse(agent_key.trim_end()).is_ok(), "stdout is the key alone: {agent_key:?}");
        assert!(stderr(&created).contains("billing-agent"));
        let json_created = cli::run(&db.url, &key, &["keys", "create", "--name", "second", "--json"], "");
        let json: Value = serde_json::from_str(&stdout(&json_created)).unwrap();
        assert!(json["id"].as_str().unwrap().starts_with("key_"));
        assert!(json["key"].as_str().unwrap().starts_with("agk_"));
        for args in [&["keys", "list"][..], &["keys", "list", "--json"][..]] {
            let listed = cli::run(&db.url, &key, args, "");
            let text = stdout(&listed);
            assert!(text.contains("billing-agent") && text.contains("second"), "{text}");
            assert!(!text.contains(agent_key.trim_end()) && !text.contains(json["key"].as_str().unwrap()));
        }
        let id = json["id"].as_str().unwrap();
        let revoked = cli::run(&db.url, &key, &["keys", "revoke", id], "");
        assert!(revoked.status.success(), "{}", stderr(&revoked));
        let listed = cli::run(&db.url, &key, &["keys", "list", "--json"], "");
        let keys: Value = serde_json::from_str(&stdout(&listed)).unwrap();
        assert!(keys[1]["revoked_at"].is_string() && keys[0]["revoked_at"].is_null());
        let unknown = cli::run(&db.url, &key, &["keys", "revoke", "key_doesnotexist00"], "");
        assert!(!unknown.status.success());
    }

    async fn keys_identify_names_a_key_of_any_workspace_read_from_stdin(backend) {
        let db = TestDb::create(backend).await;
        let key = master_key();
        assert!(cli::run(&db.url, &key, &["workspaces", "create", "ops"], "").status.success());
        let created = cli::run(&db.url, &key, &["--workspace", "ops", "keys", "create", "--name", "leaked", "--json"], "");
        let created: Value = serde_json::from_str(&stdout(&created)).unwrap();
        let (id, leaked) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());

        let found = cli::run(&db.url, &key, &["keys", "identify", "--json"], &format!("{leaked}\n"));
        assert!(found.status.success(), "{}", stderr(&found));
        let found: Value = serde_json::from_str(&stdout(&found)).unwrap();
        assert_eq!((found["workspace"].as_str(), found["id"].as_str(), found["name"].as_str()), (Some("ops"), Some(id), Some("leaked")));
        assert_eq!(found["status"], "active");

        assert!(cli::run(&db.url, &key, &["--workspace", "ops", "keys", "revoke", id], "").status.success());
        let found = cli::run(&db.url, &key, &["keys", "identify"], leaked);
        assert!(stdout(&found).starts_with(&format!("{id} (leaked, agent) in workspace ops: revoked")), "{}", stdout(&found));
        assert!(!stdout(&found).contains(leaked) && !stderr(&found).contains(leaked));

        let mut typo = leaked.to_owned();
        let last = if typo.ends_with('a') { "b" } else { "a" };
        typo.replace_range(typo.len() - 1.., last);
        let refused = cli::run(&db.url, &key, &["keys", "identify"], &typo);
        assert!(!refused.status.success() && stderr(&refused).contains("checksum"), "{}", stderr(&refused));
        let stranger = agentgate::keys::format::generate().text;
        let unknown = cli::run(&db.url, &key, &["keys", "identify"], &stranger);
        assert!(!unknown.status.success() && stderr(&unknown).contains("no key of this installation"), "{}", stderr(&unknown));
    }

    async fn logs_list_prints_json_for_scripts(backend) {
        let db = TestDb::create(backend).await;
        let output = cli::run(&db.url, &master_key(), &["logs", "list", "--json"], "");
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(stdout(&output).trim(), "[]");
    }

    async fn serve_refuses_a_master_key_other_than_the_databases(backend) {
        let db = TestDb::create(backend).await;
        let first = cli::run(&db.url, &master_key(), &["connections", "set", "stripe"], TEST_SECRET);
        assert!(first.status.success(), "{}", stderr(&first));
        let output = cli::run(&db.url, &master_key(), &["serve", "--listen", "127.0.0.1:0"], "");
        assert!(!output.status.success());
        assert!(stderr(&output).contains("does not match the key this database was written with"), "{}", stderr(&output));
        let set_again = cli::run(&db.url, &master_key(), &["connections", "set", "stripe"], TEST_SECRET);
        assert!(!set_again.status.success(), "the CLI refuses to seal with another key too");
    }
}

fn serve_with_key_file(db: &TestDb, key_file: &std::path::Path) -> std::process::Output {
    binary()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("AGENTGATE_DATABASE", &db.url)
        .env("AGENTGATE_MASTER_KEY_FILE", key_file)
        .env_remove("AGENTGATE_MASTER_KEY")
        .output()
        .unwrap()
}

#[tokio::test]
async fn serve_refuses_a_missing_or_world_readable_master_key_file() {
    let db = TestDb::create(Backend::Sqlite).await;
    let missing = db.dir.path().join("missing.key");
    let output = serve_with_key_file(&db, &missing);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(!missing.exists(), "an explicit key file is never invented");

    let open = db.dir.path().join("open.key");
    std::fs::write(&open, master_key()).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = serve_with_key_file(&db, &open);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("readable by other users"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("chmod 600"));

    let malformed = db.dir.path().join("short.key");
    std::fs::write(&malformed, "c2hvcnQ=").unwrap();
    std::fs::set_permissions(&malformed, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = serve_with_key_file(&db, &malformed);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("exactly 32 bytes"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn the_first_start_creates_an_owner_only_key_file_beside_the_database() {
    let db = TestDb::create(Backend::Sqlite).await;
    let output = binary()
        .args(["keys", "list"])
        .env("AGENTGATE_DATABASE", &db.url)
        .env_remove("AGENTGATE_MASTER_KEY")
        .env_remove("AGENTGATE_MASTER_KEY_FILE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let set = binary()
        .args(["connections", "set", "stripe"])
        .env("AGENTGATE_DATABASE", &db.url)
        .env_remove("AGENTGATE_MASTER_KEY")
        .env_remove("AGENTGATE_MASTER_KEY_FILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let output = {
        use std::io::Write;
        let mut set = set;
        set.stdin
            .take()
            .unwrap()
            .write_all(TEST_SECRET.as_bytes())
            .unwrap();
        set.wait_with_output().unwrap()
    };
    assert!(output.status.success(), "{}", stderr(&output));
    let key_file = db.dir.path().join("agentgate.db.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let db_mode = std::fs::metadata(db.sqlite_file.as_ref().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(db_mode, 0o600, "the database file is owner-only too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_prints_entries_as_they_are_written() {
    use std::io::{BufRead, BufReader};

    let app = crate::support::app::TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(app.get("customers?limit=1").await.status(), 200);
    app.logged(1).await;
    let mut tail = binary()
        .args(["logs", "tail", "--json"])
        .env("AGENTGATE_DATABASE", &app.db.url)
        .env("AGENTGATE_MASTER_KEY", &app.master_key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    // The recent entries start with the audit records of the app's set-up.
    let first = loop {
        let line: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        if line["path"] != "test set-up" {
            break line;
        }
    };
    assert_eq!(first["path"], "/v1/customers?limit");
    assert_eq!(app.get("charges").await.status(), 200);
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["path"], "/v1/charges");
    assert_eq!(second["status"], 200);
    tail.kill().unwrap();
    let _ = tail.wait();
    app.stop().await;
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let mut child = binary()
        .args(["catalog", "list", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}

/// What an operator types at a terminal is not shown as it is typed, and the terminal
/// echoes again afterwards: the Stripe key, a webhook signing secret and an operator's
/// password.
#[tokio::test]
async fn secrets_typed_at_a_terminal_are_not_shown() {
    let db = TestDb::create(Backend::Sqlite).await;
    let key = master_key();
    let typed = |args: &[&str], secret: &str| {
        let mut terminal = AtTerminal::start(&db.url, &key, args);
        terminal.type_text(&format!("{secret}\n"));
        let finished = terminal.finish();
        let output = &finished.output;
        assert!(output.status.success(), "{args:?}: {}", stderr(output));
        assert!(
            !finished.screen.contains(secret),
            "{args:?} showed the secret: {:?}",
            finished.screen
        );
        assert!(finished.screen.contains('\n'), "the line break is shown");
        assert!(finished.echoes, "{args:?} left the terminal's echo off");
        assert!(!stdout(output).contains(secret) && !stderr(output).contains(secret));
        finished.output
    };
    let set = typed(&["connections", "set", "stripe"], TEST_SECRET);
    assert_eq!(
        stdout(&set),
        "stripe: sk_test_…fXYZ (test mode, secret key)\n"
    );
    let created = cli::run(&db.url, &key, &["webhooks", "create", "--json"], "");
    assert!(created.status.success(), "{}", stderr(&created));
    let endpoint: Value = serde_json::from_str(&stdout(&created)).unwrap();
    let endpoint = endpoint["id"].as_str().unwrap();
    typed(
        &["webhooks", "set-secret", endpoint],
        "whsec_TypedAtATerminal0123456789",
    );
    typed(
        &["operators", "create", "alice"],
        "correct horse battery staple",
    );
}

/// Ctrl-C at a secret's prompt ends the command, stores nothing, and leaves the terminal
/// echoing as before.
#[tokio::test]
async fn ctrl_c_at_a_secret_prompt_puts_the_echo_back() {
    let db = TestDb::create(Backend::Sqlite).await;
    let key = master_key();
    let terminal = AtTerminal::start(&db.url, &key, &["connections", "set", "stripe"]);
    terminal.interrupt();
    let finished = terminal.finish();
    assert_eq!(
        finished.output.status.code(),
        Some(130),
        "{}",
        stderr(&finished.output)
    );
    assert!(finished.echoes, "the terminal's echo is back on");
    let listed = cli::run(&db.url, &key, &["connections", "list", "--json"], "");
    assert_eq!(stdout(&listed).trim(), "[]", "nothing stored");
}

/// With the master key in the environment, a rotation to a new key is refused with what to
/// do instead, before any new key is read, and nothing is changed.
#[tokio::test]
async fn a_new_master_key_is_refused_while_the_key_comes_from_the_environment() {
    let db = TestDb::create(Backend::Sqlite).await;
    let key = master_key();
    // Storing a secret checks the master key against the database.
    let set_stripe_key = || {
        cli::run(
            &db.url,
            &key,
            &["connections", "set", "stripe"],
            TEST_SECRET,
        )
    };
    let set = set_stripe_key();
    assert!(set.status.success(), "{}", stderr(&set));
    let new_key = master_key();
    for (args, stdin) in [
        (&["master-key", "rotate", "--generate"][..], ""),
        (
            &["master-key", "rotate", "--new-key-stdin"][..],
            new_key.as_str(),
        ),
    ] {
        let refused = cli::run(&db.url, &key, args, stdin);
        assert!(!refused.status.success(), "{args:?}");
        assert!(
            stderr(&refused).contains("comes from AGENTGATE_MASTER_KEY: put the new key first"),
            "{args:?}: {}",
            stderr(&refused)
        );
    }
    let again = set_stripe_key();
    assert!(
        again.status.success(),
        "the old key still opens the database: {}",
        stderr(&again)
    );
}

/// Retentions too short to be safe are refused at start: an event retention shorter than
/// Stripe's three days of retries (a retry of an event already pruned would be stored and
/// delivered again), and a log retention under a day (a mistyped unit would delete the
/// audit trail within the hour).
#[tokio::test]
async fn serve_refuses_retentions_too_short_to_be_safe() {
    let db = TestDb::create(Backend::Sqlite).await;
    for (flag, value, message) in [
        (
            "--event-retention",
            "2days",
            "--event-retention must be at least 3days",
        ),
        (
            "--log-retention",
            "23h",
            "must be at least 1day (the logs are the audit trail)",
        ),
        (
            "--log-retention",
            "a while",
            "give a duration such as 90days, or `forever`",
        ),
    ] {
        let output = binary()
            .args(["serve", "--listen", "127.0.0.1:0", flag, value])
            .env("AGENTGATE_DATABASE", &db.url)
            .env("AGENTGATE_MASTER_KEY", master_key())
            .env_remove("AGENTGATE_MASTER_KEY_FILE")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{flag} {value} was accepted");
        let stderr = stderr(&output);
        assert!(stderr.contains(message), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}
