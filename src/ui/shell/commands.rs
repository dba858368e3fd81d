//! What the shell does with a screen's command and with a reader worker's event.

use super::*;

impl StationApp {
    pub(super) fn on_job_event(&mut self, reader: &str, event: JobEvent) {
        let Some(origin) = self.pane(reader).map(|p| p.origin) else {
            return;
        };
        let configured = self.link_for(origin).status.configured;
        let Some(p) = self.pane_mut(reader) else {
            return;
        };
        let follow = p.on_job_event(event, configured);
        if follow.inspect {
            self.inspect(reader);
        }
        if follow.sync || follow.replaced.is_some() {
            self.link_for(origin).submit(ConsoleJob::SyncNow);
        }
        if follow.replaced.is_some() {
            self.audit.stale();
        }
        if let Some(check) = follow.checked {
            self.checks.insert(0, (now(), check));
            self.checks.truncate(200);
        }
        if follow.enrolled {
            self.desk.cards_done += 1;
        }
    }

    /// The console a reader's certificates go to: the demo card's go to the demo
    /// console only, never to the one in the settings.
    pub(super) fn link_for(&self, origin: Origin) -> &ConsoleLink {
        match origin {
            Origin::Demo => &self.demo_console,
            Origin::Pcsc | Origin::Attached => &self.console,
        }
    }

    /// Queue an enrolled card's certificate for its console.
    pub(super) fn upload(&self, origin: Origin, outcome: &EnrollOutcome) {
        // The demo card's uploads come from the demo station, as its certificate says.
        let station_id = match (origin, self.readers.demo_station(&self.config)) {
            (Origin::Demo, Some((_, demo))) => demo.station_id(),
            _ => self.station_id.clone(),
        };
        self.link_for(origin).submit(ConsoleJob::Upload {
            fingerprint: outcome.fingerprint.clone(),
            request: Box::new(UploadRequest {
                certificate: to_pem(&outcome.certificate_der),
                card_serial: outcome.card_serial,
                chuid_guid: Some(outcome.chuid_guid.clone()),
                slot: Some(outcome.slot.short().to_string()),
                label: outcome.label.clone(),
                operator: self.config.operator(),
                station_id,
                attestation: None,
            }),
        });
    }

    /// Submit `command` from a screen showing `reader` (or no reader).
    pub(super) fn run(&mut self, reader: &str, command: Command) {
        let origin = self.pane(reader).map(|p| p.origin).unwrap_or(Origin::Pcsc);
        // The demo card's records live in the demo's own database.
        let (paths, config) = match (origin, self.readers.demo_station(&self.config)) {
            (Origin::Demo, Some(demo)) => demo,
            _ => (self.paths.clone(), self.config.clone()),
        };
        match command {
            Command::Job(job) => {
                if let Some(p) = self.pane_mut(reader) {
                    p.worker.submit(job);
                }
            }
            Command::Cancel => {
                if let Some(p) = self.pane_mut(reader) {
                    p.worker.cancel();
                }
            }
            Command::Inspect => self.inspect(reader),
            Command::Upload(outcome) => self.upload(origin, &outcome),
            Command::Revoke {
                fingerprint,
                reason,
            } => self.link_for(origin).submit(ConsoleJob::Revoke {
                fingerprint,
                reason,
            }),
            Command::SyncConsole => self.link_for(origin).submit(ConsoleJob::SyncNow),
            Command::SearchConsole {
                purpose,
                query,
                more,
            } => self.link_for(origin).submit(ConsoleJob::Search {
                purpose,
                query,
                more,
            }),
            Command::AcceptBundleReset(chain) => self
                .link_for(origin)
                .submit(ConsoleJob::AcceptBundleReset { chain }),
            Command::Export {
                der,
                name,
                fingerprint,
            } => {
                tasks::export_certificate(&self.outlet, reader.to_string(), fingerprint, der, name)
            }
            Command::LookUp(fingerprint) => {
                tasks::look_up(&self.outlet, paths, config, fingerprint)
            }
            Command::RunDiagnostics => {
                // With the demo card shown, its station (records, demo console) is the one
                // diagnosed, and the demo card is checked like a card in a reader.
                let demo = self.readers.demo_reader();
                let (paths, config) = match (&demo, self.readers.demo_station(&self.config)) {
                    (Some(_), Some(demo_station)) => demo_station,
                    _ => (self.paths.clone(), self.config.clone()),
                };
                let cards = demo
                    .map(crate::app::card_source::CardSource::Virtual)
                    .into_iter()
                    .collect();
                tasks::diagnostics(&self.outlet, paths, config, cards)
            }
            Command::SaveDiagnostics => {
                if let Some(report) = self.diag.report.as_deref().cloned() {
                    tasks::save_diagnostics(
                        &self.outlet,
                        self.paths.clone(),
                        self.config.clone(),
                        report,
                    );
                }
            }
            Command::LoadAudit => tasks::load_audit(&self.outlet, paths, config),
            Command::LoadCardEvents(fingerprint) => self
                .link_for(origin)
                .submit(ConsoleJob::CardEvents { fingerprint }),
        }
    }
}
