//! Which database a console under test keeps its records in, read independently of it.

use std::path::Path;
use std::sync::Arc;

use crate::pg;

/// Which storage a console under test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A console's database as the tests see it: read independently of the console.
#[derive(Clone)]
pub enum TestDb {
    /// The default: `console.db` in the console's data directory.
    Sqlite,
    Postgres {
        cluster: Arc<pg::PgCluster>,
        database: String,
    },
}

impl TestDb {
    /// A fresh database on `backend` (for PostgreSQL: a new server of its own).
    pub fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::Sqlite,
            Backend::Postgres => {
                let cluster = pg::PgCluster::start();
                cluster.create_database("console");
                TestDb::Postgres {
                    cluster,
                    database: "console".into(),
                }
            }
        }
    }

    /// `serve --database` for this database (none: the default SQLite file).
    pub fn url(&self) -> Option<String> {
        match self {
            TestDb::Sqlite => None,
            TestDb::Postgres { cluster, database } => Some(cluster.url(database)),
        }
    }

    /// The `--database` arguments an administration command needs for this database.
    pub fn database_args(&self) -> Vec<String> {
        match self.url() {
            Some(url) => vec!["--database".into(), url],
            None => vec![],
        }
    }

    /// A copy of the database as it is now (an "old backup" to restore later).
    /// For SQLite the copy is the data directory copy the caller makes.
    pub fn backup(&self, name: &str) -> TestDb {
        match self {
            TestDb::Sqlite => TestDb::Sqlite,
            TestDb::Postgres { cluster, database } => {
                cluster.psql(
                    "postgres",
                    &format!("CREATE DATABASE {name} TEMPLATE {database}"),
                );
                TestDb::Postgres {
                    cluster: cluster.clone(),
                    database: name.into(),
                }
            }
        }
    }

    /// Run a counting query on the console's database.
    pub fn count(&self, dir: &Path, sql: &str) -> i64 {
        match self {
            TestDb::Sqlite => {
                let conn = rusqlite::Connection::open(dir.join("console.db")).expect("console db");
                conn.query_row(sql, [], |r| r.get(0)).expect("count")
            }
            TestDb::Postgres { cluster, database } => {
                cluster.psql(database, sql).parse().expect("a number")
            }
        }
    }

    /// The first column of every row of `sql` on the console's database, as text.
    pub fn strings(&self, dir: &Path, sql: &str) -> Vec<String> {
        match self {
            TestDb::Sqlite => {
                let conn = rusqlite::Connection::open(dir.join("console.db")).expect("console db");
                let mut stmt = conn.prepare(sql).expect("query");
                stmt.query_map([], |r| r.get(0))
                    .expect("rows")
                    .collect::<Result<_, _>>()
                    .expect("text values")
            }
            TestDb::Postgres { cluster, database } => cluster
                .psql(database, sql)
                .lines()
                .map(str::to_string)
                .collect(),
        }
    }
}
