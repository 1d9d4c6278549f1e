//! One device's MQTT session, as a sans-IO state machine.
//!
//! The session is fed bytes ([`Session::receive`]) and hub events
//! ([`Session::deliver_c2d`], [`Session::send_method`], ...) and produces
//! bytes to send ([`Session::take_output`]) or the reason it ended. It owns no
//! socket and reads no clock: everything the hub knows reaches it through the
//! [`HubPort`] trait, so every rule of the contract is unit-tested without IO.
//!
//! The rules are IoT Hub's: client id = certificate CN, user name
//! `{hub}/{id}/?api-version=..`, QoS 0/1 only (a QoS 2 publish closes the
//! session; a QoS 2 subscription is granted QoS 1), retain ignored, a device
//! may touch only its own topics (anything else closes the session).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, Protocol, QoS};

use crate::journal::{CloseReason, Event, RefuseReason};
use crate::serial::Serial;
use crate::store::{DeviceStatus, QueuedMessage};
use crate::topics::{self, DevicePublish, Subscription};

/// Settings shared by all sessions of a hub.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Host name that must open the CONNECT user name.
    pub hub_host: String,
    /// Largest MQTT packet accepted (remaining length), bytes.
    pub max_packet_size: usize,
    /// How many C2D messages may be in flight (unacknowledged) at once.
    pub c2d_window: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            hub_host: "hub.sacbench.test".into(),
            max_packet_size: 256 * 1024,
            c2d_window: 8,
        }
    }
}

/// The TLS client identity the session runs under (from the verified certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Subject CN of the client certificate.
    pub device_id: String,
    /// Serial of the client certificate.
    pub serial: Serial,
}

/// Why a session ended, with a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// The machine-readable cause, as journalled.
    pub reason: CloseReason,
    /// What exactly happened, for people reading the journal.
    pub detail: String,
}

impl SessionEnd {
    /// A session end for `reason`, explained by `detail`.
    pub fn new(reason: CloseReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    AwaitConnect,
    /// A CONNECT the hub does not answer (fixture switch): silence.
    Withheld,
    Connected,
    Ended,
}

#[derive(Debug, Clone)]
struct InFlight {
    seq: i64,
    message_id: String,
}

/// One device's session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    identity: ClientIdentity,
    state: State,
    inbuf: BytesMut,
    out: BytesMut,
    subscriptions: BTreeSet<Subscription>,
    in_flight: BTreeMap<u16, InFlight>,
    next_packet_id: u16,
    keep_alive: u16,
    /// CleanSession=0: the state outlives the connection (kept in the store).
    persistent: bool,
}

impl Session {
    /// A session over a connection whose TLS handshake verified `identity`,
    /// waiting for CONNECT.
    pub fn new(config: SessionConfig, identity: ClientIdentity) -> Self {
        Self {
            config,
            identity,
            state: State::AwaitConnect,
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            subscriptions: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            next_packet_id: 1,
            keep_alive: 0,
            persistent: false,
        }
    }

    /// The verified TLS client identity this session runs under.
    pub fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    /// True once a CONNECT was accepted.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// True after a CONNECT whose CONNACK the hub withholds: the
    /// connection stays open and silent until the client closes it.
    pub fn is_withheld(&self) -> bool {
        self.state == State::Withheld
    }

    /// How long the hub waits for any packet before closing: 1.5 × keep-alive
    /// (MQTT 3.1.1 §3.1.2.10); `None` when the client disabled keep-alive.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.keep_alive > 0).then(|| Duration::from_millis(u64::from(self.keep_alive) * 1500))
    }

    /// Bytes to send, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Feeds received bytes; handles every complete packet in them.
    pub fn receive(&mut self, port: &mut dyn HubPort, data: &[u8]) -> Result<(), SessionEnd> {
        if self.state == State::Ended {
            return Err(SessionEnd::new(
                CloseReason::ProtocolViolation,
                "data after session end",
            ));
        }
        self.inbuf.extend_from_slice(data);
        loop {
            // What the codec lets through but MQTT 3.1.1 forbids, judged on
            // the raw bytes before the codec reads them.
            if let Err(end) = self.check_raw(port) {
                self.state = State::Ended;
                return Err(end);
            }
            let awaiting_connect = self.state == State::AwaitConnect;
            match Packet::read(&mut self.inbuf, self.config.max_packet_size) {
                Ok(packet) => {
                    if let Err(end) = self.handle(port, packet) {
                        self.state = State::Ended;
                        return Err(end);
                    }
                }
                Err(CodecError::InsufficientBytes(_)) => return Ok(()),
                Err(e) => {
                    self.state = State::Ended;
                    return Err(match e {
                        CodecError::PayloadSizeLimitExceeded(size) => SessionEnd::new(
                            CloseReason::PacketTooLarge,
                            format!(
                                "packet of {size} bytes exceeds the limit of {}",
                                self.config.max_packet_size
                            ),
                        ),
                        CodecError::InvalidProtocolLevel(level) if awaiting_connect => self.refuse(
                            port,
                            ConnectReturnCode::RefusedProtocolVersion,
                            String::new(),
                            RefuseReason::UnsupportedProtocol,
                            format!("MQTT protocol level {level}; only 3.1.1 (level 4) is spoken"),
                        ),
                        other => SessionEnd::new(CloseReason::MalformedPacket, other.to_string()),
                    });
                }
            }
        }
    }

    /// The raw-byte rules of [`framing::raw_violation`] the codec does not
    /// enforce: a protocol level other than 4 is refused with CONNACK 0x01
    /// (§3.1.2.2), the rest close the connection as malformed.
    fn check_raw(&mut self, port: &mut dyn HubPort) -> Result<(), SessionEnd> {
        let awaiting_connect = self.state == State::AwaitConnect;
        match framing::raw_violation(&self.inbuf, awaiting_connect) {
            None => Ok(()),
            Some(framing::RawViolation::ProtocolLevel(detail)) => Err(self.refuse(
                port,
                ConnectReturnCode::RefusedProtocolVersion,
                String::new(),
                RefuseReason::UnsupportedProtocol,
                detail,
            )),
            Some(framing::RawViolation::Malformed(detail)) => {
                Err(SessionEnd::new(CloseReason::MalformedPacket, detail))
            }
        }
    }

    fn handle(&mut self, port: &mut dyn HubPort, packet: Packet) -> Result<(), SessionEnd> {
        if self.state == State::Withheld {
            // The hub "never answers": nothing the client sends changes that.
            return Ok(());
        }
        if self.state == State::AwaitConnect {
            return match packet {
                Packet::Connect(connect) => self.on_connect(port, connect),
                other => Err(SessionEnd::new(
                    CloseReason::ProtocolViolation,
                    format!("first packet must be CONNECT, got {}", packet_name(&other)),
                )),
            };
        }
        match packet {
            Packet::Publish(publish) => self.on_publish(port, publish),
            Packet::PubAck(ack) => {
                if let Some(lost) = self
                    .in_flight
                    .get(&ack.pkid)
                    .filter(|_| port.take_lost_puback(&self.identity.device_id))
                {
                    // Never completed: the queue delivers it again on the
                    // device's next session.
                    port.journal(
                        &self.identity.device_id,
                        Event::PubackLost {
                            message_seq: lost.seq,
                            message_id: lost.message_id.clone(),
                            packet_id: ack.pkid,
                        },
                    );
                    return Err(SessionEnd::new(
                        CloseReason::HubReset,
                        format!(
                            "the hub lost the PUBACK of {} (fixture switch) and reset the connection",
                            lost.message_id
                        ),
                    ));
                }
                if let Some(done) = self.in_flight.remove(&ack.pkid) {
                    port.complete_c2d(&self.identity.device_id, done.seq);
                    self.persist(port);
                    port.journal(
                        &self.identity.device_id,
                        Event::C2dAcked {
                            message_seq: done.seq,
                            message_id: done.message_id,
                            packet_id: ack.pkid,
                        },
                    );
                    self.deliver_c2d(port);
                }
                Ok(())
            }
            Packet::Subscribe(sub) => {
                let mut codes = Vec::with_capacity(sub.filters.len());
                let mut granted = Vec::new();
                for f in &sub.filters {
                    let Some(kind) = Subscription::parse(&self.identity.device_id, &f.path) else {
                        return Err(self.acl_violation(port, "subscribe", &f.path));
                    };
                    self.subscriptions.insert(kind);
                    granted.push(kind);
                    let qos = if f.qos == QoS::AtMostOnce {
                        QoS::AtMostOnce
                    } else {
                        QoS::AtLeastOnce
                    };
                    codes.push(SubscribeReasonCode::Success(qos));
                }
                self.write(Packet::SubAck(SubAck::new(sub.pkid, codes)));
                self.persist(port);
                port.journal(
                    &self.identity.device_id,
                    Event::Subscribed {
                        filters: sub.filters.iter().map(|f| f.path.clone()).collect(),
                    },
                );
                if granted.contains(&Subscription::CloudToDevice) {
                    self.deliver_c2d(port);
                }
                Ok(())
            }
            Packet::Unsubscribe(unsub) => {
                for t in &unsub.topics {
                    if let Some(kind) = Subscription::parse(&self.identity.device_id, t) {
                        self.subscriptions.remove(&kind);
                    }
                }
                self.write(Packet::UnsubAck(UnsubAck::new(unsub.pkid)));
                self.persist(port);
                Ok(())
            }
            Packet::PingReq => {
                self.write(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect => Err(SessionEnd::new(CloseReason::ClientDisconnect, "DISCONNECT")),
            Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => Err(SessionEnd::new(
                CloseReason::Qos2Unsupported,
                format!(
                    "{} belongs to QoS 2, which the hub does not support",
                    packet_name(&packet)
                ),
            )),
            other => Err(SessionEnd::new(
                CloseReason::ProtocolViolation,
                format!("a client may not send {}", packet_name(&other)),
            )),
        }
    }

    fn on_connect(
        &mut self,
        port: &mut dyn HubPort,
        c: rumqttc::mqttbytes::v4::Connect,
    ) -> Result<(), SessionEnd> {
        let id = self.identity.device_id.clone();
        if c.protocol != Protocol::V4 {
            return Err(self.refuse(
                port,
                ConnectReturnCode::RefusedProtocolVersion,
                c.client_id,
                RefuseReason::UnsupportedProtocol,
                "only MQTT 3.1.1 is spoken".into(),
            ));
        }
        if c.client_id != id {
            let detail = format!(
                "client id {:?} differs from the certificate CN {:?}",
                c.client_id, id
            );
            return Err(self.refuse(
                port,
                ConnectReturnCode::NotAuthorized,
                c.client_id,
                RefuseReason::ClientIdMismatch,
                detail,
            ));
        }
        let user = c.login.as_ref().map(|l| l.username.as_str()).unwrap_or("");
        if let Err(detail) = topics::check_user_name(user, &self.config.hub_host, &id) {
            return Err(self.refuse(
                port,
                ConnectReturnCode::BadUserNamePassword,
                c.client_id,
                RefuseReason::BadUserName,
                detail,
            ));
        }
        match port.device_status(&id) {
            None => {
                return Err(self.refuse(
                    port,
                    ConnectReturnCode::NotAuthorized,
                    c.client_id,
                    RefuseReason::UnknownDevice,
                    format!("device {id:?} is not registered"),
                ));
            }
            Some(DeviceStatus::Disabled) => {
                return Err(self.refuse(
                    port,
                    ConnectReturnCode::NotAuthorized,
                    c.client_id,
                    RefuseReason::DeviceDisabled,
                    format!("device {id:?} is disabled"),
                ));
            }
            Some(DeviceStatus::Enabled) => {}
        }
        if port.serial_revoked(&self.identity.serial) {
            let detail = format!("certificate {} is revoked", self.identity.serial);
            return Err(self.refuse(
                port,
                ConnectReturnCode::NotAuthorized,
                c.client_id,
                RefuseReason::CertificateRevoked,
                detail,
            ));
        }
        if let Some(will) = &c.last_will {
            if DevicePublish::parse(&id, &will.topic).is_err() {
                return Err(self.acl_violation(port, "will", &will.topic));
            }
        }
        if port.withhold_connack(&id) {
            port.journal(
                &id,
                Event::ConnackWithheld {
                    client_id: c.client_id,
                },
            );
            self.state = State::Withheld;
            return Ok(());
        }
        // Live before it is journalled as connected: a revocation from now
        // on finds this session and closes it (journalled as such).
        if !port.go_live(&id, &self.identity.serial) {
            let detail = format!(
                "certificate {} was revoked during the connect",
                self.identity.serial
            );
            return Err(self.refuse(
                port,
                ConnectReturnCode::NotAuthorized,
                c.client_id,
                RefuseReason::CertificateRevoked,
                detail,
            ));
        }
        self.state = State::Connected;
        self.keep_alive = c.keep_alive;
        // MQTT 3.1.1 §3.1.2.4: CleanSession=1 discards any stored session and
        // keeps none; CleanSession=0 resumes the stored one, or starts one.
        self.persistent = !c.clean_session;
        let resumed = if c.clean_session {
            port.drop_session(&id);
            None
        } else {
            port.load_session(&id)
        };
        let session_present = resumed.is_some();
        self.write(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            session_present,
        )));
        port.journal(
            &id,
            Event::Connected {
                client_id: c.client_id,
                serial: self.identity.serial.to_string(),
                keep_alive: c.keep_alive,
                clean_session: c.clean_session,
                session_present,
            },
        );
        match resumed {
            Some(stored) => self.resume(port, stored),
            None if self.persistent => self.persist(port),
            None => {}
        }
        Ok(())
    }

    fn refuse(
        &mut self,
        port: &mut dyn HubPort,
        code: ConnectReturnCode,
        client_id: String,
        reason: RefuseReason,
        detail: String,
    ) -> SessionEnd {
        self.write(Packet::ConnAck(ConnAck::new(code, false)));
        port.journal(
            &self.identity.device_id,
            Event::ConnectRefused {
                client_id,
                reason,
                detail: detail.clone(),
            },
        );
        SessionEnd::new(CloseReason::ConnectRefused, detail)
    }

    fn acl_violation(&mut self, port: &mut dyn HubPort, action: &str, topic: &str) -> SessionEnd {
        port.journal(
            &self.identity.device_id,
            Event::AclViolation {
                action: action.into(),
                topic: topic.into(),
            },
        );
        SessionEnd::new(
            CloseReason::AclViolation,
            format!(
                "{action} on {topic:?} is not allowed for {}",
                self.identity.device_id
            ),
        )
    }

    fn on_publish(&mut self, port: &mut dyn HubPort, p: Publish) -> Result<(), SessionEnd> {
        if p.qos == QoS::ExactlyOnce {
            return Err(SessionEnd::new(
                CloseReason::Qos2Unsupported,
                format!("QoS 2 publish on {:?}", p.topic),
            ));
        }
        let id = self.identity.device_id.clone();
        let kind = match DevicePublish::parse(&id, &p.topic) {
            Ok(kind) => kind,
            Err(topics::TopicError::NotAllowed) => {
                return Err(self.acl_violation(port, "publish", &p.topic))
            }
            Err(e) => {
                port.journal(
                    &id,
                    Event::AclViolation {
                        action: "publish".into(),
                        topic: p.topic.clone(),
                    },
                );
                return Err(SessionEnd::new(
                    CloseReason::AclViolation,
                    format!("{:?}: {e}", p.topic),
                ));
            }
        };
        match kind {
            DevicePublish::Telemetry { properties } => {
                port.journal(
                    &id,
                    Event::Telemetry {
                        topic: p.topic.clone(),
                        qos: p.qos as u8,
                        size: p.payload.len(),
                        properties,
                        payload: payload_text(&p.payload),
                    },
                );
            }
            DevicePublish::TwinGet { rid } => {
                port.journal(&id, Event::TwinGet { rid: rid.clone() });
                match port.twin(&id) {
                    Some(twin) => {
                        let body = serde_json::json!({
                            "desired": with_version(&twin.desired, twin.desired_version),
                            "reported": with_version(&twin.reported, twin.reported_version),
                        });
                        self.publish_qos0(
                            topics::twin_response_topic(200, &rid, None),
                            body.to_string().into_bytes(),
                        );
                    }
                    None => {
                        self.publish_qos0(topics::twin_response_topic(404, &rid, None), Vec::new())
                    }
                }
            }
            DevicePublish::TwinReported { rid } => {
                let patch: Result<serde_json::Value, _> = serde_json::from_slice(&p.payload);
                match patch
                    .map_err(|e| (400, e.to_string()))
                    .and_then(|v| port.patch_reported(&id, &v))
                {
                    Ok(version) => {
                        port.journal(
                            &id,
                            Event::TwinReported {
                                rid: rid.clone(),
                                version,
                                patch: serde_json::from_slice(&p.payload).unwrap_or_default(),
                            },
                        );
                        self.publish_qos0(
                            topics::twin_response_topic(204, &rid, Some(version)),
                            Vec::new(),
                        );
                    }
                    Err((status, why)) => {
                        let body = serde_json::json!({ "message": why }).to_string();
                        self.publish_qos0(
                            topics::twin_response_topic(status, &rid, None),
                            body.into_bytes(),
                        );
                    }
                }
            }
            DevicePublish::MethodResponse { status, rid } => {
                port.method_result(&id, &rid, status, p.payload.clone());
            }
        }
        if p.qos == QoS::AtLeastOnce {
            self.write(Packet::PubAck(PubAck::new(p.pkid)));
        }
        Ok(())
    }

    /// Fills the C2D window from the queue, if the device subscribed for C2D.
    pub fn deliver_c2d(&mut self, port: &mut dyn HubPort) {
        if self.state != State::Connected
            || !self.subscriptions.contains(&Subscription::CloudToDevice)
        {
            return;
        }
        let room = self.config.c2d_window.saturating_sub(self.in_flight.len());
        if room == 0 {
            return;
        }
        let busy: Vec<i64> = self.in_flight.values().map(|f| f.seq).collect();
        let taken = port.take_c2d(&self.identity.device_id, &busy, room);
        if taken.is_empty() {
            return;
        }
        for m in taken {
            let pid = self.allocate_packet_id();
            self.send_c2d(port, m, pid);
        }
        self.persist(port);
    }

    /// Sends one C2D message as a QoS 1 PUBLISH with packet id `pid`.
    fn send_c2d(&mut self, port: &mut dyn HubPort, m: QueuedMessage, pid: u16) {
        let mut bag = vec![
            ("$.mid".to_string(), m.message_id.clone()),
            (
                "$.to".to_string(),
                format!("/devices/{}/messages/deviceBound", m.device_id),
            ),
            ("$.exp".to_string(), rfc3339(m.expires_ms)),
        ];
        bag.extend(m.properties.iter().cloned());
        let mut publish = Publish::new(
            topics::c2d_topic(&m.device_id, &bag),
            QoS::AtLeastOnce,
            m.payload.clone(),
        );
        publish.pkid = pid;
        publish.dup = m.delivery_count > 1;
        self.write(Packet::Publish(publish));
        port.journal(
            &self.identity.device_id,
            Event::C2dDelivered {
                message_seq: m.seq,
                message_id: m.message_id.clone(),
                delivery_count: m.delivery_count,
                packet_id: pid,
            },
        );
        self.in_flight.insert(
            pid,
            InFlight {
                seq: m.seq,
                message_id: m.message_id,
            },
        );
    }

    /// Sends a direct method request; false when the device has not subscribed
    /// to methods (the hub then answers 404 at once, as IoT Hub does).
    pub fn send_method(&mut self, name: &str, rid: &str, payload: Vec<u8>) -> bool {
        if self.state != State::Connected || !self.subscriptions.contains(&Subscription::Methods) {
            return false;
        }
        self.publish_qos0(topics::method_request_topic(name, rid), payload);
        true
    }

    /// Notifies a desired-properties patch; false when the device did not subscribe.
    pub fn send_desired(&mut self, version: i64, patch: &serde_json::Value) -> bool {
        if self.state != State::Connected
            || !self.subscriptions.contains(&Subscription::TwinDesired)
        {
            return false;
        }
        let body = with_version(patch, version);
        self.publish_qos0(
            topics::twin_desired_topic(version),
            body.to_string().into_bytes(),
        );
        true
    }

    fn publish_qos0(&mut self, topic: String, payload: Vec<u8>) {
        self.write(Packet::Publish(Publish::new(
            topic,
            QoS::AtMostOnce,
            payload,
        )));
    }

    fn allocate_packet_id(&mut self) -> u16 {
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.in_flight.contains_key(&id) {
                return id;
            }
        }
    }

    fn write(&mut self, packet: Packet) {
        // Outgoing packets are built by the hub itself and bounded by the
        // incoming limit plus a small header, so the codec's size check can
        // only trip on a hub bug: fail loudly in that case.
        packet
            .write(&mut self.out, usize::MAX)
            .expect("encoding a hub-built MQTT packet");
    }
}

fn with_version(obj: &serde_json::Value, version: i64) -> serde_json::Value {
    let mut v = if obj.is_object() {
        obj.clone()
    } else {
        serde_json::json!({})
    };
    v["$version"] = serde_json::json!(version);
    v
}

/// A payload as the journal keeps it: UTF-8 text, or `base64:` + base64; at most 4 KiB.
fn payload_text(payload: &[u8]) -> String {
    use base64::Engine as _;
    let cut = &payload[..payload.len().min(4096)];
    match std::str::from_utf8(cut) {
        Ok(s) => s.to_owned(),
        Err(_) => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(cut)
        ),
    }
}

/// RFC 3339 UTC with milliseconds, the form IoT Hub uses for `$.exp`.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from(crate::clock::ms_to_system_time(ms));
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ms.to_string())
}

#[path = "session_framing.rs"]
mod framing;
#[path = "session_port.rs"]
mod port;
pub use port::HubPort;
#[path = "session_persist.rs"]
mod persist;
use framing::packet_name;

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
