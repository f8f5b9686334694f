//! A key's scopes as JSON, in the words of `agentgate keys create`'s flags: amounts as
//! `usd:5000`, rates as `5:10`, address ranges as CIDR text. Read strictly (an unknown
//! field or a bad value is a 400 naming it) and checked against the catalog.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{invalid, ApiError};
use crate::catalog::Catalog;
use crate::policy::{IdempotencyMode, Role, Scopes};
use crate::proxy::is_connection_name;

/// What a key may do; every field left out is no restriction of that kind.
#[derive(Default, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(as = Scopes)]
pub struct ScopesBody {
    /// Connections the key may use (all when empty).
    connections: Vec<String>,
    /// Operations by catalog id or pattern (`customers.*`, `*.list`); when given,
    /// unlisted Stripe paths need `raw`.
    allow: Vec<String>,
    /// Allow unlisted Stripe paths although `allow` narrows the operations.
    raw: bool,
    /// Only GET requests.
    read_only: bool,
    /// Only connections holding a test-mode Stripe key.
    test_only: bool,
    /// `Stripe-Account` values (Connect) the key may act as.
    stripe_accounts: Vec<String>,
    /// Client address ranges (`10.0.0.0/8`).
    ips: Vec<String>,
    /// Largest amount per request and currency, in minor units (`usd:5000`).
    max_amount: Vec<String>,
    /// Largest total per UTC day and currency of payment intents and refunds (`usd:100000`).
    daily_limit: Vec<String>,
    /// POST requests without an `Idempotency-Key`.
    idempotency: IdempotencyWord,
    /// Requests per second with an optional burst (`5` or `5:10`).
    #[schema(pattern = "^[0-9]+(:[0-9]+)?$")]
    rate: Option<String>,
}

/// How POST requests without an `Idempotency-Key` are treated: forwarded (`off`), refused
/// (`require`), or given a derived key (`derive`).
#[derive(Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Idempotency)]
pub enum IdempotencyWord {
    /// Forwarded as sent.
    #[default]
    Off,
    /// Refused with 400.
    Require,
    /// Given a key derived from the agentgate key, method, path and body.
    Derive,
}

/// What a key is for: `agent` calls connections, `admin` manages the workspace here.
#[derive(Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Role)]
pub enum RoleWord {
    /// Calls connections and reads events.
    #[default]
    Agent,
    /// Manages its workspace through this API.
    Admin,
}

impl From<RoleWord> for Role {
    fn from(word: RoleWord) -> Self {
        match word {
            RoleWord::Agent => Role::Agent,
            RoleWord::Admin => Role::Admin,
        }
    }
}

impl From<Role> for RoleWord {
    fn from(role: Role) -> Self {
        match role {
            Role::Agent => RoleWord::Agent,
            Role::Admin => RoleWord::Admin,
        }
    }
}

impl ScopesBody {
    /// The scopes to store, each value parsed as the CLI parses its flag.
    pub fn into_scopes(self, catalog: &Catalog) -> Result<Scopes, ApiError> {
        if let Some(bad) = self.connections.iter().find(|c| !is_connection_name(c)) {
            let message =
                format!("{bad:?} is not a connection name (1 to 64 letters, digits, '-' or '_').");
            return Err(invalid("scopes[connections]", message));
        }
        if self
            .stripe_accounts
            .iter()
            .any(|a| a.is_empty() || a.len() > 255)
        {
            let message = "A Stripe account is 1 to 255 characters (acct_...).".to_owned();
            return Err(invalid("scopes[stripe_accounts]", message));
        }
        let scopes = Scopes {
            connections: self.connections,
            allow: self.allow,
            raw: self.raw,
            read_only: self.read_only,
            test_only: self.test_only,
            stripe_accounts: self.stripe_accounts,
            ips: parse_all("scopes[ips]", &self.ips)?,
            max_amount: parse_all("scopes[max_amount]", &self.max_amount)?,
            daily_limit: parse_all("scopes[daily_limit]", &self.daily_limit)?,
            idempotency: match self.idempotency {
                IdempotencyWord::Off => IdempotencyMode::Off,
                IdempotencyWord::Require => IdempotencyMode::Require,
                IdempotencyWord::Derive => IdempotencyMode::Derive,
            },
            rate: self
                .rate
                .map(|rate| {
                    rate.parse()
                        .map_err(|e| invalid("scopes[rate]", format!("{e}.")))
                })
                .transpose()?,
        };
        scopes
            .check_patterns(catalog)
            .map_err(|e| invalid("scopes[allow]", format!("{e}.")))?;
        Ok(scopes)
    }

    /// The stored scopes in the words they were given in.
    pub fn from_scopes(scopes: &Scopes) -> Self {
        let text = |items: &[_]| items.iter().map(ToString::to_string).collect();
        Self {
            connections: scopes.connections.clone(),
            allow: scopes.allow.clone(),
            raw: scopes.raw,
            read_only: scopes.read_only,
            test_only: scopes.test_only,
            stripe_accounts: scopes.stripe_accounts.clone(),
            ips: scopes.ips.iter().map(ToString::to_string).collect(),
            max_amount: text(&scopes.max_amount),
            daily_limit: text(&scopes.daily_limit),
            idempotency: match scopes.idempotency {
                IdempotencyMode::Off => IdempotencyWord::Off,
                IdempotencyMode::Require => IdempotencyWord::Require,
                IdempotencyMode::Derive => IdempotencyWord::Derive,
            },
            rate: scopes.rate.map(|rate| rate.to_string()),
        }
    }
}

/// Parses every item of a list, naming the list and the item at fault.
fn parse_all<T: std::str::FromStr>(param: &str, items: &[String]) -> Result<Vec<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    items
        .iter()
        .map(|item| {
            item.parse()
                .map_err(|e| invalid(param, format!("Invalid {param} value {item:?}: {e}.")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> ScopesBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn scopes_read_in_the_cli_words_and_render_back_the_same() {
        let json = serde_json::json!({
            "allow": ["customers.*"], "max_amount": ["usd:5000"], "rate": "5:10",
            "ips": ["10.0.0.0/8"], "idempotency": "derive"
        });
        let scopes = body(json).into_scopes(&Catalog::embedded()).unwrap();
        assert_eq!(scopes.max_amount[0].amount, 5000);
        let back = serde_json::to_value(ScopesBody::from_scopes(&scopes)).unwrap();
        assert_eq!(back["max_amount"][0], "usd:5000");
        assert_eq!(back["rate"], "5:10");
        assert_eq!(back["idempotency"], "derive");
    }

    #[test]
    fn bad_values_are_refused_naming_the_scope() {
        let catalog = Catalog::embedded();
        for (json, param) in [
            (
                serde_json::json!({"allow": ["nothing.matches"]}),
                "scopes[allow]",
            ),
            (
                serde_json::json!({"max_amount": ["usd"]}),
                "scopes[max_amount]",
            ),
            (serde_json::json!({"rate": "0"}), "scopes[rate]"),
            (serde_json::json!({"ips": ["not-an-ip"]}), "scopes[ips]"),
            (
                serde_json::json!({"connections": ["a/b"]}),
                "scopes[connections]",
            ),
        ] {
            let error = body(json).into_scopes(&catalog).err().unwrap();
            assert_eq!(error.0.reason(), format!("parameter_invalid {param}"));
        }
        assert!(serde_json::from_value::<ScopesBody>(serde_json::json!({"colour": 1})).is_err());
    }
}
