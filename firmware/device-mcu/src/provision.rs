//! The device's provisioning, read at run time from the provisioning
//! region of its flash map: the last 64 KB of the code memory
//! (`PROVISION_ADDR`, kept out of the link by memory.x), which the rig fills
//! at power-on from a file (`-device loader,file=prov.bin,addr=0x3f0000`).
//! The record's format is `provfmt.rs`; one image takes any provisioning.
//! A region without a record, or with one that fails its checks, leaves the
//! device unprovisioned: it says why and does not connect to a hub.

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::provfmt::{self, Hub, Refused};

/// Where the provisioning region starts (mps2-an385 SSRAM1, last 64 KB).
pub const PROVISION_ADDR: usize = 0x003f_0000;
/// How long it is.
pub const PROVISION_LEN: usize = 64 * 1024;

/// What the device needs to reach and authenticate to its hub.
pub struct Provisioning {
    /// CA certificate, DER.
    pub ca: &'static [u8],
    /// Client certificate, DER.
    pub client_cert: &'static [u8],
    /// Client key, PKCS#8 DER.
    pub client_key: &'static [u8],
    /// Secret seed for the DRBG.
    pub seed: &'static [u8; 32],
    /// The device id: MQTT client id and topic component.
    pub device_id: &'static str,
    /// The hub's host name: SNI and the name its certificate must carry.
    pub hub_name: &'static str,
    /// The record's version.
    pub version: u16,
    /// Where the hub is: its address (v1), or its DNS server (v2, `dns.rs`).
    pub hub: Hub,
    /// The hub's HTTPS port (EST).
    pub https_port: u16,
    /// The SNTP server.
    pub sntp: (Ipv4Address, u16),
    /// Unix seconds the device's clock may never be earlier than (the
    /// provisioning time): SNTP answers before it are refused.
    pub time_floor: u64,
    /// The device's own address and prefix.
    pub address: Ipv4Cidr,
    /// Its default gateway.
    pub gateway: Ipv4Address,
}

/// The region's bytes.
fn region() -> &'static [u8] {
    // SAFETY: 0x003f_0000..0x0040_0000 is SSRAM1 on mps2-an385, always
    // mapped and readable; memory.x keeps the image out of it and nothing
    // in the firmware writes it, so a shared 'static view is sound.
    unsafe { core::slice::from_raw_parts(PROVISION_ADDR as *const u8, PROVISION_LEN) }
}

/// Reads and checks the record in the provisioning region.
pub fn load() -> Result<Provisioning, Refused> {
    let r = provfmt::parse(region())?;
    let ip = |a: [u8; 4]| Ipv4Address::new(a[0], a[1], a[2], a[3]);
    Ok(Provisioning {
        ca: r.ca,
        client_cert: r.cert,
        client_key: r.key,
        seed: r.seed,
        device_id: r.device_id,
        hub_name: r.hub_name,
        version: r.version,
        hub: r.hub,
        https_port: r.https_port,
        sntp: (ip(r.sntp.0), r.sntp.1),
        time_floor: r.time_floor,
        address: Ipv4Cidr::new(ip(r.ip), r.prefix),
        gateway: ip(r.gateway),
    })
}
