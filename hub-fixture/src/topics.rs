//! The Azure IoT Hub MQTT topic surface, as pure functions: what a device may
//! publish and subscribe, property bags, and the topics the hub sends on.
//!
//! Every topic a device names is classified here; anything not recognised is
//! an ACL violation, which closes the session (as IoT Hub does).

use std::fmt;

/// A subscription filter a device may ask for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Subscription {
    /// `devices/{id}/messages/devicebound/#`
    CloudToDevice,
    /// `$iothub/methods/POST/#`
    Methods,
    /// `$iothub/twin/res/#`
    TwinResponses,
    /// `$iothub/twin/PATCH/properties/desired/#`
    TwinDesired,
}

impl Subscription {
    /// Classifies `filter` for `device_id`; `None` is an ACL violation.
    pub fn parse(device_id: &str, filter: &str) -> Option<Self> {
        match filter {
            "$iothub/methods/POST/#" => Some(Self::Methods),
            "$iothub/twin/res/#" => Some(Self::TwinResponses),
            "$iothub/twin/PATCH/properties/desired/#" => Some(Self::TwinDesired),
            f if f
                .strip_prefix("devices/")
                .and_then(|r| r.strip_prefix(device_id))
                == Some("/messages/devicebound/#") =>
            {
                Some(Self::CloudToDevice)
            }
            _ => None,
        }
    }
}

/// A publish from a device, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePublish {
    /// `devices/{id}/messages/events/{property-bag}`
    Telemetry {
        /// The topic's property bag, decoded, in topic order (empty if none).
        properties: Vec<(String, String)>,
    },
    /// `$iothub/twin/GET/?$rid={rid}`
    TwinGet {
        /// The device's request id, echoed in the hub's response topic.
        rid: String,
    },
    /// `$iothub/twin/PATCH/properties/reported/?$rid={rid}`
    TwinReported {
        /// The device's request id, echoed in the hub's response topic.
        rid: String,
    },
    /// `$iothub/methods/res/{status}/?$rid={rid}`
    MethodResponse {
        /// The method's result status, chosen by the device (HTTP-style, e.g. 200).
        status: u16,
        /// The request id of the method call this answers.
        rid: String,
    },
}

/// Why a topic was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicError {
    /// Not one of this device's topics (another device's, or unknown).
    NotAllowed,
    /// One of the device's topics, but without the `$rid` it needs, or with a bad status.
    Malformed(&'static str),
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::NotAllowed => f.write_str("topic is not one of this device's topics"),
            TopicError::Malformed(why) => f.write_str(why),
        }
    }
}

impl DevicePublish {
    /// Classifies a publish topic of `device_id`.
    pub fn parse(device_id: &str, topic: &str) -> Result<Self, TopicError> {
        if let Some(rest) = topic
            .strip_prefix("devices/")
            .and_then(|r| r.strip_prefix(device_id))
            .and_then(|r| r.strip_prefix("/messages/events/"))
        {
            return Ok(Self::Telemetry {
                properties: parse_property_bag(rest),
            });
        }
        if let Some(rest) = topic.strip_prefix("$iothub/twin/GET/") {
            return Ok(Self::TwinGet { rid: rid_of(rest)? });
        }
        if let Some(rest) = topic.strip_prefix("$iothub/twin/PATCH/properties/reported/") {
            return Ok(Self::TwinReported { rid: rid_of(rest)? });
        }
        if let Some(rest) = topic.strip_prefix("$iothub/methods/res/") {
            let (status, rest) = rest
                .split_once('/')
                .ok_or(TopicError::Malformed("method response without status"))?;
            let status = status
                .parse::<u16>()
                .map_err(|_| TopicError::Malformed("method response status is not a number"))?;
            return Ok(Self::MethodResponse {
                status,
                rid: rid_of(rest)?,
            });
        }
        Err(TopicError::NotAllowed)
    }
}

/// The `$rid` of a `?$rid=..` suffix.
fn rid_of(rest: &str) -> Result<String, TopicError> {
    let query = rest
        .strip_prefix('?')
        .ok_or(TopicError::Malformed("missing ?$rid="))?;
    parse_property_bag(query)
        .into_iter()
        .find(|(k, _)| k == "$rid")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
        .ok_or(TopicError::Malformed("missing $rid"))
}

/// Parses a URL-encoded property bag (`k=v&k2=v2`, leading `?` allowed).
pub fn parse_property_bag(bag: &str) -> Vec<(String, String)> {
    let bag = bag.strip_prefix('?').unwrap_or(bag);
    form_urlencoded::parse(bag.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Encodes a property bag. Keys and values are percent-encoded as Azure does
/// (`/` in `$.to` becomes `%2F`).
pub fn encode_property_bag(props: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in props {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Topic of a C2D message: `devices/{id}/messages/devicebound/{bag}`.
pub fn c2d_topic(device_id: &str, bag: &[(String, String)]) -> String {
    format!(
        "devices/{device_id}/messages/devicebound/{}",
        encode_property_bag(bag)
    )
}

/// Topic of a direct method request.
pub fn method_request_topic(name: &str, rid: &str) -> String {
    format!("$iothub/methods/POST/{name}/?$rid={rid}")
}

/// Topic of a twin response.
pub fn twin_response_topic(status: u16, rid: &str, version: Option<i64>) -> String {
    match version {
        Some(v) => format!("$iothub/twin/res/{status}/?$rid={rid}&$version={v}"),
        None => format!("$iothub/twin/res/{status}/?$rid={rid}"),
    }
}

/// Topic of a desired-properties notification.
pub fn twin_desired_topic(version: i64) -> String {
    format!("$iothub/twin/PATCH/properties/desired/?$version={version}")
}

/// Checks the CONNECT user name: `{hub-host}/{device-id}/?api-version=...`.
pub fn check_user_name(user_name: &str, hub_host: &str, device_id: &str) -> Result<(), String> {
    let rest = user_name
        .strip_prefix(hub_host)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_prefix(device_id))
        .and_then(|r| r.strip_prefix("/?"))
        .ok_or_else(|| {
            format!("user name {user_name:?} is not \"{hub_host}/{device_id}/?api-version=...\"")
        })?;
    if parse_property_bag(rest)
        .iter()
        .any(|(k, v)| k == "api-version" && !v.is_empty())
    {
        Ok(())
    } else {
        Err(format!("user name {user_name:?} has no api-version"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_per_device() {
        let p = |f| Subscription::parse("dev-1", f);
        assert_eq!(
            p("devices/dev-1/messages/devicebound/#"),
            Some(Subscription::CloudToDevice)
        );
        assert_eq!(p("devices/dev-2/messages/devicebound/#"), None);
        assert_eq!(p("devices/dev-1/messages/devicebound/+"), None);
        assert_eq!(p("devices/+/messages/devicebound/#"), None);
        assert_eq!(p("#"), None);
        assert_eq!(p("$iothub/methods/POST/#"), Some(Subscription::Methods));
        assert_eq!(p("$iothub/twin/res/#"), Some(Subscription::TwinResponses));
        assert_eq!(
            p("$iothub/twin/PATCH/properties/desired/#"),
            Some(Subscription::TwinDesired)
        );
    }

    #[test]
    fn publishes_are_classified() {
        let p = |t| DevicePublish::parse("dev-1", t);
        assert_eq!(
            p("devices/dev-1/messages/events/a=1&%24.ct=application%2Fjson"),
            Ok(DevicePublish::Telemetry {
                properties: vec![
                    ("a".into(), "1".into()),
                    ("$.ct".into(), "application/json".into())
                ]
            })
        );
        assert_eq!(
            p("devices/dev-1/messages/events/"),
            Ok(DevicePublish::Telemetry { properties: vec![] })
        );
        assert_eq!(
            p("devices/dev-2/messages/events/"),
            Err(TopicError::NotAllowed)
        );
        assert_eq!(
            p("devices/dev-1/messages/devicebound/"),
            Err(TopicError::NotAllowed)
        );
        assert_eq!(
            p("$iothub/twin/GET/?$rid=7"),
            Ok(DevicePublish::TwinGet { rid: "7".into() })
        );
        assert!(matches!(
            p("$iothub/twin/GET/"),
            Err(TopicError::Malformed(_))
        ));
        assert_eq!(
            p("$iothub/twin/PATCH/properties/reported/?$rid=x1"),
            Ok(DevicePublish::TwinReported { rid: "x1".into() })
        );
        assert_eq!(
            p("$iothub/methods/res/202/?$rid=5"),
            Ok(DevicePublish::MethodResponse {
                status: 202,
                rid: "5".into()
            })
        );
        assert!(matches!(
            p("$iothub/methods/res/abc/?$rid=5"),
            Err(TopicError::Malformed(_))
        ));
        assert_eq!(
            p("$iothub/methods/POST/x/?$rid=1"),
            Err(TopicError::NotAllowed)
        );
    }

    #[test]
    fn property_bag_round_trip() {
        let bag = vec![
            ("$.mid".to_string(), "m 1".to_string()),
            (
                "$.to".to_string(),
                "/devices/d/messages/deviceBound".to_string(),
            ),
            ("k&=".to_string(), "v/?".to_string()),
        ];
        let enc = encode_property_bag(&bag);
        assert!(enc.contains("%2Fdevices%2Fd"), "{enc}");
        assert_eq!(parse_property_bag(&enc), bag);
        assert!(c2d_topic("d", &bag).starts_with("devices/d/messages/devicebound/%24.mid=m+1"));
    }

    #[test]
    fn user_name_form() {
        assert!(check_user_name(
            "hub.test/dev-1/?api-version=2021-04-12",
            "hub.test",
            "dev-1"
        )
        .is_ok());
        assert!(check_user_name(
            "hub.test/dev-2/?api-version=2021-04-12",
            "hub.test",
            "dev-1"
        )
        .is_err());
        assert!(
            check_user_name("other/dev-1/?api-version=2021-04-12", "hub.test", "dev-1").is_err()
        );
        assert!(check_user_name("hub.test/dev-1/", "hub.test", "dev-1").is_err());
    }
}
