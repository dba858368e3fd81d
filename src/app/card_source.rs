//! The one way the station opens a card: by PC/SC reader name or the built-in
//! virtual card, inside an exclusive transaction. The window's reader workers and
//! every CLI command go through [`CardSource`], so reader resolution, transactions,
//! resets and reconnects behave the same everywhere.

use cardstation_card::{CardError, Transport};
use cardstation_pcsc::Pcsc;
use cardstation_virtual_card::VirtualReader;

/// Where a reader's card is.
#[derive(Clone)]
pub enum CardSource {
    /// A PC/SC reader, by its full name.
    Pcsc(String),
    /// The built-in virtual card (demo reader, tests).
    Virtual(VirtualReader),
}

impl CardSource {
    /// A PC/SC reader given as an exact name or a part matching exactly one reader.
    pub fn pcsc(wanted: &str) -> Result<Self, CardError> {
        let pcsc = Pcsc::establish()?;
        Ok(CardSource::Pcsc(pcsc.resolve(wanted)?))
    }

    pub fn name(&self) -> String {
        match self {
            CardSource::Pcsc(n) => n.clone(),
            CardSource::Virtual(v) => v.reader().to_string(),
        }
    }

    /// Run `f` inside an exclusive transaction with the card (no other program can
    /// interleave commands). Every call is a fresh connection; a card that another
    /// program reset in between is reconnected (see `PcscCard::transaction`), and the
    /// work selects its application itself, so nothing from an earlier session is assumed.
    pub fn with_card<R>(&self, f: impl FnOnce(&mut dyn Transport) -> R) -> Result<R, CardError> {
        self.session(false, f)
    }

    /// Like [`with_card`](Self::with_card), with the card reset first, so PIN state and
    /// tries left read as after a new insertion (PIN care wants exactly that).
    pub fn with_fresh_card<R>(
        &self,
        f: impl FnOnce(&mut dyn Transport) -> R,
    ) -> Result<R, CardError> {
        self.session(true, f)
    }

    fn session<R>(
        &self,
        fresh: bool,
        f: impl FnOnce(&mut dyn Transport) -> R,
    ) -> Result<R, CardError> {
        match self {
            CardSource::Pcsc(name) => {
                let pcsc = Pcsc::establish()?;
                let mut card = pcsc.connect(name)?;
                if fresh {
                    card.reset()?;
                }
                let mut tx = card.transaction()?;
                Ok(f(&mut tx))
            }
            CardSource::Virtual(v) => {
                if fresh {
                    v.reset()?;
                }
                let mut v = v.clone();
                Ok(f(&mut v))
            }
        }
    }
}
