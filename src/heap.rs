//! The npm build's allocator: power-of-two size classes with a free list each, carved from
//! the end of the wasm memory.
//!
//! Hand-written because of the byte budget: talc, the smallest general allocator we measured,
//! was about 1.9 KB of the wasm; this is about a fifth of that. It fits the client's use: few,
//! small, short-lived blocks (channel names, ids, messages) that come back in the same sizes,
//! so a freed block is reused by the next allocation of its class and a page that subscribes
//! and unsubscribes forever stays at its high-water mark. It never returns memory (wasm cannot
//! shrink its memory anyway) and a block wastes at most half of itself. Rust apps (no `js`
//! feature) keep whatever allocator they chose.
//!
//! The bookkeeping is [`Classes`], plain code over a [`Region`] that grows, tested natively;
//! on wasm32 the region is the end of the wasm memory (`memory.grow`).

use core::alloc::Layout;

/// Blocks are 8 bytes at least (a free block holds the next free block's address).
const MIN_CLASS: u32 = 3;

/// Classes up to 2^31 bytes (a 32-bit address space cannot hold a bigger block).
const CLASSES: usize = 32;

/// Where new blocks come from: memory that can be extended, like the wasm memory.
pub trait Region {
    /// At least `bytes` more memory, as the addresses `start..end` it spans (`start` is where
    /// the memory ended before, when nothing else grew it), or `None` when there is no more.
    fn grow(&mut self, bytes: usize) -> Option<(usize, usize)>;
}

/// Free lists by size class, over a bump area taken from a [`Region`].
pub struct Classes<R> {
    /// The first free block of each class (0: none). A free block's first word is the next.
    free: [usize; CLASSES],
    /// The unused part of the area: `next..end`.
    next: usize,
    end: usize,
    region: R,
}

/// The size class of `layout`: blocks of `1 << class` bytes, aligned to their size (up to a
/// page), which covers any alignment Rust asks for.
fn class_of(layout: &Layout) -> usize {
    class_of_size(layout.size(), layout.align())
}

/// [`class_of`] a layout of `size` bytes aligned to `align`.
fn class_of_size(size: usize, align: usize) -> usize {
    let n = size.max(align);
    (usize::BITS - n.saturating_sub(1).leading_zeros()).max(MIN_CLASS) as usize
}

impl<R: Region> Classes<R> {
    /// No blocks yet; the first allocation grows the region.
    pub const fn new(region: R) -> Self {
        Classes {
            free: [0; CLASSES],
            next: 0,
            end: 0,
            region,
        }
    }

    /// A block for `layout`, or null when memory ran out.
    ///
    /// # Safety
    /// The free lists must hold only blocks this allocator handed out and took back.
    pub unsafe fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let class = class_of(&layout);
        if class >= CLASSES {
            return core::ptr::null_mut();
        }
        let head = self.free[class];
        if head != 0 {
            // SAFETY: a free block of this class; its first word links the next one.
            self.free[class] = unsafe { *(head as *const usize) };
            return head as *mut u8;
        }
        let size = 1usize << class;
        let align = size.min(1 << 16);
        let mut start = (self.next + align - 1) & !(align - 1);
        if start + size > self.end {
            // Enough for an aligned block even where the new memory does not continue the area
            // (the first time, or if something else grew the memory): then the rest of the
            // area is given up.
            let Some((from, to)) = self.region.grow(size + align) else {
                return core::ptr::null_mut();
            };
            if from != self.end {
                self.next = from;
            }
            self.end = to;
            start = (self.next + align - 1) & !(align - 1);
        }
        self.next = start + size;
        start as *mut u8
    }

    /// Takes back a block [`alloc`](Self::alloc) gave for `layout`.
    ///
    /// # Safety
    /// `ptr` came from `alloc` with the same `layout` and is not used after this.
    pub unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        // `get_mut`: `alloc` never hands out a block of a class past the table, and no bounds
        // check panic is linked for one.
        if let Some(head) = self.free.get_mut(class_of(&layout)) {
            // SAFETY: the block is ours and at least a word long.
            unsafe { *(ptr as *mut usize) = *head };
            *head = ptr as usize;
        }
    }

    /// Whether a block for `old` also holds `new_size` bytes (a realloc can keep it).
    pub fn fits(old: &Layout, new_size: usize) -> bool {
        // No `Layout` made: a size too big for one is of a class past any block's.
        class_of_size(new_size, old.align()) == class_of(old)
    }
}

/// The wasm memory past what the module started with, grown a page (64 KiB) at a time.
#[cfg(all(target_arch = "wasm32", feature = "js"))]
pub struct WasmMemory;

#[cfg(all(target_arch = "wasm32", feature = "js"))]
impl Region for WasmMemory {
    fn grow(&mut self, bytes: usize) -> Option<(usize, usize)> {
        const PAGE: usize = 1 << 16;
        let pages = bytes.div_ceil(PAGE);
        let before = core::arch::wasm32::memory_grow(0, pages);
        (before != usize::MAX).then(|| (before * PAGE, (before + pages) * PAGE))
    }
}

/// The global allocator of the npm build (one thread: the page's).
#[cfg(all(target_arch = "wasm32", feature = "js"))]
pub struct Heap(core::cell::UnsafeCell<Classes<WasmMemory>>);

// SAFETY: wasm32 without threads: there is one thread, and the allocator is not reentrant.
#[cfg(all(target_arch = "wasm32", feature = "js"))]
unsafe impl Sync for Heap {}

#[cfg(all(target_arch = "wasm32", feature = "js"))]
impl Heap {
    /// An empty heap; its area begins at the end of the memory when first needed.
    pub const fn new() -> Self {
        Heap(core::cell::UnsafeCell::new(Classes::new(WasmMemory)))
    }
}

#[cfg(all(target_arch = "wasm32", feature = "js"))]
// SAFETY: blocks are distinct until freed, sized and aligned for their layout (see `Classes`).
unsafe impl core::alloc::GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: one thread, no reentrance (see `Sync`).
        let block = unsafe { (*self.0.get()).alloc(layout) };
        // Out of memory traps here, as `handle_alloc_error`'s panic would, without its
        // formatted message and the integer formatting it links.
        if block.is_null() {
            core::arch::wasm32::unreachable()
        }
        block
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`; the caller gives back one of our blocks.
        unsafe { (*self.0.get()).dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Classes::<WasmMemory>::fits(&layout, new_size) {
            return ptr;
        }
        // SAFETY: the caller's contract for `realloc` is `alloc`'s and `dealloc`'s.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A region in a buffer (free blocks hold links, so the addresses must be real), grown
    /// in 4 KiB pages from a page-aligned start.
    struct Buffer {
        mem: Vec<u64>,
        /// Bytes handed out so far.
        grown: usize,
    }

    impl Region for &mut Buffer {
        fn grow(&mut self, bytes: usize) -> Option<(usize, usize)> {
            let base = (self.mem.as_ptr() as usize + 4095) & !4095;
            let cap = self.mem.as_ptr() as usize + self.mem.len() * 8;
            let from = base + self.grown;
            let to = from + bytes.div_ceil(4096) * 4096;
            if to > cap {
                return None;
            }
            self.grown = to - base;
            Some((from, to))
        }
    }

    fn layout(size: usize, align_log: u32) -> Layout {
        Layout::from_size_align(size.max(1), 1 << align_log).unwrap()
    }

    proptest! {
        /// `fits` without a `Layout` agrees with the check through one, huge sizes included.
        #[test]
        fn fits_is_a_layout_class_check(
            size in 1usize..5000,
            align in 0u32..5,
            new_size in prop_oneof![0usize..10_000, (usize::MAX - 64)..=usize::MAX, any::<usize>()],
        ) {
            let old = layout(size, align);
            let theirs = Layout::from_size_align(new_size, old.align())
                .is_ok_and(|new| class_of(&new) == class_of(&old));
            prop_assert_eq!(Classes::<&mut Buffer>::fits(&old, new_size), theirs);
        }

        /// Random allocations and frees: live blocks never overlap, are aligned, and freeing
        /// and allocating the same sizes again takes no more memory.
        #[test]
        fn blocks_are_distinct_aligned_and_reused(
            ops in proptest::collection::vec((1usize..5000, 0u32..5, any::<bool>()), 1..300)
        ) {
            let mut buf = Buffer { mem: vec![0; 1 << 20], grown: 0 };
            let mut heap = Classes::new(&mut buf);
            let mut live: Vec<(usize, Layout)> = Vec::new();
            let run = |heap: &mut Classes<&mut Buffer>, live: &mut Vec<(usize, Layout)>| {
                for &(size, align, free_one) in &ops {
                    if free_one && !live.is_empty() {
                        let (p, l) = live.swap_remove(size % live.len());
                        unsafe { heap.dealloc(p as *mut u8, l) };
                        continue;
                    }
                    let l = layout(size, align);
                    let p = unsafe { heap.alloc(l) } as usize;
                    prop_assert!(p != 0);
                    prop_assert_eq!(p % l.align(), 0);
                    for &(q, m) in live.iter() {
                        prop_assert!(p + l.size() <= q || q + m.size() <= p, "overlap");
                    }
                    live.push((p, l));
                }
                for (p, l) in live.drain(..) {
                    unsafe { heap.dealloc(p as *mut u8, l) };
                }
                Ok(())
            };
            run(&mut heap, &mut live)?;
            let after_first = heap.region.grown;
            run(&mut heap, &mut live)?;
            prop_assert_eq!(heap.region.grown, after_first, "the same work again grew the heap");
        }
    }

    #[test]
    fn a_realloc_within_the_class_keeps_the_block() {
        let l = layout(20, 0);
        assert!(Classes::<&mut Buffer>::fits(&l, 32));
        assert!(!Classes::<&mut Buffer>::fits(&l, 33));
        assert!(Classes::<&mut Buffer>::fits(&l, 17));
    }

    #[test]
    fn a_region_that_cannot_grow_gives_null() {
        let mut buf = Buffer {
            mem: vec![0; 2048],
            grown: 0,
        };
        let mut heap = Classes::new(&mut buf);
        assert!(!unsafe { heap.alloc(layout(1024, 0)) }.is_null());
        assert!(unsafe { heap.alloc(layout(16384, 0)) }.is_null());
    }
}
