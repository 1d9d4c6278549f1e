//! The case's fixture hub. The suite owns it; the rig only says where it
//! listens ([`RigNetwork`]) and in which namespace ([`Rig::netns`]), so a
//! lab rig and an emulated one get the same hub the same way.

use std::net::Ipv4Addr;
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use hub_fixture::clock::TimeScale;
use hub_fixture::hub::{DeviceCredentials, HubConfig, HubFixture, Listeners};
use sacbench_provisioning::{DeviceJson, Provisioning};
use sacbench_rig::{in_netns, Node, Rig, RigError, RigNetwork};

/// The fixture hub of one case: data and TLS key log under `dir`, MQTT on
/// `ip:8883`, EST and firmware on `ip:443`, a server certificate for
/// `host_name` and `ip`.
pub fn case_hub_config(dir: &Path, host_name: &str, ip: Ipv4Addr) -> HubConfig {
    let mut c = HubConfig::for_tests(dir.join("hub"));
    c.host_names = vec![host_name.into(), ip.to_string()];
    c.mqtt_addr = (ip, 8883).into();
    c.https_addr = (ip, 443).into();
    c.key_log = Some(dir.join("tls-keys.log"));
    c
}

/// A running case hub; dropped, it shuts down (its listeners close and its
/// data directory's lock is released).
pub struct CaseHub(HubFixture, HubConfig);

impl CaseHub {
    /// Starts the hub where `rig` says (`net.hub_ipv4`, in the namespace of
    /// [`Node::Hub`]), its MQTT listener on `mqtt_port` instead of 8883 if
    /// given (the case's own bad hub, or nothing, takes 8883).
    pub async fn start(
        rig: &dyn Rig,
        net: &RigNetwork,
        dir: &Path,
        options: HubOptions,
    ) -> Result<CaseHub, RigError> {
        let mut config = case_hub_config(dir, &net.hub_host, net.hub_ipv4);
        if let Some(port) = options.mqtt_port {
            config.mqtt_addr.set_port(port);
        }
        config.time_scale = options.time_scale;
        config.est_cert_lifetime = options.est_cert_lifetime;
        let hub = start_in(rig, config.clone()).await?;
        Ok(CaseHub(hub, config))
    }

    /// Restarts the hub process's part: stops it (every session closed,
    /// nothing accepted), then starts it again on the same data directory
    /// and listening sockets, as a socket-activated service restarts — its
    /// queue, twins, sessions and CA are what it stored. The journal starts
    /// anew (its file keeps both).
    pub async fn restart(&mut self, rig: &dyn Rig) -> Result<(), RigError> {
        let kept = self.0.stop().await;
        self.0 = start_in_with(rig, self.1.clone(), kept).await?;
        Ok(())
    }
}

/// Starts a hub with `config` in the namespace of `rig`'s [`Node::Hub`].
async fn start_in(rig: &dyn Rig, config: HubConfig) -> Result<HubFixture, RigError> {
    start_in_with(rig, config, None).await
}

/// [`start_in`], on a stopped hub's listening sockets if given.
async fn start_in_with(
    rig: &dyn Rig,
    config: HubConfig,
    kept: Option<Listeners>,
) -> Result<HubFixture, RigError> {
    let netns = rig.netns(Node::Hub);
    let handle = tokio::runtime::Handle::current();
    let addr = config.mqtt_addr;
    // The listeners are made on a thread inside the hub's namespace; the
    // wait for it runs off the runtime's threads.
    let started = tokio::task::spawn_blocking(move || {
        in_netns(netns, move || {
            handle.block_on(async move {
                match kept {
                    Some(listeners) => HubFixture::start_on(config, listeners).await,
                    None => HubFixture::start(config).await,
                }
            })
        })
    })
    .await
    .map_err(|e| RigError::Setup(format!("starting the hub: {e}")))??;
    started.map_err(|e| RigError::Setup(format!("starting the hub on {addr}: {e}")))
}

impl CaseHub {}

impl Deref for CaseHub {
    type Target = HubFixture;
    fn deref(&self) -> &HubFixture {
        &self.0
    }
}

impl Drop for CaseHub {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// A rig's hub side, brought up by [`provision_rig`].
pub struct HubSide {
    /// The case's hub.
    pub hub: CaseHub,
    /// One identity per [`Rig::device_ids`], in order.
    pub identities: Vec<DeviceCredentials>,
    /// The rig's network.
    pub net: RigNetwork,
    /// What the DUT was provisioned with, one record per identity (what a
    /// second board of it is handed too).
    pub records: Vec<Provisioning>,
}

/// What a case wants of its hub besides the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct HubOptions {
    /// Its MQTT listener on this port instead of 8883.
    pub mqtt_port: Option<u16>,
    /// Its clock runs at this scale (in step with a time-scaled device).
    pub time_scale: Option<TimeScale>,
    /// Certificates re-enrolled by EST valid this long (on the hub's clock).
    pub est_cert_lifetime: Option<Duration>,
}

/// Starts `rig`'s hub (under `dir`, MQTT on `mqtt_port` if given),
/// registers each of its DUT's identities and provisions the DUT with them,
/// each record first passed to `adjust` (faults, time scale).
pub async fn provision_rig(
    rig: &mut dyn Rig,
    dir: &Path,
    mqtt_port: Option<u16>,
    adjust: impl FnMut(&mut Provisioning),
) -> Result<HubSide, RigError> {
    let options = HubOptions {
        mqtt_port,
        ..HubOptions::default()
    };
    provision_rig_with(rig, dir, options, adjust).await
}

/// [`provision_rig`] with a hub shaped by `options`.
pub async fn provision_rig_with(
    rig: &mut dyn Rig,
    dir: &Path,
    options: HubOptions,
    mut adjust: impl FnMut(&mut Provisioning),
) -> Result<HubSide, RigError> {
    let net = rig.network()?;
    std::fs::create_dir_all(dir).map_err(|e| RigError::Io {
        what: format!("creating {}", dir.display()),
        source: e,
    })?;
    let hub = CaseHub::start(rig, &net, dir, options).await?;
    let mut identities = Vec::new();
    let mut records = Vec::new();
    for id in rig.device_ids() {
        let credentials = hub
            .register_device(&id)
            .map_err(|e| RigError::Setup(format!("registering {id}: {e}")))?;
        let mut record = provisioning_record(&credentials, &net);
        // Only the `extra-destination` fault ever talks to it.
        record.device.extra_destination = net.unused_ipv4.map(|ip| (ip, 443).into());
        adjust(&mut record);
        identities.push(credentials);
        records.push(record);
    }
    rig.provision(dir, &records).await?;
    Ok(HubSide {
        hub,
        identities,
        net,
        records,
    })
}

/// The provisioning record for `credentials` at the case's hub (MQTT 8883,
/// HTTPS 443), no faults: what the DUT is handed.
pub fn provisioning_record(credentials: &DeviceCredentials, net: &RigNetwork) -> Provisioning {
    Provisioning {
        device: DeviceJson::new(&credentials.device_id, &net.hub_host, 8883, 443),
        certificate_pem: credentials.cert_pem.clone(),
        private_key_pem: credentials.key_pem.clone(),
        hub_ca_pem: credentials.ca_pem.clone(),
        image_signing_key_pem: None,
    }
}
