//! Certificates from the site's issuing CA (`[enroll] issuer = "console"`): the card
//! signs a PKCS#10 request for its new key, the console's CA answers with a
//! certificate, and the station checks that answer before anything is written to the
//! card: the card's own key, a chain to the site's CA, the rules a gateway applies.

use cardstation_pki::certificate::{from_pem_or_der, CertificateInfo};
use cardstation_pki::rules::{check_certificate, Rules, DEFAULT_MAX_LIFETIME_DAYS};
use cardstation_protocol::messages::{IssueRequest, IssuedCertificate};

use crate::console::{ConsoleClient, ConsoleError};

/// Who signs a card's request. The seam lets the workflow be tested without a console.
pub trait CertificateIssuer {
    fn issue(&self, req: &IssueRequest) -> Result<IssuedCertificate, ConsoleError>;
    /// The issuing CA the answer must chain to, when the station pins one
    /// (`[verify] issuing_ca`); otherwise the console's own answer names it.
    fn pinned_ca(&self) -> Option<&[u8]>;
}

/// The console's CA, reached with the station's client.
pub struct ConsoleIssuer {
    client: ConsoleClient,
    profile: Option<String>,
    pinned_ca: Option<Vec<u8>>,
}

impl ConsoleIssuer {
    pub fn new(client: ConsoleClient, profile: Option<String>, pinned_ca: Option<Vec<u8>>) -> Self {
        ConsoleIssuer {
            client,
            profile,
            pinned_ca,
        }
    }
}

impl CertificateIssuer for ConsoleIssuer {
    fn issue(&self, req: &IssueRequest) -> Result<IssuedCertificate, ConsoleError> {
        let mut req = req.clone();
        req.profile = self.profile.clone();
        self.client.request_certificate(&req)
    }

    fn pinned_ca(&self) -> Option<&[u8]> {
        self.pinned_ca.as_deref()
    }
}

/// The certificate in `issued`, if it is one for `card_key` that chains to the site's
/// CA and passes a gateway's rules now; else what is wrong with it.
pub fn check_issued(
    issued: &IssuedCertificate,
    card_key: &p256::PublicKey,
    pinned_ca: Option<&[u8]>,
    now: i64,
) -> Result<(Vec<u8>, CertificateInfo), String> {
    let der = from_pem_or_der(issued.certificate.as_bytes())
        .map_err(|e| format!("the console's answer is not a certificate: {e}"))?;
    let info = CertificateInfo::parse(&der)
        .map_err(|e| format!("the console's answer is not a certificate: {e}"))?;
    if info.public_key.as_ref() != Some(card_key) {
        return Err("the console's certificate is for another key than the card's".into());
    }
    let ca = match pinned_ca {
        Some(ca) => ca.to_vec(),
        None => {
            let first = issued
                .chain
                .first()
                .ok_or("the console's answer names no issuing CA")?;
            from_pem_or_der(first.as_bytes())
                .map_err(|e| format!("the console's issuing CA is not a certificate: {e}"))?
        }
    };
    let rules = Rules {
        issuing_ca: Some(&ca),
        now,
        max_lifetime_days: DEFAULT_MAX_LIFETIME_DAYS,
    };
    let failures: Vec<String> = check_certificate(&der, &rules)
        .into_iter()
        .filter(|c| !c.ok)
        .map(|c| c.message)
        .collect();
    if !failures.is_empty() {
        return Err(format!(
            "the console's certificate would not pass a gateway: {}",
            failures.join("; ")
        ));
    }
    Ok((der, info))
}
