//! The site every end-to-end test runs against, set up once for the station's tests
//! and the gateway's alike: the reference console as a real process ([`Console`]) on
//! SQLite or a throw-away PostgreSQL server ([`TestDb`], [`pg`]), the administrator's
//! commands on its host, and the identities it issues with `identity add`
//! ([`Site::add`]: a directory with the credential and the settings file a station or
//! gateway is configured from). The station's and the gateway's own helpers (a
//! configured station, a gateway daemon) stay beside their tests and build on this.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod binaries;
pub mod console;
pub mod db;
pub mod pg;
pub mod role;
pub mod site;

pub use binaries::{binary, free_port};
pub use console::Console;
pub use db::{Backend, TestDb};
pub use role::Role;
pub use site::Site;
