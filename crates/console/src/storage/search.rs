//! Certificate search, shared by both backends: the words a record is found by,
//! and one parameterised query (no user text is ever part of the SQL).
//!
//! Every record has rows in `certificate_terms`: the words of its subject values,
//! label and station, its card serial, and (marked with `#`) its CHUID GUID and
//! fingerprint, lower case. A search word matches a record when it begins one of
//! its terms (a range scan on the terms index), so a search costs what its matches
//! cost, not a scan of every record. Only a word of at least [`MIN_HEX_PREFIX`] hex
//! digits is also looked for at the start of GUIDs and fingerprints: otherwise
//! "plant b" would find every card whose fingerprint begins with b. Pages are ordered newest first by (uploaded_at, sha256), and a
//! cursor is the last row's pair: the next page starts strictly after it.

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

/// A bound value of the search query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Int(i64),
}

/// The search as SQL with numbered placeholders (`?N` for SQLite, `$N` for
/// PostgreSQL) and the values to bind, in order. `columns` are the record columns.
pub fn query(s: &Search, columns: &str, placeholder: char) -> (String, Vec<Value>) {
    let mut values: Vec<Value> = Vec::new();
    let mut bind = |v: Value| {
        values.push(v);
        format!("{placeholder}{}", values.len())
    };
    let mut sql = format!("SELECT {columns} FROM certificates WHERE TRUE");
    if let Some(status) = s.status {
        let p = bind(Value::Text(super::sqlite::status_text(status).into()));
        sql += &format!(" AND status = {p}");
    }
    if let Some(station) = &s.station {
        let p = bind(Value::Text(station.clone()));
        sql += &format!(" AND station_id = {p}");
    }
    if let Some((at, sha)) = &s.after {
        let (a, b) = (bind(Value::Int(*at)), bind(Value::Text(sha.clone())));
        sql += &format!(" AND (uploaded_at, sha256) < ({a}, {b})");
    }
    for w in &s.words {
        let mut prefixes = vec![w.clone()];
        if w.len() >= MIN_HEX_PREFIX && w.bytes().all(|b| b.is_ascii_hexdigit()) {
            prefixes.push(format!("{HEX_MARK}{w}"));
        }
        let ranges: Vec<String> = prefixes
            .into_iter()
            .map(|p| {
                // Every term that begins with `p` sorts below `p` followed by the largest character.
                let hi = bind(Value::Text(format!("{p}{}", char::MAX)));
                let lo = bind(Value::Text(p));
                format!("(term >= {lo} AND term < {hi})")
            })
            .collect();
        sql += &format!(
            " AND sha256 IN (SELECT sha256 FROM certificate_terms WHERE {})",
            ranges.join(" OR ")
        );
    }
    let limit = bind(Value::Int(i64::from(s.limit)));
    sql += &format!(" ORDER BY uploaded_at DESC, sha256 DESC LIMIT {limit}");
    (sql, values)
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
    fn user_text_is_bound_never_part_of_the_sql() {
        let s = Search {
            words: vec!["x' or 1=1 --".into()],
            station: Some("st'; drop table certificates".into()),
            status: Some(CertificateStatus::Active),
            limit: 51,
            after: Some((5, "ff".into())),
        };
        let (sql, values) = query(&s, "sha256", '$');
        assert!(!sql.contains('\''), "{sql}");
        assert!(!sql.contains("drop"), "{sql}");
        assert_eq!(values.len(), 7);
        assert!(sql.ends_with("LIMIT $7"), "{sql}");
    }
}
