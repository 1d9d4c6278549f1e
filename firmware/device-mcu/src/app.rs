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

use device_core::backoff::BackoffConfig;
use device_core::device::{
    Action, BootState, Device, DeviceConfig, Event, FactoryCredential, Stored,
};
use device_core::faults::FaultSet;
use device_core::keystore::{KeyAlg, PrivateKey};
use device_core::ota::{OtaConfig, OtaRecord};
use p256::pkcs8::EncodePrivateKey;
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore as _;
use smoltcp::iface::SocketHandle;
use smoltcp::wire::IpEndpoint;

use crate::est;
use crate::provision::Provisioning;
use crate::secure::WallClock;
use crate::storage::Storage;
use crate::tls::Link;
use crate::transport::{self, abort, close, dial, handshake, receive, Peer, Tls, TLS_RX, TLS_TX};
use crate::uart::Uart;

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
    /// The interface, its sockets and clock, over the hub connection's TCP
    /// socket (`wire.handle`); [`Link::beside`] gives the EST socket's.
    pub wire: Link<'a, 's>,
    /// TCP connections dialled since power-on (each from a fresh port).
    pub attempts: u32,
    /// The EST connection's TCP socket.
    pub est_tcp: SocketHandle,
    /// EST connections dialled since power-on.
    pub est_attempts: u32,
    /// The DNS socket the hub's name is looked up with (record v2).
    pub dns: Option<SocketHandle>,
    /// The hub's address as last looked up (for EST between connections).
    pub hub: Option<IpEndpoint>,
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
        while self.wire.now_ms() < until_ms {
            self.wire.poll();
        }
    }

    /// The hub's address now: its name looked up (record v2; a v1 record's
    /// address as is), and kept for EST between connections.
    fn look_up_hub(&mut self, io: &mut Io<'_>) -> Option<IpEndpoint> {
        let w = &mut self.wire;
        let hub = crate::dns::hub_endpoint(
            io.con, w.clock, w.iface, w.eth, w.sockets, self.dns, io.prov, w.debug,
        )?;
        self.hub = Some(hub);
        Some(hub)
    }
}

/// The credential in force, copied (certificate DER, PKCS#8 key): a TLS
/// configuration borrows it while the machine goes on changing.
fn credential(device: &Device<Jitter>) -> Option<(Vec<u8>, Vec<u8>)> {
    device
        .credential()
        .map(|c| (c.cert.der.clone(), c.key.pkcs8_der.clone()))
}

/// Powers the machine on from what the storage partition holds and runs it
/// forever (a `Reset` action resets the core).
pub fn run(mut net: Net<'_, '_>, mut io: Io<'_>, jitter: Jitter) -> ! {
    let now = io.wall.unix_ms(net.wire.now_ms());
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
                Action::PostSimpleReenroll { csr_der } => {
                    let event = offline_reenroll(&mut net, &mut io, &device, &csr_der);
                    let now = io.wall.unix_ms(net.wire.now_ms());
                    device.handle(now, event.as_event());
                }
                other => {
                    let now = io.wall.unix_ms(net.wire.now_ms());
                    service(&mut io, &mut device, other, now);
                }
            }
        }
        let Some(deadline) = device.poll_timeout() else {
            crate::halt(io.con, "the device machine finished")
        };
        net.idle_until(io.wall.uptime_at(deadline));
        let now = io.wall.unix_ms(net.wire.now_ms());
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
    let (not_before_ms, not_after_ms) = match crate::der_lite::validity(io.prov.client_cert) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(
                io.con,
                "storage: the provisioned certificate does not parse: {e}"
            );
            return None;
        }
    };
    Some(FactoryCredential {
        key: PrivateKey {
            alg: KeyAlg::EcdsaP256,
            pkcs8_der: io.prov.client_key.to_vec(),
        },
        cert_der: io.prov.client_cert.to_vec(),
        not_after_ms,
        not_before_ms,
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
        Action::BuildCsr {
            key,
            common_name,
            include_private_key,
        } => {
            // Fault leak-key-in-csr is not built into this image.
            let csr = if include_private_key {
                Err(String::from("leak-key-in-csr is not a fault of this image"))
            } else {
                est::build_csr(&common_name, &key.pkcs8_der)
            };
            device.handle(now, Event::CsrBuilt(csr));
        }
        Action::PostSimpleReenroll { .. } => {
            // `run` and `online` carry it out; nothing else reaches here.
            device.handle(
                now,
                Event::EnrollFailed {
                    reason: String::from("EST asked outside the shell's loops"),
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
                "app: {action:?}: the app does not write the secondary slot yet"
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
    let Some((cert, key)) = credential(device) else {
        let now = io.wall.unix_ms(net.wire.now_ms());
        device.handle(
            now,
            Event::TransportDown {
                reason: "no credential",
            },
        );
        return;
    };
    net.attempts = net.attempts.wrapping_add(1);
    // A fresh local port per attempt: the host may still hold the last
    // one's 4-tuple.
    let local_port = MQTT_PORTS + u16::try_from(net.attempts % PORTS_EACH).unwrap_or(0);
    let Some(hub) = net.look_up_hub(io) else {
        let now = io.wall.unix_ms(net.wire.now_ms());
        let reason = "the hub's name did not resolve";
        device.handle(now, Event::TransportDown { reason });
        return;
    };
    let tcp = net.wire.handle;
    let mut link = net.wire.beside(tcp);
    let wall = io.wall;
    let what = format!("attempt {}", net.attempts);
    if let Err(why) = dial(&mut link, hub, local_port, &what, io.con) {
        let now = wall.unix_ms(link.clock.now_ms());
        device.handle(now, Event::TransportDown { reason: &why });
        return;
    }
    let since = link.clock.now_ms();
    let peer = Peer {
        prov: io.prov,
        wall,
        faults: io.faults,
        cert: &cert,
        key: &key,
    };
    let mut rx_buf = [0u8; TLS_RX];
    let mut tx_buf = [0u8; TLS_TX];
    let mut tls = match handshake(link, &mut rx_buf, &mut tx_buf, &peer, io.con) {
        Ok(tls) => tls,
        Err(why) => {
            let now = wall.unix_ms(net.wire.now_ms());
            device.handle(now, Event::TransportDown { reason: &why });
            return;
        }
    };
    let now = |tls: &mut Tls<'_, '_, '_>| wall.unix_ms(tls.transport_mut().now_ms());
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
                    close(io.con, tls, since);
                    return;
                }
                Action::Connect => {
                    let _ = writeln!(io.con, "app: Connect while connected: ignored");
                }
                Action::PostSimpleReenroll { csr_der } => {
                    // Its own connection beside this one, on the sockets
                    // this one's link holds; the session waits meanwhile.
                    let est = tls.transport_mut().beside(net.est_tcp);
                    let event =
                        reenroll_event(est, io, &peer, hub, &mut net.est_attempts, &csr_der);
                    let t = now(&mut tls);
                    device.handle(t, event.as_event());
                }
                other => {
                    let t = now(&mut tls);
                    service(io, device, other, t);
                }
            }
        }
        let Some(deadline) = device.poll_timeout() else {
            close(io.con, tls, since);
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

/// Local ports: MQTT connections from the first range, EST from the next.
const MQTT_PORTS: u16 = 49152;
const EST_PORTS: u16 = MQTT_PORTS + PORTS_EACH as u16;
const PORTS_EACH: u32 = 8000;

/// What an EST exchange tells the machine (owned: the exchange's buffers
/// are gone by then).
enum Reenrolled {
    Enrolled(est::Answer),
    Failed(String),
}

impl Reenrolled {
    fn as_event(&self) -> Event<'_> {
        match self {
            Reenrolled::Enrolled(est::Answer::Issued {
                cert_der,
                not_before_ms,
                not_after_ms,
            }) => Event::Enrolled {
                cert_der: cert_der.clone(),
                not_after_ms: *not_after_ms,
                not_before_ms: *not_before_ms,
            },
            Reenrolled::Enrolled(est::Answer::Refused { status, reason }) => Event::EnrollRefused {
                status: *status,
                reason: reason.clone(),
            },
            Reenrolled::Failed(reason) => Event::EnrollFailed {
                reason: reason.clone(),
            },
        }
    }
}

/// EST re-enrolment over `link` with the credential in force, to the hub's
/// HTTPS port.
fn reenroll_event(
    link: Link<'_, '_>,
    io: &mut Io<'_>,
    peer: &Peer<'_>,
    hub: IpEndpoint,
    attempts: &mut u32,
    csr_der: &[u8],
) -> Reenrolled {
    let to = IpEndpoint::new(hub.addr, io.prov.https_port);
    *attempts = attempts.wrapping_add(1);
    let local_port = EST_PORTS + u16::try_from(*attempts % PORTS_EACH).unwrap_or(0);
    match transport::reenroll(link, to, local_port, peer, csr_der, io.con) {
        Ok(answer) => Reenrolled::Enrolled(answer),
        Err(why) => {
            let _ = writeln!(io.con, "est: {why}");
            Reenrolled::Failed(why)
        }
    }
}

/// EST re-enrolment while no MQTT connection is open.
fn offline_reenroll(
    net: &mut Net<'_, '_>,
    io: &mut Io<'_>,
    device: &Device<Jitter>,
    csr_der: &[u8],
) -> Reenrolled {
    let Some((cert, key)) = credential(device) else {
        return Reenrolled::Failed(String::from("no credential"));
    };
    let hub = match net.hub {
        Some(hub) => hub,
        None => match net.look_up_hub(io) {
            Some(hub) => hub,
            None => return Reenrolled::Failed(String::from("the hub's name did not resolve")),
        },
    };
    let peer = Peer {
        prov: io.prov,
        wall: io.wall,
        faults: io.faults,
        cert: &cert,
        key: &key,
    };
    let link = net.wire.beside(net.est_tcp);
    reenroll_event(link, io, &peer, hub, &mut net.est_attempts, csr_der)
}
