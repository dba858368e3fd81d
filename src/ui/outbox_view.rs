//! The console link at a glance: what waits for the console, and the trust bundle.
//! A floating window, so opening it pushes nothing else around.

use eframe::egui;

use crate::app::console_worker::ConsoleStatus;
use cardstation_pki::certificate::format_unix;

use super::command::Command;
use super::style;

pub struct OutboxView<'a> {
    pub status: &'a ConsoleStatus,
    /// When this status arrived (the bundle's age is counted from then).
    pub received_at: i64,
    pub demo: bool,
}

pub fn show(ctx: &egui::Context, open: &mut bool, v: &OutboxView<'_>) -> Option<Command> {
    let mut command = None;
    let title = if v.demo {
        "Demo console outbox"
    } else {
        "Console outbox"
    };
    egui::Window::new(title)
        .open(open)
        .anchor(egui::Align2::RIGHT_TOP, [-12.0, 44.0])
        .resizable(false)
        .collapsible(false)
        .default_width(520.0)
        .show(ctx, |ui| {
            if ui.button("Sync now").clicked() {
                command = Some(Command::SyncConsole);
            }
            let c = v.status;
            if !c.configured {
                style::wrapped(ui, "No management console is set up at this station: certificates stay here until your administrator connects one.");
            }
            if let Some(e) = &c.last_error {
                let (plain, technical) = style::operator_words(e);
                style::warn(ui, plain);
                style::technician_details(ui, "outbox-error", &[technical]);
            }
            if let Some((chain, version)) = &c.reset_offered {
                if let Some(c) = reset_offer(ui, chain, *version) {
                    command = Some(c);
                }
            }
            match &c.bundle {
                Some(b) => {
                    style::wrapped(
                        ui,
                        format!(
                            "Trust bundle version {}: {}, issued {}, checked {}{}",
                            b.version,
                            b.counts(),
                            format_unix(b.issued_at),
                            format_unix(v.received_at),
                            if b.expired { " — EXPIRED" } else { "" }
                        ),
                    );
                }
                None if c.configured => {
                    style::warn(ui, "No trust bundle yet: spot checks cannot tell allowed from revoked cards.");
                }
                None => {}
            }
            if c.outbox.is_empty() {
                ui.label("Nothing waiting: everything was delivered.");
                return;
            }
            egui::Grid::new("outbox")
                .num_columns(4)
                .striped(true)
                .show(ui, |ui| {
                    for i in &c.outbox {
                        ui.label(format!("{:?}", i.kind));
                        ui.label(
                            egui::RichText::new(&i.fingerprint[..16.min(i.fingerprint.len())])
                                .monospace(),
                        );
                        ui.label(format!("{} ({} attempts)", i.state, i.attempts));
                        ui.label(if i.last_error.is_some() { "console did not answer" } else { "" });
                        ui.end_row();
                    }
                });
        });
    command
}

/// The console started a new trust-bundle chain: taken only after the operator says
/// so twice (the console administrator announces the chain id).
fn reset_offer(ui: &mut egui::Ui, chain: &str, version: u64) -> Option<Command> {
    let short = &chain[..8.min(chain.len())];
    style::warn(
        ui,
        format!(
            "The console started a new trust-bundle chain ({short}…, version {version}). Spot checks keep using the bundle held until you accept it. Accept only if your console administrator announced chain {short}."
        ),
    );
    let id = egui::Id::unique("accept-bundle-reset").with(chain);
    let confirming = ui.data(|d| d.get_temp::<bool>(id)).unwrap_or(false);
    let mut command = None;
    if !confirming {
        if ui.button(format!("Accept chain {short}…")).clicked() {
            ui.data_mut(|d| d.insert_temp(id, true));
        }
    } else {
        style::wrapped(
            ui,
            format!("Accept chain {short}? Revocations the console lost before its reset are undone here unless they were made again."),
        );
        ui.horizontal(|ui| {
            if ui.button(format!("Yes, accept {short}")).clicked() {
                command = Some(Command::AcceptBundleReset(chain.to_string()));
                ui.data_mut(|d| d.insert_temp(id, false));
            }
            if ui.button("Cancel").clicked() {
                ui.data_mut(|d| d.insert_temp(id, false));
            }
        });
    }
    command
}
