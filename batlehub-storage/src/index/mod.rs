//! [`Index`] over SQL: SQLite (embedded) or PostgreSQL, one implementation for both.

mod db;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use batlehub_core::model::{
    CachedArtifact, CachedDocument, FileRecord, LocalPackage, NewVersion, PackageRecord,
    PackageSummary, VersionRecord,
};
use batlehub_core::store::Index;
use batlehub_core::{Error, Result};
use chrono::{DateTime, SubsecRound, Utc};
use futures::future::BoxFuture;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use self::db::{Pool, Row, Tx, stmt};
use crate::error::StorageError;

/// Our own migrations table, so that a host application's sqlx migrations can share the database.
const MIGRATIONS_TABLE: &str = "batlehub_migrations";

const SQLITE_INIT: &str = include_str!("../../migrations/sqlite/0001_init.sql");
const POSTGRES_INIT: &str = include_str!("../../migrations/postgres/0001_init.sql");

/// The metadata index in a SQL database: SQLite or PostgreSQL.
///
/// Constructors apply the schema migrations of the dialect before returning. Timestamps
/// round-trip at microsecond precision.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batlehub_core::Index;
/// use batlehub_storage::SqlIndex;
///
/// let index = SqlIndex::sqlite_in_memory().await?;
/// assert!(!index.package_exists("npm", "left-pad").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqlIndex {
    pool: Pool,
}

impl SqlIndex {
    /// Opens the database at `url` (`sqlite:...`, `postgres://...` or `postgresql://...`).
    ///
    /// SQLite files are created when missing and opened in WAL mode with a 5 s busy timeout
    /// and foreign keys on; `sqlite::memory:` opens a private in-memory database.
    ///
    /// # Errors
    ///
    /// Fails on an unknown scheme, when the database cannot be opened, or when a migration fails.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" if url.contains(":memory:") || url.contains("mode=memory") => {
                Self::from_sqlite_pool(in_memory_pool(SqliteConnectOptions::from_str(url)?)).await
            }
            "sqlite" => {
                let options = sqlite_file_options(SqliteConnectOptions::from_str(url)?);
                Self::from_sqlite_pool(sqlite_file_pool().connect_with(options).await?).await
            }
            "postgres" | "postgresql" => {
                Self::from_pg_pool(PgPoolOptions::new().connect(url).await?).await
            }
            other => Err(StorageError::UnsupportedUrl {
                scheme: other.to_owned(),
            }),
        }
    }

    /// Opens (creating when missing) the SQLite database file at `path`.
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be opened or created, or when a migration fails.
    pub async fn sqlite_file(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let options = sqlite_file_options(SqliteConnectOptions::new().filename(path));
        Self::from_sqlite_pool(sqlite_file_pool().connect_with(options).await?).await
    }

    /// Opens a fresh, private in-memory SQLite database (for tests).
    ///
    /// The pool holds a single connection that never expires, so the data lives as long as
    /// the index.
    ///
    /// # Errors
    ///
    /// Fails only if SQLite cannot be initialised.
    pub async fn sqlite_in_memory() -> Result<Self, StorageError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        Self::from_sqlite_pool(in_memory_pool(options)).await
    }

    /// Uses an existing SQLite pool, applying the migrations.
    ///
    /// # Errors
    ///
    /// Fails when a migration fails.
    pub async fn from_sqlite_pool(pool: SqlitePool) -> Result<Self, StorageError> {
        migrator(SQLITE_INIT).run(&pool).await?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
        })
    }

    /// Uses an existing PostgreSQL pool, applying the migrations in its `search_path` schema.
    ///
    /// # Errors
    ///
    /// Fails when a migration fails.
    pub async fn from_pg_pool(pool: PgPool) -> Result<Self, StorageError> {
        migrator(POSTGRES_INIT).run(&pool).await?;
        Ok(Self {
            pool: Pool::Postgres(pool),
        })
    }

    /// The dialect in use: `"sqlite"` or `"postgres"`.
    #[must_use]
    pub fn dialect(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn migrator(init: &'static str) -> Migrator {
    let mut migrator = Migrator::with_migrations(vec![Migration::new(
        1,
        "init".into(),
        MigrationType::Simple,
        init.into_sql_str(),
        false,
    )]);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

fn sqlite_file_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
}

fn sqlite_file_pool() -> SqlitePoolOptions {
    SqlitePoolOptions::new().max_connections(8)
}

/// One connection that never expires: an in-memory database dies with its last connection.
fn in_memory_pool(options: SqliteConnectOptions) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options.foreign_keys(true))
}

fn db_err(e: sqlx::Error) -> Error {
    Error::storage(e)
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::storage(format_args!("size {v} does not fit the index")))
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::storage(format_args!("negative size {v} in the index")))
}

/// The current time at the precision the index stores.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A case-insensitive `LIKE` pattern matching `text` anywhere, wildcards taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn version_from_row(package: &str, row: &Row, files: Vec<FileRecord>) -> Result<VersionRecord> {
    let metadata = row.text("metadata").map_err(db_err)?;
    Ok(VersionRecord {
        package: package.to_owned(),
        version: row.text("version").map_err(db_err)?,
        published_at: row.time("published_at").map_err(db_err)?,
        yanked: row.bool("yanked").map_err(db_err)?,
        deprecated: row.opt_text("deprecated").map_err(db_err)?,
        publisher: row.opt_text("publisher").map_err(db_err)?,
        metadata: serde_json::from_str(&metadata).map_err(Error::storage)?,
        files,
    })
}

fn file_from_row(row: &Row) -> Result<FileRecord> {
    Ok(FileRecord {
        filename: row.text("filename").map_err(db_err)?,
        sha256: row.text("sha256").map_err(db_err)?,
        size: to_u64(row.int("size").map_err(db_err)?)?,
    })
}

impl SqlIndex {
    async fn publish_tx(tx: &mut Tx, new: &NewVersion) -> Result<()> {
        let registry = new.registry.as_str();
        let v = &new.version;
        let metadata = serde_json::to_string(&v.metadata).map_err(Error::internal)?;
        let published_at = v.published_at.trunc_subsecs(6);

        tx.execute(
            stmt(
                "INSERT INTO packages (registry, name, name_folded, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (registry, name) DO UPDATE SET updated_at = \
                 CASE WHEN excluded.updated_at > packages.updated_at \
                 THEN excluded.updated_at ELSE packages.updated_at END",
            )
            .text(registry)
            .text(&v.package)
            .text(v.package.to_lowercase())
            .time(published_at),
        )
        .await
        .map_err(db_err)?;

        tx.execute(
            stmt(
                "INSERT INTO versions \
                 (registry, package, version, published_at, yanked, deprecated, publisher, metadata) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .text(registry)
            .text(&v.package)
            .text(&v.version)
            .time(published_at)
            .bool(v.yanked)
            .opt_text(v.deprecated.as_deref())
            .opt_text(v.publisher.as_deref())
            .text(metadata),
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict(format!("{}@{} is already published", v.package, v.version))
            } else {
                db_err(e)
            }
        })?;

        for (position, file) in (0_i64..).zip(&v.files) {
            tx.execute(
                stmt(
                    "INSERT INTO files \
                     (registry, package, version, filename, position, sha256, size) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .text(registry)
                .text(&v.package)
                .text(&v.version)
                .text(&file.filename)
                .int(position)
                .text(&file.sha256)
                .int(to_i64(file.size)?),
            )
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict(format!(
                        "file {} already exists in {}",
                        file.filename, v.package
                    ))
                } else {
                    db_err(e)
                }
            })?;
        }

        for tag in &new.tags {
            tx.execute(
                stmt(
                    "INSERT INTO tags (registry, package, tag, version) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (registry, package, tag) DO UPDATE SET version = excluded.version",
                )
                .text(registry)
                .text(&v.package)
                .text(tag)
                .text(&v.version),
            )
            .await
            .map_err(db_err)?;
        }
        Ok(())
    }

    async fn files_of(
        &self,
        registry: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<HashMap<String, Vec<FileRecord>>> {
        let rows = match version {
            Some(version) => {
                self.pool
                    .fetch_all(
                        stmt(
                            "SELECT version, filename, sha256, size FROM files \
                             WHERE registry = $1 AND package = $2 AND version = $3 \
                             ORDER BY position",
                        )
                        .text(registry)
                        .text(name)
                        .text(version),
                    )
                    .await
            }
            None => {
                self.pool
                    .fetch_all(
                        stmt(
                            "SELECT version, filename, sha256, size FROM files \
                             WHERE registry = $1 AND package = $2 ORDER BY version, position",
                        )
                        .text(registry)
                        .text(name),
                    )
                    .await
            }
        }
        .map_err(db_err)?;
        let mut files: HashMap<String, Vec<FileRecord>> = HashMap::new();
        for row in &rows {
            let version = row.text("version").map_err(db_err)?;
            files.entry(version).or_default().push(file_from_row(row)?);
        }
        Ok(files)
    }
}

/// Commits on `Ok(true)`; rolls back on `Ok(false)` (nothing changed) and on errors.
async fn finish(tx: Tx, outcome: Result<bool>) -> Result<bool> {
    if let Ok(true) = outcome {
        tx.commit().await.map_err(db_err)?;
    } else if let Err(e) = tx.rollback().await {
        tracing::warn!(error = %e, "index rollback failed");
    }
    outcome
}

/// Marks the package as changed now.
async fn touch_package(tx: &mut Tx, registry: &str, name: &str) -> Result<()> {
    tx.execute(
        stmt("UPDATE packages SET updated_at = $3 WHERE registry = $1 AND name = $2")
            .text(registry)
            .text(name)
            .time(now()),
    )
    .await
    .map_err(db_err)?;
    Ok(())
}

impl Index for SqlIndex {
    fn package_exists<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let row = self
                .pool
                .fetch_optional(
                    stmt("SELECT 1 AS found FROM packages WHERE registry = $1 AND name = $2")
                        .text(registry)
                        .text(name),
                )
                .await
                .map_err(db_err)?;
            Ok(row.is_some())
        })
    }

    fn package<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<LocalPackage>>> {
        Box::pin(async move {
            let Some(row) = self
                .pool
                .fetch_optional(
                    stmt(
                        "SELECT created_at, updated_at FROM packages \
                         WHERE registry = $1 AND name = $2",
                    )
                    .text(registry)
                    .text(name),
                )
                .await
                .map_err(db_err)?
            else {
                return Ok(None);
            };
            let record = PackageRecord {
                name: name.to_owned(),
                created_at: row.time("created_at").map_err(db_err)?,
                updated_at: row.time("updated_at").map_err(db_err)?,
            };
            let rows = self
                .pool
                .fetch_all(
                    stmt(
                        "SELECT version, published_at, yanked, deprecated, publisher, metadata \
                         FROM versions WHERE registry = $1 AND package = $2 \
                         ORDER BY published_at, id",
                    )
                    .text(registry)
                    .text(name),
                )
                .await
                .map_err(db_err)?;
            let mut files = self.files_of(registry, name, None).await?;
            let versions = rows
                .iter()
                .map(|row| {
                    let version = row.text("version").map_err(db_err)?;
                    version_from_row(name, row, files.remove(&version).unwrap_or_default())
                })
                .collect::<Result<Vec<_>>>()?;
            let tags = self.tags(registry, name).await?;
            Ok(Some(LocalPackage {
                record,
                versions,
                tags,
            }))
        })
    }

    fn version<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<Option<VersionRecord>>> {
        Box::pin(async move {
            let Some(row) = self
                .pool
                .fetch_optional(
                    stmt(
                        "SELECT version, published_at, yanked, deprecated, publisher, metadata \
                         FROM versions WHERE registry = $1 AND package = $2 AND version = $3",
                    )
                    .text(registry)
                    .text(name)
                    .text(version),
                )
                .await
                .map_err(db_err)?
            else {
                return Ok(None);
            };
            let files = self
                .files_of(registry, name, Some(version))
                .await?
                .remove(version)
                .unwrap_or_default();
            version_from_row(name, &row, files).map(Some)
        })
    }

    fn publish<'a>(&'a self, new: &'a NewVersion) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome = Self::publish_tx(&mut tx, new).await.map(|()| true);
            finish(tx, outcome).await.map(|_| ())
        })
    }

    fn set_yanked<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
        yanked: bool,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome: Result<bool> = async {
                let tx = &mut tx;
                let n = tx
                    .execute(
                        stmt(
                            "UPDATE versions SET yanked = $4 \
                             WHERE registry = $1 AND package = $2 AND version = $3",
                        )
                        .text(registry)
                        .text(name)
                        .text(version)
                        .bool(yanked),
                    )
                    .await
                    .map_err(db_err)?;
                if n == 0 {
                    return Ok(false);
                }
                touch_package(tx, registry, name).await?;
                Ok(true)
            }
            .await;
            finish(tx, outcome).await
        })
    }

    fn set_deprecated<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
        message: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome: Result<bool> = async {
                let tx = &mut tx;
                let n = tx
                    .execute(
                        stmt(
                            "UPDATE versions SET deprecated = $4 \
                             WHERE registry = $1 AND package = $2 AND version = $3",
                        )
                        .text(registry)
                        .text(name)
                        .text(version)
                        .opt_text(message),
                    )
                    .await
                    .map_err(db_err)?;
                if n == 0 {
                    return Ok(false);
                }
                touch_package(tx, registry, name).await?;
                Ok(true)
            }
            .await;
            finish(tx, outcome).await
        })
    }

    fn delete_version<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome: Result<bool> = async {
                let tx = &mut tx;
                // Explicit deletes rather than relying on ON DELETE CASCADE: a caller-supplied
                // SQLite pool may have foreign keys off.
                for sql in [
                    "DELETE FROM tags WHERE registry = $1 AND package = $2 AND version = $3",
                    "DELETE FROM files WHERE registry = $1 AND package = $2 AND version = $3",
                ] {
                    tx.execute(stmt(sql).text(registry).text(name).text(version))
                        .await
                        .map_err(db_err)?;
                }
                let n = tx
                    .execute(
                        stmt(
                            "DELETE FROM versions \
                             WHERE registry = $1 AND package = $2 AND version = $3",
                        )
                        .text(registry)
                        .text(name)
                        .text(version),
                    )
                    .await
                    .map_err(db_err)?;
                if n == 0 {
                    return Ok(false);
                }
                let gone = tx
                    .execute(
                        stmt(
                            "DELETE FROM packages WHERE registry = $1 AND name = $2 \
                             AND NOT EXISTS (SELECT 1 FROM versions \
                                             WHERE registry = $1 AND package = $2)",
                        )
                        .text(registry)
                        .text(name),
                    )
                    .await
                    .map_err(db_err)?;
                if gone == 0 {
                    touch_package(tx, registry, name).await?;
                }
                Ok(true)
            }
            .await;
            finish(tx, outcome).await
        })
    }

    fn delete_package<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome: Result<bool> = async {
                let tx = &mut tx;
                for sql in [
                    "DELETE FROM tags WHERE registry = $1 AND package = $2",
                    "DELETE FROM files WHERE registry = $1 AND package = $2",
                    "DELETE FROM versions WHERE registry = $1 AND package = $2",
                ] {
                    tx.execute(stmt(sql).text(registry).text(name))
                        .await
                        .map_err(db_err)?;
                }
                let n = tx
                    .execute(
                        stmt("DELETE FROM packages WHERE registry = $1 AND name = $2")
                            .text(registry)
                            .text(name),
                    )
                    .await
                    .map_err(db_err)?;
                Ok(n > 0)
            }
            .await;
            finish(tx, outcome).await
        })
    }

    fn tags<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>> {
        Box::pin(async move {
            let rows = self
                .pool
                .fetch_all(
                    stmt("SELECT tag, version FROM tags WHERE registry = $1 AND package = $2")
                        .text(registry)
                        .text(name),
                )
                .await
                .map_err(db_err)?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.text("tag").map_err(db_err)?,
                        row.text("version").map_err(db_err)?,
                    ))
                })
                .collect()
        })
    }

    fn set_tag<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        tag: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome: Result<bool> = async {
                let tx = &mut tx;
                // Inserting from `versions` makes a missing version a no-op (0 rows).
                let n = tx
                    .execute(
                        stmt(
                            "INSERT INTO tags (registry, package, tag, version) \
                             SELECT registry, package, $3, version FROM versions \
                             WHERE registry = $1 AND package = $2 AND version = $4 \
                             ON CONFLICT (registry, package, tag) \
                             DO UPDATE SET version = excluded.version",
                        )
                        .text(registry)
                        .text(name)
                        .text(tag)
                        .text(version),
                    )
                    .await
                    .map_err(db_err)?;
                if n == 0 {
                    return Ok(false);
                }
                touch_package(tx, registry, name).await?;
                Ok(true)
            }
            .await;
            finish(tx, outcome).await
        })
    }

    fn remove_tag<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome: Result<bool> = async {
                let tx = &mut tx;
                let n = tx
                    .execute(
                        stmt("DELETE FROM tags WHERE registry = $1 AND package = $2 AND tag = $3")
                            .text(registry)
                            .text(name)
                            .text(tag),
                    )
                    .await
                    .map_err(db_err)?;
                if n == 0 {
                    return Ok(false);
                }
                touch_package(tx, registry, name).await?;
                Ok(true)
            }
            .await;
            finish(tx, outcome).await
        })
    }

    fn search<'a>(
        &'a self,
        registry: &'a str,
        text: &'a str,
        offset: u32,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<PackageSummary>>> {
        Box::pin(async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let rows = self
                .pool
                .fetch_all(
                    stmt(
                        r"SELECT p.name, p.updated_at, v.version, v.metadata
                          FROM packages p
                          JOIN versions v ON v.id = (
                              SELECT v2.id FROM versions v2
                              WHERE v2.registry = p.registry AND v2.package = p.name
                              ORDER BY v2.published_at DESC, v2.id DESC
                              LIMIT 1)
                          WHERE p.registry = $1 AND p.name_folded LIKE $2 ESCAPE '\'
                          ORDER BY p.updated_at DESC, p.name
                          LIMIT $3 OFFSET $4",
                    )
                    .text(registry)
                    .text(contains_pattern(text))
                    .int(i64::from(limit))
                    .int(i64::from(offset)),
                )
                .await
                .map_err(db_err)?;
            rows.iter()
                .map(|row| {
                    let metadata = row.text("metadata").map_err(db_err)?;
                    Ok(PackageSummary {
                        name: row.text("name").map_err(db_err)?,
                        latest_version: row.text("version").map_err(db_err)?,
                        metadata: serde_json::from_str(&metadata).map_err(Error::storage)?,
                        updated_at: row.time("updated_at").map_err(db_err)?,
                    })
                })
                .collect()
        })
    }

    fn cached_document<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<CachedDocument>>> {
        Box::pin(async move {
            let Some(row) = self
                .pool
                .fetch_optional(
                    stmt(
                        "SELECT sha256, size, etag, last_modified, content_type, upstream, \
                         fetched_at FROM cached_documents WHERE registry = $1 AND key = $2",
                    )
                    .text(registry)
                    .text(key),
                )
                .await
                .map_err(db_err)?
            else {
                return Ok(None);
            };
            let upstream = row.int("upstream").map_err(db_err)?;
            Ok(Some(CachedDocument {
                sha256: row.text("sha256").map_err(db_err)?,
                size: to_u64(row.int("size").map_err(db_err)?)?,
                etag: row.opt_text("etag").map_err(db_err)?,
                last_modified: row.opt_text("last_modified").map_err(db_err)?,
                content_type: row.opt_text("content_type").map_err(db_err)?,
                upstream: u32::try_from(upstream).map_err(|_| {
                    Error::storage(format_args!("upstream index {upstream} out of range"))
                })?,
                fetched_at: row.time("fetched_at").map_err(db_err)?,
            }))
        })
    }

    fn put_cached_document<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
        doc: &'a CachedDocument,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.pool
                .execute(
                    stmt(
                        "INSERT INTO cached_documents (registry, key, sha256, size, etag, \
                         last_modified, content_type, upstream, fetched_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (registry, key) DO UPDATE SET \
                         sha256 = excluded.sha256, size = excluded.size, etag = excluded.etag, \
                         last_modified = excluded.last_modified, \
                         content_type = excluded.content_type, upstream = excluded.upstream, \
                         fetched_at = excluded.fetched_at",
                    )
                    .text(registry)
                    .text(key)
                    .text(&doc.sha256)
                    .int(to_i64(doc.size)?)
                    .opt_text(doc.etag.as_deref())
                    .opt_text(doc.last_modified.as_deref())
                    .opt_text(doc.content_type.as_deref())
                    .int(i64::from(doc.upstream))
                    .time(doc.fetched_at),
                )
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn touch_cached_document<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.pool
                .execute(
                    stmt(
                        "UPDATE cached_documents SET fetched_at = $3 \
                         WHERE registry = $1 AND key = $2",
                    )
                    .text(registry)
                    .text(key)
                    .time(at),
                )
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn cached_artifact<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<CachedArtifact>>> {
        Box::pin(async move {
            let Some(row) = self
                .pool
                .fetch_optional(
                    stmt(
                        "SELECT sha256, size, fetched_at FROM cached_artifacts \
                         WHERE registry = $1 AND key = $2",
                    )
                    .text(registry)
                    .text(key),
                )
                .await
                .map_err(db_err)?
            else {
                return Ok(None);
            };
            Ok(Some(CachedArtifact {
                sha256: row.text("sha256").map_err(db_err)?,
                size: to_u64(row.int("size").map_err(db_err)?)?,
                fetched_at: row.time("fetched_at").map_err(db_err)?,
            }))
        })
    }

    fn put_cached_artifact<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
        artifact: &'a CachedArtifact,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.pool
                .execute(
                    stmt(
                        "INSERT INTO cached_artifacts (registry, key, sha256, size, fetched_at) \
                         VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (registry, key) DO UPDATE SET sha256 = excluded.sha256, \
                         size = excluded.size, fetched_at = excluded.fetched_at",
                    )
                    .text(registry)
                    .text(key)
                    .text(&artifact.sha256)
                    .int(to_i64(artifact.size)?)
                    .time(artifact.fetched_at),
                )
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(contains_pattern(""), "%%");
        assert_eq!(contains_pattern("Left_Pad%"), r"%left\_pad\%%");
        assert_eq!(contains_pattern(r"a\b"), r"%a\\b%");
    }
}
