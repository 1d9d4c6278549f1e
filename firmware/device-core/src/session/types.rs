//! The session's public vocabulary: its configuration, the actions it asks
//! the shell to carry out, the events it surfaces to the app, and its errors.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde_json::Value;

/// The largest MQTT packet a session takes by default (256 KB).
pub const MAX_PACKET_SIZE: usize = 256 * 1024;

/// What one session needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Device id = MQTT client id = certificate CN. At most 128 bytes; no `/`, `+`, `#`.
    pub device_id: String,
    /// The hub host name the device was provisioned with.
    pub hub_host: String,
    /// MQTT keep-alive, seconds; a PINGREQ goes out this often. 0 disables it.
    pub keep_alive_secs: u16,
    /// Property bag put on every telemetry topic (e.g. `$.ct`, `$.ce`), before
    /// the per-message properties.
    pub telemetry_properties: Vec<(String, String)>,
    /// How long to wait for CONNACK after CONNECT, ms.
    pub connack_timeout_ms: u64,
    /// How long to wait for PINGRESP after PINGREQ before declaring the
    /// connection dead, ms.
    pub ping_timeout_ms: u64,
    /// Largest packet accepted from the hub (remaining length), bytes.
    pub max_packet_size: usize,
    /// Most telemetry messages awaiting PUBACK at once.
    pub max_in_flight: usize,
}

impl SessionConfig {
    /// Defaults: keep-alive 60 s, CONNACK timeout 10 s, PINGRESP timeout 10 s,
    /// 256 KiB packets, 16 telemetry messages in flight, no telemetry properties.
    pub fn new(device_id: impl Into<String>, hub_host: impl Into<String>) -> Self {
        Self {
            device_id: device_id.into(),
            hub_host: hub_host.into(),
            keep_alive_secs: 60,
            telemetry_properties: Vec::new(),
            connack_timeout_ms: 10_000,
            ping_timeout_ms: 10_000,
            max_packet_size: MAX_PACKET_SIZE,
            max_in_flight: 16,
        }
    }
}

/// Something the shell must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write these bytes (one encoded MQTT packet) to the connection.
    Send(Vec<u8>),
    /// Durably store this encoded [`AppliedIds`](super::AppliedIds) before carrying out any later action.
    PersistApplied(Vec<u8>),
    /// Hand this to the app.
    Event(SessionEvent),
    /// Close the connection; the session is over.
    Close(CloseReason),
}

/// What the session tells the app.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// CONNACK accepted the connection.
    Connected {
        /// The hub kept state from an earlier session (CONNACK's
        /// session-present flag).
        session_present: bool,
    },
    /// SUBACK granted every subscription; `commands` is false when this
    /// session did not subscribe to C2D commands (fault `no-resubscribe`).
    Subscribed {
        /// This session subscribed to C2D commands.
        commands: bool,
    },
    /// A C2D command not applied before: apply it, then call [`Session::command_applied`](super::Session::command_applied).
    Command(Command),
    /// A direct method call: answer with [`Session::respond_method`](super::Session::respond_method).
    Method {
        /// The method name, from `$iothub/methods/POST/{name}/`.
        name: String,
        /// The request id to answer with.
        rid: String,
        /// The request body (JSON) as sent.
        payload: Vec<u8>,
    },
    /// Answer to a twin GET; `twin` is `Some` when `status` is 200.
    Twin {
        /// The request id [`Session::twin_get`](super::Session::twin_get) returned.
        rid: u32,
        /// The hub's status code (200 on success).
        status: u16,
        /// The twin, when `status` is 200.
        twin: Option<TwinDocument>,
    },
    /// A desired-properties patch (the JSON as sent, `$version` included).
    Desired {
        /// The desired properties' new `$version`, from the topic.
        version: i64,
        /// The patch body as JSON.
        patch: Value,
    },
    /// Answer to a reported-properties patch; 204 (with the new version) is success.
    Reported {
        /// The request id [`Session::report`](super::Session::report) returned.
        rid: u32,
        /// The hub's status code (204 on success).
        status: u16,
        /// The reported properties' new `$version`, if the hub gave one.
        version: Option<i64>,
    },
    /// The hub acknowledged the telemetry message with this packet id.
    TelemetryAcked {
        /// The id [`Session::send_telemetry`](super::Session::send_telemetry) returned.
        packet_id: u16,
    },
}

/// A cloud-to-device command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `$.mid`: the message id, the key of idempotence.
    pub mid: String,
    /// `$.exp`: expiry as the hub wrote it (RFC 3339), if any.
    pub expiry: Option<String>,
    /// Application properties (keys not starting with `$.`), decoded, in topic order.
    pub properties: Vec<(String, String)>,
    /// System properties (`$.mid`, `$.exp`, `$.to`, ...), decoded, in topic order.
    pub system_properties: Vec<(String, String)>,
    /// The command body, bytes as the hub delivered them.
    pub payload: Vec<u8>,
    /// The hub marked it DUP (it delivered it before).
    pub redelivered: bool,
}

/// The twin as a GET returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinDocument {
    /// Desired properties, `$version` included.
    pub desired: Value,
    /// Reported properties, `$version` included.
    pub reported: Value,
    /// `desired.$version`, if present and an integer.
    pub desired_version: Option<i64>,
    /// `reported.$version`, if present and an integer.
    pub reported_version: Option<i64>,
}

/// Why the session closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// CONNACK refused the connection with this return code (MQTT 3.1.1 §3.2.2.3:
    /// 1 protocol version, 2 identifier, 3 unavailable, 4 user name/password, 5 not authorised).
    ConnectRefused(u8),
    /// No CONNACK within [`SessionConfig::connack_timeout_ms`].
    ConnackTimeout,
    /// No PINGRESP within [`SessionConfig::ping_timeout_ms`]: the connection is dead.
    PingTimeout,
    /// SUBACK refused this filter.
    SubscribeRefused(String),
    /// The hub published on a topic this session did not subscribe to.
    UnexpectedTopic(String),
    /// A packet, topic, property bag or JSON body that does not parse.
    Malformed(String),
    /// A packet that is well-formed but out of place (wrong state, unknown id, QoS 2).
    Protocol(String),
    /// A packet over [`SessionConfig::max_packet_size`].
    TooLarge(usize),
    /// The app asked for it ([`Session::disconnect`](super::Session::disconnect)).
    Requested,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ConnectRefused(code) => {
                write!(f, "CONNACK refused the connection (return code {code})")
            }
            CloseReason::ConnackTimeout => f.write_str("no CONNACK in time"),
            CloseReason::PingTimeout => f.write_str("no PINGRESP in time: connection dead"),
            CloseReason::SubscribeRefused(filter) => {
                write!(f, "subscription to {filter:?} refused")
            }
            CloseReason::UnexpectedTopic(topic) => {
                write!(f, "publish on {topic:?}, which was not subscribed")
            }
            CloseReason::Malformed(why) => write!(f, "malformed input from the hub: {why}"),
            CloseReason::Protocol(why) => write!(f, "protocol violation by the hub: {why}"),
            CloseReason::TooLarge(n) => write!(f, "packet of {n} bytes over the limit"),
            CloseReason::Requested => f.write_str("closed by the device"),
        }
    }
}

/// Why an app call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The configuration cannot work (the reason says which field).
    InvalidConfig(&'static str),
    /// [`Session::connect`](super::Session::connect) was already called.
    AlreadyStarted,
    /// No CONNACK yet.
    NotConnected,
    /// The session is closed.
    Closed,
    /// [`SessionConfig::max_in_flight`] telemetry messages await PUBACK.
    InFlightFull,
    /// No surfaced, unapplied command has this id.
    UnknownCommand,
    /// No method call with this rid awaits an answer.
    UnknownMethod,
    /// Topic or packet too large for MQTT.
    TooLarge,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::InvalidConfig(why) => write!(f, "invalid session configuration: {why}"),
            SessionError::AlreadyStarted => f.write_str("session already started"),
            SessionError::NotConnected => f.write_str("not connected yet"),
            SessionError::Closed => f.write_str("session closed"),
            SessionError::InFlightFull => f.write_str("too many telemetry messages await PUBACK"),
            SessionError::UnknownCommand => f.write_str("no pending command with this id"),
            SessionError::UnknownMethod => {
                f.write_str("no method call with this rid awaits an answer")
            }
            SessionError::TooLarge => f.write_str("too large for an MQTT packet"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SessionError {}
