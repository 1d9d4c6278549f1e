//! What switches the lab DUT's supply and its Ethernet: a [`PowerSwitch`].
//!
//! A Modbus relay coil ([`ModbusCoil`]) is the one kind today. Another kind
//! (a command, a networked PDU, a labgrid power port) is one more
//! implementation of the trait and one arm in [`from_config`]; the lab rig
//! and the suites only ever see the trait.

use std::time::Duration;

use super::config::RigConfig;
use super::relay::Relay;
use crate::RigError;

/// Switches one of the DUT's supplies or connections on and off.
#[async_trait::async_trait]
pub trait PowerSwitch: Send + Sync + std::fmt::Debug {
    /// Switch to `on` and wait until the switch confirmed it; `purpose`
    /// ("power off", "link up") leads any error message.
    async fn set(&self, on: bool, purpose: &str) -> Result<(), RigError>;
}

/// One coil of a Modbus relay (function 0x05), and which value means "on".
#[derive(Debug, Clone)]
pub struct ModbusCoil {
    /// The relay the coil is on.
    pub relay: Relay,
    /// The coil's address.
    pub coil: u16,
    /// The coil value that means "on" (true for a normally-open contact).
    pub on_value: bool,
}

#[async_trait::async_trait]
impl PowerSwitch for ModbusCoil {
    async fn set(&self, on: bool, purpose: &str) -> Result<(), RigError> {
        let value = if on { self.on_value } else { !self.on_value };
        self.relay.write_coil(self.coil, value, purpose).await
    }
}

/// A rig's switch, if its file has one.
pub type Switch = Option<Box<dyn PowerSwitch>>;

/// The rig file's power switch and link switch (`[power]`, `[link]`, or a
/// labgrid place's power port), if it has them.
pub fn from_config(config: &RigConfig) -> (Switch, Switch) {
    if let Some(port) = &config.power_port {
        // A place's NetworkPowerPort: no relay, so no link coil.
        let timeout = Duration::from_millis(super::config::DEFAULT_RELAY_TIMEOUT_MS.into());
        let power = Box::new(super::power_port::SimpleRest::new(port.clone(), timeout));
        return (Some(power as Box<dyn PowerSwitch>), None);
    }
    let Some(power) = &config.power else {
        return (None, None);
    };
    let relay = Relay::new(
        power.relay.clone(),
        power.unit,
        Duration::from_millis(power.timeout_ms.into()),
    );
    let link = config.link.as_ref().map(|l| {
        Box::new(ModbusCoil {
            relay: relay.clone(),
            coil: l.coil,
            on_value: l.up_value,
        }) as Box<dyn PowerSwitch>
    });
    let power = Box::new(ModbusCoil {
        relay,
        coil: power.coil,
        on_value: power.on_value,
    }) as Box<dyn PowerSwitch>;
    (Some(power), link)
}
