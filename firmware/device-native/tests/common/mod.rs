//! Shared test support for the device's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sacbench_provisioning::{DeviceJson, Provisioning};

/// Writes a provisioning directory `dir` for `device_id` at `hub_host`
/// (which must resolve: `localhost` in these tests) and returns its path.
#[allow(clippy::too_many_arguments)]
pub fn provisioning_dir(
    dir: &Path,
    device_id: &str,
    hub_host: &str,
    mqtt_port: u16,
    https_port: u16,
    pems: (&str, &str, &str),
    faults: &[&str],
) -> PathBuf {
    let mut device = DeviceJson::new(device_id, hub_host, mqtt_port, https_port);
    device.faults = faults.iter().map(|f| f.to_string()).collect();
    let (ca, cert, key) = pems;
    sacbench_provisioning::write(
        dir,
        &Provisioning {
            device,
            certificate_pem: cert.into(),
            private_key_pem: key.into(),
            hub_ca_pem: ca.into(),
            image_signing_key_pem: None,
        },
    )
    .expect("provisioning directory");
    dir.to_path_buf()
}

/// A provisioning directory whose credentials are placeholders (valid PEM
/// shape, no key inside): for tests where the device never completes a
/// handshake — its hub port refuses, or the test is about the bootloader or
/// logs.
pub fn placeholder_provisioning(
    dir: &Path,
    device_id: &str,
    port: u16,
    faults: &[&str],
) -> PathBuf {
    let pem = |label: &str| format!("-----BEGIN {label}-----\nAA==\n-----END {label}-----\n");
    provisioning_dir(
        dir,
        device_id,
        "localhost",
        port,
        port,
        (
            &pem("CERTIFICATE"),
            &pem("CERTIFICATE"),
            &pem("PRIVATE KEY"),
        ),
        faults,
    )
}

/// An emulated rig with its hub side (the suites' own: hub started where
/// the rig says, the DUT registered and provisioned). The rig goes first
/// when dropped (fields drop in order), then the hub.
pub struct ProvisionedRig {
    pub rig: sacbench_rig::emulated::EmulatedRig,
    pub side: sacbench_suites::case_hub::HubSide,
}

impl ProvisionedRig {
    /// Starts the rig of `config` and its hub; the provisioning carries the
    /// config's faults and the DUT file's image-signing key.
    pub async fn start(
        config: sacbench_rig::emulated::EmulatedRigConfig,
    ) -> Result<ProvisionedRig, sacbench_rig::RigError> {
        let faults = config.faults.clone();
        let key = sacbench_rig::image_public_key(&config.dut)?;
        let dir = config.dir.clone();
        let mut rig = sacbench_rig::emulated::EmulatedRig::start(config).await?;
        let side = sacbench_suites::case_hub::provision_rig(&mut rig, &dir, None, |r| {
            r.device.faults = faults.clone();
            r.image_signing_key_pem = key.clone();
        })
        .await?;
        Ok(ProvisionedRig { rig, side })
    }

    /// Waits for a console line matching `pred` since the rig came up.
    pub async fn wait_console(
        &self,
        guard: std::time::Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        sacbench_rig::wait_console(&self.rig, guard, pred).await
    }

    /// The case hub.
    pub fn hub(&self) -> &hub_fixture::hub::HubFixture {
        &self.side.hub
    }
}

impl std::ops::Deref for ProvisionedRig {
    type Target = sacbench_rig::emulated::EmulatedRig;
    fn deref(&self) -> &Self::Target {
        &self.rig
    }
}

impl std::ops::DerefMut for ProvisionedRig {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.rig
    }
}
