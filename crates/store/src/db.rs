//! One connection interface over both backends: the service writes its SQL
//! once, with SQLite's numbered parameters (`?1`), in the subset both
//! SQLite and PostgreSQL (and CockroachDB) run; [`Db`] sends it to SQLite as
//! it is and to PostgreSQL with `$1` parameters, and [`Row`] reads either
//! kind of row with the same typed getters.
//!
//! What the portable subset means, for whoever writes SQL here:
//! - integers are 64-bit (`BIGINT` columns on PostgreSQL), so every
//!   integer parameter is an `i64`;
//! - a parameter compared only with `IS NULL` gets its type from a `CAST`
//!   (`CAST(?4 AS BIGINT) IS NULL`): PostgreSQL cannot guess it otherwise;
//! - `IS DISTINCT FROM`, not SQLite's `IS NOT`; no two-argument `MAX`;
//! - a comparison selected as a column is a boolean on PostgreSQL and an
//!   integer on SQLite: read it with [`Row::get_bool`], which takes both.

use std::collections::HashMap;

use crate::StoreError;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parameter value. Built with [`crate::params!`] from plain Rust values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
    Bool(bool),
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<u8> for Value<'_> {
    fn from(value: u8) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<f64> for Value<'_> {
    fn from(value: f64) -> Self {
        Value::Real(value)
    }
}

impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Value::Text(value)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(value: &'a String) -> Self {
        Value::Text(value)
    }
}

impl<'a> From<&'a &'static str> for Value<'a> {
    fn from(value: &'a &'static str) -> Self {
        Value::Text(value)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(value: &'a [u8]) -> Self {
        Value::Blob(value)
    }
}

impl<'a> From<&'a Vec<u8>> for Value<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Value::Blob(value)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// `params![a, b, c]`: a slice of [`Value`]s for [`Db`]'s methods.
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[$crate::Value<'_>]
    };
    ($($value:expr),+ $(,)?) => {
        &[$($crate::Value::from($value)),+] as &[$crate::Value<'_>]
    };
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as Owned, ValueRef};
        Ok(match *self {
            Value::Null => ToSqlOutput::Owned(Owned::Null),
            Value::Int(v) => ToSqlOutput::Owned(Owned::Integer(v)),
            Value::Real(v) => ToSqlOutput::Owned(Owned::Real(v)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Bool(b) => ToSqlOutput::Owned(Owned::Integer(i64::from(b))),
        })
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl postgres::types::ToSql for Value<'_> {
    /// Sends the value as the type the server inferred for the parameter,
    /// converting integers to the column's width (and refusing what does
    /// not fit) rather than failing on `INT4` against `i64`.
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, BoxError> {
        use postgres::types::{IsNull, Type};
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::FLOAT8 => (v as f64).to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                _ => Err(format!("an integer parameter cannot be sent as {ty}").into()),
            },
            Value::Real(v) => match *ty {
                Type::FLOAT4 => (v as f32).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
            Value::Bool(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A PostgreSQL connection with its prepared statements (keyed by the SQL
/// as the service wrote it), like rusqlite's `prepare_cached`.
pub(crate) struct PgConn {
    pub(crate) client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("statements", &self.statements.len())
            .finish_non_exhaustive()
    }
}

impl PgConn {
    /// Connects without TLS: the service and its database are on one host
    /// (loopback or a Unix socket); TLS to a remote database is not
    /// supported yet, and a URL asking for it (`sslmode=require`) fails
    /// to connect rather than silently going in clear.
    pub(crate) fn connect(url: &str) -> Result<PgConn, StoreError> {
        let client = postgres::Client::connect(url, postgres::NoTls)?;
        Ok(PgConn {
            client,
            statements: HashMap::new(),
        })
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&dollar_parameters(sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// `?1` → `$1`, outside string literals.
fn dollar_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_literal = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_literal = !in_literal;
                out.push(c);
            }
            '?' if !in_literal && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

enum Conn<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres(&'c mut PgConn),
}

/// A connection of either backend, lent to a read or a write closure.
pub struct Db<'c> {
    conn: Conn<'c>,
    /// Set by the writer when a savepoint could not be closed: the batch's
    /// transaction is then rolled back whole.
    pub(crate) poisoned: bool,
}

impl std::fmt::Debug for Db<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.backend()).finish()
    }
}

impl<'c> Db<'c> {
    /// An SQLite connection opened elsewhere (tests, offline tools).
    pub fn sqlite(conn: &'c rusqlite::Connection) -> Self {
        Db {
            conn: Conn::Sqlite(conn),
            poisoned: false,
        }
    }

    pub(crate) fn postgres(conn: &'c mut PgConn) -> Self {
        Db {
            conn: Conn::Postgres(conn),
            poisoned: false,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.conn {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection, for SQLite-only tools and tests (`PRAGMA`s).
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match self.conn {
            Conn::Sqlite(conn) => Some(conn),
            Conn::Postgres(_) => None,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
        match &mut self.conn {
            Conn::Sqlite(conn) => {
                let changed = conn
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params.iter()))?;
                Ok(changed as u64)
            }
            Conn::Postgres(pg) => {
                let statement = pg.statement(sql)?;
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|v| v as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                Ok(pg.client.execute(&statement, &params)?)
            }
        }
    }

    /// Runs statements without parameters, one after another (migrations).
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match &mut self.conn {
            Conn::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Conn::Postgres(pg) => Ok(pg.client.batch_execute(sql)?),
        }
    }

    /// Streams the rows of a query to `each` until it returns `false`.
    pub fn query_each(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        mut each: impl FnMut(&Row<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        match &mut self.conn {
            Conn::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
                while let Some(row) = rows.next()? {
                    if !each(&Row(RowInner::Sqlite(row)))? {
                        break;
                    }
                }
            }
            Conn::Postgres(pg) => {
                use postgres::fallible_iterator::FallibleIterator;
                let statement = pg.statement(sql)?;
                let mut rows = pg.client.query_raw(&statement, params.iter())?;
                while let Some(row) = rows.next()? {
                    if !each(&Row(RowInner::Postgres(&row)))? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Every row of a query, each mapped by `map`.
    pub fn query_map<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        mut map: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.query_each(sql, params, |row| {
            out.push(map(row)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// The first row of a query, if any.
    pub fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        map: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut map = Some(map);
        let mut out = None;
        self.query_each(sql, params, |row| {
            if let Some(map) = map.take() {
                out = Some(map(row)?);
            }
            Ok(false)
        })?;
        Ok(out)
    }

    /// The first row of a query that always returns one (an aggregate).
    pub fn query_one<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        map: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.query_opt(sql, params, map)?
            .ok_or_else(|| StoreError::Rejected(format!("the query returned no row: {sql}")))
    }
}

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

/// One result row of either backend. Column indexes start at 0.
pub struct Row<'r>(RowInner<'r>);

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").finish_non_exhaustive()
    }
}

fn pg_error(row: &postgres::Row, i: usize, wanted: &str) -> StoreError {
    let column = row.columns().get(i);
    StoreError::Rejected(format!(
        "column {i} ({}) is {}, not {wanted}",
        column.map_or("?", |c| c.name()),
        column.map_or_else(|| "missing".to_owned(), |c| c.type_().to_string())
    ))
}

impl Row<'_> {
    pub fn get_opt_i64(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.0 {
            RowInner::Sqlite(row) => Ok(row.get(i)?),
            RowInner::Postgres(row) => {
                use postgres::types::Type;
                let ty = row.columns().get(i).map(|c| c.type_().clone());
                Ok(match ty {
                    Some(Type::INT8) => row.try_get::<_, Option<i64>>(i)?,
                    Some(Type::INT4) => row.try_get::<_, Option<i32>>(i)?.map(i64::from),
                    Some(Type::INT2) => row.try_get::<_, Option<i16>>(i)?.map(i64::from),
                    _ => return Err(pg_error(row, i, "an integer")),
                })
            }
        }
    }

    pub fn get_i64(&self, i: usize) -> Result<i64, StoreError> {
        self.get_opt_i64(i)?
            .ok_or_else(|| StoreError::Rejected(format!("column {i} is NULL, not an integer")))
    }

    /// A non-negative id, count or index (negative values read as 0).
    pub fn get_u64(&self, i: usize) -> Result<u64, StoreError> {
        Ok(self.get_i64(i)?.max(0) as u64)
    }

    pub fn get_opt_f64(&self, i: usize) -> Result<Option<f64>, StoreError> {
        match self.0 {
            RowInner::Sqlite(row) => Ok(row.get(i)?),
            RowInner::Postgres(row) => {
                use postgres::types::Type;
                match row.columns().get(i).map(|c| c.type_().clone()) {
                    Some(Type::FLOAT8) => Ok(row.try_get(i)?),
                    Some(Type::FLOAT4) => Ok(row.try_get::<_, Option<f32>>(i)?.map(f64::from)),
                    _ => Err(pg_error(row, i, "a float")),
                }
            }
        }
    }

    pub fn get_f64(&self, i: usize) -> Result<f64, StoreError> {
        self.get_opt_f64(i)?
            .ok_or_else(|| StoreError::Rejected(format!("column {i} is NULL, not a float")))
    }

    /// A boolean: PostgreSQL's `BOOLEAN`, or an integer (SQLite's `TRUE`
    /// and comparisons are `1`/`0`).
    pub fn get_bool(&self, i: usize) -> Result<bool, StoreError> {
        match self.0 {
            RowInner::Sqlite(row) => Ok(row.get::<_, i64>(i)? != 0),
            RowInner::Postgres(row) => {
                if row.columns().get(i).map(|c| c.type_()) == Some(&postgres::types::Type::BOOL) {
                    Ok(row.try_get(i)?)
                } else {
                    Ok(self.get_i64(i)? != 0)
                }
            }
        }
    }

    pub fn get_opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.0 {
            RowInner::Sqlite(row) => Ok(row.get(i)?),
            RowInner::Postgres(row) => Ok(row.try_get(i)?),
        }
    }

    pub fn get_text(&self, i: usize) -> Result<String, StoreError> {
        self.get_opt_text(i)?
            .ok_or_else(|| StoreError::Rejected(format!("column {i} is NULL, not text")))
    }

    pub fn get_opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.0 {
            RowInner::Sqlite(row) => Ok(row.get(i)?),
            RowInner::Postgres(row) => Ok(row.try_get(i)?),
        }
    }

    pub fn get_blob(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        self.get_opt_blob(i)?
            .ok_or_else(|| StoreError::Rejected(format!("column {i} is NULL, not bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_dollar_parameters_outside_literals() {
        assert_eq!(
            dollar_parameters("SELECT '?1', a FROM t WHERE b = ?1 AND c IN (?2, ?10) AND d = '?'"),
            "SELECT '?1', a FROM t WHERE b = $1 AND c IN ($2, $10) AND d = '?'"
        );
    }

    #[test]
    fn sqlite_rows_read_through_the_common_getters() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut db = Db::sqlite(&conn);
        db.execute_batch("CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB)")
            .unwrap();
        let blob = vec![1u8, 2, 3];
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
            crate::params![7_i64, 2.5, "x", &blob],
        )
        .unwrap();
        db.execute(
            "INSERT INTO t VALUES (?1, NULL, NULL, NULL)",
            crate::params![None::<i64>],
        )
        .unwrap();
        let rows = db
            .query_map(
                "SELECT i, f, s, b, i = 7 FROM t ORDER BY i IS NULL, i",
                crate::params![],
                |r| {
                    Ok((
                        r.get_opt_i64(0)?,
                        r.get_opt_text(2)?,
                        r.get_opt_blob(3)?,
                        r.get_bool(4).ok(),
                    ))
                },
            )
            .unwrap();
        assert_eq!(rows[0], (Some(7), Some("x".to_owned()), Some(blob), Some(true)));
        assert_eq!(rows[1], (None, None, None, None));
        let at = CAST_NULL_PROBE;
        let found = db
            .query_one(at, crate::params![None::<i64>], |r| r.get_bool(0))
            .unwrap();
        assert!(found, "a typed NULL parameter is NULL on SQLite too");
    }

    /// The portable form of "parameter is NULL" used by the service.
    const CAST_NULL_PROBE: &str = "SELECT CAST(?1 AS BIGINT) IS NULL";
}
