//! The device's side of IoT Hub's MQTT topic surface (`device-contract.md`),
//! as pure functions: topics it builds, and the classification of every topic
//! the hub publishes to it. Property bags use `application/x-www-form-urlencoded`
//! exactly as the hub parses and builds them (`form_urlencoded` on both sides).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The IoT Hub API version named in the CONNECT user name.
pub const API_VERSION: &str = "2021-04-12";

pub(super) const METHODS_FILTER: &str = "$iothub/methods/POST/#";
pub(super) const TWIN_RES_FILTER: &str = "$iothub/twin/res/#";
pub(super) const TWIN_DESIRED_FILTER: &str = "$iothub/twin/PATCH/properties/desired/#";

const METHODS_PREFIX: &str = "$iothub/methods/POST/";
const TWIN_RES_PREFIX: &str = "$iothub/twin/res/";
const TWIN_DESIRED_PREFIX: &str = "$iothub/twin/PATCH/properties/desired/";

/// `{hub-host}/{device-id}/?api-version=2021-04-12`
pub(super) fn user_name(hub_host: &str, device_id: &str) -> String {
    format!("{hub_host}/{device_id}/?api-version={API_VERSION}")
}

/// `devices/{id}/messages/devicebound/#`
pub(super) fn c2d_filter(device_id: &str) -> String {
    format!("devices/{device_id}/messages/devicebound/#")
}

/// `devices/{id}/messages/events/{bag}`
pub(super) fn telemetry_topic<'a>(
    device_id: &str,
    bag: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    format!("devices/{device_id}/messages/events/{}", encode_bag(bag))
}

/// `$iothub/twin/GET/?$rid={rid}`
pub(super) fn twin_get_topic(rid: u32) -> String {
    format!("$iothub/twin/GET/?$rid={rid}")
}

/// `$iothub/twin/PATCH/properties/reported/?$rid={rid}`
pub(super) fn twin_reported_topic(rid: u32) -> String {
    format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}")
}

/// `$iothub/methods/res/{status}/?$rid={rid}`
pub(super) fn method_response_topic(status: u16, rid: &str) -> String {
    format!(
        "$iothub/methods/res/{status}/?{}",
        encode_bag([("$rid", rid)])
    )
}

/// URL-encodes `k=v&k2=v2` as IoT Hub documents it: keys and values
/// form-urlencoded, except that the `$` opening a system property name
/// (`$.ct`, `$rid`) stays literal (`$.ct=application%2Fjson`). The hub's
/// decoder reads both spellings.
pub(super) fn encode_bag<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        let k = match k.strip_prefix('$') {
            Some(rest) => {
                out.push('$');
                rest
            }
            None => k,
        };
        out.extend(form_urlencoded::byte_serialize(k.as_bytes()));
        out.push('=');
        out.extend(form_urlencoded::byte_serialize(v.as_bytes()));
    }
    out
}

/// Decodes `k=v&k2=v2` (a leading `?` allowed).
pub(super) fn parse_bag(bag: &str) -> Vec<(String, String)> {
    let bag = bag.strip_prefix('?').unwrap_or(bag);
    form_urlencoded::parse(bag.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn bag_value(bag: &[(String, String)], key: &str) -> Option<String> {
    bag.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// A topic the hub published on, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Inbound {
    /// `devices/{id}/messages/devicebound/{bag}`, bag decoded.
    Command { bag: Vec<(String, String)> },
    /// `$iothub/methods/POST/{name}/?$rid={rid}`
    Method { name: String, rid: String },
    /// `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]`
    TwinResponse {
        status: u16,
        rid: u32,
        version: Option<i64>,
    },
    /// `$iothub/twin/PATCH/properties/desired/?$version={v}`
    Desired { version: i64 },
}

/// Why an inbound topic was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TopicError {
    /// None of the device's topics (or another device's).
    Unknown,
    /// One of the device's topics, with a part missing or wrong.
    Malformed(&'static str),
}

/// Classifies a topic the hub published on for `device_id`.
pub(super) fn classify(device_id: &str, topic: &str) -> Result<Inbound, TopicError> {
    if let Some(bag) = topic
        .strip_prefix("devices/")
        .and_then(|r| r.strip_prefix(device_id))
        .and_then(|r| r.strip_prefix("/messages/devicebound/"))
    {
        return Ok(Inbound::Command {
            bag: parse_bag(bag),
        });
    }
    if let Some(rest) = topic.strip_prefix(METHODS_PREFIX) {
        // Method names may contain '/' (`credentials/rotate`): the query is
        // after the last "/?".
        let (name, query) = rest
            .rsplit_once("/?")
            .ok_or(TopicError::Malformed("method request without ?$rid="))?;
        if name.is_empty() {
            return Err(TopicError::Malformed("method request without a name"));
        }
        let rid = bag_value(&parse_bag(query), "$rid")
            .filter(|r| !r.is_empty())
            .ok_or(TopicError::Malformed("method request without $rid"))?;
        return Ok(Inbound::Method {
            name: name.to_string(),
            rid,
        });
    }
    if let Some(rest) = topic.strip_prefix(TWIN_RES_PREFIX) {
        let (status, query) = rest
            .split_once("/?")
            .ok_or(TopicError::Malformed("twin response without ?$rid="))?;
        let status = status
            .parse::<u16>()
            .map_err(|_| TopicError::Malformed("twin response status is not a number"))?;
        let bag = parse_bag(query);
        let rid = bag_value(&bag, "$rid")
            .and_then(|r| r.parse::<u32>().ok())
            .ok_or(TopicError::Malformed(
                "twin response without a numeric $rid",
            ))?;
        let version = match bag_value(&bag, "$version") {
            Some(v) => Some(
                v.parse::<i64>()
                    .map_err(|_| TopicError::Malformed("twin response $version is not a number"))?,
            ),
            None => None,
        };
        return Ok(Inbound::TwinResponse {
            status,
            rid,
            version,
        });
    }
    if let Some(query) = topic.strip_prefix(TWIN_DESIRED_PREFIX) {
        let version = bag_value(&parse_bag(query), "$version")
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or(TopicError::Malformed(
                "desired patch without a numeric $version",
            ))?;
        return Ok(Inbound::Desired { version });
    }
    Err(TopicError::Unknown)
}
