//! `GET /v1/certificates?search=&status=&station=&limit=&cursor=`: find certificates
//! by holder label, subject, card serial, CHUID GUID, fingerprint prefix or station,
//! newest first, a bounded page at a time. Stations (for the operator at the desk)
//! and the administrator (`cardstation-console cards list`) share this code.
//!
//! A search reads what the trust bundle does not carry (subjects, labels, serials),
//! so it is limited to registered, unrevoked stations like every other resource,
//! every page is capped, and the words are bound values, never SQL.

#![allow(clippy::result_large_err)]

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use cardstation_protocol::messages::{
    is_fingerprint, search_words, SearchPage, SearchQuery, SEARCH_DEFAULT_LIMIT,
    SEARCH_MAX_EXPIRING_DAYS, SEARCH_MAX_LIMIT, SEARCH_MAX_TEXT, SEARCH_MAX_WORDS,
};

use crate::access::Station;
use crate::http::{error, store_error, AppState};
use crate::storage::valid_identity_name;
use crate::storage::{Search, Store, StoreError};

/// Why a search was refused (a 400, with what to do).
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{message}")]
    Bad { code: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn bad(code: &'static str, message: impl Into<String>) -> SearchError {
    SearchError::Bad {
        code,
        message: message.into(),
    }
}

/// The search `q` asks for, checked and bounded.
pub fn parse(q: &SearchQuery) -> Result<Search, SearchError> {
    let text = q.search.as_deref().unwrap_or_default();
    if text.len() > SEARCH_MAX_TEXT {
        return Err(bad(
            "bad-search",
            format!("the search text is longer than {SEARCH_MAX_TEXT} bytes"),
        ));
    }
    let words = search_words(text);
    if words.len() > SEARCH_MAX_WORDS {
        return Err(bad(
            "bad-search",
            format!("give at most {SEARCH_MAX_WORDS} words to search for"),
        ));
    }
    let limit = q.limit.unwrap_or(SEARCH_DEFAULT_LIMIT);
    if !(1..=SEARCH_MAX_LIMIT).contains(&limit) {
        return Err(bad(
            "bad-limit",
            format!("limit must be between 1 and {SEARCH_MAX_LIMIT}"),
        ));
    }
    if let Some(st) = &q.station {
        if !valid_identity_name(st) {
            return Err(bad("bad-station", format!("{st:?} is not a station name")));
        }
    }
    let after = match &q.cursor {
        None => None,
        Some(c) => Some(parse_cursor(c).ok_or_else(|| {
            bad(
                "bad-cursor",
                "the cursor is not one this console gave out; start from the first page",
            )
        })?),
    };
    let ends_by = match q.expiring_days {
        None => None,
        Some(d) if (1..=SEARCH_MAX_EXPIRING_DAYS).contains(&d) => {
            Some(time::OffsetDateTime::now_utc().unix_timestamp() + i64::from(d) * 86_400)
        }
        Some(_) => {
            return Err(bad(
                "bad-expiring",
                format!("expiring_days must be between 1 and {SEARCH_MAX_EXPIRING_DAYS}"),
            ))
        }
    };
    Ok(Search {
        words,
        status: q.status,
        station: q.station.clone(),
        limit,
        after,
        ends_by,
        attested: q.attested,
    })
}

/// `{uploaded_at}.{sha256}` of the last record of a page.
fn cursor(uploaded_at: i64, sha256: &str) -> String {
    format!("{uploaded_at}.{sha256}")
}

fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (at, sha) = c.split_once('.')?;
    let at: i64 = at.parse().ok()?;
    is_fingerprint(sha).then(|| (at, sha.to_string()))
}

/// One page of the search `q`.
pub async fn run(store: &Store, q: &SearchQuery) -> Result<SearchPage, SearchError> {
    let mut search = parse(q)?;
    let limit = search.limit as usize;
    // One more than a page: whether there is a next one.
    search.limit += 1;
    let mut records = store.search(&search).await?;
    let next_cursor = if records.len() > limit {
        records.truncate(limit);
        records.last().map(|r| cursor(r.uploaded_at, &r.sha256))
    } else {
        None
    };
    Ok(SearchPage {
        records,
        next_cursor,
    })
}

pub async fn search(
    State(state): State<AppState>,
    Extension(Station(station)): Extension<Station>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-query",
                format!(
                    "{}; the parameters are search, status (active or revoked), station, limit and cursor",
                    e.body_text()
                ),
            )
        }
    };
    match run(state.store.as_ref(), &q).await {
        Ok(page) => {
            tracing::debug!("station {station} searched: {} records", page.records.len());
            Json(page).into_response()
        }
        Err(SearchError::Bad { code, message }) => error(StatusCode::BAD_REQUEST, code, message),
        Err(SearchError::Store(e)) => store_error(e),
    }
}
