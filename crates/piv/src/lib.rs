//! The PIV card application (NIST SP 800-73-4): typed slots and algorithms,
//! data objects, and a session with one method per card command.

pub mod error;
pub mod management_key;
pub mod objects;
pub mod pin;
pub mod session;
pub mod slot;

pub use error::PivError;
pub use management_key::ManagementKey;
pub use pin::Pin;
pub use session::{KeyMetadata, PinStatus, PivSession};
pub use slot::{Algorithm, PinReference, Slot};
