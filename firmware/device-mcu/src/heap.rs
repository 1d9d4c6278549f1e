//! The heap (webpki's path building allocates): embedded-alloc's linked-list
//! first-fit heap over a static arena, wrapped to record its peak use for
//! the RAM figures.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};
use embedded_alloc::LlffHeap;

/// Size of the arena.
pub const SIZE: usize = 64 * 1024;

/// The allocator with a high-water mark.
pub struct Counted {
    heap: LlffHeap,
    used: AtomicUsize,
    peak: AtomicUsize,
}

#[global_allocator]
static HEAP: Counted = Counted {
    heap: LlffHeap::empty(),
    used: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

/// Gives the heap its arena; call once, first thing in `main`.
pub fn init() {
    static mut ARENA: [MaybeUninit<u8>; SIZE] = [MaybeUninit::uninit(); SIZE];
    // SAFETY: called once from `main` before any allocation; ARENA is used by
    // nothing else (only its address is taken here).
    unsafe {
        HEAP.heap
            .init(core::ptr::addr_of_mut!(ARENA) as usize, SIZE)
    }
}

/// The most bytes ever allocated at once.
pub fn peak() -> usize {
    HEAP.peak.load(Ordering::Relaxed)
}

// SAFETY: delegates to embedded-alloc's heap; the counters do not touch memory.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let p = unsafe { self.heap.alloc(layout) };
        if !p.is_null() {
            let now = self.used.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.used.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}
