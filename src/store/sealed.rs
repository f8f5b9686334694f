//! Every sealed secret in the database, read and replaced in pages, for master key
//! rotation. A trait of its own that [`Store`](super::Store) requires, so the rotation SQL
//! lives in one file; [`impl_sealed_store!`] writes the implementation for each backend.

use async_trait::async_trait;

use super::StoreError;
use crate::crypto::{Sealed, SecretPurpose};

/// The tables that hold sealed secrets, each with the purpose its secrets are sealed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealedTable {
    /// `connections.secret`: Stripe keys.
    Connections,
    /// `webhook_secrets.secret`: Stripe's `whsec_` signing secrets.
    WebhookSecrets,
    /// `push_destinations.secret`: the secrets agentgate signs pushes with.
    PushDestinations,
}

impl SealedTable {
    /// Every table with sealed secrets, in the order rotation walks them.
    pub const ALL: [SealedTable; 3] = [
        SealedTable::Connections,
        SealedTable::WebhookSecrets,
        SealedTable::PushDestinations,
    ];

    /// The purpose the table's secrets are sealed for (part of their associated data).
    pub fn purpose(self) -> SecretPurpose {
        match self {
            SealedTable::Connections => SecretPurpose::StripeKey,
            SealedTable::WebhookSecrets => SecretPurpose::WebhookSecret,
            SealedTable::PushDestinations => SecretPurpose::PushSecret,
        }
    }

    /// The table's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            SealedTable::Connections => "connections",
            SealedTable::WebhookSecrets => "webhook_secrets",
            SealedTable::PushDestinations => "push_destinations",
        }
    }

    /// One page of rows after `after`, by id, with the workspace their secret is bound to.
    pub(crate) fn page_sql(self) -> &'static str {
        match self {
            SealedTable::Connections => {
                "SELECT id, workspace_id, secret FROM connections WHERE id > $1 ORDER BY id LIMIT $2"
            }
            SealedTable::WebhookSecrets => {
                "SELECT s.id, e.workspace_id, s.secret FROM webhook_secrets s \
                 JOIN webhook_endpoints e ON e.id = s.endpoint_id \
                 WHERE s.id > $1 ORDER BY s.id LIMIT $2"
            }
            SealedTable::PushDestinations => {
                "SELECT id, workspace_id, secret FROM push_destinations WHERE id > $1 \
                 ORDER BY id LIMIT $2"
            }
        }
    }

    /// Replaces one row's secret only if it is still the one read (compare and swap).
    pub(crate) fn replace_sql(self) -> &'static str {
        match self {
            SealedTable::Connections => {
                "UPDATE connections SET secret = $1 WHERE id = $2 AND secret = $3"
            }
            SealedTable::WebhookSecrets => {
                "UPDATE webhook_secrets SET secret = $1 WHERE id = $2 AND secret = $3"
            }
            SealedTable::PushDestinations => {
                "UPDATE push_destinations SET secret = $1 WHERE id = $2 AND secret = $3"
            }
        }
    }
}

/// One sealed secret and what its associated data binds it to.
#[derive(Clone, Debug)]
pub struct SealedRow {
    /// The row id (part of the associated data).
    pub id: String,
    /// The workspace id (part of the associated data).
    pub workspace_id: String,
    /// The ciphertext as stored.
    pub secret: Sealed,
}

/// A secret re-sealed under another key: written only where the row still holds `old`.
#[derive(Debug)]
pub struct Reseal {
    /// The row id.
    pub id: String,
    /// The ciphertext read.
    pub old: Sealed,
    /// The ciphertext to store instead.
    pub new: Sealed,
}

/// Reading and replacing sealed secrets, for `agentgate master-key rotate`.
#[async_trait]
pub trait SealedStore {
    /// Up to `limit` rows of `table` with an id after `after`, by id.
    async fn sealed_page(
        &self,
        table: SealedTable,
        after: &str,
        limit: i64,
    ) -> Result<Vec<SealedRow>, StoreError>;

    /// Writes a batch of re-sealed secrets in one transaction that also bumps the
    /// generation (so caches drop ciphertexts they hold); rows changed meanwhile are left
    /// alone. Returns how many rows were replaced.
    async fn replace_sealed(&self, table: SealedTable, batch: &[Reseal])
        -> Result<u64, StoreError>;

    /// Replaces a setting only if it still has the value `old`; whether it did.
    async fn replace_setting(&self, name: &str, old: &str, new: &str) -> Result<bool, StoreError>;
}

/// Writes `impl SealedStore for $store` over its `pool: sqlx::Pool<_>` field.
macro_rules! impl_sealed_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::sealed::SealedStore for $store {
            async fn sealed_page(
                &self,
                table: $crate::store::sealed::SealedTable,
                after: &str,
                limit: i64,
            ) -> Result<Vec<$crate::store::sealed::SealedRow>, $crate::store::StoreError> {
                let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(table.page_sql())
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(id, workspace_id, secret)| $crate::store::sealed::SealedRow {
                            id,
                            workspace_id,
                            secret: $crate::crypto::Sealed::from_stored(secret),
                        },
                    )
                    .collect())
            }

            async fn replace_sealed(
                &self,
                table: $crate::store::sealed::SealedTable,
                batch: &[$crate::store::sealed::Reseal],
            ) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let mut replaced = 0;
                for reseal in batch {
                    replaced += sqlx::query(table.replace_sql())
                        .bind(reseal.new.as_bytes())
                        .bind(&reseal.id)
                        .bind(reseal.old.as_bytes())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                sqlx::query("UPDATE state_generation SET value = value + 1")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(replaced)
            }

            async fn replace_setting(
                &self,
                name: &str,
                old: &str,
                new: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                let changed =
                    sqlx::query("UPDATE settings SET value = $1 WHERE name = $2 AND value = $3")
                        .bind(new)
                        .bind(name)
                        .bind(old)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                Ok(changed == 1)
            }
        }
    };
}
pub(super) use impl_sealed_store;
