//! The gateway's hub side: one mTLS MQTT session per leaf, under the leaf's
//! own identity, speaking Azure IoT Hub's MQTT device surface
//! (docs/device-contract.md: client id = device id, user name
//! `{hub}/{id}/?api-version=2021-04-12`, telemetry out at QoS 1, C2D in)
//! through rumqttc, a maintained MQTT client, over rustls.
//!
//! Readings always pass through the leaf's [`TelemetryBuffer`]: while the
//! session is up it is drained as fast as the hub acknowledges (at most
//! [`WINDOW`] unacknowledged); while it is down it holds the newest readings
//! (bounded, oldest dropped first). Each session is a fresh rumqttc client,
//! so rumqttc never replays anything on its own: readings handed to it and
//! not acknowledged when a session dies go back into the buffer (the
//! [`Outbox`]), so a reading is delivered at least once unless the bound
//! dropped it — and a dropped one is never delivered.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, Publish, QoS,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use serde_json::json;
use tokio::sync::Notify;

use crate::applied::AppliedCommands;
use crate::buffer::{Pushed, Reading, TelemetryBuffer};
use crate::identity::LeafIdentity;
use crate::mapping::Leaf;
use crate::southbound::Southbound;
use crate::{journal, translate, Faults};

/// MQTT keep-alive of the leaf sessions: rumqttc pings every period and
/// gives the session up when a ping is unanswered at the next one.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// The IoT Hub API version in the CONNECT user name.
pub const API_VERSION: &str = "2021-04-12";
/// TCP, TLS and CONNACK together, per attempt.
const CONNECT_TIMEOUT_SECS: u64 = 10;
/// IoT Hub's largest message (256 KB) plus its topic, both ways.
const MAX_PACKET: usize = 256 * 1024 + 1024;
/// Telemetry handed to the client and not yet acknowledged, at most. The
/// rest waits in the (bounded) buffer, not in the client's queue.
pub const WINDOW: usize = 32;
/// rumqttc's own in-flight limit, above [`WINDOW`] so it never holds a
/// publish back (packet ids then never collide: the hub acks in order).
const INFLIGHT: u16 = 100;
/// The client's request queue: the window's publishes, C2D acks, the
/// subscription — so a `try_*` request never finds it full.
const REQUESTS: usize = 2 * WINDOW + 8;
/// Reconnect backoff: equal jitter between half and all of min(cap, base·2ⁿ).
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(4);

/// What a leaf's session and its pollers share.
pub struct LeafLink {
    /// The leaf this link is the hub side of.
    pub leaf: Leaf,
    state: Mutex<LinkState>,
    wake: Notify,
    faults: Faults,
}

struct LinkState {
    connected: bool,
    buffer: TelemetryBuffer,
    next_seq: u64,
}

impl LeafLink {
    /// A link holding up to `capacity` readings while its session is down.
    pub fn new(leaf: Leaf, capacity: usize, faults: Faults) -> Arc<LeafLink> {
        Arc::new(LeafLink {
            leaf,
            state: Mutex::new(LinkState {
                connected: false,
                buffer: TelemetryBuffer::new(capacity),
                next_seq: 1,
            }),
            wake: Notify::new(),
            faults,
        })
    }

    /// A reading of `leaf` (this link's own, or another's under the
    /// `single-identity` fault) on its way to the hub.
    pub fn offer(&self, leaf: &str, name: &str, value: f64) {
        let mut s = self.state.lock().expect("link lock");
        let seq = s.next_seq;
        s.next_seq += 1;
        let name = if leaf == self.leaf.id {
            name.to_owned()
        } else {
            format!("{leaf}/{name}")
        };
        let reading = Reading { seq, name, value };
        if !s.connected && self.faults.no_buffer {
            journal(json!({"event": "discarded", "leaf": leaf, "seq": seq}));
            return;
        }
        let pushed = s.buffer.push(reading);
        if !s.connected {
            match pushed {
                Pushed::Held { held } => {
                    journal(json!({"event": "buffered", "leaf": leaf, "seq": seq, "held": held}))
                }
                Pushed::DroppedOldest {
                    dropped,
                    total_dropped,
                } => journal(json!({"event": "dropped", "leaf": leaf, "seq": dropped.seq,
                                    "dropped_total": total_dropped})),
                Pushed::Discarded => {}
            }
        }
        drop(s);
        self.wake.notify_one();
    }

    fn set_connected(&self, up: bool) {
        self.state.lock().expect("link lock").connected = up;
    }

    /// Up to `n` of the oldest held readings, and the dropped count so far.
    fn take_ready(&self, n: usize) -> (Vec<Reading>, u64) {
        let mut s = self.state.lock().expect("link lock");
        (s.buffer.take(n), s.buffer.dropped())
    }

    /// Unacknowledged readings back into the buffer, oldest first.
    fn requeue(&self, unacked: Vec<Reading>) {
        let mut s = self.state.lock().expect("link lock");
        let held = s.buffer.drain();
        for r in unacked.into_iter().chain(held) {
            s.buffer.push(r);
        }
    }
}

/// Where the hub is and who the leaf is.
#[derive(Clone)]
pub struct HubTarget {
    /// The hub's DNS name: dialled (through the system's resolver, as any
    /// IoT Hub device reaches its hub), sent as SNI, checked in its certificate.
    pub host: String,
    /// The hub's MQTT port.
    pub port: u16,
    /// The leaf's identity.
    pub identity: LeafIdentity,
    /// The leaf's TLS configuration ([`LeafIdentity::tls_config`]).
    pub tls: Arc<rustls::ClientConfig>,
}

impl HubTarget {
    /// The session's options: the device contract's CONNECT, manual acks
    /// (a command is acknowledged after it is applied, never before).
    fn options(&self) -> MqttOptions {
        let id = &self.identity.device_id;
        let mut o = MqttOptions::new(id.clone(), self.host.clone(), self.port);
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            self.tls.clone(),
        )));
        o.set_keep_alive(KEEP_ALIVE);
        o.set_clean_session(true);
        o.set_credentials(user_name(&self.host, id), "");
        o.set_manual_acks(true);
        o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        o.set_inflight(INFLIGHT);
        o
    }
}

/// The CONNECT user name IoT Hub expects.
pub fn user_name(hub_host: &str, device_id: &str) -> String {
    format!("{hub_host}/{device_id}/?api-version={API_VERSION}")
}

/// The leaf's C2D subscription.
pub fn c2d_filter(device_id: &str) -> String {
    format!("devices/{device_id}/messages/devicebound/#")
}

/// The leaf's telemetry topic, with the content type and encoding IoT Hub
/// routes JSON by.
pub fn telemetry_topic(device_id: &str) -> String {
    format!("devices/{device_id}/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8")
}

/// A C2D topic's property bag (`devices/{id}/messages/devicebound/{bag}`,
/// URL-encoded); empty when the topic has none.
pub fn c2d_properties(topic: &str) -> Vec<(String, String)> {
    topic
        .split_once("/messages/devicebound/")
        .map(|(_, bag)| {
            let bag = bag.strip_prefix('?').unwrap_or(bag);
            form_urlencoded::parse(bag.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The readings one session has handed its client, until the hub
/// acknowledges them. Sans-IO: the session feeds it the client's events.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Handed to the client, no packet id yet, in the order handed.
    queued: VecDeque<Reading>,
    /// Sent, by packet id.
    inflight: BTreeMap<u16, Reading>,
}

impl Outbox {
    /// How many more readings may be handed to the client.
    pub fn room(&self) -> usize {
        WINDOW.saturating_sub(self.queued.len() + self.inflight.len())
    }

    /// A reading about to be handed to the client.
    pub fn queue(&mut self, r: Reading) {
        self.queued.push_back(r);
    }

    /// The client sent a publish as `pkid`: it is the oldest queued one
    /// (the client sends requests in the order they were made, and only
    /// telemetry is published).
    pub fn sent(&mut self, pkid: u16) {
        if let Some(r) = self.queued.pop_front() {
            self.inflight.insert(pkid, r);
        }
    }

    /// The hub acknowledged `pkid`; true if it was one of ours.
    pub fn acked(&mut self, pkid: u16) -> bool {
        self.inflight.remove(&pkid).is_some()
    }

    /// Everything not acknowledged, oldest first.
    pub fn unacked(self) -> Vec<Reading> {
        let mut all: Vec<Reading> = self.inflight.into_values().chain(self.queued).collect();
        all.sort_by_key(|r| r.seq);
        all
    }
}

/// Runs the leaf's session for ever: connect, serve, and after any loss
/// reconnect with backoff.
pub async fn run_session(
    link: Arc<LeafLink>,
    hub: HubTarget,
    southbound: Arc<Southbound>,
    mut seen: AppliedCommands,
) {
    let id = link.leaf.id.clone();
    let mut attempt = 0u32;
    loop {
        let (client, mut events) = AsyncClient::new(hub.options(), REQUESTS);
        events
            .network_options
            .set_connection_timeout(CONNECT_TIMEOUT_SECS);
        // The first poll connects: TCP, TLS (chain and name checked), CONNECT, CONNACK.
        match events.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                attempt = 0;
                journal(json!({"event": "connected", "leaf": id,
                               "hub": format!("{}:{}", hub.host, hub.port)}));
                let why = serve(&link, client, events, &southbound, &mut seen).await;
                journal(json!({"event": "disconnected", "leaf": id, "reason": why}));
            }
            Ok(other) => journal(
                json!({"event": "connect_failed", "leaf": id, "error": format!("{other:?} before CONNACK")}),
            ),
            Err(ConnectionError::ConnectionRefused(code)) => journal(
                json!({"event": "connect_refused", "leaf": id, "code": format!("{code:?}")}),
            ),
            Err(e) => {
                journal(json!({"event": "connect_failed", "leaf": id, "error": e.to_string()}))
            }
        }
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// Equal jitter; the jitter comes from the clock's nanoseconds (no need for
/// a cryptographic source to spread reconnects).
fn backoff(attempt: u32) -> Duration {
    let full = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    full / 2 + full.mul_f64((nanos % 1000) as f64 / 2000.0)
}

/// One live session; returns why it ended. The event loop is polled here
/// only (never cancelled mid-write); telemetry is handed to the client by
/// a task of its own, within the outbox's window.
async fn serve(
    link: &Arc<LeafLink>,
    client: AsyncClient,
    mut events: EventLoop,
    southbound: &Southbound,
    seen: &mut AppliedCommands,
) -> String {
    let id = link.leaf.id.clone();
    if let Err(e) = client.try_subscribe(c2d_filter(&id), QoS::AtLeastOnce) {
        return format!("subscribing to C2D: {e}");
    }
    link.set_connected(true);
    let outbox = Arc::new(Mutex::new(Outbox::default()));
    let room = Arc::new(Notify::new());
    let publisher = tokio::spawn(publish_telemetry(
        link.clone(),
        client.clone(),
        outbox.clone(),
        room.clone(),
    ));
    let why = loop {
        match events.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                outbox.lock().expect("outbox lock").sent(pkid)
            }
            Ok(Event::Incoming(Incoming::PubAck(a))) => {
                if outbox.lock().expect("outbox lock").acked(a.pkid) {
                    room.notify_one();
                }
            }
            Ok(Event::Incoming(Incoming::SubAck(a))) => {
                if a.return_codes.contains(&SubscribeReasonCode::Failure) {
                    break "the hub refused the C2D subscription".into();
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                if let Err(e) = on_command(link, &client, southbound, seen, p).await {
                    break e;
                }
            }
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    publisher.abort();
    let _ = publisher.await;
    link.set_connected(false);
    let outbox = std::mem::take(&mut *outbox.lock().expect("outbox lock"));
    link.requeue(outbox.unacked());
    why
}

/// Hands held readings to the client while the window has room; waits for
/// new readings or acknowledgements otherwise.
async fn publish_telemetry(
    link: Arc<LeafLink>,
    client: AsyncClient,
    outbox: Arc<Mutex<Outbox>>,
    room: Arc<Notify>,
) {
    let topic = telemetry_topic(&link.leaf.id);
    loop {
        let free = outbox.lock().expect("outbox lock").room();
        let (ready, dropped) = link.take_ready(free);
        if ready.is_empty() {
            // Notify keeps a permit for a wake that came before this wait.
            tokio::select! {
                _ = link.wake.notified() => {}
                _ = room.notified() => {}
            }
            continue;
        }
        for r in ready {
            let body = translate::telemetry_body(&r.name, r.value, r.seq, dropped);
            // Queued before it is handed over, so the client's "sent" event
            // always finds it.
            outbox.lock().expect("outbox lock").queue(r);
            if client
                .publish(topic.clone(), QoS::AtLeastOnce, false, body.to_string())
                .await
                .is_err()
            {
                // The session is over; `serve` requeues what the outbox holds.
                return;
            }
        }
    }
}

/// A C2D message for the leaf: written only if the mapping allows it, and
/// acknowledged after the write (or the refusal), never before.
async fn on_command(
    link: &LeafLink,
    client: &AsyncClient,
    southbound: &Southbound,
    seen: &mut AppliedCommands,
    p: Publish,
) -> Result<(), String> {
    let id = &link.leaf.id;
    let mid = c2d_properties(&p.topic)
        .into_iter()
        .find(|(k, _)| k == "$.mid")
        .map(|(_, v)| v)
        .unwrap_or_default();
    if !mid.is_empty() && seen.contains(&mid) {
        journal(json!({"event": "command_redelivered", "leaf": id, "mid": mid}));
        return ack(client, &p);
    }
    match translate::decide(&link.leaf, &p.payload, link.faults.unchecked_commands) {
        Err(refusal) => {
            journal(json!({"event": "command_refused", "leaf": id, "mid": mid,
                           "command": refusal.command, "reason": refusal.reason}));
        }
        Ok(w) => {
            if let Err(e) = southbound.write(w.register, w.words.clone()).await {
                // Not applied: no PUBACK, so the hub delivers it again.
                journal(json!({"event": "write_failed", "leaf": id, "mid": mid, "error": e}));
                return Ok(());
            }
            journal(json!({"event": "register_written", "leaf": id, "mid": mid,
                           "command": w.command, "register": w.register, "words": w.words}));
        }
    }
    // Durably recorded before the PUBACK: a restart in between sees a
    // redelivery as already applied.
    if !mid.is_empty() {
        if let Err(e) = seen.record(&mid) {
            journal(
                json!({"event": "state_write_failed", "leaf": id, "mid": mid, "error": e.to_string()}),
            );
            return Ok(());
        }
    }
    ack(client, &p)
}

/// The PUBACK, through the client's queue (never full: see [`REQUESTS`]).
fn ack(client: &AsyncClient, p: &Publish) -> Result<(), String> {
    client.try_ack(p).map_err(|e| format!("PUBACK: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(seq: u64) -> Reading {
        Reading {
            seq,
            name: "t".into(),
            value: 0.0,
        }
    }

    #[test]
    fn the_outbox_returns_what_the_hub_did_not_acknowledge_oldest_first() {
        let mut o = Outbox::default();
        for s in 1..=4 {
            o.queue(r(s));
        }
        assert_eq!(o.room(), WINDOW - 4);
        o.sent(7);
        o.sent(8);
        o.sent(9);
        assert!(o.acked(8));
        assert!(!o.acked(8), "acknowledged once");
        assert!(!o.acked(100), "not ours");
        assert_eq!(o.room(), WINDOW - 3);
        let seqs: Vec<u64> = o.unacked().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 3, 4], "1 and 3 in flight, 4 never sent");
    }

    #[test]
    fn the_window_bounds_what_the_client_holds() {
        let mut o = Outbox::default();
        for s in 0..WINDOW as u64 {
            o.queue(r(s));
        }
        assert_eq!(o.room(), 0);
    }

    #[test]
    fn the_contract_surface() {
        assert_eq!(
            user_name("hub.sacbench.test", "meter-a"),
            "hub.sacbench.test/meter-a/?api-version=2021-04-12"
        );
        assert_eq!(
            c2d_filter("meter-a"),
            "devices/meter-a/messages/devicebound/#"
        );
        assert!(telemetry_topic("meter-a").starts_with("devices/meter-a/messages/events/"));
        let bag = c2d_properties(
            "devices/meter-a/messages/devicebound/%24.mid=m%2F1&%24.to=%2Fdevices%2Fmeter-a&cmd=a+b",
        );
        assert_eq!(
            bag,
            [
                ("$.mid".to_string(), "m/1".to_string()),
                ("$.to".into(), "/devices/meter-a".into()),
                ("cmd".into(), "a b".into())
            ]
        );
        assert!(c2d_properties("devices/meter-a/messages/devicebound/").is_empty());
        assert!(c2d_properties("elsewhere").is_empty());
    }
}
