//! The device itself: device-core's [`Device`] machine — the same one the
//! native reference device runs — driven by this image's IO. The machine
//! decides everything (MQTT session, commands and their de-duplication,
//! direct methods, the twin, telemetry, the reconnect policy, rotation and
//! OTA decisions); this shell carries its [`Action`]s out over smoltcp and
//! embedded-tls, the storage partition (`storage.rs`) and the console, and
//! feeds back what happened as [`Event`]s.
//!
//! What this port does not carry out yet, it answers honestly so the
//! machine records a failure instead of waiting: EST re-enrolment (no HTTPS
//! client on the image: [`Event::EnrollFailed`]), CSR building, OTA
//! downloads ([`Event::DownloadEnded`] with an error) and the secondary
//! slot's writes. The DUT file does not claim `est-rotation` or `ota`.
//!
//! Console lines: the machine's log as `app: …` (what the DUT file's events
//! match: `app: command applied mid=…`, `app: connection failed: …`), the
//! transport's as `tls: …`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::convert::Infallible;
use core::fmt::Write as _;
use core::time::Duration;

use device_core::backoff::BackoffConfig;
use device_core::device::{
    Action, BootState, Device, DeviceConfig, Event, FactoryCredential, Stored,
};
use device_core::faults::{Fault, FaultSet};
use device_core::keystore::{KeyAlg, PrivateKey};
use device_core::ota::{OtaConfig, OtaRecord};
use embedded_tls::blocking::{Certificate, TlsConfig, TlsConnection, TlsContext};
use p256::pkcs8::EncodePrivateKey;
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore as _;
use rustls_pki_types::UnixTime;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

use crate::clock::Clock;
use crate::lan9118::Lan9118;
use crate::provision::Provisioning;
use crate::secure::WallClock;
use crate::storage::Storage;
use crate::tls::{Link, Provider, Suite};
use crate::uart::Uart;
use crate::verify::WebPkiVerifier;

/// How long one TLS read or write may wait for the network.
const LINK_TIMEOUT_MS: u64 = 30_000;
/// embedded-tls's record buffers: a whole 16 KB record plus its overhead
/// comes in; what goes out is the device's own handshake flight and packets.
const TLS_RX: usize = 16 * 1024 + 256;
const TLS_TX: usize = 4096;
/// The largest MQTT packet the session takes (device-core's default is 256
/// KB; this board's heap holds a packet while it is assembled).
const MAX_PACKET: usize = 16 * 1024;
/// Heartbeat telemetry period until the twin sets another.
const TELEMETRY_INTERVAL_MS: u64 = 60_000;
/// The board the image is built for: an OTA image for another is refused.
const BOARD: &str = "mps2-an385";

/// The network side of the shell: what the TLS link borrows while a
/// connection is open.
pub struct Net<'a, 's> {
    /// Uptime.
    pub clock: &'a mut Clock,
    /// The IP interface.
    pub iface: &'a mut Interface,
    /// The NIC.
    pub eth: &'a mut Lan9118,
    /// Sockets; `tcp` is the hub connection's.
    pub sockets: &'a mut SocketSet<'s>,
    /// The hub connection's TCP socket.
    pub tcp: SocketHandle,
    /// The debug listener (fault `listen-debug`).
    pub debug: crate::debugport::Listeners,
    /// TCP connections dialled since power-on (each from a fresh port).
    pub attempts: u32,
}

/// The rest of the shell: console, provisioning, time, storage, randomness.
pub struct Io<'a> {
    /// The console.
    pub con: &'a mut Uart,
    /// The provisioning record.
    pub prov: &'a Provisioning,
    /// The time from SNTP.
    pub wall: WallClock,
    /// The fault switches built in.
    pub faults: FaultSet,
    /// The storage partition.
    pub storage: Storage,
    /// The key generator's randomness.
    pub rng: ChaCha20Rng,
}

/// rand_core 0.10's view (device-core's) of the image's DRBG, for the
/// reconnect jitter.
pub struct Jitter(pub ChaCha20Rng);

impl rand_core10::TryRng for Jitter {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl Net<'_, '_> {
    /// Keeps the network running (ping, closes, the debug port) until the
    /// uptime reaches `until_ms`.
    fn idle_until(&mut self, until_ms: u64) {
        while self.clock.now_ms() < until_ms {
            let t = crate::now(self.clock);
            crate::debugport::poll(self.iface, self.eth, self.sockets, t, self.debug);
        }
    }
}

/// Powers the machine on from what the storage partition holds and runs it
/// forever (a `Reset` action resets the core).
pub fn run(mut net: Net<'_, '_>, mut io: Io<'_>, jitter: Jitter) -> ! {
    let now = io.wall.unix_ms(net.clock.now_ms());
    let Some(mut device) = power_on(&mut io, jitter, now) else {
        crate::halt(io.con, "no usable storage")
    };
    loop {
        while let Some(action) = device.poll_action() {
            match action {
                Action::Connect => {
                    online(&mut net, &mut io, &mut device);
                    // The RAM figures after every connection (README).
                    crate::report_memory(io.con);
                }
                other => {
                    let now = io.wall.unix_ms(net.clock.now_ms());
                    service(&mut io, &mut device, other, now);
                }
            }
        }
        let Some(deadline) = device.poll_timeout() else {
            crate::halt(io.con, "the device machine finished")
        };
        net.idle_until(io.wall.uptime_at(deadline));
        let now = io.wall.unix_ms(net.clock.now_ms());
        device.handle_timeout(now);
    }
}

fn power_on(io: &mut Io<'_>, jitter: Jitter, now: u64) -> Option<Device<Jitter>> {
    let keystore = match io.storage.keystore() {
        Ok(k) => k,
        Err(e) => {
            let _ = writeln!(io.con, "storage: keystore region unreadable: {e:?}");
            return None;
        }
    };
    let factory = if keystore.is_empty() {
        factory_credential(io)
    } else {
        None
    };
    let stored = Stored {
        keystore,
        ota: io.storage.ota().and_then(|b| OtaRecord::decode(&b)),
        commands: io.storage.commands(),
    };
    let _ = writeln!(
        io.con,
        "storage: command state next_seq={} ({} B of applied ids)",
        stored.commands.next_seq,
        stored.commands.applied.len()
    );
    let config = DeviceConfig {
        device_id: io.prov.device_id.into(),
        hub_host: io.prov.hub_name.into(),
        faults: io.faults,
        telemetry_interval_ms: TELEMETRY_INTERVAL_MS,
        backoff: backoff(),
        ota: OtaConfig::default(),
        // No OTA download on this port yet: no image is ever accepted.
        image_keys: Vec::new(),
        other_keys: Vec::new(),
        board: BOARD.into(),
        max_packet_size: MAX_PACKET,
    };
    let boot = BootState {
        version: env!("CARGO_PKG_VERSION").into(),
        security_counter: 0,
        test_boot: false,
        reverted: false,
        boot_count: 1,
    };
    Some(Device::power_on(config, boot, stored, factory, jitter, now))
}

fn backoff() -> BackoffConfig {
    crate::config::backoff()
}

/// The provisioned certificate and key, as the factory stores them into an
/// empty keystore; the certificate's validity read from it.
fn factory_credential(io: &mut Io<'_>) -> Option<FactoryCredential> {
    use x509_cert::der::Decode;
    let cert = match x509_cert::Certificate::from_der(io.prov.client_cert) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(
                io.con,
                "storage: the provisioned certificate does not parse: {e}"
            );
            return None;
        }
    };
    let validity = &cert.tbs_certificate.validity;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Some(FactoryCredential {
        key: PrivateKey {
            alg: KeyAlg::EcdsaP256,
            pkcs8_der: io.prov.client_key.to_vec(),
        },
        cert_der: io.prov.client_cert.to_vec(),
        not_after_ms: ms(validity.not_after.to_unix_duration()),
        not_before_ms: ms(validity.not_before.to_unix_duration()),
    })
}

/// Carries out an action that is not the transport's (`now`: Unix ms).
fn service(io: &mut Io<'_>, device: &mut Device<Jitter>, action: Action, now: u64) {
    match action {
        Action::Log(line) => {
            let _ = writeln!(io.con, "app: {line}");
        }
        Action::PersistKeystore(writes) => {
            if let Err(e) = io.storage.apply_keystore(&writes) {
                let _ = writeln!(io.con, "storage: keystore write failed: {e}");
            }
        }
        Action::PersistCommands(log) => {
            if let Err(e) = io.storage.store_commands(&log) {
                let _ = writeln!(io.con, "storage: command state not stored: {e}");
            }
        }
        Action::PersistOta(bytes) => {
            if let Err(e) = io.storage.store_ota(&bytes) {
                let _ = writeln!(io.con, "storage: OTA record not stored: {e}");
            }
        }
        Action::GenerateKey { .. } => {
            let key = p256::SecretKey::random(&mut io.rng);
            match key.to_pkcs8_der() {
                Ok(der) => device.handle(
                    now,
                    Event::KeyGenerated(PrivateKey {
                        alg: KeyAlg::EcdsaP256,
                        pkcs8_der: der.as_bytes().to_vec(),
                    }),
                ),
                Err(e) => device.handle(
                    now,
                    Event::KeyGenerationFailed {
                        reason: format!("PKCS#8 encoding: {e}"),
                    },
                ),
            }
        }
        Action::BuildCsr { .. } => {
            device.handle(
                now,
                Event::CsrBuilt(Err(String::from(
                    "this port builds no CSR (no EST client on device-mcu yet)",
                ))),
            );
        }
        Action::PostSimpleReenroll { .. } => {
            device.handle(
                now,
                Event::EnrollFailed {
                    reason: String::from("no EST client on device-mcu yet"),
                },
            );
        }
        Action::StartDownload { .. } => {
            device.handle(
                now,
                Event::DownloadEnded(Err("no download client on device-mcu yet")),
            );
        }
        Action::ReadSecondary { .. } => {
            device.handle(now, Event::SecondaryRead(&[]));
        }
        Action::AbortDownload
        | Action::EraseSecondary
        | Action::WriteSecondary { .. }
        | Action::MarkTestBoot
        | Action::ConfirmImage => {
            let _ = writeln!(
                io.con,
                "app: {action:?}: no secondary slot on device-mcu yet"
            );
        }
        Action::Reset => {
            let _ = writeln!(io.con, "device-mcu: reset");
            cortex_m::peripheral::SCB::sys_reset();
        }
        // Transport actions with no transport: the machine already counts
        // the connection as gone.
        Action::Send(_) | Action::CloseTransport | Action::Connect => {}
    }
}

/// `Connect`: TCP and TLS to the hub with the machine's credential, then the
/// machine's session over it until the transport ends (the machine told).
fn online(net: &mut Net<'_, '_>, io: &mut Io<'_>, device: &mut Device<Jitter>) {
    // The credential, copied: the TLS configuration borrows it while the
    // machine goes on changing.
    let Some((cert, key)) = device
        .credential()
        .map(|c| (c.cert.der.clone(), c.key.pkcs8_der.clone()))
    else {
        let now = io.wall.unix_ms(net.clock.now_ms());
        device.handle(
            now,
            Event::TransportDown {
                reason: "no credential",
            },
        );
        return;
    };
    if let Err(reason) = dial(net, io.prov, io.con) {
        let now = io.wall.unix_ms(net.clock.now_ms());
        device.handle(now, Event::TransportDown { reason: &reason });
        return;
    }
    let ms = net.clock.now_ms();
    let unix = io.wall.unix(ms);
    let mut verifier = WebPkiVerifier::<Suite>::new(
        io.prov.ca,
        Some(UnixTime::since_unix_epoch(Duration::from_secs(unix))),
    );
    // Fault no-server-verify: any hub certificate chain is taken.
    let unchecked = io.faults.has(Fault::NoServerVerify);
    if unchecked {
        verifier.accept_any_chain();
    }
    let rng = crate::tls::drbg(io.prov.seed, unix, ms, net.eth.mac().as_bytes());
    let config = TlsConfig::new()
        .with_server_name(io.prov.hub_name)
        .with_cert(Certificate::X509(&cert))
        .with_priv_key(&key);
    let mut rx_buf = [0u8; TLS_RX];
    let mut tx_buf = [0u8; TLS_TX];
    let link = Link {
        iface: net.iface,
        eth: net.eth,
        sockets: net.sockets,
        handle: net.tcp,
        debug: net.debug,
        clock: net.clock,
        timeout_ms: LINK_TIMEOUT_MS,
    };
    let mut tls: Tls<'_, '_, '_> = TlsConnection::new(link, &mut rx_buf, &mut tx_buf);
    let opened = tls.open(TlsContext::new(
        &config,
        Provider {
            rng,
            verifier: &mut verifier,
        },
    ));
    let refusal = match (&opened, verifier.authenticated()) {
        (Ok(()), true) => None,
        (Ok(()), false) => Some(String::from(
            "tls: refused: handshake ended without the hub's certificate and signature verified",
        )),
        (Err(e), _) => Some(match &verifier.refusal {
            Some(why) => format!("tls: refused the hub's certificate: {why}"),
            None => format!("tls: handshake failed: {e:?}"),
        }),
    };
    let wall = io.wall;
    let now = |tls: &mut Tls<'_, '_, '_>| wall.unix_ms(tls.transport_mut().now_ms());
    if let Some(why) = refusal {
        let _ = writeln!(io.con, "{why}");
        // No close_notify for a session that never opened: a reset.
        abort(&mut tls);
        let t = now(&mut tls);
        device.handle(t, Event::TransportDown { reason: &why });
        return;
    }
    let checked = if unchecked {
        "NOT verified (fault no-server-verify)"
    } else {
        "verified"
    };
    let _ = writeln!(
        io.con,
        "tls: handshake done (TLS 1.3 TLS_AES_128_GCM_SHA256), hub {} {checked} at unix={unix}",
        io.prov.hub_name
    );
    let t = now(&mut tls);
    device.handle(t, Event::TransportUp);
    let mut buf = [0u8; 2048];
    loop {
        while let Some(action) = device.poll_action() {
            match action {
                Action::Send(bytes) => {
                    if let Err(e) = tls.write(&bytes).and_then(|_| tls.flush()) {
                        let why = format!("tls: send failed: {e:?}");
                        let _ = writeln!(io.con, "{why}");
                        abort(&mut tls);
                        let t = now(&mut tls);
                        device.handle(t, Event::TransportDown { reason: &why });
                        return;
                    }
                }
                Action::CloseTransport => {
                    close(io.con, tls, ms);
                    return;
                }
                Action::Connect => {
                    let _ = writeln!(io.con, "app: Connect while connected: ignored");
                }
                other => {
                    let t = now(&mut tls);
                    service(io, device, other, t);
                }
            }
        }
        let Some(deadline) = device.poll_timeout() else {
            close(io.con, tls, ms);
            return;
        };
        // Decrypted bytes left from the last record first; else wait for the
        // next record or the deadline (never inside a record read).
        if !tls.has_buffered_data()
            && !tls
                .transport_mut()
                .wait_readable(wall.uptime_at(deadline).max(1))
        {
            let t = now(&mut tls);
            device.handle_timeout(t);
            continue;
        }
        match receive(&mut tls, &mut buf) {
            Ok(0) => {}
            Ok(n) => {
                let t = now(&mut tls);
                device.handle(t, Event::Received(&buf[..n]));
            }
            Err(why) => {
                let _ = writeln!(io.con, "tls: {why}");
                abort(&mut tls);
                let t = now(&mut tls);
                device.handle(t, Event::TransportDown { reason: &why });
                return;
            }
        }
    }
}

type Tls<'a, 'b, 'c> = TlsConnection<'a, Link<'b, 'c>, Suite>;

/// Application data from the connection once it is readable: 0 bytes when a
/// record held none (a NewSessionTicket: it must not hold the loop past its
/// deadlines, as `read()` would, waiting for application data), or why the
/// connection ended.
fn receive(tls: &mut Tls<'_, '_, '_>, buf: &mut [u8]) -> Result<usize, String> {
    if !tls.has_buffered_data() {
        match tls.read_one_record() {
            Ok(true) => {}
            Ok(false) => return Err(String::from("connection closed by the hub")),
            Err(e) => return Err(format!("connection ended: {e:?}")),
        }
        if !tls.has_buffered_data() {
            return Ok(0);
        }
    }
    match tls.read(buf) {
        Ok(0) => Err(String::from("connection closed by the hub")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("connection ended: {e:?}")),
    }
}

/// TCP to the hub from a fresh local port.
fn dial(net: &mut Net<'_, '_>, prov: &Provisioning, con: &mut Uart) -> Result<(), String> {
    let (hub_ip, hub_port) = prov.hub;
    let hub = IpEndpoint::new(hub_ip.into(), hub_port);
    net.attempts = net.attempts.wrapping_add(1);
    // A fresh local port per attempt: the host may still hold the last
    // one's 4-tuple.
    let local_port = 49152 + u16::try_from(net.attempts % 16_000).unwrap_or(0);
    let socket = net.sockets.get_mut::<tcp::Socket>(net.tcp);
    if socket.is_open() {
        // The last connection still closing: drop it (RST).
        socket.abort();
        let t = crate::now(net.clock);
        crate::debugport::poll(net.iface, net.eth, net.sockets, t, net.debug);
    }
    let _ = writeln!(
        con,
        "tls: dialling {hub} (attempt {}, uptime_ms={})",
        net.attempts,
        net.clock.now_ms()
    );
    let socket = net.sockets.get_mut::<tcp::Socket>(net.tcp);
    if let Err(e) = socket.connect(net.iface.context(), hub, local_port) {
        let why = format!("tls: tcp connect error {e:?}");
        let _ = writeln!(con, "{why}");
        return Err(why);
    }
    let start = net.clock.now_ms();
    loop {
        let t = crate::now(net.clock);
        crate::debugport::poll(net.iface, net.eth, net.sockets, t, net.debug);
        let socket = net.sockets.get_mut::<tcp::Socket>(net.tcp);
        if socket.may_send() {
            let _ = writeln!(con, "tls: tcp connected to {hub}");
            return Ok(());
        }
        if !socket.is_open() || net.clock.now_ms() - start > LINK_TIMEOUT_MS {
            socket.abort();
            let why = format!("tls: tcp connection to {hub} failed");
            let _ = writeln!(con, "{why}");
            return Err(why);
        }
    }
}

fn abort(tls: &mut Tls<'_, '_, '_>) {
    let link = tls.transport_mut();
    link.sockets.get_mut::<tcp::Socket>(link.handle).abort();
}

/// close_notify and the TCP close after a session (a reset if TLS fails).
fn close(con: &mut Uart, tls: Tls<'_, '_, '_>, ms: u64) {
    match tls.close() {
        Ok(link) => {
            let took = link.clock.now_ms() - ms;
            let _ = writeln!(con, "tls: close_notify sent; session took {took} ms");
            link.sockets.get_mut::<tcp::Socket>(link.handle).close();
        }
        Err((link, e)) => {
            let _ = writeln!(con, "tls: close error {e:?}");
            link.sockets.get_mut::<tcp::Socket>(link.handle).abort();
        }
    }
}
