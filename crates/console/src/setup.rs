//! What a console needs on first start, created in its data directory: a CA that
//! signs the server and station certificates, the server's and one station's
//! identity, and the key that signs trust bundles.

use std::io::Write;
use std::path::{Path, PathBuf};

use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server.key";
/// The name the first start gives the demo station identity (`station.pem`).
pub const FIRST_STATION: &str = "station-1";
pub const STATION_CERT: &str = "station.pem";
pub const STATION_KEY: &str = "station.key";
pub const BUNDLE_KEY: &str = "bundle-signing.key";
pub const BUNDLE_PUB: &str = "bundle-signing.pub.pem";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("creating certificates: {0}")]
    Certificates(String),
    #[error("{path} is not a valid key: {message}")]
    Key { path: PathBuf, message: String },
}

/// The console's identity material, loaded from (or created in) its data directory.
pub struct ConsoleFiles {
    pub dir: PathBuf,
    pub created: bool,
}

impl ConsoleFiles {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn read(&self, name: &str) -> Result<Vec<u8>, SetupError> {
        let path = self.path(name);
        std::fs::read(&path).map_err(|source| SetupError::Io { path, source })
    }

    pub fn bundle_signing_key(&self) -> Result<p256::ecdsa::SigningKey, SetupError> {
        let path = self.path(BUNDLE_KEY);
        let pem = String::from_utf8(self.read(BUNDLE_KEY)?).map_err(|e| SetupError::Key {
            path: path.clone(),
            message: e.to_string(),
        })?;
        p256::ecdsa::SigningKey::from_pkcs8_pem(&pem).map_err(|e| SetupError::Key {
            path,
            message: e.to_string(),
        })
    }
}

/// Load the console's files from `dir`, creating everything on first start.
pub fn ensure(dir: &Path) -> Result<ConsoleFiles, SetupError> {
    create_private_dir(dir)?;
    let files = ConsoleFiles {
        dir: dir.to_path_buf(),
        created: !dir.join(CA_CERT).exists(),
    };
    if !files.created {
        return Ok(files);
    }
    let cert_err = |e: rcgen::Error| SetupError::Certificates(e.to_string());

    // The CA: signs the server and every station certificate.
    let ca_key = KeyPair::generate().map_err(cert_err)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = dn("Cardstation Console CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key).map_err(cert_err)?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().map_err(cert_err)?;
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).map_err(cert_err)?;
    server.distinguished_name = dn("Cardstation Console");
    server
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    server
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now - time::Duration::hours(1);
    server.not_after = now + time::Duration::days(825);
    let server_cert = server.signed_by(&server_key, &issuer).map_err(cert_err)?;

    let station_key = KeyPair::generate().map_err(cert_err)?;
    let mut station = CertificateParams::default();
    station.distinguished_name = dn(FIRST_STATION);
    station.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    station.not_before = now - time::Duration::hours(1);
    station.not_after = now + time::Duration::days(825);
    let station_cert = station.signed_by(&station_key, &issuer).map_err(cert_err)?;

    let bundle_key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let bundle_pem = bundle_key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| SetupError::Certificates(e.to_string()))?;
    let bundle_pub = bundle_key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| SetupError::Certificates(e.to_string()))?;

    // Keys first, certificates after: a directory with ca.pem is complete.
    write(
        &files.path(CA_KEY),
        issuer.key().serialize_pem().as_bytes(),
        true,
    )?;
    write(
        &files.path(SERVER_KEY),
        server_key.serialize_pem().as_bytes(),
        true,
    )?;
    write(
        &files.path(STATION_KEY),
        station_key.serialize_pem().as_bytes(),
        true,
    )?;
    write(&files.path(BUNDLE_KEY), bundle_pem.as_bytes(), true)?;
    write(&files.path(BUNDLE_PUB), bundle_pub.as_bytes(), false)?;
    write(
        &files.path(SERVER_CERT),
        server_cert.pem().as_bytes(),
        false,
    )?;
    write(
        &files.path(STATION_CERT),
        station_cert.pem().as_bytes(),
        false,
    )?;
    write(&files.path(CA_CERT), ca_cert.pem().as_bytes(), false)?;
    Ok(files)
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// Create `dir` (and parents) if needed and make it readable by this user alone.
pub fn create_private_dir(dir: &Path) -> Result<(), SetupError> {
    let err = |source| SetupError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Write a file; `secret` ones (keys) are readable by this user alone.
pub fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<(), SetupError> {
    let err = |source| SetupError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}
