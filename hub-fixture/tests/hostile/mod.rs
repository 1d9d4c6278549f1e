//! Shared support for the hostile-input battery (`hostile_*.rs`): a hub with
//! a registered good device, the check that the good device is still served
//! after each hostile input, raw TLS connections whose local address is known
//! (the journal names a connection by its peer address, so each input's
//! entries are found precisely), HTTP over TLS by hand, hostile credentials,
//! and the process's resident set size.
//!
//! Test files include it after `mod common;` (it uses `crate::common`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hub_fixture::client::{tls_config, ConnectOptions, DeviceClient};
use hub_fixture::clock::Clock;
use hub_fixture::hub::{DeviceCredentials, HubConfig, HubFixture};
use hub_fixture::journal::{Event, JournalEntry};
use hub_fixture::pki::{CertificateAuthority, KeyAlgorithm};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::common::{expect_entry, start_hub_with, GUARD};

/// The good device: registered, well behaved, and served after every input.
pub const GOOD: &str = "good";
/// The device the hostile inputs come from, where they need an identity.
pub const MALLORY: &str = "mallory";

/// RSS growth a whole battery may cause. The hub's steady state is a few
/// MiB; a held connection costs at most some tens of KiB (a task, rustls'
/// buffers, a 16 KiB read buffer), so even the flood's ~500 connections stay
/// far below this. What the bound catches is a hub that buffers what a
/// client only announces (a 200 MB remaining length, a 3 MiB body) or that
/// keeps something per refused connection: either shows as tens of MiB.
/// The hub runs in the test's process, so the figure also holds the test
/// client's own buffers (the 3 MiB request bodies: ~11 MiB all told for the
/// HTTPS battery). Under nextest every test is its own process, so the
/// figure is the test's alone; under `cargo test` parallel tests share it.
pub const RSS_BOUND: u64 = 64 * 1024 * 1024;

/// A hub with the good and the hostile device registered, and the RSS
/// measured after a warm-up.
pub struct Bench {
    pub hub: HubFixture,
    pub good: DeviceCredentials,
    pub mallory: DeviceCredentials,
    pub dir: tempfile::TempDir,
    rss_before: u64,
}

impl Bench {
    /// Starts a hub on a new temp dir; `tweak` adjusts the test config.
    pub async fn start(tweak: impl FnOnce(&mut HubConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = HubConfig::for_tests(dir.path().join("hub"));
        tweak(&mut config);
        let hub = start_hub_with(config).await;
        let good = hub.register_device(GOOD).unwrap();
        let mallory = hub.register_device(MALLORY).unwrap();
        let mut bench = Bench {
            hub,
            good,
            mallory,
            dir,
            rss_before: 0,
        };
        // The first session and request initialise lazily allocated state
        // (rustls, SQLite's cache, tokio's workers): the baseline is taken
        // after them, so growth is what the inputs caused.
        bench.still_served("warm-up").await;
        bench.https_still_served("warm-up").await;
        bench.rss_before = rss_bytes();
        bench
    }

    /// The good device connects, publishes telemetry at QoS 1 and gets its
    /// PUBACK; the hub journals the telemetry. Panics naming `after`.
    pub async fn still_served(&self, after: &str) {
        let hub = &self.hub;
        let payload = format!("still served after: {after}");
        let mark = hub.journal().len();
        let served = async {
            let (mut c, ack) =
                DeviceClient::connect(hub.mqtt_addr(), &self.good, ConnectOptions::default())
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
            if ack.code != rumqttc::ConnectReturnCode::Success {
                return Err(format!("CONNACK {:?}", ack.code));
            }
            c.publish(
                &format!("devices/{GOOD}/messages/events/"),
                rumqttc::QoS::AtLeastOnce,
                payload.as_bytes(),
            )
            .await
            .map_err(|e| format!("publish/PUBACK: {e}"))?;
            c.disconnect().await.map_err(|e| format!("disconnect: {e}"))
        };
        match tokio::time::timeout(GUARD, served).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("after {after:?}: the good device is not served: {e}"),
            Err(_) => panic!("after {after:?}: the good device is not served within {GUARD:?}"),
        }
        expect_entry(hub, mark, &format!("good telemetry after {after}"), |e| {
            e.device_id.as_deref() == Some(GOOD)
                && matches!(&e.event, Event::Telemetry { payload: p, qos: 1, .. } if *p == payload)
        })
        .await;
    }

    /// The good device's HTTPS request (EST cacerts) is answered 200.
    pub async fn https_still_served(&self, after: &str) {
        let mark = self.hub.journal().len();
        let (_, answer) = https_exchange(
            &self.hub,
            &self.good,
            b"GET /.well-known/est/cacerts HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap_or_else(|e| panic!("after {after:?}: HTTPS for the good device: {e}"));
        assert_eq!(
            answer.status, 200,
            "after {after:?}: cacerts for the good device: {answer:?}"
        );
        expect_entry(&self.hub, mark, &format!("cacerts after {after}"), |e| {
            e.device_id.as_deref() == Some(GOOD) && matches!(e.event, Event::CaCertsServed {})
        })
        .await;
    }

    /// Asserts the RSS grew by less than [`RSS_BOUND`] since the warm-up.
    pub fn assert_rss_bounded(&self, when: &str) {
        let now = rss_bytes();
        let grown = now.saturating_sub(self.rss_before);
        eprintln!(
            "{when}: RSS {} KiB, grown by {} KiB",
            now / 1024,
            grown / 1024
        );
        assert!(
            grown < RSS_BOUND,
            "{when}: RSS grew by {} KiB (from {} to {} KiB), more than {} KiB",
            grown / 1024,
            self.rss_before / 1024,
            now / 1024,
            RSS_BOUND / 1024
        );
    }

    /// The hub's own CA (read from its data directory), to make certificates
    /// the hub's API would not: for unregistered devices, without a CN, with
    /// the wrong key usage.
    pub fn hub_ca(&self) -> CertificateAuthority {
        CertificateAuthority::load_or_create(
            self.hub.data_dir(),
            "unused: the CA exists",
            self.hub.clock().now(),
        )
        .unwrap()
    }

    /// Credentials of `device_id` with a certificate from the hub's CA, whether
    /// or not the device is registered.
    pub fn hub_ca_credentials(&self, device_id: &str) -> DeviceCredentials {
        let issued = self
            .hub_ca()
            .issue_device(
                device_id,
                KeyAlgorithm::EcdsaP256,
                hub_fixture::pki::Validity::days_from(self.hub.clock().now(), 30),
            )
            .unwrap();
        self.credentials(
            device_id,
            issued.cert_pem,
            issued.key_pem.unwrap(),
            issued.serial,
        )
    }

    /// Credentials made of a certificate chain and key, trusting the hub.
    pub fn credentials(
        &self,
        device_id: &str,
        cert_pem: String,
        key_pem: String,
        serial: String,
    ) -> DeviceCredentials {
        DeviceCredentials {
            device_id: device_id.into(),
            cert_pem,
            key_pem,
            serial,
            thumbprint: String::new(),
            ca_pem: self.hub.ca_pem().to_owned(),
            hub_host: self.hub.host_name().to_owned(),
        }
    }
}

/// The resident set size of this process (VmRSS), in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// The TLS client configuration of `creds` (`None`: no client certificate).
pub fn client_config(
    hub: &HubFixture,
    creds: Option<&DeviceCredentials>,
) -> Arc<rustls::ClientConfig> {
    tls_config(
        hub.ca_pem(),
        creds.map(|c| (c.cert_pem.as_str(), c.key_pem.as_str())),
    )
    .unwrap()
}

/// Opens TCP to `addr` and runs a TLS handshake; returns the local address
/// (the journal's `peer`) and the outcome.
pub async fn tls_connect(
    hub: &HubFixture,
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> (SocketAddr, std::io::Result<TlsStream<TcpStream>>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let local = tcp.local_addr().unwrap();
    let name = ServerName::try_from(hub.host_name().to_owned()).unwrap();
    let tls = tokio::time::timeout(GUARD, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("the handshake ends one way or the other");
    (local, tls)
}

/// A TLS connection to the MQTT port as `creds`, without CONNECT.
pub async fn mqtt_tls(hub: &HubFixture, creds: &DeviceCredentials) -> (SocketAddr, DeviceClient) {
    let (local, tls) = tls_connect(hub, hub.mqtt_addr(), client_config(hub, Some(creds))).await;
    (local, DeviceClient::over(tls.expect("handshake")))
}

/// Reads until the peer closes (EOF or an error); returns what was read.
/// Panics if the connection is still open after the guard.
pub async fn read_until_closed<S: AsyncRead + Unpin>(s: &mut S, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let closing = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(GUARD, closing)
        .await
        .unwrap_or_else(|_| panic!("{what}: the hub did not close the connection"));
    got
}

/// Reads until the peer closes (then `true`) or the guard passes (`false`);
/// returns what was read.
pub async fn read_until_closed_or_guard<S: AsyncRead + Unpin>(s: &mut S) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + GUARD;
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Waits for a journal entry of the connection from `peer` matching `pred`.
pub async fn expect_peer(
    hub: &HubFixture,
    mark: u64,
    peer: SocketAddr,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> JournalEntry {
    let peer = peer.to_string();
    expect_entry(hub, mark, what, |e| {
        e.peer.as_deref() == Some(peer.as_str()) && pred(&e.event)
    })
    .await
}

/// Journal entries of the connection from `peer` since `mark`.
pub fn entries_of(hub: &HubFixture, mark: u64, peer: SocketAddr) -> Vec<JournalEntry> {
    let peer = peer.to_string();
    hub.journal()
        .since(mark)
        .into_iter()
        .filter(|e| e.peer.as_deref() == Some(peer.as_str()))
        .collect()
}

/// Waits until `n` entries after `mark` match `pred`.
pub async fn expect_count(
    hub: &HubFixture,
    mark: u64,
    n: usize,
    what: &str,
    pred: impl Fn(&JournalEntry) -> bool,
) {
    let mut seen = 0;
    let found = hub
        .journal()
        .wait_for(mark, GUARD, |e| {
            if pred(e) {
                seen += 1;
            }
            seen >= n
        })
        .await;
    assert!(
        found.is_some(),
        "{what}: {seen} of {n} journal entries; journal:\n{}",
        hub.journal()
            .since(mark)
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// An HTTP answer read off the wire.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Parses what a server sent before closing: status line, head, body.
pub fn parse_http(raw: &[u8]) -> Option<HttpAnswer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(HttpAnswer {
        status,
        head,
        body: raw[end + 4..].to_vec(),
    })
}

/// Sends `request` over TLS to the HTTPS port as `creds` and reads the answer
/// until the hub closes (requests say `connection: close`). Returns the local
/// address and the answer; an error if the handshake or the answer failed.
pub async fn https_exchange(
    hub: &HubFixture,
    creds: &DeviceCredentials,
    request: &[u8],
) -> Result<(SocketAddr, HttpAnswer), String> {
    let (local, tls) = tls_connect(hub, hub.https_addr(), client_config(hub, Some(creds))).await;
    let tls = tls.map_err(|e| format!("handshake: {e}"))?;
    // Written while reading: the hub may answer (413) and close before it
    // has read a large request, and a write error must not lose its answer.
    let (mut rd, mut wr) = tokio::io::split(tls);
    let ((), raw) = tokio::join!(
        async {
            let _ = wr.write_all(request).await;
            let _ = wr.flush().await;
        },
        read_until_closed(&mut rd, "HTTPS exchange")
    );
    let answer = parse_http(&raw)
        .ok_or_else(|| format!("no HTTP answer in {:?}", String::from_utf8_lossy(&raw)))?;
    Ok((local, answer))
}

/// A request with `connection: close`, and a body with its length if given.
pub fn http_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        r.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A ClientHello a TLS 1.2/1.3 client (rustls) would send, as raw records:
/// what a truncated or dribbled handshake is cut from.
pub fn client_hello(hub: &HubFixture) -> Vec<u8> {
    let name = ServerName::try_from(hub.host_name().to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(client_config(hub, None), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// A ClientHello record with `legacy` as its version, `suites`, and if given
/// a supported_versions extension listing `versions` (plus groups and
/// signature algorithms, so only the versions or suites can be wrong).
pub fn crafted_hello(legacy: u16, suites: &[u16], versions: Option<&[u16]>) -> Vec<u8> {
    let mut body = legacy.to_be_bytes().to_vec();
    body.extend([7u8; 32]); // random
    body.push(0); // session id
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]); // null compression
    let mut ext = Vec::new();
    ext.extend([0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17]); // groups: P-256
    ext.extend([0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]); // point formats: uncompressed
    ext.extend([0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]); // sig algs: ecdsa_secp256r1_sha256
    if let Some(vs) = versions {
        let list: Vec<u8> = vs.iter().flat_map(|v| v.to_be_bytes()).collect();
        ext.extend([0x00, 0x2b]);
        ext.extend(((list.len() + 1) as u16).to_be_bytes());
        ext.push(list.len() as u8);
        ext.extend(list);
    }
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![1];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![22, 3, 1];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

/// Opens a raw TCP connection and sends `bytes` (nothing if empty).
pub async fn raw_tcp(addr: SocketAddr, bytes: &[u8]) -> (SocketAddr, TcpStream) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    if !bytes.is_empty() {
        tcp.write_all(bytes).await.unwrap();
    }
    (local, tcp)
}

/// Sends `bytes` one at a time, `every` apart, until the write fails (the
/// hub closed); never returns otherwise. The pacing is the attack (each
/// byte comes well within the timeout), not a synchronisation.
pub async fn dribble<W: AsyncWriteExt + Unpin>(w: &mut W, bytes: &[u8], every: Duration) {
    for b in bytes.iter().cycle() {
        if w.write_all(&[*b]).await.is_err() || w.flush().await.is_err() {
            break;
        }
        tokio::time::sleep(every).await;
    }
    std::future::pending::<()>().await
}
