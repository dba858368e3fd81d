//! The PIV card application (NIST SP 800-73-4): typed slots and algorithms,
//! data objects, and a session with one method per card command.

pub mod attestation;
pub mod error;
pub mod ins;
pub mod management_key;
pub mod objects;
pub mod pin;
pub mod session;
pub mod slot;

pub use error::PivError;
pub use ins::Ins;
pub use management_key::ManagementKey;
pub use objects::Guid;
pub use pin::Pin;
pub use session::{
    Attestation, KeyMetadata, KeyOrigin, PinPolicy, PinStatus, PivSession, TouchPolicy, TryCounter,
};
pub use slot::{Algorithm, PinReference, Slot};
