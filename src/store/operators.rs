//! What the dashboard's sign-in persists (operators, sessions, one-time setup tokens), as a
//! trait of its own that [`Store`](super::Store) requires, so this SQL lives beside the
//! rest. Tokens arrive here already hashed and passwords already Argon2id-hashed: no
//! secret an operator types or holds is ever stored. Each change carries its record for the
//! installation's audit and commits only with it. The SQL is the same on both backends.

use async_trait::async_trait;

use super::installation_audit::InstallationRecord;
use super::StoreError;
use crate::ids::WorkspaceId;

/// A person who may sign in to the dashboard.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OperatorRecord {
    /// `op_...`
    pub id: String,
    /// Unique sign-in name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A signed-in browser, found by the hash of its cookie's token.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    /// Hex SHA-256 of the session token.
    pub id: String,
    /// Who signed in.
    pub operator_id: String,
    /// The workspace the operator looks at (`None`: the default one).
    pub workspace_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds after which the session is worthless (moved on each use).
    pub expires_at: i64,
}

/// Operators, sessions and setup tokens.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// How many operators exist (0 means `serve` prints a setup link).
    async fn count_operators(&self) -> Result<i64, StoreError>;
    /// Stores a new operator with the change's audit record; `Conflict` if the name is taken.
    async fn insert_operator(
        &self,
        record: &OperatorRecord,
        audit: &InstallationRecord,
    ) -> Result<(), StoreError>;
    /// The operator with this sign-in name.
    async fn find_operator_by_name(&self, name: &str)
        -> Result<Option<OperatorRecord>, StoreError>;
    /// The operator with this id.
    async fn find_operator(&self, id: &str) -> Result<Option<OperatorRecord>, StoreError>;
    /// Every operator, by name (the dashboard's operators page).
    async fn list_operators(&self) -> Result<Vec<OperatorRecord>, StoreError>;
    /// Replaces an operator's password hash and ends all their sessions, with the change's
    /// audit record; `NotFound` if there is no such operator.
    async fn set_operator_password(
        &self,
        name: &str,
        hash: &str,
        audit: &InstallationRecord,
    ) -> Result<(), StoreError>;

    /// Stores a new session with the sign-in's audit record.
    async fn insert_session(
        &self,
        record: &SessionRecord,
        audit: &InstallationRecord,
    ) -> Result<(), StoreError>;
    /// The session with this token hash, if it has not expired at `now`.
    async fn find_session(&self, id: &str, now: i64) -> Result<Option<SessionRecord>, StoreError>;
    /// Moves a session's expiry (idle timeout) forward.
    async fn touch_session(&self, id: &str, expires_at: i64) -> Result<(), StoreError>;
    /// Points a session at another workspace.
    async fn set_session_workspace(
        &self,
        id: &str,
        workspace: &WorkspaceId,
    ) -> Result<(), StoreError>;
    /// Ends a session (sign-out); ending one that does not exist is not an error.
    async fn delete_session(&self, id: &str) -> Result<(), StoreError>;

    /// Stores a setup token's hash.
    async fn insert_setup_token(
        &self,
        hash: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// Whether a setup token with this hash exists, is unused and unexpired at `now`.
    async fn setup_token_usable(&self, hash: &str, now: i64) -> Result<bool, StoreError>;
    /// Marks a usable setup token used; `false` if it was not usable (so two browsers
    /// racing with one link cannot both use it).
    async fn use_setup_token(&self, hash: &str, now: i64) -> Result<bool, StoreError>;
}

/// Writes `impl OperatorStore for $store` over its `pool: sqlx::Pool<_>` field.
macro_rules! impl_operator_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::operators::OperatorStore for $store {
            async fn count_operators(&self) -> Result<i64, $crate::store::StoreError> {
                let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM operators")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(count)
            }

            async fn insert_operator(
                &self,
                record: &$crate::store::operators::OperatorRecord,
                audit: &$crate::store::installation_audit::InstallationRecord,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                self.insert_installation_row(&mut tx, audit).await?;
                sqlx::query(
                    "INSERT INTO operators (id, name, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&record.id)
                .bind(&record.name)
                .bind(&record.password_hash)
                .bind(record.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn find_operator_by_name(
                &self,
                name: &str,
            ) -> Result<Option<$crate::store::operators::OperatorRecord>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(
                    "SELECT id, name, password_hash, created_at FROM operators WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_operators(
                &self,
            ) -> Result<Vec<$crate::store::operators::OperatorRecord>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(
                    "SELECT id, name, password_hash, created_at FROM operators ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn find_operator(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::operators::OperatorRecord>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(
                    "SELECT id, name, password_hash, created_at FROM operators WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn set_operator_password(
                &self,
                name: &str,
                hash: &str,
                audit: &$crate::store::installation_audit::InstallationRecord,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                self.insert_installation_row(&mut tx, audit).await?;
                let updated =
                    sqlx::query("UPDATE operators SET password_hash = $1 WHERE name = $2")
                        .bind(hash)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                if updated == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                sqlx::query(
                    "DELETE FROM sessions WHERE operator_id = \
                     (SELECT id FROM operators WHERE name = $1)",
                )
                .bind(name)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn insert_session(
                &self,
                record: &$crate::store::operators::SessionRecord,
                audit: &$crate::store::installation_audit::InstallationRecord,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                self.insert_installation_row(&mut tx, audit).await?;
                sqlx::query(
                    "INSERT INTO sessions (id, operator_id, workspace_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&record.id)
                .bind(&record.operator_id)
                .bind(record.workspace_id.as_deref())
                .bind(record.created_at)
                .bind(record.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn find_session(
                &self,
                id: &str,
                now: i64,
            ) -> Result<Option<$crate::store::operators::SessionRecord>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(
                    "SELECT id, operator_id, workspace_id, created_at, expires_at FROM sessions \
                     WHERE id = $1 AND expires_at > $2",
                )
                .bind(id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn touch_session(
                &self,
                id: &str,
                expires_at: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE sessions SET expires_at = $1 WHERE id = $2")
                    .bind(expires_at)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn set_session_workspace(
                &self,
                id: &str,
                workspace: &$crate::ids::WorkspaceId,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE sessions SET workspace_id = $1 WHERE id = $2")
                    .bind(workspace.as_str())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_session(&self, id: &str) -> Result<(), $crate::store::StoreError> {
                sqlx::query("DELETE FROM sessions WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_setup_token(
                &self,
                hash: &str,
                created_at: i64,
                expires_at: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO setup_tokens (hash, created_at, expires_at) VALUES ($1, $2, $3)",
                )
                .bind(hash)
                .bind(created_at)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn setup_token_usable(
                &self,
                hash: &str,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let found: Option<(String,)> = sqlx::query_as(
                    "SELECT hash FROM setup_tokens \
                     WHERE hash = $1 AND used_at IS NULL AND expires_at > $2",
                )
                .bind(hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(found.is_some())
            }

            async fn use_setup_token(
                &self,
                hash: &str,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let used = sqlx::query(
                    "UPDATE setup_tokens SET used_at = $1 \
                     WHERE hash = $2 AND used_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(hash)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(used == 1)
            }
        }
    };
}

pub(super) use impl_operator_store;
