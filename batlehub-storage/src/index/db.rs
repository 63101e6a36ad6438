//! A thin dialect layer: one SQL text (`$n` placeholders work in both), two drivers.
//!
//! Queries are built as [`Stmt`] values and run against either pool; the only
//! dialect-specific encoding is the timestamp (TIMESTAMPTZ in PostgreSQL, INTEGER
//! microseconds in SQLite).

use chrono::{DateTime, Utc};
use sqlx::Row as _;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Postgres, SqlSafeStr, SqlStr, Sqlite, Transaction};

/// A bound value.
#[derive(Debug)]
enum Arg {
    Int(i64),
    Text(String),
    OptText(Option<String>),
    Bool(bool),
    Time(DateTime<Utc>),
    OptTime(Option<DateTime<Utc>>),
}

/// A statement and its arguments, in placeholder order.
#[derive(Debug)]
pub(crate) struct Stmt {
    sql: SqlStr,
    args: Vec<Arg>,
}

/// Starts a statement.
pub(crate) fn stmt(sql: &'static str) -> Stmt {
    Stmt {
        sql: sql.into_sql_str(),
        args: Vec::new(),
    }
}

/// Starts a statement whose text was assembled at run time.
///
/// Only for text joined from fixed fragments (column names, `$n` placeholders): every value
/// must still be bound as an argument, never formatted into `sql`.
pub(crate) fn stmt_built(sql: String) -> Stmt {
    Stmt {
        sql: AssertSqlSafe(sql).into_sql_str(),
        args: Vec::new(),
    }
}

impl Stmt {
    pub(crate) fn text(mut self, v: impl Into<String>) -> Self {
        self.args.push(Arg::Text(v.into()));
        self
    }

    pub(crate) fn opt_text(mut self, v: Option<&str>) -> Self {
        self.args.push(Arg::OptText(v.map(str::to_owned)));
        self
    }

    pub(crate) fn int(mut self, v: i64) -> Self {
        self.args.push(Arg::Int(v));
        self
    }

    pub(crate) fn bool(mut self, v: bool) -> Self {
        self.args.push(Arg::Bool(v));
        self
    }

    pub(crate) fn time(mut self, v: DateTime<Utc>) -> Self {
        self.args.push(Arg::Time(v));
        self
    }

    pub(crate) fn opt_time(mut self, v: Option<DateTime<Utc>>) -> Self {
        self.args.push(Arg::OptTime(v));
        self
    }

    fn sqlite(self) -> Query<'static, Sqlite, SqliteArguments> {
        self.args
            .into_iter()
            .fold(sqlx::query(self.sql), |q, arg| match arg {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::OptText(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Time(v) => q.bind(v.timestamp_micros()),
                Arg::OptTime(v) => q.bind(v.map(|v| v.timestamp_micros())),
            })
    }

    fn postgres(self) -> Query<'static, Postgres, PgArguments> {
        self.args
            .into_iter()
            .fold(sqlx::query(self.sql), |q, arg| match arg {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::OptText(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Time(v) => q.bind(v),
                Arg::OptTime(v) => q.bind(v),
            })
    }
}

/// A connection pool of either dialect.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction of either dialect.
#[derive(Debug)]
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A result row of either dialect.
#[derive(Debug)]
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Pool {
    pub(crate) async fn execute(&self, s: Stmt) -> sqlx::Result<u64> {
        Ok(match self {
            Pool::Sqlite(p) => s.sqlite().execute(p).await?.rows_affected(),
            Pool::Postgres(p) => s.postgres().execute(p).await?.rows_affected(),
        })
    }

    pub(crate) async fn fetch_all(&self, s: Stmt) -> sqlx::Result<Vec<Row>> {
        Ok(match self {
            Pool::Sqlite(p) => s
                .sqlite()
                .fetch_all(p)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Pool::Postgres(p) => s
                .postgres()
                .fetch_all(p)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional(&self, s: Stmt) -> sqlx::Result<Option<Row>> {
        Ok(match self {
            Pool::Sqlite(p) => s.sqlite().fetch_optional(p).await?.map(Row::Sqlite),
            Pool::Postgres(p) => s.postgres().fetch_optional(p).await?.map(Row::Postgres),
        })
    }

    /// Begins a write transaction.
    pub(crate) async fn begin(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            // Take the write lock up front: a deferred transaction that reads first can fail
            // with SQLITE_BUSY on upgrade, where the busy timeout does not help.
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

impl Tx {
    pub(crate) async fn execute(&mut self, s: Stmt) -> sqlx::Result<u64> {
        Ok(match self {
            Tx::Sqlite(tx) => s.sqlite().execute(&mut **tx).await?.rows_affected(),
            Tx::Postgres(tx) => s.postgres().execute(&mut **tx).await?.rows_affected(),
        })
    }

    pub(crate) async fn commit(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub(crate) async fn rollback(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
    }
}

impl Row {
    pub(crate) fn text(&self, col: &str) -> sqlx::Result<String> {
        match self {
            Row::Sqlite(r) => r.try_get(col),
            Row::Postgres(r) => r.try_get(col),
        }
    }

    pub(crate) fn opt_text(&self, col: &str) -> sqlx::Result<Option<String>> {
        match self {
            Row::Sqlite(r) => r.try_get(col),
            Row::Postgres(r) => r.try_get(col),
        }
    }

    pub(crate) fn int(&self, col: &str) -> sqlx::Result<i64> {
        match self {
            Row::Sqlite(r) => r.try_get(col),
            Row::Postgres(r) => r.try_get(col),
        }
    }

    pub(crate) fn bool(&self, col: &str) -> sqlx::Result<bool> {
        match self {
            Row::Sqlite(r) => r.try_get(col),
            Row::Postgres(r) => r.try_get(col),
        }
    }

    pub(crate) fn time(&self, col: &str) -> sqlx::Result<DateTime<Utc>> {
        match self {
            Row::Sqlite(r) => micros_to_time(col, r.try_get(col)?),
            Row::Postgres(r) => r.try_get(col),
        }
    }

    pub(crate) fn opt_time(&self, col: &str) -> sqlx::Result<Option<DateTime<Utc>>> {
        match self {
            Row::Sqlite(r) => r
                .try_get::<Option<i64>, _>(col)?
                .map(|micros| micros_to_time(col, micros))
                .transpose(),
            Row::Postgres(r) => r.try_get(col),
        }
    }
}

fn micros_to_time(col: &str, micros: i64) -> sqlx::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: col.to_owned(),
        source: format!("timestamp {micros} µs is out of range").into(),
    })
}
