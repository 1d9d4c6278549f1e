//! The MQTT 3.1.1 side of the device contract (docs/device-contract.md, the
//! Azure IoT Hub surface), sans-IO: the packets the device sends, built with
//! `mqttrs` (the codec device-core's session uses), and framing of what it
//! receives. client id = device id; user name
//! `{hub}/{device_id}/?api-version=2021-04-12`, no password (the client
//! certificate authenticates); commands on
//! `devices/{device_id}/messages/devicebound/#` at QoS 1.

use core::fmt::Write;
use mqttrs::{encode_slice, Connect, Packet, Pid, Protocol, QoS, Subscribe, SubscribeTopic};

/// The API version in the user name, as device-core and Azure's SDKs send.
pub const API_VERSION: &str = "2021-04-12";
/// Keep-alive the device announces in CONNECT, seconds; it pings after
/// half of it without sending anything.
pub const KEEP_ALIVE_SECS: u16 = 20;
/// Packet id of the one SUBSCRIBE.
pub const SUBSCRIBE_PID: u16 = 1;

/// Why a packet could not be built or framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttError {
    /// A name does not fit its buffer.
    TooLong,
    /// The codec refused.
    Codec,
    /// The remaining-length field is longer than four bytes.
    BadLength,
}

/// `{hub}/{device_id}/?api-version=…` into `out`.
pub fn user_name<const N: usize>(
    hub: &str,
    device_id: &str,
    out: &mut heapless07::String<N>,
) -> Result<(), MqttError> {
    write!(out, "{hub}/{device_id}/?api-version={API_VERSION}").map_err(|_| MqttError::TooLong)
}

/// `devices/{device_id}/messages/devicebound/#` into `out`.
pub fn command_filter<const N: usize>(
    device_id: &str,
    out: &mut heapless07::String<N>,
) -> Result<(), MqttError> {
    write!(out, "devices/{device_id}/messages/devicebound/#").map_err(|_| MqttError::TooLong)
}

/// CONNECT into `buf`; returns its length.
pub fn connect(hub: &str, device_id: &str, buf: &mut [u8]) -> Result<usize, MqttError> {
    let mut user = heapless07::String::<256>::new();
    user_name(hub, device_id, &mut user)?;
    let packet = Packet::Connect(Connect {
        protocol: Protocol::MQTT311,
        keep_alive: KEEP_ALIVE_SECS,
        client_id: device_id,
        clean_session: true,
        last_will: None,
        username: Some(user.as_str()),
        password: None,
    });
    encode_slice(&packet, buf).map_err(|_| MqttError::Codec)
}

/// SUBSCRIBE to the command topic at QoS 1 into `buf`; returns its length.
pub fn subscribe_commands(device_id: &str, buf: &mut [u8]) -> Result<usize, MqttError> {
    let mut topic_path = heapless07::String::<256>::new();
    command_filter(device_id, &mut topic_path)?;
    let mut topics = heapless07::Vec::new();
    topics
        .push(SubscribeTopic {
            topic_path,
            qos: QoS::AtLeastOnce,
        })
        .map_err(|_| MqttError::TooLong)?;
    let pid = Pid::try_from(SUBSCRIBE_PID).map_err(|_| MqttError::Codec)?;
    encode_slice(&Packet::Subscribe(Subscribe { pid, topics }), buf).map_err(|_| MqttError::Codec)
}

/// Any packet without borrowed data (PUBACK, PINGREQ, DISCONNECT).
pub fn encode(packet: &Packet<'_>, buf: &mut [u8]) -> Result<usize, MqttError> {
    encode_slice(packet, buf).map_err(|_| MqttError::Codec)
}

/// The length of the first whole packet in `buf`, or None while it is
/// incomplete.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, MqttError> {
    let mut len = 0usize;
    for pos in 0..4 {
        let Some(&byte) = buf.get(1 + pos) else {
            return Ok(None);
        };
        len += usize::from(byte & 0x7f) << (7 * pos);
        if byte & 0x80 == 0 {
            let total = 2 + pos + len;
            return Ok((buf.len() >= total).then_some(total));
        }
    }
    Err(MqttError::BadLength)
}

/// A QoS as its number (mqttrs keeps its own conversion private).
pub fn qos_number(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

/// The `$.mid` of a command topic's property bag
/// (`devices/{id}/messages/devicebound/{bag}`, the bag URL-encoded as the
/// hub builds it: `%24.mid=…&…`), if it has one that is not empty and at
/// most `MAX_MID_LEN` bytes.
pub fn message_id(topic: &str) -> Option<alloc::string::String> {
    let (_, bag) = topic.split_once("/messages/devicebound/")?;
    form_urlencoded::parse(bag.as_bytes())
        .find(|(k, _)| k == "$.mid")
        .map(|(_, v)| v.into_owned())
        .filter(|mid| !mid.is_empty() && mid.len() <= device_core::session::MAX_MID_LEN)
}
