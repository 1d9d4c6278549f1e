//! CD self-tests (CD-03…CD-05, CD-07…CD-09): the hub's command queue is
//! checked with a scripted device client, so that a device passing CD-01…
//! is not passing because the hub is lax. Also the client plumbing MT-10/11
//! share: a `DeviceClient` whose sockets live in a rig namespace.

use std::future::Future;
use std::time::Duration;

use hub_fixture::client::{ConnectOptions, DeviceClient};
use hub_fixture::hub::{DeviceCredentials, HubConfig, HubFixture};
use hub_fixture::journal::{Event, JournalEntry};
use hub_fixture::store::NewMessage;
use sacbench_rig::{in_netns, Node};

use crate::case::{Case, Fail, DEVICE_ID};
use crate::model::Evidence;

/// How long a scripted client waits for one packet (a hung hub fails, never hangs).
const PACKET_WAIT: Duration = Duration::from_secs(10);

/// Runs `fut` on a thread inside `node`'s namespace: the sockets it creates
/// belong there for their whole life, so the hub (which listens on the rig's
/// address) is reached the way a device reaches it, and the returned client
/// can then be driven from the case's own task.
pub(crate) async fn in_ns<T: Send + 'static>(
    case: &Case,
    node: Node,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, Fail> {
    let path = case.rig.netns(node);
    let handle = tokio::runtime::Handle::current();
    let joined =
        tokio::task::spawn_blocking(move || in_netns(path, move || handle.block_on(fut))).await?;
    Ok(joined?)
}

/// A scripted client after CONNECT: the CONNACK's code (`Success` when accepted).
pub(crate) struct Session {
    pub client: DeviceClient,
    pub code: String,
}

impl Session {
    pub fn accepted(&self) -> bool {
        self.code == "Success"
    }
}

/// Connects `creds` from the DUT's namespace to `hub` (MQTT over mTLS).
/// `Ok(Err(why))` is a connection the hub refused or broke off.
pub(crate) async fn connect(
    case: &Case,
    hub_addr: std::net::SocketAddr,
    creds: &DeviceCredentials,
    client_id: Option<String>,
) -> Result<Result<Session, String>, Fail> {
    let creds = creds.clone();
    in_ns(case, Node::Dut, async move {
        let opts = ConnectOptions {
            client_id,
            ..ConnectOptions::default()
        };
        match DeviceClient::connect(hub_addr, &creds, opts).await {
            Ok((client, ack)) => Ok(Session {
                client,
                code: format!("{:?}", ack.code),
            }),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

/// The rig hub's address, with the DUT's own credentials.
pub(crate) async fn connect_dut(case: &Case) -> Result<Session, Fail> {
    let addr = case.hub.mqtt_addr();
    connect(case, addr, &case.credentials().clone(), None)
        .await?
        .map_err(|e| {
            Fail::new(
                "the fixture to accept a well-formed client with the device's own credential",
                format!("refused: {e}"),
                "the hub journal (positive control of the self-test)",
            )
        })
}

/// MQTT remaining-length encoding.
fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn mqtt_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A CONNECT packet, hand-encoded (the suite does not link an MQTT codec).
pub(crate) fn connect_packet(client_id: &str, user: &str) -> Vec<u8> {
    let mut body = Vec::new();
    mqtt_str("MQTT", &mut body);
    body.extend_from_slice(&[4, 0x82, 0, 0]); // 3.1.1; user name + clean session; no keep-alive
    mqtt_str(client_id, &mut body);
    mqtt_str(user, &mut body);
    let mut p = vec![0x10];
    remaining_length(body.len(), &mut p);
    p.extend(body);
    p
}

/// A QoS 0 PUBLISH, hand-encoded.
pub(crate) fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    mqtt_str(topic, &mut body);
    body.extend_from_slice(payload);
    let mut p = vec![0x30];
    remaining_length(body.len(), &mut p);
    p.extend(body);
    p
}

/// A C2D message with a fixed id (so journal and reports can be matched).
pub(crate) fn c2d(mid: &str, ttl: Option<Duration>) -> NewMessage {
    NewMessage {
        message_id: Some(mid.into()),
        payload: format!("set {mid}").into_bytes(),
        properties: vec![("case".into(), "cd".into())],
        ttl_ms: ttl.map(|t| t.as_millis() as i64),
    }
}

/// `$.mid` of a C2D topic's property bag.
pub(crate) fn topic_mid(topic: &str) -> String {
    let bag = topic.rsplit('/').next().unwrap_or("");
    hub_fixture::topics::parse_property_bag(bag)
        .into_iter()
        .find(|(k, _)| k == "$.mid")
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn feedback_of<'a>(entries: &'a [JournalEntry], mid: &str) -> Option<&'a JournalEntry> {
    entries
        .iter()
        .find(|e| matches!(&e.event, Event::Feedback { message_id, .. } if message_id == mid))
}

fn feedback_status(e: &JournalEntry) -> String {
    match &e.event {
        Event::Feedback { status, .. } => status.clone(),
        _ => String::new(),
    }
}

fn delivered(entries: &[JournalEntry], mid: &str) -> Vec<u64> {
    entries
        .iter()
        .filter(|e| matches!(&e.event, Event::C2dDelivered { message_id, .. } if message_id == mid))
        .map(|e| e.seq)
        .collect()
}

fn setup(what: &str) -> impl Fn(String) -> Fail + '_ {
    move |e| Fail::new(what.to_string(), format!("failed: {e}"), "the hub journal")
}

/// CD-03: TTL 1 h, the hub clock moved 2 h while offline: never delivered,
/// feedback `expired`. A sentinel enqueued afterwards must be the first
/// thing the device gets (delivery follows enqueue order, so an expired
/// message that leaked would come first) — no waiting for an absence.
pub(super) async fn cd03(case: &mut Case) -> Result<String, Fail> {
    let hub = case.hub.clone();
    hub.send_c2d(
        DEVICE_ID,
        c2d("cd03-ttl-1h", Some(Duration::from_secs(3600))),
    )?;
    hub.advance_clock(Duration::from_secs(2 * 3600))?;
    hub.send_c2d(DEVICE_ID, c2d("cd03-sentinel", None))?;
    let mut s = connect_dut(case).await?;
    s.client
        .subscribe_c2d(DEVICE_ID)
        .await
        .map_err(|e| setup("subscribing")(e.to_string()))?;
    let p = s
        .client
        .next_publish(PACKET_WAIT)
        .await
        .map_err(|e| setup("the sentinel to be delivered")(e.to_string()))?;
    let _ = s.client.puback(p.pkid).await;
    let first = topic_mid(&p.topic);
    let entries = hub.journal().entries();
    let fb = feedback_of(&entries, "cd03-ttl-1h");
    case.note(Evidence::journal(
        format!(
            "expired message: deliveries {:?}, feedback {}; first delivered: {first}",
            delivered(&entries, "cd03-ttl-1h"),
            fb.map(feedback_status).unwrap_or_else(|| "none".into())
        ),
        delivered(&entries, "cd03-ttl-1h")
            .into_iter()
            .chain(fb.map(|e| e.seq)),
    ));
    if first != "cd03-sentinel" || !delivered(&entries, "cd03-ttl-1h").is_empty() {
        return Err(Fail::new(
            "a message whose TTL passed while offline is never delivered",
            format!("the client got {first} first"),
            "journal.jsonl: c2d_delivered entries",
        ));
    }
    match fb.map(feedback_status).as_deref() {
        Some("expired") => Ok(
            "the 1 h message expired after 2 h (feedback expired); the sentinel came first".into(),
        ),
        other => Err(Fail::new(
            "feedback `expired` for the expired message",
            format!("feedback {}", other.unwrap_or("none")),
            "journal.jsonl: feedback entries",
        )),
    }
}

/// CD-04: TTL 48 h (the maximum), 47 h offline: delivered, feedback success.
pub(super) async fn cd04(case: &mut Case) -> Result<String, Fail> {
    let hub = case.hub.clone();
    hub.send_c2d(
        DEVICE_ID,
        c2d("cd04-ttl-48h", Some(Duration::from_secs(48 * 3600))),
    )?;
    hub.advance_clock(Duration::from_secs(47 * 3600))?;
    let mark = hub.journal().len();
    let mut s = connect_dut(case).await?;
    s.client
        .subscribe_c2d(DEVICE_ID)
        .await
        .map_err(|e| setup("subscribing")(e.to_string()))?;
    let p = s.client.next_publish(PACKET_WAIT).await.map_err(|e| {
        Fail::new(
            "a 48 h message still queued after 47 h to be delivered",
            format!("nothing delivered: {e}"),
            "journal.jsonl",
        )
    })?;
    let _ = s.client.puback(p.pkid).await;
    let mid = topic_mid(&p.topic);
    let fb = case
        .journal(mark, "feedback for the 48 h message", |e| {
            matches!(&e.event, Event::Feedback { message_id, .. } if message_id == "cd04-ttl-48h")
        })
        .await?;
    case.note(Evidence::journal(
        format!(
            "delivered {mid} after 47 h, feedback {}",
            feedback_status(&fb)
        ),
        [fb.seq],
    ));
    if mid != "cd04-ttl-48h" || feedback_status(&fb) != "success" {
        return Err(Fail::new(
            "the 48 h message delivered after 47 h, feedback success",
            format!("delivered {mid:?}, feedback {}", feedback_status(&fb)),
            "journal.jsonl",
        ));
    }
    Ok("48 h message delivered after 47 h offline, feedback success".into())
}

/// CD-05: 50 queued, the 51st refused (and journalled as refused).
pub(super) async fn cd05(case: &mut Case) -> Result<String, Fail> {
    let hub = case.hub.clone();
    for i in 0..50 {
        hub.send_c2d(DEVICE_ID, c2d(&format!("cd05-{i:02}"), None))
            .map_err(|e| {
                Fail::new(
                    "the first 50 commands accepted",
                    format!("command {} refused: {e}", i + 1),
                    "journal.jsonl",
                )
            })?;
    }
    let mark = hub.journal().len();
    let r = hub.send_c2d(DEVICE_ID, c2d("cd05-51st", None));
    let pending = hub.pending_c2d(DEVICE_ID)?.len();
    let refused = hub
        .journal()
        .since(mark)
        .into_iter()
        .find(|e| matches!(e.event, Event::C2dRefused { .. }));
    case.note(Evidence::journal(
        format!(
            "51st send: {}; {pending} pending",
            match &r {
                Ok(m) => format!("queued as {}", m.message_id),
                Err(e) => format!("refused ({e})"),
            }
        ),
        refused.iter().map(|e| e.seq),
    ));
    match (r, refused) {
        (Err(_), Some(_)) if pending == 50 => Ok("50 queued, the 51st refused".into()),
        (r, _) => Err(Fail::new(
            "the 51st command refused, 50 pending",
            format!(
                "51st: {}, {pending} pending",
                match r {
                    Ok(m) => format!("queued as {}", m.message_id),
                    Err(e) => format!("refused ({e})"),
                }
            ),
            "journal.jsonl: c2d_refused",
        )),
    }
}

/// CD-07: a client that never acks: delivered again on every new session
/// until the max delivery count (10), then dead-lettered with feedback
/// `deliveryCountExceeded`, and not delivered again.
pub(super) async fn cd07(case: &mut Case) -> Result<String, Fail> {
    let hub = case.hub.clone();
    hub.send_c2d(DEVICE_ID, c2d("cd07-never-acked", None))?;
    let mut deliveries = 0;
    for _ in 0..12 {
        // Dead-lettering may be journalled when the 10th session ends.
        if feedback_of(&hub.journal().entries(), "cd07-never-acked").is_some() {
            break;
        }
        let mark = hub.journal().len();
        let mut s = connect_dut(case).await?;
        s.client
            .subscribe_c2d(DEVICE_ID)
            .await
            .map_err(|e| setup("subscribing")(e.to_string()))?;
        // Delivered (after the SUBACK) or already dead-lettered: the hub
        // journals one of the two for this session.
        let e = case
            .journal(mark, "a delivery or the dead-lettering of the message", |e| {
                matches!(&e.event, Event::C2dDelivered { message_id, .. } | Event::Feedback { message_id, .. } if message_id == "cd07-never-acked")
            })
            .await?;
        if matches!(e.event, Event::Feedback { .. }) {
            break;
        }
        s.client
            .next_publish(PACKET_WAIT)
            .await
            .map_err(|e| setup("the delivery")(e.to_string()))?;
        deliveries += 1;
        // Drop without PUBACK: the session ends unacknowledged.
        drop(s);
    }
    let entries = hub.journal().entries();
    let fb = feedback_of(&entries, "cd07-never-acked");
    let seqs = delivered(&entries, "cd07-never-acked");
    case.note(Evidence::journal(
        format!(
            "{} deliveries, feedback {}",
            seqs.len(),
            fb.map(feedback_status).unwrap_or_else(|| "none".into())
        ),
        seqs.iter().copied().chain(fb.map(|e| e.seq)),
    ));
    match fb.map(feedback_status).as_deref() {
        Some("deliveryCountExceeded") if seqs.len() == 10 => Ok(format!(
            "dead-lettered after {deliveries} unacknowledged deliveries, feedback deliveryCountExceeded"
        )),
        other => Err(Fail::new(
            "10 deliveries, then dead-lettered with feedback deliveryCountExceeded",
            format!("{} deliveries, feedback {}", seqs.len(), other.unwrap_or("none")),
            "journal.jsonl: c2d_delivered and feedback entries",
        )),
    }
}

/// CD-08: hub stopped and started again on the same data directory with
/// commands queued: all delivered, in order. The rig's hub lives in this
/// process, so this uses a second fixture hub of its own (data in the case
/// directory, listening on the hub namespace's loopback). Weaker than a
/// kill -9: the hub is shut down and dropped, not killed mid-write.
pub(super) async fn cd08(case: &mut Case) -> Result<String, Fail> {
    let dir = case.dir.join("restart-hub");
    let start =
        |dir: std::path::PathBuf| async move { HubFixture::start(HubConfig::for_tests(dir)).await };
    let hub = in_ns(case, Node::Hub, start(dir.clone())).await??;
    let creds = hub.register_device(DEVICE_ID)?;
    let mids: Vec<String> = (0..5).map(|i| format!("cd08-{i}")).collect();
    for m in &mids {
        hub.send_c2d(DEVICE_ID, c2d(m, None))?;
    }
    hub.shutdown();
    drop(hub);
    let hub = in_ns(case, Node::Hub, start(dir.clone())).await??;
    let addr = hub.mqtt_addr();
    let s = in_ns(case, Node::Hub, async move {
        let opts = ConnectOptions::default();
        let (mut c, _) = DeviceClient::connect(addr, &creds, opts)
            .await
            .map_err(|e| e.to_string())?;
        // The hub answers SUBACK before it delivers: every command follows it.
        c.subscribe_c2d(DEVICE_ID)
            .await
            .map_err(|e| e.to_string())?;
        let mut topics = Vec::new();
        while topics.len() < 5 {
            let p = c
                .next_publish(PACKET_WAIT)
                .await
                .map_err(|e| e.to_string())?;
            c.puback(p.pkid).await.map_err(|e| e.to_string())?;
            topics.push(p.topic.clone());
        }
        Ok::<_, String>(topics)
    })
    .await?;
    let entries = hub.journal().entries();
    hub.shutdown();
    let got: Vec<String> = s
        .map_err(|e| {
            Fail::new(
                "the 5 commands queued before the restart delivered after it",
                format!("client: {e}"),
                format!("{}/journal.jsonl", dir.display()),
            )
        })?
        .iter()
        .map(|t| topic_mid(t))
        .collect();
    let refs: Vec<u64> = entries
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                Event::C2dDelivered { .. } | Event::HubStarted { .. }
            )
        })
        .map(|e| e.seq)
        .collect();
    case.note(Evidence::journal(
        format!(
            "restarted hub (journal {}/journal.jsonl) delivered {got:?}",
            dir.display()
        ),
        refs,
    ));
    if got != mids {
        return Err(Fail::new(
            "all commands queued before the restart delivered after it, in order",
            format!("delivered {got:?}"),
            format!("{}/journal.jsonl", dir.display()),
        ));
    }
    Ok("5 commands queued across a hub restart, all delivered in order".into())
}

/// Publishes a forged command on dut-1's command topic as `who`; the hub
/// must journal an ACL violation and close that session.
async fn forge(
    case: &Case,
    who: &str,
    creds: &DeviceCredentials,
    refs: &mut Vec<u64>,
    seen: &mut Vec<String>,
) -> Result<(), Fail> {
    let forged = format!("devices/{DEVICE_ID}/messages/devicebound/%24.mid=forged");
    let mark = case.hub.journal().len();
    let addr = case.hub.mqtt_addr();
    let mut s = connect(case, addr, creds, None)
        .await?
        .map_err(setup("the publisher to connect"))?;
    let _ = s.client.send_raw(&publish_packet(&forged, b"forged")).await;
    let closed = s.client.closed_by_hub(PACKET_WAIT).await;
    let acl = case
        .journal(mark, "an ACL violation for the forged command", |e| {
            matches!(e.event, Event::AclViolation { .. })
        })
        .await?;
    refs.push(acl.seq);
    seen.push(format!("{who}: closed={closed}"));
    if !closed {
        return Err(Fail::new(
            "a client publishing on the device's command topic is disconnected",
            format!("{who} stayed connected"),
            format!("journal.jsonl seq {}", acl.seq),
        ));
    }
    Ok(())
}

/// CD-09: nobody but the hub can put a command on the device's topic: a
/// second device publishing to `devices/dut-1/messages/devicebound/…` is
/// closed and journalled, the device itself publishing there too, and the
/// subscribed device's first delivery is the hub's own sentinel.
pub(super) async fn cd09(case: &mut Case) -> Result<String, Fail> {
    let hub = case.hub.clone();
    let other = hub.register_device("dut-2")?;
    let mut refs = Vec::new();
    let mut seen = Vec::new();
    // The device itself first: a second dut-1 session would replace the
    // subscribed one below (one session per device id).
    forge(
        case,
        DEVICE_ID,
        &case.credentials().clone(),
        &mut refs,
        &mut seen,
    )
    .await?;
    let mut victim = connect_dut(case).await?;
    victim
        .client
        .subscribe_c2d(DEVICE_ID)
        .await
        .map_err(|e| setup("subscribing")(e.to_string()))?;
    forge(case, "dut-2", &other, &mut refs, &mut seen).await?;
    hub.send_c2d(DEVICE_ID, c2d("cd09-sentinel", None))?;
    let p = victim
        .client
        .next_publish(PACKET_WAIT)
        .await
        .map_err(|e| setup("the sentinel to be delivered")(e.to_string()))?;
    let first = topic_mid(&p.topic);
    case.note(Evidence::journal(
        format!("{}; the device's first command: {first}", seen.join(", ")),
        refs,
    ));
    if first != "cd09-sentinel" {
        return Err(Fail::new(
            "only the hub's command reaches the device",
            format!("the device got {first:?} ({} bytes) first", p.payload.len()),
            "journal.jsonl",
        ));
    }
    Ok("forged publishes on the command topic closed the publishers; only the hub's command arrived".into())
}
