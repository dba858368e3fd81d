//! The instructions the PIV application sends (SP 800-73-4 part 2, and the YubiKey
//! extensions real cards answer), each with its byte and its name for traces.

use cardstation_card::apdu::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ins {
    Select,
    GetData,
    PutData,
    Verify,
    ChangeReferenceData,
    ResetRetryCounter,
    GenerateAsymmetricKeyPair,
    GeneralAuthenticate,
    /// YubiKey 5.3+: key and PIN metadata.
    GetMetadata,
    /// YubiKey: the device serial number.
    GetSerial,
    /// YubiKey: the PIV application version.
    GetVersion,
    /// YubiKey: set the management key.
    SetManagementKey,
    /// YubiKey: reset the PIV application (only with PIN and PUK blocked).
    Reset,
    /// YubiKey: set the PIN and PUK try counters.
    SetPinRetries,
    /// YubiKey 4.3+: a certificate for a key generated on the card, signed by its F9 key.
    Attest,
}

impl Ins {
    pub const ALL: [Ins; 15] = [
        Ins::Select,
        Ins::GetData,
        Ins::PutData,
        Ins::Verify,
        Ins::ChangeReferenceData,
        Ins::ResetRetryCounter,
        Ins::GenerateAsymmetricKeyPair,
        Ins::GeneralAuthenticate,
        Ins::GetMetadata,
        Ins::GetSerial,
        Ins::GetVersion,
        Ins::SetManagementKey,
        Ins::Reset,
        Ins::SetPinRetries,
        Ins::Attest,
    ];

    pub fn byte(self) -> u8 {
        match self {
            Ins::Select => 0xA4,
            Ins::GetData => 0xCB,
            Ins::PutData => 0xDB,
            Ins::Verify => 0x20,
            Ins::ChangeReferenceData => 0x24,
            Ins::ResetRetryCounter => 0x2C,
            Ins::GenerateAsymmetricKeyPair => 0x47,
            Ins::GeneralAuthenticate => 0x87,
            Ins::GetMetadata => 0xF7,
            Ins::GetSerial => 0xF8,
            Ins::GetVersion => 0xFD,
            Ins::SetManagementKey => 0xFF,
            Ins::Reset => 0xFB,
            Ins::SetPinRetries => 0xFA,
            Ins::Attest => 0xF9,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Ins::Select => "SELECT",
            Ins::GetData => "GET DATA",
            Ins::PutData => "PUT DATA",
            Ins::Verify => "VERIFY",
            Ins::ChangeReferenceData => "CHANGE REFERENCE DATA",
            Ins::ResetRetryCounter => "RESET RETRY COUNTER",
            Ins::GenerateAsymmetricKeyPair => "GENERATE ASYMMETRIC KEY PAIR",
            Ins::GeneralAuthenticate => "GENERAL AUTHENTICATE",
            Ins::GetMetadata => "GET METADATA (YubiKey)",
            Ins::GetSerial => "GET SERIAL (YubiKey)",
            Ins::GetVersion => "GET VERSION (YubiKey)",
            Ins::SetManagementKey => "SET MANAGEMENT KEY (YubiKey)",
            Ins::Reset => "RESET (YubiKey)",
            Ins::SetPinRetries => "SET PIN RETRIES (YubiKey)",
            Ins::Attest => "ATTEST (YubiKey)",
        }
    }

    /// The instruction as a command (CLA 00), named in traces.
    pub fn command(self, p1: u8, p2: u8) -> Command {
        Command::new(0, self.byte(), p1, p2).named(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_distinct_and_named_in_traces() {
        let mut seen = std::collections::HashSet::new();
        for ins in Ins::ALL {
            assert!(seen.insert(ins.byte()), "{ins:?}");
            let cmd = ins.command(0, 0);
            assert_eq!(cmd.ins, ins.byte());
            assert_eq!(cmd.name, ins.name());
        }
    }
}
