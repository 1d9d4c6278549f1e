//! The hostile-input battery, TLS surface: bad credentials and bytes that are
//! not a handshake the hub accepts, on both TLS listeners (MQTT and HTTPS);
//! slowloris handshakes; a connection flood. Each input is refused with its
//! precise journal reason, ends only its own connection, and is followed by
//! the good device being served; RSS stays bounded.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;
mod hostile;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use hostile::*;
use hub_fixture::client::{ConnectOptions, DeviceClient};
use hub_fixture::clock::Clock;
use hub_fixture::hub::DeviceCredentials;
use hub_fixture::journal::{CloseReason, Event, HandshakeFailure, Listener, RefuseReason};
use hub_fixture::pki::{CertificateAuthority, KeyAlgorithm, Validity};
use hub_fixture::tls::PROTOCOL_VERSION_ALERT;
use rumqttc::ConnectReturnCode;
use tokio::io::AsyncWriteExt;

const DAY: Duration = Duration::from_secs(86_400);
/// The handshake timeout of the battery's hub: short, so quiet inputs are
/// cut quickly, yet far above a loopback handshake on a loaded machine.
const HANDSHAKE: Duration = Duration::from_millis(1500);

/// What a hostile client does.
enum Input {
    /// A TLS handshake with these credentials (`None`: no client certificate).
    Handshake(Option<DeviceCredentials>),
    /// Raw bytes, then the client closes its side.
    BytesThenClose(Vec<u8>),
    /// Raw bytes, then the client goes quiet (the handshake timeout cuts it).
    BytesThenQuiet(Vec<u8>),
}

struct Case {
    name: &'static str,
    input: Input,
    reason: HandshakeFailure,
    /// Text the journal's detail must hold ("" for any).
    detail_has: &'static str,
    /// Exactly what the hub must answer on the wire, where it is defined.
    answer: Option<Vec<u8>>,
}

fn case(name: &'static str, input: Input, reason: HandshakeFailure) -> Case {
    Case {
        name,
        input,
        reason,
        detail_has: "",
        answer: None,
    }
}

fn validity(from: SystemTime, to: SystemTime) -> Validity {
    Validity {
        not_before: from,
        not_after: to,
    }
}

/// A certificate chain and key made with rcgen: `cn` (none if `None`),
/// client-auth usage, signed by `issuer` (self-signed if `None`); the chain
/// carries `intermediate` after the leaf if given.
fn rcgen_cert(
    cn: Option<&str>,
    issuer: Option<(&str, &str)>,
    intermediate: Option<&str>,
) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = match issuer {
        None => params.self_signed(&key).unwrap(),
        Some((cert_pem, key_pem)) => {
            let signer = rcgen::KeyPair::from_pem(key_pem).unwrap();
            let issuer = rcgen::Issuer::from_ca_cert_pem(cert_pem, signer).unwrap();
            params.signed_by(&key, &issuer).unwrap()
        }
    };
    let mut chain = cert.pem();
    if let Some(i) = intermediate {
        chain.push_str(i);
    }
    (chain, key.serialize_pem())
}

/// Every spelling an operator may paste a serial in; revocation must hold
/// for each (the hub keeps serials in one canonical form).
fn spellings(serial: &str) -> [(&'static str, String); 4] {
    let upper = serial.to_uppercase();
    let octets = |s: &str| {
        s.as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(":")
    };
    [
        ("revoked (serial as issued)", serial.to_owned()),
        ("revoked (serial in upper case)", upper.clone()),
        ("revoked (serial with colons)", octets(serial)),
        (
            "revoked (serial 0x, 00 octet, upper case, colons)",
            format!("0x00:{}", octets(&upper)),
        ),
    ]
}

fn cases(bench: &Bench) -> Vec<Case> {
    use HandshakeFailure as H;
    use Input::*;
    let hub = &bench.hub;
    let now = hub.clock().now();
    let foreign = CertificateAuthority::generate("foreign CA", now)
        .unwrap()
        .issue_device(GOOD, KeyAlgorithm::EcdsaP256, Validity::days_from(now, 30))
        .unwrap();
    let foreign = bench.credentials(
        GOOD,
        foreign.cert_pem,
        foreign.key_pem.unwrap(),
        foreign.serial,
    );
    let (self_cert, self_key) = rcgen_cert(Some(GOOD), None, None);
    let issue = |from, to| {
        hub.issue_certificate(MALLORY, KeyAlgorithm::EcdsaP256, validity(from, to))
            .unwrap()
    };
    let data = hub.data_dir();
    let ca_cert = std::fs::read_to_string(data.join("ca.pem")).unwrap();
    let ca_key = std::fs::read_to_string(data.join("ca.key")).unwrap();
    let (no_cn_cert, no_cn_key) = rcgen_cert(None, Some((&ca_cert, &ca_key)), None);
    let server_eku = bench
        .hub_ca()
        .issue_server(&[GOOD.into()], Validity::days_from(now, 30))
        .unwrap();
    // A device's certificate used as a CA: the leaf names another device.
    let g = &bench.good;
    let (chained, chained_key) = rcgen_cert(
        Some("ghost"),
        Some((&g.cert_pem, &g.key_pem)),
        Some(&g.cert_pem),
    );
    hub.register_device("gone").unwrap();
    let gone = hub.issue_certificate(
        "gone",
        KeyAlgorithm::EcdsaP256,
        Validity::days_from(now, 30),
    );
    hub.delete_device("gone").unwrap();

    let mut v = vec![
        case(
            "no client certificate",
            Handshake(None),
            H::NoClientCertificate,
        ),
        case(
            "a certificate from a foreign CA with the good device's CN",
            Handshake(Some(foreign)),
            H::UnknownIssuer,
        ),
        case(
            "a self-signed certificate with the good device's CN",
            Handshake(Some(bench.credentials(
                GOOD,
                self_cert,
                self_key,
                String::new(),
            ))),
            H::UnknownIssuer,
        ),
        case(
            "an expired certificate",
            Handshake(Some(issue(now - 10 * DAY, now - DAY))),
            H::CertificateExpired,
        ),
        case(
            "a not-yet-valid certificate",
            Handshake(Some(issue(now + DAY, now + 30 * DAY))),
            H::CertificateNotYetValid,
        ),
        case(
            "a hub-CA certificate without a subject CN",
            Handshake(Some(bench.credentials(
                "",
                no_cn_cert,
                no_cn_key,
                String::new(),
            ))),
            H::BadCertificate,
        ),
        case(
            "a hub-CA server certificate (no client-auth usage) as a client certificate",
            Handshake(Some(bench.credentials(
                GOOD,
                server_eku.cert_pem,
                server_eku.key_pem.unwrap(),
                server_eku.serial,
            ))),
            H::BadCertificate,
        ),
        Case {
            detail_has: "EndEntityUsedAsCa",
            ..case(
                "a leaf signed by a device certificate (not a CA)",
                Handshake(Some(bench.credentials(
                    "ghost",
                    chained,
                    chained_key,
                    String::new(),
                ))),
                H::BadCertificate,
            )
        },
        case(
            "the certificate of a deleted device",
            Handshake(Some(gone.unwrap())),
            H::CertificateRevoked,
        ),
    ];
    for i in 0..4 {
        let creds = issue(now - DAY, now + 30 * DAY);
        let (name, spelled) = spellings(&creds.serial)[i].clone();
        hub.revoke(&spelled)
            .unwrap_or_else(|e| panic!("revoke {spelled:?}: {e}"));
        v.push(case(name, Handshake(Some(creds)), H::CertificateRevoked));
    }

    let hello = client_hello(hub);
    let connect = {
        let mut b = bytes::BytesMut::new();
        let mut c = rumqttc::mqttbytes::v4::Connect::new(MALLORY);
        c.set_login("localhost/mallory/?api-version=2021-04-12", "");
        rumqttc::mqttbytes::v4::Packet::Connect(c)
            .write(&mut b, usize::MAX)
            .unwrap();
        b.to_vec()
    };
    let garbage: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(97) >> 1) as u8)
        .collect();
    let alert = Some(PROTOCOL_VERSION_ALERT.to_vec());
    v.extend([
        case(
            "plain MQTT CONNECT without TLS",
            BytesThenClose(connect),
            H::NotTls,
        ),
        case(
            "plain HTTP without TLS",
            BytesThenClose(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n".to_vec()),
            H::NotTls,
        ),
        case("garbage bytes", BytesThenClose(garbage), H::NotTls),
        Case {
            detail_has: "TLS 1.0",
            answer: alert.clone(),
            ..case(
                "a ClientHello offering only TLS 1.0",
                BytesThenQuiet(crafted_hello(0x0301, &[0x002f], None)),
                H::ProtocolVersion,
            )
        },
        Case {
            detail_has: "TLS 1.1",
            answer: alert.clone(),
            ..case(
                "a ClientHello offering only TLS 1.1 (supported_versions)",
                BytesThenQuiet(crafted_hello(0x0303, &[0xc02b], Some(&[0x0302, 0x0301]))),
                H::ProtocolVersion,
            )
        },
        Case {
            detail_has: "SSL 3.0",
            answer: alert,
            ..case(
                "a ClientHello offering only SSL 3.0",
                BytesThenQuiet(crafted_hello(0x0300, &[0x002f], None)),
                H::ProtocolVersion,
            )
        },
        case(
            "a TLS 1.2 ClientHello offering only a cipher suite the hub lacks",
            BytesThenQuiet(crafted_hello(0x0303, &[0x002f], None)),
            H::NoCommonCipherSuite,
        ),
        case(
            "a truncated ClientHello, then close",
            BytesThenClose(hello[..hello.len() / 2].to_vec()),
            H::ConnectionClosed,
        ),
        case(
            "a truncated ClientHello, then silence",
            BytesThenQuiet(hello[..hello.len() / 2].to_vec()),
            H::Timeout,
        ),
        case("TCP open, then silence", BytesThenQuiet(vec![]), H::Timeout),
        case(
            "TCP open, then close",
            BytesThenClose(vec![]),
            H::ConnectionClosed,
        ),
        case(
            "a record header lying about its length (65535), then close",
            BytesThenClose(vec![22, 3, 1, 0xff, 0xff, 1, 0, 0, 1]),
            H::NotTls,
        ),
        case(
            "an SSLv2-style ClientHello",
            BytesThenClose(vec![0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00]),
            H::NotTls,
        ),
        case(
            "a fatal alert instead of a ClientHello",
            BytesThenClose(vec![21, 3, 3, 0, 2, 2, 40]),
            H::PeerAlert,
        ),
    ]);
    v
}

/// Runs one input against one listener and checks its refusal.
async fn run_case(bench: &Bench, listener: Listener, case: &Case) {
    let hub = &bench.hub;
    let addr = match listener {
        Listener::Mqtt => hub.mqtt_addr(),
        Listener::Https => hub.https_addr(),
    };
    let what = format!("{listener:?}: {}", case.name);
    let mark = hub.journal().len();
    let (peer, answer): (SocketAddr, Vec<u8>) = match &case.input {
        Input::Handshake(creds) => {
            let (peer, tls) = tls_connect(hub, addr, client_config(hub, creds.as_ref())).await;
            // TLS 1.3 completes on the client before the hub has judged its
            // certificate: the refusal then arrives as an alert on read.
            if let Ok(mut tls) = tls {
                let got = read_until_closed(&mut tls, &what).await;
                assert!(got.is_empty(), "{what}: application data {got:?}");
            }
            (peer, Vec::new())
        }
        Input::BytesThenClose(bytes) => {
            let (peer, mut tcp) = raw_tcp(addr, bytes).await;
            tcp.shutdown().await.unwrap();
            (peer, read_until_closed(&mut tcp, &what).await)
        }
        Input::BytesThenQuiet(bytes) => {
            let (peer, mut tcp) = raw_tcp(addr, bytes).await;
            (peer, read_until_closed(&mut tcp, &what).await)
        }
    };
    let e = expect_peer(hub, mark, peer, &what, |e| {
        matches!(e, Event::HandshakeFailed { .. })
    })
    .await;
    let Event::HandshakeFailed {
        listener: l,
        reason,
        detail,
    } = &e.event
    else {
        unreachable!()
    };
    assert_eq!(
        (*l, *reason),
        (listener, case.reason),
        "{what}: detail {detail:?}"
    );
    assert!(
        detail.contains(case.detail_has),
        "{what}: detail {detail:?}"
    );
    if let Some(expected) = &case.answer {
        assert_eq!(&answer, expected, "{what}: the hub's answer on the wire");
    }
    let accepted = entries_of(hub, mark, peer)
        .into_iter()
        .filter(|e| matches!(e.event, Event::TlsAccepted { .. }))
        .count();
    assert_eq!(accepted, 0, "{what}: accepted");
    bench.still_served(&what).await;
    if listener == Listener::Https {
        bench.https_still_served(&what).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_inputs_on_both_listeners_are_refused_with_their_reason() {
    let bench = Bench::start(|c| c.handshake_timeout = HANDSHAKE).await;
    let cases = cases(&bench);
    assert!(cases.len() >= 25, "{} inputs", cases.len());
    for listener in [Listener::Mqtt, Listener::Https] {
        for case in &cases {
            run_case(&bench, listener, case).await;
        }
    }
    bench.assert_rss_bounded("after the TLS battery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_expired_on_the_virtual_clock_is_refused() {
    let bench = Bench::start(|_| {}).await;
    let hub = &bench.hub;
    let creds = hub
        .issue_certificate(
            MALLORY,
            KeyAlgorithm::EcdsaP256,
            Validity::days_from(hub.clock().now(), 1),
        )
        .unwrap();
    // Two days on the hub's clock: the one-day certificate is expired, the
    // good device's (a year) is not.
    hub.advance_clock(2 * DAY).unwrap();
    let case = case(
        "a certificate expired on the virtual clock",
        Input::Handshake(Some(creds)),
        HandshakeFailure::CertificateExpired,
    );
    run_case(&bench, Listener::Mqtt, &case).await;
    run_case(&bench, Listener::Https, &case).await;
}

/// Valid TLS identities the hub must still refuse at CONNECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_that_pass_tls_but_are_not_enabled_devices_are_refused() {
    let bench = Bench::start(|_| {}).await;
    let hub = &bench.hub;
    hub.register_device("off").unwrap();
    let off = hub.issue_certificate(
        "off",
        KeyAlgorithm::EcdsaP256,
        Validity::days_from(hub.clock().now(), 30),
    );
    hub.set_device_status("off", hub_fixture::store::DeviceStatus::Disabled)
        .unwrap();
    for (name, creds, reason) in [
        (
            "a hub-CA certificate of an unregistered device",
            bench.hub_ca_credentials("ghost"),
            RefuseReason::UnknownDevice,
        ),
        (
            "the certificate of a disabled device",
            off.unwrap(),
            RefuseReason::DeviceDisabled,
        ),
    ] {
        let mark = hub.journal().len();
        let (peer, tls) = tls_connect(hub, hub.mqtt_addr(), client_config(hub, Some(&creds))).await;
        drop(tls);
        // The handshake passes (the chain is good) ...
        expect_peer(hub, mark, peer, name, |e| {
            matches!(e, Event::TlsAccepted { .. })
        })
        .await;
        // ... and CONNECT is refused with CONNACK 5.
        let (_, ack) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
            .await
            .unwrap();
        assert_eq!(ack.code, ConnectReturnCode::NotAuthorized, "{name}");
        common::expect_entry(
            hub,
            mark,
            name,
            |e| matches!(&e.event, Event::ConnectRefused { reason: r, .. } if *r == reason),
        )
        .await;
        bench.still_served(name).await;
    }
}

/// A client that sends its ClientHello one byte at a time, each byte well
/// within the handshake timeout, is still cut when the timeout (counted from
/// accept) runs out — on both listeners at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_handshakes_on_both_listeners_are_cut_at_the_deadline() {
    let bench = Bench::start(|c| c.handshake_timeout = HANDSHAKE).await;
    let hub = &bench.hub;
    let hello = client_hello(hub);
    let mark = hub.journal().len();
    let slow = |addr: SocketAddr| {
        let hello = hello.clone();
        async move {
            let (peer, tcp) = raw_tcp(addr, &[]).await;
            let start = Instant::now();
            let (mut rd, mut wr) = tokio::io::split(tcp);
            tokio::select! {
                _ = dribble(&mut wr, &hello, HANDSHAKE / 6) => unreachable!(),
                got = read_until_closed(&mut rd, "slowloris handshake") => {
                    assert!(got.is_empty(), "{got:?}");
                }
            }
            (peer, start.elapsed())
        }
    };
    let ((mqtt_peer, mqtt_took), (https_peer, https_took)) =
        tokio::join!(slow(hub.mqtt_addr()), slow(hub.https_addr()));
    for (listener, peer, took) in [
        (Listener::Mqtt, mqtt_peer, mqtt_took),
        (Listener::Https, https_peer, https_took),
    ] {
        // Cut at the deadline: not before it, and not much after.
        assert!(
            took >= HANDSHAKE - Duration::from_millis(50) && took < HANDSHAKE * 4,
            "{listener:?}: cut after {took:?} (timeout {HANDSHAKE:?})"
        );
        expect_peer(hub, mark, peer, "slowloris handshake", |e| {
            matches!(e, Event::HandshakeFailed { listener: l, reason: HandshakeFailure::Timeout, .. } if *l == listener)
        })
        .await;
    }
    bench.still_served("slowloris handshakes").await;
    bench.https_still_served("slowloris handshakes").await;
    bench.assert_rss_bounded("after slowloris handshakes");
}

/// Hundreds of connections held open — TCP only, and TLS done but nothing
/// sent — do not keep the good device from being served while they are
/// held, and each ends with its journal entry when released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_held_while_the_good_device_is_served() {
    const TCP_MQTT: usize = 300;
    const TCP_HTTPS: usize = 100;
    const TLS_MQTT: usize = 40;
    const TLS_HTTPS: usize = 20;
    // Long timeouts: the flood must still be held when the good device is
    // checked (the timeouts themselves are tested above and in hostile_mqtt).
    let bench = Bench::start(|c| {
        c.handshake_timeout = Duration::from_secs(120);
        c.connect_timeout = Duration::from_secs(120);
        c.https_header_timeout = Duration::from_secs(120);
    })
    .await;
    let hub = &bench.hub;
    let mark = hub.journal().len();
    let mut tcp = Vec::new();
    for i in 0..TCP_MQTT + TCP_HTTPS {
        let addr = if i < TCP_MQTT {
            hub.mqtt_addr()
        } else {
            hub.https_addr()
        };
        tcp.push(raw_tcp(addr, &[]).await.1);
    }
    let mut tls = Vec::new();
    for i in 0..TLS_MQTT + TLS_HTTPS {
        let addr = if i < TLS_MQTT {
            hub.mqtt_addr()
        } else {
            hub.https_addr()
        };
        let (_, s) = tls_connect(hub, addr, client_config(hub, Some(&bench.mallory))).await;
        tls.push(s.expect("a flood handshake"));
    }
    // Every TLS connection was accepted (the hub answered them all).
    common::expect_entry(hub, mark, "flood handshakes", {
        let mut n = 0;
        move |e| {
            n += usize::from(matches!(e.event, Event::TlsAccepted { .. }));
            n == TLS_MQTT + TLS_HTTPS
        }
    })
    .await;
    bench.still_served("a held flood").await;
    bench.https_still_served("a held flood").await;
    bench.assert_rss_bounded("while the flood is held");
    // Nothing of the flood has been dropped yet: the check above ran while
    // all of it was held.
    let dropped = hub
        .journal()
        .since(mark)
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                Event::HandshakeFailed { .. }
                    | Event::SessionClosed {
                        reason: CloseReason::PeerClosed | CloseReason::ConnectTimeout,
                        ..
                    }
            ) && e.device_id.as_deref() != Some(GOOD)
        })
        .count();
    assert_eq!(dropped, 0, "flood connections ended while held");

    let mark = hub.journal().len();
    drop(tcp);
    drop(tls);
    expect_count(hub, mark, TCP_MQTT + TCP_HTTPS, "released TCP flood", |e| {
        matches!(
            e.event,
            Event::HandshakeFailed {
                reason: HandshakeFailure::ConnectionClosed,
                ..
            }
        )
    })
    .await;
    // Dropped without close_notify (and with the hub's session tickets
    // unread, so the kernel resets): an I/O error to the hub.
    expect_count(hub, mark, TLS_MQTT, "released TLS flood", |e| {
        matches!(
            e.event,
            Event::SessionClosed {
                reason: CloseReason::IoError,
                ..
            }
        ) && e.device_id.as_deref() == Some(MALLORY)
    })
    .await;
    bench.still_served("a released flood").await;
    bench.https_still_served("a released flood").await;
    bench.assert_rss_bounded("after the flood");
}
