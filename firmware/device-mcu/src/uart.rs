//! The console: CMSDK APB UART0 of the mps2-an385 at 0x4000_4000 (QEMU's
//! hw/char/cmsdk-apb-uart.c; `-serial stdio` / `-nographic` shows it).

use core::fmt;
use core::ptr::{read_volatile, write_volatile};

const UART0_BASE: usize = 0x4000_4000;
const DATA: usize = 0x000;
const STATE: usize = 0x004;
const CTRL: usize = 0x008;
const BAUDDIV: usize = 0x010;

const STATE_TX_FULL: u32 = 1 << 0;
const CTRL_TX_EN: u32 = 1 << 0;

/// The board's 25 MHz APB clock over 115200 baud; QEMU ignores a divisor < 16.
const BAUD_DIVISOR: u32 = 25_000_000 / 115_200;

/// UART0, transmit only.
pub struct Uart {
    base: usize,
}

impl Uart {
    /// Enables UART0's transmitter and returns it.
    pub fn uart0() -> Self {
        let uart = Uart { base: UART0_BASE };
        uart.write_reg(BAUDDIV, BAUD_DIVISOR);
        uart.write_reg(CTRL, CTRL_TX_EN);
        uart
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: base + offset is a register of the CMSDK UART on this board
        // (mps2-an385 memory map); a 32-bit volatile read has no other effect.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in read_reg: a UART register, written whole and volatile;
        // nothing else in the firmware aliases it as memory.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    /// Sends one byte, waiting while the transmit buffer is full.
    pub fn write_byte(&mut self, byte: u8) {
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
        self.write_reg(DATA, u32::from(byte));
    }
}

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        // The console's lines go to RTT channel 0 as well (`rtt.rs`).
        crate::rtt::write(s);
        Ok(())
    }
}
