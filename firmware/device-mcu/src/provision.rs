//! The device's provisioning — **a build-time stand-in** for the
//! provisioning record in flash that comes next (README, "Next"): the CA it
//! trusts, its client certificate and P-256 key, a per-unit random seed,
//! the hub's name and address, the SNTP server and a time floor (Unix
//! seconds: the provisioning time, before which no clock reading is
//! believed), all fixed when the image
//! is built (build.rs copies the files of `DEVICE_MCU_PROVISION` into the
//! image). An image built without them is the bring-up image (TCP hello
//! only) and makes no TLS connection.

use smoltcp::wire::Ipv4Address;

/// The provisioned CA certificate (DER): the only trust anchor.
static CA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/provision/ca.der"));
/// The device's certificate (DER), sent when the hub asks for one.
static CLIENT_CERT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/provision/client.der"));
/// The device's P-256 key (PKCS#8 DER).
static CLIENT_KEY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/provision/client.key.der"));
/// 32 random bytes per unit: the DRBG's secret seed (AN385 has no TRNG).
static SEED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/provision/seed.bin"));

/// What the TLS client needs.
pub struct Provisioning {
    /// CA certificate, DER.
    pub ca: &'static [u8],
    /// Client certificate, DER.
    pub client_cert: &'static [u8],
    /// Client key, PKCS#8 DER.
    pub client_key: &'static [u8],
    /// Secret seed for the DRBG.
    pub seed: &'static [u8; 32],
    /// The hub's host name: SNI and the name its certificate must carry.
    pub hub_name: &'static str,
    /// The hub's address (no DNS yet).
    pub hub: (Ipv4Address, u16),
    /// The SNTP server.
    pub sntp: (Ipv4Address, u16),
    /// Unix seconds the device's clock may never be earlier than (the
    /// provisioning time): SNTP answers before it are refused.
    pub time_floor: u64,
}

/// Why the image has no usable provisioning.
#[derive(Debug)]
pub enum Missing {
    /// No credential files were built in (the bring-up image).
    Credentials,
    /// The seed is not 32 bytes.
    Seed,
    /// `DEVICE_MCU_HUB_NAME` unset.
    HubName,
    /// `DEVICE_MCU_HUB` unset or not address:port.
    Hub,
    /// `DEVICE_MCU_SNTP` unset or not address:port.
    Sntp,
    /// `DEVICE_MCU_TIME_FLOOR` unset or not Unix seconds.
    TimeFloor,
}

/// The provisioning built into this image.
pub fn load() -> Result<Provisioning, Missing> {
    if CA.is_empty() || CLIENT_CERT.is_empty() || CLIENT_KEY.is_empty() {
        return Err(Missing::Credentials);
    }
    let seed = <&[u8; 32]>::try_from(SEED).map_err(|_| Missing::Seed)?;
    let hub_name = option_env!("DEVICE_MCU_HUB_NAME")
        .filter(|n| !n.is_empty())
        .ok_or(Missing::HubName)?;
    let hub = option_env!("DEVICE_MCU_HUB")
        .and_then(crate::config::parse_endpoint)
        .ok_or(Missing::Hub)?;
    let sntp = option_env!("DEVICE_MCU_SNTP")
        .and_then(crate::config::parse_endpoint)
        .ok_or(Missing::Sntp)?;
    let time_floor = option_env!("DEVICE_MCU_TIME_FLOOR")
        .and_then(|s| s.parse().ok())
        .ok_or(Missing::TimeFloor)?;
    Ok(Provisioning {
        ca: CA,
        client_cert: CLIENT_CERT,
        client_key: CLIENT_KEY,
        seed,
        hub_name,
        hub,
        sntp,
        time_floor,
    })
}
