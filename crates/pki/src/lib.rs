//! Certificates: built with rcgen with the card as the signer, parsed with
//! x509-parser, fingerprinted, imported and exported as PEM/DER.

pub mod attestation;
pub mod card_signer;
pub mod certificate;
pub mod rules;
pub mod subject;

pub use card_signer::CardSigner;
pub use certificate::{fingerprint, CertError, CertificateInfo, CertificateProfile};
