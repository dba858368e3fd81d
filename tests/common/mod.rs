//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use cardstation::app::enroll::{EnrollContext, EnrollRequest};
use cardstation::app::site_keys::SiteSecret;
use cardstation::store::Store;
use cardstation_card::{CardError, Transport};
use cardstation_piv::Slot;
use cardstation_virtual_card::VirtualReader;
use cardstation_virtual_card::{CardStorage, VirtualCard};

/// A station with its own temporary data directory.
pub struct TestStation {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub secret: SiteSecret,
}

impl TestStation {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("station.db")).expect("store");
        let secret = SiteSecret::load_or_create(&dir.path().join("site-secret")).expect("secret");
        TestStation { dir, store, secret }
    }

    pub fn ctx(&self) -> EnrollContext<'_> {
        EnrollContext {
            store: &self.store,
            site_secret: &self.secret,
            operator: "tester",
            station_id: "test-station",
            issuer: None,
            require_attestation: false,
        }
    }
}

pub fn virtual_reader() -> VirtualReader {
    let card = VirtualCard::start(CardStorage::Memory).expect("virtual card");
    VirtualReader::new(Arc::new(card), "Test virtual reader")
}

pub fn request(slot: Slot) -> EnrollRequest {
    EnrollRequest {
        slot,
        subject_template: "CN=test device {guid},O=Cardstation tests".into(),
        valid_days: 30,
        pin: None,
        force: false,
        max_object_size: None,
        label: None,
        upload: None,
    }
}

/// What the fault injector does at the chosen APDU.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    CardRemoved,
    TransmitError,
    Garbage,
    Truncated,
}

/// Wraps a transport and fails its `k`-th APDU (1-based) with `fault`.
pub struct FaultyTransport<T: Transport> {
    pub inner: T,
    pub fail_at: usize,
    pub fault: Fault,
    pub count: usize,
}

impl<T: Transport> FaultyTransport<T> {
    pub fn new(inner: T, fail_at: usize, fault: Fault) -> Self {
        FaultyTransport {
            inner,
            fail_at,
            fault,
            count: 0,
        }
    }
}

impl<T: Transport> Transport for FaultyTransport<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        self.count += 1;
        if self.count == self.fail_at {
            return match self.fault {
                Fault::CardRemoved => Err(CardError::CardRemoved {
                    reader: self.inner.reader().into(),
                }),
                Fault::TransmitError => Err(CardError::Backend {
                    reader: self.inner.reader().into(),
                    detail: "PC/SC error 0x80100013: communication error".into(),
                }),
                Fault::Garbage => Ok(vec![0x42, 0x13, 0x37, 0x90, 0x00]),
                Fault::Truncated => Ok(vec![0x90]),
            };
        }
        self.inner.transmit(apdu)
    }
    fn reader(&self) -> &str {
        self.inner.reader()
    }
    fn atr(&self) -> Vec<u8> {
        self.inner.atr()
    }
}
