//! Everything Stripe-specific about a connection: the forms of its secret keys. (The
//! operation catalog and the webhook signature scheme will live beside this.)

mod account;
mod secret;

pub use account::{check_account, AccountCheck, AccountCheckError};
pub use secret::{KeyKind, Mode, StripeSecret, StripeSecretError};

/// The provider name stored with Stripe connections.
pub const PROVIDER: &str = "stripe";
