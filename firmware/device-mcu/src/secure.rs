//! The provisioned device's run: wall-clock time from SNTP first (no time,
//! no TLS), then a TLS 1.3 connection with client-certificate
//! authentication to the hub, the MQTT session over it (`online.rs`) until
//! it ends, and close_notify; then, after a backoff delay (device-core's
//! `backoff`), the same again, forever. Console lines (what the rig test waits on):
//! `time: …`, `tls: …`, `mqtt: …`.

use core::fmt::Write;
use core::time::Duration;
use device_core::backoff::Backoff;
use device_core::faults::{Fault, FaultSet};
use device_core::session::AppliedIds;
use embedded_tls::blocking::{Certificate, TlsConfig, TlsConnection, TlsContext};
use rustls_pki_types::UnixTime;
use sha2::{Digest, Sha256};
use smoltcp::iface::{Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::IpEndpoint;

use crate::clock::Clock;
use crate::lan9118::Lan9118;
use crate::provision::Provisioning;
use crate::tls::{Link, Provider, Suite};
use crate::uart::Uart;
use crate::verify::WebPkiVerifier;
use crate::{now, sntp};

/// Between SNTP requests.
const SNTP_RETRY_MS: u64 = 1000;
/// Local UDP port for SNTP.
const SNTP_PORT: u16 = 50123;
/// How long one TLS read or write may wait for the network.
const LINK_TIMEOUT_MS: u64 = 30_000;
/// embedded-tls's record buffers: a whole 16 KB record plus its overhead
/// comes in; what goes out is the device's own (small) handshake flight.
const TLS_RX: usize = 16 * 1024 + 256;
const TLS_TX: usize = 4096;

/// Wall-clock time: a Unix time read from SNTP at an uptime, moved forward
/// by the monotonic clock.
#[derive(Clone, Copy)]
pub struct WallClock {
    unix_at_sync: u64,
    ms_at_sync: u64,
}

impl WallClock {
    /// Seconds since the Unix epoch at uptime `ms`.
    pub fn unix(&self, ms: u64) -> u64 {
        self.unix_at_sync + ms.saturating_sub(self.ms_at_sync) / 1000
    }
}

/// Runs the provisioned flow; never returns (reconnects after every
/// session end, with backoff).
pub fn run(
    con: &mut Uart,
    clock: &mut Clock,
    iface: &mut Interface,
    eth: &mut Lan9118,
    prov: &Provisioning,
    faults: FaultSet,
) -> ! {
    let mut udp_rx_meta = [udp::PacketMetadata::EMPTY; 2];
    let mut udp_rx = [0u8; 256];
    let mut udp_tx_meta = [udp::PacketMetadata::EMPTY; 2];
    let mut udp_tx = [0u8; 256];
    let mut tcp_rx = [0u8; 4096];
    let mut tcp_tx = [0u8; 4096];
    let mut debug_buf = [[0u8; 64]; 4];
    let mut dns_queries: [Option<smoltcp::socket::dns::DnsQuery>; 1] = [None];
    let mut storage: [SocketStorage; 5] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let udp_handle = sockets.add(udp::Socket::new(
        udp::PacketBuffer::new(&mut udp_rx_meta[..], &mut udp_rx[..]),
        udp::PacketBuffer::new(&mut udp_tx_meta[..], &mut udp_tx[..]),
    ));
    let tcp_handle = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut tcp_rx[..]),
        tcp::SocketBuffer::new(&mut tcp_tx[..]),
    ));
    // Record v2: the hub's name looked up before each attempt (dns.rs).
    let dns_handle = crate::dns::socket(prov, &mut dns_queries).map(|s| sockets.add(s));
    // Fault listen-debug: a listener on TCP 2323 (debugport.rs).
    let debug = faults.has(Fault::ListenDebug).then(|| {
        let _ = writeln!(
            con,
            "fault listen-debug: listening on TCP {}",
            crate::debugport::DEBUG_PORT
        );
        let [rx0, tx0, rx1, tx1] = &mut debug_buf;
        [
            sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx0[..]),
                tcp::SocketBuffer::new(&mut tx0[..]),
            )),
            sockets.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx1[..]),
                tcp::SocketBuffer::new(&mut tx1[..]),
            )),
        ]
    });

    // 1. Time. Until SNTP answers, there is no time and so no TLS.
    let (sntp_ip, sntp_port) = prov.sntp;
    let server = IpEndpoint::new(sntp_ip.into(), sntp_port);
    let mut attempt = 0u32;
    let mut nonce = [0u8; 8];
    let mut next_request = 0u64;
    let wall = loop {
        let t = now(clock);
        crate::debugport::poll(iface, eth, &mut sockets, t, debug);
        let socket = sockets.get_mut::<udp::Socket>(udp_handle);
        if !socket.is_open() {
            if let Err(e) = socket.bind(SNTP_PORT) {
                let _ = writeln!(con, "time: cannot bind udp {SNTP_PORT}: {e:?}");
                crate::halt(con, "no time source");
            }
        }
        let mut answer = None;
        while let Ok((data, meta)) = socket.recv() {
            if meta.endpoint != server {
                let _ = writeln!(con, "time: ignored a datagram from {}", meta.endpoint);
                continue;
            }
            match sntp::parse(data, nonce, prov.time_floor) {
                Ok(unix) => answer = Some(unix),
                Err(why) => {
                    let _ = writeln!(con, "time: sntp answer rejected: {why:?}");
                }
            }
        }
        let ms = clock.now_ms();
        if let Some(unix) = answer {
            let _ = writeln!(
                con,
                "time: unix={unix} from sntp {server} (attempt {attempt}, uptime_ms={ms})"
            );
            break WallClock {
                unix_at_sync: unix,
                ms_at_sync: ms,
            };
        }
        if ms >= next_request {
            if attempt > 0 {
                let _ = writeln!(
                    con,
                    "time: no answer from sntp {server} (attempt {attempt}): no time, so no TLS connection"
                );
            }
            attempt += 1;
            nonce = nonce_for(prov.seed, ms, attempt);
            match socket.send_slice(&sntp::request(nonce), server) {
                Ok(()) => {
                    let _ = writeln!(con, "time: sntp request to {server} (attempt {attempt})");
                }
                Err(e) => {
                    let _ = writeln!(con, "time: sntp send error {e:?}");
                }
            }
            next_request = ms + SNTP_RETRY_MS;
        }
    };
    sockets.get_mut::<udp::Socket>(udp_handle).close();

    // 2. The hub, again and again: every session end (TCP reset, TLS
    // error, refused certificate, keep-alive timeout, broker gone) is
    // followed by a new TCP + TLS + MQTT connection after device-core's
    // backoff (exponential, equal jitter, capped; reset after a session
    // that stayed up).
    let policy = crate::config::backoff();
    let _ = writeln!(
        con,
        "reconnect: backoff base={} ms cap={} ms stable_session={} ms",
        policy.base_ms, policy.cap_ms, policy.stable_session_ms
    );
    let mut backoff = Backoff::new(policy, FaultSet::NONE);
    // The commands applied, across sessions (`online::session`).
    let mut applied = AppliedIds::new();
    let mut attempt = 0u32;
    loop {
        attempt = attempt.wrapping_add(1);
        let hub = crate::dns::hub_endpoint(
            con,
            clock,
            iface,
            eth,
            &mut sockets,
            dns_handle,
            prov,
            debug,
        );
        let up_since = hub.and_then(|hub| {
            connect_once(
                con,
                clock,
                iface,
                eth,
                &mut sockets,
                tcp_handle,
                hub,
                prov,
                &wall,
                attempt,
                debug,
                faults,
                &mut applied,
            )
        });
        let ended = clock.now_ms();
        if let Some(at) = up_since {
            backoff.session_established(at);
        }
        backoff.session_ended(ended);
        crate::report_memory(con);
        let delay = backoff.next_delay_ms(jitter(prov.seed, ended, attempt));
        let _ = writeln!(
            con,
            "reconnect: next attempt in {delay} ms (consecutive {}, uptime_ms={ended})",
            backoff.failures()
        );
        // Keep the interface running (ping, the old connection's close)
        // until the delay has passed.
        while clock.now_ms() < ended + delay {
            let t = now(clock);
            crate::debugport::poll(iface, eth, &mut sockets, t, debug);
        }
    }
}

/// One connection to the hub at `hub`: TCP, TLS 1.3 (the hub authenticated against
/// the provisioned CA at the SNTP time, the device by its certificate),
/// the MQTT session until it ends, close. Returns the uptime at which the
/// hub accepted the MQTT session, if it did. Leaves the TCP socket closed
/// or closing.
#[allow(clippy::too_many_arguments)]
fn connect_once(
    con: &mut Uart,
    clock: &mut Clock,
    iface: &mut Interface,
    eth: &mut Lan9118,
    sockets: &mut SocketSet<'_>,
    tcp_handle: SocketHandle,
    hub: IpEndpoint,
    prov: &Provisioning,
    wall: &WallClock,
    attempt: u32,
    debug: crate::debugport::Listeners,
    faults: FaultSet,
    applied: &mut AppliedIds,
) -> Option<u64> {
    // A fresh local port per attempt: the host may still hold the last
    // one's 4-tuple.
    let local_port = 49152 + u16::try_from(attempt % 16_000).unwrap_or(0);
    {
        let socket = sockets.get_mut::<tcp::Socket>(tcp_handle);
        if socket.is_open() {
            // The last connection still closing: drop it (RST).
            socket.abort();
            let t = now(clock);
            crate::debugport::poll(iface, eth, sockets, t, debug);
        }
        let socket = sockets.get_mut::<tcp::Socket>(tcp_handle);
        let _ = writeln!(
            con,
            "tls: dialling {hub} (attempt {attempt}, uptime_ms={})",
            clock.now_ms()
        );
        if let Err(e) = socket.connect(iface.context(), hub, local_port) {
            let _ = writeln!(con, "tls: tcp connect error {e:?}");
            return None;
        }
    }
    let dial_start = clock.now_ms();
    loop {
        let t = now(clock);
        crate::debugport::poll(iface, eth, sockets, t, debug);
        let socket = sockets.get_mut::<tcp::Socket>(tcp_handle);
        if socket.may_send() {
            break;
        }
        if !socket.is_open() || clock.now_ms() - dial_start > LINK_TIMEOUT_MS {
            let _ = writeln!(con, "tls: tcp connection to {hub} failed");
            socket.abort();
            return None;
        }
    }
    let _ = writeln!(con, "tls: tcp connected to {hub}");

    let ms = clock.now_ms();
    let unix = wall.unix(ms);
    let mut verifier = WebPkiVerifier::<Suite>::new(
        prov.ca,
        Some(UnixTime::since_unix_epoch(Duration::from_secs(unix))),
    );
    // Fault no-server-verify: any hub certificate chain is taken.
    let unchecked = faults.has(Fault::NoServerVerify);
    if unchecked {
        verifier.accept_any_chain();
    }
    let rng = crate::tls::drbg(prov.seed, unix, ms, eth.mac().as_bytes());
    let config = TlsConfig::new()
        .with_server_name(prov.hub_name)
        .with_cert(Certificate::X509(prov.client_cert))
        .with_priv_key(prov.client_key);
    let mut rx_buf = [0u8; TLS_RX];
    let mut tx_buf = [0u8; TLS_TX];
    let link = Link {
        iface,
        eth,
        sockets,
        handle: tcp_handle,
        debug,
        clock,
        timeout_ms: LINK_TIMEOUT_MS,
    };
    let mut tls: TlsConnection<'_, Link<'_, '_>, Suite> =
        TlsConnection::new(link, &mut rx_buf, &mut tx_buf);
    let opened = tls.open(TlsContext::new(
        &config,
        Provider {
            rng,
            verifier: &mut verifier,
        },
    ));
    match opened {
        Err(e) => {
            match &verifier.refusal {
                Some(why) => {
                    let _ = writeln!(con, "tls: refused the hub's certificate: {why}");
                }
                None => {
                    let _ = writeln!(con, "tls: handshake failed: {e:?}");
                }
            }
            // No close_notify for a session that never opened: a reset.
            let link = tls.transport_mut();
            link.sockets.get_mut::<tcp::Socket>(link.handle).abort();
            None
        }
        Ok(()) if !verifier.authenticated() => {
            let _ = writeln!(
                con,
                "tls: refused: handshake ended without the hub's certificate and signature verified"
            );
            let link = tls.transport_mut();
            link.sockets.get_mut::<tcp::Socket>(link.handle).abort();
            None
        }
        Ok(()) => {
            let checked = if unchecked {
                "NOT verified (fault no-server-verify)"
            } else {
                "verified"
            };
            let _ = writeln!(
                con,
                "tls: handshake done (TLS 1.3 TLS_AES_128_GCM_SHA256), hub {} {checked} at unix={unix}",
                prov.hub_name
            );
            let up_since = crate::online::session(con, &mut tls, prov, faults, applied);
            close(con, tls, ms);
            up_since
        }
    }
}

/// close_notify and the TCP close after a session (a reset if TLS fails).
fn close(con: &mut Uart, tls: TlsConnection<'_, Link<'_, '_>, Suite>, ms: u64) {
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

/// The backoff's jitter: a fresh 32-bit value per delay from the
/// per-unit secret, the uptime and the attempt (AN385 has no TRNG; the
/// secret makes it unpredictable to others, the uptime makes delays and
/// units differ).
fn jitter(seed: &[u8; 32], ms: u64, attempt: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(b"device-mcu backoff jitter");
    h.update(seed);
    h.update(ms.to_le_bytes());
    h.update(attempt.to_le_bytes());
    let d = h.finalize();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

fn nonce_for(seed: &[u8; 32], ms: u64, attempt: u32) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(b"device-mcu sntp nonce");
    h.update(seed);
    h.update(ms.to_le_bytes());
    h.update(attempt.to_le_bytes());
    let mut nonce = [0u8; 8];
    nonce.copy_from_slice(&h.finalize()[..8]);
    nonce
}
