//! The scope check of a data-plane request: each rule a key's [`Scopes`] set, in the order
//! an operator reads them, refusing with the permission that is missing.

use std::net::IpAddr;

use http::Method;

use super::{pattern_matches, Role, Scopes};

/// What the scope check needs to know about a request.
pub struct RequestFacts<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The connection named in the URL.
    pub connection: &'a str,
    /// Whether the connection holds a live-mode Stripe key.
    pub live: bool,
    /// The catalog operation, when the request is a listed one.
    pub operation: Option<&'a str>,
    /// The `Stripe-Account` header, if sent.
    pub stripe_account: Option<&'a str>,
    /// The client's address, when known.
    pub client_ip: Option<IpAddr>,
}

/// A refusal: the permission the key lacks, and a message that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// The scope that refused (`connection`, `operation`, `raw`, `read_only`, `test_only`,
    /// `stripe_account`, `ip`, `role`).
    pub permission: &'static str,
    /// What is not allowed, for the caller.
    pub message: String,
}

fn denied(permission: &'static str, message: String) -> Result<(), Denied> {
    Err(Denied {
        permission,
        message,
    })
}

/// Checks a data-plane request against a key's role and scopes.
pub fn authorize(role: Role, scopes: &Scopes, facts: &RequestFacts<'_>) -> Result<(), Denied> {
    if role != Role::Agent {
        return denied(
            "role",
            "Admin keys manage a workspace through /api/v1 and call no connection; use an agent key.".into(),
        );
    }
    if !scopes.ips.is_empty() {
        let allowed = facts
            .client_ip
            .is_some_and(|ip| scopes.ips.iter().any(|net| net.contains(&ip)));
        if !allowed {
            return denied("ip", "This key may not be used from this address.".into());
        }
    }
    if !scopes.connections.is_empty() && !scopes.connections.iter().any(|c| c == facts.connection) {
        return denied(
            "connection",
            format!(
                "This key may not use the connection '{}'.",
                facts.connection
            ),
        );
    }
    if scopes.test_only && facts.live {
        return denied(
            "test_only",
            format!(
                "This key is limited to test mode, and the connection '{}' holds a live key.",
                facts.connection
            ),
        );
    }
    if scopes.read_only && facts.method != Method::GET {
        return denied(
            "read_only",
            format!(
                "This key is read-only; {} requests are not allowed.",
                facts.method
            ),
        );
    }
    if !scopes.allow.is_empty() {
        match facts.operation {
            Some(id) if !scopes.allow.iter().any(|p| pattern_matches(p, id)) => {
                return denied(
                    "operation",
                    format!(
                        "This key may not call {id} (allowed: {}).",
                        scopes.allow.join(", ")
                    ),
                );
            }
            None if !scopes.raw => {
                return denied(
                    "raw",
                    "This key may only call the operations it allows; this path is not a listed \
                     operation (a key needs the raw scope for unlisted paths)."
                        .into(),
                );
            }
            _ => {}
        }
    }
    if !scopes.stripe_accounts.is_empty() {
        match facts.stripe_account {
            Some(account) if scopes.stripe_accounts.iter().any(|a| a == account) => {}
            Some(account) => {
                return denied(
                    "stripe_account",
                    format!("This key may not act as the account '{account}'."),
                )
            }
            None => {
                return denied(
                    "stripe_account",
                    "This key acts only on its connected accounts; send Stripe-Account.".into(),
                )
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(method: &'a Method, operation: Option<&'a str>) -> RequestFacts<'a> {
        RequestFacts {
            method,
            connection: "stripe",
            live: false,
            operation,
            stripe_account: None,
            client_ip: Some("10.1.2.3".parse().unwrap()),
        }
    }

    #[test]
    fn an_unrestricted_agent_key_may_do_everything() {
        let scopes = Scopes::default();
        assert!(authorize(Role::Agent, &scopes, &facts(&Method::POST, None)).is_ok());
        assert!(authorize(
            Role::Agent,
            &scopes,
            &facts(&Method::DELETE, Some("customers.delete"))
        )
        .is_ok());
        let refused = authorize(Role::Admin, &scopes, &facts(&Method::GET, None)).unwrap_err();
        assert_eq!(refused.permission, "role");
    }

    #[test]
    fn each_scope_refuses_with_its_own_permission() {
        let post = Method::POST;
        let get = Method::GET;
        let case = |scopes: Scopes, facts: RequestFacts<'_>| {
            authorize(Role::Agent, &scopes, &facts)
                .err()
                .map(|d| d.permission)
        };
        let allow = Scopes {
            allow: vec!["customers.*".into()],
            ..Scopes::default()
        };
        assert_eq!(
            case(allow.clone(), facts(&post, Some("refunds.create"))),
            Some("operation")
        );
        assert_eq!(
            case(allow.clone(), facts(&post, Some("customers.create"))),
            None
        );
        assert_eq!(case(allow.clone(), facts(&get, None)), Some("raw"));
        let raw = Scopes { raw: true, ..allow };
        assert_eq!(case(raw, facts(&get, None)), None);
        let read_only = Scopes {
            read_only: true,
            ..Scopes::default()
        };
        assert_eq!(
            case(read_only.clone(), facts(&post, None)),
            Some("read_only")
        );
        assert_eq!(case(read_only, facts(&get, None)), None);
        let test_only = Scopes {
            test_only: true,
            ..Scopes::default()
        };
        assert_eq!(
            case(
                test_only,
                RequestFacts {
                    live: true,
                    ..facts(&get, None)
                }
            ),
            Some("test_only")
        );
        let connections = Scopes {
            connections: vec!["stripe-eu".into()],
            ..Scopes::default()
        };
        assert_eq!(case(connections, facts(&get, None)), Some("connection"));
        let ips = Scopes {
            ips: vec!["10.0.0.0/8".parse().unwrap()],
            ..Scopes::default()
        };
        assert_eq!(case(ips.clone(), facts(&get, None)), None);
        assert_eq!(
            case(
                ips,
                RequestFacts {
                    client_ip: Some("192.168.0.1".parse().unwrap()),
                    ..facts(&get, None)
                }
            ),
            Some("ip")
        );
        let accounts = Scopes {
            stripe_accounts: vec!["acct_1".into()],
            ..Scopes::default()
        };
        assert_eq!(
            case(accounts.clone(), facts(&get, None)),
            Some("stripe_account")
        );
        assert_eq!(
            case(
                accounts.clone(),
                RequestFacts {
                    stripe_account: Some("acct_2"),
                    ..facts(&get, None)
                }
            ),
            Some("stripe_account")
        );
        assert_eq!(
            case(
                accounts,
                RequestFacts {
                    stripe_account: Some("acct_1"),
                    ..facts(&get, None)
                }
            ),
            None
        );
    }
}
