//! Enrollment records: begun before the card is touched, finished only after the self-test.

use cardstation_piv::Slot;
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{now_unix, AuditEntry, OutboxKind, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnrollmentState {
    InProgress,
    Enrolled,
    Failed,
}

impl EnrollmentState {
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "in-progress" => EnrollmentState::InProgress,
            "enrolled" => EnrollmentState::Enrolled,
            "failed" => EnrollmentState::Failed,
            other => return Err(StoreError::Corrupt(format!("enrollment state {other:?}"))),
        })
    }
}

pub struct NewEnrollment<'a> {
    pub reader: &'a str,
    pub card_serial: Option<u32>,
    pub old_guid: Option<&'a str>,
    pub new_guid: &'a str,
    pub slot: Slot,
    pub subject: &'a str,
    pub operator: &'a str,
    pub station_id: &'a str,
    /// Who or what holds the card.
    pub label: Option<&'a str>,
}

/// What an enrollment produced, recorded when it completes.
pub struct CompletedEnrollment<'a> {
    pub fingerprint: &'a str,
    pub certificate: &'a [u8],
    pub not_after: i64,
    /// The card's attestation evidence (JSON), when it gave one.
    pub attestation: Option<&'a str>,
    /// The upload request (JSON) to queue for the console.
    pub upload: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnrollmentRecord {
    pub id: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub state: EnrollmentState,
    pub reader: String,
    pub card_serial: Option<u32>,
    pub old_guid: Option<String>,
    pub new_guid: String,
    pub slot: Slot,
    pub subject: String,
    pub fingerprint: Option<String>,
    pub not_after: Option<i64>,
    #[serde(skip)]
    pub certificate: Option<Vec<u8>>,
    pub error: Option<String>,
    pub operator: String,
    pub station_id: String,
    pub label: Option<String>,
    /// The card's attestation of the key (JSON of the evidence), when it gave one; in
    /// JSON output only whether there is one (`attested`).
    #[serde(rename = "attested", serialize_with = "is_present")]
    pub attestation: Option<String>,
}

fn is_present<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(value.is_some())
}

const COLUMNS: &str =
    "id, started_at, finished_at, state, reader, card_serial, old_guid, new_guid, \
     slot, subject, fingerprint, not_after, certificate, error, operator, station_id, label, \
     attestation";

fn from_row(r: &Row<'_>) -> rusqlite::Result<(EnrollmentRecord, String)> {
    let state: String = r.get(3)?;
    let serial: Option<i64> = r.get(5)?;
    Ok((
        EnrollmentRecord {
            id: r.get(0)?,
            started_at: r.get(1)?,
            finished_at: r.get(2)?,
            state: EnrollmentState::InProgress,
            reader: r.get(4)?,
            card_serial: serial.and_then(|s| u32::try_from(s).ok()),
            old_guid: r.get(6)?,
            new_guid: r.get(7)?,
            slot: {
                let text: String = r.get(8)?;
                text.parse::<Slot>().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        8,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?
            },
            subject: r.get(9)?,
            fingerprint: r.get(10)?,
            not_after: r.get(11)?,
            certificate: r.get(12)?,
            error: r.get(13)?,
            operator: r.get(14)?,
            station_id: r.get(15)?,
            label: r.get(16)?,
            attestation: r.get(17)?,
        },
        state,
    ))
}

fn finish_row(pair: (EnrollmentRecord, String)) -> Result<EnrollmentRecord, StoreError> {
    let (mut rec, state) = pair;
    rec.state = EnrollmentState::parse(&state)?;
    Ok(rec)
}

impl Store {
    /// Record that an enrollment is starting (committed before the card is changed).
    pub fn begin_enrollment(&self, e: &NewEnrollment<'_>) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO enrollments (started_at, state, reader, card_serial, old_guid, new_guid,
                 slot, subject, operator, station_id, label)
             VALUES (?1, 'in-progress', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                now_unix(),
                e.reader,
                e.card_serial.map(i64::from),
                e.old_guid,
                e.new_guid,
                e.slot.short(),
                e.subject,
                e.operator,
                e.station_id,
                e.label
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Mark an enrollment done: only called after the self-test passed. The record,
    /// its audit row and (with `upload`) the certificate's queued upload are one
    /// transaction: an enrolled card is never left without its upload or its audit
    /// row, whenever the station dies (and the card waits for one disk sync, not three).
    pub fn complete_enrollment(
        &self,
        id: i64,
        done: &CompletedEnrollment<'_>,
        audit: &AuditEntry<'_>,
    ) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        tx.execute(
            "UPDATE enrollments SET state = 'enrolled', finished_at = ?2, fingerprint = ?3,
                 certificate = ?4, not_after = ?5, attestation = ?6 WHERE id = ?1",
            params![
                id,
                now_unix(),
                done.fingerprint,
                done.certificate,
                done.not_after,
                done.attestation
            ],
        )?;
        if let Some(body) = done.upload {
            super::outbox::insert(&tx, OutboxKind::Upload, done.fingerprint, body, now_unix())?;
        }
        super::audit::append(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    /// Mark an enrollment failed, with its audit row in the same transaction.
    pub fn fail_enrollment(
        &self,
        id: i64,
        error: &str,
        audit: &AuditEntry<'_>,
    ) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        tx.execute(
            "UPDATE enrollments SET state = 'failed', finished_at = ?2, error = ?3 WHERE id = ?1",
            params![id, now_unix(), error],
        )?;
        super::audit::append(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    pub fn enrollment(&self, id: i64) -> Result<Option<EnrollmentRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM enrollments WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?
            .map(finish_row)
            .transpose()
    }

    /// The enrollment that produced the certificate with this fingerprint.
    pub fn enrollment_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<EnrollmentRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM enrollments WHERE fingerprint = ?1 ORDER BY id DESC LIMIT 1"),
                [fingerprint],
                from_row,
            )
            .optional()?
            .map(finish_row)
            .transpose()
    }

    /// Link a replaced certificate to its successor.
    pub fn record_replacement(
        &self,
        old_fingerprint: &str,
        new_fingerprint: &str,
        reason: &str,
        enrollment_id: i64,
        operator: &str,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO replacements (at, old_fingerprint, new_fingerprint, reason, enrollment_id, operator)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now_unix(), old_fingerprint, new_fingerprint, reason, enrollment_id, operator],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The certificate that replaced `old_fingerprint`, if any.
    pub fn replacement_of(&self, old_fingerprint: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT new_fingerprint FROM replacements WHERE old_fingerprint = ?1 ORDER BY id DESC LIMIT 1",
                [old_fingerprint],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Most recent first.
    pub fn enrollments(&self, limit: usize) -> Result<Vec<EnrollmentRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM enrollments ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], from_row)?;
        rows.map(|r| finish_row(r?)).collect()
    }

    /// Whether this station has ever enrolled (or started to enrol) a card that now
    /// carries `guid`: then its management key is most likely our derived one.
    pub fn knows_guid(&self, guid: &str) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM enrollments WHERE new_guid = ?1)",
            [guid],
            |r| r.get(0),
        )?)
    }

    /// GUIDs of enrollments of this card that were interrupted, before and after:
    /// the card may carry a management key derived from either (the CHUID and the
    /// key are written one after the other).
    pub fn interrupted_guids(&self, card_serial: Option<u32>) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT new_guid, old_guid FROM enrollments
             WHERE state != 'enrolled' AND card_serial IS ?1 ORDER BY id DESC LIMIT 10",
        )?;
        let rows = stmt.query_map([card_serial.map(i64::from)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        let mut guids: Vec<String> = Vec::new();
        for row in rows {
            let (new, old) = row?;
            for g in std::iter::once(new).chain(old) {
                if !guids.contains(&g) {
                    guids.push(g);
                }
            }
        }
        Ok(guids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuditAction, AuditVerdict};

    fn new<'a>(guid: &'a str) -> NewEnrollment<'a> {
        NewEnrollment {
            reader: "R",
            card_serial: Some(7),
            old_guid: None,
            new_guid: guid,
            slot: Slot::CardAuthentication,
            subject: "CN=x",
            operator: "op",
            station_id: "st",
            label: Some("gw-17 Plant B"),
        }
    }

    #[test]
    fn enrollment_lifecycle() {
        let s = Store::in_memory().unwrap();
        let id = s.begin_enrollment(&new("AA")).unwrap();
        assert_eq!(
            s.enrollment(id).unwrap().unwrap().state,
            EnrollmentState::InProgress
        );
        assert_eq!(s.interrupted_guids(Some(7)).unwrap(), ["AA"]);
        let audit_rows = s.audit_rows().unwrap().len();
        s.complete_enrollment(
            id,
            &CompletedEnrollment {
                fingerprint: "ff",
                certificate: &[1, 2],
                not_after: 99,
                attestation: None,
                upload: Some("{}"),
            },
            &AuditEntry {
                operator: "op",
                station_id: "st",
                action: AuditAction::Enroll,
                subject: "card",
                outcome: "enrolled",
                details: &serde_json::json!({"enrollment": id}),
            },
        )
        .unwrap();
        assert_eq!(s.outbox_pending().unwrap(), 1);
        assert_eq!(s.audit_rows().unwrap().len(), audit_rows + 1);
        assert_eq!(
            s.verify_audit().unwrap(),
            AuditVerdict::Intact {
                rows: audit_rows + 1
            }
        );
        let rec = s.enrollment(id).unwrap().unwrap();
        assert_eq!(rec.state, EnrollmentState::Enrolled);
        assert_eq!(rec.fingerprint.as_deref(), Some("ff"));
        assert_eq!(rec.label.as_deref(), Some("gw-17 Plant B"));
        assert!(s.knows_guid("AA").unwrap());
        assert!(s.interrupted_guids(Some(7)).unwrap().is_empty());

        let id2 = s.begin_enrollment(&new("BB")).unwrap();
        s.fail_enrollment(
            id2,
            "card removed",
            &AuditEntry {
                operator: "op",
                station_id: "st",
                action: AuditAction::Enroll,
                subject: "card",
                outcome: "interrupted",
                details: &serde_json::json!({"enrollment": id2}),
            },
        )
        .unwrap();
        let recent = s.enrollments(10).unwrap();
        assert_eq!(recent[0].state, EnrollmentState::Failed);
        assert_eq!(recent[0].error.as_deref(), Some("card removed"));
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }
}
