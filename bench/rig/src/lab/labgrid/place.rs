//! The sans-IO core of running on a labgrid place: which place a rig file
//! means, what its resources become in the lab rig's terms, whether an
//! acquisition found on it is a stale lock this host may lift, and whose fault
//! a failure was. No I/O: the gRPC session (`session.rs`) feeds these the
//! coordinator's answers.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;

use super::super::config::{
    ConsoleConfig, LinkConfig, ModbusEndpoint, PowerConfig, PowerPortConfig,
    DEFAULT_RELAY_TIMEOUT_MS,
};

/// Which place a rig file asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceSelector {
    /// `labgrid.place`: one place by name (or alias).
    Name(String),
    /// `labgrid.tags`: any place carrying all these tags.
    Tags(BTreeMap<String, String>),
}

impl fmt::Display for PlaceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As it follows "place" in messages: `place board-3`, `place tagged board=nrf`.
        match self {
            PlaceSelector::Name(n) => write!(f, "{n}"),
            PlaceSelector::Tags(t) => {
                let tags: Vec<String> = t.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "tagged {}", tags.join(","))
            }
        }
    }
}

impl PlaceSelector {
    /// The reservation filter that asks the coordinator for this place: labgrid
    /// matches a place's tags plus `name=<its name>`.
    pub fn reservation_filter(&self) -> BTreeMap<String, String> {
        match self {
            PlaceSelector::Name(n) => BTreeMap::from([("name".to_owned(), n.clone())]),
            PlaceSelector::Tags(t) => t.clone(),
        }
    }
}

/// What was at fault when running on a labgrid place failed: every such
/// failure is the bench's (an `error` outcome or exit 2), never the DUT's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The coordinator: unreachable, or answering with an internal error.
    Coordinator,
    /// An exporter: its resources are missing, unavailable or would not be acquired.
    Exporter,
    /// The place: absent, held too long, or its resources not usable as a bench rig.
    Place,
}

/// One labgrid failure, saying whose fault it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabgridError {
    /// Whose fault.
    pub fault: Fault,
    /// Which coordinator, exporter or place (`127.0.0.1:20408`, `exporter-1`, `board-3`).
    pub who: String,
    /// What went wrong and, where there is one, what to do.
    pub message: String,
}

impl LabgridError {
    /// A failure of `fault` at `who`.
    pub fn new(fault: Fault, who: impl Into<String>, message: impl Into<String>) -> Self {
        LabgridError {
            fault,
            who: who.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for LabgridError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.fault {
            Fault::Coordinator => "coordinator",
            Fault::Exporter => "exporter",
            Fault::Place => "place",
        };
        write!(f, "labgrid {what} {}: {}", self.who, self.message)
    }
}

impl std::error::Error for LabgridError {}

/// Whose fault a gRPC error status from the coordinator is. The coordinator
/// answers a bad request about a place with INVALID_ARGUMENT,
/// FAILED_PRECONDITION or PERMISSION_DENIED; an exporter that would not hand
/// over its resources makes AcquirePlace fail with "Failed to acquire
/// resources"; anything else (unreachable, internal errors) is the coordinator's.
pub fn classify(code: tonic::Code, message: &str) -> Fault {
    use tonic::Code;
    match code {
        Code::FailedPrecondition if message.contains("Failed to acquire resources") => {
            Fault::Exporter
        }
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::PermissionDenied
        | Code::NotFound
        | Code::AlreadyExists => Fault::Place,
        _ => Fault::Coordinator,
    }
}

/// A place as the coordinator describes it: the parts the bench uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlaceView {
    /// Its name.
    pub name: String,
    /// Other names it answers to.
    pub aliases: Vec<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Who holds it (`host/user`), if anyone.
    pub acquired: Option<String>,
    /// The resources it holds while acquired, as `exporter/group/class/name`.
    pub acquired_resources: Vec<String>,
}

/// A resource parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    Uint(u64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
}

/// A resource an exporter offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceView {
    /// The exporter's name.
    pub exporter: String,
    /// The group in the exporter's configuration.
    pub group: String,
    /// The resource class as exported (`NetworkSerialPort`, `ModbusTCPCoil`…).
    pub cls: String,
    /// The resource's name in its group.
    pub name: String,
    /// Its parameters (`host`, `port`, `coil`…).
    pub params: BTreeMap<String, Param>,
    /// Whether the exporter says it is there.
    pub avail: bool,
}

impl ResourceView {
    /// `exporter/group/class/name`, the form places list them in.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.exporter, self.group, self.cls, self.name
        )
    }

    fn err(&self, message: String) -> LabgridError {
        LabgridError::new(
            Fault::Exporter,
            &self.exporter,
            format!("{} {}: {message}", self.cls, self.path()),
        )
    }

    fn string(&self, key: &str) -> Result<Option<&str>, LabgridError> {
        match self.params.get(key) {
            None => Ok(None),
            Some(Param::Str(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(format!("parameter {key} is {other:?}, not a string"))),
        }
    }

    fn uint(&self, key: &str) -> Result<Option<u64>, LabgridError> {
        match self.params.get(key) {
            None => Ok(None),
            Some(Param::Uint(u)) => Ok(Some(*u)),
            Some(Param::Int(i)) if *i >= 0 => Ok(Some(i.unsigned_abs())),
            Some(other) => Err(self.err(format!(
                "parameter {key} is {other:?}, not a non-negative integer"
            ))),
        }
    }

    fn boolean(&self, key: &str) -> Result<bool, LabgridError> {
        match self.params.get(key) {
            None => Ok(false),
            Some(Param::Bool(b)) => Ok(*b),
            Some(other) => Err(self.err(format!("parameter {key} is {other:?}, not a boolean"))),
        }
    }
}

/// The places among `places` that `selector` names, or why none does.
pub fn candidates<'a>(
    places: &'a [PlaceView],
    selector: &PlaceSelector,
    coordinator: &str,
) -> Result<Vec<&'a PlaceView>, LabgridError> {
    let found: Vec<&PlaceView> = places
        .iter()
        .filter(|p| match selector {
            PlaceSelector::Name(n) => p.name == *n || p.aliases.contains(n),
            PlaceSelector::Tags(t) => t.iter().all(|(k, v)| p.tags.get(k) == Some(v)),
        })
        .collect();
    if found.is_empty() {
        let known: Vec<&str> = places.iter().map(|p| p.name.as_str()).collect();
        return Err(LabgridError::new(
            Fault::Place,
            selector.to_string(),
            format!(
                "the coordinator at {coordinator} has no such place (it has: {}); `labgrid-client -x {coordinator} places` lists them",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ),
        ));
    }
    Ok(found)
}

/// What the bench gets from a place: the lab rig's console, power and link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    /// The console (`rfc2217://host:port`), from the `NetworkSerialPort`.
    pub console: Option<ConsoleConfig>,
    /// Power, from the `ModbusTCPCoil` (named `power` when there are several).
    pub power: Option<PowerConfig>,
    /// The DUT's Ethernet link, from a second `ModbusTCPCoil` named `link`.
    pub link: Option<LinkConfig>,
    /// Power, from a `NetworkPowerPort` of model `simplerest` (when no coil gives it).
    pub power_port: Option<PowerPortConfig>,
    /// The DUT's address, from the `NetworkService` (named `dut` when there are several).
    pub dut_address: Option<String>,
    /// Which exporters the place's resources come from.
    pub exporters: Vec<String>,
}

/// The one resource of class `cls` among `of`, preferring the one named `preferred`.
fn pick<'a>(
    of: &[&'a ResourceView],
    cls: &str,
    preferred: &str,
    place: &str,
) -> Result<Option<&'a ResourceView>, LabgridError> {
    let all: Vec<&ResourceView> = of.iter().copied().filter(|r| r.cls == cls).collect();
    match all.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => match many.iter().find(|r| r.name == preferred) {
            Some(r) => Ok(Some(r)),
            None => Err(LabgridError::new(
                Fault::Place,
                place,
                format!(
                    "{} {cls} resources and none named {preferred:?} (name one so in the exporter's configuration, or rename it in the place's match)",
                    many.len()
                ),
            )),
        },
    }
}

/// A `ModbusTCPCoil`'s relay and coil: `host` is `host[:port]` (502 by default).
fn coil(r: &ResourceView) -> Result<(ModbusEndpoint, u16, bool), LabgridError> {
    if r.boolean("write_multiple_coils")? {
        return Err(r.err(
            "write_multiple_coils = true: the bench writes single coils (Modbus function 0x05) only".into(),
        ));
    }
    let host = r
        .string("host")?
        .ok_or_else(|| r.err("no host parameter".into()))?;
    let (host, port) = match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| r.err(format!("host {host:?}: bad port")))?;
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (host, 502),
    };
    let coil = r
        .uint("coil")?
        .and_then(|c| u16::try_from(c).ok())
        .ok_or_else(|| r.err("no coil parameter 0..=65535".into()))?;
    let on = !r.boolean("invert")?;
    Ok((
        ModbusEndpoint::Tcp {
            host: host.to_owned(),
            port,
        },
        coil,
        on,
    ))
}

/// Maps the resources `place` holds (looked up in `resources`, what the
/// exporters offer) to the lab rig's console, power and link.
pub fn resolve(place: &PlaceView, resources: &[ResourceView]) -> Result<Resolved, LabgridError> {
    let mut held = Vec::new();
    for path in &place.acquired_resources {
        let exporter = path.split('/').next().unwrap_or_default();
        let r = resources.iter().find(|r| r.path() == *path).ok_or_else(|| {
            LabgridError::new(
                Fault::Exporter,
                exporter,
                format!("place {} holds {path}, which the exporter no longer offers (is the exporter running?)", place.name),
            )
        })?;
        if !r.avail {
            return Err(r.err(
                "not available (the exporter cannot reach it: unplugged, or its device is gone?)"
                    .into(),
            ));
        }
        held.push(r);
    }
    let mut exporters: Vec<String> = held.iter().map(|r| r.exporter.clone()).collect();
    exporters.sort();
    exporters.dedup();
    let console = match pick(&held, "NetworkSerialPort", "console", &place.name)? {
        None => None,
        Some(r) => {
            let protocol = r.string("protocol")?.unwrap_or("rfc2217");
            if protocol != "rfc2217" {
                return Err(r.err(format!(
                    "protocol {protocol:?}: the bench speaks RFC 2217 only (labgrid's default)"
                )));
            }
            let host = r
                .string("host")?
                .ok_or_else(|| r.err("no host parameter".into()))?;
            let port = r
                .uint("port")?
                .filter(|p| (1..=65535).contains(p))
                .ok_or_else(|| {
                    r.err("no port parameter (the exporter starts ser2net when the place is acquired)".into())
                })?;
            let speed = r.uint("speed")?.unwrap_or(115_200);
            let baud = u32::try_from(speed)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| r.err(format!("speed {speed} is not a baud rate")))?;
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_owned()
            };
            Some(ConsoleConfig {
                port: format!("rfc2217://{host}:{port}"),
                baud,
            })
        }
    };
    let power_coil = pick(&held, "ModbusTCPCoil", "power", &place.name)?;
    let power = match power_coil {
        Some(r) => {
            let (relay, coil, on_value) = coil(r)?;
            Some(PowerConfig {
                relay,
                unit: 1,
                coil,
                on_value,
                timeout_ms: DEFAULT_RELAY_TIMEOUT_MS,
            })
        }
        None => None,
    };
    let power_port = match (
        &power,
        pick(&held, "NetworkPowerPort", "power", &place.name)?,
    ) {
        (None, Some(r)) => {
            let model = r.string("model")?.unwrap_or("(none)");
            if model != crate::lab::SIMPLEREST {
                return Err(r.err(format!(
                    "model {model:?}: the bench drives NetworkPowerPorts of model \"simplerest\" only (or a ModbusTCPCoil); export the place's power that way"
                )));
            }
            let url = r
                .string("host")?
                .ok_or_else(|| r.err("no host parameter (the URL template)".into()))?;
            // labgrid keeps the index as a string of digits.
            let index = match r.params.get("index") {
                Some(Param::Str(s)) => s.parse::<u32>().ok(),
                _ => r.uint("index")?.and_then(|i| u32::try_from(i).ok()),
            }
            .ok_or_else(|| r.err("no index parameter 0..=4294967295".into()))?;
            Some(PowerPortConfig {
                url: url.to_owned(),
                index,
            })
        }
        _ => None,
    };
    let link = match held
        .iter()
        .find(|r| r.cls == "ModbusTCPCoil" && r.name == "link")
    {
        Some(r) if Some(r.path()) != power_coil.map(ResourceView::path) => {
            let (relay, coil, up_value) = coil(r)?;
            match &power {
                Some(p) if p.relay == relay && p.coil != coil => Some(LinkConfig { coil, up_value }),
                _ => {
                    return Err(r.err(
                        "the link coil must be another coil of the power relay (a ModbusTCPCoil named \"power\" on the same host)".into(),
                    ))
                }
            }
        }
        _ => None,
    };
    let dut_address = match pick(&held, "NetworkService", "dut", &place.name)? {
        Some(r) => Some(
            r.string("address")?
                .ok_or_else(|| r.err("no address parameter".into()))?
                .to_owned(),
        ),
        None => None,
    };
    Ok(Resolved {
        console,
        power,
        link,
        power_port,
        dut_address,
        exporters,
    })
}

/// What this host's bench recorded when it acquired a place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The coordinator, `host:port`.
    pub coordinator: String,
    /// The place.
    pub place: String,
    /// The name it acquired as (`host/user`).
    pub user: String,
    /// The bench's process id.
    pub pid: u32,
    /// When it acquired, Unix seconds.
    pub started: u64,
    /// Its reservation's token.
    pub token: String,
}

/// Who holds a place, as far as the bench may act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nobody.
    Free,
    /// This host's bench, under this user name, whose recorded process is
    /// gone: a stale lock the bench releases (`fromuser`) and says so.
    Stale(Record),
    /// Someone (described); the bench waits, up to its timeout.
    Held(String),
}

/// Who holds `place`, for a bench acquiring as `me` that finds `record` (its
/// host's last acquisition of this place); `alive` says whether a process id
/// still runs. Only an acquisition under the bench's own name, recorded by a
/// bench on this host whose process is gone, is stale: anything else is
/// waited for (another user's, a live bench's, one made by hand).
pub fn holder(
    place: &PlaceView,
    me: &str,
    record: Option<&Record>,
    alive: impl Fn(u32) -> bool,
) -> Holder {
    let Some(by) = &place.acquired else {
        return Holder::Free;
    };
    if by != me {
        return Holder::Held(by.clone());
    }
    match record {
        Some(r) if r.place == place.name && r.user == *me && !alive(r.pid) => {
            Holder::Stale(r.clone())
        }
        Some(r) if r.place == place.name && r.user == *me => Holder::Held(format!(
            "{by} (the bench run with pid {}, still running)",
            r.pid
        )),
        _ => Holder::Held(format!(
            "{by} (this user name, but not a bench run recorded on this host: labgrid-client? `labgrid-client -p {} release` frees it)",
            place.name
        )),
    }
}

#[cfg(test)]
#[path = "place_tests.rs"]
mod tests;
