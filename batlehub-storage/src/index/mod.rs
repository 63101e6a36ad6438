//! [`Index`] over SQL: SQLite (embedded) or PostgreSQL, one implementation for both.

mod cache;
mod db;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use batlehub_core::model::{
    AuditEvent, AuditQuery, Block, CachedArtifact, CachedDocument, FileRecord, LocalPackage,
    Namespace, NewVersion, Owner, PackageRecord, PackageSummary, Role, TokenRecord, Usage,
    VersionRecord, Visibility,
};
use batlehub_core::store::{Index, Lease};
use batlehub_core::{Error, Result};
use chrono::{DateTime, SubsecRound, Utc};
use futures::future::BoxFuture;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use self::cache::{Change, ReadCache};
use self::db::{Pool, Row, Tx, stmt, stmt_built};
use crate::error::StorageError;

/// Our own migrations table, so that a host application's sqlx migrations can share the database.
const MIGRATIONS_TABLE: &str = "batlehub_migrations";

/// The migrations of one dialect, in order: `(version, description, sql)`.
type Migrations = [(i64, &'static str, &'static str)];

const SQLITE_MIGRATIONS: &Migrations = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "access",
        include_str!("../../migrations/sqlite/0002_access.sql"),
    ),
    (
        3,
        "claims",
        include_str!("../../migrations/sqlite/0003_claims.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &Migrations = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "access",
        include_str!("../../migrations/postgres/0002_access.sql"),
    ),
    (
        3,
        "claims",
        include_str!("../../migrations/postgres/0003_claims.sql"),
    ),
    (
        4,
        "leases",
        include_str!("../../migrations/postgres/0004_leases.sql"),
    ),
];

/// `audit_log` rows returned when the query sets no limit, and the most it may ask for.
const AUDIT_DEFAULT_LIMIT: u32 = 1000;
const AUDIT_MAX_LIMIT: u32 = 10_000;

/// Audit rows per INSERT statement (10 bound values each; well under both databases'
/// limits on bound values).
const AUDIT_ROWS_PER_INSERT: usize = 100;

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
    cache: Arc<ReadCache>,
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
        migrator(SQLITE_MIGRATIONS).run(&pool).await?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
            cache: Arc::default(),
        })
    }

    /// Uses an existing PostgreSQL pool, applying the migrations in its `search_path` schema.
    ///
    /// # Errors
    ///
    /// Fails when a migration fails.
    pub async fn from_pg_pool(pool: PgPool) -> Result<Self, StorageError> {
        migrator(POSTGRES_MIGRATIONS).run(&pool).await?;
        let cache = Arc::default();
        cache::listen(pool.clone(), &cache);
        Ok(Self {
            pool: Pool::Postgres(pool),
            cache,
        })
    }

    /// Reads a cached artifact's row from the database.
    async fn load_cached_artifact(
        &self,
        registry: &str,
        key: &str,
    ) -> Result<Option<CachedArtifact>> {
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
        if let Some(task) = self.cache.listener.lock().take() {
            task.abort();
        }
        self.pool.close().await;
    }
}

fn migrator(migrations: &'static Migrations) -> Migrator {
    let mut migrator = Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    );
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
        signature: row.opt_text("signature").map_err(db_err)?,
        signature_type: row.opt_text("signature_type").map_err(db_err)?,
    })
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Anonymous => "anonymous",
        Role::User => "user",
        Role::Admin => "admin",
    }
}

fn parse_role(s: &str) -> Result<Role> {
    match s {
        "anonymous" => Ok(Role::Anonymous),
        "user" => Ok(Role::User),
        "admin" => Ok(Role::Admin),
        other => Err(Error::storage(format_args!(
            "unknown role `{other}` in the index"
        ))),
    }
}

/// An owner as its `(kind, name)` columns.
fn owner_columns(owner: &Owner) -> (&'static str, &str) {
    match owner {
        Owner::User(name) => ("user", name),
        Owner::Group(name) => ("group", name),
    }
}

fn owner_from_row(row: &Row) -> Result<Owner> {
    let name = row.text("name").map_err(db_err)?;
    match row.text("kind").map_err(db_err)?.as_str() {
        "user" => Ok(Owner::User(name)),
        "group" => Ok(Owner::Group(name)),
        other => Err(Error::storage(format_args!(
            "unknown owner kind `{other}` in the index"
        ))),
    }
}

fn visibility_from_row(row: &Row) -> Result<Visibility> {
    Visibility::from_str(&row.text("level").map_err(db_err)?).map_err(Error::storage)
}

const TOKEN_COLUMNS: &str = "id, principal, secret_sha256, role, \"groups\", description, \
                             created_at, expires_at, revoked_at, created_by";

fn token_from_row(row: &Row) -> Result<TokenRecord> {
    let groups = row.text("groups").map_err(db_err)?;
    Ok(TokenRecord {
        id: row.text("id").map_err(db_err)?,
        principal: row.text("principal").map_err(db_err)?,
        secret_sha256: row.text("secret_sha256").map_err(db_err)?,
        role: parse_role(&row.text("role").map_err(db_err)?)?,
        groups: serde_json::from_str(&groups).map_err(Error::storage)?,
        description: row.opt_text("description").map_err(db_err)?,
        created_at: row.time("created_at").map_err(db_err)?,
        expires_at: row.opt_time("expires_at").map_err(db_err)?,
        revoked_at: row.opt_time("revoked_at").map_err(db_err)?,
        created_by: row.text("created_by").map_err(db_err)?,
    })
}

fn block_from_row(row: &Row) -> Result<Block> {
    Ok(Block {
        id: row.text("id").map_err(db_err)?,
        registry: row.text("registry").map_err(db_err)?,
        package: row.text("package").map_err(db_err)?,
        versions: row.opt_text("versions").map_err(db_err)?,
        reason: row.text("reason").map_err(db_err)?,
        created_by: row.text("created_by").map_err(db_err)?,
        created_at: row.time("created_at").map_err(db_err)?,
    })
}

fn audit_from_row(row: &Row) -> Result<AuditEvent> {
    Ok(AuditEvent {
        at: row.time("at").map_err(db_err)?,
        registry: row.text("registry").map_err(db_err)?,
        action: row.text("action").map_err(db_err)?,
        package: row.opt_text("package").map_err(db_err)?,
        version: row.opt_text("version").map_err(db_err)?,
        principal: row.text("principal").map_err(db_err)?,
        outcome: row.text("outcome").map_err(db_err)?,
        rule: row.opt_text("rule").map_err(db_err)?,
        reason: row.opt_text("reason").map_err(db_err)?,
        client_ip: row.opt_text("client_ip").map_err(db_err)?,
    })
}

/// The `SELECT` of an audit query: equality filters, the time window, order and page.
fn audit_query_stmt(query: &AuditQuery) -> db::Stmt {
    let equal = [
        ("registry", query.registry.as_deref()),
        ("package", query.package.as_deref()),
        ("version", query.version.as_deref()),
        ("principal", query.principal.as_deref()),
        ("action", query.action.as_deref()),
        ("outcome", query.outcome.as_deref()),
    ];
    let window = [(">=", query.since), ("<", query.until)];

    // The text holds only column names, operators and placeholders; values are bound.
    let mut sql = String::from(
        "SELECT at, registry, action, package, version, principal, outcome, rule, reason, \
         client_ip FROM audit_log WHERE 1 = 1",
    );
    let mut n = 0;
    for (column, _) in equal.iter().filter(|(_, v)| v.is_some()) {
        n += 1;
        sql.push_str(&format!(" AND {column} = ${n}"));
    }
    for (op, _) in window.iter().filter(|(_, v)| v.is_some()) {
        n += 1;
        sql.push_str(&format!(" AND at {op} ${n}"));
    }
    sql.push_str(&format!(
        " ORDER BY at, id LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    ));

    let mut s = stmt_built(sql);
    for value in equal.into_iter().filter_map(|(_, v)| v) {
        s = s.text(value);
    }
    for at in window.into_iter().filter_map(|(_, v)| v) {
        s = s.time(at);
    }
    let limit = query
        .limit
        .unwrap_or(AUDIT_DEFAULT_LIMIT)
        .min(AUDIT_MAX_LIMIT);
    s.int(i64::from(limit))
        .int(i64::from(query.offset.unwrap_or(0)))
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
                     (registry, package, version, filename, position, sha256, size, \
                     signature, signature_type) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .text(registry)
                .text(&v.package)
                .text(&v.version)
                .text(&file.filename)
                .int(position)
                .text(&file.sha256)
                .int(to_i64(file.size)?)
                .opt_text(file.signature.as_deref())
                .opt_text(file.signature_type.as_deref()),
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
                            "SELECT version, filename, sha256, size, signature, signature_type \
                             FROM files \
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
                            "SELECT version, filename, sha256, size, signature, signature_type \
                             FROM files \
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
impl SqlIndex {
    /// Runs a write, then forgets what it changed here and announces it to other replicas.
    async fn changed<T>(
        &self,
        change: Change,
        write: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let out = write.await;
        if out.is_ok() {
            self.cache.invalidate(change);
            if let Pool::Postgres(pool) = &self.pool
                && let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(cache::CHANNEL)
                    .bind(change.as_str())
                    .execute(pool)
                    .await
            {
                tracing::warn!(error = %e, "could not announce an index change to other replicas");
            }
        }
        out
    }

    /// Runs a write of a cache row, then forgets the row's cached copy.
    async fn forget<T, V: Clone>(
        &self,
        memo: &cache::Memo<V>,
        key: String,
        write: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let out = write.await;
        memo.remove(&key);
        out
    }
}

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
        Box::pin(
            self.cache
                .exists
                .get_or(cache::key(registry, name), async move {
                    let row = self
                        .pool
                        .fetch_optional(
                            stmt(
                                "SELECT 1 AS found FROM packages WHERE registry = $1 AND name = $2",
                            )
                            .text(registry)
                            .text(name),
                        )
                        .await
                        .map_err(db_err)?;
                    Ok(row.is_some())
                }),
        )
    }

    fn package<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<LocalPackage>>> {
        Box::pin(async move {
            Ok(self
                .package_shared(registry, name)
                .await?
                .map(|p| LocalPackage::clone(&p)))
        })
    }

    fn package_shared<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<LocalPackage>>>> {
        Box::pin(
            self.cache
                .packages
                .get_or(cache::key(registry, name), async move {
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
                    Ok(Some(Arc::new(LocalPackage {
                        record,
                        versions,
                        tags,
                    })))
                }),
        )
    }

    fn version<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<Option<VersionRecord>>> {
        Box::pin(self.cache.versions.get_or(
            cache::key(registry, &format!("{name}\0{version}")),
            async move {
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
            },
        ))
    }

    fn publish<'a>(&'a self, new: &'a NewVersion) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.changed(Change::Packages, async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome = Self::publish_tx(&mut tx, new).await.map(|()| true);
            finish(tx, outcome).await.map(|_| ())
        }))
    }

    fn add_file<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
        version: &'a str,
        file: &'a FileRecord,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changed(Change::Packages, async move {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome: Result<bool> = async {
                let tx = &mut tx;
                let n = tx
                    .execute(
                        stmt(
                            "INSERT INTO files \
                             (registry, package, version, filename, position, sha256, size, \
                             signature, signature_type) \
                             SELECT $1, $2, $3, $4, \
                             COALESCE((SELECT MAX(position) FROM files \
                             WHERE registry = $1 AND package = $2 AND version = $3), -1) + 1, \
                             $5, $6, $7, $8 \
                             WHERE EXISTS (SELECT 1 FROM versions \
                             WHERE registry = $1 AND package = $2 AND version = $3)",
                        )
                        .text(registry)
                        .text(package)
                        .text(version)
                        .text(&file.filename)
                        .text(&file.sha256)
                        .int(to_i64(file.size)?)
                        .opt_text(file.signature.as_deref())
                        .opt_text(file.signature_type.as_deref()),
                    )
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            Error::Conflict(format!(
                                "file {} already exists in {package}",
                                file.filename
                            ))
                        } else {
                            db_err(e)
                        }
                    })?;
                if n == 0 {
                    return Ok(false);
                }
                touch_package(tx, registry, package).await?;
                Ok(true)
            }
            .await;
            finish(tx, outcome).await
        }))
    }

    fn set_yanked<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
        yanked: bool,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changed(Change::Packages, async move {
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
        }))
    }

    fn set_deprecated<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
        message: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changed(Change::Packages, async move {
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
        }))
    }

    fn delete_version<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changed(Change::Packages, async move {
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
        }))
    }

    fn delete_package<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changed(Change::Packages, async move {
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
        }))
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
        Box::pin(self.changed(Change::Packages, async move {
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
        }))
    }

    fn remove_tag<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changed(Change::Packages, async move {
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
        }))
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
        Box::pin(
            self.cache
                .documents
                .get_some_or(cache::key(registry, key), async move {
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
                }),
        )
    }

    fn put_cached_document<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
        doc: &'a CachedDocument,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.forget(
            &self.cache.documents,
            cache::key(registry, key),
            async move {
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
            },
        ))
    }

    fn touch_cached_document<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.forget(
            &self.cache.documents,
            cache::key(registry, key),
            async move {
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
            },
        ))
    }

    fn cached_artifact<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<CachedArtifact>>> {
        Box::pin(self.cache.artifacts.get_some_or(
            cache::key(registry, key),
            self.load_cached_artifact(registry, key),
        ))
    }

    fn cached_artifact_now<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<CachedArtifact>>> {
        Box::pin(async move {
            let row = self.load_cached_artifact(registry, key).await?;
            if row.is_some() {
                // What other readers remembered as missing is there now.
                self.cache.artifacts.remove(&cache::key(registry, key));
            }
            Ok(row)
        })
    }

    fn put_cached_artifact<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
        artifact: &'a CachedArtifact,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.forget(
            &self.cache.artifacts,
            cache::key(registry, key),
            async move {
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
            },
        ))
    }

    // ---- access control and policy state ---------------------------------------------

    fn create_token<'a>(&'a self, token: &'a TokenRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let groups = serde_json::to_string(&token.groups).map_err(Error::internal)?;
            self.pool
                .execute(
                    stmt(
                        "INSERT INTO tokens (id, principal, secret_sha256, role, \"groups\", \
                         description, created_at, expires_at, revoked_at, created_by) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .text(&token.id)
                    .text(&token.principal)
                    .text(&token.secret_sha256)
                    .text(role_str(token.role))
                    .text(groups)
                    .opt_text(token.description.as_deref())
                    .time(token.created_at)
                    .opt_time(token.expires_at)
                    .opt_time(token.revoked_at)
                    .text(&token.created_by),
                )
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::Conflict(format!("token {} already exists", token.id))
                    } else {
                        db_err(e)
                    }
                })?;
            Ok(())
        })
    }

    fn token<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<TokenRecord>>> {
        Box::pin(async move {
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1");
            self.pool
                .fetch_optional(stmt_built(sql).text(id))
                .await
                .map_err(db_err)?
                .as_ref()
                .map(token_from_row)
                .transpose()
        })
    }

    fn list_tokens(&self) -> BoxFuture<'_, Result<Vec<TokenRecord>>> {
        Box::pin(async move {
            let sql =
                format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, id DESC");
            let rows = self.pool.fetch_all(stmt_built(sql)).await.map_err(db_err)?;
            rows.iter().map(token_from_row).collect()
        })
    }

    fn revoke_token<'a>(&'a self, id: &'a str, at: DateTime<Utc>) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changed(Change::Tokens, async move {
            let n = self
                .pool
                .execute(
                    stmt("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                        .text(id)
                        .time(at),
                )
                .await
                .map_err(db_err)?;
            Ok(n > 0)
        }))
    }

    fn tokens_generation(&self) -> u64 {
        self.cache.tokens.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn owners<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Owner>>> {
        Box::pin(async move {
            let rows = self
                .pool
                .fetch_all(
                    stmt("SELECT kind, name FROM owners WHERE registry = $1 AND package = $2")
                        .text(registry)
                        .text(package),
                )
                .await
                .map_err(db_err)?;
            let mut owners = rows
                .iter()
                .map(owner_from_row)
                .collect::<Result<Vec<_>>>()?;
            // `Owner`'s own order (users, then groups; names bytewise), the same on every backend.
            owners.sort();
            Ok(owners)
        })
    }

    fn add_owner<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
        owner: &'a Owner,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let (kind, name) = owner_columns(owner);
            let n = self
                .pool
                .execute(
                    stmt(
                        "INSERT INTO owners (registry, package, kind, name) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .text(registry)
                    .text(package)
                    .text(kind)
                    .text(name),
                )
                .await
                .map_err(db_err)?;
            Ok(n > 0)
        })
    }

    fn claim_package<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
        owner: &'a Owner,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let (kind, name) = owner_columns(owner);
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome: sqlx::Result<bool> = async {
                let claimed = tx
                    .execute(
                        stmt(
                            "INSERT INTO package_claims (registry, package) VALUES ($1, $2) \
                             ON CONFLICT DO NOTHING",
                        )
                        .text(registry)
                        .text(package),
                    )
                    .await?;
                if claimed == 0 {
                    return Ok(false);
                }
                // Owners assigned before the first publish keep the name.
                let added = tx
                    .execute(
                        stmt(
                            "INSERT INTO owners (registry, package, kind, name) \
                             SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
                             (SELECT 1 FROM owners WHERE registry = $1 AND package = $2)",
                        )
                        .text(registry)
                        .text(package)
                        .text(kind)
                        .text(name),
                    )
                    .await?;
                Ok(added > 0)
            }
            .await;
            match outcome {
                Ok(first) => {
                    tx.commit().await.map_err(db_err)?;
                    Ok(first)
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(db_err(e))
                }
            }
        })
    }

    fn remove_owner<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
        owner: &'a Owner,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let (kind, name) = owner_columns(owner);
            let n = self
                .pool
                .execute(
                    stmt(
                        "DELETE FROM owners \
                         WHERE registry = $1 AND package = $2 AND kind = $3 AND name = $4 \
                         AND (SELECT COUNT(*) FROM owners WHERE registry = $1 AND package = $2) > 1",
                    )
                    .text(registry)
                    .text(package)
                    .text(kind)
                    .text(name),
                )
                .await
                .map_err(db_err)?;
            Ok(n > 0)
        })
    }

    fn namespaces<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Vec<Namespace>>> {
        Box::pin(
            self.cache
                .namespaces
                .get_or(registry.to_owned(), async move {
                    let rows = self
                        .pool
                        .fetch_all(
                            stmt(
                                "SELECT prefix, group_name FROM namespaces WHERE registry = $1 \
                         ORDER BY prefix",
                            )
                            .text(registry),
                        )
                        .await
                        .map_err(db_err)?;
                    rows.iter()
                        .map(|row| {
                            Ok(Namespace {
                                registry: registry.to_owned(),
                                prefix: row.text("prefix").map_err(db_err)?,
                                group: row.text("group_name").map_err(db_err)?,
                            })
                        })
                        .collect()
                }),
        )
    }

    fn add_namespace<'a>(&'a self, namespace: &'a Namespace) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changed(Change::Namespaces, async move {
            let n = self
                .pool
                .execute(
                    stmt(
                        "INSERT INTO namespaces (registry, prefix, group_name) VALUES ($1, $2, $3) \
                         ON CONFLICT (registry, prefix) DO NOTHING",
                    )
                    .text(&namespace.registry)
                    .text(&namespace.prefix)
                    .text(&namespace.group),
                )
                .await
                .map_err(db_err)?;
            Ok(n > 0)
        }))
    }

    fn remove_namespace<'a>(
        &'a self,
        registry: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changed(Change::Namespaces, async move {
            let n = self
                .pool
                .execute(
                    stmt("DELETE FROM namespaces WHERE registry = $1 AND prefix = $2")
                        .text(registry)
                        .text(prefix),
                )
                .await
                .map_err(db_err)?;
            Ok(n > 0)
        }))
    }

    fn visibility<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
    ) -> BoxFuture<'a, Result<Visibility>> {
        Box::pin(
            self.cache
                .visibility
                .get_or(cache::key(registry, package), async move {
                    let row = self
                        .pool
                        .fetch_optional(
                            stmt(
                                "SELECT level FROM visibility WHERE registry = $1 AND package = $2",
                            )
                            .text(registry)
                            .text(package),
                        )
                        .await
                        .map_err(db_err)?;
                    row.as_ref()
                        .map_or(Ok(Visibility::Public), visibility_from_row)
                }),
        )
    }

    fn restricted_packages<'a>(
        &'a self,
        registry: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, Visibility)>>> {
        Box::pin(async move {
            let rows = self
                .pool
                .fetch_all(
                    stmt(
                        "SELECT package, level FROM visibility \
                         WHERE registry = $1 AND level <> 'public' ORDER BY package",
                    )
                    .text(registry),
                )
                .await
                .map_err(db_err)?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.text("package").map_err(db_err)?,
                        visibility_from_row(row)?,
                    ))
                })
                .collect()
        })
    }

    fn set_visibility<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
        visibility: Visibility,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.changed(Change::Visibility, async move {
            self.pool
                .execute(
                    stmt(
                        "INSERT INTO visibility (registry, package, level) VALUES ($1, $2, $3) \
                         ON CONFLICT (registry, package) DO UPDATE SET level = excluded.level",
                    )
                    .text(registry)
                    .text(package)
                    .text(visibility.to_string()),
                )
                .await
                .map_err(db_err)?;
            Ok(())
        }))
    }

    fn blocks_for<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Block>>> {
        Box::pin(
            self.cache
                .blocks
                .get_or(cache::key(registry, package), async move {
                    let rows = self
                .pool
                .fetch_all(
                    stmt(
                        "SELECT id, registry, package, versions, reason, created_by, created_at \
                         FROM blocks WHERE registry = $1 AND package = $2 \
                         ORDER BY created_at, id",
                    )
                    .text(registry)
                    .text(package),
                )
                .await
                .map_err(db_err)?;
                    rows.iter().map(block_from_row).collect()
                }),
        )
    }

    fn list_blocks<'a>(&'a self, registry: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Block>>> {
        Box::pin(async move {
            let s = match registry {
                Some(registry) => stmt(
                    "SELECT id, registry, package, versions, reason, created_by, created_at \
                     FROM blocks WHERE registry = $1 ORDER BY created_at, id",
                )
                .text(registry),
                None => stmt(
                    "SELECT id, registry, package, versions, reason, created_by, created_at \
                     FROM blocks ORDER BY created_at, id",
                ),
            };
            let rows = self.pool.fetch_all(s).await.map_err(db_err)?;
            rows.iter().map(block_from_row).collect()
        })
    }

    fn add_block<'a>(&'a self, block: &'a Block) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.changed(Change::Blocks, async move {
            self.pool
                .execute(
                    stmt(
                        "INSERT INTO blocks \
                         (id, registry, package, versions, reason, created_by, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .text(&block.id)
                    .text(&block.registry)
                    .text(&block.package)
                    .opt_text(block.versions.as_deref())
                    .text(&block.reason)
                    .text(&block.created_by)
                    .time(block.created_at),
                )
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::Conflict(format!("block {} already exists", block.id))
                    } else {
                        db_err(e)
                    }
                })?;
            Ok(())
        }))
    }

    fn remove_block<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.changed(Change::Blocks, async move {
            let n = self
                .pool
                .execute(stmt("DELETE FROM blocks WHERE id = $1").text(id))
                .await
                .map_err(db_err)?;
            Ok(n > 0)
        }))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.pool
                .fetch_optional(stmt("SELECT 1 AS one"))
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn try_lease<'a>(
        &'a self,
        scope: &'a str,
        name: &'a str,
        holder: &'a str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Lease>> {
        Box::pin(async move {
            // SQLite is one process's database: its single-flight is enough.
            if let Pool::Sqlite(_) = self.pool {
                return Ok(Lease::Local);
            }
            // One statement: of two replicas racing for the row, one inserts or takes over
            // an ended lease, the other's conditional update matches nothing.
            let row = self
                .pool
                .fetch_optional(
                    stmt(
                        "INSERT INTO leases (scope, name, holder, expires_at) \
                         VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (scope, name) DO UPDATE \
                         SET holder = excluded.holder, expires_at = excluded.expires_at \
                         WHERE leases.expires_at < $5 OR leases.holder = excluded.holder \
                         RETURNING holder",
                    )
                    .text(scope)
                    .text(name)
                    .text(holder)
                    .time(until)
                    .time(now),
                )
                .await
                .map_err(db_err)?;
            Ok(if row.is_some() {
                Lease::Taken
            } else {
                Lease::Busy
            })
        })
    }

    fn release_lease<'a>(
        &'a self,
        scope: &'a str,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let Pool::Sqlite(_) = self.pool {
                return Ok(());
            }
            self.pool
                .execute(
                    stmt("DELETE FROM leases WHERE scope = $1 AND name = $2 AND holder = $3")
                        .text(scope)
                        .text(name)
                        .text(holder),
                )
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn rate_hit<'a>(
        &'a self,
        key: &'a str,
        window_start: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            // Housekeeping first, in its own statement: holding its row locks across the
            // upsert could deadlock two PostgreSQL callers on neighbouring windows.
            self.pool
                .execute(
                    stmt("DELETE FROM rate_counters WHERE key = $1 AND window_start < $2")
                        .text(key)
                        .time(window_start),
                )
                .await
                .map_err(db_err)?;
            // One statement: atomic in both dialects, whatever the number of processes.
            let row = self
                .pool
                .fetch_optional(
                    stmt(
                        "INSERT INTO rate_counters (key, window_start, count) VALUES ($1, $2, 1) \
                         ON CONFLICT (key, window_start) \
                         DO UPDATE SET count = rate_counters.count + 1 \
                         RETURNING count",
                    )
                    .text(key)
                    .time(window_start),
                )
                .await
                .map_err(db_err)?
                .ok_or_else(|| Error::storage("rate counter upsert returned no row"))?;
            to_u64(row.int("count").map_err(db_err)?)
        })
    }

    fn rate_sweep<'a>(
        &'a self,
        prefix: &'a str,
        before: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            // `substr` rather than `LIKE`: a prefix may hold `_` or `%`.
            self.pool
                .execute(
                    stmt(
                        "DELETE FROM rate_counters \
                         WHERE substr(key, 1, length($1)) = $1 AND window_start < $2",
                    )
                    .text(prefix)
                    .time(before),
                )
                .await
                .map_err(db_err)
        })
    }

    fn usage<'a>(&'a self, registry: &'a str, principal: &'a str) -> BoxFuture<'a, Result<Usage>> {
        Box::pin(async move {
            // CAST: PostgreSQL sums BIGINT into NUMERIC.
            let row = self
                .pool
                .fetch_optional(
                    stmt(
                        "SELECT \
                         CAST((SELECT COALESCE(SUM(f.size), 0) FROM versions v \
                               JOIN files f ON f.registry = v.registry \
                                           AND f.package = v.package \
                                           AND f.version = v.version \
                               WHERE v.registry = $1 AND v.publisher = $2) AS BIGINT) AS bytes, \
                         CAST((SELECT COUNT(DISTINCT v.package) FROM versions v \
                               WHERE v.registry = $1 AND v.publisher = $2) AS BIGINT) AS packages",
                    )
                    .text(registry)
                    .text(principal),
                )
                .await
                .map_err(db_err)?
                .ok_or_else(|| Error::storage("usage query returned no row"))?;
            Ok(Usage {
                bytes: to_u64(row.int("bytes").map_err(db_err)?)?,
                packages: to_u64(row.int("packages").map_err(db_err)?)?,
            })
        })
    }

    fn referenced_blobs(&self) -> BoxFuture<'_, Result<std::collections::HashSet<String>>> {
        Box::pin(async move {
            let rows = self
                .pool
                .fetch_all(stmt(
                    "SELECT sha256 FROM files \
                     UNION SELECT sha256 FROM cached_documents \
                     UNION SELECT sha256 FROM cached_artifacts",
                ))
                .await
                .map_err(db_err)?;
            rows.iter()
                .map(|r| r.text("sha256").map_err(db_err))
                .collect()
        })
    }

    fn append_audit<'a>(&'a self, events: &'a [AuditEvent]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let outcome: Result<bool> = async {
                // Multi-row inserts of AUDIT_ROWS_PER_INSERT events, the rest in power-of-two
                // sized statements: a handful of distinct statements to prepare and cache.
                let mut rest = events;
                while !rest.is_empty() {
                    let n = if rest.len() >= AUDIT_ROWS_PER_INSERT {
                        AUDIT_ROWS_PER_INSERT
                    } else {
                        1 << rest.len().ilog2()
                    };
                    let (chunk, tail) = rest.split_at(n);
                    rest = tail;
                    let mut sql = String::from(
                        "INSERT INTO audit_log (at, registry, action, package, version, \
                         principal, outcome, rule, reason, client_ip) VALUES ",
                    );
                    for i in 0..chunk.len() {
                        if i > 0 {
                            sql.push_str(", ");
                        }
                        sql.push('(');
                        for c in 1..=10 {
                            if c > 1 {
                                sql.push_str(", ");
                            }
                            sql.push_str(&format!("${}", i * 10 + c));
                        }
                        sql.push(')');
                    }
                    let mut s = stmt_built(sql);
                    for event in chunk {
                        s = s
                            .time(event.at)
                            .text(&event.registry)
                            .text(&event.action)
                            .opt_text(event.package.as_deref())
                            .opt_text(event.version.as_deref())
                            .text(&event.principal)
                            .text(&event.outcome)
                            .opt_text(event.rule.as_deref())
                            .opt_text(event.reason.as_deref())
                            .opt_text(event.client_ip.as_deref());
                    }
                    tx.execute(s).await.map_err(db_err)?;
                }
                Ok(true)
            }
            .await;
            finish(tx, outcome).await.map(|_| ())
        })
    }

    fn query_audit<'a>(&'a self, query: &'a AuditQuery) -> BoxFuture<'a, Result<Vec<AuditEvent>>> {
        Box::pin(async move {
            let rows = self
                .pool
                .fetch_all(audit_query_stmt(query))
                .await
                .map_err(db_err)?;
            rows.iter().map(audit_from_row).collect()
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
