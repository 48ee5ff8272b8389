//! A first-in first-out queue for the core's event and output queues.
//!
//! Each queue is filled by a step of the core and drained whole by the next one, so two plain
//! `Vec`s do: items are pushed on `back`; when `front` runs dry it takes `back`, reversed, and
//! pops from its end. Every operation is O(1) amortized, as with `VecDeque`, but the code is
//! `Vec`'s push and pop, which every build has anyway: `VecDeque`'s ring-buffer arithmetic cost
//! the npm build's wasm about 2 KB per set of item types.

use crate::prelude::*;

/// A FIFO queue (see the module docs).
#[derive(Debug, Clone)]
pub struct Fifo<T> {
    /// Newest last.
    back: Vec<T>,
    /// Oldest last (reversed), so the next item is a `pop`.
    front: Vec<T>,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo {
            back: Vec::new(),
            front: Vec::new(),
        }
    }
}

impl<T> Fifo<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Fifo::default()
    }

    /// Adds `item` after every other.
    pub fn push_back(&mut self, item: T) {
        self.back.push(item);
    }

    /// Takes the oldest item.
    pub fn pop_front(&mut self) -> Option<T> {
        if self.front.is_empty() {
            core::mem::swap(&mut self.front, &mut self.back);
            reverse(&mut self.front);
        }
        self.front.pop()
    }

    /// How many items wait.
    pub fn len(&self) -> usize {
        self.front.len() + self.back.len()
    }

    /// The items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.front.iter().rev().chain(self.back.iter())
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.front.is_empty() && self.back.is_empty()
    }
}

/// Reversed, a `Vec` gives its items in order by `pop`: a loop that moves items out of it
/// without `IntoIter` or `Drain` and their drop code, and keeps its allocation.
///
/// `slice::reverse` by slice patterns: the same swaps, without the bounds checks (and their
/// panic) that its index arithmetic leaves in a build optimized for size.
pub(crate) fn reverse<T>(v: &mut [T]) {
    let mut rest = v;
    while let [first, middle @ .., last] = rest {
        core::mem::swap(first, last);
        rest = middle;
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use alloc::collections::VecDeque;
    use proptest::prelude::*;

    proptest! {
        /// Any mix of pushes and pops gives what `VecDeque` gives.
        #[test]
        fn behaves_like_vec_deque(ops in proptest::collection::vec(any::<Option<u8>>(), 0..200)) {
            let mut fifo = Fifo::new();
            let mut model = VecDeque::new();
            for op in ops {
                match op {
                    Some(v) => {
                        fifo.push_back(v);
                        model.push_back(v);
                    }
                    None => prop_assert_eq!(fifo.pop_front(), model.pop_front()),
                }
                prop_assert_eq!(fifo.len(), model.len());
                prop_assert_eq!(fifo.is_empty(), model.is_empty());
                prop_assert!(fifo.iter().eq(model.iter()));
            }
            while let Some(v) = model.pop_front() {
                prop_assert_eq!(fifo.pop_front(), Some(v));
            }
            prop_assert_eq!(fifo.pop_front(), None);
        }
    }

    proptest! {
        #[test]
        fn reverse_is_slice_reverse(v in proptest::collection::vec(any::<u8>(), 0..40)) {
            let (mut ours, mut std) = (v.clone(), v);
            reverse(&mut ours);
            std.reverse();
            prop_assert_eq!(ours, std);
        }
    }

    #[test]
    fn items_pushed_while_draining_come_after_the_older_ones() {
        let mut q = Fifo::new();
        q.push_back(1);
        q.push_back(2);
        assert_eq!(q.pop_front(), Some(1));
        q.push_back(3);
        assert_eq!(q.pop_front(), Some(2));
        assert_eq!(q.pop_front(), Some(3));
        assert_eq!(q.pop_front(), None);
        assert!(q.is_empty());
    }
}
