//! The values `[emulated] command`'s placeholders stand for, one power-on's.

use std::path::PathBuf;

/// Values of the placeholders of `[emulated] command` for one power-on.
#[derive(Debug, Clone)]
pub struct Placeholders {
    /// `{provisioning}`: the directory the bench wrote the device's
    /// provisioning into.
    pub provisioning: PathBuf,
    /// `{state}`: the board's persistent directory (its flash), kept across
    /// power cycles within a case.
    pub state: PathBuf,
    /// `{device_id}`: the hub identity the device connects as.
    pub device_id: String,
    /// `{hub_host}`: the hub's DNS name the device dials.
    pub hub_host: String,
    /// `{sacbench_bin}`: the folder of sacbench's own executables.
    pub sacbench_bin: PathBuf,
    /// `{dut_dir}`: the DUT file's folder.
    pub dut_dir: PathBuf,
    /// A board on `network = "tap"`: its link and addresses.
    pub tap: Option<TapPlaceholders>,
}

/// The placeholders of a board on `network = "tap"`.
#[derive(Debug, Clone)]
pub struct TapPlaceholders {
    /// `{bridge}`: the bridge in the DUT's namespace that joins its link;
    /// the board's TAP device goes there.
    pub bridge: String,
    /// `{ipv4_cidr}`: the address the board takes, with its prefix.
    pub ipv4_cidr: String,
    /// `{ipv4_gateway}`: its default gateway (the DUT's first hop).
    pub ipv4_gateway: String,
    /// `{ntp_server}`: the rig's SNTP server, `address:port`.
    pub ntp_server: String,
    /// `{dns_server}`: the rig's DNS server (UDP 53), an IPv4 address: it
    /// answers for the hub's name (`{hub_host}`).
    pub dns_server: String,
    /// `{mac}`: the board's Ethernet address, `02:…` (locally administered).
    pub mac: String,
}

impl Placeholders {
    /// `arg` with every known placeholder replaced by its value (unknown
    /// `{...}` text is left as is).
    pub fn expand(&self, arg: &str) -> String {
        let arg = arg
            .replace("{provisioning}", &self.provisioning.to_string_lossy())
            .replace("{state}", &self.state.to_string_lossy())
            .replace("{device_id}", &self.device_id)
            .replace("{hub_host}", &self.hub_host)
            .replace("{sacbench_bin}", &self.sacbench_bin.to_string_lossy())
            .replace("{dut_dir}", &self.dut_dir.to_string_lossy());
        match &self.tap {
            Some(t) => arg
                .replace("{bridge}", &t.bridge)
                .replace("{ipv4_cidr}", &t.ipv4_cidr)
                .replace("{ipv4_gateway}", &t.ipv4_gateway)
                .replace("{ntp_server}", &t.ntp_server)
                .replace("{dns_server}", &t.dns_server)
                .replace("{mac}", &t.mac),
            None => arg,
        }
    }
}
