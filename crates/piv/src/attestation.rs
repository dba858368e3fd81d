//! The YubiKey PIV attestation certificate's extensions (Yubico's arc
//! 1.3.6.1.4.1.41482.3): one definition for the card that writes them (the virtual card)
//! and the code that reads them (crates/pki/src/attestation.rs).

/// 1.3.6.1.4.1.41482.3
pub const YUBICO_ARC: [u64; 8] = [1, 3, 6, 1, 4, 1, 41482, 3];
/// Firmware version: 3 bytes (major, minor, patch).
pub const EXT_FIRMWARE: u64 = 3;
/// The card's serial number: a DER INTEGER.
pub const EXT_SERIAL: u64 = 7;
/// PIN policy, touch policy: 2 bytes (GET METADATA's encoding).
pub const EXT_POLICY: u64 = 8;
/// Form factor: 1 byte.
pub const EXT_FORM_FACTOR: u64 = 9;

/// The OID of attestation extension `n` (one of the `EXT_` values).
pub fn extension_oid(n: u64) -> Vec<u64> {
    let mut oid = YUBICO_ARC.to_vec();
    oid.push(n);
    oid
}
