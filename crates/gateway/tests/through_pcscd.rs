//! The gateway end to end: pcscd with the virtual card, the reference console, the
//! station enrolling and uploading, and `cardstation-gateway` as its own process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cardstation_card::{CardError, Transport};
use cardstation_gateway::bundle::SharedTrust;
use cardstation_gateway::config::Config;
use cardstation_gateway::gateway;
use cardstation_pcsc::Pcsc;
use cardstation_protocol::messages::Decision;

use support::*;

fn reasons(v: &serde_json::Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn enrolled_card_is_granted_revoked_card_denied_after_sync_unknown_card_denied() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().unwrap();
    let console = start_console(console_dir.path(), free_port(), 168);
    let station = Station::new(&console);
    let gw = Gateway::new(&console, GatewayOptions::default());
    let states = tempfile::tempdir().unwrap();
    let card = CardProcess::start(PORT_0, &states.path().join("a"));
    let fp = station.enroll(READER_0, true);

    // No bundle yet: fail-closed.
    let (code, v) = gw.check(READER_0);
    assert_eq!(code, 1, "{v}");
    assert_eq!(reasons(&v), ["no-trust-bundle"], "{v}");

    let s = gw.sync();
    assert_eq!(s["bundle"]["result"], "updated", "{s}");
    let (code, v) = gw.check(READER_0);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["decision"], "grant");
    assert_eq!(v["fingerprint"], fp.as_str());
    assert!(v["apdus"].as_u64().unwrap() <= 4, "{v}");

    // The lost-card test: revoked at the console, refreshed at the gateway, denied.
    station.revoke(&fp, "lost");
    let (code, _) = gw.check(READER_0);
    assert_eq!(code, 0, "still granted until the gateway refreshes");
    let s = gw.sync();
    assert_eq!(s["bundle"]["result"], "updated", "{s}");
    let (code, v) = gw.check(READER_0);
    assert_eq!(code, 1, "{v}");
    assert_eq!(reasons(&v), ["revoked"], "{v}");
    assert_eq!(v["fingerprint"], fp.as_str());

    // A card the console never saw: enrolled at a station, never uploaded.
    let card_b = CardProcess::start(PORT_1, &states.path().join("b"));
    let fp_b = station.enroll(READER_1, false);
    let (code, v) = gw.check(READER_1);
    assert_eq!(code, 1, "{v}");
    assert_eq!(reasons(&v), ["not-allowed"], "{v}");
    assert_eq!(v["fingerprint"], fp_b.as_str());

    // Every decision is queued for the console, none lost; each sync delivered those before it.
    let status = gw.status();
    let queued = status["queue"]["pending"].as_i64().unwrap();
    assert_eq!(
        queued + status["queue"]["sent"].as_i64().unwrap(),
        5,
        "{status}"
    );
    assert_eq!(
        console.events(&fp).len() as i64 + console.events(&fp_b).len() as i64,
        5 - queued,
        "{status}"
    );
    assert!(
        status["bundle"]["version"].as_u64().unwrap() >= 2,
        "{status}"
    );
    drop((card, card_b));
}

#[test]
fn an_expired_bundle_denies_and_grants_only_fail_open() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    // A console whose bundles expire the moment they are signed.
    let console_dir = tempfile::tempdir().unwrap();
    let console = start_console(console_dir.path(), free_port(), 0);
    let station = Station::new(&console);
    let states = tempfile::tempdir().unwrap();
    let _card = CardProcess::start(PORT_0, &states.path().join("a"));
    let fp = station.enroll(READER_0, true);

    let closed = Gateway::new(&console, GatewayOptions::default());
    closed.sync();
    let (code, v) = closed.check(READER_0);
    assert_eq!(code, 1, "{v}");
    assert_eq!(reasons(&v), ["bundle-expired"], "{v}");
    assert_eq!(closed.status()["bundle"]["expired"], true);

    // Fail-open with card-signed certificates would grant any card that proves its own
    // key, one never enrolled included: the gateway refuses to start so.
    let self_signed_open = Gateway::new(
        &console,
        GatewayOptions {
            fail_open: true,
            ..Default::default()
        },
    );
    let out = self_signed_open.run(&["check", "--reader", READER_0, "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("issuing_ca"), "{stderr}");

    // With an issuing CA, fail-open overlooks the bundle's age for a card the CA issued…
    let (ca_pem, issuer) = test_ca();
    let ca_path = console_dir.path().join("issuing-ca.pem");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let open = Gateway::new(
        &console,
        GatewayOptions {
            fail_open: true,
            extra: format!("issuing_ca = {ca_path:?}"),
            ..Default::default()
        },
    );
    open.sync();
    let _card_b = CardProcess::start(PORT_1, &states.path().join("b"));
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "door-7 (CA-issued)");
    let fp_b = write_card(READER_1, dn, Some(&issuer));
    let (code, v) = open.check(READER_1);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["fail_open"], true, "{v}");
    assert_eq!(v["fingerprint"], fp_b.as_str());

    // …but never trust: a card that signed its own certificate does not chain to the
    // CA (`wrong-issuer`), even one the expired bundle lists.
    let (code, v) = open.check(READER_0);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["fingerprint"], fp.as_str());
    assert!(reasons(&v).contains(&"wrong-issuer".to_string()), "{v}");
    // Fail-open never overrides a revocation the last bundle carries: see
    // decision::tests (a CA-issued card cannot be uploaded to the reference console).
}

/// A throw-away issuing CA: its certificate (PEM) and the issuer to sign cards with.
fn test_ca() -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Cardstation test issuing CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), rcgen::Issuer::new(params, key))
}

/// A transport that records the card's answer to GENERAL AUTHENTICATE and, once armed,
/// answers a later one with the recording: an attacker replaying a captured exchange.
struct Replayer<T> {
    inner: T,
    recorded: Option<Vec<u8>>,
    replay: bool,
}

const GENERAL_AUTHENTICATE: u8 = 0x87;

impl<T: Transport> Transport for Replayer<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        if apdu.get(1) == Some(&GENERAL_AUTHENTICATE) {
            if self.replay {
                if let Some(r) = &self.recorded {
                    return Ok(r.clone());
                }
            }
            let rsp = self.inner.transmit(apdu)?;
            self.recorded = Some(rsp.clone());
            return Ok(rsp);
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

fn enrolled_gateway() -> (
    tempfile::TempDir,
    Console,
    Station,
    Gateway,
    tempfile::TempDir,
    CardProcess,
    String,
) {
    let console_dir = tempfile::tempdir().unwrap();
    let console = start_console(console_dir.path(), free_port(), 168);
    let station = Station::new(&console);
    let gw = Gateway::new(&console, GatewayOptions::default());
    let states = tempfile::tempdir().unwrap();
    let card = CardProcess::start(PORT_0, &states.path().join("a"));
    let fp = station.enroll(READER_0, true);
    gw.sync();
    (console_dir, console, station, gw, states, card, fp)
}

#[test]
fn a_replayed_challenge_response_is_denied() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let (_cd, _console, _station, gw, _states, _card, fp) = enrolled_gateway();
    let config = Config::load(&gw.config()).unwrap();
    let mut decider = gateway::decider(&config).unwrap();
    let keeper = SharedTrust::new(gateway::trust_keeper(&config).unwrap());
    let now = gateway::now();

    let pcsc = Pcsc::establish().unwrap();
    let mut card = pcsc.connect(READER_0).unwrap();
    let mut wire = Replayer {
        inner: card.transaction().unwrap(),
        recorded: None,
        replay: false,
    };
    let first = decider.decide(
        &mut wire,
        keeper.held().as_ref().map(|h| h.current(now)),
        now,
    );
    assert_eq!(first.decision, Decision::Grant, "{first:?}");
    assert!(wire.recorded.is_some());

    // The same card, the captured signature played back to the next (fresh) challenge.
    wire.replay = true;
    let replayed = decider.decide(
        &mut wire,
        keeper.held().as_ref().map(|h| h.current(now)),
        now,
    );
    assert_eq!(replayed.decision, Decision::Deny, "{replayed:?}");
    assert_eq!(replayed.fingerprint.as_deref(), Some(fp.as_str()));
    assert!(
        replayed
            .reasons
            .iter()
            .any(|r| r.code == "signature-mismatch"),
        "{replayed:?}"
    );
}

/// Forwards APDUs until `pull_after` of them went through, then pulls the card (its
/// process ends) and forwards the rest, which the card is no longer there to answer.
struct Puller<'a, T> {
    inner: T,
    sent: usize,
    pull_after: usize,
    card: &'a mut CardProcess,
}

impl<T: Transport> Transport for Puller<'_, T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        if self.sent == self.pull_after {
            self.card.pull();
        }
        self.sent += 1;
        self.inner.transmit(apdu)
    }
    fn reader(&self) -> &str {
        self.inner.reader()
    }
    fn atr(&self) -> Vec<u8> {
        self.inner.atr()
    }
}

#[test]
fn a_card_pulled_mid_check_is_never_granted() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let (_cd, _console, _station, gw, states, card, _fp) = enrolled_gateway();
    let config = Config::load(&gw.config()).unwrap();
    let keeper = SharedTrust::new(gateway::trust_keeper(&config).unwrap());
    let now = gateway::now();
    // How many APDUs a whole check takes, from a fresh decider and from one that has
    // seen the card (and so does not read its certificate again).
    let (cold, warm) = {
        let mut decider = gateway::decider(&config).unwrap();
        let a = gateway::decide_on(READER_0, &mut decider, &keeper);
        let b = gateway::decide_on(READER_0, &mut decider, &keeper);
        assert_eq!((a.decision, b.decision), (Decision::Grant, Decision::Grant));
        (a.apdus, b.apdus)
    };
    assert!(warm >= 3 && cold > warm, "cold {cold}, warm {warm} APDUs");
    card.remove();
    // Pull it before each APDU in turn.
    for (is_warm, count) in [(false, cold), (true, warm)] {
        for pull_after in 0..count {
            let mut card = CardProcess::start(PORT_0, &states.path().join("a"));
            let mut decider = gateway::decider(&config).unwrap();
            if is_warm {
                let o = gateway::decide_on(READER_0, &mut decider, &keeper);
                assert_eq!(o.decision, Decision::Grant, "{o:?}");
            }
            let pcsc = Pcsc::establish().unwrap();
            let mut conn = pcsc.connect(READER_0).unwrap();
            let tx = conn.transaction().unwrap();
            let wire = Puller {
                inner: tx,
                sent: 0,
                pull_after,
                card: &mut card,
            };
            let o = decider.decide(wire, keeper.held().as_ref().map(|h| h.current(now)), now);
            assert_eq!(
                o.decision,
                Decision::Deny,
                "pulled after {pull_after} APDUs (warm: {is_warm}): {o:?}"
            );
            drop(conn);
            card.remove();
        }
    }
}

#[test]
fn the_daemon_decides_each_card_acts_refreshes_and_goes_on_without_the_console() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let console = start_console(console_dir.path(), port, 168);
    let station = Station::new(&console);
    let gw = Gateway::new(
        &console,
        GatewayOptions {
            refresh_secs: 1,
            ..Default::default()
        },
    );
    let states = tempfile::tempdir().unwrap();
    let state = states.path().join("a");
    let card = CardProcess::start(PORT_0, &state);
    let fp = station.enroll(READER_0, true);
    card.remove();

    let daemon = gw.daemon();
    daemon.wait_log("trust bundle updated", Duration::from_secs(20));

    // Card in: one decision, one action.
    let card = CardProcess::start(PORT_0, &state);
    let line = daemon.next_decision(Duration::from_secs(20));
    assert!(line.starts_with("grant "), "{line}");
    assert_eq!(field(&line, "fingerprint"), Some(fp.as_str()), "{line}");
    // SELECT, CHUID, the certificate (one extended-length answer), GENERAL AUTHENTICATE.
    assert_eq!(field(&line, "apdus"), Some("4"), "{line}");
    card.remove();
    // Again: the certificate is not read again for a card already seen.
    let card = CardProcess::start(PORT_0, &state);
    let line = daemon.next_decision(Duration::from_secs(20));
    assert!(line.starts_with("grant "), "{line}");
    assert_eq!(field(&line, "apdus"), Some("3"), "{line}");
    card.remove();

    // Revoked at the console: the next refresh applies it without a restart.
    station.revoke(&fp, "lost");
    daemon.wait_log("trust bundle updated", Duration::from_secs(20));
    let card = CardProcess::start(PORT_0, &state);
    let line = daemon.next_decision(Duration::from_secs(20));
    assert!(line.starts_with("deny "), "{line}");
    assert_eq!(field(&line, "reasons"), Some("revoked"), "{line}");
    card.remove();

    // The console away: decisions are still made on the last good bundle.
    console.stop();
    daemon.wait_log("bundle refresh", Duration::from_secs(20));
    let card = CardProcess::start(PORT_0, &state);
    let line = daemon.next_decision(Duration::from_secs(20));
    assert!(line.starts_with("deny "), "{line}");
    assert_eq!(field(&line, "reasons"), Some("revoked"), "{line}");
    card.remove();

    // Every decision ran its action, with the decision in the environment.
    let actions = gw.actions();
    assert_eq!(actions.len(), 4, "{actions:?}");
    assert!(
        actions[0].starts_with(&format!("grant {fp} ")),
        "{actions:?}"
    );
    assert!(
        actions[2].starts_with(&format!("deny {fp} revoked ")),
        "{actions:?}"
    );

    // Killed hard: every decision is still in the queue, each once.
    daemon.kill();
    let status = gw.status();
    assert_eq!(
        status["queue"]["pending"].as_i64().unwrap() + status["queue"]["sent"].as_i64().unwrap(),
        4,
        "{status}"
    );
    let ids: std::collections::BTreeSet<String> = actions
        .iter()
        .filter_map(|a| a.split(' ').nth(3).map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 4, "one event id per decision: {actions:?}");
}

/// Whether process `pid` still runs (a zombie no one reaped yet counts as ended).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn a_slow_action_that_forks_holds_up_no_reader_and_is_killed_whole() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().unwrap();
    let console = start_console(console_dir.path(), free_port(), 168);
    let station = Station::new(&console);
    let states = tempfile::tempdir().unwrap();
    let (state_a, state_b) = (states.path().join("a"), states.path().join("b"));
    let card = CardProcess::start(PORT_0, &state_a);
    let fp_a = station.enroll(READER_0, true);
    card.remove();
    let card = CardProcess::start(PORT_1, &state_b);
    let fp_b = station.enroll(READER_1, true);
    card.remove();

    // A door opener that hangs: it leaves a child behind, says something, then sleeps
    // 30 s. Each run notes its own pid and its child's, and its environment.
    let runs = tempfile::tempdir().unwrap();
    let script = "sleep 300 & echo \"$$ $!\" >> \"$0/pids\"; env > \"$0/env-$$\"; \
                  echo door-opener-speaking; sleep 30";
    let gw = Gateway::new(
        &console,
        GatewayOptions {
            refresh_secs: 1,
            readers: vec![READER_0.to_string(), READER_1.to_string()],
            on_grant: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                script.into(),
                runs.path().display().to_string(),
            ]),
            extra: "action_timeout_secs = 12".into(),
            ..Default::default()
        },
    );
    let daemon = gw.daemon_with_env(&[("CARDSTATION_TEST_PRIVATE", "gateway-only")]);
    daemon.wait_log("trust bundle updated", Duration::from_secs(20));

    let _a = CardProcess::start(PORT_0, &state_a);
    let line = daemon.next_decision(Duration::from_secs(20));
    assert!(line.starts_with("grant "), "{line}");
    assert_eq!(field(&line, "fingerprint"), Some(fp_a.as_str()), "{line}");
    let acted_at = std::time::Instant::now();

    // The second reader is decided while the first one's action still sleeps.
    let _b = CardProcess::start(PORT_1, &state_b);
    let line = daemon.next_decision(Duration::from_secs(20));
    assert!(line.starts_with("grant "), "{line}");
    assert_eq!(field(&line, "fingerprint"), Some(fp_b.as_str()), "{line}");
    let pids_of = || -> Vec<(i32, i32)> {
        std::fs::read_to_string(runs.path().join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (a, b) = l.split_once(' ')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect()
    };
    // What it said reached the gateway's log.
    daemon.wait_log("door-opener-speaking", Duration::from_secs(10));
    let first = pids_of()[0];
    assert!(
        running(first.0) && acted_at.elapsed() < Duration::from_secs(12),
        "the first action should still run when the second reader is decided"
    );

    // At the timeout each action is killed whole: the sleeper and what it forked.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let all_gone = |pids: &[(i32, i32)]| pids.iter().all(|(a, b)| !running(*a) && !running(*b));
    while std::time::Instant::now() < deadline && !(pids_of().len() == 2 && all_gone(&pids_of())) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let pids = pids_of();
    assert_eq!(pids.len(), 2, "one action per grant: {pids:?}");
    assert!(
        all_gone(&pids),
        "an action or its child outlived the timeout: {pids:?}"
    );
    daemon.wait_log("TimedOut", Duration::from_secs(5));

    // Its own environment, and its words in the log, not among the decision lines.
    for (pid, _) in &pids {
        let env = std::fs::read_to_string(runs.path().join(format!("env-{pid}"))).unwrap();
        assert!(!env.contains("gateway-only"), "{env}");
        assert!(env.contains("CARDSTATION_DECISION=grant"), "{env}");
    }
    let (decisions, _) = daemon.drain();
    assert!(
        decisions
            .iter()
            .all(|l| !l.contains("door-opener-speaking")),
        "{decisions:?}"
    );
}

#[test]
fn decisions_made_while_the_console_is_away_reach_it_exactly_once() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let console = start_console(console_dir.path(), port, 168);
    let station = Station::new(&console);
    let gw = Gateway::new(
        &console,
        GatewayOptions {
            refresh_secs: 1,
            ..Default::default()
        },
    );
    let states = tempfile::tempdir().unwrap();
    let state = states.path().join("a");
    let card = CardProcess::start(PORT_0, &state);
    let fp = station.enroll(READER_0, true);
    card.remove();

    let daemon = gw.daemon();
    daemon.wait_log("trust bundle updated", Duration::from_secs(20));
    let card = CardProcess::start(PORT_0, &state);
    assert!(daemon
        .next_decision(Duration::from_secs(20))
        .starts_with("grant "));
    card.remove();
    daemon.wait_log("event(s) delivered", Duration::from_secs(20));
    assert_eq!(console.events(&fp).len(), 1);

    // The console away: the gateway still decides, on its last good bundle.
    console.stop();
    daemon.wait_log("bundle refresh", Duration::from_secs(20));
    for _ in 0..2 {
        let card = CardProcess::start(PORT_0, &state);
        let line = daemon.next_decision(Duration::from_secs(20));
        assert!(line.starts_with("grant "), "{line}");
        card.remove();
    }
    // Killed hard while the console is away, started again, one more decision.
    daemon.kill();
    let daemon = gw.daemon();
    let card = CardProcess::start(PORT_0, &state);
    let line = daemon.next_decision(Duration::from_secs(20));
    assert!(line.starts_with("grant "), "{line}");
    card.remove();
    assert_eq!(gw.status()["queue"]["pending"].as_i64(), Some(3));

    // The console returns: every decision arrives, each exactly once.
    let console = start_console(console_dir.path(), port, 168);
    daemon.wait_log("event(s) delivered", Duration::from_secs(90));
    let ids: Vec<String> = gw
        .actions()
        .iter()
        .filter_map(|a| a.split(' ').nth(3).map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    let held = console.events(&fp);
    let mut held_ids: Vec<String> = held
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    held_ids.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(held_ids, want, "{held:?}");
    assert!(
        held.iter().all(|e| e["gateway"] == gw.name.as_str()),
        "{held:?}"
    );
    assert!(held.iter().all(|e| e["decision"] == "grant"), "{held:?}");

    // Sent again (a lost answer, a second sync): still once each.
    daemon.kill();
    let sync = gw.sync();
    assert_eq!(gw.status()["queue"]["pending"].as_i64(), Some(0), "{sync}");
    assert_eq!(console.events(&fp).len(), 4);
    let table = console.admin_ok(&["events", "--gateway", &gw.name]);
    assert_eq!(table.lines().count(), 5, "{table}");
}

/// Put a new P-256 key (generated on the card) in slot 9e of the card in `reader`, with
/// a certificate for `subject` that the station would refuse to make: self-signed by
/// the card, or issued by `issuer`. Its SHA-256 fingerprint.
fn write_card(
    reader: &str,
    subject: rcgen::DistinguishedName,
    issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> String {
    use cardstation_piv::{objects::Chuid, Algorithm, Guid, ManagementKey, PivSession, Slot};
    let pcsc = Pcsc::establish().unwrap();
    let mut card = pcsc.connect(reader).unwrap();
    let mut session = PivSession::open(card.transaction().unwrap()).unwrap();
    session
        .authenticate(&ManagementKey::factory_default(Algorithm::TripleDes).unwrap())
        .unwrap();
    let slot = Slot::CardAuthentication;
    let public_key = session.generate_p256(slot).unwrap();
    let profile = cardstation_pki::certificate::CertificateProfile {
        subject,
        valid_days: 30,
    };
    let params =
        cardstation_pki::certificate::leaf_params(&profile, time::OffsetDateTime::now_utc());
    let der = {
        let signer = cardstation_pki::card_signer::CardSigner::new(&mut session, slot, public_key);
        match issuer {
            None => params.self_signed(&signer).unwrap(),
            Some(ca) => params.signed_by(&signer, ca).unwrap(),
        }
        .der()
        .to_vec()
    };
    session.write_certificate(slot, &der).unwrap();
    session.write_chuid(&Chuid::new(Guid::random())).unwrap();
    cardstation_pki::certificate::fingerprint(&der)
}

#[test]
fn a_hostile_subject_and_an_unset_clock_never_hold_back_later_reports() {
    use cardstation_gateway::gateway::LogTo;
    use cardstation_gateway::queue::Queue;
    use cardstation_protocol::messages::{GatewayEvent, CUT_MARK, MAX_EVENT_SUBJECT};

    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let started = gateway::now();
    let (_cd, console, _station, gw, states, _card, fp) = enrolled_gateway();
    // A card whose subject holds a control character and a 2,000-character CN.
    let _card_b = CardProcess::start(PORT_1, &states.path().join("b"));
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        format!("hostile\u{1b}[2J{}", "x".repeat(2000 - 11)),
    );
    let fp_b = write_card(READER_1, dn, None);

    let config = Config::load(&gw.config()).unwrap();
    let mut decider = gateway::decider(&config).unwrap();
    let keeper = SharedTrust::new(gateway::trust_keeper(&config).unwrap());
    let queue = Queue::open(&config.gateway.data_dir).unwrap();
    let mut decide = |reader: &str, at: i64| {
        let o = gateway::decide_on_at(reader, &mut decider, &keeper, at);
        gateway::record(&queue, &o, at, LogTo::Stderr).unwrap()
    };
    let now = gateway::now();
    let mut a_ids = vec![decide(READER_0, now)];
    let b_id = decide(READER_1, now);
    // A gateway whose clock was never set (NTP not there yet): 1970.
    let unset_id = decide(READER_0, 86_400);
    a_ids.push(unset_id.clone());
    // A row an earlier gateway queued as it was (a raw subject), and one the console
    // can never take (a malformed id): the second is set aside, the queue moves on.
    let raw = GatewayEvent {
        id: cardstation_gateway::queue::new_event_id(),
        at: now,
        reader: READER_0.into(),
        decision: Decision::Deny,
        fingerprint: Some(fp.clone()),
        subject: Some(format!("CN=raw\u{0}{}", "y".repeat(3000))),
        reasons: vec!["not-allowed".into()],
        bundle_version: None,
    };
    queue.push(&raw).unwrap();
    a_ids.push(raw.id.clone());
    queue
        .push(&GatewayEvent {
            id: "not-an-id".into(),
            ..raw.clone()
        })
        .unwrap();
    for _ in 0..3 {
        a_ids.push(decide(READER_0, now));
    }

    let s = gw.sync();
    assert!(s["events_error"].is_null(), "{s}");
    let status = gw.status();
    assert_eq!(status["queue"]["pending"], 0, "{status}");
    assert_eq!(status["queue"]["refused"], 1, "{status}");
    // Sent again: nothing changes (exactly once).
    gw.sync();

    let held = console.events(&fp);
    let mut held_ids: Vec<String> = held
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    held_ids.sort();
    a_ids.sort();
    assert_eq!(held_ids, a_ids, "{held:?}");
    for e in &held {
        let subject = e["subject"].as_str().unwrap_or("");
        assert!(subject.chars().count() <= MAX_EVENT_SUBJECT, "{e}");
        assert!(!subject.chars().any(char::is_control), "{e}");
        // The unset clock: recorded at the console's receive time, not in 1970.
        assert!(e["at"].as_i64().unwrap() >= started, "{e}");
    }
    let b = console.events(&fp_b);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["id"], b_id.as_str());
    let subject = b[0]["subject"].as_str().unwrap();
    assert!(subject.ends_with(CUT_MARK), "{subject}");
    assert_eq!(subject.chars().count(), MAX_EVENT_SUBJECT);
    assert!(subject.contains("hostile?[2J"), "{subject}");
}

/// An independent program's output; it must succeed.
fn tool(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed ({e}); scripts/setup-debian installs it"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A console data directory whose CA issues the cards' certificates, as the
/// administrator sets it up: `ca init`, then `issuance = "ca"` (and `settings`).
fn make_ca_site(data: &std::path::Path, settings: &str) {
    let init = std::process::Command::new(binary("cardstation-console"))
        .args(["ca", "init", "--name", "Plant B device CA", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    std::fs::write(
        data.join("console.toml"),
        format!("issuance = \"ca\"\n{settings}"),
    )
    .unwrap();
}

#[test]
fn a_card_the_site_ca_issued_is_read_back_by_other_tools_granted_and_denied_once_revoked() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    // The administrator's steps: ca init, issuance = "ca", serve, identity add.
    let console_dir = tempfile::tempdir().unwrap();
    make_ca_site(console_dir.path(), "[profiles.gateway]\ndays = 180\n");
    let console = start_console(console_dir.path(), free_port(), 168);
    let station = Station::from_kit(&console, "desk-ca");

    let states = tempfile::tempdir().unwrap();
    let card = CardProcess::start(PORT_0, &states.path().join("a"));
    let fp = station.enroll(READER_0, false);
    // Recorded at the console by the issuance itself: nothing waits in the outbox.
    assert_eq!(console.fingerprints(), std::slice::from_ref(&fp));

    // Independent clients read the issued certificate back; openssl verifies its chain.
    let pem = tool(
        "yubico-piv-tool",
        &["-r", READER_0, "-a", "read-certificate", "-s", "9e"],
    );
    let ca_path = console_dir.path().join("device-ca.pem");
    let cert_path = states.path().join("card.pem");
    std::fs::write(&cert_path, &pem).unwrap();
    let verdict = tool(
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            ca_path.to_str().unwrap(),
            cert_path.to_str().unwrap(),
        ],
    );
    assert!(verdict.contains(": OK"), "{verdict}");
    let text = tool(
        "openssl",
        &[
            "x509",
            "-noout",
            "-subject",
            "-issuer",
            "-in",
            cert_path.to_str().unwrap(),
        ],
    );
    assert!(text.contains("Plant B device CA"), "{text}");
    let der = cardstation_pki::certificate::from_pem_or_der(pem.as_bytes()).unwrap();
    let info = cardstation_pki::certificate::CertificateInfo::parse(&der).unwrap();
    assert_eq!(info.sha256, fp);
    let days = (info.not_after - info.not_before) / 86_400;
    assert!(
        (179..=180).contains(&days),
        "the profile's 180 days: {days}"
    );
    let listing = tool(
        "pkcs15-tool",
        &["--reader", READER_0, "--list-certificates"],
    );
    assert!(listing.contains("Card Authentication"), "{listing}");

    // A gateway configured as its kit says (no CA file of its own) takes the
    // revocation-only bundle: the site CA and what was revoked, no allow-list.
    let gw = Gateway::new(&console, GatewayOptions::default());
    gw.sync();
    let status = gw.status();
    let bundle = &status["bundle"];
    assert_eq!(
        (bundle["allowed"].as_u64(), bundle["issuing_cas"].as_u64()),
        (Some(0), Some(1)),
        "{status}"
    );
    let (code, v) = gw.check(READER_0);
    assert_eq!((code, v["decision"].as_str()), (0, Some("grant")), "{v}");
    // Revoked at the station: the next sync is a delta, and the card is denied.
    station.revoke(&fp, "lost");
    let synced = gw.sync();
    assert_eq!(synced["bundle"]["delta"], true, "{synced}");
    let (code, v) = gw.check(READER_0);
    assert_eq!(code, 1, "{v}");
    assert_eq!(reasons(&v), ["revoked"], "{v}");
    assert_eq!(gw.status()["bundle"]["revoked_ids"], 1);
    card.remove();
}

/// `cardstation renew --json [EXTRA]` on the card in `reader`: (old, new) fingerprints.
fn renew(station: &Station, reader: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["renew", "--reader", reader, "--json"];
    args.extend_from_slice(extra);
    let out = station.run(&args);
    assert!(
        out.status.success(),
        "renew: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["upload"]["error"], serde_json::Value::Null, "{v}");
    (
        v["renewal"]["old_fingerprint"]
            .as_str()
            .unwrap()
            .to_string(),
        v["renewal"]["fingerprint"].as_str().unwrap().to_string(),
    )
}

/// Renewal on both kinds of site: the card keeps its key and gets a certificate that
/// ends later; the old one is marked renewed at the console, not revoked (still in
/// the allow-list until its end); the gateway grants the card before and after.
#[test]
fn a_renewed_card_is_granted_throughout_and_its_old_certificate_retired_not_revoked() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    for ca_site in [true, false] {
        let console_dir = tempfile::tempdir().unwrap();
        if ca_site {
            make_ca_site(console_dir.path(), "");
        }
        let console = start_console(console_dir.path(), free_port(), 168);
        let station = Station::from_kit(&console, "desk-renew");
        let states = tempfile::tempdir().unwrap();
        let card = CardProcess::start(PORT_0, &states.path().join("a"));
        let first = station.enroll(READER_0, true);
        // At the CA site the revocation-only bundle names the CA: nothing to configure.
        let gw = Gateway::new(&console, GatewayOptions::default());
        gw.sync();
        assert_eq!(gw.check(READER_0).1["decision"], "grant");

        let (old, new) = renew(&station, READER_0, &[]);
        assert_eq!(old, first);
        assert_ne!(new, first);
        // The card holds the new certificate, for the same key.
        let pem = tool(
            "yubico-piv-tool",
            &["-r", READER_0, "-a", "read-certificate", "-s", "9e"],
        );
        let der = cardstation_pki::certificate::from_pem_or_der(pem.as_bytes()).unwrap();
        let new_info = cardstation_pki::certificate::CertificateInfo::parse(&der).unwrap();
        assert_eq!(new_info.sha256, new);
        // At the console: the old one renewed by the new, both active.
        let shown: serde_json::Value =
            serde_json::from_str(&console.admin_ok(&["cards", "show", &old, "--json"])).unwrap();
        assert_eq!(shown["status"], "active", "{shown}");
        assert_eq!(
            shown["superseded_by"].as_str(),
            Some(new.as_str()),
            "{shown}"
        );
        let mut both = vec![old.clone(), new.clone()];
        both.sort();
        assert_eq!(console.fingerprints(), both);
        // The cards to renew: the new one only (the old one is done).
        let due: serde_json::Value = serde_json::from_str(&console.admin_ok(&[
            "cards",
            "list",
            "--expiring",
            "3650d",
            "--json",
        ]))
        .unwrap();
        let due: Vec<&str> = due["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["sha256"].as_str().unwrap())
            .collect();
        assert_eq!(due, [new.as_str()], "ca site: {ca_site}");

        // The gateway grants the renewed card.
        gw.sync();
        let (code, v) = gw.check(READER_0);
        assert_eq!(
            (code, v["fingerprint"].as_str()),
            (0, Some(new.as_str())),
            "{v}"
        );

        // Renewed again, onto a new key made on the card: granted, the key changed,
        // the previous certificate retired by the console as the same card's (CHUID).
        let (again_old, again) = renew(&station, READER_0, &["--new-key"]);
        assert_eq!(again_old, new);
        let pem = tool(
            "yubico-piv-tool",
            &["-r", READER_0, "-a", "read-certificate", "-s", "9e"],
        );
        let der = cardstation_pki::certificate::from_pem_or_der(pem.as_bytes()).unwrap();
        let again_info = cardstation_pki::certificate::CertificateInfo::parse(&der).unwrap();
        assert_eq!(again_info.sha256, again);
        assert_ne!(again_info.key_sha256, new_info.key_sha256, "a new key");
        let shown: serde_json::Value =
            serde_json::from_str(&console.admin_ok(&["cards", "show", &new, "--json"])).unwrap();
        assert_eq!(
            shown["superseded_by"].as_str(),
            Some(again.as_str()),
            "{shown}"
        );
        gw.sync();
        let (code, v) = gw.check(READER_0);
        assert_eq!(
            (code, v["fingerprint"].as_str()),
            (0, Some(again.as_str())),
            "ca site {ca_site}: {v}"
        );
        card.remove();
    }
}

/// The console in `data` trusts the virtual cards' attestation root (as its
/// administrator adds a vendor's root), read when it next starts.
fn trust_virtual_card_attestation(data: &std::path::Path) {
    let root = std::process::Command::new(station_bin())
        .args(["virtual-card", "attestation-root"])
        .output()
        .unwrap();
    assert!(root.status.success());
    let roots = data.join("attestation-roots");
    std::fs::create_dir_all(&roots).unwrap();
    std::fs::write(roots.join("virtual-cards.pem"), &root.stdout).unwrap();
}

#[test]
fn a_gateway_that_requires_attestation_grants_the_attested_card_and_denies_one_without_proof() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().unwrap();
    let mut console = start_console(console_dir.path(), free_port(), 168);
    let station = Station::new(&console);
    let states = tempfile::tempdir().unwrap();

    // Card B is enrolled while the console trusts no attestation root: its proof cannot
    // be checked, so the console keeps none and does not mark it.
    let card_b = CardProcess::start(PORT_1, &states.path().join("b"));
    let fp_b = station.enroll(READER_1, true);

    // Then the console is given the virtual cards' root (read when it starts), and
    // card A's proof is verified and its certificate marked in the bundle.
    trust_virtual_card_attestation(console_dir.path());
    console.restart();
    let card_a = CardProcess::start(PORT_0, &states.path().join("a"));
    let fp_a = station.enroll(READER_0, true);

    let strict = Gateway::new(
        &console,
        GatewayOptions {
            readers: vec![READER_0.into(), READER_1.into()],
            extra: "require_attestation = true".into(),
            ..GatewayOptions::default()
        },
    );
    let s = strict.sync();
    assert_eq!(s["bundle"]["result"], "updated", "{s}");
    let status = strict.status();
    assert_eq!(status["bundle"]["attested"], 1, "{status}");
    let (code, v) = strict.check(READER_0);
    assert_eq!((code, v["decision"].as_str()), (0, Some("grant")), "{v}");
    assert_eq!(v["fingerprint"], fp_a.as_str());
    let (code, v) = strict.check(READER_1);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["fingerprint"], fp_b.as_str());
    assert_eq!(reasons(&v), ["not-attested"], "{v}");

    // A gateway without the setting grants both: the mark refuses nothing by itself.
    let lenient = Gateway::new(
        &console,
        GatewayOptions {
            readers: vec![READER_0.into(), READER_1.into()],
            ..GatewayOptions::default()
        },
    );
    lenient.sync();
    assert_eq!(lenient.check(READER_0).0, 0);
    assert_eq!(lenient.check(READER_1).0, 0);

    // fail_open cannot stand beside it: the marks come only with the bundle.
    let err = Config::load(&{
        let p = strict.dir.path().join("both.toml");
        let text = std::fs::read_to_string(strict.config()).unwrap();
        std::fs::write(&p, text.replace("fail_open = false", "fail_open = true")).unwrap();
        p
    })
    .map(|_| ())
    .expect_err("refused")
    .to_string();
    assert!(err.contains("require_attestation"), "{err}");
    card_a.remove();
    card_b.remove();
}

#[test]
fn at_a_ca_site_requiring_attestation_the_gateway_grants_what_the_ca_issued_since() {
    let _slots = exclusive();
    if pcscd_or_skip().is_none() {
        return;
    }
    let console_dir = tempfile::tempdir().unwrap();
    make_ca_site(console_dir.path(), "");
    let mut console = start_console(console_dir.path(), free_port(), 168);
    let station = Station::from_kit(&console, "desk-ca");
    let states = tempfile::tempdir().unwrap();

    // Card B gets its certificate while the console does not require attestation.
    let card_b = CardProcess::start(PORT_1, &states.path().join("b"));
    let fp_b = station.enroll(READER_1, false);

    // The site then requires it (the virtual cards' root trusted): from now on the CA
    // signs only for attested keys, and the bundle says since when.
    trust_virtual_card_attestation(console_dir.path());
    let settings = console_dir.path().join("console.toml");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text.push_str("\n[attestation]\nrequire_attestation = true\n");
    std::fs::write(&settings, text).unwrap();
    console.restart();
    let card_a = CardProcess::start(PORT_0, &states.path().join("a"));
    let fp_a = station.enroll(READER_0, false);

    let gw = Gateway::new(
        &console,
        GatewayOptions {
            readers: vec![READER_0.into(), READER_1.into()],
            extra: "require_attestation = true".into(),
            ..GatewayOptions::default()
        },
    );
    gw.sync();
    let status = gw.status();
    assert!(
        status["bundle"]["attested_since"].as_i64().is_some(),
        "{status}"
    );
    let (code, v) = gw.check(READER_0);
    assert_eq!((code, v["decision"].as_str()), (0, Some("grant")), "{v}");
    assert_eq!(v["fingerprint"], fp_a.as_str());
    let (code, v) = gw.check(READER_1);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["fingerprint"], fp_b.as_str());
    assert_eq!(reasons(&v), ["not-attested"], "{v}");
    card_a.remove();
    card_b.remove();
}
