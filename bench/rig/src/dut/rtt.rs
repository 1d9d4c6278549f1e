//! `[emulated] rtt`: where the rig reads a board's RTT from — the gdbstub
//! socket its emulator listens on, and the RAM the control block is in.

use serde::Deserialize;

pub use crate::rtt::gdb::Ram;

/// `rtt = { gdb = "{state}/gdb.sock", ram = [start, size] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RttGdb {
    /// The gdbstub's Unix socket, placeholders not yet expanded (`{state}`).
    pub gdb: String,
    /// The target RAM searched for the control block (as a probe scans it).
    pub ram: Ram,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRtt {
    gdb: String,
    ram: [u64; 2],
}

/// The most RAM searched: the scan is read through the gdbstub with the
/// board halted, so it stays small (the statics' region, not a heap).
const MAX_SCAN: u64 = 1 << 20;

impl RawRtt {
    /// Checks the table; `Err` says what is wrong with it.
    pub(super) fn check(self) -> Result<RttGdb, String> {
        if !self.gdb.contains("{state}") {
            return Err(format!(
                "gdb {:?} is not under {{state}} (each board, each case, has its own socket)",
                self.gdb
            ));
        }
        if let Some(bad) = super::unknown_placeholder(&self.gdb, &["{state}"]) {
            return Err(format!("gdb: unknown placeholder {bad}"));
        }
        let [start, size] = self.ram;
        if !(64..=MAX_SCAN).contains(&size) {
            return Err(format!(
                "ram size {size:#x} is not from 0x40 to {MAX_SCAN:#x}"
            ));
        }
        if start.checked_add(size).is_none_or(|end| end > 1 << 32) {
            return Err(format!(
                "ram [{start:#x}, {size:#x}] ends beyond 32-bit address space (the gdbstub reader is for 32-bit targets)"
            ));
        }
        Ok(RttGdb {
            gdb: self.gdb,
            ram: Ram { start, size },
        })
    }
}
