//! A small polled driver for the SMSC LAN9118 (LAN9220 on the real MPS2
//! board) as QEMU's hw/net/lan9118.c models it, behind smoltcp's
//! `phy::Device`. No interrupts: the main loop polls the FIFO levels.
//!
//! Frames go through the chip's FIFOs: TX = two command words and the data
//! words into TX_DATA, RX = one status word from RX_STATUS, then the frame
//! (with its CRC) from RX_DATA. MAC registers are reached indirectly through
//! MAC_CSR_CMD/MAC_CSR_DATA, the PHY through the MAC's MII_ACC/MII_DATA.

use core::ptr::{read_volatile, write_volatile};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

/// Where the mps2-an385 maps the controller.
pub const MPS2_AN385_BASE: usize = 0x4020_0000;

// System control and status registers (byte offsets).
const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const TX_STATUS_FIFO: usize = 0x48;
const ID_REV: usize = 0x50;
const INT_STS: usize = 0x58;
const INT_EN: usize = 0x5c;
const BYTE_TEST: usize = 0x64;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

const BYTE_TEST_PATTERN: u32 = 0x8765_4321;
const HW_CFG_SRST: u32 = 1 << 0;
const PMT_CTRL_READY: u32 = 1 << 0;
const TX_CFG_TX_ON: u32 = 1 << 1;
const TX_CFG_TXS_DUMP: u32 = 1 << 15;
const RX_CFG_RX_DUMP: u32 = 1 << 15;
const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;

// MAC registers (indices for MAC_CSR_CMD).
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_MII_ACC: u32 = 6;
const MAC_MII_DATA: u32 = 7;

const MAC_CR_FDPX: u32 = 1 << 20;
/// Pass all multicast frames: IPv6 neighbour discovery reaches the device
/// at its solicited-node multicast address (smoltcp filters the groups).
const MAC_CR_MCPAS: u32 = 1 << 19;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;

const MII_BUSY: u32 = 1 << 0;
const MII_WRITE: u32 = 1 << 1;
/// The internal PHY's address.
const PHY_ADDR: u32 = 1;
const PHY_BMCR: u32 = 0;
const PHY_BMSR: u32 = 1;
const BMCR_ANENABLE: u32 = 1 << 12;
const BMSR_LINK: u32 = 1 << 2;

// TX command A/B.
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;

// RX status word.
const RX_STS_ERROR: u32 = 1 << 15;

/// Largest frame handled (no VLAN, no jumbo), without the CRC.
pub const MTU: usize = 1514;
/// Buffer for a received frame and its 4-byte CRC, rounded to whole words.
const RX_BUF: usize = 1520;

/// How many register polls a bring-up wait may take before it gives up.
const SPIN_LIMIT: u32 = 1_000_000;

/// What went wrong bringing the controller up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// BYTE_TEST did not read 0x87654321: no LAN9118 (or wrong endianness).
    NoChip(u32),
    /// A self-clearing bit (soft reset, MAC CSR busy, MII busy) stayed set.
    Timeout(&'static str),
}

/// The controller's registers: 32-bit words at `base`.
#[derive(Clone, Copy)]
struct Regs {
    base: usize,
}

impl Regs {
    fn read(self, offset: usize) -> u32 {
        // SAFETY: Lan9118::new's caller promised `base` maps a LAN9118's
        // 256-byte register window and that only this driver touches it;
        // offsets are the constants above, all inside the window.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn spin_until(self, what: &'static str, done: impl Fn(Regs) -> bool) -> Result<(), Error> {
        for _ in 0..SPIN_LIMIT {
            if done(self) {
                return Ok(());
            }
        }
        Err(Error::Timeout(what))
    }

    fn mac_read(self, reg: u32) -> Result<u32, Error> {
        self.spin_until("MAC CSR", |r| r.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0)?;
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | MAC_CSR_READ | reg);
        self.spin_until("MAC CSR", |r| r.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0)?;
        Ok(self.read(MAC_CSR_DATA))
    }

    fn mac_write(self, reg: u32, value: u32) -> Result<(), Error> {
        self.spin_until("MAC CSR", |r| r.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0)?;
        self.write(MAC_CSR_DATA, value);
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | reg);
        self.spin_until("MAC CSR", |r| r.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0)
    }

    fn mii_wait(self) -> Result<(), Error> {
        for _ in 0..SPIN_LIMIT {
            if self.mac_read(MAC_MII_ACC)? & MII_BUSY == 0 {
                return Ok(());
            }
        }
        Err(Error::Timeout("MII"))
    }

    fn phy_read(self, reg: u32) -> Result<u32, Error> {
        self.mii_wait()?;
        self.mac_write(MAC_MII_ACC, (PHY_ADDR << 11) | (reg << 6) | MII_BUSY)?;
        self.mii_wait()?;
        Ok(self.mac_read(MAC_MII_DATA)? & 0xffff)
    }

    fn phy_write(self, reg: u32, value: u32) -> Result<(), Error> {
        self.mii_wait()?;
        self.mac_write(MAC_MII_DATA, value & 0xffff)?;
        self.mac_write(
            MAC_MII_ACC,
            (PHY_ADDR << 11) | (reg << 6) | MII_WRITE | MII_BUSY,
        )?;
        self.mii_wait()
    }
}

/// What `Lan9118::new` found.
#[derive(Debug, Clone, Copy)]
pub struct ChipInfo {
    /// ID_REV (0x0118_0001 from QEMU).
    pub id_rev: u32,
    /// Whether the PHY reported link up after auto-negotiation.
    pub link_up: bool,
}

/// The controller, brought up, with one receive buffer and one transmit buffer.
pub struct Lan9118 {
    regs: Regs,
    mac: EthernetAddress,
    rx_buf: [u8; RX_BUF],
    tx_buf: [u8; MTU],
    rx_frames: u32,
    tx_frames: u32,
    rx_errors: u32,
}

impl Lan9118 {
    /// Resets and configures the controller at `base`, keeping the MAC
    /// address it loaded from its EEPROM (QEMU: the `-nic … mac=`).
    ///
    /// # Safety
    /// `base` must be the register window of a LAN9118-compatible controller
    /// and nothing else may access that window while the driver lives.
    pub unsafe fn new(base: usize) -> Result<(Self, ChipInfo), Error> {
        let regs = Regs { base };
        let test = regs.read(BYTE_TEST);
        if test != BYTE_TEST_PATTERN {
            return Err(Error::NoChip(test));
        }
        regs.write(HW_CFG, HW_CFG_SRST);
        regs.spin_until("soft reset", |r| r.read(HW_CFG) & HW_CFG_SRST == 0)?;
        regs.spin_until("PMT ready", |r| r.read(PMT_CTRL) & PMT_CTRL_READY != 0)?;
        let id_rev = regs.read(ID_REV);

        // Polled: no interrupt sources; clear whatever is latched.
        regs.write(INT_EN, 0);
        regs.write(INT_STS, 0xffff_ffff);

        let low = regs.mac_read(MAC_ADDRL)?.to_le_bytes();
        let high = regs.mac_read(MAC_ADDRH)?.to_le_bytes();
        let mac = EthernetAddress([low[0], low[1], low[2], low[3], high[0], high[1]]);

        regs.phy_write(PHY_BMCR, BMCR_ANENABLE)?;
        // BMSR's link bit latches low: read twice for the current state.
        let _ = regs.phy_read(PHY_BMSR)?;
        let link_up = regs.phy_read(PHY_BMSR)? & BMSR_LINK != 0;

        // Empty both FIFOs, then start: frames to our address, broadcast and
        // multicast (MAC_CR's reset value is promiscuous; this clears PRMS).
        regs.write(RX_CFG, RX_CFG_RX_DUMP);
        regs.write(TX_CFG, TX_CFG_TXS_DUMP | TX_CFG_TX_ON);
        regs.mac_write(
            MAC_CR,
            MAC_CR_FDPX | MAC_CR_MCPAS | MAC_CR_TXEN | MAC_CR_RXEN,
        )?;

        let dev = Lan9118 {
            regs,
            mac,
            rx_buf: [0; RX_BUF],
            tx_buf: [0; MTU],
            rx_frames: 0,
            tx_frames: 0,
            rx_errors: 0,
        };
        Ok((dev, ChipInfo { id_rev, link_up }))
    }

    /// The MAC address in use.
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// Frames received, frames sent, frames dropped on receive errors.
    pub fn counters(&self) -> (u32, u32, u32) {
        (self.rx_frames, self.tx_frames, self.rx_errors)
    }

    /// Reads the next good frame into `rx_buf`, returning its length without
    /// the CRC; drops errored or oversized ones.
    fn read_frame(&mut self) -> Option<usize> {
        loop {
            let pending = (self.regs.read(RX_FIFO_INF) >> 16) & 0xff;
            if pending == 0 {
                return None;
            }
            let status = self.regs.read(RX_STATUS_FIFO);
            // Frame length including the 4-byte CRC.
            let len = ((status >> 16) & 0x3fff) as usize;
            let words = len.div_ceil(4);
            let fits = len >= 4 + 14 && words * 4 <= RX_BUF;
            if status & RX_STS_ERROR != 0 || !fits {
                // Drain it word by word: QEMU's RX_DP_CTRL fast-forward is
                // not to be trusted (see README).
                for _ in 0..words {
                    let _ = self.regs.read(RX_DATA_FIFO);
                }
                self.rx_errors += 1;
                continue;
            }
            for chunk in self.rx_buf[..words * 4].chunks_exact_mut(4) {
                chunk.copy_from_slice(&self.regs.read(RX_DATA_FIFO).to_le_bytes());
            }
            self.rx_frames += 1;
            return Some(len - 4);
        }
    }
}

/// Sends `frame` through the TX data FIFO as one segment.
fn send_frame(regs: Regs, frame: &[u8]) -> bool {
    let len = frame.len() as u32;
    // Free space in bytes must hold both command words and the padded data.
    let free = regs.read(TX_FIFO_INF) & 0xffff;
    if free < len.div_ceil(4) * 4 + 8 {
        return false;
    }
    regs.write(TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | len);
    // Command B: packet tag (the length again, for the status) and length.
    regs.write(TX_DATA_FIFO, (len << 16) | len);
    for chunk in frame.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        regs.write(TX_DATA_FIFO, u32::from_le_bytes(word));
    }
    // Keep the TX status FIFO from filling: pop what has completed.
    while (regs.read(TX_FIFO_INF) >> 16) & 0xff != 0 {
        let _ = regs.read(TX_STATUS_FIFO);
    }
    true
}

/// A received frame, lent to smoltcp.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// Room for one frame to send.
pub struct TxToken<'a> {
    regs: Regs,
    buf: &'a mut [u8; MTU],
    sent: &'a mut u32,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let len = len.min(MTU);
        let result = f(&mut self.buf[..len]);
        if send_frame(self.regs, &self.buf[..len]) {
            *self.sent += 1;
        }
        result
    }
}

impl phy::Device for Lan9118 {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let len = self.read_frame()?;
        let rx = RxToken {
            frame: &self.rx_buf[..len],
        };
        let tx = TxToken {
            regs: self.regs,
            buf: &mut self.tx_buf,
            sent: &mut self.tx_frames,
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        // Room for a full frame and its command words, or smoltcp waits.
        if (self.regs.read(TX_FIFO_INF) & 0xffff) < (MTU as u32).div_ceil(4) * 4 + 8 {
            return None;
        }
        Some(TxToken {
            regs: self.regs,
            buf: &mut self.tx_buf,
            sent: &mut self.tx_frames,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }
}
