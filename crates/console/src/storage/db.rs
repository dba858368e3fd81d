//! The seam under the console's queries: what SQLite and PostgreSQL must each
//! provide so that every query is written once (crates/console/src/storage/records.rs).
//!
//! A backend opens transactions of two kinds — a writer's, serialized with every
//! other writer of the database (SQLite's write lock, PostgreSQL's advisory lock),
//! and a reader's, one consistent snapshot — and runs SQL in them with bound
//! values. Queries are written with PostgreSQL's `$N` placeholders; the SQLite
//! backend renumbers them as `?N`. Everything else the two share is written in the
//! SQL both accept (`ON CONFLICT … DO NOTHING/UPDATE`, row values, `TRUE`).

use super::StoreError;

/// A value bound to a query or read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(v.to_vec())
    }
}

impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Value {
        Value::Blob(v.clone())
    }
}

impl<T> From<Option<T>> for Value
where
    T: Into<Value>,
{
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// A count or version kept as unsigned in Rust and as BIGINT in the database.
pub fn int_of(v: u64) -> Result<Value, StoreError> {
    i64::try_from(v)
        .map(Value::Int)
        .map_err(|_| StoreError::Failed(format!("the number {v} is too large to store")))
}

/// Bound values, in placeholder order: `params![a, b, c]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::storage::db::Value::from($v)),*][..]
    };
}
pub(crate) use params;

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlRow(pub Vec<Value>);

impl SqlRow {
    fn at(&self, i: usize) -> Result<&Value, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Failed(format!("the query returned no column {i}")))
    }

    fn wrong(&self, i: usize, want: &str) -> StoreError {
        StoreError::Failed(format!("column {i} holds {:?}, not {want}", self.0.get(i)))
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        match self.at(i)? {
            Value::Text(t) => Ok(t.clone()),
            _ => Err(self.wrong(i, "text")),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.at(i)? {
            Value::Int(v) => Ok(*v),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }

    /// A count, version or row number: never negative.
    pub fn unsigned(&self, i: usize) -> Result<u64, StoreError> {
        let v = self.int(i)?;
        u64::try_from(v).map_err(|_| StoreError::Failed(format!("column {i} is negative ({v})")))
    }

    pub fn blob(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        match self.at(i)? {
            Value::Blob(b) => Ok(b.clone()),
            _ => Err(self.wrong(i, "bytes")),
        }
    }

    pub fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.blob(i).map(Some),
        }
    }
}

/// Which SQL dialect a backend speaks, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// An open transaction. Dropped without [`Tx::commit`], it is rolled back.
#[async_trait::async_trait]
pub trait Tx: Send {
    /// Rows of a query (statements are prepared once per connection and reused).
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<SqlRow>, StoreError>;
    /// A query planned for these very values (PostgreSQL otherwise turns a cached
    /// statement generic after a few runs: a search for a rare word would walk
    /// every record).
    async fn query_planned(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<SqlRow>, StoreError>;
    /// Rows changed by a statement.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// The first row of a query, if any.
pub async fn query_opt(
    tx: &mut dyn Tx,
    sql: &str,
    params: &[Value],
) -> Result<Option<SqlRow>, StoreError> {
    Ok(tx.query(sql, params).await?.into_iter().next())
}

/// The one row of a query (an aggregate).
pub async fn query_one(tx: &mut dyn Tx, sql: &str, params: &[Value]) -> Result<SqlRow, StoreError> {
    query_opt(tx, sql, params)
        .await?
        .ok_or_else(|| StoreError::Failed(format!("no row from: {sql}")))
}

/// What a writer serializes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteLock {
    /// Every change to the records (certificates, identities, events, anchors, audit).
    Records,
    /// Adding a trust-bundle version: one instance at a time, without holding up uploads.
    BundleCut,
    /// Rows no other writer reads to decide anything (gateway events, kept once by
    /// their key): the database's own row locks are enough, so taps never wait on uploads.
    RowsOnly,
}

/// A backend: opens transactions on its database.
#[async_trait::async_trait]
pub trait Db: Send + Sync {
    fn dialect(&self) -> Dialect;
    /// A transaction that changes the database: one writer at a time across every
    /// process on the database.
    async fn write(&self, lock: WriteLock) -> Result<Box<dyn Tx + '_>, StoreError>;
    /// A read-only transaction: everything read in it comes from one snapshot.
    async fn read(&self) -> Result<Box<dyn Tx + '_>, StoreError>;
    /// After a bulk import: refresh the planner's statistics (PostgreSQL).
    async fn analyze(&self) -> Result<(), StoreError>;
}

/// `$1 … $N` as SQLite's `?1 … ?N` (no query of ours has a `$` elsewhere).
pub fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_typed_and_say_what_is_wrong() {
        let r = SqlRow(vec![
            Value::Int(7),
            Value::Null,
            Value::Text("x".into()),
            Value::Int(-1),
        ]);
        assert_eq!(r.int(0).ok(), Some(7));
        assert_eq!(r.opt_text(1).ok(), Some(None));
        assert_eq!(r.text(2).ok().as_deref(), Some("x"));
        assert!(r.text(0).is_err());
        assert!(r.unsigned(3).is_err());
        assert!(r.int(9).is_err());
    }

    #[test]
    fn placeholders_are_renumbered_for_sqlite() {
        assert_eq!(
            sqlite_placeholders("UPDATE t SET a = $2 WHERE b = $1 AND c = $1"),
            "UPDATE t SET a = ?2 WHERE b = ?1 AND c = ?1"
        );
    }
}
