//! The device's MQTT 3.1.1 session with the hub (client side), sans-IO.
//!
//! One [`Session`] lives for one transport connection (TCP + TLS). The shell
//! opens the connection, calls [`Session::connect`], feeds every received byte
//! to [`Session::receive`], calls [`Session::poll`] when
//! [`Session::next_deadline`] is reached, forwards the app's calls
//! ([`Session::send_telemetry`], [`Session::command_applied`], ...) and after
//! each call drains [`Session::take_actions`], carrying the actions out **in
//! order**:
//!
//! - [`Action::Send`]: write the bytes to the connection;
//! - [`Action::PersistApplied`]: durably store the bytes (the encoded
//!   [`AppliedIds`]) and only then go on with the next action: the PUBACK
//!   that follows it must not leave before the ids are stored (CD-12);
//! - [`Action::Event`]: hand the event to the app;
//! - [`Action::Close`]: close the connection; the session is finished. A new
//!   connection gets a new session, built with [`Session::applied`] (or the
//!   persisted bytes after a power cut).
//!
//! The surface is IoT Hub's (`device-contract.md`): client id = device id,
//! user name `{hub}/{id}/?api-version=2021-04-12`, clean session, the four
//! subscriptions, C2D commands on `devices/{id}/messages/devicebound/{bag}`,
//! methods, twin. Commands are applied once per `$.mid`: a new command is
//! surfaced, the app applies it and calls [`Session::command_applied`], the
//! session asks for the id to be persisted and only then PUBACKs it; a
//! redelivered command whose id is already applied is PUBACKed silently.
//!
//! Anything unexpected from the hub (a packet a server never sends, a publish
//! on a topic not subscribed, a malformed packet or property bag, a response
//! to nothing asked) closes the session with a [`CloseReason`]; nothing from
//! the network can panic it.
//!
//! Six faults of the catalogue live here: [`Fault::NoResubscribe`],
//! [`Fault::NoDedupe`], [`Fault::AckBeforePersist`],
//! [`Fault::NoConnackTimeout`], [`Fault::TrustSessionPresent`] and
//! [`Fault::NoTwinGet`].

mod applied;
mod frame;
mod topics;
mod types;

#[cfg(test)]
mod tests;

pub use applied::{AppliedIds, AppliedIdsError, APPLIED_CAPACITY, MAX_MID_LEN};
pub use topics::API_VERSION;
pub use types::{
    Action, CloseReason, Command, SessionConfig, SessionError, SessionEvent, TwinDocument,
    MAX_PACKET_SIZE,
};

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use mqttrs::{Connack, Connect, ConnectReturnCode, Packet, Pid, Protocol, Publish, QoS, QosPid};
use mqttrs::{Suback, Subscribe, SubscribeReturnCodes, SubscribeTopic};
use serde_json::Value;

use crate::faults::{Fault, FaultSet};
use frame::FrameError;
use topics::{Inbound, TopicError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    AwaitConnack,
    Subscribing,
    Ready,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TwinRequest {
    Get,
    Report,
}

/// A command surfaced to the app and not applied yet, with the PUBACKs it owes.
#[derive(Debug, Clone)]
struct PendingCommand {
    mid: String,
    pids: Vec<Pid>,
}

/// The subscriptions this session asked for; the hub may publish only on these.
#[derive(Debug, Clone, Default)]
struct Subscribed {
    filters: Vec<String>,
    commands: bool,
}

/// One MQTT session (one connection) of the device. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    faults: FaultSet,
    first_since_power_on: bool,
    applied: AppliedIds,
    state: State,
    inbuf: Vec<u8>,
    actions: VecDeque<Action>,
    subscribed: Subscribed,
    subscribe_pid: Option<Pid>,
    next_pid: Pid,
    next_rid: u32,
    in_flight: BTreeSet<u16>,
    pending_commands: Vec<PendingCommand>,
    pending_methods: BTreeSet<String>,
    twin_requests: BTreeMap<u32, TwinRequest>,
    connect_at_ms: u64,
    last_ping_ms: u64,
    ping_sent_ms: Option<u64>,
    /// Not the first connection since power-on (see [`Session::set_reconnect`]).
    reconnect: bool,
}

impl Session {
    /// A session for one connection. `first_since_power_on` is true for the
    /// first connection after the device booted (fault `no-resubscribe`
    /// subscribes to commands only then); `applied` is what the previous
    /// session left ([`Session::applied`]) or what was persisted.
    pub fn new(
        config: SessionConfig,
        faults: FaultSet,
        first_since_power_on: bool,
        applied: AppliedIds,
    ) -> Result<Self, SessionError> {
        let id = &config.device_id;
        if id.is_empty() || id.len() > 128 || id.contains(['/', '+', '#']) {
            return Err(SessionError::InvalidConfig(
                "device_id: 1..=128 bytes without '/', '+', '#'",
            ));
        }
        if config.hub_host.is_empty() || config.hub_host.contains('/') {
            return Err(SessionError::InvalidConfig(
                "hub_host: non-empty, without '/'",
            ));
        }
        if config.max_in_flight == 0 || config.max_in_flight > 1024 {
            return Err(SessionError::InvalidConfig("max_in_flight: 1..=1024"));
        }
        Ok(Self {
            config,
            faults,
            first_since_power_on,
            applied,
            state: State::Idle,
            inbuf: Vec::new(),
            actions: VecDeque::new(),
            subscribed: Subscribed::default(),
            subscribe_pid: None,
            next_pid: Pid::new(),
            next_rid: 1,
            in_flight: BTreeSet::new(),
            pending_commands: Vec::new(),
            pending_methods: BTreeSet::new(),
            twin_requests: BTreeMap::new(),
            connect_at_ms: 0,
            last_ping_ms: 0,
            ping_sent_ms: None,
            reconnect: false,
        })
    }

    /// Marks this session as a reconnect: an earlier connection since
    /// power-on reached a session. Faults `trust-session-present` (no
    /// SUBSCRIBE on a reconnect) and `no-twin-get` (no twin GET on a
    /// reconnect) act only then.
    pub fn set_reconnect(&mut self, reconnect: bool) {
        self.reconnect = reconnect;
    }

    /// Queues CONNECT; call once the transport is up.
    pub fn connect(&mut self, now_ms: u64) -> Result<(), SessionError> {
        match self.state {
            State::Idle => {}
            State::Closed => return Err(SessionError::Closed),
            _ => return Err(SessionError::AlreadyStarted),
        }
        let user = topics::user_name(&self.config.hub_host, &self.config.device_id);
        let connect = Connect {
            protocol: Protocol::MQTT311,
            keep_alive: self.config.keep_alive_secs,
            client_id: &self.config.device_id,
            // The C2D queue is the hub's and does not depend on the session
            // flag; a clean session makes every connection subscribe anew.
            // Fault `trust-session-present` asks for a persistent session
            // (and relies on it, see `on_connack`).
            clean_session: !self.faults.has(Fault::TrustSessionPresent),
            last_will: None,
            username: Some(&user),
            password: None,
        };
        let bytes = frame::encode(&Packet::Connect(connect)).ok_or(SessionError::TooLarge)?;
        self.actions.push_back(Action::Send(bytes));
        self.state = State::AwaitConnack;
        self.connect_at_ms = now_ms;
        Ok(())
    }

    /// Feeds bytes received from the connection, in any split.
    pub fn receive(&mut self, now_ms: u64, data: &[u8]) {
        match self.state {
            State::Closed => return,
            State::Idle => return self.close(CloseReason::Protocol("data before CONNECT".into())),
            _ => {}
        }
        self.inbuf.extend_from_slice(data);
        // Packets borrow from the buffer while the handlers mutate the
        // session, so the buffer is taken out for the loop.
        let buf = core::mem::take(&mut self.inbuf);
        let mut at = 0;
        let outcome = loop {
            let len = match frame::frame(&buf[at..], self.config.max_packet_size) {
                Ok(Some(len)) => len,
                Ok(None) => break Ok(()),
                Err(FrameError::TooLarge(n)) => break Err(CloseReason::TooLarge(n)),
                Err(FrameError::NotForClient(what)) => {
                    break Err(CloseReason::Protocol(format!(
                        "a server does not send {what}"
                    )))
                }
                Err(FrameError::Malformed(why)) => break Err(CloseReason::Malformed(why.into())),
            };
            let packet = match mqttrs::decode_slice(&buf[at..at + len]) {
                Ok(Some(packet)) => packet,
                Ok(None) => break Err(CloseReason::Malformed("incomplete packet".into())),
                Err(e) => break Err(CloseReason::Malformed(format!("{e:?}"))),
            };
            at += len;
            if let Err(reason) = self.on_packet(now_ms, packet) {
                break Err(reason);
            }
        };
        match outcome {
            Ok(()) => {
                self.inbuf = buf;
                self.inbuf.drain(..at);
            }
            Err(reason) => self.close(reason),
        }
    }

    /// Runs the timers: CONNACK timeout, PINGREQ when due, PINGRESP timeout.
    pub fn poll(&mut self, now_ms: u64) {
        match self.state {
            State::AwaitConnack
                if !self.faults.has(Fault::NoConnackTimeout)
                    && now_ms.saturating_sub(self.connect_at_ms)
                        >= self.config.connack_timeout_ms =>
            {
                self.close(CloseReason::ConnackTimeout)
            }
            State::Subscribing | State::Ready => match self.ping_sent_ms {
                Some(sent) if now_ms.saturating_sub(sent) >= self.config.ping_timeout_ms => {
                    self.close(CloseReason::PingTimeout)
                }
                Some(_) => {}
                None => {
                    if self
                        .keep_alive_ms()
                        .is_some_and(|ka| now_ms.saturating_sub(self.last_ping_ms) >= ka)
                    {
                        self.send(&Packet::Pingreq);
                        self.ping_sent_ms = Some(now_ms);
                        self.last_ping_ms = now_ms;
                    }
                }
            },
            _ => {}
        }
    }

    /// When [`Session::poll`] next has something to do (ms, same clock), if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        match self.state {
            // Fault `no-connack-timeout`: it waits for CONNACK forever.
            State::AwaitConnack if self.faults.has(Fault::NoConnackTimeout) => None,
            State::AwaitConnack => Some(
                self.connect_at_ms
                    .saturating_add(self.config.connack_timeout_ms),
            ),
            State::Subscribing | State::Ready => match self.ping_sent_ms {
                Some(sent) => Some(sent.saturating_add(self.config.ping_timeout_ms)),
                None => self
                    .keep_alive_ms()
                    .map(|ka| self.last_ping_ms.saturating_add(ka)),
            },
            _ => None,
        }
    }

    /// Drains the actions queued so far, oldest first.
    pub fn take_actions(&mut self) -> Vec<Action> {
        self.actions.drain(..).collect()
    }

    /// Publishes telemetry (QoS 1) on `devices/{id}/messages/events/{bag}`,
    /// the bag being the configured properties then `properties`. Returns the
    /// packet id, acknowledged later by [`SessionEvent::TelemetryAcked`].
    pub fn send_telemetry(
        &mut self,
        payload: &[u8],
        properties: &[(&str, &str)],
    ) -> Result<u16, SessionError> {
        self.check_connected()?;
        if self.in_flight.len() >= self.config.max_in_flight {
            return Err(SessionError::InFlightFull);
        }
        let configured = self
            .config
            .telemetry_properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let topic = topics::telemetry_topic(
            &self.config.device_id,
            configured.chain(properties.iter().copied()),
        );
        let pid = self.allocate_pid();
        let publish = Publish {
            dup: false,
            qospid: QosPid::AtLeastOnce(pid),
            retain: false,
            topic_name: &topic,
            payload,
        };
        let bytes = frame::encode(&Packet::Publish(publish)).ok_or(SessionError::TooLarge)?;
        self.in_flight.insert(pid.get());
        self.actions.push_back(Action::Send(bytes));
        Ok(pid.get())
    }

    /// Packet ids of telemetry messages not acknowledged yet, ascending.
    pub fn unacked_telemetry(&self) -> Vec<u16> {
        self.in_flight.iter().copied().collect()
    }

    /// The app applied the command `mid`: records it, queues
    /// [`Action::PersistApplied`] and then the PUBACK(s) it owes. Also valid
    /// after the session closed (the id is recorded and persisted, no PUBACK:
    /// the hub redelivers it to the next session, which then only acks it).
    pub fn command_applied(&mut self, mid: &str) -> Result<(), SessionError> {
        let index = self
            .pending_commands
            .iter()
            .position(|c| c.mid == mid)
            .ok_or(SessionError::UnknownCommand)?;
        let pending = self.pending_commands.remove(index);
        self.applied.insert(mid);
        self.actions
            .push_back(Action::PersistApplied(self.applied.encode()));
        if self.state != State::Closed {
            for pid in pending.pids {
                self.send(&Packet::Puback(pid));
            }
        }
        Ok(())
    }

    /// Ids of commands surfaced to the app and not applied yet, oldest first.
    pub fn pending_commands(&self) -> Vec<&str> {
        self.pending_commands
            .iter()
            .map(|c| c.mid.as_str())
            .collect()
    }

    /// The applied command ids (to carry into the next session).
    pub fn applied(&self) -> &AppliedIds {
        &self.applied
    }

    /// Answers the method call `rid`: publishes `payload` (JSON) on
    /// `$iothub/methods/res/{status}/?$rid={rid}`.
    pub fn respond_method(
        &mut self,
        rid: &str,
        status: u16,
        payload: &[u8],
    ) -> Result<(), SessionError> {
        self.check_connected()?;
        if !self.pending_methods.contains(rid) {
            return Err(SessionError::UnknownMethod);
        }
        self.publish_qos0(&topics::method_response_topic(status, rid), payload)?;
        self.pending_methods.remove(rid);
        Ok(())
    }

    /// Asks for the twin (`$iothub/twin/GET/?$rid={rid}`); the answer comes as
    /// [`SessionEvent::Twin`] with the returned rid. The session sends one by
    /// itself once subscribed.
    pub fn twin_get(&mut self) -> Result<u32, SessionError> {
        self.check_connected()?;
        let rid = self.allocate_rid();
        self.publish_qos0(&topics::twin_get_topic(rid), b"")?;
        self.twin_requests.insert(rid, TwinRequest::Get);
        Ok(rid)
    }

    /// Patches reported properties; the answer comes as
    /// [`SessionEvent::Reported`] with the returned rid.
    pub fn report(&mut self, patch: &Value) -> Result<u32, SessionError> {
        self.check_connected()?;
        let body = serde_json::to_vec(patch).map_err(|_| SessionError::TooLarge)?;
        let rid = self.allocate_rid();
        self.publish_qos0(&topics::twin_reported_topic(rid), &body)?;
        self.twin_requests.insert(rid, TwinRequest::Report);
        Ok(rid)
    }

    /// Sends DISCONNECT and closes ([`CloseReason::Requested`]).
    pub fn disconnect(&mut self) -> Result<(), SessionError> {
        match self.state {
            State::Closed => Err(SessionError::Closed),
            State::Idle => Err(SessionError::NotConnected),
            _ => {
                self.send(&Packet::Disconnect);
                self.close(CloseReason::Requested);
                Ok(())
            }
        }
    }

    /// True from CONNACK until the session closes.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Subscribing | State::Ready)
    }

    /// True once every subscription was granted (and not closed since).
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// True once the session closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn on_packet(&mut self, now_ms: u64, packet: Packet<'_>) -> Result<(), CloseReason> {
        if self.state == State::AwaitConnack {
            return match packet {
                Packet::Connack(connack) => self.on_connack(now_ms, connack),
                other => Err(CloseReason::Protocol(format!(
                    "{:?} before CONNACK",
                    other.get_type()
                ))),
            };
        }
        match packet {
            Packet::Connack(_) => Err(CloseReason::Protocol("a second CONNACK".into())),
            Packet::Suback(suback) => self.on_suback(suback),
            Packet::Puback(pid) => {
                if !self.in_flight.remove(&pid.get()) {
                    return Err(CloseReason::Protocol(format!(
                        "PUBACK for packet id {} not in flight",
                        pid.get()
                    )));
                }
                self.event(SessionEvent::TelemetryAcked {
                    packet_id: pid.get(),
                });
                Ok(())
            }
            Packet::Pingresp => match self.ping_sent_ms.take() {
                Some(_) => Ok(()),
                None => Err(CloseReason::Protocol("PINGRESP without PINGREQ".into())),
            },
            Packet::Publish(publish) => self.on_publish(&publish),
            other => Err(CloseReason::Protocol(format!(
                "unexpected {:?}",
                other.get_type()
            ))),
        }
    }

    fn on_connack(&mut self, now_ms: u64, connack: Connack) -> Result<(), CloseReason> {
        let code = match connack.code {
            ConnectReturnCode::Accepted => 0,
            ConnectReturnCode::RefusedProtocolVersion => 1,
            ConnectReturnCode::RefusedIdentifierRejected => 2,
            ConnectReturnCode::ServerUnavailable => 3,
            ConnectReturnCode::BadUsernamePassword => 4,
            ConnectReturnCode::NotAuthorized => 5,
        };
        if code != 0 {
            return Err(CloseReason::ConnectRefused(code));
        }
        self.state = State::Subscribing;
        self.last_ping_ms = now_ms;
        self.event(SessionEvent::Connected {
            session_present: connack.session_present,
        });
        if self.faults.has(Fault::TrustSessionPresent) && self.reconnect {
            // Fault: it believes the hub kept its session (and with it the
            // subscriptions) whatever CONNACK's session-present says.
            self.state = State::Ready;
            self.subscribed = Subscribed {
                filters: Vec::new(),
                commands: true,
            };
            self.event(SessionEvent::Subscribed { commands: true });
            self.get_twin_after_subscribe();
            return Ok(());
        }
        // Commands first, QoS 1 (at-least-once); the rest QoS 0 as IoT Hub's
        // own SDKs do. Fault no-resubscribe: commands only in the first
        // session after power-on.
        let commands = !self.faults.has(Fault::NoResubscribe) || self.first_since_power_on;
        let mut filters = Vec::new();
        if commands {
            filters.push((topics::c2d_filter(&self.config.device_id), QoS::AtLeastOnce));
        }
        for f in [
            topics::METHODS_FILTER,
            topics::TWIN_RES_FILTER,
            topics::TWIN_DESIRED_FILTER,
        ] {
            filters.push((f.to_string(), QoS::AtMostOnce));
        }
        let mut list = heapless::Vec::new();
        for (filter, qos) in &filters {
            let mut topic_path = heapless::String::new();
            // Cannot fail: filters are at most 34 + 128 bytes, four of them.
            let _ = topic_path.push_str(filter);
            let _ = list.push(SubscribeTopic {
                topic_path,
                qos: *qos,
            });
        }
        let pid = self.allocate_pid();
        self.subscribe_pid = Some(pid);
        self.send(&Packet::Subscribe(Subscribe::new(pid, list)));
        self.subscribed = Subscribed {
            filters: filters.into_iter().map(|(f, _)| f).collect(),
            commands,
        };
        Ok(())
    }

    fn on_suback(&mut self, suback: Suback) -> Result<(), CloseReason> {
        if self.state != State::Subscribing || self.subscribe_pid != Some(suback.pid) {
            return Err(CloseReason::Protocol(format!(
                "SUBACK for packet id {} not sent",
                suback.pid.get()
            )));
        }
        if suback.return_codes.len() != self.subscribed.filters.len() {
            return Err(CloseReason::Protocol(format!(
                "SUBACK with {} return codes for {} filters",
                suback.return_codes.len(),
                self.subscribed.filters.len()
            )));
        }
        for (code, filter) in suback.return_codes.iter().zip(&self.subscribed.filters) {
            if *code == SubscribeReturnCodes::Failure {
                return Err(CloseReason::SubscribeRefused(filter.clone()));
            }
        }
        self.state = State::Ready;
        self.subscribe_pid = None;
        self.event(SessionEvent::Subscribed {
            commands: self.subscribed.commands,
        });
        self.get_twin_after_subscribe();
        Ok(())
    }

    /// The twin GET every session makes once subscribed: desired properties
    /// may have changed while offline, and the hub does not send the patches
    /// a device missed. Fault `no-twin-get` skips it on reconnects.
    fn get_twin_after_subscribe(&mut self) {
        if self.faults.has(Fault::NoTwinGet) && self.reconnect {
            return;
        }
        let _ = self.twin_get();
    }

    fn on_publish(&mut self, publish: &Publish<'_>) -> Result<(), CloseReason> {
        let pid = match publish.qospid {
            QosPid::AtMostOnce => None,
            QosPid::AtLeastOnce(pid) => Some(pid),
            QosPid::ExactlyOnce(_) => return Err(CloseReason::Protocol("QoS 2 PUBLISH".into())),
        };
        let topic = publish.topic_name;
        let inbound = match topics::classify(&self.config.device_id, topic) {
            Ok(inbound) => inbound,
            Err(TopicError::Unknown) => return Err(CloseReason::UnexpectedTopic(topic.into())),
            Err(TopicError::Malformed(why)) => {
                return Err(CloseReason::Malformed(format!("{why}: {topic:?}")))
            }
        };
        // The hub may publish only on what this session subscribed to (all
        // three non-command filters are always subscribed).
        if matches!(inbound, Inbound::Command { .. }) && !self.subscribed.commands {
            return Err(CloseReason::UnexpectedTopic(topic.into()));
        }
        match inbound {
            Inbound::Command { bag } => {
                return self.on_command(bag, publish.payload, publish.dup, pid)
            }
            Inbound::Method { name, rid } => {
                self.pending_methods.insert(rid.clone());
                self.event(SessionEvent::Method {
                    name,
                    rid,
                    payload: publish.payload.to_vec(),
                });
            }
            Inbound::TwinResponse {
                status,
                rid,
                version,
            } => match self.twin_requests.remove(&rid) {
                None => {
                    return Err(CloseReason::Protocol(format!(
                        "twin response for $rid={rid}, never asked"
                    )))
                }
                Some(TwinRequest::Get) => {
                    let twin = if status == 200 {
                        Some(parse_twin(publish.payload)?)
                    } else {
                        None
                    };
                    self.event(SessionEvent::Twin { rid, status, twin });
                }
                Some(TwinRequest::Report) => self.event(SessionEvent::Reported {
                    rid,
                    status,
                    version,
                }),
            },
            Inbound::Desired { version } => {
                let patch = parse_json(publish.payload, "desired patch")?;
                self.event(SessionEvent::Desired { version, patch });
            }
        }
        if let Some(pid) = pid {
            self.send(&Packet::Puback(pid));
        }
        Ok(())
    }

    fn on_command(
        &mut self,
        bag: Vec<(String, String)>,
        payload: &[u8],
        dup: bool,
        pid: Option<Pid>,
    ) -> Result<(), CloseReason> {
        let mid = bag
            .iter()
            .find(|(k, _)| k == "$.mid")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if mid.is_empty() || mid.len() > MAX_MID_LEN {
            return Err(CloseReason::Malformed(format!(
                "command without a usable $.mid ({} bytes)",
                mid.len()
            )));
        }
        // Fault ack-before-persist: the PUBACK leaves on receipt, before the
        // app applied the command and before its id is stored, so a power cut
        // now loses the command (CD-12).
        let ack_now = self.faults.has(Fault::AckBeforePersist);
        if ack_now {
            if let Some(pid) = pid {
                self.send(&Packet::Puback(pid));
            }
        }
        // Fault no-dedupe: an applied command is surfaced (applied) again.
        if self.applied.contains(&mid) && !self.faults.has(Fault::NoDedupe) {
            if let (false, Some(pid)) = (ack_now, pid) {
                self.send(&Packet::Puback(pid));
            }
            return Ok(());
        }
        let owed: Vec<Pid> = if ack_now {
            Vec::new()
        } else {
            pid.into_iter().collect()
        };
        // The same id twice before the app finished: applied once, both copies
        // acked after it.
        if let Some(pending) = self.pending_commands.iter_mut().find(|c| c.mid == mid) {
            pending.pids.extend(owed);
            return Ok(());
        }
        self.pending_commands.push(PendingCommand {
            mid: mid.clone(),
            pids: owed,
        });
        let expiry = bag
            .iter()
            .find(|(k, _)| k == "$.exp")
            .map(|(_, v)| v.clone());
        let (system_properties, properties) =
            bag.into_iter().partition(|(k, _)| k.starts_with("$."));
        self.event(SessionEvent::Command(Command {
            mid,
            expiry,
            properties,
            system_properties,
            payload: payload.to_vec(),
            redelivered: dup,
        }));
        Ok(())
    }

    fn check_connected(&self) -> Result<(), SessionError> {
        match self.state {
            State::Subscribing | State::Ready => Ok(()),
            State::Closed => Err(SessionError::Closed),
            State::Idle | State::AwaitConnack => Err(SessionError::NotConnected),
        }
    }

    fn keep_alive_ms(&self) -> Option<u64> {
        (self.config.keep_alive_secs > 0).then(|| u64::from(self.config.keep_alive_secs) * 1000)
    }

    fn allocate_pid(&mut self) -> Pid {
        // Skips ids still in flight; max_in_flight ≤ 1024 keeps this short.
        loop {
            let pid = self.next_pid;
            self.next_pid = pid + 1;
            if !self.in_flight.contains(&pid.get()) && self.subscribe_pid != Some(pid) {
                return pid;
            }
        }
    }

    fn allocate_rid(&mut self) -> u32 {
        let rid = self.next_rid;
        self.next_rid = self.next_rid.checked_add(1).unwrap_or(1);
        rid
    }

    fn publish_qos0(&mut self, topic: &str, payload: &[u8]) -> Result<(), SessionError> {
        let publish = Publish {
            dup: false,
            qospid: QosPid::AtMostOnce,
            retain: false,
            topic_name: topic,
            payload,
        };
        let bytes = frame::encode(&Packet::Publish(publish)).ok_or(SessionError::TooLarge)?;
        self.actions.push_back(Action::Send(bytes));
        Ok(())
    }

    /// Sends a fixed-size packet the session built (ack, ping, subscribe).
    fn send(&mut self, packet: &Packet<'_>) {
        if let Some(bytes) = frame::encode(packet) {
            self.actions.push_back(Action::Send(bytes));
        }
    }

    fn event(&mut self, event: SessionEvent) {
        self.actions.push_back(Action::Event(event));
    }

    fn close(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.inbuf = Vec::new();
        self.ping_sent_ms = None;
        self.actions.push_back(Action::Close(reason));
    }
}

fn parse_json(payload: &[u8], what: &str) -> Result<Value, CloseReason> {
    serde_json::from_slice(payload)
        .map_err(|e| CloseReason::Malformed(format!("{what} is not JSON: {e}")))
}

/// `{"desired": {...}, "reported": {...}}`, both with `$version`.
fn parse_twin(payload: &[u8]) -> Result<TwinDocument, CloseReason> {
    let Value::Object(mut doc) = parse_json(payload, "twin")? else {
        return Err(CloseReason::Malformed("twin is not a JSON object".into()));
    };
    let (Some(desired), Some(reported)) = (doc.remove("desired"), doc.remove("reported")) else {
        return Err(CloseReason::Malformed(
            "twin without desired and reported".into(),
        ));
    };
    let version = |v: &Value| v.get("$version").and_then(Value::as_i64);
    Ok(TwinDocument {
        desired_version: version(&desired),
        reported_version: version(&reported),
        desired,
        reported,
    })
}
