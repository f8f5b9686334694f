//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver with fantoccini): set up the operator, sign in, paste a Stripe key,
//! create an agent key and read it from the page, call the data plane with it, and find
//! the request on the request log page; then mint a webhook endpoint, paste its signing
//! secret, ingest a signed event and see it appear on the endpoint's page without a
//! reload. Screenshots of each page go to
//! `target/dashboard-screenshots/`. Runs only with `AGENTGATE_TEST_BROWSER=1` (`.ci/run`
//! sets it); otherwise it prints a SKIP line.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

use crate::support::app::TestApp;
use crate::support::backend::Backend;
use crate::support::stripe_double::Reply;

/// The switch that turns the browser tests on.
const BROWSER_SWITCH: &str = "AGENTGATE_TEST_BROWSER";

const PASSWORD: &str = "correct horse battery staple";

/// The signing secret pasted into the endpoint page: must never come back in a page.
const WEBHOOK_SECRET: &str = "whsec_BrowserPastedSecret0123456789abcdef";

/// A chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts chromedriver on a port just found free. Another test may take that port
    /// before chromedriver binds it; chromedriver then exits, and a fresh port is tried.
    async fn start() -> Self {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("chromedriver is installed (apt-get install chromium-driver)");
            for _ in 0..100 {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Self { child, port };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("chromedriver did not start listening");
    }

    async fn client(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session")
    }
}

fn enabled(test: &str) -> bool {
    let on = std::env::var(BROWSER_SWITCH).is_ok_and(|v| v == "1");
    if !on {
        eprintln!("SKIP {test}: set {BROWSER_SWITCH}=1 (with chromium and chromium-driver installed) to run it");
    }
    on
}

async fn screenshot(client: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn fill(client: &Client, css: &str, text: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// The text of the first element matching `css`, once the page shows one.
async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_up_pastes_a_key_hands_out_an_agent_key_and_sees_its_request() {
    if !enabled("dashboard_browser") {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let base = format!("http://{}", app.addr);
    let link = agentgate::operators::issue_setup_link(app.store.as_ref(), &base)
        .await
        .unwrap()
        .unwrap();
    let driver = Driver::start().await;
    let client = driver.client().await;

    client.goto(&link).await.unwrap();
    screenshot(&client, "setup").await;
    fill(&client, "#name", "ada").await;
    fill(&client, "#password", PASSWORD).await;
    fill(&client, "#confirm", PASSWORD).await;
    click(&client, "button[type=submit]").await;
    client
        .wait()
        .for_element(Locator::Css("dl.stats"))
        .await
        .unwrap();

    click(&client, "button.link").await;
    client
        .wait()
        .for_element(Locator::Css("#password"))
        .await
        .unwrap();
    screenshot(&client, "login").await;
    fill(&client, "#name", "ada").await;
    fill(&client, "#password", PASSWORD).await;
    click(&client, "button[type=submit]").await;
    client
        .wait()
        .for_element(Locator::Css("dl.stats"))
        .await
        .unwrap();

    app.double.respond(Reply::stripe_ok(
        r#"{"id":"acct_1Browser","object":"account","settings":{"dashboard":{"display_name":"Browser Test Shop"}}}"#,
    ));
    client.goto(&format!("{base}/connections")).await.unwrap();
    fill(
        &client,
        "#secret_key",
        "sk_test_51BrowserPastedKey0123456789abcdef",
    )
    .await;
    click(&client, "form.card button[type=submit]").await;
    client
        .wait()
        .for_element(Locator::Css("p.notice"))
        .await
        .unwrap();
    screenshot(&client, "connections").await;
    app.double.respond(Reply::stripe_ok(
        r#"{"id":"cus_double","object":"customer"}"#,
    ));

    client.goto(&format!("{base}/keys")).await.unwrap();
    fill(&client, "#key-name", "browser agent").await;
    click(&client, "form.card button[type=submit]").await;
    let shown = client
        .wait()
        .for_element(Locator::Css("[data-new-key]"))
        .await
        .unwrap();
    let agent_key = shown.text().await.unwrap();
    assert!(agent_key.starts_with("agk_"), "{agent_key}");
    screenshot(&client, "keys").await;

    let answer = app
        .client
        .get(format!("{base}/v1/connections/stripe/customers?limit=3"))
        .bearer_auth(agent_key.trim())
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    // The dashboard's own changes are in the log at once; the agent's request follows
    // with the log's next batch.
    crate::support::eventually(
        std::time::Duration::from_secs(5),
        "the agent's request in the log",
        || async {
            app.logged(0)
                .await
                .iter()
                .any(|r| r.entry.via == "http")
                .then_some(())
        },
    )
    .await;

    client.goto(&format!("{base}/logs")).await.unwrap();
    let table = client
        .wait()
        .for_element(Locator::Css("table.log"))
        .await
        .unwrap();
    let text = table.text().await.unwrap();
    assert!(
        text.contains("browser agent") && text.contains("/v1/customers"),
        "{text}"
    );
    screenshot(&client, "request-log").await;

    client.goto(&base).await.unwrap();
    screenshot(&client, "overview").await;
    client
        .goto(&format!("{base}/webhook-endpoints"))
        .await
        .unwrap();
    screenshot(&client, "webhooks").await;

    // Second half: mint an endpoint, paste its secret, and watch a signed event arrive
    // on its page without a reload.
    click(&client, "form.card button[type=submit]").await;
    let url = text_of(&client, "#ingest-url").await;
    let endpoint = url.trim().rsplit('/').next().unwrap().to_owned();
    assert!(endpoint.starts_with("whe_"), "{url}");
    fill(&client, "#secret", WEBHOOK_SECRET).await;
    click(&client, "form[action$='/secret'] button[type=submit]").await;
    // The page before the post has a `#secret-state.hint` too: wait for the new one.
    let state = text_of(&client, "#secret-state:not(.hint)").await;
    assert!(state.contains("configured"), "{state}");
    let source = client.source().await.unwrap();
    assert!(
        !source.contains(WEBHOOK_SECRET),
        "the page shows the signing secret"
    );
    // A mark on this document: still there after the event arrives, so no reload happened.
    client
        .execute(
            "document.body.dataset.mark = 'same-page'; return true;",
            vec![],
        )
        .await
        .unwrap();

    let payload = r#"{"id":"evt_browser_live","object":"event","type":"customer.created","data":{"object":{}}}"#;
    let at = agentgate::time::now_millis() / 1000;
    let signature =
        agentgate::webhooks::signature::sign(WEBHOOK_SECRET.as_bytes(), at, payload.as_bytes());
    let ingested = app
        .client
        .post(format!("{base}/webhooks/ingest/{endpoint}"))
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", format!("t={at},v1={signature}"))
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(ingested.status(), 200);
    // A bounded poll of the DOM for the row the live stream adds.
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .every(Duration::from_millis(100))
        .for_element(Locator::XPath(
            "//tbody[@id='events']//code[text()='evt_browser_live']",
        ))
        .await
        .expect("the event appears without a reload");
    let mark = client
        .execute("return document.body.dataset.mark || null;", vec![])
        .await
        .unwrap();
    assert_eq!(
        mark,
        serde_json::json!("same-page"),
        "the page was reloaded"
    );
    screenshot(&client, "webhook-endpoint-live").await;

    // A push destination: its secret is shown once, on the page that added it.
    fill(&client, "#destination-url", "http://127.0.0.1:9/agent-hook").await;
    click(&client, "input[name=allow_private]").await;
    click(&client, "form[action$='/destinations'] button[type=submit]").await;
    let secret = text_of(&client, "#destination-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    screenshot(&client, "webhook-endpoint-destination").await;
    client
        .goto(&format!("{base}/webhook-endpoints/{endpoint}"))
        .await
        .unwrap();
    let source = client.source().await.unwrap();
    assert!(source.contains("127.0.0.1:9/agent-hook") && !source.contains(secret.trim()));

    // The catalog the key form offers, and a second operator added from the browser.
    client.goto(&format!("{base}/catalog")).await.unwrap();
    let catalog = client.source().await.unwrap();
    assert!(catalog.contains("customers.create") && catalog.contains("POST /v1/payment_intents"));
    screenshot(&client, "catalog").await;
    client.goto(&format!("{base}/operators")).await.unwrap();
    fill(&client, "#operator-name", "grace").await;
    fill(&client, "#operator-password", "grace hopper compiler 1952").await;
    fill(&client, "#operator-confirm", "grace hopper compiler 1952").await;
    click(&client, "form[action='/operators'] button[type=submit]").await;
    let notice = text_of(&client, "p.notice").await;
    assert!(notice.contains("Added operator 'grace'"), "{notice}");
    screenshot(&client, "operators").await;
    assert!(app
        .store
        .find_operator_by_name("grace")
        .await
        .unwrap()
        .is_some());
    client.close().await.unwrap();
    drop(driver.child);
}
