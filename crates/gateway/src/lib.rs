//! `cardstation-gateway`: the authentication agent a Linux gateway runs. It waits for a
//! card (SCardGetStatusChange), runs the station's own check on it (crate
//! `cardstation-verifier`) against the console's signed trust bundle, runs the
//! configured action, and reports the decision to the console through a persistent queue.

pub mod action;
pub mod bundle;
pub mod config;
pub mod decision;
pub mod gateway;
pub mod queue;

/// The console client, as `cardstation_gateway::client` (the path it always had); it is
/// the station's too (`cardstation-console-client`).
pub use cardstation_console_client as client;
