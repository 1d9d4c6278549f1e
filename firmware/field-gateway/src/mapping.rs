//! The mapping file: which legacy devices (leaves) sit behind the gateway,
//! how to reach each one (Modbus TCP or RTU, unit id), which registers are
//! telemetry and which commands become which register writes, with their
//! allowed ranges.
//!
//! ```toml
//! [[leaf]]
//! id = "meter-a"              # its own device id (and identity) at the hub
//! tcp = "10.0.0.2:502"        # or: rtu = "/dev/ttyUSB0" and baud = 9600
//! unit = 1
//!
//! [[leaf.telemetry]]
//! name = "temperature"
//! register = 0                # 0-based, as on the wire
//! table = "holding"           # or "input"
//! type = "i16"                # u16 | i16 | u32 | i32 | f32 (32-bit: high word first)
//! scale = 0.1                 # value = raw * scale
//! poll_ms = 1000
//!
//! [[leaf.command]]
//! name = "setpoint"
//! register = 10               # a holding register
//! type = "u16"
//! scale = 0.1                 # raw = value / scale
//! min = 5.0                   # the allowed range, in scaled units
//! max = 30.0
//! ```
//!
//! Every problem is one [`MappingError`] naming the file, the line and the
//! field (`leaf[1].command[0].max`).

use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One problem in a mapping file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// The mapping file.
    pub file: PathBuf,
    /// The 1-based line, when the problem has a place.
    pub line: Option<usize>,
    /// Dotted path with indices, e.g. `leaf[0].telemetry[1].type`; empty for syntax errors.
    pub field: String,
    /// What is wrong, and the expected form.
    pub problem: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.problem)
        } else {
            write!(f, ": `{}`: {}", self.field, self.problem)
        }
    }
}

impl std::error::Error for MappingError {}

/// How the gateway reaches a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Modbus TCP at this address.
    Tcp(std::net::SocketAddr),
    /// Modbus RTU on a serial line.
    Rtu {
        /// The serial device, e.g. `/dev/ttyUSB0`.
        port: String,
        /// Its baud rate.
        baud: u32,
    },
}

/// Which register table a telemetry point reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    /// Holding registers (function 3).
    Holding,
    /// Input registers (function 4).
    Input,
}

/// How register words encode a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, high word first, unsigned.
    U32,
    /// Two registers, high word first, two's complement.
    I32,
    /// Two registers, high word first, IEEE 754 single.
    F32,
}

impl ValueType {
    /// How many 16-bit registers a value takes.
    pub fn words(self) -> u16 {
        match self {
            ValueType::U16 | ValueType::I16 => 1,
            _ => 2,
        }
    }
}

/// A register read as telemetry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryPoint {
    /// Its key in the leaf's telemetry.
    pub name: String,
    /// The first register, 0-based as on the wire.
    pub register: u16,
    /// The table it is read from (holding by default).
    #[serde(default = "holding")]
    pub table: Table,
    /// How the registers encode it.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// value = raw × scale.
    #[serde(default = "one")]
    pub scale: f64,
    /// How often it is read.
    pub poll_ms: NonZeroU32,
}

/// A command the hub may send for a leaf, and the holding register it writes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandMap {
    /// The command's name in the C2D body (`"command"`).
    pub name: String,
    /// The holding register written, 0-based as on the wire.
    pub register: u16,
    /// How the register(s) encode the value.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// raw = value / scale.
    #[serde(default = "one")]
    pub scale: f64,
    /// The smallest value allowed, in scaled units.
    pub min: f64,
    /// The largest value allowed, in scaled units.
    pub max: f64,
}

/// One legacy device.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    /// Its own device id (and identity) at the hub.
    pub id: String,
    /// How it is reached.
    pub endpoint: Endpoint,
    /// Its Modbus unit id.
    pub unit: u8,
    /// The registers read as its telemetry.
    pub telemetry: Vec<TelemetryPoint>,
    /// The commands it accepts.
    pub commands: Vec<CommandMap>,
}

/// A checked mapping file.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// The file it was read from.
    pub file: PathBuf,
    /// Its leaves, in file order.
    pub leaves: Vec<Leaf>,
}

fn holding() -> Table {
    Table::Holding
}

fn one() -> f64 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    leaf: Vec<toml::Spanned<RawLeaf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLeaf {
    id: String,
    #[serde(default)]
    tcp: Option<String>,
    #[serde(default)]
    rtu: Option<String>,
    #[serde(default)]
    baud: Option<NonZeroU32>,
    unit: u8,
    #[serde(default)]
    telemetry: Vec<toml::Spanned<TelemetryPoint>>,
    #[serde(default)]
    command: Vec<toml::Spanned<CommandMap>>,
}

impl Mapping {
    /// Reads and checks a mapping file.
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|e| MappingError {
            file: path.to_owned(),
            line: None,
            field: String::new(),
            problem: format!("cannot read: {e}"),
        })?;
        Mapping::parse(&text, path)
    }

    /// Checks the text of a mapping file; `file` names it in errors. No I/O.
    pub fn parse(text: &str, file: &Path) -> Result<Mapping, MappingError> {
        let line_at =
            |offset: usize| Some(text[..offset.min(text.len())].matches('\n').count() + 1);
        let err = |field: String, line: Option<usize>, problem: String| MappingError {
            file: file.to_owned(),
            line,
            field,
            problem,
        };
        let de = toml::Deserializer::parse(text).map_err(|e| {
            err(
                String::new(),
                e.span().and_then(|s| line_at(s.start)),
                format!("TOML syntax error: {}", e.message().trim_end()),
            )
        })?;
        let raw: RawMapping = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e
                .path()
                .to_string()
                .split('.')
                .filter(|s| !s.starts_with("$__serde_spanned") && !s.is_empty())
                .collect::<Vec<_>>()
                .join(".");
            // A missing field is named in the message, not in the path.
            let message = e.inner().message();
            let field = match message.strip_prefix("missing field `") {
                Some(rest) => {
                    let name = rest.split('`').next().unwrap_or_default();
                    if field.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{field}.{name}")
                    }
                }
                None => field,
            };
            err(
                field,
                e.inner().span().and_then(|s| line_at(s.start)),
                e.inner().message().trim_end().to_owned(),
            )
        })?;
        if raw.leaf.is_empty() {
            return Err(err("leaf".into(), None, "no [[leaf]]".into()));
        }
        let mut leaves: Vec<Leaf> = Vec::new();
        for (i, spanned) in raw.leaf.into_iter().enumerate() {
            let line = line_at(spanned.span().start);
            let raw = spanned.into_inner();
            let at = |f: &str| format!("leaf[{i}].{f}");
            if raw.id.is_empty() || raw.id.contains(['/', '#', '+']) {
                return Err(err(
                    at("id"),
                    line,
                    format!(
                        "{:?} is not a device id (non-empty, no '/', '#', '+')",
                        raw.id
                    ),
                ));
            }
            if leaves.iter().any(|l| l.id == raw.id) {
                return Err(err(at("id"), line, format!("{:?} is used twice", raw.id)));
            }
            if raw.unit == 0 {
                return Err(err(
                    at("unit"),
                    line,
                    "0 is the broadcast address, which no device answers".into(),
                ));
            }
            let endpoint = match (raw.tcp, raw.rtu, raw.baud) {
                (Some(t), None, None) => Endpoint::Tcp(t.parse().map_err(|_| {
                    err(
                        at("tcp"),
                        line,
                        format!("{t:?} is not an address \"ip:port\""),
                    )
                })?),
                (None, Some(port), Some(baud)) => Endpoint::Rtu {
                    port,
                    baud: baud.get(),
                },
                (None, Some(_), None) => {
                    return Err(err(at("baud"), line, "missing for an RTU leaf".into()))
                }
                (Some(_), _, Some(_)) => {
                    return Err(err(at("baud"), line, "a baud rate for a TCP leaf".into()))
                }
                (Some(_), Some(_), None) => {
                    return Err(err(at("rtu"), line, "both tcp and rtu are set".into()))
                }
                (None, None, _) => {
                    return Err(err(
                        at("tcp"),
                        line,
                        "missing (a leaf needs tcp or rtu)".into(),
                    ))
                }
            };
            let mut telemetry = Vec::new();
            for (j, t) in raw.telemetry.into_iter().enumerate() {
                let line = line_at(t.span().start);
                let t = t.into_inner();
                let at = |f: &str| format!("leaf[{i}].telemetry[{j}].{f}");
                if telemetry.iter().any(|p: &TelemetryPoint| p.name == t.name) {
                    return Err(err(at("name"), line, format!("{:?} is used twice", t.name)));
                }
                if !(t.scale.is_finite() && t.scale != 0.0) {
                    return Err(err(
                        at("scale"),
                        line,
                        "must be a finite non-zero number".into(),
                    ));
                }
                if t.register.checked_add(t.value_type.words() - 1).is_none() {
                    return Err(err(
                        at("register"),
                        line,
                        "the value runs past register 65535".into(),
                    ));
                }
                telemetry.push(t);
            }
            let mut commands = Vec::new();
            for (j, c) in raw.command.into_iter().enumerate() {
                let line = line_at(c.span().start);
                let c = c.into_inner();
                let at = |f: &str| format!("leaf[{i}].command[{j}].{f}");
                if commands.iter().any(|p: &CommandMap| p.name == c.name) {
                    return Err(err(at("name"), line, format!("{:?} is used twice", c.name)));
                }
                if !(c.scale.is_finite() && c.scale != 0.0) {
                    return Err(err(
                        at("scale"),
                        line,
                        "must be a finite non-zero number".into(),
                    ));
                }
                if !(c.min.is_finite() && c.max.is_finite()) || c.min > c.max {
                    return Err(err(
                        at("max"),
                        line,
                        format!("the range {}..={} is empty or not finite", c.min, c.max),
                    ));
                }
                // The whole range must be writable in the register's type.
                for bound in [c.min, c.max] {
                    if crate::translate::encode(c.value_type, bound / c.scale).is_none() {
                        return Err(err(
                            at(if bound == c.min { "min" } else { "max" }),
                            line,
                            format!(
                                "{bound} does not fit a {:?} register at scale {}",
                                c.value_type, c.scale
                            ),
                        ));
                    }
                }
                commands.push(c);
            }
            leaves.push(Leaf {
                id: raw.id,
                endpoint,
                unit: raw.unit,
                telemetry,
                commands,
            });
        }
        Ok(Mapping {
            file: file.to_owned(),
            leaves,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"
[[leaf]]
id = "meter-a"
tcp = "10.0.0.2:502"
unit = 1

[[leaf.telemetry]]
name = "temperature"
register = 0
type = "i16"
scale = 0.1
poll_ms = 1000

[[leaf.telemetry]]
name = "energy"
register = 4
table = "input"
type = "u32"
poll_ms = 5000

[[leaf.command]]
name = "setpoint"
register = 10
type = "u16"
scale = 0.1
min = 5.0
max = 30.0

[[leaf]]
id = "pump-b"
rtu = "/dev/ttyUSB0"
baud = 9600
unit = 7
"#;

    fn parse(text: &str) -> Result<Mapping, MappingError> {
        Mapping::parse(text, Path::new("/etc/gw/mapping.toml"))
    }

    #[test]
    fn the_example_parses_to_what_it_says() {
        let m = parse(EXAMPLE).unwrap();
        assert_eq!(m.leaves.len(), 2);
        let a = &m.leaves[0];
        assert_eq!(a.endpoint, Endpoint::Tcp("10.0.0.2:502".parse().unwrap()));
        assert_eq!(a.telemetry[0].table, Table::Holding, "holding by default");
        assert_eq!(a.telemetry[1].value_type, ValueType::U32);
        assert_eq!(a.telemetry[1].scale, 1.0, "scale 1 by default");
        assert_eq!((a.commands[0].min, a.commands[0].max), (5.0, 30.0));
        assert_eq!(
            m.leaves[1].endpoint,
            Endpoint::Rtu {
                port: "/dev/ttyUSB0".into(),
                baud: 9600
            }
        );
    }

    /// The example with `find` replaced by `with`; the error's field, line and problem.
    fn bad(find: &str, with: &str) -> MappingError {
        assert!(EXAMPLE.contains(find), "{find}");
        parse(&EXAMPLE.replacen(find, with, 1)).unwrap_err()
    }

    fn line_of(needle: &str) -> Option<usize> {
        EXAMPLE
            .lines()
            .position(|l| l.contains(needle))
            .map(|n| n + 1)
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let e = bad("type = \"i16\"", "type = \"i24\"");
        assert_eq!(e.field, "leaf[0].telemetry[0].type", "{e}");
        assert_eq!(e.line, line_of("type = \"i16\""), "{e}");
        assert!(e.to_string().starts_with("/etc/gw/mapping.toml:"), "{e}");
        assert!(e.problem.contains("i24"), "{e}");

        let e = bad("poll_ms = 1000", "poll_ms = 0");
        assert_eq!(e.field, "leaf[0].telemetry[0].poll_ms", "{e}");

        let e = bad("max = 30.0", "max = 3.0");
        assert_eq!(
            (e.field.as_str(), e.line),
            ("leaf[0].command[0].max", line_of("[[leaf.command]]")),
            "{e}"
        );

        let e = bad("max = 30.0", "max = 7000.0");
        assert!(
            e.field.ends_with(".max") && e.problem.contains("does not fit"),
            "{e}"
        );

        let e = bad("unit = 7", "unit = 0");
        assert_eq!(e.field, "leaf[1].unit", "{e}");

        let e = bad("baud = 9600\n", "");
        assert_eq!(e.field, "leaf[1].baud", "{e}");

        let e = bad("tcp = \"10.0.0.2:502\"", "tcp = \"meter.local\"");
        assert_eq!(e.field, "leaf[0].tcp", "{e}");

        let e = bad("id = \"pump-b\"", "id = \"meter-a\"");
        assert_eq!(
            (e.field.as_str(), e.problem.contains("twice")),
            ("leaf[1].id", true),
            "{e}"
        );

        let e = bad("scale = 0.1\npoll", "scale = 0.0\npoll");
        assert_eq!(e.field, "leaf[0].telemetry[0].scale", "{e}");

        let e = bad("unit = 1", "unit = 1\nspeed = 3");
        assert!(
            e.problem.contains("unknown field") && e.problem.contains("speed"),
            "{e}"
        );

        let e = bad("[[leaf.command]]", "[[leaf.command]\n");
        assert!(e.field.is_empty() && e.problem.contains("TOML"), "{e}");

        let e = parse("").unwrap_err();
        assert_eq!(e.field, "leaf", "{e}");
        let e = bad("unit = 7", "");
        assert_eq!(e.field, "leaf[1].unit", "{e}");
    }
}
