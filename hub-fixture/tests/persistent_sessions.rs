//! Persistent MQTT sessions, proven with devices nobody here wrote.
//!
//! Microsoft's device SDKs connect with CleanSession=0 and, after reconnecting
//! on their own, do not subscribe again: they rely on IoT Hub keeping the
//! session. The Azure IoT device SDK for Node.js (unmodified, its default retry
//! policy) and a paho-mqtt device that subscribes only once must keep getting
//! C2D commands, method calls and desired patches after the link drops, after
//! the hub is stopped abruptly and restarted on its data directory, and
//! after another connection with its identity evicts it.
//!
//! The devices reach the hub through a TCP relay the test controls: cutting
//! the relay's connections is the link dropping, and a restarted hub (on a new
//! ephemeral port) is reached through the same relay address.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::{expect_entry, write_creds, CredFiles, GUARD};
use hub_fixture::client::{ConnectOptions, DeviceClient};
use hub_fixture::hub::{HubConfig, HubFixture};
use hub_fixture::journal::Event;
use hub_fixture::store::NewMessage;
use hub_fixture::topics::Subscription;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// A TCP relay from a fixed loopback address to the current hub.
struct Relay {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            target: Arc::new(Mutex::new(target)),
            links: Arc::default(),
        };
        let (target, links) = (relay.target.clone(), relay.links.clone());
        tokio::spawn(async move {
            while let Ok((mut device, _)) = listener.accept().await {
                let to = *target.lock().unwrap();
                let link = tokio::spawn(async move {
                    if let Ok(mut hub) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut device, &mut hub).await;
                    }
                });
                links.lock().unwrap().push(link.abort_handle());
            }
        });
        relay
    }

    /// The link drops: every relayed connection is gone at once, both ways.
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn retarget(&self, to: SocketAddr) {
        *self.target.lock().unwrap() = to;
    }
}

/// A third-party device process printing one JSON event per line.
struct Peer {
    name: &'static str,
    _child: Child,
    events: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
}

impl Peer {
    fn spawn(name: &'static str, cmd: &mut Command) -> Peer {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{name} could not start: {e} (.ci/run installs the test peers)")
            });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str(&line).unwrap_or(json!({ "raw": line }));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Peer {
            name,
            _child: child,
            events,
            seen: Vec::new(),
        }
    }

    /// Waits for the device to report an event matching `pred`.
    async fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    if event["ev"] == "fatal" {
                        panic!("{}: {event}", self.name);
                    }
                    if pred(&event) {
                        return event;
                    }
                }
                Ok(None) | Err(_) => panic!(
                    "{}: no {what}; it reported:\n{}",
                    self.name,
                    self.seen
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

const DEVICE: &str = "sdk-dev";

fn hub_config(dir: &Path) -> HubConfig {
    HubConfig {
        // The devices dial 127.0.0.1 and name it in their CONNECT user name.
        host_names: vec!["127.0.0.1".into(), "localhost".into()],
        ..HubConfig::for_tests(dir)
    }
}

async fn start_hub(dir: &Path) -> HubFixture {
    HubFixture::start(hub_config(dir))
        .await
        .expect("hub starts")
}

/// Waits until the device holds all three subscriptions (however many
/// SUBSCRIBE packets it used).
async fn wait_subscribed(hub: &HubFixture, after: u64) {
    let mut missing = vec![
        format!("devices/{DEVICE}/messages/devicebound/#"),
        "$iothub/methods/POST/#".to_owned(),
        "$iothub/twin/PATCH/properties/desired/#".to_owned(),
    ];
    expect_entry(
        hub,
        after,
        "subscriptions to C2D, methods and desired",
        |e| {
            if let Event::Subscribed { filters } = &e.event {
                missing.retain(|m| !filters.contains(m));
            }
            missing.is_empty()
        },
    )
    .await;
}

/// Waits for the `nth` (1-based) connection of the device after `after` and
/// checks that it resumed the stored session.
async fn wait_resumed(hub: &HubFixture, after: u64, nth: usize) {
    let mut count = 0;
    let e = expect_entry(hub, after, "a reconnection", |e| {
        matches!(e.event, Event::Connected { .. }) && {
            count += 1;
            count == nth
        }
    })
    .await;
    assert!(
        matches!(
            e.event,
            Event::Connected {
                clean_session: false,
                session_present: true,
                ..
            }
        ),
        "the device reconnected with CleanSession=0 and the hub resumed its session: {e:?}"
    );
    expect_entry(hub, e.seq - 1, "the session's resumption", |r| {
        matches!(&r.event, Event::SessionResumed { subscriptions, .. }
            if subscriptions.contains(&Subscription::CloudToDevice)
                && subscriptions.contains(&Subscription::Methods)
                && subscriptions.contains(&Subscription::TwinDesired))
    })
    .await;
}

/// A command, a method call and a desired patch all reach the device.
async fn commands_reach(hub: &HubFixture, device: &mut Peer, round: &str) {
    let body = format!("cmd-{round}");
    hub.send_c2d(DEVICE, NewMessage::with_payload(body.clone()))
        .unwrap();
    device
        .expect(&format!("C2D {body}"), |e| {
            e["ev"] == "c2d" && e["body"] == *body
        })
        .await;
    let answer = hub
        .invoke_method(DEVICE, "ping", &json!({}), GUARD)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{round}: method answered {answer:?}");
    device
        .expect("the method call", |e| e["ev"] == "method")
        .await;
    let twin = hub
        .patch_desired(DEVICE, &json!({ "round": round }))
        .unwrap();
    let version = twin.desired_version;
    device
        .expect(&format!("desired version {version}"), |e| {
            e["ev"] == "desired" && e["version"] == version
        })
        .await;
}

struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    hub: HubFixture,
    relay: Relay,
    files: CredFiles,
    creds: hub_fixture::hub::DeviceCredentials,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let hub = start_hub(&data).await;
    let creds = hub.register_device(DEVICE).unwrap();
    let files = write_creds(dir.path(), &creds, DEVICE);
    let relay = Relay::start(hub.mqtt_addr()).await;
    Setup {
        _dir: dir,
        data,
        hub,
        relay,
        files,
        creds,
    }
}

/// The hub stops abruptly (the devices see their links die, not an orderly
/// close) and starts again on its data directory, behind the same address.
async fn restart(s: &mut Setup) {
    s.relay.cut();
    s.hub.shutdown();
    s.hub = start_hub(&s.data).await;
    s.relay.retarget(s.hub.mqtt_addr());
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn peer_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_node_sdk_keeps_its_commands_across_link_loss_hub_restart_and_eviction() {
    let mut s = setup().await;
    let sdk = repo_root().join("examples/azure-node-device");
    assert!(
        sdk.join("node_modules/azure-iot-device").is_dir(),
        "the Azure IoT device SDK is not installed: npm ci --prefix examples/azure-node-device"
    );
    let mut device = Peer::spawn(
        "Azure IoT device SDK for Node.js",
        Command::new("node")
            .arg(peer_script("node_sdk_device.js"))
            .arg(&sdk)
            .args(["127.0.0.1", &s.relay.addr.port().to_string(), DEVICE])
            .args([&s.files.cert, &s.files.key, &s.files.ca]),
    );
    device.expect("ready", |e| e["ev"] == "ready").await;
    wait_subscribed(&s.hub, 0).await;
    commands_reach(&s.hub, &mut device, "first").await;

    // 1. The link drops.
    let mark = s.hub.journal().len();
    s.relay.cut();
    wait_resumed(&s.hub, mark, 1).await;
    commands_reach(&s.hub, &mut device, "after-link-loss").await;

    // 2. The hub dies and comes back on its data directory.
    restart(&mut s).await;
    wait_resumed(&s.hub, 0, 1).await;
    commands_reach(&s.hub, &mut device, "after-hub-restart").await;

    // 3. Another connection with the device's identity evicts it.
    evict(&s).await;
    commands_reach(&s.hub, &mut device, "after-eviction").await;
    s.hub.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paho_device_that_subscribes_once_keeps_its_commands_across_link_loss_hub_restart_and_eviction(
) {
    let mut s = setup().await;
    let mut device = Peer::spawn(
        "paho-mqtt (clean_session=False)",
        Command::new("python3")
            .arg(peer_script("paho_persistent_device.py"))
            .args(["127.0.0.1", &s.relay.addr.port().to_string(), DEVICE])
            .args([&s.files.cert, &s.files.key, &s.files.ca]),
    );
    device
        .expect("a first connection without a session", |e| {
            e["ev"] == "connect" && e["session_present"] == false
        })
        .await;
    device.expect("ready", |e| e["ev"] == "ready").await;
    commands_reach(&s.hub, &mut device, "first").await;

    let mark = s.hub.journal().len();
    s.relay.cut();
    wait_resumed(&s.hub, mark, 1).await;
    device
        .expect("session-present in CONNACK", |e| {
            e["ev"] == "connect" && e["session_present"] == true
        })
        .await;
    commands_reach(&s.hub, &mut device, "after-link-loss").await;

    restart(&mut s).await;
    wait_resumed(&s.hub, 0, 1).await;
    commands_reach(&s.hub, &mut device, "after-hub-restart").await;

    evict(&s).await;
    commands_reach(&s.hub, &mut device, "after-eviction").await;
    s.hub.shutdown();
}

/// Another connection with the device's identity (CleanSession=0 too, so it
/// takes up the same session) evicts the device, then leaves; returns once
/// the device is back on its own, its session resumed.
async fn evict(s: &Setup) {
    let mark = s.hub.journal().len();
    let options = ConnectOptions {
        persistent: true,
        ..ConnectOptions::default()
    };
    let (other, ack) = DeviceClient::connect(s.hub.mqtt_addr(), &s.creds, options)
        .await
        .unwrap();
    assert!(
        ack.session_present,
        "the evicting connection found the session"
    );
    let _ = other.disconnect().await; // it may be evicted in turn already
                                      // The first connection after the mark is the evicting one; the device's
                                      // own reconnection comes after it.
    wait_resumed(&s.hub, mark, 2).await;
}

/// The other half of the contract: a device that asks for a clean session
/// gets one, and must subscribe again to be reached.
#[tokio::test]
async fn a_clean_session_after_a_persistent_one_starts_empty() {
    let s = setup().await;
    let persistent = ConnectOptions {
        persistent: true,
        ..ConnectOptions::default()
    };
    let (mut c, ack) = DeviceClient::connect(s.hub.mqtt_addr(), &s.creds, persistent.clone())
        .await
        .unwrap();
    assert!(!ack.session_present);
    c.subscribe_c2d(DEVICE).await.unwrap();
    c.disconnect().await.unwrap();
    let (c, ack) = DeviceClient::connect(s.hub.mqtt_addr(), &s.creds, persistent.clone())
        .await
        .unwrap();
    assert!(ack.session_present);
    c.disconnect().await.unwrap();

    let (c, ack) = DeviceClient::connect(s.hub.mqtt_addr(), &s.creds, ConnectOptions::default())
        .await
        .unwrap();
    assert!(!ack.session_present, "CleanSession=1 discards the session");
    c.disconnect().await.unwrap();
    let (c, ack) = DeviceClient::connect(s.hub.mqtt_addr(), &s.creds, persistent)
        .await
        .unwrap();
    assert!(
        !ack.session_present,
        "nothing was kept after the clean session"
    );
    c.disconnect().await.unwrap();
    s.hub.shutdown();
}
