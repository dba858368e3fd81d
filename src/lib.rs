//! Cardstation: the enrollment station for PIV cards used by IoT gateways.
//!
//! This package is the station: operator workflows (`app`), the station database
//! (`store`), the console client (`console`), settings (`config`) and the window
//! (`ui`); the CLI is the binary. The layers below live in their own crates:
//! `cardstation-card` (APDU transport) ← `cardstation-pcsc` / `cardstation-virtual-card`
//! (backends) and `cardstation-piv` (the card application) ← `cardstation-pki`
//! (certificates) ← `cardstation-verifier` (the gateway's check), with
//! `cardstation-protocol` (the console contract) beside them.

pub mod app;
pub mod config;
pub mod console;
pub mod error_code;
pub mod store;
pub mod ui;
