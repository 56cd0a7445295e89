//! A global allocator that records the largest single allocation made while a closure runs, so
//! every target can assert that a decoder never allocates beyond its stated limits (a length
//! prefix larger than the limit must be refused before anything is allocated for it).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    sync::atomic::{AtomicBool, Ordering},
};

/// The system allocator, observed. Install it with `#[global_allocator]` in every binary that
/// runs targets (the AFL++ harness and the replay tests); [`measure`] refuses to run without it.
pub struct PeakAlloc;

static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // Const-initialised and without a destructor, so the allocator may touch it at any time.
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    INSTALLED.store(true, Ordering::Relaxed);
    let _ = PEAK.try_with(|peak| {
        if size > peak.get() {
            peak.set(size);
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping neither allocates nor
// touches the memory.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the size of the largest single allocation it made.
/// Nests: an outer measurement still sees what an inner one saw.
///
/// # Panics
/// If [`PeakAlloc`] is not the global allocator (the bound checks would pass vacuously).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    // Allocate once so a freshly started process has gone through the allocator.
    drop(std::hint::black_box(Box::new(0u8)));
    assert!(
        INSTALLED.load(Ordering::Relaxed),
        "tandem_fuzz::alloc::PeakAlloc must be the global allocator"
    );
    let outer = PEAK.with(|peak| peak.replace(0));
    let result = f();
    let inner = PEAK.with(Cell::get);
    PEAK.with(|peak| peak.set(outer.max(inner)));
    (result, inner)
}

/// The most a structural decoder may allocate at once for `len` input bytes: a fixed allowance
/// plus a multiple of the input (a decoded item is at most a few hundred bytes per input byte's
/// worth of tag). An allocation sized by a declared count or length rather than by the bytes
/// that are there breaks it.
pub const fn decode_bound(len: usize) -> usize {
    DECODE_ALLOWANCE.saturating_add(len.saturating_mul(DECODE_FACTOR))
}

/// What a refusal may allocate at once: its error value and message, nothing sized by the
/// input. A decoder that refuses "before allocating" stays within it.
pub const ERROR_ALLOWANCE: usize = 1024;

/// Fixed allowance of [`decode_bound`].
pub const DECODE_ALLOWANCE: usize = 64 * 1024;
/// Bytes allowed per input byte by [`decode_bound`].
pub const DECODE_FACTOR: usize = 256;
