//! A rig file's `[labgrid]` (parsed with the rest of the file in
//! `lab/config.rs`), and the rig file on an acquired place
//! ([`RigConfig::on_place`]).

use std::net::Ipv4Addr;

use crate::lab::config::RigConfig;

/// `[labgrid]`: the place on a labgrid coordinator that this rig is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabgridConfig {
    /// The coordinator's gRPC address, `host:port` (plaintext, labgrid's default).
    pub coordinator: String,
    /// Which place: by name, or any with these tags.
    pub selector: super::PlaceSelector,
    /// How long to wait for the place while others hold it, in seconds.
    pub timeout_s: u32,
}

/// How long a bench waits for a labgrid place when `labgrid.timeout_s` is not given.
pub const DEFAULT_LABGRID_TIMEOUT_S: u32 = 600;

impl RigConfig {
    /// This rig on an acquired labgrid place: the place's console, power and
    /// link in place of `[labgrid]`.
    /// `provider` says who provides them, for their failures. The place's
    /// `NetworkService` address is the DUT's IPv4 address when the rig file
    /// gives none, and must be it when the rig file does (else the run would
    /// judge another board than the one it powers).
    pub fn on_place(
        &self,
        resolved: &super::Resolved,
        provider: String,
    ) -> Result<RigConfig, String> {
        let mut dut = self.dut.clone();
        let from_place = resolved.dut_address.as_deref();
        let place_v4 = from_place.and_then(|a| a.parse::<Ipv4Addr>().ok());
        match (dut.ipv4, from_place) {
            (Some(mine), Some(theirs)) if place_v4 != Some(mine) => {
                return Err(format!(
                    "the rig file's dut.ipv4 {mine} is not the place's NetworkService address {theirs}: which board is this rig?"
                ));
            }
            (None, Some(theirs)) => match place_v4 {
                Some(v4) => dut.ipv4 = Some(v4),
                None if dut.ipv6_link_local.is_none() => {
                    return Err(format!(
                        "no DUT address: the rig file has none, and the place's NetworkService address {theirs:?} is not an IPv4 address"
                    ))
                }
                None => {}
            },
            (None, None) if dut.ipv6_link_local.is_none() => {
                return Err(
                    "no DUT address: the rig file has no [dut] address and the place no NetworkService".into(),
                );
            }
            _ => {}
        }
        Ok(RigConfig {
            console: resolved.console.clone(),
            power: resolved.power.clone(),
            link: resolved.link.clone(),
            power_port: resolved.power_port.clone(),
            dut,
            labgrid: None,
            provider: Some(provider),
            ..self.clone()
        })
    }
}
