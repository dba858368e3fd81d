//! `cardstation-gateway`: the authentication agent a Linux gateway runs. It waits for a
//! card (SCardGetStatusChange), runs the station's own check on it (crate
//! `cardstation-verifier`) against the console's signed trust bundle, runs the
//! configured action, and reports the decision to the console through a persistent queue.

pub mod action;
pub mod bundle;
pub mod client;
pub mod config;
pub mod decision;
pub mod gateway;
pub mod queue;
