//! Per-packet flow bookkeeping: the TCP flow table with just enough reassembly to feed the
//! TLS record tracker in order, and UDP exchanges.
//!
//! Reassembly is built for the common case: an in-order segment is handed to the tracker
//! straight from the capture buffer (no copy). Retransmitted bytes are trimmed by sequence
//! number. Only segments that arrive ahead of a hole are copied, into a small bounded
//! pending list; a hole that never fills (bytes the capture missed) stops the record walk
//! for that direction and is reported as a gap instead of a false "not TLS".

use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use super::tls::{RecordTracker, TlsHandshake, TlsRecords};
use super::{FlowOpening, FrameRef, TcpDirection, TcpFlow, UdpExchange};

/// Out-of-order data kept per direction before giving up on the stream.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;
const MAX_PENDING_SEGMENTS: usize = 512;

/// The TCP header bits the table needs, decoupled from the slicing library.
pub(crate) struct TcpSegment<'a> {
    pub seq: u32,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: &'a [u8],
}

#[derive(Default)]
struct Stream {
    /// Sequence number of the next expected byte; `None` until this direction's SYN was
    /// seen, so a stream whose start was missed is never judged.
    next_seq: Option<u32>,
    pending: Vec<(u32, Vec<u8>, FrameRef)>,
    pending_bytes: usize,
    stalled: bool,
    tracker: RecordTracker,
}

struct FlowState {
    flow: TcpFlow,
    client_isn: Option<u32>,
    streams: [Stream; 2],
}

fn new_direction() -> TcpDirection {
    TcpDirection {
        packets: 0,
        payload_bytes: 0,
        first_payload: None,
        fin: None,
        rst: None,
        gap: None,
        tls: TlsRecords::default(),
    }
}

fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// All flows of one capture, in order of their first frame.
#[derive(Default)]
pub(crate) struct FlowTable {
    tcp: Vec<FlowState>,
    tcp_index: FxHashMap<(SocketAddr, SocketAddr), usize>,
    udp: Vec<UdpExchange>,
    udp_index: FxHashMap<(SocketAddr, SocketAddr), usize>,
}

impl FlowTable {
    pub(crate) fn udp(&mut self, frame: FrameRef, src: SocketAddr, dst: SocketAddr, len: usize) {
        let k = key(src, dst);
        let udp = &mut self.udp;
        let idx = *self.udp_index.entry(k).or_insert_with(|| {
            udp.push(UdpExchange {
                client: src,
                server: dst,
                first_request: frame,
                requests: 0,
                request_bytes: 0,
                first_reply: None,
                replies: 0,
                reply_bytes: 0,
            });
            udp.len() - 1
        });
        let x = &mut self.udp[idx];
        if src == x.client {
            x.requests += 1;
            x.request_bytes += len as u64;
        } else {
            x.first_reply.get_or_insert(frame);
            x.replies += 1;
            x.reply_bytes += len as u64;
        }
    }

    pub(crate) fn tcp(
        &mut self,
        frame: FrameRef,
        src: SocketAddr,
        dst: SocketAddr,
        seg: &TcpSegment<'_>,
    ) {
        let k = key(src, dst);
        let pure_syn = seg.syn && !seg.ack;
        let idx = match self.tcp_index.get(&k) {
            // A SYN with a new initial sequence number on a known 4-tuple is a new
            // connection reusing the ports, not a retransmission.
            Some(&i) if pure_syn && self.tcp[i].client_isn != Some(seg.seq) => None,
            Some(&i) => Some(i),
            None => None,
        };
        let idx = idx.unwrap_or_else(|| {
            let (client, server, opening) = if pure_syn {
                (src, dst, FlowOpening::Syn)
            } else if seg.syn {
                (dst, src, FlowOpening::SynAckOnly)
            } else {
                (src, dst, FlowOpening::MidStream)
            };
            self.tcp.push(FlowState {
                flow: TcpFlow {
                    client,
                    server,
                    opening,
                    syns: Vec::new(),
                    syn_ack: None,
                    first_frame: frame,
                    last_frame: frame,
                    to_server: new_direction(),
                    to_client: new_direction(),
                    tls: TlsHandshake::default(),
                },
                client_isn: None,
                streams: [Stream::default(), Stream::default()],
            });
            self.tcp_index.insert(k, self.tcp.len() - 1);
            self.tcp.len() - 1
        });
        let st = &mut self.tcp[idx];
        st.flow.last_frame = frame;
        let from_client = src == st.flow.client;
        let d = if from_client { 0 } else { 1 };
        if seg.syn {
            if from_client && !seg.ack {
                st.flow.syns.push(frame);
                st.client_isn = Some(seg.seq);
            } else if !from_client && seg.ack {
                st.flow.syn_ack.get_or_insert(frame);
            }
            st.streams[d]
                .next_seq
                .get_or_insert(seg.seq.wrapping_add(1));
        }
        let TcpFlow {
            to_server,
            to_client,
            tls,
            ..
        } = &mut st.flow;
        let dir = if from_client { to_server } else { to_client };
        dir.packets += 1;
        if seg.fin {
            dir.fin.get_or_insert(frame);
        }
        if seg.rst {
            dir.rst.get_or_insert(frame);
        }
        if seg.payload.is_empty() {
            return;
        }
        dir.payload_bytes += seg.payload.len() as u64;
        dir.first_payload.get_or_insert(frame);
        // Data on a SYN (TCP Fast Open) starts one past the SYN's sequence number.
        let data_seq = seg.seq.wrapping_add(u32::from(seg.syn));
        st.streams[d].segment(data_seq, seg.payload, frame, dir, tls, from_client);
    }

    /// Closes the books: a stream still waiting for missing bytes has a gap.
    pub(crate) fn finish(self) -> (Vec<TcpFlow>, Vec<UdpExchange>) {
        let flows = self
            .tcp
            .into_iter()
            .map(|mut st| {
                for (d, stream) in st.streams.iter().enumerate() {
                    if let Some((_, _, frame)) = stream.pending.first() {
                        let dir = if d == 0 {
                            &mut st.flow.to_server
                        } else {
                            &mut st.flow.to_client
                        };
                        dir.gap.get_or_insert(*frame);
                    }
                }
                st.flow
            })
            .collect();
        (flows, self.udp)
    }
}

impl Stream {
    fn segment(
        &mut self,
        seq: u32,
        data: &[u8],
        frame: FrameRef,
        dir: &mut TcpDirection,
        hs: &mut TlsHandshake,
        from_client: bool,
    ) {
        let Some(next) = self.next_seq else { return };
        if self.stalled {
            return;
        }
        let ahead = seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            if self.pending.len() >= MAX_PENDING_SEGMENTS
                || self.pending_bytes + data.len() > MAX_PENDING_BYTES
            {
                // The hole is not going to be filled: stop judging this stream.
                self.stalled = true;
                dir.gap.get_or_insert(frame);
                self.pending = Vec::new();
                return;
            }
            self.pending_bytes += data.len();
            self.pending.push((seq, data.to_vec(), frame));
            return;
        }
        self.deliver(seq, data, frame, dir, hs, from_client);
        // Segments that waited for this one may now be in order.
        while let Some(i) = self
            .pending
            .iter()
            .position(|(s, _, _)| s.wrapping_sub(self.next_seq.unwrap_or(0)) as i32 <= 0)
        {
            let (s, bytes, f) = self.pending.swap_remove(i);
            self.pending_bytes -= bytes.len();
            self.deliver(s, &bytes, f, dir, hs, from_client);
        }
    }

    /// Hands the not-yet-seen part of an in-order (or overlapping) segment to the tracker.
    fn deliver(
        &mut self,
        seq: u32,
        data: &[u8],
        frame: FrameRef,
        dir: &mut TcpDirection,
        hs: &mut TlsHandshake,
        from_client: bool,
    ) {
        let next = self.next_seq.unwrap_or(seq);
        let already = next.wrapping_sub(seq) as usize;
        if already >= data.len() {
            return;
        }
        let fresh = &data[already..];
        self.next_seq = Some(next.wrapping_add(fresh.len() as u32));
        self.tracker
            .feed(fresh, frame, &mut dir.tls, hs, from_client);
    }
}
