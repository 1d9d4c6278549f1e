//! The boot stage of device-mcu (issue 17 §1): what MCUboot is on a board.
//! At every power-on it runs device-core's boot logic
//! (`device_core::boot::power_on`: finish an interrupted swap, swap or
//! revert as the slot trailers say, check the primary image's SHA-256 and
//! its signature against the built-in image key) over the board's
//! persistent flash (`flashmap`), prints what it did on the UART in
//! device-native's format (`boot: #N action=… version=… test_boot=…
//! resumed_swap=…`, N counting the unit's power-ons), and jumps to the
//! primary image's vector table. No image it can trust: `boot: no bootable
//! image: <why>; halting`, and nothing else runs.

#![no_std]
#![no_main]

extern crate alloc;

mod flashmap;
mod slots;
#[path = "../../src/uart.rs"]
mod uart;

/// The app's UART writer (shared: `../src/uart.rs`) also tees its lines to
/// the app's RTT channel. The boot stage has no RTT control block — the
/// bench's RTT reader finds the app's, which this one's would shadow in RAM
/// — so its lines go to the UART alone.
mod rtt {
    /// Nothing to tee to: see the module.
    pub fn write(_: &str) {}
}

use core::fmt::Write;
use core::mem::MaybeUninit;
use core::panic::PanicInfo;
use core::sync::atomic::{compiler_fence, Ordering};

use cortex_m_rt::entry;
use device_core::boot::{power_on, BootConfig, BootError, BootReport};
use device_core::image::trailer::BootAction;
use device_core::image::TrustedKey;
use embedded_alloc::LlffHeap;

use crate::flashmap::{FLASH_BASE, FLASH_SIZE, PRIMARY_ADDR};
use crate::slots::SliceFlash;
use crate::uart::Uart;

/// The built-in image key, DER SubjectPublicKeyInfo (build.rs).
const IMAGE_KEY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/image-key.der"));

/// device-core reads a whole image into RAM to hash it (up to a slot less
/// its trailer sector, 1 MiB): the arena holds that with room to spare.
/// RAM the app takes over once it runs.
const HEAP_SIZE: usize = 1536 * 1024;

/// Where the app's initial stack pointer may point: SSRAM2&3 (its RAM).
const RAM: core::ops::RangeInclusive<u32> = 0x2000_0000..=0x2040_0000;

#[global_allocator]
static HEAP: LlffHeap = LlffHeap::empty();

#[entry]
fn main() -> ! {
    {
        static mut ARENA: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
        // SAFETY: runs once, before any allocation; ARENA is used by nothing
        // else (only its address is taken).
        unsafe { HEAP.init(core::ptr::addr_of_mut!(ARENA) as usize, HEAP_SIZE) }
    }
    let mut con = Uart::uart0();
    let _ = writeln!(
        con,
        "boot: device-mcu boot stage, flash at {FLASH_BASE:#010x} ({} KiB), primary slot at {PRIMARY_ADDR:#010x}",
        FLASH_SIZE / 1024
    );
    // SAFETY: the mps2-an385's PSRAM is RAM at FLASH_BASE, FLASH_SIZE bytes
    // (hw/arm/mps2.c; the launcher backs it with the flash file); this
    // program's link (memory.x) leaves it out, and this is the only
    // reference to it, made once in a `main` that never returns.
    let mem: &'static mut [u8] =
        unsafe { core::slice::from_raw_parts_mut(FLASH_BASE as *mut u8, FLASH_SIZE as usize) };
    let Some(mut flash) = SliceFlash::new(mem) else {
        halt(&mut con, "the flash map does not fit the flash")
    };
    let count = flash.count_power_on();
    let keys = match TrustedKey::from_spki_der(IMAGE_KEY) {
        Ok(key) => [key],
        Err(e) => halt(&mut con, &alloc::format!("the built-in image key: {e:?}")),
    };
    let report = match power_on(&mut flash, &keys, BootConfig::default()) {
        Ok(r) => r,
        Err(BootError::NoBootableImage(why)) => {
            let _ = writeln!(con, "boot: no bootable image: {why}; halting");
            stop()
        }
        Err(BootError::ImageTooLarge { slot, len, max }) => {
            let _ = writeln!(
                con,
                "boot: image in the {slot} slot is {len} bytes, at most {max} fit; halting"
            );
            stop()
        }
        Err(BootError::Flash(e)) => halt(&mut con, &alloc::format!("flash access {e:?}")),
    };
    let v = report.version;
    let version = match v.build_num {
        0 => alloc::format!("{}.{}.{}", v.major, v.minor, v.revision),
        b => alloc::format!("{}.{}.{}+{b}", v.major, v.minor, v.revision),
    };
    let _ = writeln!(
        con,
        "boot: #{count} action={} version={version} test_boot={} resumed_swap={}",
        action_name(report.action),
        report.test_boot,
        report.resumed_swap
    );
    let table = PRIMARY_ADDR + report.payload_offset;
    if let Err(why) = check_vectors(&flash, &report, table) {
        let _ = writeln!(con, "boot: no bootable image: {why}; halting");
        stop()
    }
    let _ = writeln!(con, "boot: starting the image at {table:#010x}");
    compiler_fence(Ordering::SeqCst);
    // SAFETY: `table` is the vector table of the primary image that
    // power_on just checked (hash and signature by the built-in key) and
    // check_vectors found sane: its first word a stack pointer into RAM,
    // its second a Thumb reset vector inside the image. VTOR takes it
    // (1 KiB aligned: flashmap's HEADER_SIZE), then bootload sets MSP and
    // jumps; nothing of this program runs after it.
    unsafe {
        let p = cortex_m::Peripherals::steal();
        p.SCB.vtor.write(table);
        cortex_m::asm::bootload(table as *const u32)
    }
}

/// The first two words of the image's vector table: the initial stack
/// pointer inside the app's RAM, the reset vector a Thumb address inside
/// the payload. Anything else would not run; say so rather than jump.
fn check_vectors(flash: &SliceFlash<'_>, r: &BootReport, table: u32) -> Result<(), &'static str> {
    let (sp, reset) = flash.primary_words(r.payload_offset);
    let payload = table..table + r.payload_len;
    if !RAM.contains(&sp) {
        return Err("its initial stack pointer is not in RAM");
    }
    if reset & 1 == 0 || !payload.contains(&(reset & !1)) {
        return Err("its reset vector is not a Thumb address inside it");
    }
    if table % 1024 != 0 {
        return Err("its vector table is not 1 KiB aligned (header size)");
    }
    Ok(())
}

/// device-native's names for what power-on did.
fn action_name(a: BootAction) -> &'static str {
    match a {
        BootAction::RunPrimary => "none",
        BootAction::SwapTest => "test",
        BootAction::SwapPermanent => "permanent",
        BootAction::Revert => "revert",
        BootAction::DiscardSecondary => "discard-secondary",
    }
}

fn halt(con: &mut Uart, why: &str) -> ! {
    let _ = writeln!(con, "boot: halted: {why}");
    stop()
}

fn stop() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cortex_m::interrupt::disable();
    let mut con = Uart::uart0();
    let _ = writeln!(con, "boot: panic: {info}");
    stop()
}
