//! MT cases against deliberately bad hubs (MT-02, MT-05…09; the bad hub and
//! its verdicts serve MT-15…26 too) and the certificate reading the MT cases
//! share.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hub_fixture::pki::{CertificateAuthority, Validity};
use sacbench_capture::analysis::{is_grease, TLS12, TLS13};
use sacbench_capture::TcpFlow;
use sacbench_rig::dut::EventName;
use sacbench_rig::Node;

use super::{dut_flows, dut_ip, BAD_HUB_PORT};
use crate::case::{Case, Fail, GUARD};
use crate::events;
use crate::model::Evidence;

/// How a [`BadHub`] speaks TLS.
pub(super) enum BadTls<'a> {
    /// rustls presenting this certificate chain, no client certificate
    /// asked: TLS 1.2 to a device that offers it (the handshake then
    /// stays in clear in the capture), TLS 1.3 to one that offers only
    /// TLS 1.3 — every device meets the certificate under test, never a
    /// version it refuses before it looks at the certificate (a vacuous
    /// pass no fault could fail).
    Tls13And12 { cert_pem: &'a str, key_pem: &'a str },
    /// A server that speaks TLS 1.0 only: to a ClientHello whose versions
    /// include 1.0 it answers a TLS 1.0 ServerHello (a correct device aborts
    /// there), to any other a fatal protocol_version alert — what such a
    /// server does. It never gets further: a device that would go on with
    /// TLS 1.0 has already failed by offering it.
    Tls10Only,
}

/// A deliberately bad hub in the hub namespace on [`BAD_HUB_PORT`]; what it
/// receives after a handshake (decrypted application data) is collected.
pub(super) struct BadHub {
    task: tokio::task::JoinHandle<()>,
    out: Arc<(Mutex<Vec<u8>>, tokio::sync::Notify)>,
    /// Handshakes the device completed (it sent its Finished: it accepted
    /// the certificate), whatever it sent after.
    completed: Arc<std::sync::atomic::AtomicUsize>,
}

/// The bad certificate's hub, by version (see [`BadTls::Tls13And12`]).
struct BadCertConfigs {
    tls12: Arc<rustls::ServerConfig>,
    tls13: Arc<rustls::ServerConfig>,
}

impl BadHub {
    pub(super) async fn start(case: &Case, tls: BadTls<'_>) -> Result<BadHub, Fail> {
        let acceptor = match tls {
            BadTls::Tls13And12 { cert_pem, key_pem } => Some(Arc::new(BadCertConfigs {
                tls12: bad_cert_config(cert_pem, key_pem, &rustls::version::TLS12)?,
                tls13: bad_cert_config(cert_pem, key_pem, &rustls::version::TLS13)?,
            })),
            BadTls::Tls10Only => None,
        };
        let addr = SocketAddr::from((case.net.hub_ipv4, BAD_HUB_PORT));
        // Bound in the hub namespace: a socket keeps the namespace it was made in.
        let listener = case
            .in_ns(Node::Hub, move || std::net::TcpListener::bind(addr))?
            .map_err(|e| format!("the bad hub cannot listen on {addr}: {e}"))?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let out: Arc<(Mutex<Vec<u8>>, tokio::sync::Notify)> = Arc::default();
        let completed: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (o, c) = (out.clone(), completed.clone());
        let task = tokio::spawn(async move {
            // Dropped with the task: every connection ends with the hub.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                match &acceptor {
                    Some(a) => conns.spawn(serve_bad_cert(a.clone(), tcp, o.clone(), c.clone())),
                    None => conns.spawn(serve_tls10_only(tcp)),
                };
            }
        });
        Ok(BadHub {
            task,
            out,
            completed,
        })
    }

    /// Waits until the server's output contains `needle`.
    async fn wait(&self, needle: &[u8], guard: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + guard;
        loop {
            let notified = self.out.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.received(needle) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// How many handshakes the device completed with this hub.
    pub(super) fn completed(&self) -> usize {
        self.completed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether any application data reached the hub (decrypted).
    fn received_any(&self) -> bool {
        !self.out.0.lock().expect("lock").is_empty()
    }

    fn received(&self, needle: &[u8]) -> bool {
        let out = self.out.0.lock().expect("lock");
        out.windows(needle.len()).any(|w| w == needle)
    }
}

impl Drop for BadHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bad_cert_config(
    cert_pem: &str,
    key_pem: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<Arc<rustls::ServerConfig>, Fail> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the bad hub's certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("the bad hub's key: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(hub_fixture::tls::provider())
        .with_protocol_versions(&[version])
        .map_err(|e| format!("the bad hub's TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the bad hub's TLS: {e}"))?;
    Ok(Arc::new(config))
}

/// Whether a ClientHello's cipher suites include one of TLS 1.2 (TLS 1.3's
/// are 0x13xx): the client speaks TLS 1.2.
fn offers_tls12(suites: &[rustls::CipherSuite]) -> bool {
    suites.iter().any(|s| u16::from(*s) >> 8 != 0x13)
}

/// One connection to the bad certificate's hub: what the device sends after the
/// handshake is collected.
async fn serve_bad_cert(
    configs: Arc<BadCertConfigs>,
    tcp: tokio::net::TcpStream,
    out: Arc<(Mutex<Vec<u8>>, tokio::sync::Notify)>,
    completed: Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::AsyncReadExt;
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let Ok(start) = acceptor.await else { return };
    let config = match offers_tls12(start.client_hello().cipher_suites()) {
        true => configs.tls12.clone(),
        false => configs.tls13.clone(),
    };
    // A device that refuses the certificate aborts here: nothing to collect.
    let Ok(mut tls) = start.into_stream(config).await else {
        return;
    };
    completed.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = tls.read(&mut buf).await {
        out.0.lock().expect("lock").extend_from_slice(&buf[..n]);
        out.1.notify_waiters();
    }
}

/// One connection to the TLS 1.0-only bad hub (see [`BadTls::Tls10Only`]).
async fn serve_tls10_only(mut tcp: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut hello = Vec::new();
    let mut buf = [0u8; 4096];
    let versions = loop {
        match tcp.read(&mut buf).await {
            Ok(n @ 1..) => hello.extend_from_slice(&buf[..n]),
            _ => return,
        }
        if let Some(v) = hub_fixture::tls::hello_versions(&hello) {
            break v;
        }
        if hello.len() > 16 * 1024 + 5 {
            return; // no ClientHello fits in one record this large
        }
    };
    let answer = if versions.accepts(0x0301) {
        tls10_server_hello().to_vec()
    } else {
        hub_fixture::tls::PROTOCOL_VERSION_ALERT.to_vec()
    };
    let _ = tcp.write_all(&answer).await;
    // The device's answer (its alert, or its silence) goes into the capture;
    // the connection ends when the device ends it.
    while let Ok(1..) = tcp.read(&mut buf).await {}
}

/// A TLS 1.0 ServerHello record (TLS_RSA_WITH_AES_128_CBC_SHA, no session
/// id, no extensions).
fn tls10_server_hello() -> [u8; 47] {
    let mut r = [0u8; 47];
    r[..5].copy_from_slice(&[22, 0x03, 0x01, 0x00, 42]); // handshake record, 42 bytes
    r[5..9].copy_from_slice(&[2, 0x00, 0x00, 38]); // server_hello, 38 bytes
    r[9..11].copy_from_slice(&[0x03, 0x01]); // TLS 1.0
    r[11..43].copy_from_slice(&[0x5a; 32]); // random
    r[43] = 0; // session id length
    r[44..46].copy_from_slice(&[0x00, 0x2f]);
    r[46] = 0; // null compression
    r
}

/// Powers the device on against a bad hub and waits until it either gave
/// up (console) or got an MQTT CONNECT through to the bad hub.
pub(super) async fn against_bad_hub(case: &mut Case, hub: &BadHub) -> Result<Option<String>, Fail> {
    case.rig.power(true).await?;
    tokio::select! {
        l = case.wait_event(EventName::ConnectionFailed, GUARD, events::any) => {
            let l = l?.ok_or("neither a refusal nor a session within the guard")?;
            case.note(Evidence::log(l.clone()));
            Ok(Some(l))
        }
        got = hub.wait(b"MQTT", GUARD) => {
            if !got {
                return Err("neither a refusal nor a session within the guard".into());
            }
            case.note(Evidence::note("the bad hub received an MQTT CONNECT from the device"));
            Ok(None)
        }
    }
}

/// The verdict of MT-05…09: the device's flows to the bad hub carry no
/// application data, and it said why it gave up.
pub(super) async fn refuses_bad_cert(
    case: &mut Case,
    cert_pem: &str,
    key_pem: &str,
    what: &str,
) -> Result<String, Fail> {
    let hub = BadHub::start(case, BadTls::Tls13And12 { cert_pem, key_pem }).await?;
    let refusal = against_bad_hub(case, &hub).await?;
    let dut = dut_ip(case);
    let a = case.analysis()?.clone();
    let flows: Vec<&TcpFlow> = dut_flows(&a, dut)
        .into_iter()
        .filter(|f| f.server.port() == BAD_HUB_PORT)
        .collect();
    // In TLS 1.2 application data is what follows the handshake in clear;
    // in TLS 1.3 everything after the ServerHello looks like it (the
    // device's Finished, or its alert refusing the certificate, included):
    // there the hub's own view decides — did any application data reach it.
    // A completed handshake alone is not the device's failure: a stack
    // may check the peer after the handshake and close before sending
    // anything (Node.js does: `rejectUnauthorized` acts on 'secureConnect').
    let data: Vec<u64> = flows
        .iter()
        .filter(|f| f.tls.version() != Some(TLS13))
        .filter_map(|f| f.to_server.tls.first_application_data.map(|r| r.number))
        .collect();
    let versions: Vec<String> = flows
        .iter()
        .filter_map(|f| f.tls.version())
        .map(|v| if v == TLS13 { "TLS 1.3" } else { "TLS 1.2" }.to_string())
        .collect();
    let (completed, got_data) = (hub.completed(), hub.received_any());
    let alerts: Vec<(u8, u64)> = flows
        .iter()
        .flat_map(|f| {
            f.to_server
                .tls
                .cleartext_alerts
                .iter()
                .map(|a| (a.description, a.frame.number))
        })
        .collect();
    case.note(Evidence::frames(
        format!("{} flows to the bad hub ({versions:?}); handshakes completed {completed} (application data decrypted by the bad hub: {got_data}); device alerts in clear (code, frame) {alerts:?}; application data frames (TLS 1.2) {data:?}", flows.len()),
        alerts.iter().map(|a| a.1).chain(data.iter().copied()),
    ));
    if !data.is_empty() || got_data || refusal.is_none() {
        let connect = if hub.received(b"MQTT") {
            " — an MQTT CONNECT reached the bad hub"
        } else {
            ""
        };
        let seen = if !data.is_empty() {
            format!("it sent application data (frames {data:?}){connect}")
        } else if got_data {
            format!("it sent application data{connect} (encrypted: the bad hub's own record)")
        } else {
            "it reported no failed connection attempt (`connection_failed`)".to_string()
        };
        return Err(Fail::new(
            format!("the device to abort the handshake with a hub whose certificate is {what}"),
            seen,
            format!("capture.pcapng frames {data:?}; device.log"),
        ));
    }
    if flows.is_empty() {
        return Err(Fail::new(
            "a connection attempt to the bad hub",
            "none captured",
            "capture.pcapng",
        ));
    }
    Ok(format!(
        "aborted ({}); alerts {alerts:?}, no application data",
        refusal.unwrap_or_default()
    ))
}

pub(super) fn hub_ca(case: &Case) -> Result<CertificateAuthority, Fail> {
    Ok(CertificateAuthority::load_or_create(
        case.hub.data_dir(),
        "unused",
        SystemTime::now(),
    )?)
}

fn server_cert(
    ca: &CertificateAuthority,
    names: &[&str],
    v: Validity,
) -> Result<(String, String), Fail> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let c = ca.issue_server(&names, v)?;
    Ok((c.cert_pem, c.key_pem.unwrap_or_default()))
}

pub(super) const DAY: Duration = Duration::from_secs(86_400);

pub(super) async fn mt02(case: &mut Case) -> Result<String, Fail> {
    let hub = BadHub::start(case, BadTls::Tls10Only).await?;
    let refusal = against_bad_hub(case, &hub).await?;
    let dut = dut_ip(case);
    let a = case.analysis()?.clone();
    let flows: Vec<&TcpFlow> = dut_flows(&a, dut)
        .into_iter()
        .filter(|f| f.server.port() == BAD_HUB_PORT)
        .collect();
    let mut old_offers = Vec::new();
    let mut hellos = Vec::new();
    for f in &flows {
        for ch in &f.tls.client_hellos {
            hellos.push(ch.frames.last.number);
            if ch.max_version() < TLS12
                || ch
                    .supported_versions
                    .iter()
                    .any(|v| !is_grease(*v) && *v < TLS12)
            {
                old_offers.push((ch.frames.last.number, format!("{:#06x}", ch.max_version())));
            }
        }
    }
    let data: Vec<u64> = flows
        .iter()
        .filter_map(|f| f.to_server.tls.first_application_data.map(|r| r.number))
        .collect();
    let negotiated: Vec<String> = flows
        .iter()
        .filter_map(|f| f.tls.version())
        .map(|v| format!("{v:#06x}"))
        .collect();
    case.note(Evidence::frames(
        format!("ClientHellos {hellos:?}; offers below TLS 1.2 {old_offers:?}; versions the bad hub chose {negotiated:?}; application data {data:?}"),
        hellos.iter().chain(data.iter()).copied(),
    ));
    if hellos.is_empty() {
        return Err(Fail::new(
            "a ClientHello to the TLS 1.0 hub",
            "none captured",
            "capture.pcapng",
        ));
    }
    if !old_offers.is_empty() || !data.is_empty() || refusal.is_none() {
        return Err(Fail::new(
            "only TLS ≥ 1.2 offered, and no application data to a hub offering only TLS 1.0",
            format!("offers below 1.2 (frame, max version): {old_offers:?}; application data frames {data:?}"),
            "capture.pcapng; device.log (legacy TLS fallback)",
        ));
    }
    Ok(format!(
        "TLS ≥ 1.2 only; refused the TLS 1.0 hub ({})",
        refusal.unwrap_or_default()
    ))
}

/// Facts of a DER certificate: subject CN, the SubjectPublicKeyInfo's key
/// bits, and its key type and strength (a minimal DER walk: the suite links
/// no X.509 parser).
pub(super) struct CertFacts {
    pub cn: Option<String>,
    pub key_bits: Vec<u8>,
    pub key: String,
    pub strong: bool,
}

pub(super) fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, mut b) = b.split_first()?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let l = b[..n].iter().fold(0usize, |l, x| l << 8 | *x as usize);
        b = &b[n..];
        l
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

fn children(mut b: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let Some((t, c, r)) = der(b) {
        out.push((t, c));
        b = r;
    }
    out
}

/// Key type and strength of a SubjectPublicKeyInfo's content.
pub(super) fn spki_facts(spki: &[u8]) -> Option<(Vec<u8>, String, bool)> {
    let parts = children(spki);
    let alg = children(parts.first()?.1);
    let bits = parts.get(1)?.1.get(1..)?.to_vec();
    let oid = alg.first()?.1;
    let param = alg.get(1).map(|p| p.1).unwrap_or_default();
    let (key, strong) = match oid {
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01] => match param {
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07] => ("ECDSA P-256".into(), true),
            [0x2b, 0x81, 0x04, 0x00, 0x22] => ("ECDSA P-384".into(), true),
            [0x2b, 0x81, 0x04, 0x00, 0x23] => ("ECDSA P-521".into(), true),
            _ => (format!("ECDSA curve {param:02x?}"), false),
        },
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01] => {
            let n = children(der(&bits)?.1).first()?.1.to_vec();
            let n_bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            (format!("RSA-{n_bits}"), n_bits >= 2048)
        }
        _ => (format!("key algorithm {oid:02x?}"), false),
    };
    Some((bits, key, strong))
}

pub(super) fn cert_facts(cert: &[u8]) -> Option<CertFacts> {
    let tbs = children(der(der(cert)?.1)?.1);
    let off = usize::from(tbs.first()?.0 == 0xa0);
    let subject = tbs.get(off + 4)?.1;
    let cn = children(subject).into_iter().find_map(|(_, set)| {
        let attr = children(children(set).first()?.1);
        let value = attr.get(1)?.1;
        (attr.first()?.1 == [0x55, 0x04, 0x03]).then(|| String::from_utf8_lossy(value).into_owned())
    });
    let (key_bits, key, strong) = spki_facts(tbs.get(off + 5)?.1)?;
    Some(CertFacts {
        cn,
        key_bits,
        key,
        strong,
    })
}

pub(super) async fn mt05(case: &mut Case) -> Result<String, Fail> {
    let other = CertificateAuthority::generate("sacbench untrusted CA", SystemTime::now())?;
    let (c, k) = server_cert(
        &other,
        &[case.net.hub_host.as_str()],
        Validity::days_from(SystemTime::now(), 30),
    )?;
    refuses_bad_cert(case, &c, &k, "from an untrusted CA").await
}

pub(super) async fn mt06(case: &mut Case) -> Result<String, Fail> {
    let (c, k) = server_cert(
        &hub_ca(case)?,
        &["wrong-host.sacbench.test"],
        Validity::days_from(SystemTime::now(), 30),
    )?;
    refuses_bad_cert(case, &c, &k, "for another host name").await
}

pub(super) async fn mt07(case: &mut Case) -> Result<String, Fail> {
    let now = SystemTime::now();
    let v = Validity {
        not_before: now - 30 * DAY,
        not_after: now - DAY,
    };
    let (c, k) = server_cert(&hub_ca(case)?, &[case.net.hub_host.as_str()], v)?;
    refuses_bad_cert(case, &c, &k, "expired").await
}

pub(super) async fn mt08(case: &mut Case) -> Result<String, Fail> {
    let now = SystemTime::now();
    let v = Validity {
        not_before: now + DAY,
        not_after: now + 30 * DAY,
    };
    let (c, k) = server_cert(&hub_ca(case)?, &[case.net.hub_host.as_str()], v)?;
    refuses_bad_cert(case, &c, &k, "not yet valid").await
}

pub(super) async fn mt09(case: &mut Case) -> Result<String, Fail> {
    // A self-signed server (leaf) certificate naming the hub, valid now:
    // the only thing wrong with it is that nobody the device trusts signed it.
    let cert = rcgen::generate_simple_self_signed(vec![case.net.hub_host.clone()])?;
    let (c, k) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    refuses_bad_cert(case, &c, &k, "self-signed").await
}
