//! Field diagnostics: what is wrong with this station, reader, card or console link,
//! each finding with what to do. Nothing here changes a card.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::console::{client, trust, ConsoleClient};
use cardstation_card::atr::Atr;
use cardstation_card::trace::ApduTrace;
use cardstation_pcsc::{CardPresence, Pcsc};
use cardstation_piv::PinStatus;
use cardstation_pki::certificate::{format_age, format_unix};
use cardstation_protocol::bundle::TrustView;
use cardstation_protocol::trust_lists::Standing;

use super::card_source::CardSource;
use super::card_status::{inspect_traced, CardReport};
use super::station::Station;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Info,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub area: String,
    pub level: Level,
    pub what: String,
    /// What to do about it (empty when nothing needs doing).
    pub todo: String,
}

fn finding(area: &str, level: Level, what: impl Into<String>, todo: impl Into<String>) -> Finding {
    Finding {
        area: area.into(),
        level,
        what: what.into(),
        todo: todo.into(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub findings: Vec<Finding>,
    pub cards: Vec<CardReport>,
    /// APDU exchanges of the card checks (secrets are redacted by the tracer).
    pub traces: Vec<(String, ApduTrace)>,
}

impl DoctorReport {
    pub fn worst(&self) -> Level {
        self.findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::Ok)
    }
}

/// Run every check; `reader` limits the card checks to one reader.
pub fn diagnose(station: &Station, reader: Option<&str>) -> DoctorReport {
    diagnose_with(station, reader, Vec::new())
}

/// [`diagnose`], also checking cards that are not behind PC/SC (the window's demo card).
pub fn diagnose_with(
    station: &Station,
    reader: Option<&str>,
    other_cards: Vec<CardSource>,
) -> DoctorReport {
    let mut report = DoctorReport {
        findings: Vec::new(),
        cards: Vec::new(),
        traces: Vec::new(),
    };
    // Cards are judged against the trust bundle this station holds, as a gateway would.
    let bundle = trust::load_key(station.config.console.bundle_key.as_deref())
        .ok()
        .and_then(|key| trust::current(&station.store, &key).ok().flatten());
    let site = Site {
        bundle: bundle.as_deref(),
        station,
        attestation_rule: std::cell::OnceCell::new(),
    };
    pcsc_checks(&mut report, reader, &site);
    for source in other_cards {
        let name = source.name();
        let atr = match &source {
            CardSource::Virtual(r) => cardstation_card::Transport::atr(r),
            CardSource::Pcsc(_) => Vec::new(),
        };
        if atr.is_empty() {
            report.findings.push(finding(
                &format!("reader {name}"),
                Level::Info,
                "no card in the reader",
                "insert a card to check it",
            ));
            continue;
        }
        card_checks(&mut report, source, &atr, &site);
    }
    console_checks(&mut report, station);
    trust_checks(&mut report, station);
    outbox_checks(&mut report, station);
    report
}

/// What the site expects of a card: its trust bundle as this station holds it, and its
/// console's rule on attestation (asked only when a card needs it, at most once).
struct Site<'a> {
    bundle: Option<&'a TrustView>,
    station: &'a Station,
    attestation_rule: std::cell::OnceCell<Option<bool>>,
}

impl Site<'_> {
    fn attestation_required(&self) -> Option<bool> {
        *self
            .attestation_rule
            .get_or_init(|| self.station.site_attestation_rule())
    }
}

fn pcsc_checks(report: &mut DoctorReport, only: Option<&str>, site: &Site<'_>) {
    let f = &mut report.findings;
    let installed = ["/usr/sbin/pcscd", "/usr/bin/pcscd", "/usr/local/sbin/pcscd"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if cfg!(target_os = "linux") && !installed {
        f.push(finding(
            "pcsc",
            Level::Fail,
            "the PC/SC daemon (pcscd) is not installed",
            "sudo apt-get install pcscd",
        ));
    }
    let readers = match Pcsc::establish().and_then(|p| p.readers()) {
        Ok(readers) => readers,
        Err(e) => {
            f.push(finding(
                "pcsc",
                Level::Fail,
                "the PC/SC service is not running or not reachable",
                e.to_string(),
            ));
            return;
        }
    };
    f.push(finding(
        "pcsc",
        Level::Ok,
        "the PC/SC service is running",
        "",
    ));
    if readers.is_empty() {
        f.push(finding(
            "reader",
            Level::Warn,
            "no reader is connected",
            "plug in a reader; check `lsusb` shows it and that its driver (e.g. libccid) is installed",
        ));
    }
    for r in readers {
        if only.is_some_and(|o| !r.name.to_lowercase().contains(&o.to_lowercase())) {
            continue;
        }
        let area = format!("reader {}", r.name);
        let f = &mut report.findings;
        match r.card {
            CardPresence::Absent => f.push(finding(&area, Level::Info, "no card in the reader", "insert a card to check it")),
            CardPresence::InUse => f.push(finding(
                &area,
                Level::Warn,
                "the card is held exclusively by another program",
                "close the other program (browser, middleware, another station)",
            )),
            CardPresence::Mute => f.push(finding(
                &area,
                Level::Fail,
                "the card does not answer to reset (mute)",
                "reinsert it the right way round; if it stays mute the card or its contacts are faulty",
            )),
            CardPresence::Present => {
                card_checks(report, CardSource::Pcsc(r.name.clone()), &r.atr, site)
            }
        }
    }
}

/// What the trust bundle says of a certificate, when it is not simply allowed.
fn bundle_verdict(
    bundle: &TrustView,
    sha256: &str,
    key_sha256: &str,
    issuer: &str,
) -> Option<(Level, String, &'static str)> {
    let replace = "replace the card (Card care, Replace a card)";
    match bundle.lists.standing_hex(sha256, Some(key_sha256)) {
        Standing::Revoked(r) => Some((
            Level::Fail,
            format!(
                "REVOKED ({}) on {}: gateways refuse this card",
                r.reason,
                format_unix(r.at)
            ),
            replace,
        )),
        Standing::KeyRevoked => Some((
            Level::Fail,
            "its key was revoked (under another certificate): gateways refuse this card whatever certificate it holds".into(),
            replace,
        )),
        Standing::RevokedId => Some((
            Level::Fail,
            format!(
                "REVOKED (the certificate or its key is on the revocation list of trust bundle version {}): gateways refuse this card",
                bundle.header.version
            ),
            replace,
        )),
        Standing::Allowed => None,
        // Under an issuing CA the chain decides: a certificate another CA (or the card
        // itself) signed is refused.
        Standing::ChainDecides => {
            let cas = bundle.lists.authority().map_or(&[][..], |a| &a.cas[..]);
            let by_site_ca = cas.iter().any(|ca| {
                cardstation_pki::certificate::CertificateInfo::parse(ca)
                    .is_ok_and(|ca| ca.subject == issuer)
            });
            (!by_site_ca).then(|| {
                (
                    Level::Warn,
                    format!(
                        "issued by \"{issuer}\", not by the site's CA (trust bundle version {}): gateways refuse this card",
                        bundle.header.version
                    ),
                    "renew it to get a certificate from the site's CA for the same key (cardstation renew)",
                )
            })
        }
        Standing::NotAllowed => Some((
            Level::Warn,
            format!(
                "not on the console's allow-list (trust bundle version {}): gateways refuse this card",
                bundle.header.version
            ),
            "upload its certificate to the console, or replace the card",
        )),
    }
}

fn card_checks(report: &mut DoctorReport, source: CardSource, atr: &[u8], site: &Site<'_>) {
    let name = &source.name();
    let area = format!("card in {name}");
    let f = &mut report.findings;
    match Atr::parse(atr) {
        Ok(a) => f.push(finding(
            &area,
            Level::Info,
            format!(
                "ATR {} — {}{}{}",
                hex::encode_upper(atr),
                a.protocol_names().join(", "),
                a.historical_text()
                    .map(|t| format!(", \"{t}\""))
                    .unwrap_or_default(),
                if a.extended_length() {
                    ", extended length"
                } else {
                    ""
                }
            ),
            "",
        )),
        Err(e) => f.push(finding(
            &area,
            Level::Warn,
            format!("the ATR cannot be decoded: {e}"),
            "",
        )),
    }
    let (result, trace) = match source.with_card(|t| inspect_traced(t)) {
        Ok(r) => r,
        Err(e) => {
            f.push(finding(
                &area,
                Level::Fail,
                "cannot open the card",
                e.to_string(),
            ));
            return;
        }
    };
    report.traces.push((name.to_string(), trace));
    let card = match result {
        Ok(c) => c,
        Err(cardstation_piv::PivError::NotPiv(sw)) => {
            f.push(finding(
                &area,
                Level::Fail,
                format!("no PIV application (SELECT answered {sw})"),
                "only PIV cards can be enrolled; check it is the right card",
            ));
            return;
        }
        Err(e) => {
            f.push(finding(
                &area,
                Level::Fail,
                "the card could not be read",
                e.to_string(),
            ));
            return;
        }
    };
    f.push(finding(&area, Level::Ok, "PIV application present", ""));
    match card.pin {
        PinStatus::Blocked => f.push(finding(
            &area,
            Level::Fail,
            "the PIN is blocked",
            "unblock it with the PUK: cardstation pin unblock",
        )),
        PinStatus::Retries(1) => f.push(finding(
            &area,
            Level::Warn,
            "only 1 PIN try left",
            "make sure the holder knows the PIN before the next try",
        )),
        PinStatus::Retries(n) => {
            f.push(finding(&area, Level::Ok, format!("{n} PIN tries left"), ""))
        }
        PinStatus::Verified => f.push(finding(
            &area,
            Level::Ok,
            "PIN verified in this session",
            "",
        )),
    }
    match card.management_key.is_default {
        Some(true) => f.push(finding(
            &area,
            Level::Warn,
            "the management key is the factory default",
            "enrol the card (which gives it its own key) before it leaves the desk",
        )),
        Some(false) => f.push(finding(
            &area,
            Level::Ok,
            "the management key is not the factory default",
            "",
        )),
        None => f.push(finding(
            &area,
            Level::Info,
            "the management key state could not be determined",
            "",
        )),
    }
    attestation_finding(f, &area, &card, site);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for s in &card.slots {
        if let Some(c) = &s.certificate {
            let left = c.not_after - now;
            let (level, todo) = if left < 0 {
                (
                    Level::Fail,
                    format!("renew the card's certificate (the key stays): cardstation renew --reader \"{name}\""),
                )
            } else if left < 30 * 86_400 {
                (
                    Level::Warn,
                    format!("renew it before then, without downtime (the key stays, gateways keep accepting the card): cardstation renew --reader \"{name}\""),
                )
            } else {
                (Level::Ok, String::new())
            };
            // A valid date says nothing if the console has revoked or never allowed the card.
            let (level, what, todo) = match site
                .bundle
                .and_then(|b| bundle_verdict(b, &c.sha256, &c.key_sha256, &c.issuer))
            {
                Some((l, what, todo)) if l > level => (l, what, todo.to_string()),
                _ => (
                    level,
                    format!("valid until {}", format_unix(c.not_after)),
                    todo,
                ),
            };
            f.push(finding(
                &area,
                level,
                format!("slot {}: \"{}\" {what}", s.slot.short(), c.subject),
                todo,
            ));
        }
        if let Some(e) = &s.certificate_error {
            f.push(finding(
                &area,
                Level::Fail,
                format!("slot {}: unreadable certificate: {e}", s.slot.short()),
                "re-enrol the slot",
            ));
        }
    }
    if card.is_blank() {
        f.push(finding(
            &area,
            Level::Info,
            "the card is blank (no certificate)",
            "enrol it",
        ));
    }
    report.cards.push(card);
}

/// Whether the card proves where its keys were born (PIV attestation), judged against
/// the site's rule: a card that cannot attest fails where the console requires it.
fn attestation_finding(f: &mut Vec<Finding>, area: &str, card: &CardReport, site: &Site<'_>) {
    match card.attests {
        None => {}
        Some(true) => f.push(finding(
            area,
            Level::Ok,
            "the card attests the keys it generates (PIV attestation)",
            "",
        )),
        Some(false) => {
            let what = "the card cannot attest its keys (PIV attestation)";
            f.push(match site.attestation_required() {
                Some(true) => finding(
                    area,
                    Level::Fail,
                    format!("{what}, and this site's console accepts only attested keys"),
                    "enrol a card that attests (a YubiKey, firmware 4.3 or later) or ask the console administrator",
                ),
                Some(false) => finding(
                    area,
                    Level::Info,
                    format!("{what}; this site does not require it"),
                    "",
                ),
                None => finding(
                    area,
                    Level::Info,
                    what,
                    "a site whose console requires attested keys refuses this card",
                ),
            });
        }
    }
}

/// DNS, TCP, TLS and HTTP to the console, each reported on its own.
fn console_checks(report: &mut DoctorReport, station: &Station) {
    let f = &mut report.findings;
    let cfg = &station.config.console;
    let Some(url) = cfg.url.as_deref() else {
        f.push(finding(
            "console",
            Level::Info,
            "no console is configured",
            "set [console] in the config file to upload and check against the console",
        ));
        return;
    };
    let Some((host, port)) = host_port(url) else {
        f.push(finding(
            "console",
            Level::Fail,
            format!("the console URL {url} cannot be read"),
            "use https://host:port",
        ));
        return;
    };
    let timeout = Duration::from_secs(cfg.connect_timeout_secs.max(1));
    let addrs: Vec<_> = match (host.as_str(), port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            f.push(finding(
                "console DNS",
                Level::Fail,
                format!("{host} does not resolve: {e}"),
                "check the host name and the DNS settings",
            ));
            return;
        }
    };
    f.push(finding(
        "console DNS",
        Level::Ok,
        format!(
            "{host} resolves to {}",
            addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "",
    ));
    let Some(mut sock) = addrs
        .iter()
        .find_map(|a| TcpStream::connect_timeout(a, timeout).ok())
    else {
        f.push(finding(
            "console TCP",
            Level::Fail,
            format!("nothing answers on {host}:{port}"),
            "check the console is running and no firewall blocks the port",
        ));
        return;
    };
    f.push(finding(
        "console TCP",
        Level::Ok,
        format!("{host}:{port} accepts connections"),
        "",
    ));
    match tls_handshake(&mut sock, &host, cfg, timeout) {
        Ok(()) => f.push(finding(
            "console TLS",
            Level::Ok,
            "the console's certificate verifies against [console] ca",
            "",
        )),
        Err(e) => {
            f.push(finding(
                "console TLS",
                Level::Fail,
                format!("TLS failed: {e}"),
                "check [console] ca is the console's CA, and the clock",
            ));
            return;
        }
    }
    match ConsoleClient::new(cfg).and_then(|c| c.trust_bundle(None, None)) {
        Ok(_) => f.push(finding(
            "console HTTP",
            Level::Ok,
            "the console answers this station",
            "",
        )),
        Err(e) => f.push(finding(
            "console HTTP",
            Level::Fail,
            e.to_string(),
            "check this station's client certificate was issued by the console's CA",
        )),
    }
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)),
        None => Some((authority.to_string(), 443)),
    }
}

fn tls_handshake(
    sock: &mut TcpStream,
    host: &str,
    cfg: &crate::config::ConsoleConfig,
    timeout: Duration,
) -> Result<(), String> {
    let config = client::tls_config(cfg).map_err(|e| e.to_string())?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    sock.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(sock).map_err(|e| e.to_string())?;
    }
    // Close politely; the HTTP check makes its own connection.
    conn.send_close_notify();
    let _ = conn.complete_io(sock);
    let _ = sock.flush();
    let mut sink = [0u8; 1];
    let _ = sock.read(&mut sink);
    Ok(())
}

fn trust_checks(report: &mut DoctorReport, station: &Station) {
    let f = &mut report.findings;
    let key = match trust::load_key(station.config.console.bundle_key.as_deref()) {
        Ok(k) => k,
        Err(trust::TrustError::NoKey) => {
            f.push(finding(
                "trust bundle",
                Level::Info,
                "no console key is pinned, so no trust bundle is kept",
                "set [console] bundle_key to check cards against the console's lists",
            ));
            return;
        }
        Err(e) => {
            f.push(finding(
                "trust bundle",
                Level::Fail,
                e.to_string(),
                "check [console] bundle_key",
            ));
            return;
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match trust::status(&station.store, &key, now) {
        Ok(Some(s)) if s.expired => f.push(finding(
            "trust bundle",
            Level::Warn,
            format!(
                "version {} expired; it is {} old",
                s.version,
                format_age(s.age_secs)
            ),
            "cardstation trust sync",
        )),
        Ok(Some(s)) => f.push(finding(
            "trust bundle",
            Level::Ok,
            format!(
                "version {}, {} old, {}",
                s.version,
                format_age(s.age_secs),
                s.counts()
            ),
            "",
        )),
        Ok(None) => f.push(finding(
            "trust bundle",
            Level::Warn,
            "no trust bundle yet",
            "cardstation trust sync",
        )),
        Err(e) => f.push(finding(
            "trust bundle",
            Level::Fail,
            e.to_string(),
            "cardstation trust sync",
        )),
    }
}

fn outbox_checks(report: &mut DoctorReport, station: &Station) {
    let items = station.store.outbox_items().unwrap_or_default();
    let pending: Vec<_> = items.iter().filter(|i| i.state == "pending").collect();
    let rejected = items.iter().filter(|i| i.state == "rejected").count();
    let f = &mut report.findings;
    if let Some(oldest) = pending.first() {
        let age = time::OffsetDateTime::now_utc().unix_timestamp() - oldest.created_at;
        f.push(finding(
            "outbox",
            Level::Warn,
            format!(
                "{} item(s) wait for the console, the oldest for {}",
                pending.len(),
                format_age(age)
            ),
            "cardstation outbox sync when the console is reachable",
        ));
    } else {
        f.push(finding(
            "outbox",
            Level::Ok,
            "nothing waits for the console",
            "",
        ));
    }
    if rejected > 0 {
        f.push(finding(
            "outbox",
            Level::Warn,
            format!("{rejected} item(s) were refused by the console"),
            "cardstation outbox list shows why",
        ));
    }
}

/// Write one file a technician can send: findings, card reports, APDU traces,
/// recent audit rows, outbox state and settings. It holds no PIN, PUK or key.
pub fn write_bundle(
    path: &std::path::Path,
    station: &Station,
    report: &DoctorReport,
) -> Result<(), String> {
    let audit = station.store.audit_rows().unwrap_or_default();
    let recent: Vec<_> = audit.iter().rev().take(100).collect();
    let outbox: Vec<_> = station
        .store
        .outbox_items()
        .unwrap_or_default()
        .into_iter()
        .map(|i| {
            serde_json::json!({"id": i.id, "kind": i.kind, "fingerprint": i.fingerprint, "state": i.state,
                               "attempts": i.attempts, "last_error": i.last_error, "created_at": i.created_at})
        })
        .collect();
    let bundle = serde_json::json!({
        "cardstation": env!("CARGO_PKG_VERSION"),
        "created_at": time::OffsetDateTime::now_utc().unix_timestamp(),
        "station_id": station.station_id,
        "operator": station.operator,
        "os": std::env::consts::OS,
        "settings": station.config,
        "doctor": report,
        "audit_recent": recent,
        "audit_chain": station.store.verify_audit().ok(),
        "outbox": outbox,
    });
    let text = serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_urls_split_into_host_and_port() {
        assert_eq!(
            host_port("https://localhost:8443/x"),
            Some(("localhost".into(), 8443))
        );
        assert_eq!(
            host_port("https://console.example"),
            Some(("console.example".into(), 443))
        );
        assert_eq!(host_port("https://[::1]:9"), Some(("::1".into(), 9)));
        assert_eq!(host_port("http://x"), None);
        assert_eq!(host_port("https://x:notaport"), None);
    }

    #[test]
    fn a_revoked_or_unknown_card_is_not_reported_ok() {
        let fp = "ab".repeat(32);
        use cardstation_protocol::trust_lists::{fingerprint_from_hex, Revocation, TrustLists};
        let lists = TrustLists::from_unsorted(
            vec![fingerprint_from_hex(&fp).unwrap()],
            vec![Revocation {
                fp: [0xcd; 32],
                reason: "lost".into(),
                at: 0,
            }],
            vec![[0x99; 32]],
        );
        let header = cardstation_protocol::bundle::Header::for_lists(
            [1; 16],
            7,
            0,
            i64::MAX,
            [0; 32],
            &lists,
        );
        let bundle = TrustView::of(header, lists);
        let key = "11".repeat(32);
        let issuer = "CN=card";
        assert!(bundle_verdict(&bundle, &fp.to_uppercase(), &key, issuer).is_none());
        let (level, what, _) = bundle_verdict(&bundle, &fp, &"99".repeat(32), issuer).unwrap();
        assert_eq!(level, Level::Fail);
        assert!(what.contains("key was revoked"), "{what}");
        let (level, what, _) = bundle_verdict(&bundle, &"cd".repeat(32), &key, issuer).unwrap();
        assert_eq!(level, Level::Fail);
        assert!(what.starts_with("REVOKED (lost)"), "{what}");
        let (level, what, _) = bundle_verdict(&bundle, &"ef".repeat(32), &key, issuer).unwrap();
        assert_eq!(level, Level::Warn);
        assert!(what.contains("allow-list"), "{what}");
    }

    #[test]
    fn under_a_site_ca_the_doctor_names_revoked_and_foreign_certificates() {
        use cardstation_protocol::trust_lists::{short_id, TrustLists};
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Site CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        let ca = params.self_signed(&key).unwrap().der().to_vec();
        let revoked_key = [0x77; 32];
        let lists = TrustLists::revocations_only(vec![ca], vec![short_id(&revoked_key)], 5);
        let header = cardstation_protocol::bundle::Header::for_lists(
            [1; 16],
            9,
            0,
            i64::MAX,
            [0; 32],
            &lists,
        );
        let bundle = TrustView::of(header, lists);
        let cert = "ab".repeat(32);
        assert!(bundle_verdict(&bundle, &cert, &"11".repeat(32), "CN=Site CA").is_none());
        let (level, what, _) =
            bundle_verdict(&bundle, &cert, &"77".repeat(32), "CN=Site CA").unwrap();
        assert_eq!(level, Level::Fail);
        assert!(what.starts_with("REVOKED"), "{what}");
        let (level, what, todo) =
            bundle_verdict(&bundle, &cert, &"11".repeat(32), "CN=card 42").unwrap();
        assert_eq!(level, Level::Warn);
        assert!(what.contains("not by the site's CA"), "{what}");
        assert!(todo.contains("cardstation renew"), "{todo}");
    }
}
