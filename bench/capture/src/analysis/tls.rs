//! TLS facts from a reassembled TCP byte stream: record framing, hellos, cleartext alerts.
//!
//! The tracker walks record headers through the whole stream of one direction without
//! copying record bodies: it only needs the 5-byte headers to stay in sync, which is what
//! proves "TLS from the first byte and throughout". Handshake bytes are collected only for
//! the messages we report (ClientHello from the client, ServerHello from the server), and
//! only while the handshake is in cleartext; other handshake messages are skipped by length.
//! Parsing of headers, hellos, extensions and alerts is done by `tls-parser`.

use tls_parser::{
    parse_tls_client_hello_extensions, parse_tls_handshake_client_hello,
    parse_tls_handshake_server_hello, parse_tls_message_alert, parse_tls_record_header,
    parse_tls_server_hello_extensions, TlsCipherMac, TlsCipherSuite, TlsExtension,
    TlsExtensionType, TlsMessage,
};

use super::FrameRef;

/// TLS 1.3 (0x0304), as carried in `supported_versions`.
pub const TLS13: u16 = 0x0304;
/// TLS 1.2 (0x0303).
pub const TLS12: u16 = 0x0303;

/// A handshake message can span records and segments: first and last frame carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpan {
    /// Frame carrying the message's first byte.
    pub first: FrameRef,
    /// Frame carrying its last byte (where tshark shows the reassembled message).
    pub last: FrameRef,
}

/// What the client offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// Frames the message came from.
    pub frames: FrameSpan,
    /// `legacy_version` field (0x0303 for TLS 1.2 and 1.3 clients).
    pub legacy_version: u16,
    /// `supported_versions` extension, in the client's order (may include GREASE values).
    pub supported_versions: Vec<u16>,
    /// Cipher suites in the client's order (including SCSVs and GREASE).
    pub cipher_suites: Vec<u16>,
    /// `server_name` host name, if the extension is present.
    pub sni: Option<String>,
    /// ALPN protocol names offered.
    pub alpn: Vec<String>,
    /// Extension types in order (as `tls-parser` decoded them).
    pub extensions: Vec<u16>,
}

impl ClientHello {
    /// Highest real TLS version offered: the largest non-GREASE `supported_versions`
    /// entry, or `legacy_version` when the extension is absent.
    pub fn max_version(&self) -> u16 {
        self.supported_versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(self.legacy_version)
    }

    /// Offered suites that are real ciphers but not AEAD (signalling values and GREASE are
    /// not counted; unknown suites are, since nothing proves they are AEAD).
    pub fn non_aead_suites(&self) -> Vec<u16> {
        self.cipher_suites
            .iter()
            .copied()
            .filter(|&s| {
                matches!(
                    classify_cipher_suite(s),
                    CipherClass::NotAead | CipherClass::Unknown
                )
            })
            .collect()
    }
}

/// What the server chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// Frames the message came from.
    pub frames: FrameSpan,
    /// `legacy_version` field.
    pub legacy_version: u16,
    /// Version from the `supported_versions` extension (TLS 1.3 servers).
    pub selected_version: Option<u16>,
    /// Chosen cipher suite.
    pub cipher_suite: u16,
    /// True for a TLS 1.3 HelloRetryRequest (a ServerHello with the special random).
    pub hello_retry_request: bool,
}

impl ServerHello {
    /// Negotiated version: `supported_versions` if present, else `legacy_version`.
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// The handshake of one TCP flow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsHandshake {
    /// ClientHellos seen (two after a HelloRetryRequest).
    pub client_hellos: Vec<ClientHello>,
    /// The (final) ServerHello.
    pub server_hello: Option<ServerHello>,
    /// A TLS 1.3 HelloRetryRequest, if the server sent one.
    pub hello_retry_request: Option<ServerHello>,
}

impl TlsHandshake {
    /// The negotiated version, once the ServerHello was seen.
    pub fn version(&self) -> Option<u16> {
        self.server_hello.as_ref().map(ServerHello::version)
    }

    fn is_tls13(&self) -> bool {
        let hrr = self.hello_retry_request.as_ref().map(ServerHello::version);
        self.version().or(hrr) == Some(TLS13)
    }
}

/// A TLS alert readable on the wire (sent before that direction encrypted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsAlert {
    /// Frame carrying the alert's last byte.
    pub frame: FrameRef,
    /// 1 = warning, 2 = fatal.
    pub level: u8,
    /// AlertDescription code (e.g. 42 bad_certificate, 48 unknown_ca, 70 protocol_version).
    pub description: u8,
}

/// Where a direction's byte stream stopped being TLS records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotTls {
    /// Frame carrying the first byte that is not a valid record header.
    pub frame: FrameRef,
    /// Offset of that byte in the direction's stream (0 = the first payload byte).
    pub stream_offset: u64,
}

/// Record-level facts of one direction of a TCP flow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsRecords {
    /// Whether the stream's first five bytes form a valid TLS record header. `None` when
    /// the direction carried no payload or its start was not captured.
    pub starts_with_tls_record: Option<bool>,
    /// Records whose header was seen.
    pub records: u64,
    /// First byte where the stream is not a TLS record (cleartext or garbage): the record
    /// walk stops there.
    pub not_tls: Option<NotTls>,
    /// First ChangeCipherSpec record of this direction.
    pub change_cipher_spec: Option<FrameRef>,
    /// First application_data record (encrypted in TLS 1.3; after CCS in TLS 1.2).
    pub first_application_data: Option<FrameRef>,
    /// An application_data record sent before encryption started in a TLS ≤ 1.2 session,
    /// i.e. application data readable on the wire.
    pub cleartext_application_data: Option<FrameRef>,
    /// Alerts readable on the wire.
    pub cleartext_alerts: Vec<TlsAlert>,
}

/// How a cipher suite protects records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherClass {
    /// AEAD (GCM, CCM, ChaCha20-Poly1305, the TLS 1.3 suites).
    Aead,
    /// A real suite that is not AEAD (CBC with HMAC, RC4, NULL, EXPORT ...).
    NotAead,
    /// A signalling value, not a cipher: TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    /// TLS_FALLBACK_SCSV, or a GREASE value (RFC 8701).
    Signalling,
    /// Not in the IANA registry known to `tls-parser`.
    Unknown,
}

/// Classifies a cipher suite id using `tls-parser`'s IANA table.
pub fn classify_cipher_suite(id: u16) -> CipherClass {
    if id == 0x00ff || id == 0x5600 || is_grease(id) {
        return CipherClass::Signalling;
    }
    match TlsCipherSuite::from_id(id) {
        Some(s) if s.mac == TlsCipherMac::Aead => CipherClass::Aead,
        Some(_) => CipherClass::NotAead,
        None => CipherClass::Unknown,
    }
}

/// IANA name of a cipher suite, e.g. `TLS_AES_128_GCM_SHA256`.
pub fn cipher_suite_name(id: u16) -> Option<&'static str> {
    TlsCipherSuite::from_id(id).map(|s| s.name)
}

/// GREASE values (RFC 8701): 0x?A?A with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// RFC 8446 section 4.1.3: the random of a HelloRetryRequest.
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;
const CT_HEARTBEAT: u8 = 24;
/// TLSCiphertext may carry up to 2^14 + 2048 bytes (RFC 5246 section 6.2.3).
const MAX_RECORD_LEN: u16 = 16384 + 2048;
/// Hellos are small; anything larger is not collected (protects memory on garbage).
const MAX_HELLO_LEN: usize = 64 * 1024;

/// Walks the records of one direction. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct RecordTracker {
    stream_offset: u64,
    header: [u8; 5],
    header_len: u8,
    body_left: u16,
    body_type: u8,
    /// A 2-byte cleartext alert body being collected.
    alert: Option<([u8; 2], u8)>,
    ccs_seen: bool,
    stopped: bool,
    hs: HandshakeReader,
}

#[derive(Debug, Default)]
struct HandshakeReader {
    header: [u8; 4],
    header_len: u8,
    left: u32,
    keep: bool,
    msg_type: u8,
    buf: Vec<u8>,
    first: Option<FrameRef>,
    /// Set once the handshake bytes stop making sense; hellos are then no longer looked for.
    broken: bool,
}

impl RecordTracker {
    /// Feeds the next in-order bytes of this direction's stream, all carried by `frame`.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        frame: FrameRef,
        facts: &mut TlsRecords,
        hs: &mut TlsHandshake,
        from_client: bool,
    ) {
        while !data.is_empty() && !self.stopped {
            if self.body_left == 0 {
                let take = (5 - self.header_len as usize).min(data.len());
                let start = self.header_len as usize;
                self.header[start..start + take].copy_from_slice(&data[..take]);
                self.header_len += take as u8;
                data = &data[take..];
                if self.header_len < 5 {
                    break;
                }
                let header_offset = self.stream_offset;
                self.stream_offset += 5;
                self.header_len = 0;
                self.start_record(header_offset, frame, facts, hs);
                continue;
            }
            let take = (self.body_left as usize).min(data.len());
            let chunk = &data[..take];
            data = &data[take..];
            self.body_left -= take as u16;
            self.stream_offset += take as u64;
            let done = self.body_left == 0;
            match self.body_type {
                CT_HANDSHAKE if !self.ccs_seen || hs.is_tls13() => {
                    self.hs.feed(chunk, frame, hs, from_client);
                }
                CT_ALERT => {
                    if let Some((buf, have)) = &mut self.alert {
                        for &b in chunk {
                            if (*have as usize) < 2 {
                                buf[*have as usize] = b;
                            }
                            *have += 1;
                        }
                    }
                    if done {
                        self.finish_alert(frame, facts);
                    }
                }
                _ => {}
            }
            if done && self.body_type == CT_CCS {
                self.ccs_seen = true;
            }
        }
    }

    fn start_record(
        &mut self,
        header_offset: u64,
        frame: FrameRef,
        facts: &mut TlsRecords,
        hs: &TlsHandshake,
    ) {
        let valid = match parse_tls_record_header(&self.header) {
            Ok((_, h)) => {
                let ct = h.record_type.0;
                (CT_CCS..=CT_HEARTBEAT).contains(&ct)
                    && (0x0300..=0x0304).contains(&h.version.0)
                    && h.len > 0
                    && h.len <= MAX_RECORD_LEN
            }
            Err(_) => false,
        };
        if header_offset == 0 {
            facts.starts_with_tls_record = Some(valid);
        }
        if !valid {
            facts.not_tls = Some(NotTls {
                frame,
                stream_offset: header_offset,
            });
            self.stopped = true;
            return;
        }
        facts.records += 1;
        self.body_type = self.header[0];
        self.body_left = u16::from_be_bytes([self.header[3], self.header[4]]);
        match self.body_type {
            CT_CCS => {
                facts.change_cipher_spec.get_or_insert(frame);
            }
            CT_APPDATA => {
                facts.first_application_data.get_or_insert(frame);
                let version = hs.version();
                // Before this direction's CCS, a TLS <= 1.2 record is not encrypted.
                if !self.ccs_seen && version.is_some_and(|v| v < TLS13) {
                    facts.cleartext_application_data.get_or_insert(frame);
                }
            }
            CT_ALERT => {
                // TLS 1.3 hides encrypted alerts in application_data records, so any alert
                // record there is cleartext; in TLS <= 1.2 alerts after CCS are encrypted.
                let cleartext = !self.ccs_seen || hs.is_tls13();
                self.alert = (cleartext && self.body_left == 2).then_some(([0; 2], 0));
            }
            _ => {}
        }
    }

    fn finish_alert(&mut self, frame: FrameRef, facts: &mut TlsRecords) {
        if let Some((buf, 2)) = self.alert.take() {
            if let Ok((_, TlsMessage::Alert(a))) = parse_tls_message_alert(&buf) {
                facts.cleartext_alerts.push(TlsAlert {
                    frame,
                    level: a.severity.0,
                    description: a.code.0,
                });
            }
        }
    }
}

impl HandshakeReader {
    fn feed(&mut self, mut data: &[u8], frame: FrameRef, hs: &mut TlsHandshake, client: bool) {
        while !data.is_empty() && !self.broken {
            if self.left == 0 && self.header_len < 4 {
                let start = self.header_len as usize;
                let take = (4 - start).min(data.len());
                self.header[start..start + take].copy_from_slice(&data[..take]);
                self.header_len += take as u8;
                data = &data[take..];
                if self.header_len < 4 {
                    break;
                }
                self.msg_type = self.header[0];
                self.left = u32::from_be_bytes([0, self.header[1], self.header[2], self.header[3]]);
                // ClientHello = 1 from the client, ServerHello = 2 from the server.
                self.keep = (client && self.msg_type == 1) || (!client && self.msg_type == 2);
                self.first = Some(frame);
                self.buf.clear();
                if self.left == 0 {
                    self.complete(frame, hs);
                }
                continue;
            }
            let take = (self.left as usize).min(data.len());
            if self.keep {
                if self.buf.len() + take <= MAX_HELLO_LEN {
                    self.buf.extend_from_slice(&data[..take]);
                } else {
                    self.broken = true;
                }
            }
            data = &data[take..];
            self.left -= take as u32;
            if self.left == 0 {
                self.complete(frame, hs);
            }
        }
    }

    fn complete(&mut self, frame: FrameRef, hs: &mut TlsHandshake) {
        self.header_len = 0;
        if !self.keep {
            return;
        }
        let frames = FrameSpan {
            first: self.first.unwrap_or(frame),
            last: frame,
        };
        if self.msg_type == 1 {
            match parse_client_hello(&self.buf, frames) {
                Some(ch) if hs.client_hellos.len() < 4 => hs.client_hellos.push(ch),
                Some(_) => {}
                None => self.broken = true,
            }
        } else {
            match parse_server_hello(&self.buf, frames) {
                Some(sh) if sh.hello_retry_request => {
                    hs.hello_retry_request.get_or_insert(sh);
                }
                Some(sh) => {
                    hs.server_hello.get_or_insert(sh);
                }
                None => self.broken = true,
            }
        }
        // Release the hello buffer: the stream may go on for gigabytes.
        self.buf = Vec::new();
    }
}

fn parse_client_hello(body: &[u8], frames: FrameSpan) -> Option<ClientHello> {
    let (_, ch) = parse_tls_handshake_client_hello(body).ok()?;
    let mut hello = ClientHello {
        frames,
        legacy_version: ch.version.0,
        supported_versions: Vec::new(),
        cipher_suites: ch.ciphers.iter().map(|c| c.0).collect(),
        sni: None,
        alpn: Vec::new(),
        extensions: Vec::new(),
    };
    if let Some(ext) = ch.ext {
        if let Ok((_, exts)) = parse_tls_client_hello_extensions(ext) {
            for e in exts {
                hello.extensions.push(match e {
                    TlsExtension::Grease(t, _) => t,
                    ref other => TlsExtensionType::from(other).0,
                });
                match e {
                    TlsExtension::SNI(names) => {
                        hello.sni = names
                            .iter()
                            .find(|(t, _)| t.0 == 0)
                            .map(|(_, n)| String::from_utf8_lossy(n).into_owned());
                    }
                    TlsExtension::ALPN(protos) => {
                        hello.alpn = protos
                            .iter()
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .collect();
                    }
                    TlsExtension::SupportedVersions(v) => {
                        hello.supported_versions = v.iter().map(|v| v.0).collect();
                    }
                    _ => {}
                }
            }
        }
    }
    Some(hello)
}

fn parse_server_hello(body: &[u8], frames: FrameSpan) -> Option<ServerHello> {
    let (_, sh) = parse_tls_handshake_server_hello(body).ok()?;
    let mut selected_version = None;
    if let Some(ext) = sh.ext {
        if let Ok((_, exts)) = parse_tls_server_hello_extensions(ext) {
            for e in exts {
                if let TlsExtension::SupportedVersions(v) = e {
                    selected_version = v.first().map(|v| v.0);
                }
            }
        }
    }
    Some(ServerHello {
        frames,
        legacy_version: sh.version.0,
        selected_version,
        cipher_suite: sh.cipher.0,
        hello_retry_request: sh.random == HRR_RANDOM,
    })
}
