//! Operator workflows as plain functions and state machines, shared by the CLI and the GUI.

pub mod attestation;
pub mod card_source;
pub mod card_status;
pub mod console_worker;
pub mod doctor;
pub mod enroll;
pub mod failure;
pub mod issuer;
pub mod management_keys;
pub mod pin_care;
pub mod reader_worker;
pub mod renew;
pub mod replace;
pub mod site_keys;
pub mod spot_check;
pub mod station;
pub mod subject_template;
