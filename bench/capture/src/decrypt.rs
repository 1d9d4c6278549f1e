//! TLS 1.3 in a capture, decrypted with the run's key log: what `tshark -o
//! tls.keylog_file:…` shows, without tshark.
//!
//! TCP flows are reassembled per direction (from the SYN's sequence number;
//! retransmitted bytes counted once), their TLS records read, and for a
//! TLS 1.3 flow whose secrets the key log holds, every protected record is
//! opened: the handshake ones with the handshake traffic secrets, the rest
//! with the first application traffic secrets (RFC 8446 §7). What a record
//! carries comes back with the frame its last byte arrived in. TLS 1.2 flows
//! come back with their cleartext records only, and say so.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{Block, PcapBlockOwned, PcapNGReader};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

/// A TLS record's content as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainRecord {
    /// Frame (1-based) holding the record's last byte.
    pub frame: u64,
    /// The (inner, once decrypted) content type: 22 handshake, 23 application data, 21 alert.
    pub content_type: u8,
    /// The record's content (decrypted, without its padding).
    pub data: Vec<u8>,
}

/// One TCP flow's TLS records, decrypted where the key log allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainFlow {
    /// The endpoint that sent the SYN.
    pub client: SocketAddr,
    /// The endpoint it connected to.
    pub server: SocketAddr,
    /// The negotiated version (0x0304 for TLS 1.3), if a ServerHello was seen.
    pub version: Option<u16>,
    /// Client → server records.
    pub to_server: Vec<PlainRecord>,
    /// Server → client records.
    pub to_client: Vec<PlainRecord>,
    /// Why protected records stayed closed (TLS 1.2, no secrets, …), if they did.
    pub undecrypted: Option<String>,
}

impl PlainFlow {
    /// The application data of one direction, as one byte stream, with the
    /// frame each byte arrived in (by record).
    pub fn application_stream(&self, to_server: bool) -> (Vec<u8>, Vec<(usize, u64)>) {
        let records = if to_server {
            &self.to_server
        } else {
            &self.to_client
        };
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for r in records
            .iter()
            .filter(|r| r.content_type == CT_APPLICATION_DATA)
        {
            bytes.extend_from_slice(&r.data);
            ends.push((bytes.len(), r.frame));
        }
        (bytes, ends)
    }

    /// Handshake messages (type, body) of one direction, cleartext or decrypted.
    pub fn handshake_messages(&self, to_server: bool) -> Vec<(u64, u8, Vec<u8>)> {
        let records = if to_server {
            &self.to_server
        } else {
            &self.to_client
        };
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        for r in records.iter().filter(|r| r.content_type == CT_HANDSHAKE) {
            buf.extend_from_slice(&r.data);
            while buf.len() >= 4 {
                let len =
                    usize::from(buf[1]) << 16 | usize::from(buf[2]) << 8 | usize::from(buf[3]);
                if buf.len() < 4 + len {
                    break;
                }
                out.push((r.frame, buf[0], buf[4..4 + len].to_vec()));
                buf.drain(..4 + len);
            }
        }
        out
    }
}

/// The frame an offset of [`PlainFlow::application_stream`] arrived in.
pub fn frame_at(ends: &[(usize, u64)], offset: usize) -> Option<u64> {
    ends.iter().find(|(end, _)| *end > offset).map(|e| e.1)
}

const CT_CCS: u8 = 20;
const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;
const TLS13: u16 = 0x0304;

/// Decrypting went wrong in a way that is the capture's or the bench's.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    /// The capture could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The capture file.
        path: String,
        /// What reading it said.
        source: std::io::Error,
    },
    /// The capture is not a readable pcapng file.
    #[error("{0}")]
    Capture(String),
}

#[derive(Default)]
struct Direction {
    /// Sequence number of the stream's first byte (the SYN's + 1).
    base: Option<u32>,
    /// Segments by their offset in the stream.
    segments: BTreeMap<u64, (Vec<u8>, u64)>,
}

impl Direction {
    fn add(&mut self, seq: u32, data: &[u8], frame: u64) {
        let Some(base) = self.base else { return };
        if data.is_empty() {
            return;
        }
        let offset = u64::from(seq.wrapping_sub(base));
        self.segments
            .entry(offset)
            .or_insert_with(|| (data.to_vec(), frame));
    }

    /// The contiguous stream from its start, with the frame of each byte run.
    fn stream(&self) -> (Vec<u8>, Vec<(usize, u64)>) {
        let mut bytes = Vec::new();
        let mut runs = Vec::new();
        for (&offset, (data, frame)) in &self.segments {
            let have = bytes.len() as u64;
            if offset > have {
                break; // a gap: what follows cannot be read
            }
            let skip = (have - offset) as usize;
            if skip < data.len() {
                bytes.extend_from_slice(&data[skip..]);
                runs.push((bytes.len(), *frame));
            }
        }
        (bytes, runs)
    }
}

/// Reads the capture at `path` and returns the TLS flows `wanted` selects
/// (by client and server address), decrypted with `key_log` (NSS format).
pub fn decrypt_capture(
    path: &Path,
    key_log: &str,
    wanted: impl Fn(SocketAddr, SocketAddr) -> bool,
) -> Result<Vec<PlainFlow>, DecryptError> {
    let file = std::fs::File::open(path).map_err(|source| DecryptError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut reader = PcapNGReader::new(1 << 20, file)
        .map_err(|e| DecryptError::Capture(format!("{}: {e:?}", path.display())))?;
    let mut flows: HashMap<(SocketAddr, SocketAddr), (Direction, Direction)> = HashMap::new();
    let mut order: Vec<(SocketAddr, SocketAddr)> = Vec::new();
    let mut frame = 0u64;
    let mut big_endian = None;
    loop {
        // The analysis's guard against pcap-parser's short-block underflow.
        if let Some(len) = big_endian.and_then(|be| crate::analysis::short_block(reader.data(), be))
        {
            return Err(DecryptError::Capture(format!(
                "{}: block total length {len}, under the minimum of 12 bytes",
                path.display()
            )));
        }
        match reader.next() {
            Ok((consumed, block)) => {
                match block {
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        big_endian = Some(shb.big_endian());
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        frame += 1;
                        segment(&mut flows, &mut order, &wanted, epb.data, frame);
                    }
                    _ => {}
                }
                reader.consume(consumed);
            }
            Err(pcap_parser::PcapError::Eof) => break,
            Err(pcap_parser::PcapError::Incomplete(_)) => {
                reader
                    .refill()
                    .map_err(|e| DecryptError::Capture(format!("{e:?}")))?;
            }
            Err(e) => return Err(DecryptError::Capture(format!("{}: {e:?}", path.display()))),
        }
    }
    let secrets = parse_key_log(key_log);
    Ok(order
        .into_iter()
        .filter_map(|k| {
            let (to_server, to_client) = flows.remove(&k)?;
            Some(decrypt_flow(k.0, k.1, &to_server, &to_client, &secrets))
        })
        .collect())
}

fn segment(
    flows: &mut HashMap<(SocketAddr, SocketAddr), (Direction, Direction)>,
    order: &mut Vec<(SocketAddr, SocketAddr)>,
    wanted: &impl Fn(SocketAddr, SocketAddr) -> bool,
    data: &[u8],
    frame: u64,
) {
    let Ok(p) = SlicedPacket::from_ethernet(data) else {
        return;
    };
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return,
    };
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        return;
    };
    let src = SocketAddr::new(src_ip, tcp.source_port());
    let dst = SocketAddr::new(dst_ip, tcp.destination_port());
    if tcp.syn() && !tcp.ack() {
        if wanted(src, dst) && !flows.contains_key(&(src, dst)) {
            let up = Direction {
                base: Some(tcp.sequence_number().wrapping_add(1)),
                ..Direction::default()
            };
            flows.insert((src, dst), (up, Direction::default()));
            order.push((src, dst));
        }
        return;
    }
    if let Some((up, _)) = flows.get_mut(&(src, dst)) {
        up.add(tcp.sequence_number(), tcp.payload(), frame);
    } else if let Some((_, down)) = flows.get_mut(&(dst, src)) {
        if tcp.syn() {
            down.base = Some(tcp.sequence_number().wrapping_add(1));
        } else {
            down.add(tcp.sequence_number(), tcp.payload(), frame);
        }
    }
}

/// Records of a stream: (frame of the last byte, type, header, body).
fn records(bytes: &[u8], runs: &[(usize, u64)]) -> Vec<(u64, u8, [u8; 5], Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let len = usize::from(u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]));
        if at + 5 + len > bytes.len() {
            break;
        }
        let mut header = [0u8; 5];
        header.copy_from_slice(&bytes[at..at + 5]);
        let end = at + 5 + len;
        let frame = frame_at(runs, end - 1).unwrap_or(0);
        out.push((frame, bytes[at], header, bytes[at + 5..end].to_vec()));
        at = end;
    }
    out
}

type Secrets = HashMap<(String, Vec<u8>), Vec<u8>>;

fn parse_key_log(text: &str) -> Secrets {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let label = parts.next()?.to_owned();
            let random = hex_decode(parts.next()?)?;
            let secret = hex_decode(parts.next()?)?;
            Some(((label, random), secret))
        })
        .collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The client random of a ClientHello handshake body, and the version and
/// suite a ServerHello body selects.
fn client_random(body: &[u8]) -> Option<Vec<u8>> {
    body.get(2..34).map(<[u8]>::to_vec)
}

fn server_choice(body: &[u8]) -> Option<(u16, u16)> {
    let legacy = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let sid_len = usize::from(*body.get(34)?);
    let at = 35 + sid_len;
    let suite = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
    let mut version = legacy;
    let mut ext_at = at + 3;
    if let Some(ext) = body.get(ext_at..ext_at + 2) {
        let end = ext_at + 2 + usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        ext_at += 2;
        while ext_at + 4 <= end.min(body.len()) {
            let kind = u16::from_be_bytes([body[ext_at], body[ext_at + 1]]);
            let len = usize::from(u16::from_be_bytes([body[ext_at + 2], body[ext_at + 3]]));
            if kind == 0x002b && len == 2 {
                version = u16::from_be_bytes([*body.get(ext_at + 4)?, *body.get(ext_at + 5)?]);
            }
            ext_at += 4 + len;
        }
    }
    Some((suite, version))
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(alg: hkdf::Algorithm, secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let full = format!("tls13 {label}");
    let info = [
        &(len as u16).to_be_bytes()[..],
        &[full.len() as u8][..],
        full.as_bytes(),
        &[0u8][..],
    ];
    let prk = hkdf::Prk::new_less_safe(alg, secret);
    let okm = prk.expand(&info, Len(len)).ok()?;
    let mut out = vec![0u8; len];
    okm.fill(&mut out).ok()?;
    Some(out)
}

/// One direction's keys for one epoch, and its record counter.
struct Epoch {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl Epoch {
    fn new(suite: u16, secret: &[u8]) -> Option<Epoch> {
        let (aead_alg, hkdf_alg): (&'static aead::Algorithm, _) = match suite {
            0x1301 => (&aead::AES_128_GCM, hkdf::HKDF_SHA256),
            0x1302 => (&aead::AES_256_GCM, hkdf::HKDF_SHA384),
            0x1303 => (&aead::CHACHA20_POLY1305, hkdf::HKDF_SHA256),
            _ => return None,
        };
        let key = expand_label(hkdf_alg, secret, "key", aead_alg.key_len())?;
        let iv = expand_label(hkdf_alg, secret, "iv", 12)?;
        Some(Epoch {
            key: LessSafeKey::new(UnboundKey::new(aead_alg, &key).ok()?),
            iv: iv.try_into().ok()?,
            seq: 0,
        })
    }

    /// Opens one protected record: its inner content type and content.
    fn open(&mut self, header: &[u8; 5], body: &[u8]) -> Option<(u8, Vec<u8>)> {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(*header),
                &mut buf,
            )
            .ok()?;
        self.seq += 1;
        let end = plain.iter().rposition(|&b| b != 0)?;
        Some((plain[end], plain[..end].to_vec()))
    }
}

fn decrypt_flow(
    client: SocketAddr,
    server: SocketAddr,
    up: &Direction,
    down: &Direction,
    secrets: &Secrets,
) -> PlainFlow {
    let (up_bytes, up_runs) = up.stream();
    let (down_bytes, down_runs) = down.stream();
    let up_records = records(&up_bytes, &up_runs);
    let down_records = records(&down_bytes, &down_runs);
    let hello = |recs: &[(u64, u8, [u8; 5], Vec<u8>)], kind: u8| {
        recs.iter()
            .find(|r| r.1 == CT_HANDSHAKE && r.3.first() == Some(&kind))
            .and_then(|r| r.3.get(4..).map(<[u8]>::to_vec))
    };
    let random = hello(&up_records, 1).and_then(|b| client_random(&b));
    let choice = hello(&down_records, 2).and_then(|b| server_choice(&b));
    let mut flow = PlainFlow {
        client,
        server,
        version: choice.map(|c| c.1),
        to_server: Vec::new(),
        to_client: Vec::new(),
        undecrypted: None,
    };
    let cleartext = |recs: &[(u64, u8, [u8; 5], Vec<u8>)]| -> Vec<PlainRecord> {
        recs.iter()
            .filter(|r| r.1 != CT_APPLICATION_DATA)
            .map(|r| PlainRecord {
                frame: r.0,
                content_type: r.1,
                data: r.3.clone(),
            })
            .collect()
    };
    let (Some(random), Some((suite, version))) = (random, choice) else {
        flow.to_server = cleartext(&up_records);
        flow.to_client = cleartext(&down_records);
        flow.undecrypted = Some("no ClientHello and ServerHello captured".into());
        return flow;
    };
    if version != TLS13 {
        flow.to_server = cleartext(&up_records);
        flow.to_client = cleartext(&down_records);
        flow.undecrypted = Some(format!(
            "TLS version {version:#06x}: only TLS 1.3 is decrypted"
        ));
        return flow;
    }
    let secret = |label: &str| secrets.get(&(label.to_owned(), random.clone()));
    let mut missing = Vec::new();
    for (recs, out, hs_label, app_label) in [
        (
            &up_records,
            &mut flow.to_server,
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
        ),
        (
            &down_records,
            &mut flow.to_client,
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_TRAFFIC_SECRET_0",
        ),
    ] {
        let mut epochs: Vec<Epoch> = [hs_label, app_label]
            .iter()
            .filter_map(|l| match secret(l) {
                Some(s) => Epoch::new(suite, s),
                None => {
                    missing.push(*l);
                    None
                }
            })
            .collect();
        let mut current = 0;
        for (frame, kind, header, body) in recs {
            if *kind != CT_APPLICATION_DATA {
                if *kind != CT_CCS {
                    out.push(PlainRecord {
                        frame: *frame,
                        content_type: *kind,
                        data: body.clone(),
                    });
                }
                continue;
            }
            // The handshake epoch until a record does not open under it
            // (the peer's Finished was the last handshake record).
            let mut opened = None;
            while current < epochs.len() {
                if let Some(p) = epochs[current].open(header, body) {
                    opened = Some(p);
                    break;
                }
                current += 1;
            }
            match opened {
                Some((content_type, data)) => out.push(PlainRecord {
                    frame: *frame,
                    content_type,
                    data,
                }),
                None => break, // nothing later can be opened either
            }
        }
    }
    if !missing.is_empty() {
        flow.undecrypted = Some(format!("the key log lacks {}", missing.join(", ")));
    }
    flow
}
