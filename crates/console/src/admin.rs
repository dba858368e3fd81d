//! What the console administrator does at the console host: issue and revoke
//! station credentials, reinstate revoked certificates, read the audit trail.
//! Each works on the console's database directly, so it takes effect while
//! `serve` runs (on the next request), on SQLite and PostgreSQL alike.

use std::path::{Path, PathBuf};

use rcgen::{
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};

use cardstation_pki::certificate::{fingerprint, from_pem_or_der, CertificateInfo};

use crate::setup::{self, ConsoleFiles, SetupError};
use crate::storage::{StationRow, Store, StoreError, ADMIN};

/// The name the first start gives the demo station identity (`station.pem`).
pub const FIRST_STATION: &str = "station-1";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0:?} is not a name for a station or gateway: use 1 to 64 of a-z, 0-9, '-', '_' and '.', starting with a letter or digit")]
    BadName(String),
    #[error("the CA key {path} cannot be read ({detail}). Station credentials are issued with the console CA's key: give it with --ca-key (it may be kept off the console host)")]
    CaKey { path: PathBuf, detail: String },
    #[error("issuing the certificate failed: {0}")]
    Certificate(String),
    #[error("{0}")]
    NotFound(String),
}

pub fn valid_station_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.')
        })
}

/// The first start's demo identity (`station.pem`) is station `station-1`. Runs at
/// every start and records it once; harmless when another instance did so first.
pub async fn register_first_station(store: &dyn Store, files: &ConsoleFiles) {
    let Ok(pem) = files.read(setup::STATION_CERT) else {
        return;
    };
    let Ok(der) = from_pem_or_der(&pem) else {
        return;
    };
    let Ok(info) = CertificateInfo::parse(&der) else {
        return;
    };
    match store.station_by_cert(&info.sha256).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            let row = StationRow {
                name: FIRST_STATION.into(),
                cert_sha256: info.sha256,
                issued_at: info.not_before,
                not_after: info.not_after,
                revoked_at: None,
            };
            match store.add_station(&row, "setup").await {
                Ok(()) => {
                    tracing::info!("station {FIRST_STATION} registered ({})", row.cert_sha256)
                }
                Err(StoreError::Conflict(_)) => {}
                Err(e) => tracing::warn!("could not register {FIRST_STATION}: {e}"),
            }
        }
        Err(e) => tracing::warn!("could not look up {FIRST_STATION}: {e}"),
    }
}

/// A newly issued station credential.
pub struct IssuedStation {
    pub row: StationRow,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Issue a client certificate for station `name` alone (its name is the subject
/// CN), signed with the CA key at `ca_key`, and record it in `store`.
pub async fn add_station(
    store: &dyn Store,
    files: &ConsoleFiles,
    ca_key: &Path,
    name: &str,
    valid_days: u32,
) -> Result<IssuedStation, AdminError> {
    if !valid_station_name(name) {
        return Err(AdminError::BadName(name.into()));
    }
    let issued = issue_client_certificate(files, ca_key, name, "Cardstation station", valid_days)?;
    store.add_station(&issued.row, ADMIN).await?;
    Ok(issued)
}

/// A client certificate for `name` (subject CN, `unit` as OU) from the console CA.
fn issue_client_certificate(
    files: &ConsoleFiles,
    ca_key: &Path,
    name: &str,
    unit: &str,
    valid_days: u32,
) -> Result<IssuedStation, AdminError> {
    let ca_pem = String::from_utf8_lossy(&files.read(setup::CA_CERT)?).into_owned();
    let key_text = std::fs::read_to_string(ca_key).map_err(|e| AdminError::CaKey {
        path: ca_key.to_path_buf(),
        detail: e.to_string(),
    })?;
    let ca_key_pair = KeyPair::from_pem(&key_text).map_err(|e| AdminError::CaKey {
        path: ca_key.to_path_buf(),
        detail: e.to_string(),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key_pair)
        .map_err(|e| AdminError::Certificate(e.to_string()))?;
    let cert_err = |e: rcgen::Error| AdminError::Certificate(e.to_string());

    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationalUnitName, unit);
    params.distinguished_name = dn;
    let mut serial = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut serial);
    serial[0] = (serial[0] & 0x7F) | 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(valid_days.max(1)));
    let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;

    let row = StationRow {
        name: name.into(),
        cert_sha256: fingerprint(cert.der()),
        issued_at: now.unix_timestamp(),
        not_after: params.not_after.unix_timestamp(),
        revoked_at: None,
    };
    Ok(IssuedStation {
        row,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Write what a station needs into `out`: its certificate and key, the console CA,
/// the bundle public key and a ready `cardstation.toml`.
pub fn write_station_kit(
    files: &ConsoleFiles,
    issued: &IssuedStation,
    out: &Path,
    url: &str,
) -> Result<PathBuf, AdminError> {
    setup::create_private_dir(out)?;
    let out = std::fs::canonicalize(out).map_err(|source| SetupError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    setup::write(&out.join("station.key"), issued.key_pem.as_bytes(), true)?;
    setup::write(&out.join("station.pem"), issued.cert_pem.as_bytes(), false)?;
    setup::write(&out.join("ca.pem"), &files.read(setup::CA_CERT)?, false)?;
    setup::write(
        &out.join("bundle-signing.pub.pem"),
        &files.read(setup::BUNDLE_PUB)?,
        false,
    )?;
    let config = format!(
        "# The console settings for station {name}: copy into cardstation.toml.\n\
         [station]\nid = {name:?}\n\n[console]\nurl = {url:?}\nca = {ca:?}\n\
         client_cert = {cert:?}\nclient_key = {key:?}\nbundle_key = {bundle:?}\n",
        name = issued.row.name,
        ca = out.join("ca.pem"),
        cert = out.join("station.pem"),
        key = out.join("station.key"),
        bundle = out.join("bundle-signing.pub.pem"),
    );
    let config_path = out.join("cardstation.toml");
    setup::write(&config_path, config.as_bytes(), false)?;
    Ok(config_path)
}

/// Revoke every credential of station `name`; refused requests start with the next one.
pub async fn revoke_station(store: &dyn Store, name: &str, now: i64) -> Result<usize, AdminError> {
    let n = store.revoke_station(name, now).await?;
    if n == 0 {
        let known = store.stations().await?.iter().any(|s| s.name == name);
        return Err(AdminError::NotFound(if known {
            format!("station {name} has no active credential (already revoked)")
        } else {
            format!("there is no station {name} (see: cardstation-console station list)")
        }));
    }
    Ok(n)
}

/// A time given on the command line: unix seconds or RFC 3339 (`2026-12-01T21:00:00Z`).
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| {
            format!(
                "{s:?} is not a time: give unix seconds or RFC 3339 such as 2026-12-01T21:00:00Z"
            )
        })
}

// --- Gateway credentials: they may fetch the trust bundle and post events, nothing else ---

/// Issue a client certificate for gateway `name` (names as for stations) and record it.
pub async fn add_gateway(
    store: &dyn Store,
    files: &ConsoleFiles,
    ca_key: &Path,
    name: &str,
    valid_days: u32,
) -> Result<IssuedStation, AdminError> {
    if !valid_station_name(name) {
        return Err(AdminError::BadName(name.into()));
    }
    let issued = issue_client_certificate(files, ca_key, name, "Cardstation gateway", valid_days)?;
    store.add_gateway(&issued.row, ADMIN).await?;
    Ok(issued)
}

/// Write what a gateway needs into `out`: its certificate and key, the console CA,
/// the bundle public key and the `[console]` block of a `gateway.toml`.
pub fn write_gateway_kit(
    files: &ConsoleFiles,
    issued: &IssuedStation,
    out: &Path,
    url: &str,
) -> Result<PathBuf, AdminError> {
    setup::create_private_dir(out)?;
    let out = std::fs::canonicalize(out).map_err(|source| SetupError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    setup::write(&out.join("gateway.key"), issued.key_pem.as_bytes(), true)?;
    setup::write(&out.join("gateway.pem"), issued.cert_pem.as_bytes(), false)?;
    setup::write(&out.join("ca.pem"), &files.read(setup::CA_CERT)?, false)?;
    setup::write(
        &out.join("bundle-signing.pub.pem"),
        &files.read(setup::BUNDLE_PUB)?,
        false,
    )?;
    let config = format!(
        "# The console settings for gateway {name}: copy into gateway.toml.\n\
         [console]\nurl = {url:?}\nca = {ca:?}\n\
         client_cert = {cert:?}\nclient_key = {key:?}\nbundle_key = {bundle:?}\n\n\
         [gateway]\nid = {name:?}\n",
        name = issued.row.name,
        ca = out.join("ca.pem"),
        cert = out.join("gateway.pem"),
        key = out.join("gateway.key"),
        bundle = out.join("bundle-signing.pub.pem"),
    );
    let config_path = out.join("gateway.toml");
    setup::write(&config_path, config.as_bytes(), false)?;
    Ok(config_path)
}

/// Revoke every credential of gateway `name`; refused requests start with the next one.
pub async fn revoke_gateway(store: &dyn Store, name: &str, now: i64) -> Result<usize, AdminError> {
    let n = store.revoke_gateway(name, now).await?;
    if n == 0 {
        let known = store.gateways().await?.iter().any(|g| g.name == name);
        return Err(AdminError::NotFound(if known {
            format!("gateway {name} has no active credential (already revoked)")
        } else {
            format!("there is no gateway {name} (see: cardstation-console gateway list)")
        }));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn station_names_are_short_plain_words() {
        for ok in ["station-1", "desk.7", "a", "lab_2"] {
            assert!(valid_station_name(ok), "{ok}");
        }
        for bad in ["", "-x", "Desk", "a b", "x/../y", &"a".repeat(65), "é"] {
            assert!(!valid_station_name(bad), "{bad}");
        }
    }

    #[test]
    fn times_are_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert!(parse_time("yesterday").is_err());
    }
}
