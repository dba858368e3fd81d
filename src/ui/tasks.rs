//! Work the window starts off the UI thread (files, the station database, the
//! doctor); each sends its result back as an `AppEvent`.

use std::path::PathBuf;

use crate::app::card_source::CardSource;
use crate::app::doctor::{diagnose_with, write_bundle, DoctorReport, Finding, Level};
use crate::app::station::Station;
use crate::config::{Config, Paths};

use super::events::{AppEvent, Outlet};
use super::export::{self, FileKind};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Save a certificate through the save dialog (or to the Documents folder).
pub fn export_certificate(
    outlet: &Outlet,
    reader: String,
    fingerprint: String,
    der: Vec<u8>,
    name: PathBuf,
) {
    let as_der = name.extension().is_some_and(|e| e == "der");
    outlet.spawn("export", move || AppEvent::Exported {
        reader,
        fingerprint,
        result: export::save(&FileKind::certificate(as_der), &name, |path| {
            export::write_certificate(path, &der, as_der)
        }),
    });
}

/// The station's record of a certificate (replace shows the old card).
pub fn look_up(outlet: &Outlet, paths: Paths, config: Config, fingerprint: String) {
    outlet.spawn("old card", move || AppEvent::OldCard {
        record: Station::with_config(paths, config)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                s.store
                    .enrollment_by_fingerprint(&fingerprint)
                    .map_err(|e| e.to_string())
            })
            .map(|r| r.map(Box::new)),
        fingerprint,
    });
}

/// The doctor talks to pcscd, the cards and the network.
/// Diagnose the station at `paths`; `other_cards` are cards not behind PC/SC that the
/// window shows (the demo card), checked too.
pub fn diagnostics(outlet: &Outlet, paths: Paths, config: Config, other_cards: Vec<CardSource>) {
    outlet.spawn("doctor", move || {
        AppEvent::Diagnosed(Box::new(match Station::with_config(paths, config) {
            Ok(station) => diagnose_with(&station, None, other_cards),
            Err(e) => DoctorReport {
                findings: vec![Finding {
                    area: "station".into(),
                    level: Level::Fail,
                    what: e.to_string(),
                    todo: "check the data directory".into(),
                }],
                cards: Vec::new(),
                traces: Vec::new(),
            },
        }))
    });
}

/// One file for a technician: findings, card reports, traces, recent audit rows.
pub fn save_diagnostics(outlet: &Outlet, paths: Paths, config: Config, report: DoctorReport) {
    outlet.spawn("bundle", move || {
        let name = format!("cardstation-diagnostics-{}.json", now());
        let kind = FileKind {
            title: "Save diagnostic bundle",
            filters: vec![("JSON", &["json"][..])],
        };
        AppEvent::BundleSaved(export::save(&kind, name.as_ref(), |path| {
            Station::with_config(paths, config)
                .map_err(|e| e.to_string())
                .and_then(|station| write_bundle(path, &station, &report))
        }))
    });
}

/// Read the audit trail and check its chain.
pub fn load_audit(outlet: &Outlet, paths: Paths, config: Config) {
    outlet.spawn("audit", move || {
        AppEvent::Audit(
            Station::with_config(paths, config)
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    let rows = s.store.audit_rows().map_err(|e| e.to_string())?;
                    let verdict = s.store.verify_audit().map_err(|e| e.to_string())?;
                    Ok((rows, verdict))
                }),
        )
    });
}
