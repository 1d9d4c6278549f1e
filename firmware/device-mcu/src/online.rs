//! The device's MQTT session over its open TLS connection (the IO shell
//! around `mqtt.rs`): CONNECT, CONNACK, SUBSCRIBE to the command topic,
//! then each command printed and, at QoS 1, acknowledged with PUBACK;
//! PINGREQ after half the keep-alive without sending, and the connection
//! given up when no PINGRESP comes within the keep-alive. Console lines
//! (`mqtt: …`) are what the rig waits on.

use core::fmt::Write;
use embedded_tls::blocking::TlsConnection;
use mqttrs::{decode_slice, ConnectReturnCode, Packet, QosPid, SubscribeReturnCodes};

use device_core::faults::{Fault, FaultSet};
use device_core::session::{AppliedIds, MAX_MID_LEN};

use crate::mqtt::{self, KEEP_ALIVE_SECS, SUBSCRIBE_PID};
use crate::provision::Provisioning;
use crate::tls::{Link, Suite};
use crate::uart::Uart;

/// The largest MQTT packet the device takes.
const RX: usize = 4096;
/// The most of a command's payload shown on the console.
const SHOWN: usize = 256;

type Tls<'a, 'b, 'c> = TlsConnection<'a, Link<'b, 'c>, Suite>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Subscribing,
    Ready,
}

fn send(con: &mut Uart, tls: &mut Tls<'_, '_, '_>, bytes: &[u8]) -> bool {
    match tls.write(bytes).and_then(|_| tls.flush()) {
        Ok(()) => true,
        Err(e) => {
            let _ = writeln!(con, "mqtt: send error {e:?}");
            false
        }
    }
}

/// Runs the session until the connection ends (closed, refused, dead, or a
/// protocol error); the caller closes TLS. Returns the uptime (ms) at
/// which the hub accepted the session (CONNACK), if it did: the reconnect
/// backoff resets only after a session that stayed up.
///
/// Commands are applied once per `$.mid` (the `$.mid` of the topic's
/// property bag, as the device contract says): `applied` — device-core's
/// bounded set of the last 128 ids, kept across sessions (in RAM: this
/// board cannot write its flash yet, so a power cut forgets it) — holds the
/// ids applied; a command whose id is in it is acknowledged, not applied
/// again, unless the image has fault `no-dedupe`. "Applied" is the console
/// line `mqtt: command mid=… applied`; a command without a usable `$.mid`
/// ends the session, as device-core's does.
pub fn session(
    con: &mut Uart,
    tls: &mut Tls<'_, '_, '_>,
    prov: &Provisioning,
    faults: FaultSet,
    applied: &mut AppliedIds,
) -> Option<u64> {
    let mut up_since = None;
    let mut out = [0u8; 512];
    let n = match mqtt::connect(prov.hub_name, prov.device_id, &mut out) {
        Ok(n) => n,
        Err(e) => {
            let _ = writeln!(con, "mqtt: cannot build CONNECT: {e:?}");
            return up_since;
        }
    };
    if !send(con, tls, &out[..n]) {
        return up_since;
    }
    let _ = writeln!(
        con,
        "mqtt: connect sent client_id={} user={}/{}/?api-version={} keep_alive={KEEP_ALIVE_SECS}s",
        prov.device_id,
        prov.hub_name,
        prov.device_id,
        mqtt::API_VERSION
    );
    let keep_ms = u64::from(KEEP_ALIVE_SECS) * 1000;
    let mut last_sent = tls.transport_mut().now_ms();
    let mut ping_sent: Option<u64> = None;
    let mut state = State::Connecting;
    let mut rx = [0u8; RX];
    let mut len = 0usize;
    let mut reported = false;
    loop {
        // Every whole packet received so far.
        loop {
            let frame = match mqtt::frame_len(&rx[..len]) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    let _ = writeln!(con, "mqtt: malformed packet from the hub: {e:?}");
                    return up_since;
                }
            };
            let packet = match decode_slice(&rx[..frame]) {
                Ok(Some(packet)) => packet,
                Ok(None) | Err(_) => {
                    let _ = writeln!(con, "mqtt: undecodable packet from the hub");
                    return up_since;
                }
            };
            let mut reply = None;
            let mut acked = None;
            match (state, packet) {
                (State::Connecting, Packet::Connack(ack)) => {
                    if ack.code != ConnectReturnCode::Accepted {
                        let _ =
                            writeln!(con, "mqtt: connection refused by the hub: {:?}", ack.code);
                        return up_since;
                    }
                    up_since = Some(tls.transport_mut().now_ms());
                    let _ = writeln!(
                        con,
                        "mqtt: connack accepted (session_present={})",
                        ack.session_present
                    );
                    match mqtt::subscribe_commands(prov.device_id, &mut out) {
                        Ok(n) => reply = Some(n),
                        Err(e) => {
                            let _ = writeln!(con, "mqtt: cannot build SUBSCRIBE: {e:?}");
                            return up_since;
                        }
                    }
                    state = State::Subscribing;
                }
                (State::Subscribing, Packet::Suback(ack)) if ack.pid.get() == SUBSCRIBE_PID => {
                    match ack.return_codes.first() {
                        Some(SubscribeReturnCodes::Success(qos)) => {
                            let _ = writeln!(
                                con,
                                "mqtt: subscribed devices/{}/messages/devicebound/# (granted qos {})",
                                prov.device_id,
                                mqtt::qos_number(*qos)
                            );
                            state = State::Ready;
                        }
                        _ => {
                            let _ = writeln!(con, "mqtt: subscription refused by the hub");
                            return up_since;
                        }
                    }
                }
                (State::Ready, Packet::Publish(p)) => {
                    let shown = &p.payload[..p.payload.len().min(SHOWN)];
                    let text = core::str::from_utf8(shown).unwrap_or("<not UTF-8>");
                    let _ = writeln!(
                        con,
                        "mqtt: command topic={} qos={} payload={:?} ({} B)",
                        p.topic_name,
                        mqtt::qos_number(p.qospid.qos()),
                        text,
                        p.payload.len()
                    );
                    let Some(mid) = mqtt::message_id(p.topic_name) else {
                        let _ = writeln!(
                            con,
                            "mqtt: command without a usable $.mid (at most {MAX_MID_LEN} B): closing"
                        );
                        return up_since;
                    };
                    if applied.contains(&mid) && !faults.has(Fault::NoDedupe) {
                        let _ = writeln!(
                            con,
                            "mqtt: command mid={mid} already applied: acknowledged, not applied again"
                        );
                    } else {
                        applied.insert(&mid);
                        let _ = writeln!(con, "mqtt: command mid={mid} applied");
                    }
                    match p.qospid {
                        QosPid::AtLeastOnce(pid) => {
                            match mqtt::encode(&Packet::Puback(pid), &mut out) {
                                Ok(n) => reply = Some(n),
                                Err(e) => {
                                    let _ = writeln!(con, "mqtt: cannot build PUBACK: {e:?}");
                                    return up_since;
                                }
                            }
                            acked = Some(pid.get());
                        }
                        QosPid::AtMostOnce => {}
                        QosPid::ExactlyOnce(_) => {
                            // Subscribed at QoS 1: a QoS 2 delivery breaks the grant.
                            let _ = writeln!(con, "mqtt: QoS 2 delivery beyond the granted QoS 1");
                            return up_since;
                        }
                    }
                }
                (_, Packet::Pingresp) if ping_sent.is_some() => {
                    ping_sent = None;
                    let _ = writeln!(con, "mqtt: pingresp");
                    if !reported {
                        // The RAM figures once the session is up and idle.
                        reported = true;
                        crate::report_memory(con);
                    }
                }
                (_, other) => {
                    let _ = writeln!(
                        con,
                        "mqtt: unexpected {:?} from the hub: closing",
                        other.get_type()
                    );
                    return up_since;
                }
            }
            rx.copy_within(frame..len, 0);
            len -= frame;
            if let Some(n) = reply {
                if !send(con, tls, &out[..n]) {
                    return up_since;
                }
                last_sent = tls.transport_mut().now_ms();
                if let Some(pid) = acked {
                    let _ = writeln!(con, "mqtt: puback pid={pid} sent");
                }
            }
        }

        // Keep-alive: ping after half of it without sending; a ping
        // unanswered for the whole of it means the connection is dead.
        let now = tls.transport_mut().now_ms();
        let deadline = match ping_sent {
            Some(at) => at + keep_ms,
            None => last_sent + keep_ms / 2,
        };
        if state == State::Ready && now >= deadline {
            if ping_sent.is_some() {
                let _ = writeln!(
                    con,
                    "mqtt: no PINGRESP within the keep-alive: connection dead"
                );
                return up_since;
            }
            let n = match mqtt::encode(&Packet::Pingreq, &mut out) {
                Ok(n) => n,
                Err(e) => {
                    let _ = writeln!(con, "mqtt: cannot build PINGREQ: {e:?}");
                    return up_since;
                }
            };
            if !send(con, tls, &out[..n]) {
                return up_since;
            }
            let _ = writeln!(con, "mqtt: pingreq");
            ping_sent = Some(now);
            last_sent = now;
            continue;
        }
        if state != State::Ready && now >= last_sent + keep_ms {
            let _ = writeln!(con, "mqtt: no answer from the hub within the keep-alive");
            return up_since;
        }

        // Decrypted bytes left over from the last record first; else wait
        // for the next record or the deadline (never inside a record read).
        if !tls.has_buffered_data() && !tls.transport_mut().wait_readable(deadline.max(now + 1)) {
            continue;
        }
        if len == RX {
            let _ = writeln!(con, "mqtt: packet from the hub over {RX} B");
            return up_since;
        }
        // One record at a time: a record without application data (a
        // NewSessionTicket) must not hold the loop past its deadlines, as
        // `read()` would (it waits for application data).
        if !tls.has_buffered_data() {
            match tls.read_one_record() {
                Ok(true) => {}
                Ok(false) => {
                    let _ = writeln!(con, "mqtt: connection closed by the hub");
                    return up_since;
                }
                Err(e) => {
                    let _ = writeln!(con, "mqtt: connection ended: {e:?}");
                    return up_since;
                }
            }
            if !tls.has_buffered_data() {
                continue;
            }
        }
        match tls.read(&mut rx[len..]) {
            Ok(0) => {
                let _ = writeln!(con, "mqtt: connection closed by the hub");
                return up_since;
            }
            Ok(n) => len += n,
            Err(e) => {
                let _ = writeln!(con, "mqtt: connection ended: {e:?}");
                return up_since;
            }
        }
    }
}
