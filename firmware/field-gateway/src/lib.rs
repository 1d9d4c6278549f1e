//! The field gateway: legacy Modbus devices (leaves) on its local side, the
//! hub on the other. Each leaf is its own device at the hub — the gateway
//! holds one identity per leaf in its keystore and opens one mTLS MQTT
//! session per leaf (identity translation). Register values become the
//! leaf's telemetry; a C2D command for a leaf becomes a register write only
//! if the mapping has the command and the value is in range; anything else
//! is refused and journalled, never written. While the hub is unreachable,
//! telemetry is buffered (bounded, oldest dropped first, counted).
//!
//! Pure parts: [`mapping`] (the mapping file), [`translate`] (registers ⇄
//! values, command ⇄ write), [`buffer`], [`applied`]. IO shells:
//! [`southbound`] (Modbus), [`northbound`] (hub sessions on rumqttc, TLS from
//! [`identity`]). The gateway's journal is one JSON object per line on
//! stderr, prefixed `gateway: `, so a bench reads it like any device console.
//!
//! A device, not a test tool: nothing of the fixture hub is linked in
//! (`tests/dependencies.rs` keeps it so).
#![forbid(unsafe_code)]

pub mod applied;
pub mod buffer;
pub mod identity;
pub mod mapping;
pub mod northbound;
pub mod southbound;
pub mod translate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

pub use device_core::faults::FaultSwitch;
use identity::LeafIdentity;
use mapping::{Endpoint, Mapping};
use northbound::{HubTarget, LeafLink};
use southbound::Southbound;

/// The reference gateway's fault switches and the GW cases each must fail
/// (the same type as the reference device's catalogue).
pub const FAULTS: &[FaultSwitch] = &[
    FaultSwitch {
        name: "expose-modbus",
        effect: "proxies Modbus TCP to the first TCP leaf on port 502 of every address, hub side included",
        cases: &["GW-01", "GW-04"],
    },
    FaultSwitch {
        name: "single-identity",
        effect: "sends every leaf's telemetry through the first leaf's session and identity",
        cases: &["GW-02"],
    },
    FaultSwitch {
        name: "unchecked-commands",
        effect: "writes unmapped commands that name a register, and out-of-range values",
        cases: &["GW-03"],
    },
    FaultSwitch {
        name: "no-buffer",
        effect: "throws away readings taken while the hub is unreachable",
        cases: &["GW-05"],
    },
];

/// The switched-on faults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// `expose-modbus`.
    pub expose_modbus: bool,
    /// `single-identity`.
    pub single_identity: bool,
    /// `unchecked-commands`.
    pub unchecked_commands: bool,
    /// `no-buffer`.
    pub no_buffer: bool,
}

impl Faults {
    /// The faults `names` switch on; an unknown name is an error listing the known ones.
    pub fn parse(names: &[String]) -> Result<Faults, String> {
        let mut f = Faults::default();
        for n in names {
            match n.as_str() {
                "expose-modbus" => f.expose_modbus = true,
                "single-identity" => f.single_identity = true,
                "unchecked-commands" => f.unchecked_commands = true,
                "no-buffer" => f.no_buffer = true,
                other => {
                    let known: Vec<&str> = FAULTS.iter().map(|f| f.name).collect();
                    return Err(format!(
                        "unknown fault {other:?}; known: {}",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// One gateway journal entry: a JSON line on stderr.
pub fn journal(v: Value) {
    eprintln!("gateway: {v}");
}

/// `gateway.toml`: where the hub is, the keystore, the mapping. One type,
/// read by the gateway and written (with `toml`) by the rig that starts it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The mapping file (relative to this file).
    pub mapping: PathBuf,
    /// One identity per leaf: `<leaf id>.cert.pem` and `<leaf id>.key.pem`.
    pub keystore: PathBuf,
    /// The hub's CA certificate (PEM).
    pub trust_anchor: PathBuf,
    /// The hub's host name: dialled (resolved as any device resolves its
    /// hub), sent as SNI, checked in the hub's certificate.
    pub hub_host: String,
    /// The hub's MQTT endpoint. Its port is the one dialled; the address is
    /// where `hub_host` should resolve to (the bench's rigs resolve it so),
    /// kept for the file's readers.
    pub hub_mqtt: SocketAddr,
    /// Readings held per leaf while the hub is unreachable.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// Where the gateway keeps what must survive a restart (the ids of
    /// applied commands, per leaf).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Fault switches to turn on ([`FAULTS`]); empty for a correct gateway.
    #[serde(default)]
    pub faults: Vec<String>,
}

fn default_buffer() -> usize {
    1000
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}

impl GatewayConfig {
    /// The file's text (TOML, its strings escaped as TOML escapes them).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a gateway configuration is plain TOML")
    }

    /// Reads `path`; relative paths inside resolve against its folder.
    pub fn load(path: &Path) -> Result<GatewayConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut c: GatewayConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut c.mapping,
            &mut c.keystore,
            &mut c.trust_anchor,
            &mut c.state_dir,
        ] {
            *p = base.join(&*p);
        }
        Ok(c)
    }
}

/// Runs the gateway until the process ends. Setup problems (mapping,
/// keystore, trust anchor, faults) are returned before anything starts.
pub async fn run(config: GatewayConfig) -> Result<(), String> {
    let faults = Faults::parse(&config.faults)?;
    let mapping = Mapping::load(&config.mapping).map_err(|e| e.to_string())?;
    let ca_pem = identity::read(&config.trust_anchor)?;
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| format!("{}: {e}", config.state_dir.display()))?;
    let mut links = Vec::new();
    for leaf in &mapping.leaves {
        let identity = LeafIdentity::load(&config.keystore, &leaf.id)?;
        let tls = identity.tls_config(&ca_pem)?;
        let hub = HubTarget {
            host: config.hub_host.clone(),
            port: config.hub_mqtt.port(),
            identity,
            tls,
        };
        let link = LeafLink::new(leaf.clone(), config.buffer, faults);
        let southbound = Arc::new(Southbound::new(leaf.endpoint.clone(), leaf.unit));
        let path = config.state_dir.join(format!("{}.applied", leaf.id));
        let applied = applied::AppliedCommands::open(path.clone())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        links.push((link, hub, southbound, Some(applied)));
    }
    journal(
        json!({"event": "started", "leaves": mapping.leaves.iter().map(|l| &l.id).collect::<Vec<_>>(),
                   "faults": config.faults}),
    );
    if faults.expose_modbus {
        if let Some(Endpoint::Tcp(leaf)) = mapping.leaves.first().map(|l| l.endpoint.clone()) {
            tokio::spawn(expose_modbus(leaf));
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    let heads: Vec<Arc<LeafLink>> = links.iter().map(|l| l.0.clone()).collect();
    for (i, (link, hub, southbound, applied)) in links.iter_mut().enumerate() {
        // Under `single-identity` every leaf's readings go to the first link.
        let (sink, session) = match (faults.single_identity, i) {
            (true, 0) | (false, _) => (link.clone(), true),
            (true, _) => (heads[0].clone(), false),
        };
        for point in &link.leaf.telemetry {
            tasks.spawn(poll(
                link.leaf.id.clone(),
                point.clone(),
                southbound.clone(),
                sink.clone(),
            ));
        }
        if session {
            let applied = applied.take().expect("opened above");
            tasks.spawn(northbound::run_session(
                link.clone(),
                hub.clone(),
                southbound.clone(),
                applied,
            ));
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Reads one telemetry point every `poll_ms` and offers it to the hub side.
async fn poll(
    leaf: String,
    point: mapping::TelemetryPoint,
    southbound: Arc<Southbound>,
    sink: Arc<LeafLink>,
) {
    let mut tick =
        tokio::time::interval(std::time::Duration::from_millis(point.poll_ms.get().into()));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match southbound
            .read(point.table, point.register, point.value_type.words())
            .await
        {
            Ok(words) => {
                failing = false;
                if let Some(v) = translate::point_value(&point, &words) {
                    sink.offer(&leaf, &point.name, v);
                }
            }
            Err(e) if !failing => {
                // Once per outage, not once per poll.
                failing = true;
                journal(
                    json!({"event": "modbus_error", "leaf": leaf, "point": point.name, "error": e}),
                );
            }
            Err(_) => {}
        }
    }
}

/// The `expose-modbus` fault: a plain TCP proxy to the leaf on every
/// address of the gateway, its hub side included.
async fn expose_modbus(leaf: SocketAddr) {
    let Ok(listener) = tokio::net::TcpListener::bind(("0.0.0.0", 502)).await else {
        return;
    };
    while let Ok((mut inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(leaf).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    /// Every switch of the catalogue turns something on, and nothing else parses.
    #[test]
    fn the_catalogue_and_the_switches_agree() {
        for f in FAULTS {
            let on = Faults::parse(&[f.name.to_string()]).unwrap();
            let any =
                on.expose_modbus || on.single_identity || on.unchecked_commands || on.no_buffer;
            assert!(any, "{} switches nothing on", f.name);
            assert!(f.cases.iter().all(|c| c.starts_with("GW-")), "{}", f.name);
        }
        let e = Faults::parse(&["no-dedupe".to_string()]).unwrap_err();
        assert!(e.contains("expose-modbus"), "{e}");
    }

    /// Written and read by the one type: a path with quotes, a backslash and
    /// a newline comes back as it was (a `format!`-made file would break).
    #[test]
    fn the_configuration_round_trips_through_toml() {
        let dir = tempfile::tempdir().unwrap();
        let odd = "a \"quoted\" \\ path\nwith a newline";
        let c = GatewayConfig {
            mapping: PathBuf::from(odd),
            keystore: "keystore".into(),
            trust_anchor: "ca.pem".into(),
            hub_host: "hub3.sacbench.test".into(),
            hub_mqtt: "10.200.3.6:8883".parse().unwrap(),
            buffer: 20,
            state_dir: "state".into(),
            faults: vec!["no-buffer".into(), "odd \"one\"".into()],
        };
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, c.to_toml()).unwrap();
        let back = GatewayConfig::load(&path).unwrap();
        assert_eq!(back.mapping, dir.path().join(odd));
        assert_eq!(back.faults, c.faults);
        assert_eq!(
            (back.hub_host, back.hub_mqtt, back.buffer),
            (c.hub_host, c.hub_mqtt, 20)
        );
    }
}
