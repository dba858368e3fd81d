//! Noticing a lost database. A station that has been used keeps a marker file
//! beside its database; a missing or empty database next to the marker (or next
//! to the station's site secret) is refused with the remedy, never silently
//! recreated. `--reinit` is the explicit way to start afresh.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{connect, now_unix, schema, Store, StoreError};

/// The marker beside the database: `station.db` → `station.db.in-use`.
pub fn marker_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".in-use");
    db.with_file_name(name)
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    db.with_file_name(name)
}

/// The first file showing the station has been used, if any.
pub(super) fn used_evidence(db: &Path, evidence: &[PathBuf]) -> Option<PathBuf> {
    std::iter::once(marker_path(db))
        .chain(evidence.iter().cloned())
        .find(|p| p.exists())
}

/// Before opening (which would create the file): a database that is missing or
/// empty, with no WAL file that could hold its content, beside evidence of use.
///
/// The order of the checks matters while another process creates the database at this
/// very moment: it writes its marker only after its schema is committed, and removes its
/// WAL only after copying it into the file. So the evidence is looked at first, then the
/// WAL, then the file's size; the other order can see an empty file, then no WAL, then a
/// marker that all appeared in between, and call a new database lost.
pub(super) fn lost_before_open(db: &Path, evidence: &[PathBuf]) -> Option<PathBuf> {
    let evidence = used_evidence(db, evidence)?;
    if sidecar(db, "-wal").exists() {
        return None;
    }
    let empty = std::fs::metadata(db).map(|m| m.len() == 0).unwrap_or(true);
    empty.then_some(evidence)
}

/// Leave the marker once the database holds its schema (kept if present).
pub(super) fn write_marker(db: &Path, conn: &rusqlite::Connection) -> Result<(), StoreError> {
    let marker = marker_path(db);
    if marker.exists() || db == Path::new(":memory:") {
        return Ok(());
    }
    let id: String = conn.query_row(
        "SELECT value FROM station_meta WHERE key = 'database_id'",
        [],
        |r| r.get(0),
    )?;
    let err = |source| StoreError::File {
        what: "cannot write the database marker",
        path: marker.clone(),
        source,
    };
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(f) => f,
        // Another process starting at the same moment wrote it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(err(e)),
    };
    writeln!(
        f,
        "The station database beside this file (id {id}) has been in use since unix time {}.\n\
         If it is missing or empty, Cardstation refuses to start: restore it from a backup,\n\
         or start afresh with `cardstation --reinit`.",
        now_unix()
    )
    .and_then(|()| f.sync_all())
    .map_err(err)
}

/// What `--reinit` did.
#[derive(Debug, Clone)]
pub struct Reinit {
    pub database: PathBuf,
    /// Where the old (empty or unreadable) files were moved, if there were any.
    pub kept: Vec<PathBuf>,
}

impl Store {
    /// Start an empty database in place of a lost or unreadable one. Refused while
    /// the database is present and readable. The old files are moved aside, never deleted.
    pub fn reinit(db: &Path, evidence: &[PathBuf]) -> Result<Reinit, StoreError> {
        match Store::open_guarded(db, evidence) {
            Ok(_) => {
                return Err(StoreError::NotLost {
                    path: db.to_path_buf(),
                })
            }
            Err(StoreError::Lost { .. }) => {}
            Err(e) if e.is_unreadable() => {}
            Err(e) => return Err(e),
        }
        let stamp = now_unix();
        let mut kept = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let from = sidecar(db, suffix);
            if from.exists() {
                let to = sidecar(db, &format!("{suffix}.lost-{stamp}"));
                std::fs::rename(&from, &to).map_err(|source| StoreError::File {
                    what: "cannot move the old database aside",
                    path: from.clone(),
                    source,
                })?;
                kept.push(to);
            }
        }
        let marker = marker_path(db);
        if marker.exists() {
            std::fs::remove_file(&marker).map_err(|source| StoreError::File {
                what: "cannot remove the database marker",
                path: marker.clone(),
                source,
            })?;
        }
        let conn = connect(db)?;
        schema::migrate(&conn, None).map_err(|e| match e {
            schema::MigrateError::Store(e) => e,
            schema::MigrateError::Lost(evidence) => StoreError::Lost {
                path: db.to_path_buf(),
                evidence,
            },
        })?;
        write_marker(db, &conn)?;
        Ok(Reinit {
            database: db.to_path_buf(),
            kept,
        })
    }
}
