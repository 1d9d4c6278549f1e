//! The gateway's pure translations: register words ⇄ values, a C2D command
//! ⇄ a register write (or a refusal), and telemetry messages. No I/O.

use serde_json::{json, Value};

use crate::mapping::{CommandMap, Leaf, TelemetryPoint, ValueType};

/// Register words (big-endian, high word first) → value, before scaling.
pub fn decode(t: ValueType, words: &[u16]) -> Option<f64> {
    let w32 = || Some(((*words.first()? as u32) << 16) | *words.get(1)? as u32);
    Some(match t {
        ValueType::U16 => *words.first()? as f64,
        ValueType::I16 => *words.first()? as i16 as f64,
        ValueType::U32 => w32()? as f64,
        ValueType::I32 => w32()? as i32 as f64,
        ValueType::F32 => f32::from_bits(w32()?) as f64,
    })
}

/// A raw (unscaled) value → register words; `None` if it does not fit the type.
pub fn encode(t: ValueType, raw: f64) -> Option<Vec<u16>> {
    if !raw.is_finite() {
        return None;
    }
    let int = |lo: f64, hi: f64| {
        let r = raw.round();
        (lo..=hi).contains(&r).then_some(r)
    };
    let split = |v: u32| vec![(v >> 16) as u16, v as u16];
    Some(match t {
        ValueType::U16 => vec![int(0.0, u16::MAX as f64)? as u16],
        ValueType::I16 => vec![int(i16::MIN as f64, i16::MAX as f64)? as i16 as u16],
        ValueType::U32 => split(int(0.0, u32::MAX as f64)? as u32),
        ValueType::I32 => split(int(i32::MIN as f64, i32::MAX as f64)? as i32 as u32),
        ValueType::F32 => split((raw as f32).to_bits()),
    })
}

/// A telemetry point's value from its registers.
pub fn point_value(p: &TelemetryPoint, words: &[u16]) -> Option<f64> {
    decode(p.value_type, words).map(|v| v * p.scale)
}

/// What to write for a command.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterWrite {
    /// The command's name.
    pub command: String,
    /// The holding register written first.
    pub register: u16,
    /// The words written from it on.
    pub words: Vec<u16>,
}

/// Why a command was not written.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The command's name, when the body had one.
    pub command: Option<String>,
    /// Why it was refused.
    pub reason: String,
}

/// A C2D payload `{"command": NAME, "value": NUMBER}` for `leaf` → the write
/// its mapping allows, or why there is none. With `unchecked` (the
/// `unchecked-commands` fault) the mapping is not consulted: an unknown
/// command with a `"register"` field and out-of-range values are written.
pub fn decide(leaf: &Leaf, payload: &[u8], unchecked: bool) -> Result<RegisterWrite, Refusal> {
    let refuse = |command: Option<&str>, reason: String| Refusal {
        command: command.map(str::to_owned),
        reason,
    };
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| refuse(None, format!("payload is not JSON: {e}")))?;
    let name = v
        .get("command")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse(None, "no \"command\" string".into()))?;
    let value = v
        .get("value")
        .and_then(Value::as_f64)
        .ok_or_else(|| refuse(Some(name), "no numeric \"value\"".into()))?;
    let Some(map) = leaf.commands.iter().find(|c| c.name == name) else {
        if let (true, Some(register)) = (unchecked, v.get("register").and_then(Value::as_u64)) {
            return Ok(RegisterWrite {
                command: name.into(),
                register: register as u16,
                words: vec![value as u16],
            });
        }
        return Err(refuse(
            Some(name),
            format!("{name:?} is not a command of {} in the mapping", leaf.id),
        ));
    };
    if !unchecked && !(map.min..=map.max).contains(&value) {
        return Err(refuse(
            Some(name),
            format!("{value} is outside {}..={}", map.min, map.max),
        ));
    }
    let words = encode(map.value_type, value / map.scale)
        .or_else(|| unchecked.then(|| vec![value as u16]))
        .ok_or_else(|| refuse(Some(name), format!("{value} does not fit the register")))?;
    Ok(RegisterWrite {
        command: name.into(),
        register: map.register,
        words,
    })
}

/// The telemetry message body for one reading: `{NAME: value, "seq": n,
/// "dropped": d}` (`seq` counts the leaf's readings; `dropped` how many the
/// buffer has dropped so far while the hub was unreachable).
pub fn telemetry_body(name: &str, value: f64, seq: u64, dropped: u64) -> Value {
    json!({ name: value, "seq": seq, "dropped": dropped })
}

/// The command map by name (for logs).
pub fn command<'a>(leaf: &'a Leaf, name: &str) -> Option<&'a CommandMap> {
    leaf.commands.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{Endpoint, Mapping};
    use std::path::Path;

    #[test]
    fn words_round_trip_in_every_type() {
        for (t, raw) in [
            (ValueType::U16, 65535.0),
            (ValueType::I16, -215.0),
            (ValueType::U32, 4_000_000_000.0),
            (ValueType::I32, -2_000_000_000.0),
            (ValueType::F32, 21.5),
        ] {
            let w = encode(t, raw).unwrap();
            assert_eq!(w.len() as u16, t.words());
            assert_eq!(decode(t, &w), Some(raw), "{t:?}");
        }
        assert_eq!(encode(ValueType::U16, -1.0), None);
        assert_eq!(encode(ValueType::I16, 40000.0), None);
        assert_eq!(encode(ValueType::F32, f64::NAN), None);
        assert_eq!(decode(ValueType::U32, &[1]), None, "short read");
        // High word first.
        assert_eq!(encode(ValueType::U32, 65536.0).unwrap(), vec![1, 0]);
    }

    fn leaf() -> Leaf {
        let text = "[[leaf]]\nid = \"a\"\ntcp = \"10.0.0.2:502\"\nunit = 1\n\
                    [[leaf.command]]\nname = \"setpoint\"\nregister = 10\ntype = \"u16\"\nscale = 0.1\nmin = 5.0\nmax = 30.0\n";
        let m = Mapping::parse(text, Path::new("m.toml")).unwrap();
        assert!(matches!(m.leaves[0].endpoint, Endpoint::Tcp(_)));
        m.leaves[0].clone()
    }

    #[test]
    fn commands_in_the_mapping_and_in_range_become_writes() {
        let w = decide(&leaf(), br#"{"command":"setpoint","value":21.5}"#, false).unwrap();
        assert_eq!((w.register, w.words), (10, vec![215]));
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let l = leaf();
        for (payload, why) in [
            (&br#"{"command":"setpoint","value":31}"#[..], "outside"),
            (br#"{"command":"setpoint","value":4.9}"#, "outside"),
            (
                br#"{"command":"reboot","value":1,"register":99}"#,
                "not a command",
            ),
            (br#"{"command":"setpoint"}"#, "value"),
            (br#"{"value":3}"#, "command"),
            (b"setpoint=3", "JSON"),
        ] {
            let r = decide(&l, payload, false).unwrap_err();
            assert!(r.reason.contains(why), "{r:?}");
        }
    }

    #[test]
    fn the_unchecked_fault_writes_what_it_should_refuse() {
        let l = leaf();
        let w = decide(&l, br#"{"command":"setpoint","value":31}"#, true).unwrap();
        assert_eq!(w.words, vec![310]);
        let w = decide(&l, br#"{"command":"reboot","value":1,"register":99}"#, true).unwrap();
        assert_eq!((w.register, w.words), (99, vec![1]));
    }

    #[test]
    fn telemetry_bodies_carry_the_counters() {
        let b = telemetry_body("temperature", 21.5, 7, 2);
        assert_eq!(b, json!({"temperature": 21.5, "seq": 7, "dropped": 2}));
    }
}
