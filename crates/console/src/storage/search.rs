//! Certificate search, shared by both backends: the words a record is found by,
//! and one parameterised query (no user text is ever part of the SQL).
//!
//! Every record has rows in `certificate_terms`: the words of its subject values,
//! label and station, its card serial, and (marked with `#`) its CHUID GUID and
//! fingerprint, lower case. A search word matches a record when it begins one of
//! its terms (a range scan on the terms index), so a search costs what its matches
//! cost, not a scan of every record. Only a word of at least [`MIN_HEX_PREFIX`] hex
//! digits is also looked for at the start of GUIDs and fingerprints: otherwise
//! "plant b" would find every card whose fingerprint begins with b.
//!
//! The plan follows the words: each is first counted (up to [`SELECTIVE`] terms,
//! a bounded index read). When one is rare, its matches are the candidates and the
//! other words are checked on each; when every word is common, the records are
//! walked newest first and each is checked until the page is full. So a rare
//! name costs its few matches, and "plant" (on most cards) a page's worth of
//! checks, not a sort of everything. Pages are ordered newest first by
//! (uploaded_at, sha256), and a cursor is the last row's pair: the next page
//! starts strictly after it.

use cardstation_protocol::messages::{search_words, CertificateStatus};

/// A search as the storage runs it (already checked and bounded by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    /// Each must begin a term of the record.
    pub words: Vec<String>,
    pub status: Option<CertificateStatus>,
    pub station: Option<String>,
    /// Rows to return (the caller asks for one more than a page to know if there is more).
    pub limit: u32,
    /// Only records strictly older than this (uploaded_at, sha256).
    pub after: Option<(i64, String)>,
    /// Only active, not superseded records ending at or before this time.
    pub ends_by: Option<i64>,
    /// Only records with (true) or without (false) a verified key attestation.
    pub attested: Option<bool>,
}

/// The terms a record is found by.
pub fn terms(
    sha256: &str,
    subject: &str,
    label: Option<&str>,
    station: &str,
    card_serial: Option<u32>,
    chuid_guid: Option<&str>,
) -> Vec<String> {
    let mut t: Vec<String> = Vec::new();
    // Subject values only: "CN=gw-17,O=Acme" is found by "gw", "17", "acme", not "cn".
    for part in subject.split([',', '+']) {
        let value = part.split_once('=').map_or(part, |(_, v)| v);
        t.extend(search_words(value));
    }
    t.extend(search_words(label.unwrap_or_default()));
    t.extend(search_words(station));
    if let Some(s) = card_serial {
        t.push(s.to_string());
    }
    if let Some(g) = chuid_guid {
        t.push(format!("{HEX_MARK}{}", g.to_ascii_lowercase()));
    }
    t.push(format!("{HEX_MARK}{}", sha256.to_ascii_lowercase()));
    t.sort();
    t.dedup();
    t
}

/// Marks GUID and fingerprint terms (never part of a word).
const HEX_MARK: char = '#';

/// Shortest word looked for at the start of a GUID or fingerprint.
pub const MIN_HEX_PREFIX: usize = 6;

use super::db::Value;

/// A word matched by at least this many terms is common: it does not drive a search.
pub const SELECTIVE: i64 = 5000;

/// The term ranges a word matches: its own prefix, and for a long enough hex
/// word also the GUID and fingerprint prefix. Each is `[lo, hi)`.
fn ranges(w: &str) -> Vec<(String, String)> {
    let mut prefixes = vec![w.to_string()];
    if w.len() >= MIN_HEX_PREFIX && w.bytes().all(|b| b.is_ascii_hexdigit()) {
        prefixes.push(format!("{HEX_MARK}{w}"));
    }
    prefixes
        .into_iter()
        // Every term that begins with `p` sorts below `p` followed by the largest character.
        .map(|p| (p.clone(), format!("{p}{}", char::MAX)))
        .collect()
}

/// Placeholders (`$N`) and values, numbered as they are added.
struct Binder {
    values: Vec<Value>,
}

impl Binder {
    fn bind(&mut self, v: Value) -> String {
        self.values.push(v);
        format!("${}", self.values.len())
    }

    /// `(term >= lo AND term < hi) OR …` for the word `w`, on the terms alias `t`.
    fn word(&mut self, t: &str, w: &str) -> String {
        ranges(w)
            .into_iter()
            .map(|(lo, hi)| {
                let (lo, hi) = (self.bind(Value::Text(lo)), self.bind(Value::Text(hi)));
                format!("({t}.term >= {lo} AND {t}.term < {hi})")
            })
            .collect::<Vec<_>>()
            .join(" OR ")
    }
}

/// How many terms `w` matches, counted up to [`SELECTIVE`].
pub fn probe(w: &str) -> (String, Vec<Value>) {
    let mut b = Binder { values: Vec::new() };
    let cond = b.word("t", w);
    let limit = b.bind(Value::Int(SELECTIVE));
    (
        format!("SELECT COUNT(*) FROM (SELECT 1 FROM certificate_terms t WHERE {cond} LIMIT {limit}) AS p"),
        b.values,
    )
}

/// The word to drive the search with: the rarest, if it is rare at all.
pub fn driver(counts: &[i64]) -> Option<usize> {
    counts
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| **c)
        .filter(|(_, c)| **c < SELECTIVE)
        .map(|(i, _)| i)
}

/// The search as SQL with numbered placeholders and the values to bind, in order. `columns` are the record columns;
/// `driver` the word whose matches are the candidates (see [`driver`]).
pub fn query(s: &Search, columns: &str, driver: Option<usize>) -> (String, Vec<Value>) {
    let mut b = Binder { values: Vec::new() };
    let mut sql = format!("SELECT {columns} FROM certificates c WHERE TRUE");
    if let Some(status) = s.status {
        let p = b.bind(Value::Text(super::status_text(status).into()));
        sql += &format!(" AND c.status = {p}");
    }
    if let Some(station) = &s.station {
        let p = b.bind(Value::Text(station.clone()));
        sql += &format!(" AND c.station_id = {p}");
    }
    if let Some(end) = s.ends_by {
        let active = b.bind(Value::Text(
            super::status_text(CertificateStatus::Active).into(),
        ));
        let p = b.bind(Value::Int(end));
        sql +=
            &format!(" AND c.status = {active} AND c.superseded_by IS NULL AND c.not_after <= {p}");
    }
    match s.attested {
        Some(true) => sql += " AND c.attestation IS NOT NULL",
        Some(false) => sql += " AND c.attestation IS NULL",
        None => {}
    }
    if let Some((at, sha)) = &s.after {
        let (x, y) = (b.bind(Value::Int(*at)), b.bind(Value::Text(sha.clone())));
        sql += &format!(" AND (c.uploaded_at, c.sha256) < ({x}, {y})");
    }
    for (i, w) in s.words.iter().enumerate() {
        if Some(i) == driver {
            let cond = b.word("t", w);
            sql += &format!(
                " AND c.sha256 IN (SELECT t.sha256 FROM certificate_terms t WHERE {cond})"
            );
        } else {
            let cond = b.word("t", w);
            sql += &format!(
                " AND EXISTS (SELECT 1 FROM certificate_terms t WHERE t.sha256 = c.sha256 AND ({cond}))"
            );
        }
    }
    let limit = b.bind(Value::Int(i64::from(s.limit)));
    sql += &format!(" ORDER BY c.uploaded_at DESC, c.sha256 DESC LIMIT {limit}");
    (sql, b.values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_found_by_values_not_attribute_names() {
        let t = terms(
            "AB12",
            "CN=gw-17,O=Acme Plant",
            Some("J. Smith"),
            "desk-2",
            Some(4711),
            Some("00FF"),
        );
        for w in [
            "gw", "17", "acme", "plant", "j", "smith", "desk", "2", "4711", "#00ff", "#ab12",
        ] {
            assert!(t.contains(&w.to_string()), "{w} in {t:?}");
        }
        assert!(!t.contains(&"cn".to_string()), "{t:?}");
    }

    #[test]
    fn the_rarest_word_drives_unless_every_word_is_common() {
        assert_eq!(driver(&[5000, 3, 40]), Some(1));
        assert_eq!(driver(&[SELECTIVE, SELECTIVE]), None);
        assert_eq!(driver(&[]), None);
    }

    #[test]
    fn user_text_is_bound_never_part_of_the_sql() {
        let s = Search {
            words: vec!["x' or 1=1 --".into()],
            station: Some("st'; drop table certificates".into()),
            status: Some(CertificateStatus::Active),
            limit: 51,
            after: Some((5, "ff".into())),
            ends_by: None,
            attested: Some(true),
        };
        for driver in [None, Some(0)] {
            let (sql, values) = query(&s, "sha256", driver);
            assert!(!sql.contains('\''), "{sql}");
            assert!(!sql.contains("drop"), "{sql}");
            assert_eq!(values.len(), 7);
            assert!(sql.ends_with("LIMIT $7"), "{sql}");
        }
        let (sql, values) = probe("a3f9c2");
        assert!(!sql.contains("a3f9"), "{sql}");
        assert_eq!(values.len(), 5, "two ranges and the limit");
    }
}
