//! Facts from a capture, each tied to the frames it came from (1-based frame numbers, as
//! tshark and Wireshark number them), for conformance verdicts and their evidence.
//!
//! Design, for speed on captures of hundreds of megabytes:
//! - one streaming pass: `pcap-parser` reads blocks from a large buffer and hands out
//!   borrowed slices; `etherparse` slices headers in place; nothing is allocated per packet
//!   except when a flow or UDP exchange is first seen, when hello bytes are collected, or
//!   when a TCP segment arrives ahead of a hole;
//! - flows are found with one FxHash lookup per packet;
//! - TLS is followed by walking 5-byte record headers through the reassembled stream,
//!   skipping record bodies without touching them (see [`tls`]).
//!
//! Both pcapng (any number of sections and interfaces, any `if_tsresol`) and classic pcap
//! files are read; link types Ethernet, Linux cooked (SLL) and raw IP are decoded.

mod flows;
pub mod tls;

use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};

use flows::{FlowTable, TcpSegment};
pub use tls::{
    cipher_suite_name, classify_cipher_suite, is_grease, CipherClass, ClientHello, FrameSpan,
    NotTls, ServerHello, TlsAlert, TlsHandshake, TlsRecords, TLS12, TLS13,
};

/// One frame of the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrameRef {
    /// 1-based frame number, counting every packet block in file order.
    pub number: u64,
    /// Capture time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
}

/// How the capture saw a TCP flow begin; tells how much the client/server roles can be
/// trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowOpening {
    /// A SYN was captured: the client is its sender.
    Syn,
    /// Only the SYN-ACK was captured: the client is its receiver.
    SynAckOnly,
    /// Neither: the flow was already open when the capture began; "client" is merely the
    /// sender of the first captured packet.
    MidStream,
}

/// One direction of a TCP flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpDirection {
    /// Segments sent in this direction.
    pub packets: u64,
    /// TCP payload bytes as captured (retransmissions included).
    pub payload_bytes: u64,
    /// First segment carrying payload.
    pub first_payload: Option<FrameRef>,
    /// First FIN.
    pub fin: Option<FrameRef>,
    /// First RST.
    pub rst: Option<FrameRef>,
    /// First frame after bytes missing from the capture: TLS facts stop there.
    pub gap: Option<FrameRef>,
    /// TLS record facts of this direction's byte stream.
    pub tls: TlsRecords,
}

/// A TCP connection (one 4-tuple and initial sequence number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpFlow {
    /// The endpoint that opened the flow (see [`FlowOpening`]).
    pub client: SocketAddr,
    /// The endpoint the flow was opened to.
    pub server: SocketAddr,
    /// How the opening was seen.
    pub opening: FlowOpening,
    /// SYNs (without ACK) from the client: more than one means retransmitted SYNs.
    pub syns: Vec<FrameRef>,
    /// First SYN-ACK from the server.
    pub syn_ack: Option<FrameRef>,
    /// First frame of the flow.
    pub first_frame: FrameRef,
    /// Last frame of the flow.
    pub last_frame: FrameRef,
    /// Client → server.
    pub to_server: TcpDirection,
    /// Server → client.
    pub to_client: TcpDirection,
    /// TLS hellos, if the flow carried TLS.
    pub tls: TlsHandshake,
}

impl TcpFlow {
    /// True when every direction that carried payload started with a TLS record and
    /// stayed TLS records to the end (the MT-01 criterion), judged on what was captured.
    /// A direction whose start was not captured, or with bytes missing from the capture,
    /// makes this false: nothing proves it.
    pub fn tls_throughout(&self) -> bool {
        [&self.to_server, &self.to_client].iter().all(|d| {
            d.first_payload.is_none()
                || (d.tls.starts_with_tls_record == Some(true)
                    && d.tls.not_tls.is_none()
                    && d.tls.cleartext_application_data.is_none()
                    && d.gap.is_none())
        })
    }
}

/// Datagrams between two UDP endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpExchange {
    /// Sender of the first datagram.
    pub client: SocketAddr,
    /// Its destination.
    pub server: SocketAddr,
    /// First datagram client → server.
    pub first_request: FrameRef,
    /// Datagrams client → server.
    pub requests: u64,
    /// UDP payload bytes client → server.
    pub request_bytes: u64,
    /// First datagram back, if any.
    pub first_reply: Option<FrameRef>,
    /// Datagrams server → client.
    pub replies: u64,
    /// UDP payload bytes server → client.
    pub reply_bytes: u64,
}

/// One SYN of a connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynAttempt {
    /// The SYN frame.
    pub frame: FrameRef,
    /// Client port of the attempt.
    pub client_port: u16,
    /// True for a retransmitted SYN of the same connection (the kernel's retry, not the
    /// application's reconnect).
    pub retransmission: bool,
    /// Whether the server answered the attempt with a SYN-ACK.
    pub answered: bool,
}

/// All SYNs one client address sent to one server endpoint, in capture order: the raw
/// material of reconnect backoff checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionAttempts {
    /// Client address.
    pub client: IpAddr,
    /// Server endpoint.
    pub server: SocketAddr,
    /// SYNs in frame order.
    pub syns: Vec<SynAttempt>,
}

impl ConnectionAttempts {
    /// Gaps in nanoseconds between consecutive application-level attempts (SYN
    /// retransmissions excluded).
    pub fn attempt_intervals_ns(&self) -> Vec<u64> {
        let starts: Vec<u64> = self
            .syns
            .iter()
            .filter(|s| !s.retransmission)
            .map(|s| s.frame.time_ns)
            .collect();
        starts
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .collect()
    }
}

/// Everything the analysis found in one capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// Packet blocks read (the last frame number).
    pub frames: u64,
    /// Frames that were not TCP or UDP over IP (ARP, ICMP, fragments, unknown link types).
    pub other_frames: u64,
    /// TCP flows in order of first frame.
    pub tcp_flows: Vec<TcpFlow>,
    /// UDP exchanges in order of first frame.
    pub udp_exchanges: Vec<UdpExchange>,
}

impl Analysis {
    /// SYNs grouped by (client address, server endpoint), groups in order of first SYN.
    pub fn connection_attempts(&self) -> Vec<ConnectionAttempts> {
        let mut groups: Vec<ConnectionAttempts> = Vec::new();
        for flow in self.tcp_flows.iter().filter(|f| !f.syns.is_empty()) {
            let client = flow.client.ip();
            let pos = groups
                .iter()
                .position(|g| g.client == client && g.server == flow.server);
            let group = match pos {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(ConnectionAttempts {
                        client,
                        server: flow.server,
                        syns: Vec::new(),
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            for (i, syn) in flow.syns.iter().enumerate() {
                group.syns.push(SynAttempt {
                    frame: *syn,
                    client_port: flow.client.port(),
                    retransmission: i > 0,
                    answered: flow.syn_ack.is_some(),
                });
            }
        }
        for g in &mut groups {
            g.syns.sort_by_key(|s| s.frame.number);
        }
        groups
    }

    /// TCP flows between the two endpoints' addresses, either direction.
    pub fn flows_between(&self, a: IpAddr, b: IpAddr) -> impl Iterator<Item = &TcpFlow> {
        self.tcp_flows.iter().filter(move |f| {
            let (c, s) = (f.client.ip(), f.server.ip());
            (c == a && s == b) || (c == b && s == a)
        })
    }
}

/// Errors reading a capture.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The file could not be opened or read.
    #[error("reading capture: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a readable pcap/pcapng or is corrupt at the given byte offset.
    #[error("malformed capture at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset of the block that failed.
        offset: usize,
        /// What the reader said.
        reason: String,
    },
}

/// Read buffer of the block reader: large reads keep syscalls and buffer shifts rare.
const READ_BUFFER: usize = 8 * 1024 * 1024;

/// Analyses a pcapng (or pcap) file.
pub fn analyze_file(path: impl AsRef<Path>) -> Result<Analysis, AnalysisError> {
    analyze(File::open(path)?)
}

/// Analyses a pcapng (or pcap) stream.
pub fn analyze<R: Read + Send>(reader: R) -> Result<Analysis, AnalysisError> {
    analyze_with_buffer(reader, READ_BUFFER)
}

/// [`analyze`] with a read buffer of `capacity` bytes instead of 8 MiB (it
/// still grows for a larger block): for many small captures, where
/// allocating the large buffer would dominate (the fuzz target's body).
pub fn analyze_with_buffer<R: Read + Send>(
    reader: R,
    capacity: usize,
) -> Result<Analysis, AnalysisError> {
    let mut reader = create_reader(capacity, reader).map_err(|e| AnalysisError::Malformed {
        offset: 0,
        reason: format!("{e:?}"),
    })?;
    let mut table = FlowTable::default();
    // Per pcapng section: (link type, timestamp units per second, offset in seconds).
    let mut interfaces: Vec<(i32, u64, i64)> = Vec::new();
    let mut legacy: (i32, u64) = (1, 1_000_000);
    let mut frames = 0u64;
    let mut other = 0u64;
    // The byte order of the current pcapng section; `None` for classic pcap
    // (and before the first Section Header Block).
    let mut section_big_endian: Option<bool> = None;
    loop {
        if let Some(len) = section_big_endian.and_then(|be| short_block(reader.data(), be)) {
            return Err(AnalysisError::Malformed {
                offset: reader.consumed(),
                reason: format!("block total length {len}, under the minimum of 12 bytes"),
            });
        }
        let consumed = match reader.next() {
            Ok((offset, block)) => {
                let packet = match block {
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        section_big_endian = Some(shb.big_endian());
                        interfaces.clear();
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let units = idb.ts_resolution().unwrap_or(1_000_000);
                        interfaces.push((idb.linktype.0, units, idb.ts_offset()));
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let (link, units, offset_s) = interfaces
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or((-1, 1_000_000, 0));
                        let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let ns = to_ns(ts, units).saturating_add_signed(offset_s * 1_000_000_000);
                        Some((link, ns, epb.data))
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        // SPBs carry no timestamp and always belong to interface 0.
                        let link = interfaces.first().map_or(-1, |i| i.0);
                        Some((link, 0, spb.data))
                    }
                    PcapBlockOwned::LegacyHeader(h) => {
                        let units = if h.is_nanosecond_precision() {
                            1_000_000_000
                        } else {
                            1_000_000
                        };
                        legacy = (h.network.0, units);
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let ns = u64::from(b.ts_sec) * 1_000_000_000
                            + to_ns(u64::from(b.ts_usec), legacy.1);
                        Some((legacy.0, ns, b.data))
                    }
                    PcapBlockOwned::NG(_) => None,
                };
                if let Some((link, time_ns, data)) = packet {
                    frames += 1;
                    let frame = FrameRef {
                        number: frames,
                        time_ns,
                    };
                    if !dissect(&mut table, frame, link, data) {
                        other += 1;
                    }
                }
                offset
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                let at = reader.consumed();
                reader.refill().map_err(|e| malformed(at, e))?;
                continue;
            }
            Err(PcapError::BufferTooSmall) => {
                // A block larger than the buffer (a huge DSB, say): grow and retry.
                let bigger = reader.data().len().max(capacity) * 2;
                let at = reader.consumed();
                if !reader.grow(bigger) {
                    return Err(malformed::<&[u8]>(at, PcapError::BufferTooSmall));
                }
                reader.refill().map_err(|e| malformed(at, e))?;
                continue;
            }
            Err(e) => {
                let mut err = malformed(0, e);
                if let AnalysisError::Malformed { offset, .. } = &mut err {
                    *offset = reader.consumed();
                }
                return Err(err);
            }
        };
        reader.consume(consumed);
    }
    let (tcp_flows, udp_exchanges) = table.finish();
    Ok(Analysis {
        frames,
        other_frames: other,
        tcp_flows,
        udp_exchanges,
    })
}

/// The total length of the pcapng block at the start of `data` if it is
/// under 12 bytes (type, length, length: the smallest block), which no
/// valid file has. pcap-parser 0.17 computes `length - 12` unchecked for a
/// Process Information Block, whose minimum it takes as 4 bytes: a length
/// of 4 to 11 underflows (a panic with overflow checks, found by the
/// `pcapng_analysis` fuzz target), so such a block is refused before it
/// reaches the parser. A Section Header Block (its type reads the same in
/// both byte orders) carries its own byte order and is left to the parser.
pub(crate) fn short_block(data: &[u8], big_endian: bool) -> Option<u32> {
    const SHB: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    let head = data.get(..8)?;
    if head[..4] == SHB {
        return None;
    }
    let bytes = [head[4], head[5], head[6], head[7]];
    let len = if big_endian {
        u32::from_be_bytes(bytes)
    } else {
        u32::from_le_bytes(bytes)
    };
    (len < 12).then_some(len)
}

fn malformed<I>(offset: usize, e: PcapError<I>) -> AnalysisError {
    let reason = match e {
        PcapError::Eof => "end of file".to_string(),
        PcapError::BufferTooSmall => "block larger than the read buffer".to_string(),
        PcapError::UnexpectedEof => "truncated file".to_string(),
        PcapError::ReadError => "read error".to_string(),
        PcapError::Incomplete(n) => format!("incomplete block ({n} more bytes needed)"),
        PcapError::HeaderNotRecognized => "not a pcap or pcapng file".to_string(),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("parse error ({kind:?})")
        }
    };
    AnalysisError::Malformed { offset, reason }
}

pub(crate) fn to_ns(ts: u64, units_per_second: u64) -> u64 {
    match units_per_second {
        1_000_000_000 => ts,
        1_000_000 => ts.saturating_mul(1_000),
        0 => ts,
        u => ((u128::from(ts) * 1_000_000_000) / u128::from(u)) as u64,
    }
}

const LINKTYPE_ETHERNET: i32 = 1;
const LINKTYPE_RAW: i32 = 101;
const LINKTYPE_LINUX_SLL: i32 = 113;
const LINKTYPE_IPV4: i32 = 228;
const LINKTYPE_IPV6: i32 = 229;

/// Decodes one frame into the flow table; false when it is not TCP/UDP over IP.
fn dissect(table: &mut FlowTable, frame: FrameRef, link: i32, data: &[u8]) -> bool {
    let sliced = match link {
        LINKTYPE_ETHERNET => SlicedPacket::from_ethernet(data),
        LINKTYPE_LINUX_SLL => SlicedPacket::from_linux_sll(data),
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => SlicedPacket::from_ip(data),
        _ => return false,
    };
    let Ok(p) = sliced else { return false };
    let (src, dst) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
        ),
        _ => return false,
    };
    match &p.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let seg = TcpSegment {
                seq: tcp.sequence_number(),
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
                payload: tcp.payload(),
            };
            let s = SocketAddr::new(src, tcp.source_port());
            let d = SocketAddr::new(dst, tcp.destination_port());
            table.tcp(frame, s, d, &seg);
            true
        }
        Some(TransportSlice::Udp(udp)) => {
            let s = SocketAddr::new(src, udp.source_port());
            let d = SocketAddr::new(dst, udp.destination_port());
            table.udp(frame, s, d, udp.payload().len());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcapng::{write_file_head, InterfaceDescription};

    /// A Process Information Block (type 0x80000001) of total length 8:
    /// pcap-parser 0.17 would compute 8 - 12 (the fuzz target's find).
    #[test]
    fn a_block_under_12_bytes_is_malformed_not_a_panic() {
        let iface = InterfaceDescription {
            name: "eth0".into(),
            description: String::new(),
            link_type: 1,
            snap_len: 65535,
        };
        let mut file = Vec::new();
        write_file_head(&mut file, &iface, None).unwrap();
        let head = file.len();
        file.extend_from_slice(&0x8000_0001u32.to_le_bytes());
        file.extend_from_slice(&8u32.to_le_bytes());
        file.extend_from_slice(&[0; 8]);
        match analyze(&file[..]) {
            Err(AnalysisError::Malformed { offset, reason }) => {
                assert_eq!(offset, head);
                assert!(reason.contains("total length 8"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
