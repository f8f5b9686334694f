//! Prefixed identifiers (`ws_`, `key_`, `conn_`, `whe_`), so an id says what it names, and the
//! random alphabet they share with agentgate keys.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The 62 characters ids and keys are made of: safe in URLs, paths and shells.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` characters of [`BASE62`] from the operating system's CSPRNG-seeded generator.
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect()
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id (about 95 bits of randomness).
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_base62(16)))
            }

            /// Wraps an id read back from the store or typed by an operator.
            pub fn from_stored(value: String) -> Self {
                Self(value)
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as owned text, for handing it on without a copy.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// Identifies a workspace (tenant); every tenant row carries one.
    WorkspaceId,
    "ws_"
);
prefixed_id!(
    /// Identifies an agentgate key (the public handle, never the key itself).
    KeyId,
    "key_"
);
prefixed_id!(
    /// Identifies a connection (a stored Stripe key); part of its ciphertext's binding.
    ConnectionId,
    "conn_"
);

prefixed_id!(
    /// Identifies a Stripe webhook endpoint; part of its public ingest URL.
    EndpointId,
    "whe_"
);

prefixed_id!(
    /// Identifies a push destination: an agent's URL that an endpoint's events are posted to.
    DestinationId,
    "dst_"
);

prefixed_id!(
    /// Identifies one delivery of one event to one destination (its attempts share it).
    DeliveryId,
    "dlv_"
);

impl EndpointId {
    /// A fresh id for an ingest URL that must not be guessable (about 190 bits).
    pub fn generate_unguessable() -> Self {
        Self(format!("{}{}", Self::PREFIX, random_base62(32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_differ() {
        let a = KeyId::generate();
        let b = KeyId::generate();
        assert!(a.as_str().starts_with("key_"));
        assert_eq!(a.as_str().len(), 4 + 16);
        assert_ne!(a, b);
    }
}
