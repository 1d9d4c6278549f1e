//! `rig.toml`: what a lab rig is made of.
//!
//! Parsing is serde + `toml` with `deny_unknown_fields` everywhere, so a typo
//! is an error rather than a silently ignored setting. Every problem becomes
//! one [`ConfigError`] naming the file, the dotted field, the line and the
//! expected form; the expected forms live in one table ([`FIELDS`]) so the
//! messages and the documentation cannot drift apart.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::fields::{expected, find_line};
pub use super::fields::{ConfigError, FIELDS};
pub use super::labgrid::rig::{LabgridConfig, DEFAULT_LABGRID_TIMEOUT_S};
use crate::DutAddresses;

/// A parsed, checked `rig.toml`. Relative paths are already resolved against the file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RigConfig {
    /// The rig file this came from.
    pub file: PathBuf,
    /// The rig's name in reports; the file's path when absent.
    pub name: Option<String>,
    /// The debug probe: flashing and RTT logs. Never set together with `flasher`.
    pub probe: Option<ProbeConfig>,
    /// The firmware image the bench flashes first (needs `probe` or `flasher`).
    pub image: Option<ImageConfig>,
    /// The DUT's serial console, if wired.
    pub console: Option<ConsoleConfig>,
    /// The Modbus relay that switches the DUT's power, if any.
    pub power: Option<PowerConfig>,
    /// A second coil on the power relay for the DUT's Ethernet link (needs `power`).
    pub link: Option<LinkConfig>,
    /// The bench interface to capture the DUT's traffic on, if any.
    pub capture: Option<CaptureConfig>,
    /// The DUT's addresses: at least one of IPv4 and IPv6 link-local; a
    /// link-local address without `%interface` takes `capture.interface`.
    pub dut: DutAddresses,
    /// Where the suites' fixture hub listens; the suites need it (and `dut.ipv4`).
    pub hub: Option<HubConfig>,
    /// A flashing program run with `{image}`, instead of a probe.
    pub flasher: Option<CommandConfig>,
    /// The program that puts a provisioning directory (`{provisioning}`) on
    /// the DUT; without it a lab DUT cannot be given a run's identity.
    pub provisioning: Option<CommandConfig>,
    /// A labgrid place that provides console, power and link instead of
    /// `[console]`, `[power]` and `[link]` (see [`RigConfig::on_place`]).
    pub labgrid: Option<LabgridConfig>,
    /// Power through a labgrid place's `NetworkPowerPort` (instead of `power`).
    pub power_port: Option<PowerPortConfig>,
    /// Who provides console, power and link on a labgrid place ("labgrid
    /// exporter E (place P on C)"): their failures name it. Set by
    /// [`RigConfig::on_place`].
    pub provider: Option<String>,
}

/// `[hub]`: where the suites' fixture hub listens, and the name the DUT knows it by.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// The bench's own IPv4 address on the DUT's network; the hub listens
    /// there on 8883 (MQTT) and 443 (HTTPS), and it is the DUT's first hop too.
    pub ipv4: Ipv4Addr,
    /// The name the DUT dials and sends as SNI, and the hub's certificate
    /// carries ([`DEFAULT_HUB_HOST`] when absent).
    #[serde(default = "default_hub_host")]
    pub host_name: String,
}

/// The host name the hub's certificate carries when `hub.host_name` is not given.
pub const DEFAULT_HUB_HOST: &str = "hub.sacbench.test";

fn default_hub_host() -> String {
    DEFAULT_HUB_HOST.into()
}

/// `[flasher]` / `[provisioning]`: a program the bench runs, with one
/// placeholder (`{image}` / `{provisioning}`) replaced by a path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The argv, program first, run from the rig file's folder; at least one
    /// argument contains the placeholder (for provisioning, or `{record}`,
    /// its older name).
    pub command: Vec<String>,
}

impl CommandConfig {
    /// The argv with `placeholder` replaced by `path`.
    pub fn argv(&self, placeholder: &str, path: &Path) -> Vec<std::ffi::OsString> {
        self.command
            .iter()
            .map(|a| a.replace(placeholder, &path.to_string_lossy()).into())
            .collect()
    }
}

/// `[probe]`: which debug probe and which chip behind it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Which USB probe to open.
    pub selector: ProbeSelector,
    /// The target chip as probe-rs names it (`nRF52840_xxAA`).
    pub chip: String,
    /// The wire protocol to select; the probe's default when absent.
    #[serde(default)]
    pub protocol: Option<WireProtocol>,
    /// Wire speed in kHz; the probe's default when absent.
    #[serde(default)]
    pub speed_khz: Option<NonZeroU32>,
}

/// A USB debug probe: vendor and product id, and a serial number when several are plugged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSelector {
    /// USB vendor id (VID).
    pub vendor_id: u16,
    /// USB product id (PID).
    pub product_id: u16,
    /// The probe's USB serial number (may contain ':'); any probe with the
    /// VID:PID when absent.
    pub serial: Option<String>,
}

impl FromStr for ProbeSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The serial may itself contain ':' (some probes use a MAC address), hence splitn.
        let mut parts = s.splitn(3, ':');
        let vid = parts.next().unwrap_or_default();
        let pid = parts
            .next()
            .ok_or_else(|| format!("{s:?} has no ':' between VID and PID"))?;
        let hex = |what: &str, v: &str| {
            let digits = v.strip_prefix("0x").unwrap_or(v);
            if digits.is_empty() || digits.len() > 4 {
                return Err(format!("{what} {v:?} is not 1 to 4 hex digits"));
            }
            u16::from_str_radix(digits, 16).map_err(|_| format!("{what} {v:?} is not hex"))
        };
        let serial = match parts.next() {
            Some("") => return Err(format!("{s:?} has an empty serial number")),
            other => other.map(str::to_owned),
        };
        Ok(ProbeSelector {
            vendor_id: hex("VID", vid)?,
            product_id: hex("PID", pid)?,
            serial,
        })
    }
}

impl fmt::Display for ProbeSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor_id, self.product_id)?;
        match &self.serial {
            Some(s) => write!(f, ":{s}"),
            None => Ok(()),
        }
    }
}

/// The debug wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireProtocol {
    /// Serial Wire Debug (`"swd"`).
    Swd,
    /// JTAG (`"jtag"`).
    Jtag,
}

/// `[image]`: the image the bench flashes first, and where signed images go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// The ELF or MCUboot-signed image, resolved against the rig file's
    /// folder; it must exist.
    pub path: PathBuf,
    /// Primary boot slot address; needed to flash MCUboot-signed images (ELF files carry their own).
    #[serde(default)]
    pub slot_address: Option<u64>,
    /// The key OTA cases sign new images of `path`'s payload with.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
}

/// `[console]`: the DUT's serial console.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// The serial device path (`/dev/ttyACM0`).
    pub port: String,
    /// Baud rate.
    pub baud: NonZeroU32,
}

/// How the bench reaches the Modbus relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModbusEndpoint {
    /// Modbus TCP (`power.tcp`).
    Tcp {
        /// Host name or IP address (an IPv6 literal without brackets).
        host: String,
        /// TCP port, never 0.
        port: u16,
    },
    /// Modbus RTU over a serial line (`power.rtu`, `power.baud`).
    Rtu {
        /// The serial device path (`/dev/ttyUSB0`).
        port: String,
        /// Baud rate.
        baud: NonZeroU32,
    },
}

impl fmt::Display for ModbusEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModbusEndpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "modbus tcp [{host}]:{port}")
            }
            ModbusEndpoint::Tcp { host, port } => write!(f, "modbus tcp {host}:{port}"),
            ModbusEndpoint::Rtu { port, baud } => write!(f, "modbus rtu {port} @ {baud} baud"),
        }
    }
}

/// `[power]`: the relay and the coil that switches DUT power.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerConfig {
    /// How the bench reaches the relay.
    pub relay: ModbusEndpoint,
    /// Modbus unit (slave) id, never 0: 0 is broadcast and is never answered.
    pub unit: u8,
    /// The coil address, 0-based as on the wire.
    pub coil: u16,
    /// The coil value that means "powered" (true for a normally-open contact).
    pub on_value: bool,
    /// How long to wait for the relay's answer, in milliseconds
    /// ([`DEFAULT_RELAY_TIMEOUT_MS`] when not given).
    pub timeout_ms: u32,
}

/// A labgrid place's `NetworkPowerPort` of model `simplerest`: power is
/// switched by an HTTP GET of `url` with `{index}` and `{value}` filled in.
/// Not a rig-file table: only a place gives it ([`RigConfig::on_place`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerPortConfig {
    /// The URL template (the port's `host` parameter), e.g.
    /// `http://192.0.2.7/relay/{index}/{value}`.
    pub url: String,
    /// The port's index on the switch.
    pub index: u32,
}

/// `[link]`: a second coil on the power relay that connects the DUT's Ethernet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The coil address (0-based), never the power coil.
    pub coil: u16,
    /// The coil value that connects the link (default true).
    #[serde(default = "yes")]
    pub up_value: bool,
}

/// `[capture]`: the bench interface that sees the DUT's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// The interface name (`enp3s0`); also the default scope of `dut.ipv6_link_local`.
    pub interface: String,
}

fn yes() -> bool {
    true
}

/// Deserialize through `FromStr`, so a bad string yields our message, not serde's.
fn from_str<'de, D: Deserializer<'de>, T: FromStr<Err = String>>(d: D) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(de::Error::custom)
}

impl<'de> Deserialize<'de> for ProbeSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str(d)
    }
}

/// `host:port`, with `[v6]:port` for IPv6 literals.
struct HostPort(String, u16);

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} has no port"))?;
        let host = match host.strip_prefix('[') {
            Some(h) => h
                .strip_suffix(']')
                .ok_or_else(|| format!("{s:?} has an unclosed '['"))?,
            None if host.contains(':') => {
                return Err(format!("{s:?}: write an IPv6 address as [addr]:port"))
            }
            None => host,
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p != 0 => Ok(HostPort(host.to_owned(), p)),
            _ => Err(format!("port {port:?} is not 1..=65535")),
        }
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str(d)
    }
}

/// A link-local IPv6 address with an optional `%interface` scope.
struct ScopedLinkLocal(Ipv6Addr, Option<String>);

impl FromStr for ScopedLinkLocal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, scope) = match s.split_once('%') {
            Some((_, "")) => return Err(format!("{s:?} has an empty interface after '%'")),
            Some((a, i)) => (a, Some(i.to_owned())),
            None => (s, None),
        };
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv6 address"))?;
        if ip.segments()[0] & 0xffc0 != 0xfe80 {
            return Err(format!("{ip} is not link-local (fe80::/10)"));
        }
        Ok(ScopedLinkLocal(ip, scope))
    }
}

impl<'de> Deserialize<'de> for ScopedLinkLocal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str(d)
    }
}

/// A Modbus unit id; 0 (broadcast) is refused because a relay never answers it.
struct Unit(u8);

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            0 => Err(de::Error::custom(
                "0 is the broadcast address, which no relay answers",
            )),
            u => Ok(Unit(u)),
        }
    }
}

// The file as written. Cross-field rules (tcp xor rtu, sections that need
// others) are checked after deserialization, with spans kept for the lines.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRig {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    probe: Option<ProbeConfig>,
    #[serde(default)]
    image: Option<toml::Spanned<ImageConfig>>,
    #[serde(default)]
    console: Option<ConsoleConfig>,
    #[serde(default)]
    power: Option<toml::Spanned<RawPower>>,
    #[serde(default)]
    link: Option<toml::Spanned<LinkConfig>>,
    #[serde(default)]
    capture: Option<CaptureConfig>,
    /// Optional only with `[labgrid]`, whose place may give the address.
    #[serde(default)]
    dut: Option<toml::Spanned<RawDut>>,
    #[serde(default)]
    hub: Option<HubConfig>,
    #[serde(default)]
    flasher: Option<toml::Spanned<CommandConfig>>,
    #[serde(default)]
    provisioning: Option<toml::Spanned<CommandConfig>>,
    #[serde(default)]
    labgrid: Option<toml::Spanned<RawLabgrid>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabgrid {
    coordinator: HostPort,
    #[serde(default)]
    place: Option<String>,
    #[serde(default)]
    tags: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    timeout_s: Option<NonZeroU32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPower {
    #[serde(default)]
    tcp: Option<toml::Spanned<HostPort>>,
    #[serde(default)]
    rtu: Option<toml::Spanned<String>>,
    #[serde(default)]
    baud: Option<toml::Spanned<NonZeroU32>>,
    unit: Unit,
    coil: u16,
    #[serde(default = "yes")]
    on_value: bool,
    #[serde(default)]
    timeout_ms: Option<NonZeroU32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDut {
    #[serde(default)]
    ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    ipv6_link_local: Option<toml::Spanned<ScopedLinkLocal>>,
}

/// The relay answer timeout when `power.timeout_ms` is not given.
pub const DEFAULT_RELAY_TIMEOUT_MS: u32 = 2000;

impl RigConfig {
    /// What a rig built from this file can do.
    pub fn capabilities(&self) -> crate::Capabilities {
        use crate::Capability;
        [
            (
                self.power.is_some() || self.power_port.is_some(),
                Capability::Power,
            ),
            (self.link.is_some(), Capability::Link),
            (
                self.probe.is_some() || self.flasher.is_some(),
                Capability::Flash,
            ),
            (self.probe.is_some(), Capability::Rtt),
            (self.console.is_some(), Capability::Console),
            (self.capture.is_some(), Capability::Capture),
            (
                self.dut.ipv6_link_local.is_some(),
                Capability::Ipv6LinkLocal,
            ),
            (
                self.image.as_ref().is_some_and(|i| i.signing_key.is_some()),
                Capability::Images,
            ),
        ]
        .into_iter()
        .filter_map(|(has, cap)| has.then_some(cap))
        .collect()
    }

    /// Read and check a rig file. Relative paths resolve against its folder, and
    /// `image.path` must exist.
    pub fn load(path: &Path) -> Result<RigConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            field: String::new(),
            line: None,
            problem: format!("cannot read: {e}"),
            expected: "a readable rig.toml".into(),
        })?;
        let config = Self::parse(&text, path)?;
        if let Some(image) = &config.image {
            if !image.path.is_file() {
                let line = find_line(&text, "image", "path");
                return Err(ConfigError {
                    file: path.to_owned(),
                    field: "image.path".into(),
                    line,
                    problem: format!("{} is not a file", image.path.display()),
                    expected: expected("image.path").into(),
                });
            }
        }
        if let Some(key) = config.image.as_ref().and_then(|i| i.signing_key.as_ref()) {
            if !key.is_file() {
                return Err(ConfigError {
                    file: path.to_owned(),
                    field: "image.signing_key".into(),
                    line: find_line(&text, "image", "signing_key"),
                    problem: format!("{} is not a file", key.display()),
                    expected: expected("image.signing_key").into(),
                });
            }
        }
        Ok(config)
    }

    /// Check the text of a rig file; `file` names it in errors and anchors relative paths.
    /// Does no I/O.
    pub fn parse(text: &str, file: &Path) -> Result<RigConfig, ConfigError> {
        let err = |field: &str, line: Option<usize>, problem: String| ConfigError {
            file: file.to_owned(),
            field: field.to_owned(),
            line,
            problem,
            expected: expected(field).to_owned(),
        };
        let line_at = |offset: usize| super::fields::line_at(text, offset);
        let raw: RawRig = super::fields::parse_toml(text, file, FIELDS)?;

        let base = file.parent().unwrap_or(Path::new("."));
        let command = |table: &str, c: Option<toml::Spanned<CommandConfig>>, placeholder: &str| {
            let Some(c) = c else { return Ok(None) };
            let field = format!("{table}.command");
            let line = find_line(text, table, "command").or(line_at(c.span().start));
            let c = c.into_inner();
            if c.command.first().is_none_or(|p| p.is_empty()) {
                return Err(err(&field, line, "no program".into()));
            }
            // `{record}`: the provisioning placeholder's older name.
            let alias = (placeholder == "{provisioning}").then_some("{record}");
            if !c
                .command
                .iter()
                .any(|a| a.contains(placeholder) || alias.is_some_and(|al| a.contains(al)))
            {
                return Err(err(
                    &field,
                    line,
                    format!("no argument contains {placeholder}"),
                ));
            }
            Ok(Some(c))
        };
        let flasher = command("flasher", raw.flasher, "{image}")?;
        let provisioning = command("provisioning", raw.provisioning, "{provisioning}")?;
        if let (Some(_), Some(_)) = (&raw.probe, &flasher) {
            let line = find_line(text, "flasher", "command");
            return Err(err(
                "flasher",
                line,
                "both [probe] and [flasher] are set".into(),
            ));
        }
        let image = match raw.image {
            Some(img) if raw.probe.is_none() && flasher.is_none() => {
                return Err(err(
                    "probe",
                    line_at(img.span().start),
                    "[image] needs a [probe] or a [flasher] to flash it".into(),
                ));
            }
            Some(img) => {
                let mut img = img.into_inner();
                img.path = base.join(&img.path);
                img.signing_key = img.signing_key.map(|k| base.join(k));
                Some(img)
            }
            None => None,
        };

        let power = raw.power.map(|p| {
            let span = p.span();
            let p = p.into_inner();
            let relay = match (p.tcp, p.rtu) {
                (Some(_), Some(rtu)) => {
                    return Err(err(
                        "power.rtu",
                        line_at(rtu.span().start),
                        "both power.tcp and power.rtu are set".into(),
                    ));
                }
                (None, None) => {
                    return Err(err(
                        "power.tcp",
                        line_at(span.start),
                        "missing (the relay needs power.tcp or power.rtu)".into(),
                    ));
                }
                (Some(tcp), None) => {
                    if let Some(baud) = p.baud {
                        return Err(err(
                            "power.baud",
                            line_at(baud.span().start),
                            "a baud rate for a TCP relay".into(),
                        ));
                    }
                    let HostPort(host, port) = tcp.into_inner();
                    ModbusEndpoint::Tcp { host, port }
                }
                (None, Some(rtu)) => {
                    let Some(baud) = p.baud else {
                        return Err(err(
                            "power.baud",
                            line_at(rtu.span().start),
                            "missing for the RTU relay".into(),
                        ));
                    };
                    ModbusEndpoint::Rtu {
                        port: rtu.into_inner(),
                        baud: baud.into_inner(),
                    }
                }
            };
            Ok(PowerConfig {
                relay,
                unit: p.unit.0,
                coil: p.coil,
                on_value: p.on_value,
                timeout_ms: p
                    .timeout_ms
                    .map_or(DEFAULT_RELAY_TIMEOUT_MS, NonZeroU32::get),
            })
        });
        let power = power.transpose()?;

        let link = match raw.link {
            Some(link) if power.is_none() => {
                return Err(err(
                    "power",
                    line_at(link.span().start),
                    "[link] switches a coil on the power relay, but there is no [power]".into(),
                ));
            }
            Some(link)
                if power
                    .as_ref()
                    .is_some_and(|p| p.coil == link.get_ref().coil) =>
            {
                return Err(err(
                    "link.coil",
                    line_at(link.span().start),
                    "the same coil as power.coil".into(),
                ));
            }
            link => link.map(toml::Spanned::into_inner),
        };

        let (dut_span, dut) = match raw.dut {
            Some(d) => (Some(d.span()), d.into_inner()),
            None if raw.labgrid.is_some() => (
                None,
                RawDut {
                    ipv4: None,
                    ipv6_link_local: None,
                },
            ),
            None => return Err(err("dut", None, "missing".into())),
        };
        let ipv6_link_local = match dut.ipv6_link_local {
            None => None,
            Some(v6) => {
                let line = line_at(v6.span().start);
                let ScopedLinkLocal(ip, scope) = v6.into_inner();
                match scope.or_else(|| raw.capture.as_ref().map(|c| c.interface.clone())) {
                    Some(ifname) => Some((ip, ifname)),
                    None => {
                        return Err(err(
                            "dut.ipv6_link_local",
                            line,
                            "no %interface and no [capture] interface to default to".into(),
                        ));
                    }
                }
            }
        };
        // On a labgrid place, its NetworkService may give the address (`on_place` checks).
        if dut.ipv4.is_none() && ipv6_link_local.is_none() && raw.labgrid.is_none() {
            return Err(err(
                "dut",
                dut_span.and_then(|s| line_at(s.start)),
                "no DUT address".into(),
            ));
        }

        let labgrid = match raw.labgrid {
            None => None,
            Some(lg) => {
                let line = line_at(lg.span().start);
                for (table, given) in [
                    ("console", raw.console.is_some()),
                    ("power", power.is_some()),
                    ("link", link.is_some()),
                ] {
                    if given {
                        return Err(err(
                            "labgrid",
                            text.lines()
                                .position(|l| l.trim() == format!("[{table}]"))
                                .map(|n| n + 1)
                                .or(line),
                            format!("both [labgrid] and [{table}]: the place provides the {table}"),
                        ));
                    }
                }
                let lg = lg.into_inner();
                let selector = match (lg.place, lg.tags) {
                    (Some(_), Some(_)) => {
                        return Err(err(
                            "labgrid.tags",
                            find_line(text, "labgrid", "tags").or(line),
                            "both labgrid.place and labgrid.tags are set".into(),
                        ))
                    }
                    (None, None) => {
                        return Err(err(
                            "labgrid.place",
                            line,
                            "missing (name the place, or give labgrid.tags)".into(),
                        ))
                    }
                    (Some(p), None) if p.is_empty() => {
                        return Err(err(
                            "labgrid.place",
                            find_line(text, "labgrid", "place").or(line),
                            "empty".into(),
                        ))
                    }
                    (Some(p), None) => super::labgrid::PlaceSelector::Name(p),
                    (None, Some(t)) if t.is_empty() => {
                        return Err(err(
                            "labgrid.tags",
                            find_line(text, "labgrid", "tags").or(line),
                            "no tags".into(),
                        ))
                    }
                    (None, Some(t)) => super::labgrid::PlaceSelector::Tags(t),
                };
                let HostPort(host, port) = lg.coordinator;
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host
                };
                Some(LabgridConfig {
                    coordinator: format!("{host}:{port}"),
                    selector,
                    timeout_s: lg
                        .timeout_s
                        .map_or(DEFAULT_LABGRID_TIMEOUT_S, NonZeroU32::get),
                })
            }
        };

        Ok(RigConfig {
            file: file.to_owned(),
            name: raw.name,
            probe: raw.probe,
            image,
            console: raw.console,
            power,
            link,
            capture: raw.capture,
            dut: DutAddresses {
                ipv4: dut.ipv4,
                ipv6_link_local,
            },
            hub: raw.hub,
            flasher,
            provisioning,
            labgrid,
            power_port: None,
            provider: None,
        })
    }
}
