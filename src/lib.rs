//! Cardstation: a smart-card enrollment station for PIV cards used by IoT gateways.
//!
//! Layers, each calling only the ones below it:
//! `app` (workflows) → `pki` (certificates) → `piv` (card application) → `card` (transport);
//! `store` keeps the station database; `config` the settings; `ui` is the window.

pub mod app;
pub mod card;
pub mod config;
pub mod console;
pub mod console_server;
pub mod piv;
pub mod pki;
pub mod store;
pub mod ui;
pub mod util;
