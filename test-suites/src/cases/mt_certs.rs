//! MT cases against deliberately bad hubs (MT-02, MT-05…09) and the
//! certificate reading the MT cases share.

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hub_fixture::pki::{CertificateAuthority, Validity};
use sacbench_capture::analysis::{is_grease, TLS12};
use sacbench_capture::TcpFlow;
use sacbench_rig::dut::EventName;
use sacbench_rig::Node;
use sacbench_rig::Rig;

use super::{dut_flows, dut_ip, BAD_HUB_PORT};
use crate::case::{Case, Fail, GUARD};
use crate::events;
use crate::model::Evidence;

/// An `openssl s_server` in the hub namespace on [`BAD_HUB_PORT`]; what it
/// receives (decrypted application data) is collected from its stdout.
struct BadHub {
    child: Child,
    out: Arc<(Mutex<Vec<u8>>, tokio::sync::Notify)>,
}

impl BadHub {
    async fn start(
        case: &Case,
        cert_pem: &str,
        key_pem: &str,
        tls: &[&str],
    ) -> Result<BadHub, Fail> {
        let dir = case.dir.join("bad-hub");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cert.pem"), cert_pem)?;
        std::fs::write(dir.join("key.pem"), key_pem)?;
        let addr = SocketAddr::from((case.rig.hub_ipv4(), BAD_HUB_PORT));
        let mut child = case
            .rig
            .command(Node::Hub, "openssl")
            .args(["s_server", "-accept", &addr.to_string()])
            .arg("-cert")
            .arg(dir.join("cert.pem"))
            .arg("-key")
            .arg(dir.join("key.pem"))
            .args(tls)
            // stdin kept open: s_server ends its session on stdin EOF.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("openssl s_server: {e}"))?;
        let mut stdout = child.stdout.take().expect("piped");
        let out: Arc<(Mutex<Vec<u8>>, tokio::sync::Notify)> = Arc::default();
        let o = out.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                o.0.lock().expect("lock").extend_from_slice(&buf[..n]);
                o.1.notify_waiters();
            }
        });
        let hub = BadHub { child, out };
        // Listening once it says ACCEPT.
        if !hub.wait(b"ACCEPT", Duration::from_secs(10)).await {
            return Err("openssl s_server did not start listening".into());
        }
        Ok(hub)
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

    fn received(&self, needle: &[u8]) -> bool {
        let out = self.out.0.lock().expect("lock");
        out.windows(needle.len()).any(|w| w == needle)
    }
}

impl Drop for BadHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Powers the device on against a bad hub and waits until it either gave
/// up (console) or got an MQTT CONNECT through to the bad hub.
async fn against_bad_hub(case: &mut Case, hub: &BadHub) -> Result<Option<String>, Fail> {
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
async fn refuses_bad_cert(
    case: &mut Case,
    cert_pem: &str,
    key_pem: &str,
    what: &str,
) -> Result<String, Fail> {
    let hub = BadHub::start(case, cert_pem, key_pem, &["-tls1_2"]).await?;
    let refusal = against_bad_hub(case, &hub).await?;
    let dut = dut_ip(case);
    let a = case.analysis()?.clone();
    let flows: Vec<&TcpFlow> = dut_flows(&a, dut)
        .into_iter()
        .filter(|f| f.server.port() == BAD_HUB_PORT)
        .collect();
    let data: Vec<u64> = flows
        .iter()
        .filter_map(|f| f.to_server.tls.first_application_data.map(|r| r.number))
        .collect();
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
        format!("{} flows to the bad hub; device alerts (code, frame) {alerts:?}; application data frames {data:?}", flows.len()),
        alerts.iter().map(|a| a.1).chain(data.iter().copied()),
    ));
    if !data.is_empty() || refusal.is_none() || hub.received(b"MQTT") {
        return Err(Fail::new(
            format!("the device to abort the handshake with a hub whose certificate is {what}"),
            format!(
                "it sent application data (frames {data:?}) — an MQTT CONNECT reached the bad hub"
            ),
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

fn hub_ca(case: &Case) -> Result<CertificateAuthority, Fail> {
    Ok(CertificateAuthority::load_or_create(
        case.hub().data_dir(),
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
    let (cert, key) = server_cert(
        &hub_ca(case)?,
        &[case.rig.hub_host().as_str()],
        Validity::days_from(SystemTime::now(), 30),
    )?;
    let hub = BadHub::start(
        case,
        &cert,
        &key,
        &["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
    )
    .await?;
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
        &[case.rig.hub_host().as_str()],
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
    let (c, k) = server_cert(&hub_ca(case)?, &[case.rig.hub_host().as_str()], v)?;
    refuses_bad_cert(case, &c, &k, "expired").await
}

pub(super) async fn mt08(case: &mut Case) -> Result<String, Fail> {
    let now = SystemTime::now();
    let v = Validity {
        not_before: now + DAY,
        not_after: now + 30 * DAY,
    };
    let (c, k) = server_cert(&hub_ca(case)?, &[case.rig.hub_host().as_str()], v)?;
    refuses_bad_cert(case, &c, &k, "not yet valid").await
}

pub(super) async fn mt09(case: &mut Case) -> Result<String, Fail> {
    // A self-signed server (leaf) certificate naming the hub, valid now:
    // the only thing wrong with it is that nobody the device trusts signed it.
    let cert = rcgen::generate_simple_self_signed(vec![case.rig.hub_host()])?;
    let (c, k) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    refuses_bad_cert(case, &c, &k, "self-signed").await
}
