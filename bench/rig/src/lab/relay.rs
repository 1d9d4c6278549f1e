//! The Modbus relay that switches DUT power (and, optionally, its link).
//!
//! One connection per operation: relays are cheap to reach, some accept only
//! one TCP client at a time, and a relay that rebooted between two cases must
//! not leave the bench holding a dead connection.

use std::time::Duration;

use tokio_modbus::client::{rtu, tcp, Client, Context, Writer};
use tokio_modbus::Slave;

use super::config::ModbusEndpoint;
use crate::RigError;

/// A Modbus relay: where it is, which unit, how long to wait for an answer.
#[derive(Debug, Clone)]
pub struct Relay {
    endpoint: ModbusEndpoint,
    unit: u8,
    timeout: Duration,
}

impl Relay {
    /// `timeout` bounds connecting and each request: a relay that does not answer is an error.
    pub fn new(endpoint: ModbusEndpoint, unit: u8, timeout: Duration) -> Relay {
        Relay {
            endpoint,
            unit,
            timeout,
        }
    }

    /// Write one coil (Modbus function 0x05) and wait for the relay's echo.
    /// `purpose` ("power off", "link up") leads the error message.
    pub async fn write_coil(&self, coil: u16, value: bool, purpose: &str) -> Result<(), RigError> {
        let what = format!(
            "{purpose}: {} unit {} coil {coil} := {value}",
            self.endpoint, self.unit
        );
        let result = tokio::time::timeout(self.timeout, async {
            let mut ctx = self.connect().await?;
            let answer = ctx.write_single_coil(coil, value).await;
            // Best effort: the answer is what matters, the relay drops the link anyway.
            let _ = ctx.disconnect().await;
            match answer {
                Ok(Ok(())) => Ok(()),
                Ok(Err(exception)) => Err(RigError::Device(format!(
                    "{what}: the relay refused it: {exception}"
                ))),
                Err(e) => Err(RigError::Device(format!("{what}: {e}"))),
            }
        })
        .await;
        match result {
            Ok(r) => r,
            Err(_) => Err(RigError::Device(format!(
                "{what}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    async fn connect(&self) -> Result<Context, RigError> {
        let slave = Slave(self.unit);
        match &self.endpoint {
            ModbusEndpoint::Tcp { host, port } => {
                let addrs = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| io_err(&self.endpoint, "resolve", e))?;
                let mut last = None;
                for addr in addrs {
                    match tcp::connect_slave(addr, slave).await {
                        Ok(ctx) => return Ok(ctx),
                        Err(e) => last = Some(e),
                    }
                }
                Err(io_err(
                    &self.endpoint,
                    "connect",
                    last.unwrap_or_else(|| std::io::Error::other("no address")),
                ))
            }
            ModbusEndpoint::Rtu { port, baud } => {
                let builder = tokio_serial::new(port, baud.get());
                let stream = tokio_serial::SerialStream::open(&builder)
                    .map_err(|e| io_err(&self.endpoint, "open", e.into()))?;
                Ok(rtu::attach_slave(stream, slave))
            }
        }
    }
}

fn io_err(endpoint: &ModbusEndpoint, step: &str, source: std::io::Error) -> RigError {
    RigError::Io {
        what: format!("relay {endpoint}: {step}"),
        source,
    }
}
