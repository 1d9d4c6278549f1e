//! Helpers shared by the KR and OTA cases: session readiness, reported
//! properties, the case's capture decrypted with its key log, failure messages.

use hub_fixture::journal::{Event, JournalEntry};
use sacbench_capture::decrypt::{decrypt_capture, frame_at, PlainFlow};
use serde_json::Value;

use crate::case::{Case, Fail, DEVICE_ID, GUARD};

/// The device's first reported properties after `after`: it reports only
/// once its subscriptions (methods, twin, commands) are granted, so this is
/// "the session is ready".
pub(super) async fn ready(case: &Case, after: u64) -> Result<JournalEntry, Fail> {
    case.journal(
        after,
        "the device to report its properties (session ready)",
        |e| matches!(e.event, Event::TwinReported { .. }),
    )
    .await
}

/// Waits until the reported properties satisfy `done`, checking again at
/// every report after `after`. Returns them and the seq of the last report.
pub(super) async fn wait_reported(
    case: &Case,
    mut after: u64,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<(Value, u64), Fail> {
    let deadline = tokio::time::Instant::now() + 2 * GUARD;
    loop {
        let reported = case.hub.twin(DEVICE_ID)?.reported;
        if done(&reported) {
            return Ok((reported, after));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let next = case
            .hub
            .journal()
            .wait_for(after, left.min(GUARD), |e| {
                matches!(e.event, Event::TwinReported { .. })
            })
            .await;
        match next {
            Some(e) => after = e.seq,
            None => {
                return Err(Fail::new(
                    what.to_string(),
                    format!("last reported properties: {reported}"),
                    "the TwinReported entries of journal.jsonl and device.log",
                ))
            }
        }
    }
}

/// `(version, state, reason)` of the reported `firmware`.
pub(super) fn firmware(r: &Value) -> (String, String, String) {
    let f = &r["firmware"];
    let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
    (s("version"), s("state"), s("reason"))
}

/// The case's TLS flows that `wanted` selects (by client and server),
/// decrypted with the run's key log (TLS 1.3; what `tshark -o
/// tls.keylog_file` showed). A flow the bench cannot open (TLS 1.2, secrets
/// missing) is the bench's limit, never the device's fault: an error.
pub(super) fn decrypted_flows(
    case: &Case,
    wanted: impl Fn(std::net::SocketAddr, std::net::SocketAddr) -> bool,
) -> Result<Vec<PlainFlow>, Fail> {
    let flows = tls_flows(case, wanted)?;
    if let Some(f) = flows.iter().find(|f| f.undecrypted.is_some()) {
        return Err(Fail::bench(format!(
            "the flow {} → {} cannot be decrypted: {}",
            f.client,
            f.server,
            f.undecrypted.as_deref().unwrap_or_default()
        )));
    }
    Ok(flows)
}

/// The case's TLS flows that `wanted` selects, decrypted where they can be
/// (see [`PlainFlow::undecrypted`]): for what a TLS 1.2 flow shows in
/// cleartext too (its certificates).
pub(super) fn tls_flows(
    case: &Case,
    wanted: impl Fn(std::net::SocketAddr, std::net::SocketAddr) -> bool,
) -> Result<Vec<PlainFlow>, Fail> {
    let key_log = std::fs::read_to_string(case.rig_dir().join("tls-keys.log")).unwrap_or_default();
    decrypt_capture(&case.dir.join("capture.pcapng"), &key_log, wanted)
        .map_err(|e| Fail::bench(format!("decrypting the capture: {e}")))
}

/// An HTTP/1.1 message read from a decrypted stream.
#[derive(Debug, Clone)]
pub(super) struct HttpMessage {
    /// Frame of the body's last byte (of the head, when there is no body).
    pub frame: u64,
    /// `POST /path HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start_line: String,
    pub body: Vec<u8>,
}

/// The HTTP/1.1 messages of one direction of a decrypted flow, in order
/// (bodies by Content-Length, as EST and firmware use them).
pub(super) fn http_messages(flow: &PlainFlow, to_server: bool) -> Vec<HttpMessage> {
    let (bytes, ends) = flow.application_stream(to_server);
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head_len) = bytes[at..].windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[at..at + head_len]).into_owned();
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let body_at = at + head_len + 4;
        let end = (body_at + length).min(bytes.len());
        out.push(HttpMessage {
            frame: frame_at(&ends, end.saturating_sub(1)).unwrap_or_default(),
            start_line: head.lines().next().unwrap_or_default().to_owned(),
            body: bytes[body_at..end].to_vec(),
        });
        at = end;
    }
    out
}

/// The payloads of the MQTT PUBLISH packets in one direction of a decrypted
/// flow, with the frame each packet ended in.
pub(super) fn mqtt_payloads(flow: &PlainFlow, to_server: bool) -> Vec<(u64, Vec<u8>)> {
    use rumqttc::mqttbytes::v4::Packet;
    let (bytes, ends) = flow.application_stream(to_server);
    let mut buf = bytes::BytesMut::from(&bytes[..]);
    let mut out = Vec::new();
    while let Ok(packet) = Packet::read(&mut buf, usize::MAX) {
        if let Packet::Publish(p) = packet {
            let consumed = bytes.len() - buf.len();
            out.push((
                frame_at(&ends, consumed.saturating_sub(1)).unwrap_or_default(),
                p.payload.to_vec(),
            ));
        }
    }
    out
}

pub(super) fn fail(
    expected: impl Into<String>,
    seen: impl Into<String>,
    look_at: impl Into<String>,
) -> Fail {
    Fail::new(expected, seen, look_at)
}

// ---- KR helpers ----
