//! The fuzz crate's global allocator: the system's, noting the largest single
//! allocation (or reallocation) each thread asks for, so a check can assert
//! that no length a client wrote became an allocation of that size
//! ([`largest_allocation`]). One thread-local compare per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, noting sizes.
pub struct Noting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: an allocation while the thread is being torn down is not
    // noted rather than aborting.
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size);
        }
    });
}

// SAFETY: every call is forwarded to `System` with the same arguments; the
// note is a thread-local compare beside it (const-initialized, no
// destructor, no allocation).
unsafe impl GlobalAlloc for Noting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Noting = Noting;

/// Runs `f` and returns its result with the largest single allocation this
/// thread made meanwhile, in bytes.
pub fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = LARGEST.with(|l| l.replace(0));
    let r = f();
    let during = LARGEST.with(|l| l.get());
    LARGEST.with(|l| l.set(before.max(during)));
    (r, during)
}
