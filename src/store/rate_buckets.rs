//! Token buckets shared by every instance on one PostgreSQL database.
//!
//! Each bucket is one row holding its GCRA theoretical arrival time in microseconds of the
//! database server's clock, so instances never compare their own clocks. Instances do not
//! ask the database per request: they take tokens locally and exchange what they took for
//! what everyone took every few milliseconds ([`crate::policy::rate`] says how often and
//! what that means for accuracy).

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};

use super::StoreError;

/// One bucket's share of an exchange: what this instance took since the last one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// The bucket's name: the id of the key or connection it limits.
    pub bucket: String,
    /// Tokens taken, as microseconds of arrival time (tokens × interval).
    pub charge_us: i64,
}

/// The cluster's view of a bucket after an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedArrival {
    /// The bucket's name.
    pub bucket: String,
    /// How far the bucket's arrival time lies ahead of the database's clock, in
    /// microseconds; zero or less is a full bucket.
    pub ahead_us: i64,
}

/// The `rate_buckets` table of a PostgreSQL database.
pub struct SharedBuckets {
    pool: Pool<Postgres>,
}

/// Adds each charge to its bucket (lifting an arrival time in the past to now first, as
/// GCRA does) and returns every bucket's arrival time relative to now. Rows are written in
/// name order, so two instances exchanging the same buckets cannot deadlock.
const EXCHANGE: &str = "\
    WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us), \
    changed AS ( \
        INSERT INTO rate_buckets AS b (bucket, tat_us) \
        SELECT t.bucket, clock.now_us + t.charge_us \
        FROM unnest($1::text[], $2::bigint[]) AS t(bucket, charge_us), clock \
        ORDER BY t.bucket \
        ON CONFLICT (bucket) DO UPDATE \
        SET tat_us = GREATEST(b.tat_us, (SELECT now_us FROM clock)) \
            + (excluded.tat_us - (SELECT now_us FROM clock)) \
        RETURNING b.bucket, b.tat_us) \
    SELECT changed.bucket, changed.tat_us - clock.now_us FROM changed, clock";

/// Buckets nobody has used for a day are forgotten (a full bucket and no row are the same).
const FORGET_IDLE: &str = "DELETE FROM rate_buckets \
    WHERE tat_us < (extract(epoch FROM clock_timestamp()) * 1000000)::bigint - 86400000000";

impl std::fmt::Debug for SharedBuckets {
    /// Says nothing of the connection (its options hold the database password).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBuckets").finish_non_exhaustive()
    }
}

impl SharedBuckets {
    /// The shared buckets of the database `url` names; `None` for a database only one
    /// instance uses (SQLite).
    pub fn connect(url: &str) -> Result<Option<Self>, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Ok(None);
        }
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options);
        Ok(Some(Self { pool }))
    }

    /// Adds what this instance took and reads back where every bucket named stands.
    pub async fn exchange(&self, taken: &[Taken]) -> Result<Vec<SharedArrival>, StoreError> {
        if taken.is_empty() {
            return Ok(Vec::new());
        }
        let buckets: Vec<&str> = taken.iter().map(|t| t.bucket.as_str()).collect();
        let charges: Vec<i64> = taken.iter().map(|t| t.charge_us).collect();
        let rows: Vec<(String, i64)> = sqlx::query_as(EXCHANGE)
            .bind(&buckets)
            .bind(&charges)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(bucket, ahead_us)| SharedArrival { bucket, ahead_us })
            .collect())
    }

    /// Deletes buckets idle for a day.
    pub async fn forget_idle(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(FORGET_IDLE)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
