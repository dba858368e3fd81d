//! Operator workflows as plain functions and state machines, shared by the CLI and the GUI.

pub mod card_status;
pub mod console_worker;
pub mod enroll;
pub mod reader_worker;
pub mod site_keys;
pub mod spot_check;
pub mod station;
