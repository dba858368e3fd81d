//! The readers panel: every reader, its card and what it is doing, at a glance;
//! the demo card's buttons; the card reader service's state.

use eframe::egui;

use super::pane::ReaderPane;
use super::style::{self, READERS_PANEL_WIDTH};

/// What the operator asked of the panel.
pub enum PanelAction {
    Select(String),
    DemoRemove,
    DemoInsert,
    DemoInsertBlank,
}

pub struct PanelView<'a> {
    pub readers: &'a [ReaderPane],
    pub selected: Option<&'a str>,
    pub demo_present: Option<bool>,
    pub demo_starting: bool,
    pub pcsc_problem: Option<&'a str>,
}

pub fn show(ui: &mut egui::Ui, v: &PanelView<'_>) -> Option<PanelAction> {
    let mut action = None;
    egui::Panel::left("readers")
        .resizable(false)
        .exact_size(READERS_PANEL_WIDTH)
        .show(ui, |ui| {
            ui.heading("Readers");
            ui.add_space(4.0);
            if let Some(problem) = v.pcsc_problem {
                style::warn(ui, "Card readers are not available");
                style::wrapped(
                    ui,
                    "The card reader service of this computer is not running. Ask your administrator to start it.",
                );
                if v.demo_present.is_some() {
                    style::wrapped(ui, "Until then you can try everything with the demo card.");
                }
                style::technician_details(ui, "pcsc-problem", &[problem.to_string()]);
                ui.add_space(4.0);
            }
            if v.readers.is_empty() {
                ui.label(if v.demo_starting {
                    "Starting the demo card…"
                } else {
                    "No readers. Plug in a card reader."
                });
            }
            for pane in v.readers {
                let selected = v.selected == Some(pane.name.as_str());
                let title = if pane.is_demo {
                    format!("{} — DEMO", pane.name)
                } else {
                    pane.name.clone()
                };
                let response = ui
                    .add_sized(
                        [ui.available_width(), 0.0],
                        egui::Button::selectable(selected, format!("{title}\n{}", pane.summary())).wrap(),
                    )
                    .on_hover_text(if pane.is_demo {
                        "A virtual PIV card built into the station, for trying every step without hardware. Nothing here affects a real card or the station's records."
                    } else {
                        "A card reader"
                    });
                if response.clicked() {
                    action = Some(PanelAction::Select(pane.name.clone()));
                }
                ui.add_space(4.0);
            }
            if let Some(present) = v.demo_present {
                ui.add_space(8.0);
                ui.label("Demo card:");
                ui.horizontal_wrapped(|ui| {
                    if present {
                        if ui
                            .button("Remove card")
                            .on_hover_text("Pull the demo card out of its reader")
                            .clicked()
                        {
                            action = Some(PanelAction::DemoRemove);
                        }
                    } else if ui
                        .button("Insert card")
                        .on_hover_text("Put the demo card back into its reader")
                        .clicked()
                    {
                        action = Some(PanelAction::DemoInsert);
                    }
                    if ui
                        .button("Insert new blank card")
                        .on_hover_text("Replace the demo card with a new blank one")
                        .clicked()
                    {
                        action = Some(PanelAction::DemoInsertBlank);
                    }
                });
                ui.add_space(4.0);
                style::wrapped(ui, egui::RichText::new("The demo card's PIN is 123456, its PUK 12345678.").small());
            }
        });
    action
}
