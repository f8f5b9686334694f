//! `/keys`: the workspace's agentgate keys: create with the CLI's scopes and guardrails
//! (operations, connections, raw, read-only, test-only, Stripe accounts, IP ranges, expiry,
//! max amount, daily limit, idempotency, rate), shown once with a copy button; list with
//! last use and today's guardrail totals; rotate (the new key shown once); revoke.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use maud::{html, Markup};

use super::super::layout::{self, csrf_field, empty, time, Message, Nav};
use super::super::session::Operator;
use super::super::DashState;
use crate::ids::KeyId;
use crate::keys::{create_key, list_keys, revoke_key, rotate_key, KeySpec};
use crate::policy::guardrails::{daily_usage, parse_day, utc_day};
use crate::policy::{IdempotencyMode, Money, Rate, Role};
use crate::store::StoreError;

/// `GET /keys`
pub async fn list(
    State(state): State<Arc<DashState>>,
    Query(query): Query<UsageDay>,
    operator: Operator,
) -> Response {
    let day = query.day.trim();
    if day.is_empty() {
        return render(&state, &operator, None, None).await;
    }
    match parse_day(day) {
        Ok(day) => render_day(&state, &operator, None, None, &day).await,
        Err(error) => render(&state, &operator, Some(Message::Error(error)), None).await,
    }
}

/// `?day=YYYY-MM-DD`: whose guardrail totals the table shows (default today), as
/// `agentgate keys usage --day`.
#[derive(serde::Deserialize)]
pub struct UsageDay {
    #[serde(default)]
    day: String,
}

/// The page with today's totals.
async fn render(
    state: &DashState,
    operator: &Operator,
    message: Option<Message>,
    created: Option<&str>,
) -> Response {
    let today = utc_day(crate::time::now_millis());
    render_day(state, operator, message, created, &today).await
}

async fn render_day(
    state: &DashState,
    operator: &Operator,
    message: Option<Message>,
    created: Option<&str>,
    day: &str,
) -> Response {
    let records = match list_keys(state.settings.store.as_ref(), &operator.workspace.id).await {
        Ok(records) => records,
        Err(error) => return super::failed(&error),
    };
    let now = crate::time::now_millis();
    let is_today = day == utc_day(now);
    let store = state.settings.store.as_ref();
    let usage = match daily_usage(store, &operator.workspace.id, day).await {
        Ok(usage) => usage,
        Err(error) => return super::failed(&error),
    };
    let mut today: HashMap<&str, Vec<String>> = HashMap::new();
    for u in &usage {
        let line = match u.limit {
            Some(limit) => format!("{} {} of {}", u.currency, u.total, limit),
            None => format!("{} {}", u.currency, u.total),
        };
        today.entry(u.key_id.as_str()).or_default().push(line);
    }
    let body = html! {
        @if let Some(key) = created {
            div.created {
                p { strong { "The new key, shown this once:" } }
                p.secret-line {
                    code #new-key data-new-key { (key) }
                    button.small type="button" data-copy="new-key" { "Copy" }
                }
                p.hint { "Give it to the agent now; agentgate keeps only its hash." }
            }
        }
        @if records.is_empty() {
            (empty("No agent keys yet.", "Create one below and give it to an agent instead of your Stripe key."))
        } @else {
            form.filters method="get" action="/keys" {
                label { "Guardrail totals of " input type="date" name="day" value=(day) aria-label="UTC day"; }
                " " button.small type="submit" { "Show" }
                @if !is_today { " " a href="/keys" { "today" } }
            }
            table {
                thead { tr { th { "Name" } th { "Prefix" } th { "Role" } th { "Scopes" } th { "Last used" } th { @if is_today { "Today" } @else { (day) } } th { "Status" } th {} } }
                tbody {
                    @for k in &records {
                        @let status = match (k.revoked_at, k.expires_at) {
                            (Some(_), _) => "revoked",
                            (None, Some(at)) if at <= now => "expired",
                            _ => "active",
                        };
                        tr {
                            td { (k.name) }
                            td { code { (k.prefix) "…" } }
                            td { (k.role.as_str()) }
                            td { (k.scopes.summary()) }
                            td { (k.last_used_at.map_or_else(|| "never".to_owned(), time)) }
                            td.today {
                                @for line in today.get(k.id.as_str()).into_iter().flatten() {
                                    span.usage { (line) } " "
                                }
                            }
                            td { span.badge.(status) { (status) } }
                            td {
                                @if status == "active" {
                                    form.inline method="post" action={ "/keys/" (k.id) "/rotate" } {
                                        (csrf_field(&operator.csrf))
                                        select name="grace" aria-label="The old key keeps working for" {
                                            option value="0" { "old key stops now" }
                                            option value="3600" { "old key works 1 h" }
                                            option value="86400" { "old key works 24 h" }
                                        }
                                        " "
                                        button.small type="submit" { "Rotate" }
                                    }
                                    " "
                                    form.inline method="post" action={ "/keys/" (k.id) "/revoke" } {
                                        (csrf_field(&operator.csrf))
                                        button.small.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Create an agent key" }
        (create_form(state, operator))
    };
    layout::page(operator, Nav::Keys, "Agent keys", message, body)
}

fn create_form(state: &DashState, operator: &Operator) -> Markup {
    let catalog = state.settings.shared.catalog.catalog().clone();
    html! {
        form.card method="post" action="/keys" {
            (csrf_field(&operator.csrf))
            label for="key-name" { "Name (who holds it)" }
            input #key-name name="name" required maxlength="200";
            label for="key-role" { "Role" }
            select #key-role name="role" {
                option value="agent" selected { "agent: calls connections and reads events" }
                option value="admin" { "admin: manages this workspace through /api/v1" }
            }
            fieldset {
                legend { "Operations it may call (none ticked: every operation)" }
                div.checks {
                    @for op in &catalog.operations {
                        label.check { input type="checkbox" name="allow" value=(op.id); " " code { (op.id) } }
                    }
                }
            }
            label.check { input type="checkbox" name="raw" value="1"; " Raw: allow unlisted Stripe paths although operations are ticked" }
            label.check { input type="checkbox" name="read_only" value="1"; " Read-only (GET requests only)" }
            label.check { input type="checkbox" name="test_only" value="1"; " Test mode only (sk_test_/rk_test_ connections)" }
            label for="key-connections" { "Connections it may use (names, comma-separated; empty: all)" }
            input #key-connections name="connections" placeholder="stripe";
            label for="key-accounts" { "Stripe accounts it may act as via Stripe-Account (acct_..., comma-separated)" }
            input #key-accounts name="stripe_accounts" placeholder="acct_1ABC";
            label for="key-ips" { "IP ranges it may be used from (CIDR, comma-separated)" }
            input #key-ips name="ips" placeholder="10.0.0.0/8, 192.0.2.7/32";
            label for="key-expires" { "Expires (RFC 3339, UTC; empty: never)" }
            input #key-expires name="expires" placeholder="2026-12-31T23:59:59Z";
            label for="key-max-amount" { "Max amount per request (one CUR:AMOUNT per line, minor units)" }
            textarea #key-max-amount name="max_amount" rows="2" placeholder="usd:5000" {}
            label for="key-daily-limit" { "Daily limit of payment intents and refunds (one CUR:AMOUNT per line)" }
            textarea #key-daily-limit name="daily_limit" rows="2" placeholder="usd:100000" {}
            label for="key-idempotency" { "POST requests without an Idempotency-Key" }
            select #key-idempotency name="idempotency" {
                option value="off" { "off: forwarded as sent" }
                option value="require" { "require: refused" }
                option value="derive" { "derive: given a derived key" }
            }
            label for="key-rate" { "Rate (RPS[:BURST], empty: no limit)" }
            input #key-rate name="rate" placeholder="5:20";
            button type="submit" { "Create key" }
        }
    }
}

/// `POST /keys`: creates the key and shows it once. The form is read by hand because
/// `allow` repeats (one value per ticked operation).
pub async fn create(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    body: Bytes,
) -> Response {
    let (name, mut spec) = match read_spec(&body) {
        Ok(read) => read,
        Err(error) => return render(&state, &operator, Some(Message::Error(error)), None).await,
    };
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        let message = Message::Error("A key name is 1 to 200 printable characters.".into());
        return render(&state, &operator, Some(message), None).await;
    }
    if let Err(error) = spec
        .scopes
        .check_patterns(state.settings.shared.catalog.catalog())
    {
        return render(&state, &operator, Some(Message::Error(error)), None).await;
    }
    spec.name = name;
    let origin = operator.change_origin();
    match create_key(
        state.settings.store.as_ref(),
        &operator.workspace.id,
        spec,
        &origin,
    )
    .await
    {
        Ok(created) => {
            let notice = Message::Notice("Key created.".into());
            render(&state, &operator, Some(notice), Some(&created.key)).await
        }
        Err(error) => super::failed(&error),
    }
}

/// Reads the create form by hand (`allow` repeats, one value per ticked operation) with
/// the CLI's words and parsers; the first bad field is the error.
fn read_spec(body: &[u8]) -> Result<(String, KeySpec), String> {
    fn items(value: &str) -> impl Iterator<Item = &str> {
        value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
    }
    let mut name = String::new();
    let mut spec = KeySpec::default();
    let scopes = &mut spec.scopes;
    for (field, value) in form_urlencoded::parse(body) {
        match field.as_ref() {
            "name" => name = value.trim().to_owned(),
            "role" => {
                spec.role = match value.as_ref() {
                    "agent" | "" => Role::Agent,
                    "admin" => Role::Admin,
                    other => return Err(format!("role {other:?} is not agent or admin.")),
                }
            }
            "allow" => scopes.allow.push(value.into_owned()),
            "raw" => scopes.raw = true,
            "read_only" => scopes.read_only = true,
            "test_only" => scopes.test_only = true,
            "connections" => scopes.connections.extend(items(&value).map(str::to_owned)),
            "stripe_accounts" => {
                for account in items(&value) {
                    if !account.starts_with("acct_") {
                        return Err(format!(
                            "Stripe account {account:?} does not start with acct_."
                        ));
                    }
                    scopes.stripe_accounts.push(account.to_owned());
                }
            }
            "ips" => {
                for range in items(&value) {
                    let net = ipnet::IpNet::from_str(range)
                        .or_else(|_| std::net::IpAddr::from_str(range).map(ipnet::IpNet::from))
                        .map_err(|_| {
                            format!("IP range {range:?} is not a CIDR range such as 10.0.0.0/8.")
                        })?;
                    scopes.ips.push(net);
                }
            }
            "max_amount" | "daily_limit" => {
                for line in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    let money = Money::from_str(line)
                        .map_err(|e| format!("{}: {e}.", field.replace('_', " ")))?;
                    if field == "max_amount" {
                        scopes.max_amount.push(money);
                    } else {
                        scopes.daily_limit.push(money);
                    }
                }
            }
            "idempotency" => {
                scopes.idempotency = match value.as_ref() {
                    "off" | "" => IdempotencyMode::Off,
                    "require" => IdempotencyMode::Require,
                    "derive" => IdempotencyMode::Derive,
                    other => {
                        return Err(format!(
                            "idempotency {other:?} is not off, require or derive."
                        ))
                    }
                }
            }
            "rate" if !value.trim().is_empty() => {
                scopes.rate =
                    Some(Rate::from_str(value.trim()).map_err(|e| format!("rate: {e}."))?);
            }
            "expires" if !value.trim().is_empty() => {
                let text = value.trim();
                let at = humantime::parse_rfc3339_weak(text)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .and_then(|d| i64::try_from(d.as_millis()).ok())
                    .ok_or_else(|| format!("expires: {text:?} is not an RFC 3339 time such as 2026-12-31T23:59:59Z."))?;
                spec.expires_at = Some(at);
            }
            _ => {}
        }
    }
    Ok((name, spec))
}

/// The rotate button's field: how long the old key keeps working, in seconds.
#[derive(serde::Deserialize)]
pub struct RotateIn {
    #[serde(default)]
    grace: String,
}

/// `POST /keys/{id}/rotate`: a new key with the same name and scopes, shown once; the old
/// one stops now or after the chosen grace period.
pub async fn rotate(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<RotateIn>,
) -> Response {
    let grace: i64 = match form.grace.trim() {
        "" => 0,
        text => match text.parse::<i64>() {
            Ok(seconds) if (0..=30 * 86_400).contains(&seconds) => seconds,
            _ => {
                let message =
                    Message::Error("The grace period is 0 to 30 days, in seconds.".into());
                return render(&state, &operator, Some(message), None).await;
            }
        },
    };
    let id = KeyId::from_stored(id);
    let old_expires_at = crate::time::now_millis() + grace * 1000;
    let store = state.settings.store.as_ref();
    let origin = operator.change_origin();
    match rotate_key(store, &operator.workspace.id, &id, old_expires_at, &origin).await {
        Ok(created) => {
            state.settings.shared.keys.clear();
            let notice = Message::Notice(if grace == 0 {
                "Key rotated; the old key no longer works.".to_owned()
            } else {
                format!(
                    "Key rotated; the old key works for {} more hours.",
                    grace / 3600
                )
            });
            render(&state, &operator, Some(notice), Some(&created.key)).await
        }
        Err(StoreError::NotFound) => layout::not_found(),
        Err(error) => super::failed(&error),
    }
}

/// `POST /keys/{id}/revoke`
pub async fn revoke(
    State(state): State<Arc<DashState>>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let id = KeyId::from_stored(id);
    let origin = operator.change_origin();
    match revoke_key(
        state.settings.store.as_ref(),
        &operator.workspace.id,
        &id,
        &origin,
    )
    .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => return layout::not_found(),
        Err(error) => return super::failed(&error),
    }
    state.settings.shared.keys.clear();
    Redirect::to("/keys").into_response()
}
