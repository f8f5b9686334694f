//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver with fantoccini): set up the operator, sign in, paste a Stripe key,
//! create an agent key and read it from the page, call the data plane with it, and find
//! the request on the request log page. Screenshots of each page go to
//! `target/dashboard-screenshots/`. Runs only with `AGENTGATE_TEST_BROWSER=1` (`.ci/run`
//! sets it); otherwise it prints a SKIP line.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

use crate::support::app::TestApp;
use crate::support::backend::Backend;

/// The switch that turns the browser tests on.
const BROWSER_SWITCH: &str = "AGENTGATE_TEST_BROWSER";

const PASSWORD: &str = "correct horse battery staple";

/// A chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is installed (apt-get install chromium-driver)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, port }
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
    app.logged(1).await;

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
    client.close().await.unwrap();
    drop(driver.child);
}
