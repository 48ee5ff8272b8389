//! The sans-IO core: everything that decides, and nothing that touches the network or a clock.
//!
//! Inputs (requests made by the page, bytes from a stream, the current time) go in through
//! methods; outputs (streams to open, messages to deliver, timers to set) are drained with
//! `poll_output` / `poll_timeout`. The browser shell in `crate::web` is the only caller in
//! production; tests drive the same code on virtual time.

pub mod backoff;
pub mod bayeux;
pub mod channel;
pub mod client;
pub mod error;
pub mod event_id;
pub mod fifo;
pub mod poll;
pub mod rng;
pub mod seen;
pub mod sse;
pub mod sse_group;
pub mod sse_stream;
pub mod supervisor;
pub mod text;
pub mod throttle;

/// Milliseconds on the caller's clock. The core only ever compares and adds them, so any
/// monotonic origin works (the browser shell uses wall-clock time so sleeps count).
pub type Millis = u64;

/// The earlier of two optional deadlines (`None`: no deadline).
pub fn earliest(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether `list` holds `name`: one search for every test of a channel list (rather than
/// `contains` and `any` closures of their own).
pub fn has(list: &[alloc::string::String], name: &str) -> bool {
    list.iter().any(|c| c == name)
}

/// Removes every `x` from `ids`; whether there was one.
pub fn remove_id(ids: &mut alloc::vec::Vec<u64>, x: u64) -> bool {
    let before = ids.len();
    keep_where(ids, |&y| y != x);
    ids.len() != before
}

/// `v.retain(keep)` by a loop over [`take_at`], whose code is shared by every caller with the
/// same item type: smaller than `retain`'s for lists of a few items.
pub fn keep_where<T>(v: &mut alloc::vec::Vec<T>, keep: impl Fn(&T) -> bool) {
    let mut i = 0;
    while let Some(x) = v.get(i) {
        if keep(x) {
            i += 1;
        } else {
            take_at(v, i);
        }
    }
}

/// `v.remove(i)` when `i` is in bounds, else `None` (rather than a panic): `Vec::remove`'s
/// code and its bounds-check panic (with the formatting of both numbers) are not linked, and
/// the moving of the items after `i` is one function for every item type ([`close_gap`]), so
/// each type adds only the read of its item.
pub fn take_at<T>(v: &mut alloc::vec::Vec<T>, i: usize) -> Option<T> {
    let after = v.len().checked_sub(i)?.checked_sub(1)?;
    // SAFETY: `i < len`; the item is read out once, the `after` items behind it are moved one
    // place down over it, and the length drops by one, so every item is owned once.
    unsafe {
        let at = v.as_mut_ptr().add(i);
        let item = core::ptr::read(at);
        close_gap(at.cast(), core::mem::size_of::<T>(), after);
        v.set_len(i + after);
        Some(item)
    }
}

/// Moves the `count` items of `size` bytes that follow `at` one item down, onto `at`.
///
/// # Safety
/// `at` and the `count` items after it lie in one allocation.
#[inline(never)]
unsafe fn close_gap(at: *mut u8, size: usize, count: usize) {
    // SAFETY: see above; `ptr::copy` allows the overlap.
    unsafe { core::ptr::copy(at.add(size), at, size * count) }
}

/// The marker a protocol's state carries in a build that has the protocol (features `sse`,
/// `bayeux`).
#[derive(Debug, Clone, Copy)]
pub struct Built;

/// The marker in a build without the protocol: no value exists, so neither does the state
/// that carries it, and the compiler drops every branch for it and the code behind them. The
/// npm package's single-protocol builds (`tidings/sse`, `tidings/bayeux`) are smaller by it.
#[derive(Debug, Clone, Copy)]
pub enum Absent {}

/// [`Built`] when this build has SSE, else [`Absent`].
#[cfg(feature = "sse")]
pub type SseBuilt = Built;
/// [`Built`] when this build has SSE, else [`Absent`].
#[cfg(not(feature = "sse"))]
pub type SseBuilt = Absent;
/// [`Built`] when this build has Bayeux, else [`Absent`].
#[cfg(feature = "bayeux")]
pub type BayeuxBuilt = Built;
/// [`Built`] when this build has Bayeux, else [`Absent`].
#[cfg(not(feature = "bayeux"))]
pub type BayeuxBuilt = Absent;

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn remove_id_is_retain(ids in proptest::collection::vec(0u64..4, 0..12), x in 0u64..4) {
            let (mut ours, mut std) = (ids.clone(), ids);
            let had = std.contains(&x);
            std.retain(|y| *y != x);
            prop_assert_eq!(remove_id(&mut ours, x), had);
            prop_assert_eq!(ours, std);
        }

        #[test]
        fn take_at_is_remove(v in proptest::collection::vec(any::<u8>(), 0..12), i in 0usize..14) {
            let (mut ours, mut std) = (v.clone(), v);
            let theirs = (i < std.len()).then(|| std.remove(i));
            prop_assert_eq!(take_at(&mut ours, i), theirs);
            prop_assert_eq!(ours, std);
        }

        /// Items that own memory and are larger than a byte: each is moved, never copied or
        /// dropped twice: the strings survive every removal intact.
        #[test]
        fn take_at_is_remove_for_owned_items(
            v in proptest::collection::vec(("[a-z]{0,6}", any::<u32>()), 0..10),
            picks in proptest::collection::vec(0usize..12, 0..12),
        ) {
            let items: Vec<(String, u32)> = v;
            let (mut ours, mut std) = (items.clone(), items);
            for i in picks {
                let theirs = (i < std.len()).then(|| std.remove(i));
                prop_assert_eq!(take_at(&mut ours, i), theirs);
                prop_assert_eq!(&ours, &std);
            }
        }

        #[test]
        fn keep_where_is_retain(v in proptest::collection::vec(0u8..6, 0..12), below in 0u8..7) {
            let (mut ours, mut std) = (v.clone(), v);
            keep_where(&mut ours, |x| *x < below);
            std.retain(|x| *x < below);
            prop_assert_eq!(ours, std);
        }
    }
}
