//! The gateway's Modbus side: one client per leaf (tokio-modbus, TCP or RTU
//! over `serialport`), connected lazily and again after any error.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::Slave;

use super::mapping::{Endpoint, Table};

/// How long one Modbus request may take before the leaf counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A leaf's Modbus connection.
pub struct Southbound {
    endpoint: Endpoint,
    unit: u8,
    ctx: Mutex<Option<Context>>,
}

impl Southbound {
    /// Not connected yet: the first request connects.
    pub fn new(endpoint: Endpoint, unit: u8) -> Self {
        Southbound {
            endpoint,
            unit,
            ctx: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Context, String> {
        let slave = Slave(self.unit);
        match &self.endpoint {
            Endpoint::Tcp(addr) => tokio::time::timeout(
                REQUEST_TIMEOUT,
                tokio_modbus::client::tcp::connect_slave(*addr, slave),
            )
            .await
            .map_err(|_| format!("modbus tcp {addr}: connect timed out"))?
            .map_err(|e| format!("modbus tcp {addr}: {e}")),
            Endpoint::Rtu { port, baud } => {
                use tokio_serial::SerialPortBuilderExt;
                let serial = tokio_serial::new(port, *baud)
                    .open_native_async()
                    .map_err(|e| format!("modbus rtu {port}: {e}"))?;
                Ok(tokio_modbus::client::rtu::attach_slave(serial, slave))
            }
        }
    }

    /// Runs one request on the (re)connected client; any failure drops the
    /// connection so the next request starts afresh.
    async fn with<T>(
        &self,
        what: &str,
        f: impl for<'a> FnOnce(
            &'a mut Context,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = tokio_modbus::Result<T>> + Send + 'a>,
        >,
    ) -> Result<T, String> {
        let mut guard = self.ctx.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect().await?);
        }
        let ctx = guard.as_mut().expect("connected");
        let r = match tokio::time::timeout(REQUEST_TIMEOUT, f(ctx)).await {
            Err(_) => Err(format!("{what}: no answer within {REQUEST_TIMEOUT:?}")),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Ok(Ok(Err(exception))) => Err(format!("{what}: exception {exception}")),
            Ok(Ok(Ok(v))) => Ok(v),
        };
        if r.is_err() {
            *guard = None;
        }
        r
    }

    /// Reads `count` registers of `table` from `register` on.
    pub async fn read(&self, table: Table, register: u16, count: u16) -> Result<Vec<u16>, String> {
        let what = format!("reading {table:?} register {register} (x{count})");
        self.with(&what, move |c| {
            Box::pin(async move {
                match table {
                    Table::Holding => c.read_holding_registers(register, count).await,
                    Table::Input => c.read_input_registers(register, count).await,
                }
            })
        })
        .await
    }

    /// Writes `words` from holding register `register` on (one word: function 6, more: 16).
    pub async fn write(&self, register: u16, words: Vec<u16>) -> Result<(), String> {
        let what = format!("writing register {register} = {words:?}");
        self.with(&what, move |c| {
            Box::pin(async move {
                if let [w] = words[..] {
                    c.write_single_register(register, w).await
                } else {
                    c.write_multiple_registers(register, &words).await
                }
            })
        })
        .await
    }
}
