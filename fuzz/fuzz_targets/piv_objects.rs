#![no_main]
use cardstation_piv::objects::{CertificateObject, Chuid, Discovery};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Chuid::parse(data);
    let _ = CertificateObject::parse(data);
    let _ = Discovery::parse(data);
    let _ = cardstation_card::apdu::Response::parse(data).map(|r| (r.sw.meaning(), r.sw.retries_left()));
});
