//! One frame of the window: the bars, the readers panel, the outbox and the screen
//! of the selected reader.

use super::*;

impl StationApp {
    /// One frame: take in events, then draw. Used by eframe and by the UI tests.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        if !self.view.styled {
            // A blinking cursor would repaint the window twice a second while nobody types.
            ui.ctx()
                .all_styles_mut(|s| s.visuals.text_cursor.blink = false);
            self.view.styled = true;
        }
        if let Some(prompt) = &mut self.prompt {
            if let Some(name) = prompt.show(ui) {
                self.config.station.operator = Some(name);
                self.prompt = None;
                ui.ctx().request_repaint();
            }
            return;
        }
        self.start(ui.ctx());
        self.pump(ui.ctx());
        self.watch_jobs(ui.ctx());
        ui.ctx().set_theme(if self.view.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
        self.top_bar(ui);
        self.status_bar(ui);
        let panel = PanelView {
            readers: &self.readers.panes,
            selected: self.readers.selected.as_deref(),
            demo_present: self
                .readers
                .panes
                .iter()
                .any(|p| p.is_demo)
                .then(|| self.demo_card_present()),
            demo_starting: self.readers.demo_starting(),
            pcsc_problem: self.readers.pcsc_problem.as_deref(),
        };
        match readers_panel::show(ui, &panel) {
            Some(PanelAction::Select(name)) => self.readers.selected = Some(name),
            Some(PanelAction::DemoRemove) => self.demo_remove_card(),
            Some(PanelAction::DemoInsert) => self.demo_insert_card(false),
            Some(PanelAction::DemoInsertBlank) => self.demo_insert_card(true),
            None => {}
        }
        self.outbox(ui.ctx());
        egui::CentralPanel::default().show(ui, |ui| self.main_area(ui));
    }

    pub(super) fn selected_origin(&self) -> Origin {
        self.readers
            .selected
            .as_deref()
            .and_then(|s| self.pane(s))
            .map_or(Origin::Pcsc, |p| p.origin)
    }

    pub(super) fn top_bar(&mut self, ui: &mut egui::Ui) {
        let origin = self.selected_origin();
        let console = match origin {
            Origin::Demo => &self.demo_console.status,
            Origin::Pcsc | Origin::Attached => &self.console.status,
        };
        let bar = TopBar {
            console,
            demo_console: origin == Origin::Demo,
            cards_done: self.desk.cards_done,
            show_outbox: self.view.show_outbox,
            dark: self.view.dark,
        };
        match bars::top(ui, &bar, &mut self.desk.desk_mode) {
            Some(TopAction::ToggleOutbox) => self.view.show_outbox = !self.view.show_outbox,
            Some(TopAction::ToggleTheme) => self.view.dark = !self.view.dark,
            None => {}
        }
    }

    pub(super) fn status_bar(&mut self, ui: &mut egui::Ui) {
        let operator = self.config.operator();
        let bar = StatusBar {
            station_id: &self.station_id,
            operator: &operator,
            pcsc_problem: self.readers.pcsc_problem.is_some(),
            demo_only: self.mode == ReaderMode::DemoOnly,
            data_dir: &self.paths.data_dir,
            notice: self.view.notice.as_deref(),
        };
        if bars::status(ui, &bar) {
            self.view.notice = None;
        }
    }

    pub(super) fn outbox(&mut self, ctx: &egui::Context) {
        if !self.view.show_outbox {
            return;
        }
        let origin = self.selected_origin();
        let link = self.link_for(origin);
        let view = OutboxView {
            status: &link.status,
            received_at: link.received_at,
            demo: origin == Origin::Demo,
        };
        let mut open = true;
        let command = outbox_view::show(ctx, &mut open, &view);
        self.view.show_outbox = open;
        if let Some(c) = command {
            let reader = self.readers.selected.clone().unwrap_or_default();
            self.run(&reader, c);
        }
    }

    pub(super) fn main_area(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.screen, Screen::Enroll, "Enrollment");
            ui.selectable_value(&mut self.screen, Screen::SpotCheck, "Spot check");
            ui.selectable_value(&mut self.screen, Screen::CardCare, "Card care");
            ui.selectable_value(&mut self.screen, Screen::Diagnostics, "Diagnostics");
            if ui
                .selectable_value(&mut self.screen, Screen::Audit, "Audit")
                .clicked()
            {
                self.audit.stale();
            }
            ui.selectable_value(&mut self.screen, Screen::Console, "Console");
        });
        ui.separator();
        let command = match self.screen {
            Screen::Diagnostics => egui::ScrollArea::vertical()
                .show(ui, |ui| self.diag.show(ui))
                .inner
                .map(|c| (String::new(), c)),
            Screen::Audit => {
                // The demo card's trail is the demo's own, shown while it is selected.
                let demo = self.selected_origin() == Origin::Demo;
                if self.audit.demo != demo {
                    self.audit.demo = demo;
                    self.audit.stale();
                }
                let reader = self.readers.selected.clone().unwrap_or_default();
                egui::ScrollArea::vertical()
                    .show(ui, |ui| self.audit.show(ui))
                    .inner
                    .map(|c| (reader, c))
            }
            Screen::Console => {
                // With the demo card selected, the demo console's cards.
                let origin = self.selected_origin();
                self.console_screen.show_console(origin == Origin::Demo);
                let reader = self.readers.selected.clone().unwrap_or_default();
                let status = match origin {
                    Origin::Demo => &self.demo_console.status,
                    Origin::Pcsc | Origin::Attached => &self.console.status,
                };
                let screen = &mut self.console_screen;
                egui::ScrollArea::vertical()
                    .show(ui, |ui| screen.show(ui, status))
                    .inner
                    .map(|c| (reader, c))
            }
            _ => self.reader_screen(ui),
        };
        if let Some((reader, c)) = command {
            self.run(&reader, c);
        }
    }

    /// The screens about the selected reader's card.
    pub(super) fn reader_screen(&mut self, ui: &mut egui::Ui) -> Option<(String, Command)> {
        let desk_mode = self.desk.desk_mode;
        let screen = self.screen;
        let Some(name) = self.readers.selected.clone() else {
            ui.label("No reader selected.");
            return None;
        };
        let origin = self.pane(&name)?.origin;
        let demo_console = origin == Origin::Demo;
        let console = match origin {
            Origin::Demo => &self.demo_console.status,
            _ => &self.console.status,
        };
        let history = &self.checks;
        let pane = self.readers.pane_mut(&name)?;
        let command = egui::ScrollArea::vertical()
            .show(ui, |ui| {
                let parts = pane.parts();
                let c = match screen {
                    Screen::Enroll => {
                        let cx = WizardContext {
                            card: parts.card,
                            desk_mode,
                            console,
                            demo_console,
                        };
                        let c = parts.wizard.show(ui, &cx);
                        ui.add_space(12.0);
                        ui.separator();
                        return c.or(parts.details.show(ui, &cx.card, console));
                    }
                    Screen::SpotCheck => parts.spot.show(ui, &parts.card, history),
                    Screen::CardCare => parts.care.show(ui, &parts.card, console),
                    Screen::Diagnostics | Screen::Audit | Screen::Console => None,
                };
                ui.add_space(12.0);
                ui.separator();
                c.or(parts.details.show(ui, &parts.card, console))
            })
            .inner;
        command.map(|c| (name, c))
    }
}
