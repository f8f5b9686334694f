//! Money guardrails: per-request amount caps and daily totals per key and currency.
//!
//! A key created with `--max-amount usd:5000` may not send a request that moves more than
//! 5000 minor units of USD; one created with `--daily-limit usd:100000` may not create more
//! than that per UTC day through payment intents and refunds. Amounts are read from the
//! request body before anything is forwarded; the daily totals live in the database
//! (`guardrail_totals`), reserved atomically before forwarding and released when Stripe
//! refuses the request. docs/guardrails.md gives the rules and the reasons for them.
//!
//! Where the request does not say what it would cost (a refund without `amount`, a checkout
//! line item that names a stored price), the amount cannot be checked, and a key with a
//! limit that could apply is refused rather than trusted.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::ids::{KeyId, WorkspaceId};
use crate::keys::AuthenticatedKey;
use crate::policy::Money;
use crate::store::{Store, StoreError};
use crate::validation::form::Node;
use crate::validation::Params;

/// Checks amounts in request bodies against a key's caps and keeps its daily totals.
pub struct Guardrails {
    store: Arc<dyn Store>,
}

/// Amounts counted against daily totals before forwarding, released if Stripe refuses.
#[derive(Debug)]
pub struct Reservation {
    workspace: WorkspaceId,
    key: KeyId,
    /// The UTC day the amounts were counted on, so a request that crosses midnight is
    /// released from the day it was counted on.
    day: String,
    amounts: Vec<Money>,
}

/// Why a guarded request was refused.
#[derive(Debug, thiserror::Error)]
pub enum GuardrailError {
    /// A cap or a daily total would be exceeded; the message names the limit.
    #[error("{0}")]
    Exceeded(String),
    /// The totals could not be read or written; the request is not forwarded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Guardrails {
    /// Guardrails over the store that keeps the daily totals.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Whether a request of this operation by this key must be inspected: only when the key
    /// has a limit the operation falls under, so every other request keeps streaming.
    pub fn applies(&self, key: &AuthenticatedKey, operation: Option<&str>) -> bool {
        Guarded::of(operation).is_some_and(|guarded| {
            !key.scopes.max_amount.is_empty()
                || (guarded.counts_daily() && !key.scopes.daily_limit.is_empty())
        })
    }

    /// Checks the request's amounts against the key's per-request caps, then reserves them
    /// against its daily totals. `None` when nothing was reserved.
    pub async fn reserve(
        &self,
        key: &AuthenticatedKey,
        operation: Option<&str>,
        params: &Params<'_>,
    ) -> Result<Option<Reservation>, GuardrailError> {
        let Some(guarded) = Guarded::of(operation) else {
            return Ok(None);
        };
        let charges = charges(guarded, params);
        check_caps(&charges, &key.scopes.max_amount).map_err(GuardrailError::Exceeded)?;
        if !guarded.counts_daily() {
            return Ok(None);
        }
        let amounts =
            daily_amounts(&charges, &key.scopes.daily_limit).map_err(GuardrailError::Exceeded)?;
        if amounts.is_empty() {
            return Ok(None);
        }
        let day = utc_day(crate::time::now_millis());
        let over = self
            .store
            .reserve_guardrail_totals(&key.workspace_id, &key.id, &day, &amounts)
            .await?;
        if let Some(current) = over {
            let (requested, limit) = amounts
                .iter()
                .find(|(money, _)| money.currency == current.currency)
                .map(|(money, limit)| (money.amount, *limit))
                .unwrap_or((0, 0));
            let unstated = charges.iter().any(|charge| charge.currency.is_none());
            return Err(GuardrailError::Exceeded(format!(
                "This request's amount {} would bring today's {currency} total to {}, over this \
                 key's daily limit of {limit} (daily-limit {currency}:{limit}).",
                describe_amount(requested, &current.currency, unstated),
                current.amount.saturating_add(requested),
                currency = current.currency,
            )));
        }
        Ok(Some(Reservation {
            workspace: key.workspace_id.clone(),
            key: key.id.clone(),
            day,
            amounts: amounts.into_iter().map(|(money, _)| money).collect(),
        }))
    }

    /// Releases a reservation when Stripe refused the request (a 4xx); keeps it otherwise,
    /// since after a timeout or a 5xx the money may have moved.
    pub async fn settle(&self, reservation: Reservation, refused_by_stripe: bool) {
        if !refused_by_stripe {
            return;
        }
        let released = self
            .store
            .release_guardrail_totals(
                &reservation.workspace,
                &reservation.key,
                &reservation.day,
                &reservation.amounts,
            )
            .await;
        if let Err(error) = released {
            tracing::error!(
                key = %reservation.key,
                error = %error,
                "could not release a guardrail reservation; the key's daily total stays higher"
            );
        }
    }
}

/// The UTC day (`YYYY-MM-DD`) a moment in Unix milliseconds falls on: the unit of the daily
/// totals.
pub fn utc_day(millis: i64) -> String {
    crate::time::rfc3339(millis)[..10].to_owned()
}

/// Checks a UTC day as the CLI and the management API take it (`2026-05-01`).
pub fn parse_day(text: &str) -> Result<String, String> {
    humantime::parse_rfc3339_weak(&format!("{text} 00:00:00"))
        .ok()
        .filter(|_| text.len() == 10)
        .map(|_| text.to_owned())
        .ok_or_else(|| format!("{text:?} is not a day such as 2026-05-01"))
}

/// One key's daily total in one currency, with its limit: what operators read
/// (`agentgate keys usage`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyUsage {
    /// The key.
    pub key_id: KeyId,
    /// The key's name.
    pub name: String,
    /// The UTC day (`YYYY-MM-DD`).
    pub day: String,
    /// Lower-case currency code.
    pub currency: String,
    /// Minor units counted on that day.
    pub total: i64,
    /// The key's daily limit in that currency, if it has one.
    pub limit: Option<i64>,
}

/// The day's totals of the workspace's keys, with a zero line for every daily limit that
/// saw no use, so operators see each limited key's headroom. Revoked keys appear only when
/// they moved money that day.
pub async fn daily_usage(
    store: &dyn Store,
    workspace: &WorkspaceId,
    day: &str,
) -> Result<Vec<KeyUsage>, StoreError> {
    let keys = store.list_keys(workspace).await?;
    let totals = store.list_guardrail_totals(workspace, day).await?;
    let mut usage = Vec::new();
    for key in keys {
        let mut currencies: BTreeMap<String, (i64, Option<i64>)> = BTreeMap::new();
        for (_, money) in totals.iter().filter(|(id, _)| *id == key.id) {
            currencies.entry(money.currency.clone()).or_default().0 = money.amount;
        }
        if key.revoked_at.is_none() {
            for (currency, limit) in strictest_limits(&key.scopes.daily_limit) {
                currencies.entry(currency).or_default().1 = Some(limit);
            }
        } else {
            for limit in &key.scopes.daily_limit {
                if let Some(entry) = currencies.get_mut(&limit.currency) {
                    entry.1 = Some(entry.1.map_or(limit.amount, |l| l.min(limit.amount)));
                }
            }
        }
        for (currency, (total, limit)) in currencies {
            usage.push(KeyUsage {
                key_id: key.id.clone(),
                name: key.name.clone(),
                day: day.to_owned(),
                currency,
                total,
                limit,
            });
        }
    }
    Ok(usage)
}

// === the operations and what they cost ===

/// The operations whose amounts are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guarded {
    PaymentIntentCreate,
    PaymentIntentUpdate,
    RefundCreate,
    PriceCreate,
    CheckoutSessionCreate,
}

impl Guarded {
    fn of(operation: Option<&str>) -> Option<Self> {
        match operation? {
            "payment_intents.create" => Some(Guarded::PaymentIntentCreate),
            "payment_intents.update" => Some(Guarded::PaymentIntentUpdate),
            "refunds.create" => Some(Guarded::RefundCreate),
            "prices.create" => Some(Guarded::PriceCreate),
            "checkout.sessions.create" => Some(Guarded::CheckoutSessionCreate),
            _ => None,
        }
    }

    /// Whether the operation's amounts count towards the daily totals: money the key
    /// creates. An update changes an amount already counted when it was created; prices and
    /// checkout sessions move no money until a customer pays.
    fn counts_daily(self) -> bool {
        matches!(self, Guarded::PaymentIntentCreate | Guarded::RefundCreate)
    }
}

/// An amount a request would move, as far as the request shows it.
#[derive(Debug, PartialEq, Eq)]
struct Charge {
    /// The currency the request states; `None` when it is decided elsewhere (a refund takes
    /// its charge's), so that every limit of the key applies.
    currency: Option<String>,
    amount: Amount,
}

#[derive(Debug, PartialEq, Eq)]
enum Amount {
    /// Minor units.
    Known(i64),
    /// The request does not show the amount; why, naming the parameter.
    Unknown(String),
}

impl Charge {
    /// Whether a limit in `currency` applies to this charge.
    fn counts_in(&self, currency: &str) -> bool {
        self.currency.as_deref().is_none_or(|own| own == currency)
    }
}

/// What the request would move, per operation.
fn charges(guarded: Guarded, params: &Params<'_>) -> Vec<Charge> {
    let currency = currency_of(get(params, "currency"));
    let mut charges = Vec::new();
    match guarded {
        Guarded::PaymentIntentCreate | Guarded::PaymentIntentUpdate => {
            push(
                &mut charges,
                currency,
                whole(get(params, "amount"), "amount"),
            );
        }
        Guarded::RefundCreate => {
            // A refund's currency is its charge's. `currency` is meant for customer balance
            // refunds, and an agent could name any; every limit applies instead.
            let amount = whole(get(params, "amount"), "amount").and_then(|amount| {
                amount.ok_or_else(|| {
                    "a refund without `amount` refunds the whole remaining charge, which the \
                     request does not show; state `amount`"
                        .to_owned()
                })
            });
            push(&mut charges, None, amount.map(Some));
        }
        Guarded::PriceCreate => {
            push(&mut charges, currency, price_amount(params, ""));
            for (code, option) in items(get(params, "currency_options")) {
                let at = format!("currency_options[{code}]");
                push(
                    &mut charges,
                    currency_code(&code),
                    price_amount(entries(option), &at),
                );
            }
        }
        Guarded::CheckoutSessionCreate => checkout_charges(params, currency, &mut charges),
    }
    charges
}

/// Adds a charge for an amount read from the request; nothing when it states none.
fn push(charges: &mut Vec<Charge>, currency: Option<String>, read: Result<Option<i64>, String>) {
    let amount = match read {
        Ok(Some(amount)) => Amount::Known(amount),
        Ok(None) => return,
        Err(why) => Amount::Unknown(why),
    };
    charges.push(Charge { currency, amount });
}

/// The largest amount a price (or one of its currency options) names: its unit amount, a
/// tier's unit or flat amount, or the most a customer may choose.
fn price_amount(price: Entries<'_, '_>, at: &str) -> Result<Option<i64>, String> {
    let mut amounts = vec![unit_amount(price, at)?];
    for (index, tier) in items(get(price, "tiers")) {
        let tier_at = format!("{}[{index}]", param(at, "tiers"));
        let tier = entries(tier);
        amounts.push(unit_amount(tier, &tier_at)?);
        amounts.push(whole(
            get(tier, "flat_amount"),
            &param(&tier_at, "flat_amount"),
        )?);
        amounts.push(decimal_up(
            get(tier, "flat_amount_decimal"),
            &param(&tier_at, "flat_amount_decimal"),
        )?);
    }
    let custom_at = param(at, "custom_unit_amount");
    let custom = entries_of(get(price, "custom_unit_amount"));
    if is_true(get(custom, "enabled")) {
        let maximum_at = param(&custom_at, "maximum");
        match whole(get(custom, "maximum"), &maximum_at)? {
            Some(maximum) => amounts.push(Some(maximum)),
            None => {
                return Err(format!(
                    "`{custom_at}` lets the customer choose the amount and `{maximum_at}` is not \
                     stated"
                ))
            }
        }
    }
    Ok(amounts.into_iter().flatten().max())
}

/// `unit_amount`, or `unit_amount_decimal` rounded up.
fn unit_amount(price: Entries<'_, '_>, at: &str) -> Result<Option<i64>, String> {
    let whole = whole(get(price, "unit_amount"), &param(at, "unit_amount"))?;
    let decimal = decimal_up(
        get(price, "unit_amount_decimal"),
        &param(at, "unit_amount_decimal"),
    )?;
    Ok(whole.into_iter().chain(decimal).max())
}

/// A checkout session's line items (inline prices times quantities), the stored prices it
/// names (which cannot be priced here), and its dearest shipping option per currency.
fn checkout_charges(params: &Params<'_>, session: Option<String>, charges: &mut Vec<Charge>) {
    for (index, item) in items(get(params, "line_items")) {
        let at = format!("line_items[{index}]");
        let item = entries(item);
        let data = entries_of(get(item, "price_data"));
        let currency = currency_of(get(data, "currency")).or_else(|| session.clone());
        let amount = if get(item, "price_data").is_some() {
            let data_at = param(&at, "price_data");
            match (unit_amount(data, &data_at), line_quantity(item, &at)) {
                (Ok(Some(unit)), Ok(quantity)) => unit.checked_mul(quantity).ok_or_else(|| {
                    format!("`{data_at}` times its quantity is too large to be an amount")
                }),
                (Ok(None), _) => Err(format!(
                    "`{data_at}` states neither `unit_amount` nor `unit_amount_decimal`"
                )),
                (Err(why), _) | (_, Err(why)) => Err(why),
            }
        } else if get(item, "price").is_some() {
            Err(format!(
                "`{at}[price]` names a stored price, whose amount the request does not show; \
                 use `{at}[price_data]`"
            ))
        } else {
            continue;
        };
        push(charges, currency, amount.map(Some));
    }
    for (index, item) in items(get(params, "optional_items")) {
        if get(entries(item), "price").is_some() {
            let why = format!(
                "`optional_items[{index}][price]` names a stored price, whose amount the \
                 request does not show"
            );
            push(charges, session.clone(), Err(why));
        }
    }
    let mut dearest: BTreeMap<Option<String>, i64> = BTreeMap::new();
    for (index, option) in items(get(params, "shipping_options")) {
        let at = format!("shipping_options[{index}]");
        let option = entries(option);
        if get(option, "shipping_rate").is_some() {
            let why = format!(
                "`{at}[shipping_rate]` names a stored shipping rate, whose amount the request \
                 does not show"
            );
            push(charges, session.clone(), Err(why));
        }
        let fixed_at = format!("{at}[shipping_rate_data][fixed_amount]");
        let fixed = entries_of(get(
            entries_of(get(option, "shipping_rate_data")),
            "fixed_amount",
        ));
        let mut prices = vec![(
            currency_of(get(fixed, "currency")).or_else(|| session.clone()),
            whole(get(fixed, "amount"), &param(&fixed_at, "amount")),
        )];
        for (code, option) in items(get(fixed, "currency_options")) {
            let option_at = format!("{fixed_at}[currency_options][{code}][amount]");
            prices.push((
                currency_code(&code),
                whole(get(entries(option), "amount"), &option_at),
            ));
        }
        for (currency, amount) in prices {
            match amount {
                Ok(Some(amount)) => {
                    let entry = dearest.entry(currency).or_default();
                    *entry = (*entry).max(amount);
                }
                Ok(None) => {}
                Err(why) => push(charges, currency, Err(why)),
            }
        }
    }
    for (currency, amount) in dearest {
        push(charges, currency, Ok(Some(amount)));
    }
}

/// A line item's quantity: `quantity` (default 1), or the most the customer may choose when
/// `adjustable_quantity` is enabled (Stripe's default maximum is 99).
fn line_quantity(item: Entries<'_, '_>, at: &str) -> Result<i64, String> {
    let mut quantity = whole(get(item, "quantity"), &param(at, "quantity"))?.unwrap_or(1);
    let adjustable_at = param(at, "adjustable_quantity");
    let adjustable = entries_of(get(item, "adjustable_quantity"));
    if is_true(get(adjustable, "enabled")) {
        let maximum = whole(
            get(adjustable, "maximum"),
            &param(&adjustable_at, "maximum"),
        )?;
        quantity = quantity.max(maximum.unwrap_or(99));
    }
    Ok(quantity)
}

// === the limits ===

/// Checks the request's charges against every per-request cap of the key. A charge without
/// a stated currency counts against every cap.
fn check_caps(charges: &[Charge], caps: &[Money]) -> Result<(), String> {
    for cap in caps {
        let limit = format!(
            "this key's per-request limit of {} {} (max-amount {cap})",
            cap.amount, cap.currency
        );
        let (sum, unstated) = sum_in(charges, &cap.currency).map_err(|why| {
            format!("This request's amount cannot be checked against {limit}: {why}.")
        })?;
        if sum > cap.amount {
            return Err(format!(
                "This request's amount {} exceeds {limit}.",
                describe_amount(sum, &cap.currency, unstated)
            ));
        }
    }
    Ok(())
}

/// The amounts to add to the daily totals, each with its limit: one per currency the key
/// limits and the request moves money in.
fn daily_amounts(charges: &[Charge], limits: &[Money]) -> Result<Vec<(Money, i64)>, String> {
    let mut amounts = Vec::new();
    for (currency, limit) in strictest_limits(limits) {
        let (sum, _) = sum_in(charges, &currency).map_err(|why| {
            format!(
                "This request's amount cannot be checked against this key's daily limit of \
                 {limit} {currency} (daily-limit {currency}:{limit}): {why}."
            )
        })?;
        if sum > 0 {
            amounts.push((
                Money {
                    currency,
                    amount: sum,
                },
                limit,
            ));
        }
    }
    Ok(amounts)
}

/// The smallest limit per currency, should a key name one currency twice.
fn strictest_limits(limits: &[Money]) -> BTreeMap<String, i64> {
    let mut strictest: BTreeMap<String, i64> = BTreeMap::new();
    for limit in limits {
        strictest
            .entry(limit.currency.clone())
            .and_modify(|amount| *amount = (*amount).min(limit.amount))
            .or_insert(limit.amount);
    }
    strictest
}

/// The sum of the charges a limit in `currency` applies to, and whether any of them has no
/// stated currency; the reason when one of them cannot be priced.
fn sum_in(charges: &[Charge], currency: &str) -> Result<(i64, bool), String> {
    let mut sum = 0i64;
    let mut unstated = false;
    for charge in charges.iter().filter(|charge| charge.counts_in(currency)) {
        match &charge.amount {
            Amount::Known(amount) => sum = sum.saturating_add(*amount),
            Amount::Unknown(why) => return Err(why.clone()),
        }
        unstated |= charge.currency.is_none();
    }
    Ok((sum, unstated))
}

/// `6000 usd`, or, when the request does not state its currency, the amount with the rule
/// that made this limit apply.
fn describe_amount(amount: i64, currency: &str, unstated: bool) -> String {
    if unstated {
        format!("{amount} (its currency is not in the request, so every limit of this key applies)")
    } else {
        format!("{amount} {currency}")
    }
}

// === reading the parameter tree ===

type Entries<'n, 'a> = &'n [(Cow<'a, str>, Node<'a>)];

/// The named part of a map.
fn get<'n, 'a>(entries: Entries<'n, 'a>, key: &str) -> Option<&'n Node<'a>> {
    entries
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, node)| node)
}

/// A map's parts; none for anything else.
fn entries<'n, 'a>(node: &'n Node<'a>) -> Entries<'n, 'a> {
    match node {
        Node::Map(entries) => entries,
        _ => &[],
    }
}

fn entries_of<'n, 'a>(node: Option<&'n Node<'a>>) -> Entries<'n, 'a> {
    node.map_or(&[], entries)
}

/// The items of an array sent as `name[0][...]` (a map with index keys) or `name[][...]`
/// (a list), or the values of a map (`currency_options[eur]`), with their keys.
fn items<'n, 'a>(node: Option<&'n Node<'a>>) -> Vec<(String, &'n Node<'a>)> {
    match node {
        Some(Node::Map(entries)) => entries
            .iter()
            .map(|(key, node)| (key.to_string(), node))
            .collect(),
        Some(Node::List(items)) => items
            .iter()
            .enumerate()
            .map(|(index, node)| (index.to_string(), node))
            .collect(),
        _ => Vec::new(),
    }
}

/// `base[name]`, or `name` at the top.
fn param(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}[{name}]")
    }
}

/// A currency code as the request states it, lower-cased; `None` when absent or not a
/// three-letter code (then every limit applies).
fn currency_of(node: Option<&Node<'_>>) -> Option<String> {
    match node {
        Some(Node::Leaf(text)) => currency_code(text),
        _ => None,
    }
}

fn currency_code(text: &str) -> Option<String> {
    let code = text.to_ascii_lowercase();
    (code.len() == 3 && code.bytes().all(|b| b.is_ascii_lowercase())).then_some(code)
}

fn is_true(node: Option<&Node<'_>>) -> bool {
    matches!(node, Some(Node::Leaf(text)) if text == "true")
}

/// A whole, non-negative amount; `None` when absent or empty (Stripe reads an empty value
/// as unset).
fn whole(node: Option<&Node<'_>>, at: &str) -> Result<Option<i64>, String> {
    match node {
        None => Ok(None),
        Some(Node::Leaf(text)) if text.is_empty() => Ok(None),
        Some(Node::Leaf(text)) => match text.parse::<i64>() {
            Ok(amount) if amount >= 0 => Ok(Some(amount)),
            _ => Err(format!(
                "`{at}` ({text:?}) could not be read as a whole, non-negative amount"
            )),
        },
        Some(_) => Err(format!("`{at}` could not be read as an amount")),
    }
}

/// A decimal amount in minor units (`12.5`), rounded up to a whole one, so the check never
/// lets through more than the limit.
fn decimal_up(node: Option<&Node<'_>>, at: &str) -> Result<Option<i64>, String> {
    let text = match node {
        None => return Ok(None),
        Some(Node::Leaf(text)) if text.is_empty() => return Ok(None),
        Some(Node::Leaf(text)) => text,
        Some(_) => return Err(format!("`{at}` could not be read as an amount")),
    };
    let unreadable = || format!("`{at}` ({text:?}) could not be read as a non-negative decimal");
    let (integer, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (integer.is_empty() && fraction.is_empty()) || !digits(integer) || !digits(fraction) {
        return Err(unreadable());
    }
    let whole: i64 = match integer {
        "" => 0,
        _ => integer.parse().map_err(|_| unreadable())?,
    };
    let round_up = i64::from(fraction.bytes().any(|b| b != b'0'));
    whole.checked_add(round_up).map(Some).ok_or_else(unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation;

    fn read(operation: &str, body: &str) -> Vec<Charge> {
        let params = validation::decode(None, Some(body.as_bytes())).unwrap();
        charges(Guarded::of(Some(operation)).unwrap(), &params)
    }

    fn known(currency: Option<&str>, amount: i64) -> Charge {
        Charge {
            currency: currency.map(str::to_owned),
            amount: Amount::Known(amount),
        }
    }

    fn money(text: &str) -> Money {
        text.parse().unwrap()
    }

    #[test]
    fn payment_intents_state_amount_and_currency() {
        assert_eq!(
            read("payment_intents.create", "amount=6000&currency=USD"),
            vec![known(Some("usd"), 6000)]
        );
        assert_eq!(
            read("payment_intents.update", "amount=100"),
            vec![known(None, 100)]
        );
        assert_eq!(read("payment_intents.update", "description=x"), vec![]);
    }

    #[test]
    fn refunds_have_no_stated_currency_and_must_state_an_amount() {
        assert_eq!(
            read("refunds.create", "charge=ch_1&amount=300&currency=jpy"),
            vec![known(None, 300)]
        );
        let [charge] = &read("refunds.create", "charge=ch_1")[..] else {
            panic!("one charge");
        };
        assert!(matches!(&charge.amount, Amount::Unknown(why) if why.contains("`amount`")));
    }

    #[test]
    fn prices_count_their_largest_amount_in_each_currency() {
        assert_eq!(
            read(
                "prices.create",
                "currency=usd&unit_amount=500&currency_options[eur][unit_amount_decimal]=700.2"
            ),
            vec![known(Some("usd"), 500), known(Some("eur"), 701)]
        );
        assert_eq!(
            read(
                "prices.create",
                "currency=usd&tiers[0][up_to]=5&tiers[0][unit_amount]=100\
                 &tiers[1][up_to]=inf&tiers[1][flat_amount]=900"
            ),
            vec![known(Some("usd"), 900)]
        );
        assert_eq!(
            read(
                "prices.create",
                "currency=usd&custom_unit_amount[enabled]=true&custom_unit_amount[maximum]=4000"
            ),
            vec![known(Some("usd"), 4000)]
        );
        let [charge] = &read(
            "prices.create",
            "currency=usd&custom_unit_amount[enabled]=true",
        )[..] else {
            panic!("one charge");
        };
        assert!(matches!(&charge.amount, Amount::Unknown(why) if why.contains("maximum")));
    }

    #[test]
    fn checkout_sums_inline_prices_times_quantities() {
        let indexed = "line_items[0][price_data][currency]=usd\
            &line_items[0][price_data][unit_amount]=1000&line_items[0][quantity]=3\
            &line_items[1][price_data][currency]=usd\
            &line_items[1][price_data][unit_amount]=250";
        let charges = read("checkout.sessions.create", indexed);
        assert_eq!(
            charges,
            vec![known(Some("usd"), 3000), known(Some("usd"), 250)]
        );
        assert_eq!(sum_in(&charges, "usd"), Ok((3250, false)));
        assert_eq!(sum_in(&charges, "eur"), Ok((0, false)));

        let listed = "currency=eur&line_items[][price_data][unit_amount]=100\
            &line_items[][quantity]=2&line_items[][price_data][unit_amount]=50";
        assert_eq!(
            read("checkout.sessions.create", listed),
            vec![known(Some("eur"), 200), known(Some("eur"), 50)]
        );
    }

    #[test]
    fn checkout_counts_the_most_a_customer_may_choose() {
        let body = "line_items[0][price_data][currency]=usd\
            &line_items[0][price_data][unit_amount]=100&line_items[0][quantity]=1\
            &line_items[0][adjustable_quantity][enabled]=true\
            &shipping_options[0][shipping_rate_data][fixed_amount][amount]=500\
            &shipping_options[0][shipping_rate_data][fixed_amount][currency]=usd\
            &shipping_options[1][shipping_rate_data][fixed_amount][amount]=900\
            &shipping_options[1][shipping_rate_data][fixed_amount][currency]=usd";
        assert_eq!(
            read("checkout.sessions.create", body),
            vec![known(Some("usd"), 9900), known(Some("usd"), 900)]
        );
    }

    #[test]
    fn checkout_cannot_price_stored_prices_or_unreadable_quantities() {
        let stored = read(
            "checkout.sessions.create",
            "currency=usd&line_items[0][price]=price_1&line_items[0][quantity]=1",
        );
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].currency.as_deref(), Some("usd"));
        assert!(
            matches!(&stored[0].amount, Amount::Unknown(why) if why.contains("line_items[0][price]"))
        );
        assert!(sum_in(&stored, "usd").is_err());
        assert_eq!(sum_in(&stored, "eur"), Ok((0, false)));

        let unreadable = read(
            "checkout.sessions.create",
            "line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=5\
             &line_items[0][quantity]=two",
        );
        assert!(
            matches!(&unreadable[0].amount, Amount::Unknown(why) if why.contains("line_items[0][quantity]"))
        );
    }

    #[test]
    fn caps_apply_per_currency_and_all_of_them_without_one() {
        let caps = [money("usd:5000"), money("eur:1000")];
        assert!(check_caps(&[known(Some("usd"), 5000)], &caps).is_ok());
        assert!(check_caps(&[known(Some("jpy"), 900_000)], &caps).is_ok());
        assert_eq!(
            check_caps(&[known(Some("usd"), 6000)], &caps).unwrap_err(),
            "This request's amount 6000 usd exceeds this key's per-request limit of 5000 usd \
             (max-amount usd:5000)."
        );
        let unstated = check_caps(&[known(None, 2000)], &caps).unwrap_err();
        assert!(unstated.contains("(max-amount eur:1000)"), "{unstated}");
        assert!(
            unstated.contains("currency is not in the request"),
            "{unstated}"
        );
    }

    #[test]
    fn daily_amounts_take_the_strictest_limit_per_currency() {
        let limits = [money("usd:10000"), money("usd:8000"), money("eur:500")];
        assert_eq!(
            daily_amounts(&[known(Some("usd"), 300)], &limits).unwrap(),
            vec![(money("usd:300"), 8000)]
        );
        assert_eq!(
            daily_amounts(&[known(None, 300)], &limits).unwrap(),
            vec![(money("eur:300"), 500), (money("usd:300"), 8000)]
        );
        assert!(daily_amounts(&[known(Some("gbp"), 300)], &limits)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn decimals_round_up_and_days_are_utc() {
        let leaf = |text: &'static str| Node::Leaf(Cow::Borrowed(text));
        assert_eq!(decimal_up(Some(&leaf("12.000")), "x"), Ok(Some(12)));
        assert_eq!(decimal_up(Some(&leaf("12.01")), "x"), Ok(Some(13)));
        assert_eq!(decimal_up(Some(&leaf("0.5")), "x"), Ok(Some(1)));
        assert!(decimal_up(Some(&leaf("-1")), "x").is_err());
        assert!(decimal_up(Some(&leaf("1e3")), "x").is_err());
        assert!(whole(Some(&leaf("-5")), "amount").is_err());
        assert_eq!(whole(Some(&leaf("")), "amount"), Ok(None));
        assert_eq!(utc_day(1_700_000_000_123), "2023-11-14");
    }
}
