//! "Who is at the desk?": asked once per session when the settings name nobody.

use eframe::egui;

pub struct OperatorPrompt {
    name: String,
    /// The login name, taken when nothing is typed.
    login: String,
    /// Focus is requested once: asking every frame resets the input method each
    /// frame (typed text never arrives) and keeps the window repainting.
    focus_requested: bool,
}

impl OperatorPrompt {
    pub fn new(login: String) -> Self {
        OperatorPrompt {
            name: String::new(),
            login,
            focus_requested: false,
        }
    }

    /// Draw the prompt; the trimmed name once the operator starts the session.
    pub fn show(&mut self, ui: &mut egui::Ui) -> Option<String> {
        let mut start = false;
        egui::CentralPanel::default().show(ui, |ui| {
            ui.add_space(120.0);
            ui.vertical_centered(|ui| {
                ui.heading("Cardstation");
                ui.label(
                    "Who is at the desk? Every action of this session is recorded under this name.",
                );
                let l = ui.label("Operator name");
                let field = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.name)
                            .hint_text(self.login.as_str())
                            .desired_width(240.0),
                    )
                    .labelled_by(l.id);
                if !self.focus_requested {
                    field.request_focus();
                    self.focus_requested = true;
                }
                let ok = !self.chosen().is_empty();
                let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
                let clicked = ui
                    .add_enabled(ok, egui::Button::new("Start session"))
                    .clicked();
                start = ok && (clicked || enter);
                if !ok {
                    ui.label("Type your name to start.");
                } else if self.name.trim().is_empty() {
                    ui.label(format!("Press Enter to start as {}.", self.login));
                }
            });
        });
        start.then(|| self.chosen())
    }

    fn chosen(&self) -> String {
        match self.name.trim() {
            "" => self.login.trim().to_string(),
            typed => typed.to_string(),
        }
    }
}
