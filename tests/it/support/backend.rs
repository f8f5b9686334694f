//! A fresh database per test: a SQLite file in a temporary directory, or a PostgreSQL
//! schema of its own (selected through the URL's `search_path`), dropped afterwards.

use std::path::PathBuf;

use sqlx::Connection;
use tempfile::TempDir;

/// Environment switch for the PostgreSQL variants, e.g.
/// `AGENTGATE_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test`.
pub const POSTGRES_SWITCH: &str = "AGENTGATE_TEST_POSTGRES";

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Whether PostgreSQL tests run; prints why not when they do not.
    pub fn postgres_enabled(test: &str) -> bool {
        let enabled = postgres_base_url().is_some();
        if !enabled {
            eprintln!("SKIP {test}::postgres: set {POSTGRES_SWITCH}=postgres://... to run it");
        }
        enabled
    }
}

fn postgres_base_url() -> Option<String> {
    std::env::var(POSTGRES_SWITCH)
        .ok()
        .filter(|v| !v.is_empty())
}

/// A database that exists for one test.
pub struct TestDb {
    /// The URL agentgate is given.
    pub url: String,
    /// Directory for files of the test (the SQLite file lives here).
    pub dir: TempDir,
    /// The SQLite file, for tests that read its bytes.
    pub sqlite_file: Option<PathBuf>,
    schema: Option<String>,
}

impl TestDb {
    /// Creates an empty database of the given kind.
    pub async fn create(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        match backend {
            Backend::Sqlite => {
                let file = dir.path().join("agentgate.db");
                Self {
                    url: format!("sqlite://{}", file.display()),
                    sqlite_file: Some(file),
                    dir,
                    schema: None,
                }
            }
            Backend::Postgres => {
                let base = postgres_base_url().expect("PostgreSQL tests are switched on");
                let schema = format!("agt_{}", agentgate::ids::random_base62(12).to_lowercase());
                let mut conn = sqlx::PgConnection::connect(&base)
                    .await
                    .expect("connect to PostgreSQL");
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .expect("create schema");
                let separator = if base.contains('?') { '&' } else { '?' };
                Self {
                    url: format!("{base}{separator}options=-c%20search_path%3D{schema}"),
                    dir,
                    sqlite_file: None,
                    schema: Some(schema),
                }
            }
        }
    }

    /// Makes every insert into `table` fail, as a full disk or a broken table would, or lets
    /// them through again.
    pub async fn refuse_inserts(&self, table: &str, refuse: bool) {
        self.refuse("INSERT", table, refuse).await;
    }

    /// Makes every delete from `table` fail, or lets them through again.
    pub async fn refuse_deletes(&self, table: &str, refuse: bool) {
        self.refuse("DELETE", table, refuse).await;
    }

    /// Makes every `verb` (`INSERT`, `DELETE`) on `table` fail, or lets them through again.
    async fn refuse(&self, verb: &str, table: &str, refuse: bool) {
        let trigger = format!("refuse_{}_{table}", verb.to_lowercase());
        let sql = match (&self.schema, refuse) {
            (None, true) => format!(
                "CREATE TRIGGER {trigger} BEFORE {verb} ON {table} \
                 BEGIN SELECT RAISE(ABORT, '{table} refused'); END"
            ),
            (None, false) => format!("DROP TRIGGER {trigger}"),
            (Some(_), true) => format!(
                "CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 RAISE EXCEPTION '{table} refused'; END $$; \
                 CREATE TRIGGER {trigger} BEFORE {verb} ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION {trigger}()"
            ),
            (Some(_), false) => {
                format!("DROP TRIGGER {trigger} ON {table}; DROP FUNCTION {trigger}()")
            }
        };
        self.execute(&sql).await;
    }

    /// Runs `sql` (one or more statements) on the database, for tests that put it in a state
    /// no store method makes.
    pub async fn execute(&self, sql: &str) {
        if self.schema.is_none() {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    }

    /// How many rows `table` holds, read past the store.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        if self.schema.is_none() {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap()
        }
    }

    /// Every byte agentgate's database holds: the SQLite file and its `-wal`/`-shm`
    /// siblings, or a `pg_dump` of the schema.
    pub fn dump(&self) -> Vec<u8> {
        if let Some(file) = &self.sqlite_file {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let path = PathBuf::from(format!("{}{suffix}", file.display()));
                bytes.extend(std::fs::read(path).unwrap_or_default());
            }
            return bytes;
        }
        let schema = self.schema.as_deref().expect("PostgreSQL test database");
        let base = postgres_base_url().expect("PostgreSQL tests are switched on");
        let output = std::process::Command::new("pg_dump")
            .args(["--schema", schema, "--dbname", &base])
            .output()
            .expect("pg_dump runs");
        assert!(
            output.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (Some(schema), Some(base)) = (self.schema.take(), postgres_base_url()) else {
            return;
        };
        // Drop runs outside any async context we may use; give the cleanup its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&base).await.ok()?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}
