//! What the console administrator does at the console host: issue and revoke
//! client credentials (one path for every role), reinstate revoked certificates,
//! read the audit trail.
//! Each works on the console's database directly, so it takes effect while
//! `serve` runs (on the next request), on SQLite and PostgreSQL alike.

use std::path::{Path, PathBuf};

use rcgen::{DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};

use cardstation_pki::certificate::{fingerprint, from_pem_or_der, CertificateInfo};

/// The demo station's name (the first start issues its credential).
pub use crate::setup::FIRST_STATION;
use crate::setup::{self, ConsoleFiles, SetupError};
use crate::storage::{valid_identity_name, Actor, IdentityRow, Role, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0:?} is not a name for a station or gateway: use 1 to 64 of a-z, 0-9, '-', '_' and '.', starting with a letter or digit")]
    BadName(String),
    #[error("{0:?} is reserved (it names the console's own actors); choose another name")]
    ReservedName(String),
    #[error("the CA key {path} cannot be read ({detail}). Station credentials are issued with the console CA's key: give it with --ca-key (it may be kept off the console host)")]
    CaKey { path: PathBuf, detail: String },
    #[error("issuing the certificate failed: {0}")]
    Certificate(String),
    #[error("{0}")]
    NotFound(String),
}

/// The first start's demo identity (`station.pem`) is station `station-1`. Runs at
/// every start and records it once; harmless when another instance did so first.
pub async fn register_first_station(store: &Store, files: &ConsoleFiles) {
    let Ok(pem) = files.read(setup::STATION_CERT) else {
        return;
    };
    let Ok(der) = from_pem_or_der(&pem) else {
        return;
    };
    let Ok(info) = CertificateInfo::parse(&der) else {
        return;
    };
    let first = setup::FIRST_STATION;
    match store.identity_by_cert(&info.sha256).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            let row = IdentityRow {
                name: first.into(),
                role: Role::Station,
                cert_sha256: info.sha256,
                issued_at: info.not_before,
                not_after: info.not_after,
                revoked_at: None,
            };
            match store.add_identity(&row, &Actor::Setup).await {
                Ok(()) => tracing::info!("station {first} registered ({})", row.cert_sha256),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => tracing::warn!("could not register {first}: {e}"),
            }
        }
        Err(e) => tracing::warn!("could not look up {first}: {e}"),
    }
}

/// A newly issued client credential.
pub struct IssuedIdentity {
    pub row: IdentityRow,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Issue a client certificate for `role` `name` alone (its name is the subject
/// CN), signed with the CA key at `ca_key`, and record it in `store`.
pub async fn add_identity(
    store: &Store,
    files: &ConsoleFiles,
    ca_key: &Path,
    role: Role,
    name: &str,
    valid_days: u32,
) -> Result<IssuedIdentity, AdminError> {
    if !valid_identity_name(name) {
        return Err(AdminError::BadName(name.into()));
    }
    if is_reserved_name(name) {
        return Err(AdminError::ReservedName(name.into()));
    }
    let issued = issue_client_certificate(files, ca_key, role, name, valid_days)?;
    store
        .add_identity(&issued.row, &Actor::Administrator)
        .await?;
    Ok(issued)
}

/// A client certificate for `name` (subject CN, the role's unit as OU) from the console CA.
fn issue_client_certificate(
    files: &ConsoleFiles,
    ca_key: &Path,
    role: Role,
    name: &str,
    valid_days: u32,
) -> Result<IssuedIdentity, AdminError> {
    let unit = match role {
        Role::Station => "Cardstation station",
        Role::Gateway => "Cardstation gateway",
    };
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
    params.serial_number = Some(cardstation_pki::certificate::random_serial());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(valid_days.max(1)));
    let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;

    let row = IdentityRow {
        name: name.into(),
        role,
        cert_sha256: fingerprint(cert.der()),
        issued_at: now.unix_timestamp(),
        not_after: params.not_after.unix_timestamp(),
        revoked_at: None,
    };
    Ok(IssuedIdentity {
        row,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Write what a station or gateway needs into `out`: its certificate and key
/// (`station.pem`/`station.key` or `gateway.pem`/`gateway.key`), the console CA,
/// the bundle public key and the settings file its program reads
/// (`cardstation.toml` or `gateway.toml`).
pub fn write_kit(
    files: &ConsoleFiles,
    issued: &IssuedIdentity,
    out: &Path,
    url: &str,
) -> Result<PathBuf, AdminError> {
    setup::create_private_dir(out)?;
    let out = std::fs::canonicalize(out).map_err(|source| SetupError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let role = issued.row.role;
    let (cert, key) = (
        out.join(format!("{role}.pem")),
        out.join(format!("{role}.key")),
    );
    setup::write(&key, issued.key_pem.as_bytes(), true)?;
    setup::write(&cert, issued.cert_pem.as_bytes(), false)?;
    setup::write(&out.join("ca.pem"), &files.read(setup::CA_CERT)?, false)?;
    setup::write(
        &out.join("bundle-signing.pub.pem"),
        &files.read(setup::BUNDLE_PUB)?,
        false,
    )?;
    let name = &issued.row.name;
    let console = format!(
        "[console]\nurl = {url:?}\nca = {ca:?}\nclient_cert = {cert:?}\nclient_key = {key:?}\n\
         bundle_key = {bundle:?}\n",
        ca = out.join("ca.pem"),
        bundle = out.join("bundle-signing.pub.pem"),
    );
    let (file, config) = match role {
        Role::Station => (
            "cardstation.toml",
            format!(
                "# The console settings for station {name}: copy into cardstation.toml.\n\
                 [station]\nid = {name:?}\n\n{console}{enroll}",
                enroll = if site_ca_issues(&files.dir) {
                    "\n# This site's CA signs the cards' certificates (issuance = \"ca\").\n\
                     [enroll]\nissuer = \"console\"\n"
                } else {
                    ""
                }
            ),
        ),
        Role::Gateway => (
            "gateway.toml",
            format!(
                "# The console settings for gateway {name}: copy into gateway.toml.\n\
                 {console}\n[gateway]\nid = {name:?}\n"
            ),
        ),
    };
    let config_path = out.join(file);
    setup::write(&config_path, config.as_bytes(), false)?;
    Ok(config_path)
}

/// Whether the console in `data` issues card certificates with its CA.
fn site_ca_issues(data: &Path) -> bool {
    crate::settings::load(data)
        .is_ok_and(|s| s.issuance == Some(cardstation_protocol::messages::IssuanceMode::Ca))
}

/// Revoke every credential of `role` `name`; refused requests start with the next one.
pub async fn revoke_identity(
    store: &Store,
    role: Role,
    name: &str,
    now: i64,
) -> Result<u64, AdminError> {
    let n = store.revoke_identity(role, name, now).await?;
    if n == 0 {
        let known = store
            .identities(Some(role))
            .await?
            .iter()
            .any(|s| s.name == name);
        return Err(AdminError::NotFound(if known {
            format!("{role} {name} has no active credential (already revoked)")
        } else {
            format!("there is no {role} {name} (see: cardstation-console {role} list)")
        }));
    }
    Ok(n)
}

/// Names that would read as one of the console's own actors in records and logs.
pub fn is_reserved_name(name: &str) -> bool {
    const RESERVED: [&str; 6] = [
        "admin",
        "administrator",
        "console",
        "root",
        "setup",
        "system",
    ];
    RESERVED.contains(&name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_consoles_own_actors_are_reserved() {
        for name in ["admin", "administrator", "setup"] {
            assert!(
                valid_identity_name(name) && is_reserved_name(name),
                "{name}"
            );
        }
        assert!(!is_reserved_name("admin-desk"));
    }

    #[test]
    fn times_are_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert!(parse_time("yesterday").is_err());
    }
}
