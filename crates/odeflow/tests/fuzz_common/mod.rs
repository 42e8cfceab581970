//! What the fuzz targets share: a global allocator that records the largest single
//! allocation made on the current thread, the proptest configuration, and the mutations of
//! valid files. Each fuzz test binary installs the allocator itself:
//!
//! ```ignore
//! mod fuzz_common;
//! #[global_allocator]
//! static ALLOCATOR: fuzz_common::Counting = fuzz_common::Counting;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// The system allocator, noting the size of every request on the requesting thread.
pub struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size)
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the largest single allocation it made (on this
/// thread; meaningful only where [`Counting`] is the global allocator).
pub fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    let r = f();
    (r, LARGEST.with(Cell::get))
}

/// `cases` cases, or `PROPTEST_CASES` when set (for a longer fuzzing run).
pub fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One change to a valid file.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Cut the file at this position (modulo its length).
    Truncate(usize),
    /// XOR the byte at this position with a nonzero mask.
    Flip(usize, u8),
    /// Insert a byte.
    Insert(usize, u8),
    /// Overwrite the bytes from this position (a header size in the format's byte order;
    /// bytes past the end are dropped).
    Overwrite(usize, Vec<u8>),
    /// Append bytes.
    Append(Vec<u8>),
}

/// The mutations every format gets (truncation, flipped, inserted and appended bytes) and
/// `sizes`: overwrites of the format's header sizes, `(position, bytes)`.
pub fn mutation(sizes: impl Strategy<Value = (usize, Vec<u8>)>) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        sizes.prop_map(|(i, raw)| Mutation::Overwrite(i, raw)),
        prop::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
    ]
}

/// Applies `m` to `bytes`.
pub fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match m {
        Mutation::Truncate(i) => bytes.truncate(if n == 0 { 0 } else { i % n }),
        Mutation::Flip(i, mask) if n > 0 => bytes[i % n] ^= mask,
        Mutation::Flip(..) => {}
        Mutation::Insert(i, b) => bytes.insert(i % (n + 1), *b),
        Mutation::Overwrite(i, raw) => {
            for (k, b) in raw.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + k) {
                    *slot = *b;
                }
            }
        }
        Mutation::Append(extra) => bytes.extend_from_slice(extra),
    }
}
