//! The field gateway on loopback: two emulated legacy devices (Modbus TCP,
//! and Modbus RTU on a socat pty pair), the `gateway` binary, the hub.
//! Identity translation, register values as telemetry, commands as
//! register writes only when mapped and in range, `mbpoll` as a real
//! third-party Modbus peer, bad mapping files, and a hub the gateway must
//! not trust (another CA, another name).
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use common::{expect_entry, start_hub, GUARD};
use hub_fixture::journal::Event;
use hub_fixture::store::NewMessage;

/// `gateway` and `modbus-leaf` are built into the same directory (the
/// latter by `cargo build -p modbus-leaf`, or any workspace build).
fn exe(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_gateway")).with_file_name(name);
    assert!(
        p.is_file(),
        "{} is not built: cargo build -p modbus-leaf (a workspace test run builds it)",
        p.display()
    );
    p
}

/// A child whose stderr lines arrive on a channel; killed when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line matching `pred` (lines before it are kept in `seen`).
    fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + GUARD;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(_) => panic!("no line for {what}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Every line so far without waiting.
    fn drain(&mut self) -> &[String] {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        &self.seen
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A socat pty pair; the two ends' paths.
fn pty_pair(dir: &Path) -> (Proc, PathBuf, PathBuf) {
    let (a, b) = (dir.join("leaf-tty"), dir.join("gw-tty"));
    let mut socat = Proc::spawn(
        Command::new("socat")
            .args(["-d", "-d"])
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display())),
    );
    socat.expect("socat's pty pair", |l| {
        l.contains("starting data transfer loop")
    });
    (socat, a, b)
}

fn mapping(tcp: &str, tty: &Path) -> String {
    format!(
        r#"[[leaf]]
id = "meter-a"
tcp = "{tcp}"
unit = 1

[[leaf.telemetry]]
name = "temperature"
register = 0
type = "i16"
scale = 0.1
poll_ms = 100

[[leaf.telemetry]]
name = "energy"
register = 4
table = "input"
type = "u32"
poll_ms = 100

[[leaf.command]]
name = "setpoint"
register = 10
type = "u16"
scale = 0.1
min = 5.0
max = 30.0

[[leaf]]
id = "pump-b"
rtu = "{tty}"
baud = 9600
unit = 7

[[leaf.telemetry]]
name = "level"
register = 2
type = "u16"
poll_ms = 100

[[leaf.command]]
name = "speed"
register = 20
type = "u16"
min = 0.0
max = 100.0
"#,
        tty = tty.display()
    )
}

fn telemetry_of(e: &hub_fixture::journal::JournalEntry, leaf: &str, key: &str) -> Option<f64> {
    match &e.event {
        Event::Telemetry { payload, .. } if e.device_id.as_deref() == Some(leaf) => {
            serde_json::from_str::<serde_json::Value>(payload)
                .ok()?
                .get(key)?
                .as_f64()
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_become_devices_and_only_mapped_commands_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub = start_hub(&d.join("hub")).await;

    // The legacy devices.
    let mut leaf_a = Proc::spawn(
        Command::new(exe("modbus-leaf"))
            .args(["--tcp", "127.0.0.1:0", "--unit", "1"])
            .args(["--set", "h0=215", "--set", "i4=1", "--set", "i5=34464"]),
    );
    let bound = leaf_a.expect("leaf A listening", |l| l.starts_with("leaf: unit 1 on "));
    let tcp = bound.rsplit(' ').next().unwrap().to_owned();
    let (_socat, leaf_tty, gw_tty) = pty_pair(d);
    let mut leaf_b = Proc::spawn(
        Command::new(exe("modbus-leaf"))
            .arg("--rtu")
            .arg(&leaf_tty)
            .args(["--baud", "9600", "--unit", "7", "--set", "h2=42"]),
    );
    leaf_b.expect("leaf B on its line", |l| l.starts_with("leaf: unit 7 on "));

    // The gateway's keystore: each leaf's own identity from the hub.
    let keystore = d.join("keystore");
    std::fs::create_dir(&keystore).unwrap();
    let mut ca = String::new();
    for leaf in ["meter-a", "pump-b"] {
        let c = hub.register_device(leaf).unwrap();
        std::fs::write(keystore.join(format!("{leaf}.cert.pem")), &c.cert_pem).unwrap();
        std::fs::write(keystore.join(format!("{leaf}.key.pem")), &c.key_pem).unwrap();
        ca = c.ca_pem;
    }
    std::fs::write(d.join("ca.pem"), ca).unwrap();
    std::fs::write(d.join("mapping.toml"), mapping(&tcp, &gw_tty)).unwrap();
    std::fs::write(
        d.join("gateway.toml"),
        format!(
            "mapping = \"mapping.toml\"\nkeystore = \"keystore\"\ntrust_anchor = \"ca.pem\"\n\
             hub_host = \"{}\"\nhub_mqtt = \"{}\"\nbuffer = 50\n",
            hub.host_name(),
            hub.mqtt_addr()
        ),
    )
    .unwrap();
    let mut gw = Proc::spawn(
        Command::new(exe("gateway"))
            .arg("--config")
            .arg(d.join("gateway.toml")),
    );

    // Each leaf is its own device at the hub, with its own certificate, and
    // its registers arrive as its telemetry (scaled; 32-bit high word first).
    for leaf in ["meter-a", "pump-b"] {
        expect_entry(&hub, 0, &format!("{leaf} connected"), |e| {
            e.device_id.as_deref() == Some(leaf) && matches!(e.event, Event::Connected { .. })
        })
        .await;
    }
    expect_entry(&hub, 0, "meter-a temperature 21.5", |e| {
        telemetry_of(e, "meter-a", "temperature") == Some(21.5)
    })
    .await;
    expect_entry(&hub, 0, "meter-a energy 100000", |e| {
        telemetry_of(e, "meter-a", "energy") == Some(100_000.0)
    })
    .await;
    expect_entry(&hub, 0, "pump-b level 42 (over RTU)", |e| {
        telemetry_of(e, "pump-b", "level") == Some(42.0)
    })
    .await;

    // mbpoll, a third-party Modbus client, writes leaf A's register; the
    // gateway reports the new value as A's telemetry.
    let port = tcp.rsplit(':').next().unwrap();
    let out = Command::new("mbpoll")
        .args([
            "-m",
            "tcp",
            "-a",
            "1",
            "-t",
            "4",
            "-r",
            "1",
            "-p",
            port,
            "-1",
            "127.0.0.1",
            "300",
        ])
        .output()
        .expect("mbpoll runs (apt-get install mbpoll)");
    assert!(
        out.status.success(),
        "mbpoll: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    expect_entry(
        &hub,
        0,
        "meter-a temperature 30.0 after mbpoll's write",
        |e| telemetry_of(e, "meter-a", "temperature") == Some(30.0),
    )
    .await;
    leaf_a.expect("mbpoll's write", |l| l.contains("register=0 words=[300]"));

    // Commands: mapped and in range → written; out of range or unmapped → refused, never written.
    hub.send_c2d(
        "meter-a",
        NewMessage::with_payload(r#"{"command":"setpoint","value":21.5}"#),
    )
    .unwrap();
    leaf_a.expect("setpoint written", |l| {
        l.contains("register=10 words=[215]")
    });
    gw.expect("register_written", |l| {
        l.contains("\"register_written\"") && l.contains("meter-a")
    });
    hub.send_c2d(
        "meter-a",
        NewMessage::with_payload(r#"{"command":"setpoint","value":99}"#),
    )
    .unwrap();
    gw.expect("out-of-range refused", |l| {
        l.contains("command_refused") && l.contains("outside")
    });
    hub.send_c2d(
        "meter-a",
        NewMessage::with_payload(r#"{"command":"reboot","value":1,"register":0}"#),
    )
    .unwrap();
    gw.expect("unmapped refused", |l| {
        l.contains("command_refused") && l.contains("not a command")
    });
    // A command for B goes to B only.
    hub.send_c2d(
        "pump-b",
        NewMessage::with_payload(r#"{"command":"speed","value":50}"#),
    )
    .unwrap();
    leaf_b.expect("speed written on B", |l| {
        l.contains("unit=7 register=20 words=[50]")
    });
    let a_writes: Vec<&String> = leaf_a
        .drain()
        .iter()
        .filter(|l| l.starts_with("leaf: write"))
        .collect();
    assert_eq!(
        a_writes.len(),
        2,
        "only mbpoll's and the setpoint: {a_writes:?}"
    );
    // Every command was acknowledged to the hub (refusals too: they are final).
    for n in 0..4 {
        expect_entry(&hub, 0, &format!("acknowledgement {n}"), {
            let mut seen = 0;
            move |e| {
                if matches!(e.event, Event::C2dAcked { .. }) {
                    seen += 1;
                }
                seen > n
            }
        })
        .await;
    }
}

#[test]
fn bad_mapping_files_get_one_error_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mapping.toml");
    let text = mapping("10.0.0.2:502", Path::new("/dev/ttyUSB0"))
        .replace("type = \"i16\"", "type = \"i24\"");
    std::fs::write(&file, &text).unwrap();
    let line = text.lines().position(|l| l.contains("i24")).unwrap() + 1;
    let out = Command::new(exe("gateway"))
        .arg("--check-mapping")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "gateway: {}:{line}: `leaf[0].telemetry[0].type`: ",
            file.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // A good one passes.
    std::fs::write(&file, mapping("10.0.0.2:502", Path::new("/dev/ttyUSB0"))).unwrap();
    let out = Command::new(exe("gateway"))
        .arg("--check-mapping")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// `--list-faults` prints the catalogue as the reference device does, read
/// the way xtask's fault matrix reads it (name, then comma-separated cases).
#[test]
fn the_fault_catalogue_names_the_gw_cases() {
    let out = Command::new(exe("gateway"))
        .arg("--list-faults")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let listed: Vec<(String, Vec<String>)> = text
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next().unwrap().to_owned();
            let cases = f.next().unwrap().split(',').map(str::to_owned).collect();
            (name, cases)
        })
        .collect();
    assert_eq!(listed.len(), field_gateway::FAULTS.len(), "{text}");
    for (f, (name, cases)) in field_gateway::FAULTS.iter().zip(&listed) {
        assert_eq!(
            (f.name, f.cases.to_vec()),
            (name.as_str(), cases.iter().map(String::as_str).collect()),
            "{text}"
        );
    }
    for case in ["GW-01", "GW-02", "GW-03", "GW-04", "GW-05"] {
        assert!(
            listed.iter().any(|(_, cs)| cs.iter().any(|c| c == case)),
            "{case} has no fault: {text}"
        );
    }
}

/// A command applied before a gateway restart is not applied again when the
/// hub delivers it anew (same `$.mid`, as after a lost PUBACK): the ids of
/// applied commands survive the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_command_is_not_written_twice_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub = start_hub(&d.join("hub")).await;
    let mut leaf =
        Proc::spawn(Command::new(exe("modbus-leaf")).args(["--tcp", "127.0.0.1:0", "--unit", "1"]));
    let bound = leaf.expect("leaf listening", |l| l.starts_with("leaf: unit 1 on "));
    let tcp = bound.rsplit(' ').next().unwrap().to_owned();
    std::fs::create_dir(d.join("keystore")).unwrap();
    let c = hub.register_device("meter-a").unwrap();
    std::fs::write(d.join("keystore/meter-a.cert.pem"), &c.cert_pem).unwrap();
    std::fs::write(d.join("keystore/meter-a.key.pem"), &c.key_pem).unwrap();
    std::fs::write(d.join("ca.pem"), &c.ca_pem).unwrap();
    let one_leaf = mapping(&tcp, Path::new("/dev/null"));
    let one_leaf = &one_leaf[..one_leaf.find("[[leaf]]\nid = \"pump-b\"").unwrap()];
    std::fs::write(d.join("mapping.toml"), one_leaf).unwrap();
    std::fs::write(
        d.join("gateway.toml"),
        format!(
            "mapping = \"mapping.toml\"\nkeystore = \"keystore\"\ntrust_anchor = \"ca.pem\"\n\
             hub_host = \"{}\"\nhub_mqtt = \"{}\"\n",
            hub.host_name(),
            hub.mqtt_addr()
        ),
    )
    .unwrap();
    let start = || {
        Proc::spawn(
            Command::new(exe("gateway"))
                .arg("--config")
                .arg(d.join("gateway.toml")),
        )
    };
    let command = || NewMessage {
        message_id: Some("mid-restart-1".into()),
        ..NewMessage::with_payload(r#"{"command":"setpoint","value":12.5}"#)
    };

    let gw = start();
    hub.send_c2d("meter-a", command()).unwrap();
    leaf.expect("the first delivery written", |l| {
        l.contains("register=10 words=[125]")
    });
    // Acknowledged (so its id was recorded first); only then the restart.
    expect_entry(&hub, 0, "the first delivery acknowledged", |e| {
        matches!(e.event, Event::C2dAcked { .. })
    })
    .await;
    drop(gw);

    // The same message again, to a restarted gateway.
    let mark = hub.journal().len();
    hub.send_c2d("meter-a", command()).unwrap();
    let mut gw = start();
    gw.expect("recognised as applied", |l| {
        l.contains("command_redelivered") && l.contains("mid-restart-1")
    });
    expect_entry(&hub, mark, "the redelivery acknowledged", |e| {
        matches!(e.event, Event::C2dAcked { .. })
    })
    .await;
    let writes: Vec<&String> = leaf
        .drain()
        .iter()
        .filter(|l| l.starts_with("leaf: write"))
        .collect();
    assert_eq!(writes.len(), 1, "written once: {writes:?}");
}

/// A gateway with one leaf (`meter-a`, its identity from `hub`) whose
/// configuration names `hub_host` and trusts `trust_anchor`.
fn one_leaf_gateway(
    d: &Path,
    hub: &hub_fixture::hub::HubFixture,
    hub_host: &str,
    trust_anchor: &str,
) -> Proc {
    std::fs::create_dir_all(d.join("keystore")).unwrap();
    let c = hub.register_device("meter-a").unwrap();
    std::fs::write(d.join("keystore/meter-a.cert.pem"), &c.cert_pem).unwrap();
    std::fs::write(d.join("keystore/meter-a.key.pem"), &c.key_pem).unwrap();
    std::fs::write(d.join("ca.pem"), trust_anchor).unwrap();
    let one_leaf = mapping("127.0.0.1:9", Path::new("/dev/null"));
    let one_leaf = &one_leaf[..one_leaf.find("[[leaf]]\nid = \"pump-b\"").unwrap()];
    std::fs::write(d.join("mapping.toml"), one_leaf).unwrap();
    let config = field_gateway::GatewayConfig {
        mapping: "mapping.toml".into(),
        keystore: "keystore".into(),
        trust_anchor: "ca.pem".into(),
        hub_host: hub_host.into(),
        hub_mqtt: hub.mqtt_addr(),
        buffer: 10,
        state_dir: "state".into(),
        faults: vec![],
    };
    std::fs::write(d.join("gateway.toml"), config.to_toml()).unwrap();
    Proc::spawn(
        Command::new(exe("gateway"))
            .arg("--config")
            .arg(d.join("gateway.toml")),
    )
}

/// The gateway's second failed attempt (so not a one-off), then: the hub
/// never had a session for the leaf.
async fn refused_twice(gw: &mut Proc, hub: &hub_fixture::hub::HubFixture, why: &str) -> String {
    let failed = |l: &str| l.contains("\"connect_failed\"") && l.contains("meter-a");
    let first = gw.expect("a failed connection", failed);
    gw.expect("a second failed connection", failed);
    assert!(
        first.to_lowercase().contains(why),
        "expected {why:?} in {first}"
    );
    let sessions: Vec<_> = hub
        .journal()
        .since(0)
        .into_iter()
        .filter(|e| matches!(e.event, Event::Connected { .. }))
        .collect();
    assert!(sessions.is_empty(), "the hub had sessions: {sessions:?}");
    assert!(
        !gw.drain().iter().any(|l| l.contains("\"connected\"")),
        "{:?}",
        gw.seen
    );
    first
}

/// A hub whose chain does not lead to the trust anchor is not spoken to:
/// the gateway trusts the hub's CA only (not the system's, not any other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub = start_hub(&d.join("hub")).await;
    let other = start_hub(&d.join("other-hub")).await;
    let other_ca = other.register_device("someone").unwrap().ca_pem;
    let mut gw = one_leaf_gateway(&d.join("gw"), &hub, "localhost", &other_ca);
    // Both CAs have the same name: the chain is built to the wrong one, whose
    // signature does not verify.
    refused_twice(&mut gw, &hub, "invalid peer certificate: badsignature").await;
}

/// A hub whose certificate does not carry the configured name is not
/// spoken to, though its chain is trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_under_another_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut config = hub_fixture::hub::HubConfig::for_tests(d.join("hub"));
    // The gateway dials `localhost`; the hub's certificate names only this.
    config.host_names = vec!["hub.sacbench.test".into()];
    let hub = common::start_hub_with(config).await;
    let ca = hub.register_device("someone").unwrap().ca_pem;
    let mut gw = one_leaf_gateway(&d.join("gw"), &hub, "localhost", &ca);
    refused_twice(&mut gw, &hub, "certificate not valid for name").await;
}
