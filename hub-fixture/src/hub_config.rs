//! [`HubConfig`]: everything that shapes a hub run, and its defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::clock::TimeScale;
use crate::store::StoreConfig;

#[cfg(doc)]
use super::HubFixture;

/// Everything that shapes a hub run.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// SQLite store, CA, journal and firmware live here; a restart on the same
    /// directory keeps them.
    pub data_dir: PathBuf,
    /// Names in the server certificate; the first one is *the* hub host name
    /// (CONNECT user names must start with it).
    pub host_names: Vec<String>,
    /// Address of the MQTT-over-TLS listener (IoT Hub's port is 8883); port 0
    /// picks a free one, see [`HubFixture::mqtt_addr`].
    pub mqtt_addr: SocketAddr,
    /// Address of the HTTPS listener (EST and firmware; port 443); port 0 picks
    /// a free one, see [`HubFixture::https_addr`].
    pub https_addr: SocketAddr,
    /// Admin HTTP endpoint; must be a loopback address. `None`: in-process only.
    pub admin_addr: Option<SocketAddr>,
    /// Largest MQTT packet (remaining length) a session accepts, bytes; a
    /// larger one closes the connection.
    pub max_packet_size: usize,
    /// A client that has not finished its TLS handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// A TLS client that has not sent CONNECT by then is dropped.
    pub connect_timeout: Duration,
    /// HTTPS: a request head must arrive whole within this, counted from the
    /// TLS handshake for a connection's first request and from the first
    /// byte for later ones; else the connection is dropped (slow clients
    /// must not hold connections open).
    pub https_header_timeout: Duration,
    /// HTTPS: a keep-alive connection with no request under way for this long
    /// is dropped.
    pub https_idle_timeout: Duration,
    /// How many C2D messages a session may have in flight (sent, not yet
    /// PUBACKed) at once.
    pub c2d_window: usize,
    /// C2D queue limits: depth, default and maximum TTL, maximum delivery count.
    pub store: StoreConfig,
    /// Write TLS secrets (NSS key log format) here, for the capture.
    pub key_log: Option<PathBuf>,
    /// Validity of device certificates the hub issues (registration, EST).
    pub device_cert_days: u64,
    /// When set, certificates issued by EST re-enrolment are valid for this
    /// long instead (from a second before issue, on the hub's clock):
    /// short-lived certificates for the renewal cases, on a time-scaled clock.
    pub est_cert_lifetime: Option<Duration>,
    /// When set, the hub's clock runs at this scale (in step with a
    /// time-scaled device's clock).
    pub time_scale: Option<TimeScale>,
}

impl HubConfig {
    /// Loopback, ephemeral ports, defaults everywhere else: what tests want.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            host_names: vec!["localhost".into(), "127.0.0.1".into()],
            mqtt_addr: "127.0.0.1:0".parse().expect("addr"),
            https_addr: "127.0.0.1:0".parse().expect("addr"),
            admin_addr: None,
            ..Self::default()
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("hub-data"),
            host_names: vec!["hub.sacbench.test".into()],
            mqtt_addr: "127.0.0.1:8883".parse().expect("addr"),
            https_addr: "127.0.0.1:443".parse().expect("addr"),
            admin_addr: None,
            max_packet_size: 256 * 1024,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            https_header_timeout: Duration::from_secs(10),
            https_idle_timeout: Duration::from_secs(10),
            c2d_window: 8,
            store: StoreConfig::default(),
            key_log: None,
            device_cert_days: 365,
            est_cert_lifetime: None,
            time_scale: None,
        }
    }
}
