//! Analysis of synthetic captures: packets built with etherparse, TLS bytes from real
//! in-memory rustls handshakes, files written with this crate's pcapng writer. Every
//! expected frame number is the position of a packet the test itself placed.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use etherparse::PacketBuilder;
use pcap_parser::pcapng::{Block, SecretsType};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, PcapNGReader};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use sacbench_capture::analysis::{classify_cipher_suite, CipherClass, FlowOpening, TLS12, TLS13};
use sacbench_capture::pcapng::{write_pcapng, InterfaceDescription, Packet, LINKTYPE_ETHERNET};
use sacbench_capture::{analyze, Analysis};

const DUT: [u8; 4] = [10, 231, 0, 2];
const HUB: [u8; 4] = [10, 231, 0, 1];
const T0: u64 = 1_700_000_000_000_000_000;
const SECOND: u64 = 1_000_000_000;

/// Builds a capture packet by packet; `push` returns the frame number tshark would show.
#[derive(Default)]
struct Trace {
    frames: Vec<(u64, Vec<u8>)>,
}

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    Rst,
}

impl Trace {
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        t: u64,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        flags: Flags,
        payload: &[u8],
    ) -> u64 {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.0, dst.0, 64)
            .tcp(src.1, dst.1, seq, 64240);
        let b = match flags {
            Flags::Syn => b.syn(),
            Flags::SynAck => b.syn().ack(1),
            Flags::Ack => b.ack(1).psh(),
            Flags::Rst => b.rst().ack(1),
        };
        let mut buf = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut buf, payload).expect("build tcp packet");
        self.frames.push((t, buf));
        self.frames.len() as u64
    }

    fn udp(&mut self, t: u64, src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> u64 {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.0, dst.0, 64)
            .udp(src.1, dst.1);
        let mut buf = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut buf, payload).expect("build udp packet");
        self.frames.push((t, buf));
        self.frames.len() as u64
    }

    fn pcapng(&self, key_log: Option<&[u8]>) -> Vec<u8> {
        let iface = InterfaceDescription {
            name: "veth-dut".into(),
            description: "DUT-facing veth".into(),
            link_type: LINKTYPE_ETHERNET,
            snap_len: 262_144,
        };
        let packets = self.frames.iter().map(|(t, d)| Packet {
            timestamp_ns: *t,
            data: d,
            original_len: d.len() as u32,
        });
        write_pcapng(Vec::new(), &iface, key_log, packets).expect("write pcapng")
    }

    fn analyze(&self) -> Analysis {
        analyze(std::io::Cursor::new(self.pcapng(None))).expect("analysis")
    }
}

fn sa(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

/// The flights of a real TLS handshake (plus one application message from the client),
/// produced by rustls talking to itself in memory: (from_client, bytes).
fn tls_flights(version: &'static rustls::SupportedProtocolVersion) -> Vec<(bool, Vec<u8>)> {
    tls_flights_logged(version).0
}

/// Flights (from_client, bytes), the client's key log, the client's certificate.
type LoggedFlights = (Vec<(bool, Vec<u8>)>, String, Vec<u8>);

/// A key log in memory (NSS format), as the bench writes one.
#[derive(Debug, Default)]
struct KeyLogText(std::sync::Mutex<String>);

impl rustls::KeyLog for KeyLogText {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let line = format!("{label} {} {}\n", hex(client_random), hex(secret));
        self.0.lock().unwrap().push_str(&line);
    }
}

/// [`tls_flights`] with mutual TLS (the client presents its own certificate,
/// returned third) and the client's key log (returned second).
fn tls_flights_logged(version: &'static rustls::SupportedProtocolVersion) -> LoggedFlights {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ck =
        rcgen::generate_simple_self_signed(vec!["hub.sacbench.test".to_string()]).expect("cert");
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let device = rcgen::generate_simple_self_signed(vec!["dev-1".to_string()]).expect("cert");
    let device_cert: CertificateDer<'static> = device.cert.der().clone();
    let device_key =
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(device.signing_key.serialize_der()));
    let mut device_roots = RootCertStore::empty();
    device_roots.add(device_cert.clone()).expect("device root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        device_roots.into(),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let mut roots = RootCertStore::empty();
    roots.add(cert).expect("root");
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![device_cert.clone()], device_key)
        .expect("client auth");
    client.alpn_protocols = vec![b"mqtt".to_vec()];
    let key_log = Arc::new(KeyLogText::default());
    client.key_log = key_log.clone();
    let name = ServerName::try_from("hub.sacbench.test").expect("name");
    let mut c = ClientConnection::new(Arc::new(client), name).expect("client");
    let mut s = ServerConnection::new(Arc::new(server)).expect("server");
    let mut flights = Vec::new();
    let mut sent_app = false;
    for _ in 0..20 {
        if !c.is_handshaking() && !sent_app {
            c.writer().write_all(b"hello hub").expect("app data");
            sent_app = true;
        }
        let mut out = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut out).expect("client write");
        }
        if !out.is_empty() {
            s.read_tls(&mut out.as_slice()).expect("server read");
            s.process_new_packets().expect("server process");
            flights.push((true, out));
        }
        let mut back = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut back).expect("server write");
        }
        if !back.is_empty() {
            c.read_tls(&mut back.as_slice()).expect("client read");
            c.process_new_packets().expect("client process");
            flights.push((false, back));
        }
        if sent_app && !c.wants_write() && !s.wants_write() {
            let log = key_log.0.lock().unwrap().clone();
            return (flights, log, device_cert.to_vec());
        }
    }
    panic!("handshake did not finish");
}

/// A full connection DUT → hub:8883 carrying `flights`, with the ClientHello split across
/// two segments and the segments of the second client flight delivered out of order plus
/// one retransmission. Returns (SYN frame, frames of the ClientHello parts, ServerHello
/// frame).
fn tls_connection(trace: &mut Trace, flights: &[(bool, Vec<u8>)]) -> (u64, [u64; 2], u64) {
    let c = (DUT, 40001);
    let s = (HUB, 8883);
    let (mut cseq, mut sseq) = (1000u32, 5000u32);
    let mut t = T0;
    let syn = trace.tcp(t, c, s, cseq, Flags::Syn, &[]);
    trace.tcp(t + 1, s, c, sseq, Flags::SynAck, &[]);
    (cseq, sseq) = (cseq + 1, sseq + 1);
    let mut hello_frames = [0; 2];
    let mut server_hello = 0;
    for (i, (from_client, bytes)) in flights.iter().enumerate() {
        t += 1000;
        if i == 0 {
            let (a, b) = bytes.split_at(100);
            hello_frames[0] = trace.tcp(t, c, s, cseq, Flags::Ack, a);
            hello_frames[1] = trace.tcp(t + 1, c, s, cseq + 100, Flags::Ack, b);
            cseq += bytes.len() as u32;
        } else if *from_client && bytes.len() > 20 {
            // Second half first, then the first half, then the first half again.
            let (a, b) = bytes.split_at(bytes.len() / 2);
            trace.tcp(t, c, s, cseq + a.len() as u32, Flags::Ack, b);
            trace.tcp(t + 1, c, s, cseq, Flags::Ack, a);
            trace.tcp(t + 2, c, s, cseq, Flags::Ack, a);
            cseq += bytes.len() as u32;
        } else if *from_client {
            trace.tcp(t, c, s, cseq, Flags::Ack, bytes);
            cseq += bytes.len() as u32;
        } else {
            let f = trace.tcp(t, s, c, sseq, Flags::Ack, bytes);
            if server_hello == 0 {
                server_hello = f;
            }
            sseq += bytes.len() as u32;
        }
    }
    (syn, hello_frames, server_hello)
}

/// Records in one direction's flights, counted with tls-parser.
fn record_count(flights: &[(bool, Vec<u8>)], from_client: bool) -> u64 {
    let mut n = 0;
    for (_, bytes) in flights.iter().filter(|(c, _)| *c == from_client) {
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            rest = tls_parser::parse_tls_raw_record(rest).expect("record").0;
            n += 1;
        }
    }
    n
}

#[test]
fn tls13_handshake_facts_and_frames() {
    let mut trace = Trace::default();
    let flights = tls_flights(&rustls::version::TLS13);
    let (syn, hello, sh) = tls_connection(&mut trace, &flights);
    let a = trace.analyze();
    assert_eq!(a.frames, trace.frames.len() as u64);
    assert_eq!(a.tcp_flows.len(), 1);
    let f = &a.tcp_flows[0];
    assert_eq!((f.client, f.server), (sa(DUT, 40001), sa(HUB, 8883)));
    assert_eq!(f.opening, FlowOpening::Syn);
    assert_eq!(f.syns.iter().map(|s| s.number).collect::<Vec<_>>(), [syn]);
    assert_eq!(f.syns[0].time_ns, T0);
    assert_eq!(f.syn_ack.map(|s| s.number), Some(syn + 1));
    let ch = &f.tls.client_hellos[0];
    assert_eq!(f.tls.client_hellos.len(), 1);
    assert_eq!(
        (ch.frames.first.number, ch.frames.last.number),
        (hello[0], hello[1])
    );
    assert_eq!(ch.sni.as_deref(), Some("hub.sacbench.test"));
    assert_eq!(ch.alpn, ["mqtt"]);
    assert_eq!(ch.legacy_version, TLS12);
    assert_eq!(ch.max_version(), TLS13);
    assert!(
        ch.cipher_suites.contains(&0x1301),
        "{:x?}",
        ch.cipher_suites
    );
    assert!(ch.non_aead_suites().is_empty(), "{:x?}", ch.cipher_suites);
    let s = f.tls.server_hello.as_ref().expect("server hello");
    assert_eq!(s.frames.last.number, sh);
    assert_eq!(s.version(), TLS13);
    assert_eq!(s.legacy_version, TLS12);
    assert!(ch.cipher_suites.contains(&s.cipher_suite));
    assert_eq!(classify_cipher_suite(s.cipher_suite), CipherClass::Aead);
    assert!(f.tls_throughout(), "{f:#?}");
    assert!(f.to_server.tls.first_application_data.is_some());
    assert!(f.to_server.tls.cleartext_alerts.is_empty());
    assert_eq!(f.to_server.gap, None);
    // Every record of both directions was walked exactly once, despite the split, the
    // reordering and the retransmission.
    assert_eq!(f.to_server.tls.records, record_count(&flights, true));
    assert_eq!(f.to_client.tls.records, record_count(&flights, false));
    // Bytes as captured include the retransmitted half flight.
    let stream: usize = flights
        .iter()
        .filter(|(c, _)| *c)
        .map(|(_, b)| b.len())
        .sum();
    assert!(f.to_server.payload_bytes as usize > stream);
}

#[test]
fn tls12_handshake_is_encrypted_after_ccs() {
    let mut trace = Trace::default();
    let flights = tls_flights(&rustls::version::TLS12);
    tls_connection(&mut trace, &flights);
    let f = &trace.analyze().tcp_flows[0];
    let sh = f.tls.server_hello.as_ref().expect("server hello");
    assert_eq!((sh.version(), sh.selected_version), (TLS12, None));
    assert!(f.to_server.tls.change_cipher_spec.is_some());
    assert!(f.to_client.tls.change_cipher_spec.is_some());
    assert_eq!(f.to_server.tls.records, record_count(&flights, true));
    assert_eq!(f.to_client.tls.records, record_count(&flights, false));
    assert_eq!(f.to_server.tls.cleartext_application_data, None);
    assert!(f.tls_throughout(), "{f:#?}");
}

#[test]
fn cleartext_payload_alerts_and_inbound_flows() {
    let mut trace = Trace::default();
    let (c, s) = ((DUT, 40002), (HUB, 1883));
    trace.tcp(T0, c, s, 10, Flags::Syn, &[]);
    trace.tcp(T0 + 1, s, c, 90, Flags::SynAck, &[]);
    let clear = trace.tcp(T0 + 2, c, s, 11, Flags::Ack, b"\x10\x0c\x00\x04MQTT");
    // A TLS 1.2 record stream from the server that ends in a plaintext fatal alert
    // (protocol_version), as a hub refusing the offered versions would send.
    let (c2, s2) = ((DUT, 40003), (HUB, 8883));
    trace.tcp(T0 + 10, c2, s2, 7, Flags::Syn, &[]);
    trace.tcp(T0 + 11, s2, c2, 70, Flags::SynAck, &[]);
    let alert = trace.tcp(T0 + 12, s2, c2, 71, Flags::Ack, &[21, 3, 3, 0, 2, 2, 70]);
    // The hub opening a connection to the DUT: an inbound flow.
    let inbound = trace.tcp(T0 + 20, (HUB, 50000), (DUT, 22), 1, Flags::Syn, &[]);
    trace.tcp(T0 + 21, (DUT, 22), (HUB, 50000), 0, Flags::Rst, &[]);
    let a = trace.analyze();
    assert_eq!(a.tcp_flows.len(), 3);
    let plain = &a.tcp_flows[0];
    assert_eq!(plain.to_server.tls.starts_with_tls_record, Some(false));
    assert_eq!(
        plain.to_server.tls.not_tls.map(|n| n.frame.number),
        Some(clear)
    );
    assert_eq!(plain.to_server.first_payload.map(|f| f.number), Some(clear));
    assert!(!plain.tls_throughout());
    let tls = &a.tcp_flows[1];
    assert_eq!(tls.to_client.tls.starts_with_tls_record, Some(true));
    let alerts = &tls.to_client.tls.cleartext_alerts;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (
            alerts[0].frame.number,
            alerts[0].level,
            alerts[0].description
        ),
        (alert, 2, 70)
    );
    let inb = &a.tcp_flows[2];
    assert_eq!((inb.client, inb.server), (sa(HUB, 50000), sa(DUT, 22)));
    assert_eq!(inb.syns[0].number, inbound);
    assert_eq!(inb.to_client.rst.map(|f| f.number), Some(inbound + 1));
}

#[test]
fn reconnect_attempts_and_their_spacing() {
    let mut trace = Trace::default();
    let s = (HUB, 8883);
    let mut expected = Vec::new();
    for (i, at) in [0, SECOND, 3 * SECOND, 7 * SECOND].into_iter().enumerate() {
        let c = (DUT, 41000 + i as u16);
        expected.push(trace.tcp(T0 + at, c, s, 100 + i as u32, Flags::Syn, &[]));
        if i == 0 {
            // The kernel retransmitting the first SYN: same port, same ISN.
            trace.tcp(T0 + at + SECOND / 2, c, s, 100, Flags::Syn, &[]);
        }
        trace.tcp(T0 + at + 1, s, c, 0, Flags::Rst, &[]);
    }
    let a = trace.analyze();
    let attempts = a.connection_attempts();
    assert_eq!(attempts.len(), 1);
    let g = &attempts[0];
    assert_eq!((g.client, g.server), (sa(DUT, 0).ip(), sa(HUB, 8883)));
    assert_eq!(g.syns.len(), 5);
    let firsts: Vec<u64> = g
        .syns
        .iter()
        .filter(|s| !s.retransmission)
        .map(|s| s.frame.number)
        .collect();
    assert_eq!(firsts, expected);
    assert!(g.syns[1].retransmission && g.syns[1].client_port == 41000);
    assert!(g.syns.iter().all(|s| !s.answered));
    assert_eq!(g.attempt_intervals_ns(), [SECOND, 2 * SECOND, 4 * SECOND]);
}

#[test]
fn udp_requests_and_replies() {
    let mut trace = Trace::default();
    let dns = trace.udp(T0, (HUB, 5353), (DUT, 53), b"query");
    let answer = trace.udp(T0 + 5, (DUT, 53), (HUB, 5353), b"answer!");
    let snmp = trace.udp(T0 + 10, (HUB, 5354), (DUT, 161), b"get");
    let a = trace.analyze();
    assert_eq!(a.udp_exchanges.len(), 2);
    let x = &a.udp_exchanges[0];
    assert_eq!((x.client, x.server), (sa(HUB, 5353), sa(DUT, 53)));
    assert_eq!(x.first_request.number, dns);
    assert_eq!(x.first_reply.map(|f| f.number), Some(answer));
    assert_eq!(
        (x.requests, x.request_bytes, x.replies, x.reply_bytes),
        (1, 5, 1, 7)
    );
    let y = &a.udp_exchanges[1];
    assert_eq!((y.first_request.number, y.first_reply), (snmp, None));
}

#[test]
fn cipher_suite_classes() {
    assert_eq!(classify_cipher_suite(0x1301), CipherClass::Aead); // TLS_AES_128_GCM_SHA256
    assert_eq!(classify_cipher_suite(0xcca8), CipherClass::Aead); // ECDHE_RSA_CHACHA20
    assert_eq!(classify_cipher_suite(0xc0ac), CipherClass::Aead); // ECDHE_ECDSA_AES_128_CCM
    assert_eq!(classify_cipher_suite(0x002f), CipherClass::NotAead); // RSA_AES_128_CBC_SHA
    assert_eq!(classify_cipher_suite(0x000a), CipherClass::NotAead); // RSA_3DES_EDE_CBC_SHA
    assert_eq!(classify_cipher_suite(0x0005), CipherClass::NotAead); // RSA_RC4_128_SHA
    assert_eq!(classify_cipher_suite(0x0001), CipherClass::NotAead); // RSA_NULL_MD5
    assert_eq!(classify_cipher_suite(0x00ff), CipherClass::Signalling);
    assert_eq!(classify_cipher_suite(0x5600), CipherClass::Signalling);
    assert_eq!(classify_cipher_suite(0x3a3a), CipherClass::Signalling);
    assert_eq!(classify_cipher_suite(0xfefe), CipherClass::Unknown);
}

#[test]
fn pcapng_blocks_as_an_independent_reader_sees_them() {
    let mut trace = Trace::default();
    trace.udp(T0 + 123_456_789, (HUB, 1), (DUT, 2), b"abc");
    trace.udp(T0 + SECOND, (DUT, 2), (HUB, 1), b"de");
    let key_log = b"CLIENT_RANDOM 00 11\n";
    let file = trace.pcapng(Some(key_log));
    let mut reader = PcapNGReader::new(65536, std::io::Cursor::new(file)).expect("reader");
    let mut kinds = Vec::new();
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => kinds.push("SHB"),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        kinds.push("IDB");
                        assert_eq!(idb.if_name().and_then(Result::ok), Some("veth-dut"));
                        assert_eq!(
                            idb.if_description().and_then(Result::ok),
                            Some("DUT-facing veth")
                        );
                        assert_eq!(idb.ts_resolution(), Some(1_000_000_000));
                    }
                    PcapBlockOwned::NG(Block::DecryptionSecrets(dsb)) => {
                        kinds.push("DSB");
                        assert_eq!(dsb.secrets_type, SecretsType::TlsKeyLog);
                        assert_eq!(dsb.data, key_log);
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        kinds.push("EPB");
                        assert_eq!(epb.caplen, epb.origlen);
                    }
                    _ => kinds.push("other"),
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().expect("refill"),
            Err(e) => panic!("pcapng error: {e:?}"),
        }
    }
    assert_eq!(kinds, ["SHB", "IDB", "DSB", "EPB", "EPB"]);
    let a = trace.analyze();
    let x = &a.udp_exchanges[0];
    assert_eq!(x.first_request.time_ns, T0 + 123_456_789);
    assert_eq!(x.first_reply.map(|f| f.time_ns), Some(T0 + SECOND));
}

#[test]
fn truncated_file_is_an_error_not_a_silent_success() {
    let mut trace = Trace::default();
    trace.udp(T0, (HUB, 1), (DUT, 2), &[7; 300]);
    let mut file = trace.pcapng(None);
    file.truncate(file.len() - 100);
    assert!(analyze(std::io::Cursor::new(file)).is_err());
}

/// TLS 1.3 opened with the key log, despite the split, reordered and
/// retransmitted segments: the client's encrypted Certificate (the device's
/// leaf) and its application data come back with the frames they arrived in.
#[test]
fn tls13_records_are_decrypted_with_the_key_log() {
    let mut trace = Trace::default();
    let (flights, key_log, device_cert) = tls_flights_logged(&rustls::version::TLS13);
    tls_connection(&mut trace, &flights);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pcapng");
    std::fs::write(&path, trace.pcapng(None)).unwrap();
    let flows =
        sacbench_capture::decrypt::decrypt_capture(&path, &key_log, |_, s| s.port() == 8883)
            .unwrap();
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!((f.client, f.server), (sa(DUT, 40001), sa(HUB, 8883)));
    assert_eq!((f.version, f.undecrypted.as_deref()), (Some(TLS13), None));
    let (app, ends) = f.application_stream(true);
    assert_eq!(app, b"hello hub");
    let last = trace.frames.len() as u64;
    assert!(sacbench_capture::decrypt::frame_at(&ends, 0).is_some_and(|n| n <= last));
    // The client's Certificate message (type 11): context, list, first entry.
    let certs: Vec<Vec<u8>> = f
        .handshake_messages(true)
        .into_iter()
        .filter(|m| m.1 == 11)
        .map(|m| m.2)
        .collect();
    assert_eq!(certs.len(), 1);
    let body = &certs[0];
    // context (empty), the list's length, the first entry's length, its DER.
    assert_eq!(body[0], 0);
    let leaf_len =
        (usize::from(body[4]) << 16) | (usize::from(body[5]) << 8) | usize::from(body[6]);
    assert_eq!(&body[7..7 + leaf_len], &device_cert[..]);
    // The server's Finished decrypted too (type 20).
    assert!(f.handshake_messages(false).iter().any(|m| m.1 == 20));
    // Without the secrets nothing is opened, and the flow says why.
    let flows = sacbench_capture::decrypt::decrypt_capture(&path, "", |_, _| true).unwrap();
    assert!(flows[0].application_stream(true).0.is_empty());
    assert!(flows[0]
        .undecrypted
        .as_deref()
        .unwrap()
        .contains("CLIENT_TRAFFIC_SECRET_0"));
}

#[test]
fn tls12_flows_are_named_not_decrypted() {
    let mut trace = Trace::default();
    let (flights, key_log, _) = tls_flights_logged(&rustls::version::TLS12);
    tls_connection(&mut trace, &flights);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pcapng");
    std::fs::write(&path, trace.pcapng(None)).unwrap();
    let flows = sacbench_capture::decrypt::decrypt_capture(&path, &key_log, |_, _| true).unwrap();
    assert_eq!(flows[0].version, Some(TLS12));
    assert!(flows[0]
        .undecrypted
        .as_deref()
        .unwrap()
        .contains("only TLS 1.3"));
    // Its cleartext handshake (the client's certificate included) is there.
    assert!(flows[0].handshake_messages(true).iter().any(|m| m.1 == 11));
}

/// The capture that made pcap-parser underflow (found by fuzzing) is one
/// error for the decryption's reader too, not a panic.
#[test]
fn a_short_pcapng_block_is_an_error_for_the_decryption_too() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../fuzz/corpus/pcapng_analysis/regression-short-process-information-block.pcapng",
    );
    let e = sacbench_capture::decrypt::decrypt_capture(&path, "", |_, _| true).unwrap_err();
    assert!(
        e.to_string().contains("under the minimum of 12 bytes"),
        "{e}"
    );
}
