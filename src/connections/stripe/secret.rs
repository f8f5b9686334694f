//! A Stripe secret or restricted key, checked for its form when it comes in and never
//! printed: `Debug` and the masked form show only its kind, mode and last four characters.

use secrecy::{ExposeSecret, SecretString};

/// Live or test mode, decided by the key (Stripe keeps the two worlds apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `sk_test_` / `rk_test_`.
    Test,
    /// `sk_live_` / `rk_live_`.
    Live,
}

impl Mode {
    /// `test` or `live`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
}

/// A full secret key or a restricted key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `sk_`: can do everything on the account.
    Secret,
    /// `rk_`: limited to the permissions set in Stripe's dashboard.
    Restricted,
}

impl KeyKind {
    /// `secret` or `restricted`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Restricted => "restricted",
        }
    }
}

/// Why a pasted Stripe key was refused. Never contains the key.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StripeSecretError {
    /// A publishable key, which cannot make server-side calls.
    #[error("that is a publishable key (pk_...); agentgate needs a secret (sk_) or restricted (rk_) key")]
    Publishable,
    /// Anything else that is not `sk_test_`, `sk_live_`, `rk_test_` or `rk_live_` + key text.
    #[error("a Stripe key starts with sk_test_, sk_live_, rk_test_ or rk_live_ followed by letters and digits")]
    Malformed,
}

/// A Stripe API key held in memory only, zeroized on drop.
pub struct StripeSecret {
    value: SecretString,
    mode: Mode,
    kind: KeyKind,
}

impl std::fmt::Debug for StripeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StripeSecret({}***)", self.type_prefix())
    }
}

impl StripeSecret {
    /// Checks the form of a key (surrounding whitespace, such as a trailing newline, is
    /// ignored) and keeps it.
    pub fn parse(text: &str) -> Result<Self, StripeSecretError> {
        let text = text.trim();
        if text.starts_with("pk_") {
            return Err(StripeSecretError::Publishable);
        }
        let (kind, mode) = match text.get(..8) {
            Some("sk_test_") => (KeyKind::Secret, Mode::Test),
            Some("sk_live_") => (KeyKind::Secret, Mode::Live),
            Some("rk_test_") => (KeyKind::Restricted, Mode::Test),
            Some("rk_live_") => (KeyKind::Restricted, Mode::Live),
            _ => return Err(StripeSecretError::Malformed),
        };
        let rest = &text[8..];
        let well_formed = (3..=247).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !well_formed {
            return Err(StripeSecretError::Malformed);
        }
        Ok(Self {
            value: SecretString::from(text.to_owned()),
            mode,
            kind,
        })
    }

    /// Live or test.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Secret or restricted.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// `sk_test_…4242`: safe to show and store.
    pub fn masked(&self) -> String {
        let value = self.value.expose_secret();
        format!("{}…{}", self.type_prefix(), &value[value.len() - 4..])
    }

    /// The key itself, for sealing and for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    fn type_prefix(&self) -> &'static str {
        match (self.kind, self.mode) {
            (KeyKind::Secret, Mode::Test) => "sk_test_",
            (KeyKind::Secret, Mode::Live) => "sk_live_",
            (KeyKind::Restricted, Mode::Test) => "rk_test_",
            (KeyKind::Restricted, Mode::Live) => "rk_live_",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_four_key_forms() {
        let cases = [
            ("sk_test_abcdEFGH1234", KeyKind::Secret, Mode::Test),
            ("sk_live_abcdEFGH1234", KeyKind::Secret, Mode::Live),
            ("rk_test_abcdEFGH1234", KeyKind::Restricted, Mode::Test),
            ("rk_live_abcdEFGH1234\n", KeyKind::Restricted, Mode::Live),
        ];
        for (text, kind, mode) in cases {
            let secret = StripeSecret::parse(text).unwrap();
            assert_eq!((secret.kind(), secret.mode()), (kind, mode));
        }
    }

    #[test]
    fn refuses_publishable_and_malformed_keys() {
        assert_eq!(
            StripeSecret::parse("pk_test_abcdEFGH1234").unwrap_err(),
            StripeSecretError::Publishable
        );
        for bad in [
            "",
            "sk_test_",
            "sk_test_ab",
            "sk_prod_abcdEFGH1234",
            "sk_test_abc def ghi jk",
            "whsec_abcdEFGH1234",
        ] {
            assert_eq!(
                StripeSecret::parse(bad).unwrap_err(),
                StripeSecretError::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn masks_and_debugs_without_the_key() {
        let secret = StripeSecret::parse("sk_live_51SuperSecretValue4242").unwrap();
        assert_eq!(secret.masked(), "sk_live_…4242");
        assert_eq!(format!("{secret:?}"), "StripeSecret(sk_live_***)");
    }
}
