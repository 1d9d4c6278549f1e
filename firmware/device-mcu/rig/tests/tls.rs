//! Mutual TLS 1.3 from the thumbv7m image: the device takes its time from
//! an SNTP responder in the namespace (and says it will not connect before
//! it has one), then connects to a rustls server standing in for the hub,
//! which requires a client certificate from the provisioned CA. One image,
//! built once; a fresh PKI packed into a provisioning record (`prov::pack`)
//! that QEMU lays into the board's provisioning region; one QEMU boot per
//! scenario:
//!
//! - the hub's certificate is right: handshake, the server sees the
//!   device's certificate, the device's MQTT CONNECT (client id, user
//!   name), the server's CONNACK refusing it (NotAuthorized) on the
//!   device's console, close_notify;
//! - the hub's certificate is from another CA, is for another name (its
//!   CommonName is the hub's, its subjectAltName is not), or has expired:
//!   each refused by the device, which says why on its console.
//! - fault switches (an image built per fault set,
//!   `build_image_with_faults`): with `no-server-verify` the other-CA hub
//!   is accepted (handshake, CONNECT); with `listen-debug` a TCP connect
//!   from the host to the device's port 2323 succeeds and reads the debug
//!   banner, while the default image refuses it (RST).
//!
//! Needs root, `qemu-system-arm` and the thumbv7m-none-eabi target; run
//! with `cargo test` in rig/.
#![allow(clippy::unwrap_used)]

mod common;

use common::broker::dial_debug_port;
use common::{ca, number_after, one_at_a_time, unix_now};
use device_mcu_rig::prov::{pack, HubAt, Provision};
use device_mcu_rig::sntp::Sntp;
use device_mcu_rig::{NetNs, Qemu};
use rcgen::{
    CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;

const HOST: &str = "10.0.17.1";
const DEVICE: &str = "10.0.17.2";
const HUB_NAME: &str = "hub.sacbench.test";
const HUB_PORT: u16 = 8883;
const SNTP_PORT: u16 = 123;
const DEVICE_ID: &str = "device-mcu-0001";
/// CONNACK, return code 5 (not authorized): the stand-in speaks no more MQTT.
const CONNACK_REFUSED: [u8; 4] = [0x20, 0x02, 0x00, 0x05];
/// Waits on the device through a TLS handshake: P-256 in emulation.
const HANDSHAKE: Duration = Duration::from_secs(120);

/// A server certificate (then the intermediates it sends) and its key (PKCS#8 DER).
struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

/// The PKI and the image built with it.
struct Fixture {
    elf: PathBuf,
    /// The provisioning record (file) the rig lays into the region.
    prov: PathBuf,
    client_cert: Vec<u8>,
    /// Issued by the provisioned CA for the hub's name: the right one.
    good: ServerIdentity,
    /// For the hub's name, by a CA the device was not given.
    other_ca: ServerIdentity,
    /// By the provisioned CA, subjectAltName other.sacbench.test (CommonName
    /// the hub's name).
    wrong_name: ServerIdentity,
    /// By the provisioned CA for the hub's name, expired yesterday.
    expired: ServerIdentity,
    /// For the hub's name by an intermediate CA the provisioned CA signed;
    /// the server sends both.
    chained: ServerIdentity,
    /// The server's trust anchor for client certificates.
    ca: CertificateDer<'static>,
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    san: &str,
    common_name: &str,
    eku: ExtendedKeyUsagePurpose,
    not_after: OffsetDateTime,
) -> ServerIdentity {
    let mut params = CertificateParams::new(vec![san.to_owned()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![eku];
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(30);
    params.not_after = not_after;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    ServerIdentity {
        chain: vec![cert.der().clone()],
        key: key.serialize_der(),
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let now = OffsetDateTime::now_utc();
        let year = now + time::Duration::days(365);
        let ca_issuer = ca("sacbench test CA");
        let other = ca("another CA");
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        let good = leaf(&ca_issuer, HUB_NAME, HUB_NAME, server.clone(), year);
        let other_ca = leaf(&other, HUB_NAME, HUB_NAME, server.clone(), year);
        let wrong_name = leaf(
            &ca_issuer,
            "other.sacbench.test",
            HUB_NAME,
            server.clone(),
            year,
        );
        let expired = leaf(
            &ca_issuer,
            HUB_NAME,
            HUB_NAME,
            server,
            now - time::Duration::days(1),
        );
        let intermediate = {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
            params.distinguished_name = DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::CommonName, "sacbench test intermediate");
            CertifiedIssuer::signed_by(params, KeyPair::generate().unwrap(), &ca_issuer).unwrap()
        };
        let mut chained = leaf(
            &intermediate,
            HUB_NAME,
            HUB_NAME,
            ExtendedKeyUsagePurpose::ServerAuth,
            year,
        );
        chained.chain.push(intermediate.der().clone());
        let client = leaf(
            &ca_issuer,
            DEVICE_ID,
            DEVICE_ID,
            ExtendedKeyUsagePurpose::ClientAuth,
            year,
        );

        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("devmcu-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut seed)
            .unwrap();
        let host: Ipv4Addr = HOST.parse().unwrap();
        let record = pack(&Provision {
            ca: ca_issuer.der().to_vec(),
            cert: client.chain[0].to_vec(),
            key: client.key.clone(),
            seed,
            device_id: DEVICE_ID.into(),
            hub_name: HUB_NAME.into(),
            // Record v1: the hub's address (tests/dns.rs boots v2).
            hub: HubAt::Address(SocketAddrV4::new(host, HUB_PORT)),
            sntp: SocketAddrV4::new(host, SNTP_PORT),
            // Provisioned an hour ago: no clock reading before that is believed.
            time_floor: unix_now() - 3600,
            ip: DEVICE.parse().unwrap(),
            prefix: 24,
            gateway: host,
        })
        .unwrap();
        let prov = dir.join("prov.bin");
        std::fs::write(&prov, record).unwrap();
        let elf = common::own_image(&dir, &[]);
        Fixture {
            elf,
            prov,
            client_cert: client.chain[0].to_vec(),
            good,
            other_ca,
            wrong_name,
            expired,
            chained,
            ca: ca_issuer.der().clone(),
        }
    })
}

/// What the hub stand-in saw.
#[derive(Debug)]
enum Hub {
    Accepted(SocketAddr),
    HandshakeFailed(String),
    Handshaken {
        client_cert: Option<Vec<u8>>,
    },
    /// The first MQTT packet (the device's CONNECT), whole.
    Connect(Vec<u8>),
    /// What followed the answer: Ok(bytes) on close_notify, Err on anything else.
    Closed(Result<String, String>),
}

/// A rustls TLS 1.3 server requiring a client certificate from the CA,
/// presenting `identity`; one connection, reported event by event.
fn start_hub(ns: &NetNs, fx: &Fixture, identity: &ServerIdentity) -> Receiver<Hub> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(fx.ca.clone()).unwrap();
    let clients = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(clients)
        .with_single_cert(
            identity.chain.clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.clone())),
        )
        .unwrap();
    let config = Arc::new(config);
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    ns.spawn_inside(move || {
        let listener = TcpListener::bind((HOST, HUB_PORT)).unwrap();
        ready_tx.send(()).unwrap();
        let (mut tcp, from) = listener.accept().unwrap();
        let _ = tx.send(Hub::Accepted(from));
        // A bound on a stuck peer (the test fails on its own waits first).
        tcp.set_read_timeout(Some(Duration::from_secs(300)))
            .unwrap();
        let mut conn = ServerConnection::new(config).unwrap();
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                let _ = tx.send(Hub::HandshakeFailed(e.to_string()));
                return;
            }
        }
        let client_cert = conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|c| c.to_vec());
        let _ = tx.send(Hub::Handshaken { client_cert });
        let mut stream = StreamOwned::new(conn, tcp);
        // CONNECT: fixed header, one-byte remaining length (it is < 128 B).
        let mut head = [0u8; 2];
        if let Err(e) = stream.read_exact(&mut head) {
            let _ = tx.send(Hub::Closed(Err(e.to_string())));
            return;
        }
        let mut packet = head.to_vec();
        packet.resize(2 + usize::from(head[1] & 0x7f), 0);
        if let Err(e) = stream.read_exact(&mut packet[2..]) {
            let _ = tx.send(Hub::Closed(Err(e.to_string())));
            return;
        }
        let _ = tx.send(Hub::Connect(packet));
        if let Err(e) = stream.write_all(&CONNACK_REFUSED) {
            let _ = tx.send(Hub::Closed(Err(e.to_string())));
            return;
        }
        // rustls reads end (Ok) only on close_notify; a bare FIN is an error.
        let mut rest = String::new();
        let _ = tx.send(Hub::Closed(
            stream
                .read_to_string(&mut rest)
                .map(|_| rest)
                .map_err(|e| e.to_string()),
        ));
    })
    .unwrap();
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("hub listening in the namespace");
    rx
}

fn start_sntp(ns: &NetNs, offset: i64) -> Sntp {
    Sntp::start(ns, HOST, SNTP_PORT, offset).unwrap()
}

/// One scenario at a time: each QEMU spins a host core.
fn boot(scenario: &str, fx: &Fixture) -> (NetNs, Qemu) {
    boot_image(scenario, fx, &fx.elf, &[])
}

/// Boots `elf`, built with `faults`, and checks that its boot line says so.
fn boot_image(scenario: &str, fx: &Fixture, elf: &Path, faults: &[&str]) -> (NetNs, Qemu) {
    let ns = NetNs::create(
        &format!("devmcu-tls-{}-{scenario}", std::process::id()),
        "tap0",
        &format!("{HOST}/24"),
    )
    .unwrap();
    let mut qemu = Qemu::boot_provisioned(&ns, elf, "52:54:00:17:00:02", Some(&fx.prov)).unwrap();
    let line = format!("device-mcu: faults=[{}]", faults.join(","));
    qemu.wait_line(&line, Duration::from_secs(30)).unwrap();
    (ns, qemu)
}

/// The image built with the fault switches `faults` (one build per set,
/// our own copy of it).
fn fault_image(fx: &Fixture, faults: &[&str]) -> PathBuf {
    static IMAGES: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut images = IMAGES.lock().unwrap_or_else(|p| p.into_inner());
    let key = faults.join("+");
    let images = images.get_or_insert_with(HashMap::new);
    if let Some(elf) = images.get(&key) {
        return elf.clone();
    }
    let dir = fx.prov.parent().unwrap();
    let elf = common::own_image(dir, faults);
    images.insert(key, elf.clone());
    elf
}

fn recv(hub: &Receiver<Hub>, what: &str) -> Hub {
    hub.recv_timeout(HANDSHAKE)
        .unwrap_or_else(|e| panic!("hub: no event ({what}): {e}"))
}

#[test]
fn waits_for_time_then_connects_with_its_certificate_and_exchanges_data() {
    let fx = fixture();
    let _one = one_at_a_time();
    let (ns, mut qemu) = boot("good", fx);
    let hub = start_hub(&ns, fx, &fx.good);
    let up = qemu.wait_line("net: up", Duration::from_secs(30)).unwrap();
    assert!(up.contains(&format!("hub={HUB_NAME}")), "{up}");

    // No SNTP server yet: the device says it has no time and does not dial.
    qemu.wait_line("time: no answer from sntp", Duration::from_secs(30))
        .unwrap();
    let second = qemu
        .wait_line("time: no answer from sntp", Duration::from_secs(30))
        .unwrap();
    assert!(second.contains("no time, so no TLS connection"), "{second}");
    match hub.try_recv() {
        Err(TryRecvError::Empty) => {}
        other => panic!("the device reached the hub without time: {other:?}"),
    }

    // Time arrives: it is the host's, and the device dials.
    let _sntp = start_sntp(&ns, 0);
    let time = qemu
        .wait_line("time: unix=", Duration::from_secs(30))
        .unwrap();
    let host_now = unix_now();
    let device_now = number_after(&time, "unix=");
    assert!(host_now.abs_diff(device_now) <= 5, "{time} vs {host_now}");
    match recv(&hub, "accept") {
        Hub::Accepted(from) => assert_eq!(from.ip().to_string(), DEVICE),
        other => panic!("{other:?}"),
    }
    match recv(&hub, "handshake") {
        Hub::Handshaken { client_cert } => assert_eq!(
            client_cert.as_deref(),
            Some(fx.client_cert.as_slice()),
            "the hub saw the device's certificate"
        ),
        other => panic!("{other:?}; console {:?}", qemu.seen),
    }
    let done = qemu.wait_line("tls: handshake done", HANDSHAKE).unwrap();
    assert!(done.contains(&format!("hub {HUB_NAME} verified")), "{done}");
    match recv(&hub, "connect") {
        Hub::Connect(packet) => {
            assert_eq!(packet[0], 0x10, "MQTT CONNECT: {packet:?}");
            let text = String::from_utf8_lossy(&packet);
            assert!(text.contains("MQTT"), "{text}");
            assert!(text.contains(DEVICE_ID), "{text}");
            let user = format!("{HUB_NAME}/{DEVICE_ID}/?api-version=2021-04-12");
            assert!(text.contains(&user), "{text}");
        }
        other => panic!("{other:?}"),
    }
    let answer = qemu
        .wait_line(
            "app: session closed: CONNACK refused",
            Duration::from_secs(60),
        )
        .unwrap();
    // 5: not authorized (the test hub's answer).
    assert!(answer.contains("(return code 5)"), "{answer}");
    qemu.wait_line("tls: close_notify sent", Duration::from_secs(60))
        .unwrap();
    match recv(&hub, "close") {
        Hub::Closed(Ok(rest)) => assert_eq!(rest, "", "nothing after the CONNECT"),
        other => panic!("no close_notify: {other:?}"),
    }

    // RAM: stack and heap within the 256 KB board class.
    let stack = qemu
        .wait_line("stack: peak", Duration::from_secs(10))
        .unwrap();
    let heap = qemu
        .wait_line("heap: peak", Duration::from_secs(10))
        .unwrap();
    let stack = number_after(&stack, "peak=");
    let heap_peak = number_after(&heap, "peak=");
    assert!(heap_peak > 0, "webpki allocated: {heap}");
    assert!(stack + 64 * 1024 < 256 * 1024, "stack {stack} + heap arena");
    eprintln!("measured: stack peak {stack} B, heap peak {heap_peak} B");
}

/// Boots against a hub presenting `identity`; the device must refuse it
/// with a console line containing `why`, and the hub must see the handshake
/// fail.
fn refuses(scenario: &str, identity: fn(&Fixture) -> &ServerIdentity, why: &[&str]) {
    let fx = fixture();
    let _one = one_at_a_time();
    let (ns, mut qemu) = boot(scenario, fx);
    let hub = start_hub(&ns, fx, identity(fx));
    let _sntp = start_sntp(&ns, 0);
    qemu.wait_line("time: unix=", Duration::from_secs(60))
        .unwrap();
    // Every outcome ends the attempt and schedules the next one: refused
    // or not, no long wait.
    qemu.wait_line("app: reconnecting in", HANDSHAKE).unwrap();
    let refused = qemu
        .seen
        .iter()
        .find(|l| l.contains("tls: refused the hub's certificate"))
        .unwrap_or_else(|| panic!("{scenario}: not refused; console {:?}", qemu.seen))
        .clone();
    for needle in why {
        assert!(refused.contains(needle), "{scenario}: {refused}");
    }
    // A refused certificate is retried after the backoff, never accepted.
    qemu.wait_line(
        "tls: dialling 10.0.17.1:8883 (attempt 2,",
        Duration::from_secs(30),
    )
    .unwrap();
    match recv(&hub, "accept") {
        Hub::Accepted(_) => {}
        other => panic!("{other:?}"),
    }
    match recv(&hub, "handshake") {
        Hub::HandshakeFailed(e) => eprintln!("{scenario}: the hub's handshake failed: {e}"),
        other => panic!("{scenario}: the hub saw {other:?}"),
    }
    assert!(
        !qemu.seen.iter().any(|l| l.contains("tls: handshake done")),
        "{:?}",
        qemu.seen
    );
}

#[test]
fn refuses_a_hub_certificate_from_another_ca() {
    refuses(
        "otherca",
        |fx| &fx.other_ca,
        &["not issued by the provisioned CA", "UnknownIssuer"],
    );
}

#[test]
fn refuses_a_hub_certificate_for_another_name() {
    refuses(
        "name",
        |fx| &fx.wrong_name,
        &["not valid for the hub's name", "CertNotValidForName"],
    );
}

#[test]
fn refuses_an_expired_hub_certificate() {
    refuses("expired", |fx| &fx.expired, &["expired", "CertExpired"]);
}

#[test]
fn accepts_a_hub_certificate_from_an_intermediate_it_sends() {
    let fx = fixture();
    let _one = one_at_a_time();
    let (ns, mut qemu) = boot("chained", fx);
    let hub = start_hub(&ns, fx, &fx.chained);
    let _sntp = start_sntp(&ns, 0);
    qemu.wait_line("app: reconnecting in", HANDSHAKE).unwrap();
    assert!(
        qemu.seen.iter().any(|l| l.contains("tls: handshake done")),
        "{:?}",
        qemu.seen
    );
    assert!(
        qemu.seen
            .iter()
            .any(|l| l.contains("app: session closed: CONNACK refused")),
        "{:?}",
        qemu.seen
    );
    match recv(&hub, "accept") {
        Hub::Accepted(_) => {}
        other => panic!("{other:?}"),
    }
    match recv(&hub, "handshake") {
        Hub::Handshaken { client_cert } => {
            assert_eq!(client_cert.as_deref(), Some(fx.client_cert.as_slice()))
        }
        other => panic!("{other:?}"),
    }
}

/// Time set back two days (which would make the expired certificate valid
/// again) is earlier than the provisioned floor: the device does not take
/// it, stays without time and does not dial the hub.
#[test]
fn refuses_sntp_time_before_its_provisioned_floor() {
    let fx = fixture();
    let _one = one_at_a_time();
    let (ns, mut qemu) = boot("floor", fx);
    let hub = start_hub(&ns, fx, &fx.expired);
    let _sntp = start_sntp(&ns, -2 * 86_400);
    for _ in 0..2 {
        let rejected = qemu
            .wait_line("time: sntp answer rejected", Duration::from_secs(30))
            .unwrap();
        assert!(rejected.contains("BeforeFloor"), "{rejected}");
        qemu.wait_line("no time, so no TLS connection", Duration::from_secs(30))
            .unwrap();
    }
    match hub.try_recv() {
        Err(TryRecvError::Empty) => {}
        other => panic!("the device reached the hub on a rewound clock: {other:?}"),
    }
    assert!(
        !qemu.seen.iter().any(|l| l.contains("time: unix=")),
        "{:?}",
        qemu.seen
    );
}

/// Fault `no-server-verify`: the image built with it completes the
/// handshake with a hub whose certificate is from a CA it was not given
/// (the scenario the correct image refuses,
/// `refuses_a_hub_certificate_from_another_ca`) and goes on to MQTT.
#[test]
fn with_fault_no_server_verify_it_accepts_a_hub_certificate_from_another_ca() {
    let fx = fixture();
    let elf = fault_image(fx, &["no-server-verify"]);
    let _one = one_at_a_time();
    let (ns, mut qemu) = boot_image("noverify", fx, &elf, &["no-server-verify"]);
    let hub = start_hub(&ns, fx, &fx.other_ca);
    let _sntp = start_sntp(&ns, 0);
    match recv(&hub, "accept") {
        Hub::Accepted(from) => assert_eq!(from.ip().to_string(), DEVICE),
        other => panic!("{other:?}"),
    }
    match recv(&hub, "handshake") {
        Hub::Handshaken { client_cert } => {
            assert_eq!(client_cert.as_deref(), Some(fx.client_cert.as_slice()))
        }
        other => panic!(
            "the handshake did not complete: {other:?}; console {:?}",
            qemu.seen
        ),
    }
    let done = qemu.wait_line("tls: handshake done", HANDSHAKE).unwrap();
    assert!(
        done.contains("NOT verified (fault no-server-verify)"),
        "{done}"
    );
    match recv(&hub, "connect") {
        Hub::Connect(packet) => assert_eq!(packet[0], 0x10, "MQTT CONNECT: {packet:?}"),
        other => panic!("{other:?}"),
    }
    assert!(
        !qemu.seen.iter().any(|l| l.contains("tls: refused")),
        "{:?}",
        qemu.seen
    );
}

/// Without fault `listen-debug` the device has no listener: a connection
/// to TCP 2323 is refused (smoltcp answers the SYN with a reset) while the
/// device is up and driving its interface (waiting for time).
#[test]
fn without_fault_listen_debug_its_debug_port_refuses_connections() {
    let fx = fixture();
    let _one = one_at_a_time();
    let (ns, mut qemu) = boot("nodebug", fx);
    qemu.wait_line("time: no answer from sntp", Duration::from_secs(60))
        .unwrap();
    let err = dial_debug_port(&ns, DEVICE).expect_err("a connection to 2323 succeeded");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{err}; console {:?}",
        qemu.seen
    );
}

/// With fault `listen-debug` the same connection succeeds and the device
/// answers with its debug banner, more than once (it listens again).
#[test]
fn with_fault_listen_debug_its_debug_port_accepts_and_answers() {
    let fx = fixture();
    let elf = fault_image(fx, &["listen-debug"]);
    let _one = one_at_a_time();
    let (ns, mut qemu) = boot_image("debug", fx, &elf, &["listen-debug"]);
    qemu.wait_line(
        "fault listen-debug: listening on TCP 2323",
        Duration::from_secs(30),
    )
    .unwrap();
    qemu.wait_line("time: no answer from sntp", Duration::from_secs(60))
        .unwrap();
    for n in 1..=3 {
        let banner = dial_debug_port(&ns, DEVICE).unwrap_or_else(|e| panic!("connection {n}: {e}"));
        assert_eq!(banner, b"debug shell\r\n> ", "console {:?}", qemu.seen);
    }
}
