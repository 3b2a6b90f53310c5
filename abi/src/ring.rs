//! The shared producer/consumer ring of `xen/io/ring.h`, as a generic front end and back end.
//!
//! A shared ring is one (or more) pages: a 64-byte header ([`SringHeader`]: `req_prod`,
//! `req_event`, `rsp_prod`, `rsp_event`, padding) followed by [`ring_size`] slots, each big
//! enough for a request or a response (C's `union <name>_sring_entry`). A ring of several
//! pages (blkif's `ring-page-order`, at most [`MAX_RING_PAGES`]) is the same layout over the
//! pages laid end to end in the order the front end lists their grants (`ring-ref0`,
//! `ring-ref1`, ...), as Linux's `xenbus_map_ring_valloc` maps them: the header is at the start
//! of the first page and a slot may straddle two pages. [`SharedRing::from_pages`] takes the
//! pages wherever they are; nothing assumes they are contiguous in memory. The front end produces
//! requests and consumes responses ([`FrontRing`]); the back end consumes requests and produces
//! responses into the same slots ([`BackRing`]). Indices run freely over all of `u32` with
//! wrapping arithmetic; an index's slot is `idx & (size - 1)`.
//!
//! # Access to shared memory
//! The page is written concurrently by the peer, so no Rust reference ever points into it:
//! indices are read and written as `AtomicU32` (created transiently with
//! [`AtomicU32::from_ptr`]), entries are copied in and out byte by byte with relaxed atomic loads and stores (so a
//! concurrent write by the peer is never a data race), and entry types implement [`RingEntry`] (every bit pattern valid, no
//! padding), so whatever the peer wrote is a valid value to copy out and then check.
//! Barriers follow `ring.h`: `xen_wmb()` (a [`Ordering::Release`] fence) before publishing a
//! producer index, `xen_rmb()` (an [`Ordering::Acquire`] fence) after reading the peer's producer
//! index and before reading entries, and `xen_mb()` (a [`Ordering::SeqCst`] fence) between
//! publishing and reading the event index in the notify and final-check logic.
//!
//! # What a lying peer can do
//! The peer's producer index is checked before anything is consumed:
//! - the front end accepts `rsp_prod` only if `rsp_prod - rsp_cons` is at most the number of
//!   requests it has published and not yet seen answered (so at most the ring size, and never a
//!   response to a request that does not exist);
//! - the back end accepts `req_prod` only if `req_prod - req_cons` is at most
//!   `size - (req_cons - rsp_prod_pvt)`, the slots the front end can legally have filled
//!   (`RING_REQUEST_PROD_OVERFLOW`, Linux netback's "frontend is misbehaving" check; a producer
//!   that went backwards fails the same test).
//!
//! A violation is reported as [`RingError::ProducerOverrun`] and nothing is consumed. For an
//! honest peer the accepted count equals `ring.h`'s `RING_HAS_UNCONSUMED_*` (the `min(...)` in
//! `XEN_RING_NR_UNCONSUMED_REQUESTS` only ever clamps the cases rejected here).
//!
//! Event indices are the peer's business. The notify decision is exactly `ring.h`'s: notify
//! iff the peer's event index lies in `(old, new]` of the producer index just published,
//! compared in wrapping arithmetic (`new - event < new - old`). Whatever value the peer left
//! there, the answer is just a `bool`: an event index in the past or far in the future
//! suppresses that notification, an index inside the window triggers one. Neither side's
//! progress depends on the peer's event index: each side re-reads the producer index in its
//! final check after arming its own event, so a missed notification caused by a peer's bad event
//! index only delays the peer itself, until its own final check or a later push whose window
//! covers the index it set. Our own event index is written, never read back.
//!
//! # Example
//! ```
//! use abi::ring::{BackRing, FrontRing, SharedRing};
//! use std::alloc::{Layout, alloc_zeroed, dealloc};
//!
//! let layout = Layout::from_size_align(4096, 4096).unwrap();
//! // SAFETY: the layout has a non-zero size.
//! let page = unsafe { alloc_zeroed(layout) };
//! // SAFETY: `page` is a live, page-aligned 4096-byte allocation, freed only after both ends
//! // are dropped, and touched only through these two ring handles.
//! let (front_mem, back_mem) = unsafe {
//!     (SharedRing::<u64, u64>::new(page, 4096).unwrap(), SharedRing::<u64, u64>::new(page, 4096).unwrap())
//! };
//! let mut front = FrontRing::init(front_mem);
//! let mut back = BackRing::init(back_mem);
//! front.write_request(7).unwrap();
//! assert!(front.push_requests_and_check_notify());
//! let request = back.take_request().unwrap().unwrap();
//! back.write_response(request * 2).unwrap();
//! assert!(back.push_responses_and_check_notify());
//! assert_eq!(front.take_response(), Ok(Some(14)));
//! assert_eq!(front.final_check_for_responses(), Ok(false));
//! drop((front, back));
//! // SAFETY: allocated above with the same layout; no handle uses it any more.
//! unsafe { dealloc(page, layout) };
//! ```
#![warn(clippy::arithmetic_side_effects)]

use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, AtomicU32, Ordering, fence};

use crate::page::AtomicPage;
use crate::wire::Unpadded;

/// `RING_IDX`: a free-running ring index (wrapping `u32`).
pub type RingIdx = u32;

/// `XEN_PAGE_SHIFT`: ring protocols use 4 KiB pages whatever the guest's page size.
pub const XEN_PAGE_SHIFT: u32 = 12;
/// The page size of ring protocols (`1 << XEN_PAGE_SHIFT`); shared rings start page-aligned.
pub const XEN_PAGE_SIZE: usize = 1 << XEN_PAGE_SHIFT;

/// Linux's `XENBUS_MAX_RING_GRANT_ORDER`: the largest ring-page order a front end and back end
/// agree on (blkif's `max-ring-page-order`; Linux blkback's default offer).
pub const MAX_RING_PAGE_ORDER: u32 = 4;
/// Linux's `XENBUS_MAX_RING_GRANTS`: the most pages one shared ring spans.
pub const MAX_RING_PAGES: usize = 1 << MAX_RING_PAGE_ORDER;

/// The 64-byte header at the start of every shared ring (`struct <name>_sring` up to `ring`).
///
/// Only a layout description: the ring code reaches these fields through raw pointers at the
/// offsets `offset_of!` gives, never through a reference.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SringHeader {
    /// Front end's published request producer index.
    pub req_prod: RingIdx,
    /// Back end's request event index: notify it when `req_prod` passes this.
    pub req_event: RingIdx,
    /// Back end's published response producer index.
    pub rsp_prod: RingIdx,
    /// Front end's response event index: notify it when `rsp_prod` passes this.
    pub rsp_event: RingIdx,
    /// `pvt`: protocol-private bytes (`netif.smartpoll_active`, `tapif_user.msg`, `pvt_pad`).
    pub pvt: [u8; 4],
    /// `__pad`: padding to 64 bytes.
    pub pad: [u8; 44],
}
const _: () = {
    assert!(size_of::<SringHeader>() == 64);
    assert!(offset_of!(SringHeader, req_prod) == 0);
    assert!(offset_of!(SringHeader, req_event) == 4);
    assert!(offset_of!(SringHeader, rsp_prod) == 8);
    assert!(offset_of!(SringHeader, rsp_event) == 12);
    assert!(offset_of!(SringHeader, pvt) == 16);
    assert!(offset_of!(SringHeader, pad) == 20);
};

const REQ_PROD: usize = offset_of!(SringHeader, req_prod);
const REQ_EVENT: usize = offset_of!(SringHeader, req_event);
const RSP_PROD: usize = offset_of!(SringHeader, rsp_prod);
const RSP_EVENT: usize = offset_of!(SringHeader, rsp_event);

// ---------------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------------

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

#[allow(clippy::arithmetic_side_effects)] // sizes of our own types, not peer values
const fn round_up(value: usize, align: usize) -> usize {
    value.div_ceil(align) * align
}

/// Alignment of a ring slot: the larger alignment of `Req` and `Rsp`.
pub const fn ring_entry_align<Req, Rsp>() -> usize {
    max(align_of::<Req>(), align_of::<Rsp>())
}

/// Size of a ring slot (`sizeof(union <name>_sring_entry)`): the larger of the two sizes,
/// rounded up to [`ring_entry_align`].
pub const fn ring_entry_size<Req, Rsp>() -> usize {
    round_up(
        max(size_of::<Req>(), size_of::<Rsp>()),
        ring_entry_align::<Req, Rsp>(),
    )
}

/// Offset of the first slot (`offsetof(struct <name>_sring, ring)`): the 64-byte header
/// rounded up to the slot alignment.
pub const fn ring_entries_offset<Req, Rsp>() -> usize {
    round_up(size_of::<SringHeader>(), ring_entry_align::<Req, Rsp>())
}

/// `__CONST_RING_SIZE`: the number of slots a ring of `Req`/`Rsp` has in `bytes` of shared
/// memory, rounded down to a power of two (0 if not even one slot fits, or if both types are
/// zero-sized).
pub const fn ring_size<Req, Rsp>(bytes: usize) -> u32 {
    let entry = ring_entry_size::<Req, Rsp>();
    let offset = ring_entries_offset::<Req, Rsp>();
    if entry == 0 || bytes < offset {
        return 0;
    }
    // bytes >= offset and entry != 0 (both checked above).
    #[allow(clippy::arithmetic_side_effects)] // entry != 0 (checked above)
    let slots = bytes.saturating_sub(offset) / entry;
    #[allow(clippy::cast_possible_truncation)] // the value is at most u32::MAX (checked)
    let slots = if slots > u32::MAX as usize {
        u32::MAX
    } else {
        slots as u32
    };
    // `__RD32`: keep only the highest set bit.
    if slots == 0 {
        0
    } else {
        1 << 31u32.saturating_sub(slots.leading_zeros()) // slots != 0: leading_zeros <= 31
    }
}

// ---------------------------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------------------------

/// A plain-data type that may be copied in and out of a ring slot: an [`Unpadded`] type (every
/// bit pattern valid, no padding bytes), so a copy of whatever the peer wrote is sound and
/// writing a value never copies uninitialised memory into a page the peer reads.
///
/// # Safety
/// The contract is [`Unpadded`]'s (this trait adds `Send` and marks the type as a ring entry).
pub unsafe trait RingEntry: Unpadded + Send {}

// SAFETY: primitive integers: every bit pattern is valid, no padding.
unsafe impl RingEntry for u8 {}
// SAFETY: as above.
unsafe impl RingEntry for u16 {}
// SAFETY: as above.
unsafe impl RingEntry for u32 {}
// SAFETY: as above.
unsafe impl RingEntry for u64 {}
// SAFETY: as above.
unsafe impl RingEntry for i16 {}
// SAFETY: as above.
unsafe impl RingEntry for i32 {}
// SAFETY: an array of ring entries has neither invalid bit patterns nor padding of its own.
unsafe impl<T: RingEntry, const N: usize> RingEntry for [T; N] {}

/// Reinterprets one wire type as another, the way C casts a ring slot (a `netif_extra_info`
/// in a tx request slot, a `blkif_request_discard` in a `blkif_request` slot): the result has
/// the first `min(size_of::<T>(), size_of::<U>())` bytes of `value` and zeros after them.
pub fn cast_entry<T: RingEntry, U: RingEntry>(value: &T) -> U {
    let mut out = U::zeroed();
    let len = if size_of::<T>() < size_of::<U>() {
        size_of::<T>()
    } else {
        size_of::<U>()
    };
    // SAFETY: `value` is readable for `size_of::<T>()` bytes and `out` writable for
    // `size_of::<U>()`, both at least `len`; they are distinct objects; byte copies need no
    // alignment. `T` has no padding, so the bytes read are initialised, and any bytes are a valid
    // `U` (`RingEntry` contract).
    unsafe {
        ptr::copy_nonoverlapping(
            ptr::from_ref(value).cast::<u8>(),
            ptr::from_mut(&mut out).cast::<u8>(),
            len,
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What can go wrong on a shared ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The shared-memory pointer is null.
    Null,
    /// The shared memory does not start on a [`XEN_PAGE_SIZE`] boundary.
    Misaligned,
    /// The shared memory has no room for a single slot after the header.
    TooSmall {
        /// The length offered.
        len: usize,
    },
    /// A ring of separate pages was given none, or more than [`MAX_RING_PAGES`].
    PageCount {
        /// The number of pages offered.
        pages: usize,
    },
    /// Front end: every slot holds a request that has not been answered yet.
    Full,
    /// Back end: every request taken so far already has its response.
    NoPendingRequest,
    /// The peer's producer index claims more entries than it can have produced: the peer is
    /// misbehaving, and nothing was consumed.
    ProducerOverrun {
        /// The producer index the peer published.
        prod: RingIdx,
        /// Our consumer index.
        cons: RingIdx,
        /// The most entries the peer could legitimately have produced beyond `cons`.
        limit: u32,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("shared ring pointer is null"),
            Self::Misaligned => f.write_str("shared ring is not page-aligned"),
            Self::TooSmall { len } => write!(f, "{len} bytes hold no ring slot"),
            Self::PageCount { pages } => {
                write!(f, "a ring spans 1 to {MAX_RING_PAGES} pages, not {pages}")
            }
            Self::Full => f.write_str("no free request slot"),
            Self::NoPendingRequest => f.write_str("no request is waiting for a response"),
            Self::ProducerOverrun { prod, cons, limit } => write!(
                f,
                "peer producer index {prod} is more than {limit} ahead of consumer index {cons}"
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shared memory
// ---------------------------------------------------------------------------------------------

/// Where a ring's bytes are: one region, or separate pages laid end to end.
#[derive(Clone, Copy)]
enum Memory {
    /// `len` contiguous bytes (`new`).
    Contiguous(NonNull<u8>),
    /// The first `count` of `pages`, each [`XEN_PAGE_SIZE`] bytes, byte `o` of the ring at
    /// byte `o % XEN_PAGE_SIZE` of page `o / XEN_PAGE_SIZE` (`new_pages`).
    Pages {
        pages: [NonNull<u8>; MAX_RING_PAGES],
        count: usize,
    },
}

/// A handle to the shared memory of a ring of `Req`/`Rsp` slots.
///
/// It is the only way into the shared pages: it hands out no references, only copies.
pub struct SharedRing<Req, Rsp> {
    memory: Memory,
    size: u32,
    _entries: PhantomData<fn() -> (Req, Rsp)>,
}

// SAFETY: the handle owns no thread-bound state: it reaches memory whose validity `new`'s
// contract guarantees independently of the thread, only through atomic and volatile accesses,
// and the entry types are `Send`.
unsafe impl<Req: RingEntry, Rsp: RingEntry> Send for SharedRing<Req, Rsp> {}

impl<Req: RingEntry, Rsp: RingEntry> SharedRing<Req, Rsp> {
    /// Takes `len` bytes at `base` as the memory of a shared ring.
    ///
    /// Checks that `base` is non-null and page-aligned and that at least one slot fits; the
    /// ring has [`ring_size::<Req, Rsp>(len)`](ring_size) slots.
    ///
    /// # Safety
    /// - `base` must be valid for reads and writes of `len` bytes for as long as the returned
    ///   handle, or a ring made from it, exists (the memory is not freed, unmapped or reused).
    /// - Apart from this handle, the memory may be accessed only by the peer (another domain,
    ///   or other ring handles of this program playing the other end) and by atomic accesses
    ///   (an [`AtomicPage`]). Nothing in this program may access it through plain references or
    ///   non-atomic accesses while the handle exists. The peer may write any bytes at any time; that is what the ring checks
    ///   against.
    /// - At most one front end and one back end use the memory at a time.
    pub unsafe fn new(base: *mut u8, len: usize) -> Result<Self, RingError> {
        let base = NonNull::new(base).ok_or(RingError::Null)?;
        if !base.as_ptr().addr().is_multiple_of(XEN_PAGE_SIZE) {
            return Err(RingError::Misaligned);
        }
        let size = ring_size::<Req, Rsp>(len);
        if size == 0 {
            return Err(RingError::TooSmall { len });
        }
        Ok(Self {
            memory: Memory::Contiguous(base),
            size,
            _entries: PhantomData,
        })
    }

    /// Takes `pages` (1 to [`MAX_RING_PAGES`] pages of [`XEN_PAGE_SIZE`] bytes, in the order
    /// of the front end's `ring-ref0`, `ring-ref1`, ...) as the memory of one shared ring laid
    /// over them end to end; the ring has
    /// [`ring_size::<Req, Rsp>(pages.len() * XEN_PAGE_SIZE)`](ring_size) slots.
    ///
    /// # Safety
    /// [`new`](Self::new)'s contract for each page (valid for reads and writes of
    /// [`XEN_PAGE_SIZE`] bytes while the handle exists, reached by nothing else in this
    /// program but atomic accesses, one front end and one back end), and no two entries
    /// may overlap.
    pub unsafe fn new_pages(pages: &[*mut u8]) -> Result<Self, RingError> {
        if pages.is_empty() || pages.len() > MAX_RING_PAGES {
            return Err(RingError::PageCount { pages: pages.len() });
        }
        let mut table = [NonNull::dangling(); MAX_RING_PAGES];
        for (slot, &page) in table.iter_mut().zip(pages) {
            let page = NonNull::new(page).ok_or(RingError::Null)?;
            if !page.as_ptr().addr().is_multiple_of(XEN_PAGE_SIZE) {
                return Err(RingError::Misaligned);
            }
            *slot = page;
        }
        let len = pages.len().saturating_mul(XEN_PAGE_SIZE);
        let size = ring_size::<Req, Rsp>(len);
        if size == 0 {
            return Err(RingError::TooSmall { len });
        }
        Ok(Self {
            memory: Memory::Pages {
                pages: table,
                count: pages.len(),
            },
            size,
            _entries: PhantomData,
        })
    }

    /// A ring over whole shared pages laid end to end (a multi-page ring): safe for the
    /// reasons [`from_page`](Self::from_page) is. The same page given twice is refused
    /// ([`RingError::PageCount`] names how many were given).
    pub fn from_pages(pages: &[&'static AtomicPage]) -> Result<Self, RingError> {
        let mut raw = [ptr::null_mut(); MAX_RING_PAGES];
        if pages.is_empty() || pages.len() > MAX_RING_PAGES {
            return Err(RingError::PageCount { pages: pages.len() });
        }
        for (i, (slot, page)) in raw.iter_mut().zip(pages).enumerate() {
            if pages[..i].iter().any(|p| ptr::eq(*p, *page)) {
                return Err(RingError::PageCount { pages: pages.len() });
            }
            *slot = page.as_ptr();
        }
        // SAFETY: each page is valid for its 4096 bytes for the rest of the program
        // ('static), reached only atomically (see `from_page`), and no page is given twice
        // (checked above), so the pages do not overlap.
        unsafe { Self::new_pages(&raw[..pages.len()]) }
    }

    /// The pages the ring spans (1 for a ring of one page or one region).
    pub fn pages(&self) -> usize {
        match self.memory {
            Memory::Contiguous(_) => 1,
            Memory::Pages { count, .. } => count,
        }
    }

    /// A ring over a whole shared page: safe, because the page lives for the rest of the
    /// program and this program reaches its bytes only atomically (through [`AtomicPage`] and
    /// the ring handles), so whatever the peer does is never a data race here.
    pub fn from_page(page: &'static AtomicPage) -> Result<Self, RingError> {
        // SAFETY: `page` is valid for reads and writes of its 4096 bytes for the rest of the
        // program ('static); `AtomicPage` gives out no references to its bytes, only atomic
        // accesses, and ring handles access it atomically too, so any other handle over the
        // same page (the peer's end, in a test) cannot race with this one.
        unsafe { Self::new(page.as_ptr(), XEN_PAGE_SIZE) }
    }

    /// The number of slots (a power of two).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The header field at byte `offset` (< 64, a multiple of 4) as an atomic.
    fn header_word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset < size_of::<SringHeader>() && offset.is_multiple_of(4));
        // SAFETY: the header lies inside the first page or region, within the `len >= 64`
        // valid bytes (`new`/`new_pages` checked a slot fits after it); that memory is
        // page-aligned and `offset` a multiple of 4, so the word is aligned for `AtomicU32`;
        // the constructors' contract allows only atomic accesses to it by this program, and
        // the returned reference lives no longer than `self`.
        unsafe { AtomicU32::from_ptr(self.byte(offset).cast::<u32>()) }
    }

    fn load(&self, offset: usize) -> RingIdx {
        self.header_word(offset).load(Ordering::Relaxed)
    }

    fn store(&self, offset: usize, value: RingIdx) {
        self.header_word(offset).store(value, Ordering::Relaxed);
    }

    /// The address of byte `offset` of the ring's memory (`offset` below the ring's length:
    /// the header, or a byte of a slot `ring_size` counted).
    fn byte(&self, offset: usize) -> *mut u8 {
        match self.memory {
            // SAFETY: `offset` is inside the `len` bytes `new`'s contract makes valid.
            Memory::Contiguous(base) => unsafe { base.as_ptr().add(offset) },
            Memory::Pages { pages, count } => {
                debug_assert!(offset >> XEN_PAGE_SHIFT < count);
                // `offset` is below `count` pages (the slots `ring_size` counted fit in them);
                // the clamp only keeps a broken caller inside the pages given.
                let page = (offset >> XEN_PAGE_SHIFT).min(count.saturating_sub(1));
                let base = pages.get(page).copied().unwrap_or(pages[0]);
                // SAFETY: `page < count`, a page `new_pages`' contract makes valid for
                // `XEN_PAGE_SIZE` bytes, and the byte is inside it.
                unsafe { base.as_ptr().add(offset & (XEN_PAGE_SIZE - 1)) }
            }
        }
    }

    /// The byte offset of the slot of free-running index `idx`.
    fn slot(&self, idx: RingIdx) -> usize {
        // size is a power of two >= 1; index < size slots, which fit in the memory.
        let index = (idx & self.size.wrapping_sub(1)) as usize;
        ring_entries_offset::<Req, Rsp>()
            .saturating_add(index.saturating_mul(ring_entry_size::<Req, Rsp>()))
    }

    /// Copies an entry out of the slot of `idx`, byte by byte with relaxed atomic loads.
    fn read_entry<T: RingEntry>(&self, idx: RingIdx) -> T {
        let slot = self.slot(idx);
        let mut value = T::zeroed();
        let out = ptr::from_mut(&mut value).cast::<u8>();
        for i in 0..size_of::<T>() {
            // SAFETY: the slot is valid for `ring_entry_size >= size_of::<T>()` bytes (see
            // `slot` and `byte`); the constructors' contract lets this program reach the memory
            // only atomically, and `AtomicU8` has no alignment needs; the reference lives for
            // this one load.
            let byte = unsafe { AtomicU8::from_ptr(self.byte(slot.saturating_add(i))) }
                .load(Ordering::Relaxed);
            // SAFETY: `i < size_of::<T>()`, so the byte is inside the local `value`; any bytes
            // are a valid `T` (`RingEntry`).
            unsafe { out.add(i).write(byte) };
        }
        value
    }

    /// Copies an entry into the slot of `idx`, byte by byte with relaxed atomic stores.
    fn write_entry<T: RingEntry>(&self, idx: RingIdx, value: T) {
        let slot = self.slot(idx);
        let bytes = ptr::from_ref(&value).cast::<u8>();
        for i in 0..size_of::<T>() {
            // SAFETY: `i < size_of::<T>()` and `T` has no padding (`RingEntry`), so the byte
            // is an initialised byte of the local `value`.
            let byte = unsafe { bytes.add(i).read() };
            // SAFETY: as in `read_entry`: inside the slot, reached only atomically.
            unsafe { AtomicU8::from_ptr(self.byte(slot.saturating_add(i))) }
                .store(byte, Ordering::Relaxed);
        }
    }

    fn read_request(&self, idx: RingIdx) -> Req {
        self.read_entry(idx)
    }

    fn read_response(&self, idx: RingIdx) -> Rsp {
        self.read_entry(idx)
    }

    fn write_request(&self, idx: RingIdx, value: Req) {
        self.write_entry(idx, value);
    }

    fn write_response(&self, idx: RingIdx, value: Rsp) {
        self.write_entry(idx, value);
    }

    /// `SHARED_RING_INIT` with every index starting at `start` (ring.h uses 0).
    fn init_header(&self, start: RingIdx) {
        self.store(REQ_PROD, start);
        self.store(RSP_PROD, start);
        self.store(REQ_EVENT, start.wrapping_add(1));
        self.store(RSP_EVENT, start.wrapping_add(1));
        let mut offset = offset_of!(SringHeader, pvt);
        while offset < size_of::<SringHeader>() {
            self.store(offset, 0);
            offset = offset.saturating_add(4); // below size_of::<SringHeader>()
        }
        // Make the initialised header visible before whatever tells the peer about the ring.
        fence(Ordering::Release);
    }

    /// Reads the peer's producer index at `offset`, then `xen_rmb()`: entries read after this
    /// are at least as new as the index.
    fn load_peer_prod(&self, offset: usize) -> RingIdx {
        let prod = self.load(offset);
        fence(Ordering::Acquire);
        prod
    }

    /// `xen_wmb()` then publishes our producer index at `offset`: the peer sees the entries
    /// before the index.
    fn publish_prod(&self, offset: usize, value: RingIdx) {
        fence(Ordering::Release);
        self.store(offset, value);
    }

    /// Publishes our producer index, `xen_mb()`, then applies ring.h's notify rule against the
    /// peer's event index at `event_offset`.
    fn publish_and_check_notify(
        &self,
        prod_offset: usize,
        event_offset: usize,
        old: RingIdx,
        new: RingIdx,
    ) -> bool {
        self.publish_prod(prod_offset, new);
        fence(Ordering::SeqCst);
        let event = self.load(event_offset);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }
}

impl<Req, Rsp> fmt::Debug for SharedRing<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (base, count) = match self.memory {
            Memory::Contiguous(base) => (base, 1),
            Memory::Pages { pages, count } => (pages[0], count),
        };
        f.debug_struct("SharedRing")
            .field("base", &base)
            .field("pages", &count)
            .field("size", &self.size)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Front end
// ---------------------------------------------------------------------------------------------

/// The front end of a shared ring (`struct <name>_front_ring`): produces requests, consumes
/// responses.
pub struct FrontRing<Req, Rsp> {
    shared: SharedRing<Req, Rsp>,
    /// `req_prod_pvt`: the next request slot to fill.
    req_prod_pvt: RingIdx,
    /// The `req_prod` we last published (ring.h re-reads it from the page; ours cannot be
    /// altered by the peer).
    req_prod: RingIdx,
    /// `rsp_cons`: the next response to take.
    rsp_cons: RingIdx,
}

impl<Req: RingEntry, Rsp: RingEntry> FrontRing<Req, Rsp> {
    /// `XEN_FRONT_RING_INIT`: initialises the shared header (`SHARED_RING_INIT`: producers 0,
    /// events 1, padding zeroed) and a front end at index 0.
    pub fn init(shared: SharedRing<Req, Rsp>) -> Self {
        Self::init_at(shared, 0)
    }

    /// Like [`init`](Self::init), with every index starting at `start` (events at
    /// `start + 1`).
    ///
    /// ring.h always starts at 0 and a back end made with `BACK_RING_INIT` expects that, so
    /// pair this only with [`BackRing::attach`] at the same index. It exists to exercise
    /// wrap-around at `u32::MAX` in tests.
    pub fn init_at(shared: SharedRing<Req, Rsp>, start: RingIdx) -> Self {
        shared.init_header(start);
        Self::attach(shared, start)
    }

    /// `FRONT_RING_ATTACH`: a front end at `index` on a ring whose header is already set up
    /// and quiescent at `index` (`req_prod == rsp_prod == index`). Writes nothing shared.
    pub fn attach(shared: SharedRing<Req, Rsp>, index: RingIdx) -> Self {
        Self {
            shared,
            req_prod_pvt: index,
            req_prod: index,
            rsp_cons: index,
        }
    }

    /// `RING_SIZE`: the number of slots.
    pub fn size(&self) -> u32 {
        self.shared.size()
    }

    /// `req_prod_pvt`: the index the next request will take.
    pub fn req_prod_pvt(&self) -> RingIdx {
        self.req_prod_pvt
    }

    /// `rsp_cons`: the index of the next response to take.
    pub fn rsp_cons(&self) -> RingIdx {
        self.rsp_cons
    }

    /// `RING_FREE_REQUESTS`: slots free for new requests.
    pub fn free_requests(&self) -> u32 {
        // `req_prod_pvt - rsp_cons <= size` always holds: requests are written only into free
        // slots, and `rsp_cons` never passes a published request.
        self.size()
            .saturating_sub(self.req_prod_pvt.wrapping_sub(self.rsp_cons))
    }

    /// `RING_FULL`: no slot is free for a new request.
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Copies `request` into the slot at `req_prod_pvt` (`*RING_GET_REQUEST(r, req_prod_pvt++)
    /// = request`) and returns the index it took. The back end sees it after the next push.
    pub fn write_request(&mut self, request: Req) -> Result<RingIdx, RingError> {
        if self.is_full() {
            return Err(RingError::Full);
        }
        let idx = self.req_prod_pvt;
        self.shared.write_request(idx, request);
        self.req_prod_pvt = idx.wrapping_add(1);
        Ok(idx)
    }

    /// `RING_PUSH_REQUESTS`: publishes the written requests without deciding on a
    /// notification.
    pub fn push_requests(&mut self) {
        self.shared.publish_prod(REQ_PROD, self.req_prod_pvt);
        self.req_prod = self.req_prod_pvt;
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes the written requests and returns whether
    /// the back end asked to be notified of them (its `req_event` lies in the newly published
    /// range).
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let old = self.req_prod;
        let new = self.req_prod_pvt;
        self.req_prod = new;
        self.shared
            .publish_and_check_notify(REQ_PROD, REQ_EVENT, old, new)
    }

    /// `RING_HAS_UNCONSUMED_RESPONSES`: responses published and not yet taken, after checking
    /// the back end's `rsp_prod` (at most one response per published request).
    pub fn unconsumed_responses(&self) -> Result<u32, RingError> {
        let prod = self.shared.load_peer_prod(RSP_PROD);
        let available = prod.wrapping_sub(self.rsp_cons);
        let limit = self.req_prod.wrapping_sub(self.rsp_cons);
        if available > limit {
            return Err(RingError::ProducerOverrun {
                prod,
                cons: self.rsp_cons,
                limit,
            });
        }
        Ok(available)
    }

    /// Takes the response at `rsp_cons` (`RING_COPY_RESPONSE`, then `rsp_cons++`) if one is
    /// published; `Ok(None)` if none is.
    pub fn take_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.unconsumed_responses()? == 0 {
            return Ok(None);
        }
        let response = self.shared.read_response(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(response))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: whether responses are waiting; if none are, first
    /// asks to be notified of the next one (`rsp_event = rsp_cons + 1`) and checks again, so a
    /// response published meanwhile is not missed.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? != 0 {
            return Ok(true);
        }
        self.shared.store(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_responses()? != 0)
    }
}

impl<Req, Rsp> fmt::Debug for FrontRing<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontRing")
            .field("shared", &self.shared)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("req_prod", &self.req_prod)
            .field("rsp_cons", &self.rsp_cons)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Back end
// ---------------------------------------------------------------------------------------------

/// The back end of a shared ring (`struct <name>_back_ring`): consumes requests, produces
/// responses.
pub struct BackRing<Req, Rsp> {
    shared: SharedRing<Req, Rsp>,
    /// `rsp_prod_pvt`: the next response slot to fill.
    rsp_prod_pvt: RingIdx,
    /// The `rsp_prod` we last published.
    rsp_prod: RingIdx,
    /// `req_cons`: the next request to take.
    req_cons: RingIdx,
}

impl<Req: RingEntry, Rsp: RingEntry> BackRing<Req, Rsp> {
    /// `BACK_RING_INIT`: a back end at index 0 on a ring the front end initialised. Writes
    /// nothing shared.
    pub fn init(shared: SharedRing<Req, Rsp>) -> Self {
        Self::attach(shared, 0)
    }

    /// `BACK_RING_ATTACH`: a back end whose `req_cons` and `rsp_prod_pvt` start at `index`.
    /// Writes nothing shared.
    pub fn attach(shared: SharedRing<Req, Rsp>, index: RingIdx) -> Self {
        Self {
            shared,
            rsp_prod_pvt: index,
            rsp_prod: index,
            req_cons: index,
        }
    }

    /// `RING_SIZE`: the number of slots.
    pub fn size(&self) -> u32 {
        self.shared.size()
    }

    /// `req_cons`: the index of the next request to take.
    pub fn req_cons(&self) -> RingIdx {
        self.req_cons
    }

    /// `rsp_prod_pvt`: the index the next response will take.
    pub fn rsp_prod_pvt(&self) -> RingIdx {
        self.rsp_prod_pvt
    }

    /// `RING_HAS_UNCONSUMED_REQUESTS`: requests published and not yet taken, after checking
    /// the front end's `req_prod` against the slots it can have filled
    /// (`size - (req_cons - rsp_prod_pvt)` beyond `req_cons`).
    pub fn unconsumed_requests(&self) -> Result<u32, RingError> {
        let prod = self.shared.load_peer_prod(REQ_PROD);
        let available = prod.wrapping_sub(self.req_cons);
        // Requests taken but not answered still occupy their slots (at most `size` of them:
        // requests are taken only within this limit).
        let limit = self
            .size()
            .saturating_sub(self.req_cons.wrapping_sub(self.rsp_prod_pvt));
        if available > limit {
            return Err(RingError::ProducerOverrun {
                prod,
                cons: self.req_cons,
                limit,
            });
        }
        Ok(available)
    }

    /// `RING_REQUEST_CONS_OVERFLOW`: whether taking the request at `cons` would overrun the
    /// responses not yet produced (`cons - rsp_prod_pvt >= size`).
    pub fn request_cons_overflow(&self, cons: RingIdx) -> bool {
        cons.wrapping_sub(self.rsp_prod_pvt) >= self.size()
    }

    /// Takes the request at `req_cons` (`RING_COPY_REQUEST`, then `req_cons++`) if one is
    /// published; `Ok(None)` if none is.
    pub fn take_request(&mut self) -> Result<Option<Req>, RingError> {
        if self.unconsumed_requests()? == 0 {
            return Ok(None);
        }
        let request = self.shared.read_request(self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(request))
    }

    /// Copies `response` into the slot at `rsp_prod_pvt` (`*RING_GET_RESPONSE(r,
    /// rsp_prod_pvt++) = response`) and returns the index it took. Responses answer taken
    /// requests in order, one slot each; the front end sees it after the next push.
    pub fn write_response(&mut self, response: Rsp) -> Result<RingIdx, RingError> {
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingError::NoPendingRequest);
        }
        let idx = self.rsp_prod_pvt;
        self.shared.write_response(idx, response);
        self.rsp_prod_pvt = idx.wrapping_add(1);
        Ok(idx)
    }

    /// `RING_PUSH_RESPONSES`: publishes the written responses without deciding on a
    /// notification.
    pub fn push_responses(&mut self) {
        self.shared.publish_prod(RSP_PROD, self.rsp_prod_pvt);
        self.rsp_prod = self.rsp_prod_pvt;
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publishes the written responses and returns
    /// whether the front end asked to be notified of them.
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.rsp_prod;
        let new = self.rsp_prod_pvt;
        self.rsp_prod = new;
        self.shared
            .publish_and_check_notify(RSP_PROD, RSP_EVENT, old, new)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: whether requests are waiting; if none are, first asks
    /// to be notified of the next one (`req_event = req_cons + 1`) and checks again.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? != 0 {
            return Ok(true);
        }
        self.shared.store(REQ_EVENT, self.req_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_requests()? != 0)
    }
}

impl<Req, Rsp> fmt::Debug for BackRing<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackRing")
            .field("shared", &self.shared)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("rsp_prod", &self.rsp_prod)
            .field("req_cons", &self.req_cons)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // test arithmetic on small known values
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_const_ring_size() {
        // 8-byte slots: (4096 - 64) / 8 = 504, rounded down to 256.
        assert_eq!(ring_size::<u64, u64>(4096), 256);
        // Mixed: the slot is the larger size rounded up to the larger alignment.
        assert_eq!(ring_entry_size::<[u8; 5], u32>(), 8);
        assert_eq!(ring_entry_size::<[u8; 3], u16>(), 4);
        // 112-byte slots (blkif): 4032 / 112 = 36, rounded down to 32.
        assert_eq!(ring_size::<[u64; 14], [u64; 2]>(4096), 32);
        assert_eq!(ring_size::<u64, u64>(64), 0);
        assert_eq!(ring_size::<u64, u64>(72), 1);
        assert_eq!(ring_size::<u64, u64>(64 + 8 * 3), 2);
        assert_eq!(ring_size::<(), ()>(4096), 0);
        assert_eq!(ring_size::<u64, u64>(0), 0);
    }

    #[test]
    fn cast_entry_truncates_and_zero_extends() {
        let wide: u64 = cast_entry(&[1u8, 2, 3]);
        assert_eq!(wide, 0x03_02_01);
        let narrow: u16 = cast_entry(&0x1122_3344u32);
        assert_eq!(narrow, 0x3344);
    }
}
