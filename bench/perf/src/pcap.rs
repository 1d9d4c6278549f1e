//! pcap analysis: ours (`sacbench_capture::analyze_file`) against `tshark`
//! extracting the same facts — the TCP flows, each flow's SNI and its
//! negotiated TLS version — from the same large capture.
//!
//! The capture is synthetic but its TLS is real: every hello is what rustls
//! (client and server, in memory) actually sent, TLS 1.2 and 1.3 alternating,
//! one host name per flow; then application data records filling 1448-byte
//! segments, as a device's session to a hub looks on the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};
use etherparse::PacketBuilder;
use hub_fixture::pki::{CertificateAuthority, Validity};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sacbench_capture::pcapng::{self, InterfaceDescription, Packet, LINKTYPE_ETHERNET};

/// The facts both tools must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub flows: usize,
    /// SNI → how many flows carried it.
    pub sni: BTreeMap<String, usize>,
    /// Negotiated version (0x0303, 0x0304) → flows.
    pub versions: BTreeMap<u16, usize>,
}

/// The first flight of each side of a real handshake for `host`.
fn hellos(ca: &CertificateAuthority, host: &str, tls13: bool) -> Result<(Vec<u8>, Vec<u8>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cert = ca.issue_server(
        &[host.to_owned()],
        Validity::days_from(SystemTime::now(), 2),
    )?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12]
    };
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(
                server_cert.cert_pem.as_bytes(),
            )?],
            PrivateKeyDer::from_pem_slice(
                server_cert
                    .key_pem
                    .as_deref()
                    .unwrap_or_default()
                    .as_bytes(),
            )?,
        )?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der().clone())?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut c =
        rustls::ClientConnection::new(Arc::new(client), ServerName::try_from(host.to_owned())?)?;
    let mut s = rustls::ServerConnection::new(Arc::new(server))?;
    let mut ch = Vec::new();
    c.write_tls(&mut ch)?;
    s.read_tls(&mut &ch[..])?;
    s.process_new_packets()?;
    let mut sh = Vec::new();
    while s.wants_write() {
        s.write_tls(&mut sh)?;
    }
    Ok((ch, sh))
}

/// Writes a capture of at least `bytes` bytes to `path`; returns what it holds.
pub fn write_capture(path: &Path, ca: &CertificateAuthority, bytes: u64) -> Result<Facts> {
    const SEGMENT: usize = 1448;
    const DATA_SEGMENTS: usize = 400;
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    pcapng::write_file_head(
        &mut w,
        &InterfaceDescription {
            name: "perf0".into(),
            description: "synthetic device-to-hub sessions".into(),
            link_type: LINKTYPE_ETHERNET,
            snap_len: 65535,
        },
        None,
    )?;
    // A few real handshakes, reused across flows with the same version.
    let kinds = [
        (hellos(ca, "d00000.sacbench.test", true)?, 0x0304u16),
        (hellos(ca, "d00000.sacbench.test", false)?, 0x0303u16),
    ];
    let mut record = vec![0x17, 0x03, 0x03];
    record.extend_from_slice(&((SEGMENT - 5) as u16).to_be_bytes());
    record.extend((0..SEGMENT - 5).map(|i| (i * 131 % 251) as u8));
    let mut written = 0u64;
    let mut ts = 1_700_000_000_000_000_000u64;
    let mut facts = Facts {
        flows: 0,
        sni: BTreeMap::new(),
        versions: BTreeMap::new(),
    };
    let mut frame = Vec::with_capacity(2048);
    let mut flow = 0u32;
    while written < bytes {
        let ((ch, sh), version) = &kinds[flow as usize % 2];
        // The SNI differs per flow: rewrite the host name in place (same length).
        let host = "d00000.sacbench.test";
        let sni = format!("d{:05}.sacbench.test", flow % 100_000);
        debug_assert_eq!(host.len(), sni.len());
        let ch = replace(ch, host.as_bytes(), sni.as_bytes());
        let client = [10, 1, (flow >> 8) as u8, flow as u8];
        let cport = 40_000 + (flow % 20_000) as u16;
        let (mut cseq, mut sseq) = (1000u32, 5000u32);
        let mut emit = |w: &mut BufWriter<std::fs::File>,
                        to_server: bool,
                        flags: u8,
                        payload: &[u8],
                        cseq: &mut u32,
                        sseq: &mut u32|
         -> Result<u64> {
            let (src, dst, sp, dp, seq, ack) = if to_server {
                (client, [10, 0, 0, 6], cport, 8883, *cseq, *sseq)
            } else {
                ([10, 0, 0, 6], client, 8883, cport, *sseq, *cseq)
            };
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4(src, dst, 64)
                .tcp(sp, dp, seq, 65535);
            let b = match flags {
                0 => b.syn(),
                1 => b.syn().ack(ack),
                2 => b.ack(ack).psh(),
                _ => b.ack(ack).fin(),
            };
            frame.clear();
            b.write(&mut frame, payload)?;
            let adv = payload.len() as u32 + u32::from(flags == 0 || flags == 1 || flags == 3);
            if to_server {
                *cseq = cseq.wrapping_add(adv);
            } else {
                *sseq = sseq.wrapping_add(adv);
            }
            ts += 10_000;
            pcapng::write_enhanced_packet(
                w,
                0,
                &Packet {
                    timestamp_ns: ts,
                    data: &frame,
                    original_len: frame.len() as u32,
                },
            )?;
            Ok(frame.len() as u64 + 32)
        };
        written += emit(&mut w, true, 0, &[], &mut cseq, &mut sseq)?;
        written += emit(&mut w, false, 1, &[], &mut cseq, &mut sseq)?;
        written += emit(&mut w, true, 2, &ch, &mut cseq, &mut sseq)?;
        for chunk in sh.chunks(SEGMENT) {
            written += emit(&mut w, false, 2, chunk, &mut cseq, &mut sseq)?;
        }
        for i in 0..DATA_SEGMENTS {
            written += emit(&mut w, i % 8 == 0, 2, &record, &mut cseq, &mut sseq)?;
        }
        written += emit(&mut w, true, 3, &[], &mut cseq, &mut sseq)?;
        written += emit(&mut w, false, 3, &[], &mut cseq, &mut sseq)?;
        facts.flows += 1;
        *facts.sni.entry(sni).or_default() += 1;
        *facts.versions.entry(*version).or_default() += 1;
        flow += 1;
    }
    w.flush()?;
    Ok(facts)
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = hay.to_vec();
    if let Some(i) = hay.windows(from.len()).position(|w| w == from) {
        out[i..i + to.len()].copy_from_slice(to);
    }
    out
}

/// Our analysis: (facts, seconds).
pub fn ours(path: &Path) -> Result<(Facts, f64)> {
    let started = Instant::now();
    let a = sacbench_capture::analyze_file(path)?;
    let secs = started.elapsed().as_secs_f64();
    let mut facts = Facts {
        flows: a.tcp_flows.len(),
        sni: BTreeMap::new(),
        versions: BTreeMap::new(),
    };
    for f in &a.tcp_flows {
        if let Some(s) = f.tls.client_hellos.first().and_then(|c| c.sni.clone()) {
            *facts.sni.entry(s).or_default() += 1;
        }
        if let Some(v) = f.tls.version() {
            *facts.versions.entry(v).or_default() += 1;
        }
    }
    Ok((facts, secs))
}

/// tshark's: (facts, seconds). One pass, fields of the hellos per stream.
pub fn tshark(path: &Path) -> Result<(Facts, f64)> {
    let started = Instant::now();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-n", "-T", "fields", "-E", "separator=;"])
        .args([
            "-e",
            "tcp.stream",
            "-e",
            "tls.handshake.type",
            "-e",
            "tls.handshake.extensions_server_name",
        ])
        .args([
            "-e",
            "tls.handshake.version",
            "-e",
            "tls.handshake.extensions.supported_version",
        ])
        .output()
        .context("tshark (apt-get install tshark)")?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("tshark: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut streams = BTreeSet::new();
    let mut sni: BTreeMap<u64, String> = BTreeMap::new();
    let mut version: BTreeMap<u64, u16> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split(';').collect();
        let Some(stream) = f.first().and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        streams.insert(stream);
        let types = f.get(1).copied().unwrap_or("");
        if types.split(',').any(|t| t == "1") && !f.get(2).unwrap_or(&"").is_empty() {
            sni.insert(stream, f[2].to_owned());
        }
        if types.split(',').any(|t| t == "2") {
            let hex = |s: &str| u16::from_str_radix(s.trim_start_matches("0x"), 16).ok();
            // TLS 1.3: the ServerHello's supported_versions; else its version field.
            let v = f
                .get(4)
                .and_then(|s| s.split(',').next())
                .and_then(hex)
                .or_else(|| f.get(3).and_then(|s| s.split(',').next()).and_then(hex));
            if let Some(v) = v {
                version.insert(stream, v);
            }
        }
    }
    let mut facts = Facts {
        flows: streams.len(),
        sni: BTreeMap::new(),
        versions: BTreeMap::new(),
    };
    for s in sni.into_values() {
        *facts.sni.entry(s).or_default() += 1;
    }
    for v in version.into_values() {
        *facts.versions.entry(v).or_default() += 1;
    }
    Ok((facts, secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmark compares like with like: on a small capture of the same
    /// kind, our analysis and tshark both find exactly what was written.
    #[test]
    fn both_tools_find_what_the_capture_holds() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("perf test CA", SystemTime::now()).unwrap();
        let path = dir.path().join("c.pcapng");
        let facts = write_capture(&path, &ca, 3 << 20).unwrap();
        assert!(facts.flows >= 4, "{facts:?}");
        assert_eq!(facts.versions.len(), 2, "TLS 1.2 and 1.3: {facts:?}");
        assert_eq!(ours(&path).unwrap().0, facts);
        assert_eq!(tshark(&path).unwrap().0, facts);
    }
}
