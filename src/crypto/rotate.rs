//! Re-sealing every stored secret under the current master key, the work of
//! `agentgate master-key rotate`. Each secret is opened with whichever key sealed it, sealed
//! again with the current key and written back only if the row still holds what was read,
//! in batches of one transaction each. Nothing is lost when the work stops half-way: every
//! row holds a ciphertext of the old key or of the new one, and running it again finishes.

use super::check::{reseal_check, MasterKeyCheckError};
use super::Sealer;
use crate::store::sealed::{Reseal, SealedTable};
use crate::store::{Store, StoreError};

/// How many full passes over the tables are made before giving up on rows that keep
/// changing under the rotation (each pass re-seals what the one before could not).
const MAX_PASSES: usize = 5;

/// What a rotation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Secrets re-sealed by this run.
    pub resealed: u64,
    /// Secrets seen on the current key at the end (all of them when `complete`).
    pub on_current_key: u64,
    /// Whether every secret is on the current key.
    pub complete: bool,
}

/// Why a rotation stopped.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The store failed; running the command again continues where it stopped.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database's key proof does not open with any key given.
    #[error(transparent)]
    Check(#[from] MasterKeyCheckError),
    /// Secrets that open with no key given (another master key, or tampering): they are
    /// left as they are, and the old keys must not be discarded.
    #[error("{count} stored secret(s) open with none of the keys given (first: {table} {id}); the previous keys were kept")]
    Unreadable {
        /// How many.
        count: usize,
        /// The table of the first one.
        table: &'static str,
        /// The row id of the first one.
        id: String,
    },
}

/// Limits of one run.
#[derive(Clone, Copy, Debug)]
pub struct RotationLimits {
    /// Rows per batch (one transaction each).
    pub batch_size: usize,
    /// Stop after this many batches (`None`: until done), to spread a large rotation out.
    pub max_batches: Option<usize>,
}

/// Re-seals every secret not on the sealer's current key.
pub async fn reseal_all(
    store: &dyn Store,
    sealer: &Sealer,
    limits: RotationLimits,
) -> Result<RotationReport, RotateError> {
    let mut report = RotationReport::default();
    if reseal_check(store, sealer).await? {
        report.resealed += 1;
    }
    let mut batches = 0usize;
    for _ in 0..MAX_PASSES {
        let mut pass = Pass::default();
        for table in SealedTable::ALL {
            let stopped = pass
                .table(store, sealer, table, limits, &mut batches)
                .await?;
            if stopped {
                report.resealed += pass.resealed;
                report.on_current_key = pass.current;
                return Ok(report);
            }
        }
        report.resealed += pass.resealed;
        report.on_current_key = pass.current;
        if let Some((table, id)) = pass.unreadable.first() {
            return Err(RotateError::Unreadable {
                count: pass.unreadable.len(),
                table,
                id: id.clone(),
            });
        }
        if pass.stale == 0 {
            report.complete = true;
            return Ok(report);
        }
    }
    Ok(report)
}

/// One walk over every table.
#[derive(Default)]
struct Pass {
    resealed: u64,
    /// Rows found on the current key.
    current: u64,
    /// Rows found on another key (re-sealed now, or left for the next pass if they changed).
    stale: u64,
    unreadable: Vec<(&'static str, String)>,
}

impl Pass {
    /// Walks one table; whether the batch limit stopped the run.
    async fn table(
        &mut self,
        store: &dyn Store,
        sealer: &Sealer,
        table: SealedTable,
        limits: RotationLimits,
        batches: &mut usize,
    ) -> Result<bool, RotateError> {
        let mut after = String::new();
        let limit = i64::try_from(limits.batch_size.max(1)).unwrap_or(i64::MAX);
        loop {
            if limits.max_batches.is_some_and(|max| *batches >= max) {
                return Ok(true);
            }
            let rows = store.sealed_page(table, &after, limit).await?;
            let Some(last) = rows.last() else {
                return Ok(false);
            };
            after = last.id.clone();
            let mut batch = Vec::new();
            for row in rows {
                if sealer.is_current(&row.secret) {
                    self.current += 1;
                    continue;
                }
                self.stale += 1;
                let purpose = table.purpose();
                match sealer.open(purpose, &row.workspace_id, &row.id, &row.secret) {
                    Ok(plain) => {
                        let new = sealer.seal(purpose, &row.workspace_id, &row.id, &plain);
                        batch.push(Reseal {
                            id: row.id,
                            old: row.secret,
                            new,
                        });
                    }
                    Err(_) => self.unreadable.push((table.name(), row.id)),
                }
            }
            if !batch.is_empty() {
                let replaced = store.replace_sealed(table, &batch).await?;
                self.resealed += replaced;
                self.current += replaced;
                *batches += 1;
                tracing::info!(
                    table = table.name(),
                    replaced,
                    "re-sealed a batch of secrets"
                );
            }
        }
    }
}
