#![no_main]
use cardstation_pki::certificate::{from_pem_or_der, CertificateInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(der) = from_pem_or_der(data) {
        let _ = CertificateInfo::parse(&der);
    }
    let _ = CertificateInfo::parse(data);
});
