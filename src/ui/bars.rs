//! The top bar (desk mode, the console link, the outbox, the theme) and the status
//! bar (station, operator, card reader service, notices).

use eframe::egui;

use crate::app::console_worker::ConsoleStatus;

use super::style;

pub struct TopBar<'a> {
    pub console: &'a ConsoleStatus,
    /// The selected reader's cards go to the window's demo console.
    pub demo_console: bool,
    pub cards_done: u32,
    pub show_outbox: bool,
    pub dark: bool,
}

pub enum TopAction {
    ToggleOutbox,
    ToggleTheme,
}

pub fn top(ui: &mut egui::Ui, v: &TopBar<'_>, desk_mode: &mut bool) -> Option<TopAction> {
    let c = v.console;
    let text = match (v.demo_console, c.configured, c.reachable) {
        (true, false, _) => "Demo console: starting…",
        (true, true, Some(true)) => "Demo console: running in this window",
        (true, true, _) => "Demo console: connecting…",
        (false, false, _) => "Console: not set up",
        (false, true, None) => "Console: connecting…",
        (false, true, Some(true)) => "Console: reachable",
        (false, true, Some(false)) => "Console: unreachable",
    };
    let warn = c.reachable == Some(false);
    let hover = if v.demo_console {
        "A throw-away console for the demo card only, on this computer; it and everything it holds go when the window closes"
    } else if warn {
        "Uploads wait in the outbox and go out when the console answers"
    } else {
        "Uploads go to the management console; the trust bundle comes back"
    };
    let mut action = None;
    egui::Panel::top("top").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading("Cardstation");
            ui.separator();
            ui.checkbox(desk_mode, "Desk mode").on_hover_text(
                "Many cards in a row: after a card is done, remove it and insert the next blank card",
            );
            ui.label(format!("Cards done this session: {}", v.cards_done));
            ui.separator();
            let colour = if warn {
                ui.visuals().warn_fg_color
            } else {
                ui.visuals().text_color()
            };
            ui.colored_label(colour, text).on_hover_text(hover);
            if ui
                .selectable_label(v.show_outbox, format!("Outbox: {}", c.pending()))
                .on_hover_text("Uploads and revocations waiting for the console")
                .clicked()
            {
                action = Some(TopAction::ToggleOutbox);
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let label = if v.dark { "Light theme" } else { "Dark theme" };
                if ui.button(label).clicked() {
                    action = Some(TopAction::ToggleTheme);
                }
            });
        });
    });
    action
}

pub struct StatusBar<'a> {
    pub station_id: &'a str,
    pub operator: &'a str,
    pub pcsc_problem: bool,
    pub demo_only: bool,
    pub data_dir: &'a std::path::Path,
    pub notice: Option<&'a str>,
}

/// Draw the status bar; true when the operator dismissed the notice.
pub fn status(ui: &mut egui::Ui, v: &StatusBar<'_>) -> bool {
    let mut dismissed = false;
    egui::Panel::bottom("status").show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("Station {}", v.station_id));
            ui.separator();
            ui.label(format!("Operator {}", v.operator));
            ui.separator();
            if v.pcsc_problem {
                ui.colored_label(ui.visuals().error_fg_color, "PC/SC service: not available");
            } else if v.demo_only {
                ui.label("Demo mode");
            } else {
                ui.label("PC/SC service: running");
            }
            ui.separator();
            ui.label(format!("Data {}", v.data_dir.display()));
            if let Some(notice) = v.notice {
                ui.separator();
                style::warn(ui, notice);
                dismissed = ui.small_button("Dismiss").clicked();
            }
        });
    });
    dismissed
}
