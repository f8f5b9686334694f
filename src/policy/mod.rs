//! What an agentgate key may do: its role and scopes, checked before anything is forwarded,
//! and the money guardrails, rate limits and idempotency rules that go with them.
//!
//! Scopes are set when a key is created (`agentgate keys create --allow ...`), stored with
//! the key as JSON, and cached with it. A key without restrictions can do everything the
//! Stripe key can, as before scopes existed.

pub mod guardrails;
pub mod idempotency;
pub mod rate;
pub mod scopes;

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use scopes::{authorize, Denied, RequestFacts};

/// What a key is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Calls connections and reads events.
    #[default]
    Agent,
    /// Manages its workspace through the management API; calls no connection.
    Admin,
}

impl Role {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }

    /// Reads a stored role; anything unknown is the least powerful one.
    pub fn from_stored(text: &str) -> Self {
        match text {
            "admin" => Role::Admin,
            _ => Role::Agent,
        }
    }
}

/// The restrictions of one key. Empty lists mean "no restriction" for that aspect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scopes {
    /// Connections the key may use (all when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    /// Catalog operations the key may call, by id or pattern (`customers.*`, `*.list`); when
    /// any is given, unlisted Stripe paths need `raw`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Unlisted Stripe paths are allowed even though `allow` narrows the operations.
    #[serde(skip_serializing_if = "is_false")]
    pub raw: bool,
    /// Only GET requests.
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// Only connections holding a test-mode Stripe key.
    #[serde(skip_serializing_if = "is_false")]
    pub test_only: bool,
    /// `Stripe-Account` values (Connect) the key may act as; when given, the header is
    /// required.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stripe_accounts: Vec<String>,
    /// Client address ranges the key may be used from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpNet>,
    /// Largest amount per request, per currency.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub max_amount: Vec<Money>,
    /// Largest total per UTC day, per currency, of the amounts created through payment
    /// intents and refunds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub daily_limit: Vec<Money>,
    /// How POST requests without an `Idempotency-Key` are treated.
    #[serde(skip_serializing_if = "IdempotencyMode::is_off")]
    pub idempotency: IdempotencyMode,
    /// Requests per second with a burst.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Scopes {
    /// Scopes that allow no connection: what a stored key whose scopes cannot be read gets,
    /// so a damaged row never widens a key.
    pub fn deny_all() -> Self {
        Self {
            connections: vec![String::new()],
            ..Self::default()
        }
    }

    /// The scopes as one line for people (`allow=customers.*,refunds.create read-only`), or
    /// `unrestricted`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let list = |name: &str, items: Vec<String>| format!("{name}={}", items.join(","));
        if !self.connections.is_empty() {
            parts.push(list("connections", self.connections.clone()));
        }
        if !self.allow.is_empty() {
            parts.push(list("allow", self.allow.clone()));
        }
        if self.raw {
            parts.push("raw".to_owned());
        }
        if self.read_only {
            parts.push("read-only".to_owned());
        }
        if self.test_only {
            parts.push("test-only".to_owned());
        }
        if !self.stripe_accounts.is_empty() {
            parts.push(list("stripe-account", self.stripe_accounts.clone()));
        }
        if !self.ips.is_empty() {
            parts.push(list(
                "ip",
                self.ips.iter().map(ToString::to_string).collect(),
            ));
        }
        if !self.max_amount.is_empty() {
            parts.push(list(
                "max-amount",
                self.max_amount.iter().map(ToString::to_string).collect(),
            ));
        }
        if !self.daily_limit.is_empty() {
            parts.push(list(
                "daily-limit",
                self.daily_limit.iter().map(ToString::to_string).collect(),
            ));
        }
        if !self.idempotency.is_off() {
            parts.push(format!("idempotency={}", self.idempotency.as_str()));
        }
        if let Some(rate) = &self.rate {
            parts.push(format!("rate={rate}"));
        }
        if parts.is_empty() {
            "unrestricted".to_owned()
        } else {
            parts.join(" ")
        }
    }

    /// Checks that every pattern names at least one operation of `catalog`, so a typo does
    /// not silently allow nothing.
    pub fn check_patterns(&self, catalog: &crate::catalog::Catalog) -> Result<(), String> {
        for pattern in &self.allow {
            if !catalog
                .operations
                .iter()
                .any(|op| pattern_matches(pattern, &op.id))
            {
                return Err(format!("--allow {pattern} names no operation of the catalog (see `agentgate catalog list`)"));
            }
        }
        Ok(())
    }
}

/// Whether an operation pattern (`customers.*`, `*.list`, `refunds.create`, `*`) matches
/// an operation id; `*` stands for any run of characters, dots included.
pub fn pattern_matches(pattern: &str, id: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = id.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// An amount in a currency's minor unit, as Stripe counts it (`usd:5000` is $50.00).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Lower-case ISO currency code.
    pub currency: String,
    /// Minor units.
    pub amount: i64,
}

impl FromStr for Money {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (currency, amount) = text
            .split_once(':')
            .ok_or_else(|| format!("expected CUR:AMOUNT such as usd:5000, got {text:?}"))?;
        let currency = currency.trim().to_ascii_lowercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(format!("{currency:?} is not a three-letter currency code"));
        }
        let amount: i64 = amount
            .trim()
            .parse()
            .map_err(|_| format!("{amount:?} is not a whole amount in minor units"))?;
        if amount < 0 {
            return Err("an amount limit cannot be negative".into());
        }
        Ok(Self { currency, amount })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.currency, self.amount)
    }
}

/// How POST requests without an `Idempotency-Key` are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyMode {
    /// Forwarded as sent.
    #[default]
    Off,
    /// Refused with 400.
    Require,
    /// Given a key derived from the agentgate key, method, path and body.
    Derive,
}

impl IdempotencyMode {
    /// The word used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            IdempotencyMode::Off => "off",
            IdempotencyMode::Require => "require",
            IdempotencyMode::Derive => "derive",
        }
    }

    fn is_off(&self) -> bool {
        *self == IdempotencyMode::Off
    }
}

/// A request rate: `per_second` sustained, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (rate, burst) = text.split_once(':').unwrap_or((text, ""));
        let per_second: u32 = rate
            .trim()
            .parse()
            .map_err(|_| format!("expected RPS[:BURST] such as 5:10, got {text:?}"))?;
        let burst = if burst.is_empty() {
            per_second
        } else {
            burst
                .trim()
                .parse()
                .map_err(|_| format!("expected RPS[:BURST] such as 5:10, got {text:?}"))?
        };
        if per_second == 0 || burst == 0 {
            return Err("a rate and its burst must be at least 1".into());
        }
        Ok(Self { per_second, burst })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.per_second, self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_ids_by_glob() {
        assert!(pattern_matches("customers.*", "customers.create"));
        assert!(pattern_matches("*.list", "checkout.sessions.list"));
        assert!(pattern_matches("*", "payouts.list"));
        assert!(pattern_matches("refunds.create", "refunds.create"));
        assert!(pattern_matches(
            "checkout.*.create",
            "checkout.sessions.create"
        ));
        assert!(!pattern_matches("customers.*", "charges.list"));
        assert!(!pattern_matches("refunds.create", "refunds.created"));
        assert!(!pattern_matches("*.list", "customers.listing"));
    }

    #[test]
    fn money_and_rates_parse_from_the_command_line_form() {
        assert_eq!(
            "USD:5000".parse::<Money>().unwrap(),
            Money {
                currency: "usd".into(),
                amount: 5000
            }
        );
        assert!("usd".parse::<Money>().is_err());
        assert!("dollars:5".parse::<Money>().is_err());
        assert!("usd:-1".parse::<Money>().is_err());
        assert_eq!(
            "5:10".parse::<Rate>().unwrap(),
            Rate {
                per_second: 5,
                burst: 10
            }
        );
        assert_eq!(
            "3".parse::<Rate>().unwrap(),
            Rate {
                per_second: 3,
                burst: 3
            }
        );
        assert!("0".parse::<Rate>().is_err());
    }

    #[test]
    fn scopes_round_trip_through_json_and_summarize() {
        let scopes = Scopes {
            allow: vec!["customers.*".into()],
            read_only: true,
            max_amount: vec!["usd:5000".parse().unwrap()],
            ..Scopes::default()
        };
        let json = serde_json::to_string(&scopes).unwrap();
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), scopes);
        assert_eq!(serde_json::to_string(&Scopes::default()).unwrap(), "{}");
        assert_eq!(
            scopes.summary(),
            "allow=customers.* read-only max-amount=usd:5000"
        );
    }
}
