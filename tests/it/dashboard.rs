//! The operator's dashboard over plain HTTP: first-run setup, sign-in and sign-out, CSRF,
//! cookie flags, security headers, escaping, and that no stored secret reaches a page. The
//! real-browser journey is in `dashboard_browser.rs`.

use std::collections::HashMap;

use reqwest::header::{HeaderMap, CONTENT_SECURITY_POLICY, SET_COOKIE};
use reqwest::StatusCode;

use crate::each_backend;
use crate::support::app::{TestApp, TestOptions};
use crate::support::TEST_SECRET;

/// Every page a signed-in operator can open.
const PAGES: [&str; 9] = [
    "/",
    "/connections",
    "/keys",
    "/logs",
    "/webhook-endpoints",
    "/catalog",
    "/workspaces",
    "/operators",
    "/audit",
];

/// A browser without JavaScript: keeps cookies, follows no redirect, reads the CSRF field.
pub struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

/// One answer, read whole.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the first hidden CSRF field.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("the page has a form") + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }

    /// Where a redirect points.
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self::from_address(app, "127.0.0.1")
    }

    /// A browser connecting from another loopback address (another client to the server).
    pub fn from_address(app: &TestApp, address: &str) -> Self {
        Self {
            base: format!("http://{}", app.addr),
            client: reqwest::Client::builder()
                .no_proxy()
                .local_address(Some(address.parse().unwrap()))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    /// Signs in with a name and password from a fresh login form.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> Page {
        let login = self.get("/login").await;
        self.post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("name", name),
                ("password", password),
            ],
        )
        .await
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .form(fields);
        self.send(request).await
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        cookie.join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    /// Follows the setup link `serve` would print and creates operator `ada`.
    pub async fn set_up(&mut self, app: &TestApp) -> Page {
        let path = setup_path(app).await;
        let form = self.get(&path).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            &path,
            &[
                ("csrf", &csrf),
                ("name", "ada"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// The path of a fresh setup link, as `serve` prints it.
pub async fn setup_path(app: &TestApp) -> String {
    let base = format!("http://{}", app.addr);
    let link = agentgate::operators::issue_setup_link(app.store.as_ref(), &base)
        .await
        .unwrap()
        .expect("no operator yet");
    link.strip_prefix(&base).unwrap().to_owned()
}

each_backend! {
    async fn the_setup_link_creates_the_operator_once(backend) {
        let app = TestApp::spawn(backend).await;
        let path = setup_path(&app).await;
        let mut browser = Browser::new(&app);
        let form = browser.get(&path).await;
        let csrf = form.csrf();
        let done = browser.post(&path, &[("csrf", &csrf), ("name", "ada"), ("password", PASSWORD), ("confirm", PASSWORD)]).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER);
        assert_eq!(done.location(), "/");
        assert_eq!(browser.get("/").await.status, StatusCode::OK);

        let mut other = Browser::new(&app);
        assert_eq!(other.get(&path).await.status, StatusCode::GONE);
        let again = other.post(&path, &[("csrf", &csrf), ("name", "eve"), ("password", PASSWORD), ("confirm", PASSWORD)]).await;
        assert!(again.status == StatusCode::GONE || again.status == StatusCode::FORBIDDEN);
        assert!(app.store.find_operator_by_name("eve").await.unwrap().is_none());
        assert!(agentgate::operators::issue_setup_link(app.store.as_ref(), "http://x").await.unwrap().is_none());
    }

    async fn an_operator_signs_in_and_out_and_wrong_passwords_get_one_message(backend) {
        let app = TestApp::spawn(backend).await;
        Browser::new(&app).set_up(&app).await;
        let mut browser = Browser::new(&app);
        assert_eq!(browser.get("/keys").await.location(), "/login");
        let login = browser.get("/login").await;
        let wrong_name = browser.post("/login", &[("csrf", &login.csrf()), ("name", "bob"), ("password", PASSWORD)]).await;
        let wrong_password = browser.post("/login", &[("csrf", &login.csrf()), ("name", "ada"), ("password", "not the password")]).await;
        assert_eq!(wrong_name.status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
        assert!(wrong_name.body.contains("Wrong name or password."));
        assert!(wrong_password.body.contains("Wrong name or password."));

        let signed_in = browser.post("/login", &[("csrf", &login.csrf()), ("name", "ada"), ("password", PASSWORD)]).await;
        assert_eq!(signed_in.location(), "/");
        let overview = browser.get("/").await;
        assert_eq!(overview.status, StatusCode::OK);
        assert!(overview.body.contains("Sign out ada"));
        let out = browser.post("/logout", &[("csrf", &overview.csrf())]).await;
        assert_eq!(out.location(), "/login");
        assert_eq!(browser.get("/").await.location(), "/login");
    }

    async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let keys_before = app.store.list_keys(&app.workspace).await.unwrap().len();
        let missing = browser.post("/keys", &[("name", "sneaky")]).await;
        let wrong = browser.post("/keys", &[("csrf", "forged"), ("name", "sneaky")]).await;
        let removal = browser.post("/connections/stripe/remove", &[]).await;
        for refused in [&missing, &wrong, &removal] {
            assert_eq!(refused.status, StatusCode::FORBIDDEN);
        }
        assert_eq!(app.store.list_keys(&app.workspace).await.unwrap().len(), keys_before);
        assert!(app.store.find_connection(&app.workspace, "stripe").await.unwrap().is_some());

        let page = browser.get("/keys").await;
        let made = browser.post("/keys", &[("csrf", &page.csrf()), ("name", "honest")]).await;
        assert_eq!(made.status, StatusCode::OK);
        assert_eq!(app.store.list_keys(&app.workspace).await.unwrap().len(), keys_before + 1);
    }

    async fn pages_never_contain_the_stored_stripe_secret(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        assert!(app.get("customers").await.status().is_success());
        app.logged(1).await;
        for path in PAGES {
            let page = browser.get(path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert!(!page.body.contains(TEST_SECRET), "{path} shows the Stripe key");
            assert!(!page.body.contains(&app.key), "{path} shows an agent key");
        }
    }

    async fn a_script_tag_in_a_key_name_is_shown_as_text(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let page = browser.get("/keys").await;
        browser.post("/keys", &[("csrf", &page.csrf()), ("name", "<script>alert(1)</script>")]).await;
        let listed = browser.get("/keys").await;
        assert!(listed.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!listed.body.contains("<script>alert"));
    }
}

each_backend! {
    async fn the_session_cookie_is_httponly_samesite_and_secure_over_https(backend) {
        let options = TestOptions {
            public_url: Some("https://gate.example.com".into()),
            ..TestOptions::default()
        };
        let app = TestApp::spawn_with(backend, options).await;
        let mut browser = Browser::new(&app);
        let done = browser.set_up(&app).await;
        let cookie = done
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("agentgate_session="))
            .expect("a session cookie");
        for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
            assert!(cookie.contains(flag), "{cookie} lacks {flag}");
        }
    }
}

each_backend! {
    async fn every_dashboard_response_carries_the_security_headers(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        for path in PAGES.iter().chain(["/login", "/assets/style.css"].iter()) {
            let page = browser.get(path).await;
            let csp = page
                .headers
                .get(CONTENT_SECURITY_POLICY)
                .expect("a CSP")
                .to_str()
                .unwrap();
            assert_eq!(csp, agentgate::dashboard::CONTENT_SECURITY_POLICY);
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
            assert_eq!(page.headers["x-content-type-options"], "nosniff");
            assert_eq!(page.headers["x-frame-options"], "DENY");
            assert_eq!(page.headers["referrer-policy"], "no-referrer");
            assert!(
                !page.body.contains("<style") && !page.body.contains("style=\""),
                "{path}"
            );
            if !path.starts_with("/assets") {
                assert_eq!(page.headers["cache-control"], "no-store", "{path}");
            }
        }
    }
}

each_backend! {
    async fn a_pasted_key_is_checked_against_stripe_before_it_is_stored(backend) {
        use crate::support::stripe_double::Reply;
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let key = "sk_test_51PastedGoodKey0123456789abcd";
        app.double.respond(Reply::stripe_ok(
            r#"{"id":"acct_1Pasted","object":"account","settings":{"dashboard":{"display_name":"Acme <Shop>"}},"business_profile":{"name":"Acme Ltd"}}"#,
        ));
        let page = browser.get("/connections").await;
        let saved = browser
            .post(
                "/connections",
                &[
                    ("csrf", &page.csrf()),
                    ("name", "acme"),
                    ("secret_key", key),
                ],
            )
            .await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
        let seen = app.double.single();
        assert_eq!(seen.method, reqwest::Method::GET);
        assert_eq!(seen.target, "/v1/account");
        assert_eq!(
            seen.headers["authorization"],
            format!("Bearer {key}").as_str()
        );
        for shown in [
            "Acme &lt;Shop&gt;",
            "acct_1Pasted",
            "test mode",
            "secret key",
            "abcd",
        ] {
            assert!(
                saved.body.contains(shown),
                "{shown} missing: {}",
                saved.body
            );
        }
        assert!(!saved.body.contains(key));
        assert!(app
            .store
            .find_connection(&app.workspace, "acme")
            .await
            .unwrap()
            .is_some());

        // A restricted key that may not read the account is stored, with a word about it.
        app.double.respond(Reply::Json {
            status: 403,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: r#"{"error":{"type":"invalid_request_error","message":"The provided key does not have the required permissions"}}"#.into(),
        });
        let restricted = browser
            .post(
                "/connections",
                &[
                    ("csrf", &page.csrf()),
                    ("name", "limited"),
                    ("secret_key", "rk_live_51Restricted0123456789wxyz"),
                ],
            )
            .await;
        assert!(
            restricted.body.contains("could not be read"),
            "{}",
            restricted.body
        );
        assert!(restricted.body.contains("live mode") && restricted.body.contains("restricted key"));
        assert!(app
            .store
            .find_connection(&app.workspace, "limited")
            .await
            .unwrap()
            .is_some());

        // A key Stripe refuses is not stored, and the page says why.
        app.double.respond(Reply::Json {
            status: 401,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****oops"}}"#.into(),
        });
        let refused = browser
            .post(
                "/connections",
                &[
                    ("csrf", &page.csrf()),
                    ("name", "wrong"),
                    ("secret_key", "sk_test_51WrongKey0123456789oops"),
                ],
            )
            .await;
        assert!(
            refused
                .body
                .contains("The key was not saved: Stripe refused the key"),
            "{}",
            refused.body
        );
        assert!(refused.body.contains("Invalid API Key provided"));
        assert!(app
            .store
            .find_connection(&app.workspace, "wrong")
            .await
            .unwrap()
            .is_none());
        assert_eq!(app.double.received().len(), 3);
    }
}

each_backend! {
    async fn the_key_form_offers_every_scope_shows_todays_totals_and_rotates(backend) {
        use agentgate::policy::guardrails::utc_day;
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let page = browser.get("/keys").await;
        let csrf = page.csrf();
        for field in [
            "name=\"connections\"",
            "name=\"raw\"",
            "name=\"stripe_accounts\"",
            "name=\"ips\"",
            "name=\"expires\"",
            "name=\"max_amount\"",
            "name=\"daily_limit\"",
            "name=\"idempotency\"",
            "name=\"rate\"",
        ] {
            assert!(page.body.contains(field), "the form lacks {field}");
        }
        let before = app.store.list_keys(&app.workspace).await.unwrap().len();

        // Bad input shows the error and creates nothing.
        let bad = [
            ("max_amount", "usd:lots", "not a whole amount"),
            (
                "daily_limit",
                "dollars:5",
                "not a three-letter currency code",
            ),
            ("ips", "10.0.0.0/99", "not a CIDR range"),
            ("rate", "0", "at least 1"),
            ("expires", "next week", "not an RFC 3339 time"),
            ("allow", "nothing.matches", "names no operation"),
            ("stripe_accounts", "cus_1", "does not start with acct_"),
        ];
        for (field, value, says) in bad {
            let refused = browser
                .post("/keys", &[("csrf", &csrf), ("name", "bad"), (field, value)])
                .await;
            assert_eq!(refused.status, StatusCode::OK);
            assert!(
                refused.body.contains(says),
                "{field}={value}: {}",
                refused.body
            );
            assert!(
                !refused.body.contains("data-new-key"),
                "{field}={value} made a key"
            );
        }
        assert_eq!(
            app.store.list_keys(&app.workspace).await.unwrap().len(),
            before
        );

        let made = browser
            .post(
                "/keys",
                &[
                    ("csrf", &csrf),
                    ("name", "payer"),
                    ("allow", "payment_intents.*"),
                    ("raw", "1"),
                    ("connections", "stripe, other"),
                    ("stripe_accounts", "acct_1A"),
                    ("ips", "10.0.0.0/8 192.0.2.7"),
                    ("expires", "2099-01-01T00:00:00Z"),
                    ("max_amount", "usd:5000\r\neur:4000"),
                    ("daily_limit", "usd:10000"),
                    ("idempotency", "derive"),
                    ("rate", "5:20"),
                ],
            )
            .await;
        assert!(made.body.contains("data-new-key"), "{}", made.body);
        let record = app
            .store
            .list_keys(&app.workspace)
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.name == "payer")
            .unwrap();
        assert_eq!(
            record.scopes.summary(),
            "connections=stripe,other allow=payment_intents.* raw stripe-account=acct_1A ip=10.0.0.0/8,192.0.2.7/32 max-amount=usd:5000,eur:4000 daily-limit=usd:10000 idempotency=derive rate=5:20"
        );
        assert_eq!(record.expires_at, Some(4_070_908_800_000));

        // Today's guardrail totals appear beside the key.
        let day = utc_day(agentgate::time::now_millis());
        let spent = [("usd:2500".parse().unwrap(), 10_000)];
        assert!(app
            .store
            .reserve_guardrail_totals(&app.workspace, &record.id, &day, &spent)
            .await
            .unwrap()
            .is_none());
        let listed = browser.get("/keys").await;
        assert!(listed.body.contains("usd 2500 of 10000"), "{}", listed.body);
        let yesterday = agentgate::time::rfc3339(agentgate::time::now_millis() - 86_400_000)[..10].to_owned();
        let past = browser.get(&format!("/keys?day={yesterday}")).await;
        assert!(past.body.contains(&format!("<th>{yesterday}</th>")), "{}", past.body);
        assert!(!past.body.contains("usd 2500"), "yesterday moved nothing");
        let bad = browser.get("/keys?day=someday").await;
        assert!(bad.body.contains("class=\"error\""), "{}", bad.body);

        // Rotate: a new key shown once, same scopes; the old one stops at once.
        let rotated = browser
            .post(
                &format!("/keys/{}/rotate", record.id),
                &[("csrf", &csrf), ("grace", "0")],
            )
            .await;
        assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
        assert!(rotated.body.contains("data-new-key") && rotated.body.contains("Key rotated"));
        let keys = app.store.list_keys(&app.workspace).await.unwrap();
        let payers: Vec<_> = keys.iter().filter(|k| k.name == "payer").collect();
        assert_eq!(payers.len(), 2);
        assert!(payers.iter().all(|k| k.scopes == record.scopes));
        let old = payers.iter().find(|k| k.id == record.id).unwrap();
        assert!(old.expires_at.unwrap() <= agentgate::time::now_millis());
    }
}

each_backend! {
    async fn the_request_log_filters_by_time_pages_and_shows_one_entry(backend) {
        use agentgate::store::{LogQuery, RequestLogEntry};
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        assert!(app.get("customers?limit=3").await.status().is_success());
        let real = app.logged(1).await.remove(0);
        // 150 older entries, one a minute from 2026-01-01T00:00:00Z.
        let base = 1_767_225_600_000_i64;
        let entries: Vec<RequestLogEntry> = (0..150)
            .map(|i| RequestLogEntry {
                created_at: base + i * 60_000,
                request_id: format!("req_synth_{i}"),
                stripe_request_id: None,
                ..real.entry.clone()
            })
            .collect();
        app.store
            .insert_request_logs(entries, &[], agentgate::store::LogPace::Share)
            .await
            .unwrap();
        let rows = |page: &Page| page.body.matches("href=\"/logs/").count();
        let link = |page: &Page, label: &str| -> Option<String> {
            let end = page.body.find(label)?;
            let start = page.body[..end].rfind("href=\"")? + 6;
            let href = &page.body[start..];
            Some(href[..href.find('"').unwrap()].replace("&amp;", "&"))
        };

        let newest = browser.get("/logs").await;
        assert_eq!(rows(&newest), 100);
        assert!(link(&newest, "Newer").is_none());
        let older = browser
            .get(&link(&newest, "Older").expect("an older link"))
            .await;
        // The 150 made here, the real one, and the audit records of the app's set-up.
        let everything = LogQuery { limit: 1000, ..LogQuery::default() };
        let total = app.store.list_request_logs(&app.workspace, everything).await.unwrap().len();
        assert!(total > 151);
        assert_eq!(rows(&older), total - 100);
        assert!(link(&older, "Older").is_none());
        let back = browser
            .get(&link(&older, "Newer").expect("a newer link"))
            .await;
        assert_eq!(rows(&back), 100);

        let window = browser
            .get("/logs?since=2026-01-01T00:10&until=2026-01-01T00:20:00Z")
            .await;
        assert_eq!(rows(&window), 10, "{}", window.body);
        let day = browser.get("/logs?since=2026-01-01&until=2026-01-02").await;
        assert_eq!(rows(&day), 100);
        let wrong = browser.get("/logs?since=yesterday").await;
        assert!(
            wrong.body.contains("is not a time such as"),
            "{}",
            wrong.body
        );

        let detail = browser.get(&format!("/logs/{}", real.id)).await;
        assert_eq!(detail.status, StatusCode::OK);
        for shown in [
            real.entry.request_id.as_str(),
            "req_double123",
            "/v1/customers",
            "GET",
            "forwarded",
            "stripe",
            "<dt>Came over</dt><dd>HTTP</dd>",
        ] {
            assert!(
                detail.body.contains(shown),
                "{shown} missing: {}",
                detail.body
            );
        }
        assert!(!detail.body.contains(TEST_SECRET) && !detail.body.contains(&app.key));
        // The Stripe request id links to every entry with it (a call and the deliveries of
        // the events it caused); the instance filters too.
        let same_call = browser
            .get(&link(&detail, "every entry with it").expect("a link to the call's entries"))
            .await;
        assert_eq!(rows(&same_call), 1, "{}", same_call.body);
        assert!(same_call.body.contains(&format!("href=\"/logs/{}\"", real.id)));
        let instance = real.instance.clone().expect("the server names its instance");
        let here = browser.get(&format!("/logs?instance={instance}&since=2026-01-01&until=2026-01-01T00:05")).await;
        assert_eq!(rows(&here), 5, "{}", here.body);
        let elsewhere = browser.get("/logs?instance=elsewhere").await;
        assert_eq!(rows(&elsewhere), 0);
        assert!(elsewhere.body.contains("No requests match."));
        assert_eq!(
            browser.get("/logs/99999999").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            browser.get("/logs/nope").await.status,
            StatusCode::NOT_FOUND
        );
    }
}

each_backend! {
    async fn the_overview_shows_each_webhook_endpoints_health(backend) {
    use agentgate::store::NewEvent;
    use agentgate::webhooks::endpoints::create_endpoint;
    let app = TestApp::spawn(backend).await;
    let mut browser = Browser::new(&app);
    browser.set_up(&app).await;
    let empty = browser.get("/").await;
    assert!(
        empty.body.contains("Webhook health") && empty.body.contains("No webhook endpoints yet.")
    );

    let busy = create_endpoint(app.store.as_ref(), &app.workspace, "stripe", &[], &crate::support::test_origin())
        .await
        .unwrap();
    let quiet = create_endpoint(app.store.as_ref(), &app.workspace, "stripe", &[], &crate::support::test_origin())
        .await
        .unwrap();
    let now = agentgate::time::now_millis();
    let hour = 3_600_000;
    let events: Vec<NewEvent> = [now - 30 * hour, now - 2 * hour, now - hour]
        .iter()
        .enumerate()
        .map(|(i, at)| NewEvent {
            endpoint_id: busy.id.clone(),
            workspace_id: app.workspace.clone(),
            event_id: format!("evt_health{i}"),
            event_type: "customer.created".into(),
            received_at: *at,
            payload: b"{}".to_vec(),
        })
        .collect();
    app.store.insert_events(&events).await.unwrap();

    let overview = browser.get("/").await;
    let row = |id: &str| {
        let start = overview
            .body
            .find(&format!("<code>{id}</code>"))
            .expect("the endpoint is listed");
        let end = overview.body[start..].find("</tr>").unwrap() + start;
        overview.body[start..end].to_owned()
    };
    let busy_row = row(busy.id.as_str());
    assert!(busy_row.contains("<td>2</td>"), "{busy_row}");
    assert!(!busy_row.contains("never"), "{busy_row}");
    let quiet_row = row(quiet.id.as_str());
    assert!(
        quiet_row.contains("<td>0</td>") && quiet_row.contains("never"),
        "{quiet_row}"
    );
}
}

each_backend! {
    async fn a_workspace_is_created_from_the_dashboard_and_appears_in_the_switch(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let page = browser.get("/workspaces").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("action=\"/workspaces\""));

        let forged = browser.post("/workspaces", &[("name", "acme")]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert!(app.store.find_workspace("acme").await.unwrap().is_none());

        let csrf = page.csrf();
        for (name, says) in [
            ("not a name", "a workspace name is 1 to 64 letters"),
            ("default", "a workspace named \"default\" exists already"),
        ] {
            let refused = browser
                .post("/workspaces", &[("csrf", &csrf), ("name", name)])
                .await;
            assert_eq!(refused.status, StatusCode::OK);
            assert!(refused.body.contains("class=\"error\""), "{name}");
            assert!(
                refused.body.contains(&says.replace('"', "&quot;")),
                "{name}: {}",
                refused.body
            );
        }
        assert_eq!(app.store.list_workspaces().await.unwrap().len(), 1);

        let made = browser
            .post("/workspaces", &[("csrf", &csrf), ("name", "acme")])
            .await;
        assert_eq!(made.status, StatusCode::OK);
        assert!(
            made.body.contains("Created workspace &#39;acme&#39;")
                || made.body.contains("Created workspace 'acme'")
        );
        assert!(app.store.find_workspace("acme").await.unwrap().is_some());
        let overview = browser.get("/").await;
        assert!(
            overview
                .body
                .contains("<option value=\"acme\">acme</option>"),
            "{}",
            overview.body
        );

        let switched = browser
            .post("/workspace", &[("csrf", &csrf), ("workspace", "acme")])
            .await;
        assert_eq!(switched.status, StatusCode::SEE_OTHER);
        let now = browser.get("/workspaces").await;
        assert!(
            now.body
                .contains("<option value=\"acme\" selected>acme</option>"),
            "{}",
            now.body
        );
    }
}

each_backend! {
    async fn the_key_form_creates_an_agent_or_an_admin_key(backend) {
        use agentgate::policy::Role;
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let page = browser.get("/keys").await;
        assert!(page.body.contains("name=\"role\""));
        assert!(page.body.contains("<option value=\"admin\">"));
        let csrf = page.csrf();

        let forged = browser
            .post("/keys", &[("name", "boss"), ("role", "admin")])
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        let bad = browser
            .post(
                "/keys",
                &[("csrf", &csrf), ("name", "boss"), ("role", "root")],
            )
            .await;
        assert!(bad.body.contains("is not agent or admin"), "{}", bad.body);
        let before = app.store.list_keys(&app.workspace).await.unwrap().len();
        assert!(!app
            .store
            .list_keys(&app.workspace)
            .await
            .unwrap()
            .iter()
            .any(|k| k.name == "boss"));

        for (name, role, expected) in [
            ("boss", "admin", Role::Admin),
            ("worker", "agent", Role::Agent),
        ] {
            let made = browser
                .post("/keys", &[("csrf", &csrf), ("name", name), ("role", role)])
                .await;
            assert_eq!(made.status, StatusCode::OK);
            assert!(made.body.contains("Key created."), "{}", made.body);
            let keys = app.store.list_keys(&app.workspace).await.unwrap();
            let key = keys.iter().find(|k| k.name == name).expect("created");
            assert_eq!(key.role, expected);
        }
        assert_eq!(
            app.store.list_keys(&app.workspace).await.unwrap().len(),
            before + 2
        );
    }
}

each_backend! {
    async fn the_connections_page_switches_validation_per_connection(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let validation = |app: &TestApp| {
            let store = app.store.clone();
            let workspace = app.workspace.clone();
            async move {
                let connection = store.find_connection(&workspace, "stripe").await.unwrap();
                connection.expect("the test app's connection").validation
            }
        };
        assert!(validation(&app).await);
        let page = browser.get("/connections").await;
        assert!(page
            .body
            .contains("action=\"/connections/stripe/validation\""));
        assert!(page.body.contains("Turn off"));
        let csrf = page.csrf();

        let forged = browser
            .post("/connections/stripe/validation", &[("state", "off")])
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert!(validation(&app).await);

        let off = browser
            .post(
                "/connections/stripe/validation",
                &[("csrf", &csrf), ("state", "off")],
            )
            .await;
        assert_eq!(off.status, StatusCode::SEE_OTHER);
        assert_eq!(off.location(), "/connections?done=validation-off");
        assert!(!validation(&app).await);
        let listed = browser.get(off.location()).await;
        assert!(listed.body.contains("Validation off"));
        assert!(listed.body.contains("Turn on"));

        let bad = browser
            .post(
                "/connections/stripe/validation",
                &[("csrf", &csrf), ("state", "maybe")],
            )
            .await;
        assert!(bad.body.contains("either on or off"));
        assert!(!validation(&app).await);
        let missing = browser
            .post(
                "/connections/nope/validation",
                &[("csrf", &csrf), ("state", "on")],
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);

        let on = browser
            .post(
                "/connections/stripe/validation",
                &[("csrf", &csrf), ("state", "on")],
            )
            .await;
        assert_eq!(on.location(), "/connections?done=validation-on");
        assert!(validation(&app).await);
    }
}

each_backend! {
    async fn operators_are_added_and_change_their_own_password_in_the_dashboard(backend) {
        let app = TestApp::spawn(backend).await;
        let mut ada = Browser::new(&app);
        ada.set_up(&app).await;
        let page = ada.get("/operators").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("ada"));
        let grace_password = "grace hopper compiler 1952";
        let differ = ada.post("/operators", &[("csrf", &page.csrf()), ("name", "grace"), ("password", grace_password), ("confirm", "something else entirely")]).await;
        assert!(differ.body.contains("The two passwords differ."));
        let short = ada.post("/operators", &[("csrf", &page.csrf()), ("name", "grace"), ("password", "short"), ("confirm", "short")]).await;
        assert!(short.body.contains("Refused: a password is 12"), "{}", short.body);
        assert!(app.store.find_operator_by_name("grace").await.unwrap().is_none());
        let added = ada.post("/operators", &[("csrf", &page.csrf()), ("name", "grace"), ("password", grace_password), ("confirm", grace_password)]).await;
        assert!(added.body.contains("Added operator &#39;grace&#39;") || added.body.contains("Added operator 'grace'"), "{}", added.body);
        let mut grace = Browser::new(&app);
        assert_eq!(grace.sign_in("grace", grace_password).await.location(), "/");

        let wrong = grace.post("/operators/password", &[("csrf", &page.csrf()), ("current", "not my password"), ("password", "a brand new password"), ("confirm", "a brand new password")]).await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN, "another session's CSRF token");
        let own = grace.get("/operators").await;
        let wrong = grace.post("/operators/password", &[("csrf", &own.csrf()), ("current", "not my password"), ("password", "a brand new password"), ("confirm", "a brand new password")]).await;
        assert!(wrong.body.contains("The current password is wrong."));
        let changed = grace.post("/operators/password", &[("csrf", &own.csrf()), ("current", grace_password), ("password", "a brand new password"), ("confirm", "a brand new password")]).await;
        assert_eq!(changed.location(), "/login");
        assert_eq!(grace.get("/").await.location(), "/login", "the session ended with the change");
        assert_eq!(Browser::new(&app).sign_in("grace", grace_password).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(Browser::new(&app).sign_in("grace", "a brand new password").await.location(), "/");
        assert_eq!(ada.get("/").await.status, StatusCode::OK, "other operators stay signed in");
    }

    async fn password_guessing_from_one_address_is_stopped_and_others_sign_in(backend) {
        let app = TestApp::spawn(backend).await;
        Browser::new(&app).set_up(&app).await;
        let mut guesser = Browser::new(&app);
        for n in 0..agentgate::dashboard::SIGN_IN_FAILURES_PER_MINUTE {
            let guess = format!("guess number {n}");
            assert_eq!(guesser.sign_in("ada", &guess).await.status, StatusCode::UNAUTHORIZED);
        }
        let blocked = guesser.sign_in("ada", PASSWORD).await;
        assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
        let wait: u64 = blocked.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(!blocked.body.contains("Sign out"));
        let mut other = Browser::from_address(&app, "127.0.0.2");
        assert_eq!(other.sign_in("ada", PASSWORD).await.location(), "/", "another address is not affected");
    }

    async fn the_catalog_page_lists_every_validated_operation(backend) {
        let app = TestApp::spawn(backend).await;
        let mut browser = Browser::new(&app);
        browser.set_up(&app).await;
        let page = browser.get("/catalog").await;
        assert_eq!(page.status, StatusCode::OK);
        let catalog = agentgate::catalog::Catalog::embedded();
        for operation in &catalog.operations {
            assert!(page.body.contains(&format!("<code>{}</code>", operation.id)), "{} missing", operation.id);
        }
        assert!(page.body.contains("<code>POST /v1/payment_intents</code>"));
        assert!(page.body.contains("<code>amount</code>"));
    }
}
