//! The image looks its hub's name up (record v2, src/dns.rs): booted with
//! a record that names its DNS server, in a namespace where an SNTP
//! responder, a DNS responder (the bench's own answers, `src/dns.rs`) and a
//! TCP listener on the hub's port stand in for the rig and the hub. One
//! QEMU boot per scenario:
//!
//! - the name is known: the device says `dns: <name> = <ip>`, the
//!   responder saw its query, and the listener sees the device's TCP
//!   connection to that address;
//! - the name is unknown (NXDOMAIN): `dns: <name> not resolved: …` — at
//!   every attempt, so it asks again — no `tls: dialling`, and the
//!   listener sees no connection;
//! - the DNS server does not answer: `not resolved: no answer … within
//!   5000 ms` (the bounded wait), no connection.
//!
//! Needs root, `qemu-system-arm` and the thumbv7m-none-eabi target;
//! `cargo test --test dns` in rig/.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ca, leaf, one_at_a_time, unix_now};
use device_mcu_rig::dns::Dns;
use device_mcu_rig::prov::{pack, HubAt, Provision};
use device_mcu_rig::sntp::Sntp;
use device_mcu_rig::{NetNs, Qemu};
use rcgen::ExtendedKeyUsagePurpose;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::OnceLock;
use std::time::Duration;

const HOST: &str = "10.0.17.1";
const DEVICE: &str = "10.0.17.2";
/// An address on the link where nothing answers.
const SILENT: &str = "10.0.17.3";
const HUB_NAME: &str = "hub.sacbench.test";
const HUB_PORT: u16 = 8883;
const DEVICE_ID: &str = "device-mcu-dns-0001";
/// Boot, SNTP, a look-up or two and the backoff between them.
const WITHIN: Duration = Duration::from_secs(60);

/// The image and a record's fixed parts.
struct Fixture {
    elf: PathBuf,
    dir: PathBuf,
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ca = ca("dns test CA");
        let (cert, key) = leaf(
            &ca,
            vec![DEVICE_ID.into()],
            DEVICE_ID,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("devmcu-dns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let elf = common::own_image(&dir, &[]);
        Fixture {
            elf,
            dir,
            ca: ca.der().to_vec(),
            cert: cert.der().to_vec(),
            key: key.serialize_der(),
        }
    })
}

/// A record v2 for hub `name` whose DNS server is `dns`.
fn record(fx: &Fixture, scenario: &str, name: &str, dns: &str) -> PathBuf {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut seed)
        .unwrap();
    let host: Ipv4Addr = HOST.parse().unwrap();
    let bytes = pack(&Provision {
        ca: fx.ca.clone(),
        cert: fx.cert.clone(),
        key: fx.key.clone(),
        seed,
        device_id: DEVICE_ID.into(),
        hub_name: name.into(),
        hub: HubAt::Dns {
            dns: dns.parse().unwrap(),
            port: HUB_PORT,
            https_port: 443,
        },
        sntp: SocketAddrV4::new(host, 123),
        time_floor: unix_now() - 3600,
        ip: DEVICE.parse().unwrap(),
        prefix: 24,
        gateway: host,
    })
    .unwrap();
    let path = fx.dir.join(format!("{scenario}.bin"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The stand-ins around one boot: the namespace and its TAP, SNTP, DNS
/// (knowing only `HUB_NAME`, unless `dns` is false) and the hub's port,
/// whose accepted connections arrive on the receiver (peer addresses).
struct Scene {
    ns: NetNs,
    _sntp: Sntp,
    dns: Option<Dns>,
    hub: Receiver<SocketAddr>,
}

fn scene(scenario: &str, dns: bool) -> Scene {
    let ns = NetNs::create(
        &format!("devmcu-dns-{}-{scenario}", std::process::id()),
        "tap0",
        &format!("{HOST}/24"),
    )
    .unwrap();
    let sntp = Sntp::start(&ns, HOST, 123, 0).unwrap();
    let dns =
        dns.then(|| Dns::start(&ns, HOST, vec![(HUB_NAME.into(), HOST.parse().unwrap())]).unwrap());
    let (bound_tx, bound) = mpsc::channel();
    let (tx, hub) = mpsc::channel();
    ns.spawn_inside(move || {
        let listener = match TcpListener::bind((HOST, HUB_PORT)) {
            Ok(l) => l,
            Err(e) => return bound_tx.send(Err(e.to_string())).unwrap(),
        };
        bound_tx.send(Ok(())).unwrap();
        // Each connection is noted, then dropped (no TLS here).
        while let Ok((_, peer)) = listener.accept() {
            if tx.send(peer).is_err() {
                return;
            }
        }
    })
    .unwrap();
    bound
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    Scene {
        ns,
        _sntp: sntp,
        dns,
        hub,
    }
}

fn boot(scene: &Scene, record: &std::path::Path) -> Qemu {
    let fx = fixture();
    Qemu::boot_provisioned(&scene.ns, &fx.elf, "52:54:00:17:00:02", Some(record)).unwrap()
}

#[test]
fn a_known_name_is_resolved_and_dialled() {
    let fx = fixture();
    let _one = one_at_a_time();
    let mut s = scene("known", true);
    let mut qemu = boot(&s, &record(fx, "known", HUB_NAME, HOST));
    let up = qemu.wait_line("net: up", WITHIN).unwrap();
    assert!(
        up.contains(&format!(
            "hub={HUB_NAME} (port {HUB_PORT}, resolved by dns {HOST})"
        )),
        "{up}"
    );
    qemu.wait_line("provisioning: record v2", WITHIN).unwrap();
    qemu.wait_line(&format!("dns: {HUB_NAME} = {HOST}"), WITHIN)
        .unwrap();
    qemu.wait_line(&format!("tls: dialling {HOST}:{HUB_PORT}"), WITHIN)
        .unwrap();
    // Seen from outside: the query, then the connection to the answer.
    let dns = s.dns.as_mut().unwrap();
    dns.wait_note(
        &format!("TYPE(A) {HUB_NAME}: {HOST} (from {DEVICE}:"),
        WITHIN,
    )
    .unwrap();
    let peer = s.hub.recv_timeout(WITHIN).unwrap();
    assert_eq!(peer.ip().to_string(), DEVICE);
}

#[test]
fn an_unknown_name_is_not_resolved_and_nothing_is_dialled() {
    let fx = fixture();
    let _one = one_at_a_time();
    let mut s = scene("unknown", true);
    let name = "nohub.sacbench.test";
    let mut qemu = boot(&s, &record(fx, "unknown", name, HOST));
    let why = format!(
        "dns: {name} not resolved: dns server {HOST} answered with no IPv4 address (NXDOMAIN or no A record)"
    );
    qemu.wait_line(&why, WITHIN).unwrap();
    // A failed look-up is a failed attempt (the DUT file's event counts the
    // machine's line): after the backoff it asks again.
    qemu.wait_line(
        "app: connection failed: the hub's name did not resolve",
        WITHIN,
    )
    .unwrap();
    let (_, first) = qemu.wait_line_at("app: reconnecting in", WITHIN).unwrap();
    let (_, second) = qemu.wait_line_at(&why, WITHIN).unwrap();
    assert!(second > first);
    let dns = s.dns.as_mut().unwrap();
    for _ in 0..2 {
        dns.wait_note(&format!("TYPE(A) {name}: NXDOMAIN"), WITHIN)
            .unwrap();
    }
    // Two attempts over, neither dialled: not on the console, not at the hub.
    assert!(
        !qemu.seen.iter().any(|l| l.starts_with("tls: ")),
        "{:?}",
        qemu.seen
    );
    assert_eq!(s.hub.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn a_silent_dns_server_is_waited_on_a_bounded_time() {
    let fx = fixture();
    let _one = one_at_a_time();
    let s = scene("silent", false);
    let mut qemu = boot(&s, &record(fx, "silent", HUB_NAME, SILENT));
    let line = qemu
        .wait_line(&format!("dns: {HUB_NAME} not resolved:"), WITHIN)
        .unwrap();
    assert!(
        line.ends_with(&format!(
            "no answer from dns server {SILENT} within 5000 ms"
        )),
        "{line}"
    );
    qemu.wait_line("app: reconnecting in", WITHIN).unwrap();
    assert!(!qemu.seen.iter().any(|l| l.starts_with("tls: ")));
    assert_eq!(s.hub.try_recv(), Err(TryRecvError::Empty));
}
