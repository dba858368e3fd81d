//! Colours and small widgets shared by the screens.

use eframe::egui;

pub const GREEN: egui::Color32 = egui::Color32::from_rgb(0x2e, 0xa0, 0x5a);

/// The readers panel is this wide on every launch.
pub const READERS_PANEL_WIDTH: f32 = 280.0;

/// Text that wraps at the edge of the area instead of running past it.
pub fn wrapped(ui: &mut egui::Ui, text: impl Into<egui::WidgetText>) -> egui::Response {
    ui.add(egui::Label::new(text).wrap())
}

pub fn warn(ui: &mut egui::Ui, text: impl Into<String>) -> egui::Response {
    let colour = ui.visuals().warn_fg_color;
    ui.add(egui::Label::new(egui::RichText::new(text).color(colour)).wrap())
}

pub fn error(ui: &mut egui::Ui, text: impl Into<String>) -> egui::Response {
    let colour = ui.visuals().error_fg_color;
    ui.add(egui::Label::new(egui::RichText::new(text).color(colour)).wrap())
}

pub fn good(ui: &mut egui::Ui, text: impl Into<String>) -> egui::Response {
    ui.add(egui::Label::new(egui::RichText::new(text).color(GREEN)).wrap())
}

/// Commands, error numbers and timings: out of the operator's way, there for a technician.
pub fn technician_details(ui: &mut egui::Ui, id: &str, lines: &[String]) {
    if lines.iter().all(|l| l.is_empty()) {
        return;
    }
    egui::CollapsingHeader::new("Details for technicians")
        .id_salt(id)
        .show(ui, |ui| {
            for l in lines.iter().filter(|l| !l.is_empty()) {
                ui.add(egui::Label::new(egui::RichText::new(l).monospace().small()).wrap());
            }
        });
}

/// A failure as the operator reads it: the sentence that says what happened and what
/// to do, with OS error numbers and the like moved into the technician details.
pub fn failure(ui: &mut egui::Ui, id: &str, message: &str) {
    let (plain, technical) = operator_words(message);
    error(ui, plain);
    technician_details(ui, id, &[technical]);
}

/// Split a message into what an operator reads and the technical tail ("os error 111",
/// shell commands), which goes to the details.
pub fn operator_words(message: &str) -> (String, String) {
    let mut plain = message.to_string();
    let mut technical = Vec::new();
    if let Some(i) = plain.find(" (os error") {
        if let Some(end) = plain[i..].find(')') {
            technical.push(plain[i + 2..i + end].to_string());
            plain.replace_range(i..i + end + 1, "");
        }
    }
    if plain.contains("os error") || plain.contains("error sending request") {
        technical.push(message.to_string());
    }
    for marker in [
        " Give it with --pin-stdin",
        " (--force on the command line)",
    ] {
        if let Some(i) = plain.find(marker) {
            technical.push(plain[i + 1..].to_string());
            plain.replace_range(i..i + marker.len(), "");
        }
    }
    let plain = as_sentence(plain.trim());
    if technical.is_empty() {
        (plain, String::new())
    } else {
        (plain, technical.join("\n"))
    }
}

/// A message as a sentence on screen: capital first letter, closing full stop (the
/// same messages are lower-case clauses on the command line, after "error: ").
fn as_sentence(text: &str) -> String {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let mut out: String = first.to_uppercase().chain(chars).collect();
    if !out.ends_with(['.', '!', '?', ':']) {
        out.push('.');
    }
    out
}

/// One "Copied" answer per copy button, until something else happens.
#[derive(Default)]
pub struct CopyFeedback {
    copied: Option<String>,
}

impl CopyFeedback {
    /// A button that copies `text`, then says so next to itself.
    pub fn button(&mut self, ui: &mut egui::Ui, label: &str, text: &str) {
        if ui.button(label).clicked() {
            ui.ctx().copy_text(text.to_string());
            self.copied = Some(text.to_string());
        }
        if self.copied.as_deref() == Some(text) {
            ui.colored_label(GREEN, "Copied");
        }
    }

    pub fn clear(&mut self) {
        self.copied = None;
    }
}
