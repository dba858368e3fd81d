#![no_main]
use cardstation_protocol::messages::{BundlePayload, CertificateRecord, ErrorBody, SignedBundle, UploadRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<CertificateRecord>(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
    let _ = serde_json::from_slice::<SignedBundle>(data);
    let _ = serde_json::from_slice::<BundlePayload>(data);
    let _ = serde_json::from_slice::<UploadRequest>(data);
});
