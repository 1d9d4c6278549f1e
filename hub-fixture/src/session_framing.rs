//! MQTT 3.1.1 framing rules judged on a packet's raw bytes, before the
//! codec reads it: the codec lets these through (it ignores reserved flag
//! bits and misreads an MQTT 5 CONNECT's properties).

use rumqttc::mqttbytes::v4::Packet;

/// What the next packet's raw bytes break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawViolation {
    /// A CONNECT at a protocol level other than 4 (§3.1.2.2: CONNACK 0x01).
    ProtocolLevel(String),
    /// Reserved fixed-header flags (§2.2.2) or a CONNECT's reserved flag
    /// (§3.1.2.3): the connection is closed.
    Malformed(String),
}

/// The rule the packet at the start of `buf` breaks, if any; the CONNECT
/// rules only while `awaiting_connect`. `None` too while too little has
/// arrived to tell.
pub(super) fn raw_violation(buf: &[u8], awaiting_connect: bool) -> Option<RawViolation> {
    let &first = buf.first()?;
    let (kind, flags) = (first >> 4, first & 0x0f);
    let required = match kind {
        3 => None,             // PUBLISH: DUP, QoS, RETAIN
        6 | 8 | 10 => Some(2), // PUBREL, SUBSCRIBE, UNSUBSCRIBE: 0010
        _ => Some(0),
    };
    if required.is_some_and(|r| r != flags) {
        return Some(RawViolation::Malformed(format!(
            "packet type {kind} with reserved header flags {flags:04b} (MQTT 3.1.1 §2.2.2)"
        )));
    }
    if !awaiting_connect || kind != 1 {
        return None;
    }
    // Not all there yet, or not MQTT: the codec judges.
    let (level, connect_flags) = connect_level_and_flags(buf)?;
    if level != 4 {
        return Some(RawViolation::ProtocolLevel(match level {
            5 => "MQTT 5 (protocol level 5); only MQTT 3.1.1 (level 4) is spoken".to_owned(),
            l => format!("MQTT protocol level {l}; only 3.1.1 (level 4) is spoken"),
        }));
    }
    (connect_flags & 1 != 0).then(|| {
        RawViolation::Malformed("CONNECT with its reserved flag set (MQTT 3.1.1 §3.1.2.3)".into())
    })
}

/// A CONNECT's protocol level and connect flags, once its variable header
/// has arrived; `None` before that, or when the protocol name is not MQTT's.
fn connect_level_and_flags(buf: &[u8]) -> Option<(u8, u8)> {
    // Fixed header: type byte, then 1-4 bytes of remaining length.
    let mut at = 1;
    loop {
        let b = *buf.get(at)?;
        at += 1;
        if b & 0x80 == 0 || at > 4 {
            break;
        }
    }
    let name_len = usize::from(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]));
    let name = buf.get(at + 2..at + 2 + name_len)?;
    if name != b"MQTT" && name != b"MQIsdp" {
        return None;
    }
    let level = *buf.get(at + 2 + name_len)?;
    let flags = *buf.get(at + 3 + name_len)?;
    Some((level, flags))
}

pub(super) fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}
