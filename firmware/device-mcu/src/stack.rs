//! Stack high-water mark: besides the heap's static arena (.bss, measured
//! by `heap.rs`), the firmware's RAM is its stack (the sockets, TLS record
//! buffers and driver live in frames), so painting the stack at boot and
//! finding the deepest overwritten word later measures its RAM use on the
//! running image.

use core::ptr::{addr_of, read_volatile, write_volatile};

/// How far below the stack pointer at boot to paint: the 256 KB RAM of the
/// board class the image is measured against.
const PAINTED: usize = 256 * 1024;
const PAINT: u32 = 0x5ac0_ffee;
/// Left alone below the current stack pointer while painting.
const MARGIN: usize = 256;

extern "C" {
    /// cortex-m-rt: the initial stack pointer (top of RAM).
    static _stack_start: u32;
    /// cortex-m-rt: end of .bss/.uninit, where a heap would start.
    static __sheap: u32;
}

/// The painted window, lowest address first.
#[derive(Clone, Copy)]
pub struct Painted {
    low: usize,
    top: usize,
}

/// Paints the free stack below the current stack pointer.
pub fn paint() -> Painted {
    // Only the symbols' addresses are taken, never their contents.
    let (top, heap) = (addr_of!(_stack_start) as usize, addr_of!(__sheap) as usize);
    let sp = cortex_m::register::msp::read() as usize;
    let low = heap.max(top.saturating_sub(PAINTED));
    let high = sp - MARGIN;
    let mut addr = low;
    while addr < high {
        // SAFETY: [low, sp - MARGIN) lies between the end of the statics and
        // the live stack: no object lives there, and this function's own
        // frame is above sp. Word-aligned: both ends come from the linker
        // script's aligned symbols and the 8-aligned sp.
        unsafe { write_volatile(addr as *mut u32, PAINT) };
        addr += 4;
    }
    Painted { low, top }
}

/// Deepest stack use since `paint`, in bytes (None: past the window).
pub fn peak() -> Option<usize> {
    // Only the symbols' addresses are taken, never their contents.
    let (top, heap) = (addr_of!(_stack_start) as usize, addr_of!(__sheap) as usize);
    Painted {
        low: heap.max(top.saturating_sub(PAINTED)),
        top,
    }
    .peak()
}

impl Painted {
    /// Deepest stack use so far in bytes, or None if it went past the window.
    pub fn peak(&self) -> Option<usize> {
        let mut addr = self.low;
        while addr < self.top {
            // SAFETY: reading words of the stack region already painted;
            // a read has no effect and the region is all RAM.
            if unsafe { read_volatile(addr as *const u32) } != PAINT {
                break;
            }
            addr += 4;
        }
        if addr == self.low {
            None
        } else {
            Some(self.top - addr)
        }
    }
}
