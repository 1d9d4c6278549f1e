//! Stream reassembly and encoding around the `mqttrs` codec.
//!
//! TLS hands the session bytes in arbitrary pieces: a packet may be split
//! across reads, or several packets may come in one. [`frame`] finds where the
//! first packet ends. It also checks the packet's structure before `mqttrs`
//! sees it, because `mqttrs` 0.4 indexes its input without bounds checks on
//! several paths (a PUBACK or SUBACK shorter than its packet id, a CONNACK
//! shorter than two bytes, a QoS 1 PUBLISH whose topic leaves no room for the
//! packet id) and would panic, and because it reads a PUBLISH topic from the
//! whole buffer, past the end of the packet. Here every packet is handed to it
//! as an exact slice that holds at least the fixed fields it reads.

use alloc::vec;
use alloc::vec::Vec;
use mqttrs::{Packet, QosPid};

/// Why the byte stream from the hub cannot be read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameError {
    /// The remaining length is over the configured maximum.
    TooLarge(usize),
    /// A packet type a server never sends to a client (or a QoS 2 one).
    NotForClient(&'static str),
    /// Fixed header or fixed fields do not add up.
    Malformed(&'static str),
}

/// Length of the first complete packet in `buf`, `None` when more bytes are
/// needed.
pub(super) fn frame(buf: &[u8], max_remaining: usize) -> Result<Option<usize>, FrameError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    // Reject what a client must never receive as soon as the first byte is
    // here, so that garbage is not buffered up to the size limit.
    let kind = first >> 4;
    match kind {
        2 | 3 | 4 | 9 | 11 | 13 => {}
        other => return Err(FrameError::NotForClient(packet_name(other))),
    }
    // Remaining length: up to four bytes, 7 bits each (MQTT 3.1.1 §2.2.3).
    let mut remaining = 0usize;
    let mut header_len = None;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            header_len = Some(2 + i);
            break;
        }
    }
    let header_len = header_len.ok_or(FrameError::Malformed(
        "remaining length longer than four bytes",
    ))?;
    if remaining > max_remaining {
        return Err(FrameError::TooLarge(remaining));
    }
    let total = header_len + remaining;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[header_len..total];
    let ok = match kind {
        // CONNACK, PUBACK, UNSUBACK: exactly two bytes of variable header.
        2 | 4 | 11 => remaining == 2,
        // SUBACK: packet id and at least one return code.
        9 => remaining >= 3,
        // PINGRESP: nothing.
        13 => remaining == 0,
        // PUBLISH: topic (length-prefixed), then a packet id unless QoS 0.
        _ => {
            let qos = (first >> 1) & 0b11;
            if qos == 2 {
                return Err(FrameError::NotForClient("QoS 2 PUBLISH"));
            }
            body.len() >= 2 && {
                let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                body.len() >= 2 + topic_len + if qos == 0 { 0 } else { 2 }
            }
        }
    };
    if ok {
        Ok(Some(total))
    } else {
        Err(FrameError::Malformed(
            "packet shorter than its fixed fields",
        ))
    }
}

fn packet_name(kind: u8) -> &'static str {
    match kind {
        1 => "CONNECT",
        5 => "PUBREC (QoS 2)",
        6 => "PUBREL (QoS 2)",
        7 => "PUBCOMP (QoS 2)",
        8 => "SUBSCRIBE",
        10 => "UNSUBSCRIBE",
        12 => "PINGREQ",
        14 => "DISCONNECT",
        _ => "a reserved packet type",
    }
}

/// Largest remaining length MQTT can express (§2.2.3).
const MAX_REMAINING: usize = 268_435_455;

/// Encodes a packet built by the session. `None` when it cannot be encoded
/// (a string over 65 535 bytes, or a packet over the MQTT maximum): the
/// caller turns that into an error for the app instead of sending garbage,
/// since `mqttrs` would silently truncate such a string length.
pub(super) fn encode(packet: &Packet<'_>) -> Option<Vec<u8>> {
    let (strings, remaining) = match packet {
        Packet::Connect(c) => {
            let user = c.username.map_or(0, |u| 2 + u.len());
            (
                [c.client_id.len(), c.username.map_or(0, str::len)],
                10 + 2 + c.client_id.len() + user,
            )
        }
        Packet::Publish(p) => {
            let pid = if matches!(p.qospid, QosPid::AtMostOnce) {
                0
            } else {
                2
            };
            (
                [p.topic_name.len(), 0],
                2 + p.topic_name.len() + pid + p.payload.len(),
            )
        }
        Packet::Subscribe(s) => {
            let longest = s
                .topics
                .iter()
                .map(|t| t.topic_path.len())
                .max()
                .unwrap_or(0);
            (
                [longest, 0],
                2 + s
                    .topics
                    .iter()
                    .map(|t| 3 + t.topic_path.len())
                    .sum::<usize>(),
            )
        }
        _ => ([0, 0], 2),
    };
    if strings.iter().any(|&n| n > usize::from(u16::MAX)) || remaining > MAX_REMAINING {
        return None;
    }
    // Fixed header byte + up to four length bytes; the bound is exact enough
    // that mqttrs's own capacity checks never fail.
    let mut buf = vec![0u8; 5 + remaining];
    let len = mqttrs::encode_slice(packet, &mut buf).ok()?;
    buf.truncate(len);
    Some(buf)
}
