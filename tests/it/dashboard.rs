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
const PAGES: [&str; 5] = ["/", "/connections", "/keys", "/logs", "/webhook-endpoints"];

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
        Self {
            base: format!("http://{}", app.addr),
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
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

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let response = request
            .header("cookie", cookie.join("; "))
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

#[tokio::test]
async fn the_session_cookie_is_httponly_samesite_and_secure_over_https() {
    let options = TestOptions {
        public_url: Some("https://gate.example.com".into()),
        ..TestOptions::default()
    };
    let app = TestApp::spawn_with(crate::support::backend::Backend::Sqlite, options).await;
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

#[tokio::test]
async fn every_dashboard_response_carries_the_security_headers() {
    let app = TestApp::spawn(crate::support::backend::Backend::Sqlite).await;
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
