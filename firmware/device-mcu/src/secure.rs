//! The provisioned device's run: wall-clock time from SNTP first (no time,
//! no TLS: the device never checks a certificate without a clock), then the
//! device itself (`app.rs`: device-core's `Device` machine over TLS 1.3 with
//! client-certificate authentication to the hub), forever. Console lines:
//! `time: …`, then `app.rs`'s.

use core::fmt::Write;
use device_core::faults::{Fault, FaultSet};
use sha2::{Digest, Sha256};
use smoltcp::iface::{Interface, SocketSet, SocketStorage};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::IpEndpoint;

use crate::clock::Clock;
use crate::lan9118::Lan9118;
use crate::provision::Provisioning;
use crate::storage::Storage;
use crate::uart::Uart;
use crate::{app, now, sntp};

/// Between SNTP requests.
const SNTP_RETRY_MS: u64 = 1000;
/// Local UDP port for SNTP.
const SNTP_PORT: u16 = 50123;
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
        self.unix_ms(ms) / 1000
    }

    /// Milliseconds since the Unix epoch at uptime `ms`.
    pub fn unix_ms(&self, ms: u64) -> u64 {
        (self.unix_at_sync * 1000).saturating_add(ms.saturating_sub(self.ms_at_sync))
    }

    /// The uptime (ms) at which the wall clock reads `unix_ms` (now or
    /// later; an earlier time gives the sync's uptime).
    pub fn uptime_at(&self, unix_ms: u64) -> u64 {
        self.ms_at_sync
            .saturating_add(unix_ms.saturating_sub(self.unix_at_sync * 1000))
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
    // The EST connection's (beside the MQTT one while it runs).
    let mut est_rx = [0u8; 2048];
    let mut est_tx = [0u8; 2048];
    let mut dns_queries: [Option<smoltcp::socket::dns::DnsQuery>; 1] = [None];
    let mut storage: [SocketStorage; 6] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let udp_handle = sockets.add(udp::Socket::new(
        udp::PacketBuffer::new(&mut udp_rx_meta[..], &mut udp_rx[..]),
        udp::PacketBuffer::new(&mut udp_tx_meta[..], &mut udp_tx[..]),
    ));
    let tcp_handle = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut tcp_rx[..]),
        tcp::SocketBuffer::new(&mut tcp_tx[..]),
    ));
    let est_handle = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut est_rx[..]),
        tcp::SocketBuffer::new(&mut est_tx[..]),
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

    // 2. The device.
    let policy = crate::config::backoff();
    let _ = writeln!(
        con,
        "reconnect: backoff base={} ms cap={} ms stable_session={} ms",
        policy.base_ms, policy.cap_ms, policy.stable_session_ms
    );
    let ms = clock.now_ms();
    let unix = wall.unix(ms);
    let Some(storage) = Storage::take() else {
        crate::halt(con, "the storage partition is taken")
    };
    let mac = eth.mac();
    let io = app::Io {
        con,
        prov,
        wall,
        faults,
        storage,
        rng: crate::tls::drbg(prov.seed, unix, ms ^ 0x6b65_7967_656e, mac.as_bytes()),
    };
    let net = app::Net {
        wire: crate::tls::Link {
            iface,
            eth,
            sockets: &mut sockets,
            handle: tcp_handle,
            debug,
            clock,
            timeout_ms: crate::transport::LINK_TIMEOUT_MS,
        },
        attempts: 0,
        est_tcp: est_handle,
        dns: dns_handle,
        hub: None,
        est_attempts: 0,
    };
    let jitter = app::Jitter(crate::tls::drbg(
        prov.seed,
        unix,
        ms ^ 0x6a69_7474_6572,
        mac.as_bytes(),
    ));
    app::run(net, io, jitter)
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
