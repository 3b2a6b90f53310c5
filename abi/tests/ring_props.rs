//! Host tests of `abi::ring`: a front and a back end on one page, compared step by step with a
//! plain model of the `ring.h` macros, wrap-around at `u32::MAX`, and a lying peer.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

use abi::ring::{BackRing, FrontRing, RingError, RingIdx, SharedRing, SringHeader, ring_size};
use proptest::prelude::*;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, Ordering};

const REQ_PROD: usize = offset_of!(SringHeader, req_prod);
const REQ_EVENT: usize = offset_of!(SringHeader, req_event);
const RSP_PROD: usize = offset_of!(SringHeader, rsp_prod);
const RSP_EVENT: usize = offset_of!(SringHeader, rsp_event);

/// A zeroed, page-aligned heap page standing in for a granted page.
struct Page {
    ptr: *mut u8,
    layout: Layout,
}

impl Page {
    fn new() -> Self {
        let layout = Layout::from_size_align(4096, 4096).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Self { ptr, layout }
    }

    /// A ring handle on the first `len` bytes.
    ///
    /// Every test declares its `Page` before the rings made from it, so the rings are dropped
    /// first.
    fn shared<Req: abi::ring::RingEntry, Rsp: abi::ring::RingEntry>(
        &self,
        len: usize,
    ) -> SharedRing<Req, Rsp> {
        assert!(len <= self.layout.size());
        // SAFETY: the page is live, page-aligned and at least `len` bytes; it outlives the rings
        // (see above); besides the ring handles it is touched only through `word` (atomics) and
        // `poke_slot` (volatile), the way a peer would.
        unsafe { SharedRing::new(self.ptr, len).unwrap() }
    }

    /// A header word, as the peer sees it.
    fn word(&self, offset: usize) -> &AtomicU32 {
        assert!(offset < 64 && offset.is_multiple_of(4));
        // SAFETY: inside the live, page-aligned page; every access to header words is atomic.
        unsafe { AtomicU32::from_ptr(self.ptr.add(offset).cast::<u32>()) }
    }

    fn get(&self, offset: usize) -> u32 {
        self.word(offset).load(Ordering::SeqCst)
    }

    fn set(&self, offset: usize, value: u32) {
        self.word(offset).store(value, Ordering::SeqCst);
    }

    /// The peer scribbling over a slot's first 8 bytes.
    fn poke_slot(&self, slot: usize, value: u64) {
        assert!(64 + slot * 8 + 8 <= 4096);
        // SAFETY: inside the live page, 8-aligned; slots are only accessed volatilely.
        unsafe { std::ptr::write_volatile(self.ptr.add(64 + slot * 8).cast::<u64>(), value) }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the rings using it are gone (see
        // `shared`).
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// The bytes a ring of `size` 8-byte slots needs.
fn ring_bytes(size: u32) -> usize {
    64 + 8 * size as usize
}

/// A front end (requests `u64`, responses `u32`) and a back end on one page, starting at
/// `start`.
fn pair(page: &Page, size: u32, start: RingIdx) -> (FrontRing<u64, u32>, BackRing<u64, u32>) {
    let front = FrontRing::init_at(page.shared(ring_bytes(size)), start);
    let back = BackRing::attach(page.shared(ring_bytes(size)), start);
    assert_eq!(front.size(), size);
    (front, back)
}

/// The value a back end answers request `value` with.
fn answer(value: u64) -> u32 {
    ((value & 0xffff_ffff) as u32).wrapping_mul(3) ^ 0x5a5a_5a5a
}

// ---------------------------------------------------------------------------------------------
// A literal model of the ring.h macros on plain integers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Model {
    size: u32,
    // shared
    req_prod: u32,
    req_event: u32,
    rsp_prod: u32,
    rsp_event: u32,
    // front
    req_prod_pvt: u32,
    rsp_cons: u32,
    // back
    rsp_prod_pvt: u32,
    req_cons: u32,
}

impl Model {
    /// SHARED_RING_INIT + FRONT_RING_ATTACH + BACK_RING_ATTACH at `start`.
    fn new(size: u32, start: u32) -> Self {
        Self {
            size,
            req_prod: start,
            req_event: start.wrapping_add(1),
            rsp_prod: start,
            rsp_event: start.wrapping_add(1),
            req_prod_pvt: start,
            rsp_cons: start,
            rsp_prod_pvt: start,
            req_cons: start,
        }
    }
    /// RING_FREE_REQUESTS
    fn free_requests(&self) -> u32 {
        self.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }
    /// RING_HAS_UNCONSUMED_RESPONSES
    fn unconsumed_responses(&self) -> u32 {
        self.rsp_prod.wrapping_sub(self.rsp_cons)
    }
    /// RING_HAS_UNCONSUMED_REQUESTS (the GNU C version)
    fn unconsumed_requests(&self) -> u32 {
        let req = self.req_prod.wrapping_sub(self.req_cons);
        let rsp = self.size - self.req_cons.wrapping_sub(self.rsp_prod_pvt);
        req.min(rsp)
    }
    /// RING_PUSH_REQUESTS_AND_CHECK_NOTIFY
    fn push_requests_and_check_notify(&mut self) -> bool {
        let old = self.req_prod;
        let new = self.req_prod_pvt;
        self.req_prod = new;
        new.wrapping_sub(self.req_event) < new.wrapping_sub(old)
    }
    /// RING_PUSH_RESPONSES_AND_CHECK_NOTIFY
    fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.rsp_prod;
        let new = self.rsp_prod_pvt;
        self.rsp_prod = new;
        new.wrapping_sub(self.rsp_event) < new.wrapping_sub(old)
    }
    /// RING_FINAL_CHECK_FOR_RESPONSES
    fn final_check_for_responses(&mut self) -> bool {
        if self.unconsumed_responses() != 0 {
            return true;
        }
        self.rsp_event = self.rsp_cons.wrapping_add(1);
        self.unconsumed_responses() != 0
    }
    /// RING_FINAL_CHECK_FOR_REQUESTS
    fn final_check_for_requests(&mut self) -> bool {
        if self.unconsumed_requests() != 0 {
            return true;
        }
        self.req_event = self.req_cons.wrapping_add(1);
        self.unconsumed_requests() != 0
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    FrontWrite(u32),
    FrontPush,
    FrontPushNotify,
    FrontTake(u32),
    FrontFinalCheck,
    BackTake(u32),
    BackRespond(u32),
    BackPush,
    BackPushNotify,
    BackFinalCheck,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..6).prop_map(Op::FrontWrite),
        Just(Op::FrontPush),
        Just(Op::FrontPushNotify),
        (0u32..6).prop_map(Op::FrontTake),
        Just(Op::FrontFinalCheck),
        (0u32..6).prop_map(Op::BackTake),
        (0u32..6).prop_map(Op::BackRespond),
        Just(Op::BackPush),
        Just(Op::BackPushNotify),
        Just(Op::BackFinalCheck),
    ]
}

fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), (u32::MAX - 20..=u32::MAX), any::<u32>(),]
}

/// Runs `ops` on a real front/back pair and on the model, comparing every decision, every
/// count and every index, and checking that each response answers its own request.
fn run_against_model(size: u32, start: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let page = Page::new();
    let (mut front, mut back) = pair(&page, size, start);
    let mut model = Model::new(size, start);
    // Request payloads are their index plus a tag, so a response can be matched to it.
    let tag = 0xabcd_0000_0000_0000u64;
    let mut answered_requests = Vec::new();
    for &op in ops {
        match op {
            Op::FrontWrite(n) => {
                for _ in 0..n {
                    let free = model.free_requests();
                    let idx = front.req_prod_pvt();
                    let result = front.write_request(tag | u64::from(idx));
                    if free == 0 {
                        prop_assert_eq!(result, Err(RingError::Full));
                    } else {
                        prop_assert_eq!(result, Ok(idx));
                        model.req_prod_pvt = model.req_prod_pvt.wrapping_add(1);
                    }
                }
            }
            Op::FrontPush => {
                front.push_requests();
                model.req_prod = model.req_prod_pvt;
            }
            Op::FrontPushNotify => {
                prop_assert_eq!(
                    front.push_requests_and_check_notify(),
                    model.push_requests_and_check_notify()
                );
            }
            Op::FrontTake(n) => {
                for _ in 0..n {
                    let expected = model.unconsumed_responses();
                    prop_assert_eq!(front.unconsumed_responses(), Ok(expected));
                    let idx = front.rsp_cons();
                    match front.take_response() {
                        Ok(Some(value)) => {
                            prop_assert!(expected > 0);
                            prop_assert_eq!(value, answer(tag | u64::from(idx)));
                            model.rsp_cons = model.rsp_cons.wrapping_add(1);
                        }
                        Ok(None) => prop_assert_eq!(expected, 0),
                        Err(e) => return Err(TestCaseError::fail(format!("honest back: {e}"))),
                    }
                }
            }
            Op::FrontFinalCheck => {
                prop_assert_eq!(
                    front.final_check_for_responses(),
                    Ok(model.final_check_for_responses())
                );
            }
            Op::BackTake(n) => {
                for _ in 0..n {
                    let expected = model.unconsumed_requests();
                    prop_assert_eq!(back.unconsumed_requests(), Ok(expected));
                    let idx = back.req_cons();
                    // RING_REQUEST_CONS_OVERFLOW
                    prop_assert_eq!(
                        back.request_cons_overflow(idx),
                        idx.wrapping_sub(model.rsp_prod_pvt) >= model.size
                    );
                    match back.take_request() {
                        Ok(Some(value)) => {
                            prop_assert!(expected > 0);
                            prop_assert_eq!(value, tag | u64::from(idx));
                            answered_requests.push(value);
                            model.req_cons = model.req_cons.wrapping_add(1);
                        }
                        Ok(None) => prop_assert_eq!(expected, 0),
                        Err(e) => return Err(TestCaseError::fail(format!("honest front: {e}"))),
                    }
                }
            }
            Op::BackRespond(n) => {
                for _ in 0..n {
                    let pending = model.req_cons.wrapping_sub(model.rsp_prod_pvt);
                    let idx = back.rsp_prod_pvt();
                    if pending == 0 {
                        prop_assert_eq!(back.write_response(0), Err(RingError::NoPendingRequest));
                    } else {
                        let request = answered_requests.remove(0);
                        prop_assert_eq!(back.write_response(answer(request)), Ok(idx));
                        model.rsp_prod_pvt = model.rsp_prod_pvt.wrapping_add(1);
                    }
                }
            }
            Op::BackPush => {
                back.push_responses();
                model.rsp_prod = model.rsp_prod_pvt;
            }
            Op::BackPushNotify => {
                prop_assert_eq!(
                    back.push_responses_and_check_notify(),
                    model.push_responses_and_check_notify()
                );
            }
            Op::BackFinalCheck => {
                prop_assert_eq!(
                    back.final_check_for_requests(),
                    Ok(model.final_check_for_requests())
                );
            }
        }
        // Shared and private indices agree with the model after every step.
        prop_assert_eq!(page.get(REQ_PROD), model.req_prod);
        prop_assert_eq!(page.get(REQ_EVENT), model.req_event);
        prop_assert_eq!(page.get(RSP_PROD), model.rsp_prod);
        prop_assert_eq!(page.get(RSP_EVENT), model.rsp_event);
        prop_assert_eq!(front.req_prod_pvt(), model.req_prod_pvt);
        prop_assert_eq!(front.rsp_cons(), model.rsp_cons);
        prop_assert_eq!(front.free_requests(), model.free_requests());
        prop_assert_eq!(back.req_cons(), model.req_cons);
        prop_assert_eq!(back.rsp_prod_pvt(), model.rsp_prod_pvt);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every notification decision, final check, count and index matches the ring.h macros,
    /// from any starting index (wrap-around at u32::MAX included) and for several ring sizes.
    #[test]
    fn matches_ring_h_model(
        size_log2 in 0u32..4,
        start in start_index(),
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        run_against_model(1 << size_log2, start, &ops)?;
    }

    /// `ring_size` is the largest power of two of slots that fits after the 64-byte header.
    #[test]
    fn ring_size_is_largest_fitting_power_of_two(bytes in 0usize..1 << 20) {
        let size = ring_size::<u64, [u8; 12]>(bytes);
        // Slot: max(8, 12) rounded up to align 8 = 16 bytes.
        let fits = bytes.saturating_sub(64) / 16;
        if fits == 0 {
            prop_assert_eq!(size, 0);
        } else {
            prop_assert!(size.is_power_of_two());
            prop_assert!(size as usize <= fits);
            prop_assert!(2 * size as usize > fits);
        }
    }

    /// A lying back end that writes arbitrary values into the header (and garbage into slots)
    /// between honest front-end steps: the front never panics, never takes more responses than
    /// it published requests, and every error it reports is a producer overrun.
    #[test]
    fn front_survives_lying_back(
        start in start_index(),
        steps in proptest::collection::vec((0usize..4, any::<u32>(), 0u32..4, any::<bool>()), 1..80),
    ) {
        let page = Page::new();
        let size = 8;
        let mut front: FrontRing<u64, u32> = FrontRing::init_at(page.shared(ring_bytes(size)), start);
        let mut published = 0u64;
        let mut taken = 0u64;
        for (field, value, writes, relative) in steps {
            // The peer writes a header word: either anything, or something near our indices.
            let value = if relative { front.rsp_cons().wrapping_add(value % 24).wrapping_sub(8) } else { value };
            page.set([REQ_EVENT, RSP_PROD, RSP_EVENT, REQ_PROD][field], value);
            page.poke_slot(value as usize % 8, u64::from(value));
            for _ in 0..writes {
                if front.write_request(1).is_ok() {
                    prop_assert!(front.free_requests() < size);
                }
            }
            let _notify = front.push_requests_and_check_notify();
            published = published.max(u64::from(front.req_prod_pvt().wrapping_sub(start)));
            loop {
                match front.take_response() {
                    Ok(Some(_)) => taken += 1,
                    Ok(None) => break,
                    Err(RingError::ProducerOverrun { .. }) => break,
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
                }
            }
            match front.final_check_for_responses() {
                Ok(_) | Err(RingError::ProducerOverrun { .. }) => {}
                Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
            }
            prop_assert!(taken <= published);
            prop_assert!(front.free_requests() <= size);
            prop_assert!(front.req_prod_pvt().wrapping_sub(front.rsp_cons()) <= size);
        }
    }

    /// The mirror image: a lying front end against an honest back end. The back never takes a
    /// request into a slot whose response is still owed, and never panics.
    #[test]
    fn back_survives_lying_front(
        start in start_index(),
        steps in proptest::collection::vec((0usize..4, any::<u32>(), 0u32..10, 0u32..10, any::<bool>()), 1..80),
    ) {
        let page = Page::new();
        let size = 8;
        let _front: FrontRing<u64, u32> = FrontRing::init_at(page.shared(ring_bytes(size)), start);
        let mut back: BackRing<u64, u32> = BackRing::attach(page.shared(ring_bytes(size)), start);
        for (field, value, takes, responses, relative) in steps {
            let value = if relative { back.req_cons().wrapping_add(value % 24).wrapping_sub(8) } else { value };
            page.set([REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT][field], value);
            for _ in 0..takes {
                match back.take_request() {
                    Ok(_) => {}
                    Err(RingError::ProducerOverrun { prod, cons, limit }) => {
                        prop_assert_eq!(cons, back.req_cons());
                        prop_assert!(prod.wrapping_sub(cons) > limit);
                        break;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
                }
                // Taken but unanswered requests never exceed the ring.
                prop_assert!(back.req_cons().wrapping_sub(back.rsp_prod_pvt()) <= size);
            }
            for _ in 0..responses {
                let _ = back.write_response(7);
            }
            let _notify = back.push_responses_and_check_notify();
            match back.final_check_for_requests() {
                Ok(_) | Err(RingError::ProducerOverrun { .. }) => {}
                Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
            }
            prop_assert!(back.req_cons().wrapping_sub(back.rsp_prod_pvt()) <= size);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Directed tests
// ---------------------------------------------------------------------------------------------

#[test]
fn shared_ring_new_checks_pointer_alignment_and_size() {
    let page = Page::new();
    // SAFETY: the null pointer is rejected before any use.
    let null = unsafe { SharedRing::<u64, u64>::new(std::ptr::null_mut(), 4096) };
    assert_eq!(null.map(|_| ()), Err(RingError::Null));
    // SAFETY: inside the live page; rejected before any use because it is not page-aligned.
    let misaligned = unsafe { SharedRing::<u64, u64>::new(page.ptr.add(8), 4088) };
    assert_eq!(misaligned.map(|_| ()), Err(RingError::Misaligned));
    // SAFETY: the live page; rejected because 70 bytes hold no 8-byte slot after the header.
    let small = unsafe { SharedRing::<u64, u64>::new(page.ptr, 70) };
    assert_eq!(small.map(|_| ()), Err(RingError::TooSmall { len: 70 }));
    assert_eq!(page.shared::<u64, u64>(72).size(), 1);
    assert_eq!(page.shared::<u64, u64>(4096).size(), 256);
}

#[test]
fn init_writes_the_shared_header() {
    let page = Page::new();
    for offset in (0..64).step_by(4) {
        page.set(offset, 0xdead_beef);
    }
    let front: FrontRing<u64, u32> = FrontRing::init(page.shared(4096));
    assert_eq!(page.get(REQ_PROD), 0);
    assert_eq!(page.get(RSP_PROD), 0);
    assert_eq!(page.get(REQ_EVENT), 1);
    assert_eq!(page.get(RSP_EVENT), 1);
    for offset in (16..64).step_by(4) {
        assert_eq!(page.get(offset), 0, "padding at {offset}");
    }
    assert_eq!(front.free_requests(), 256);
    // The back end's init writes nothing shared.
    page.set(REQ_EVENT, 42);
    let back: BackRing<u64, u32> = BackRing::init(page.shared(4096));
    assert_eq!(page.get(REQ_EVENT), 42);
    assert_eq!((back.req_cons(), back.rsp_prod_pvt()), (0, 0));
}

#[test]
fn full_ring_and_unanswered_requests() {
    let page = Page::new();
    let (mut front, mut back) = pair(&page, 4, 0);
    for i in 0..4 {
        assert_eq!(
            front.write_request(i),
            Ok(u32::try_from(i).expect("four slots"))
        );
    }
    assert!(front.is_full());
    assert_eq!(front.write_request(9), Err(RingError::Full));
    assert_eq!(back.write_response(1), Err(RingError::NoPendingRequest));
    front.push_requests();
    assert_eq!(back.unconsumed_requests(), Ok(4));
    for i in 0..4 {
        assert_eq!(back.take_request(), Ok(Some(i)));
    }
    assert_eq!(back.take_request(), Ok(None));
    assert!(back.request_cons_overflow(back.req_cons()));
    assert_eq!(back.write_response(answer(0)), Ok(0));
    assert!(!back.request_cons_overflow(back.req_cons()));
    back.push_responses();
    // The slot answered frees exactly one request slot.
    assert_eq!(front.take_response(), Ok(Some(answer(0))));
    assert_eq!(front.free_requests(), 1);
}

#[test]
fn wraps_around_u32_max() {
    let page = Page::new();
    let start = u32::MAX - 2;
    let (mut front, mut back) = pair(&page, 4, start);
    let mut next_request = 0u64;
    let mut next_response = 0u64;
    for _round in 0..10 {
        while !front.is_full() {
            front.write_request(next_request).unwrap();
            next_request += 1;
        }
        front.push_requests_and_check_notify();
        while let Some(request) = back.take_request().unwrap() {
            back.write_response(answer(request)).unwrap();
        }
        back.push_responses_and_check_notify();
        while let Some(response) = front.take_response().unwrap() {
            assert_eq!(response, answer(next_response));
            next_response += 1;
        }
    }
    assert_eq!(next_response, 40);
    assert_eq!(front.rsp_cons(), start.wrapping_add(40));
    assert_eq!(page.get(REQ_PROD), 37);
    assert_eq!(page.get(RSP_PROD), 37);
}

#[test]
fn notification_follows_event_indices() {
    let page = Page::new();
    let (mut front, mut back) = pair(&page, 8, 0);
    // Fresh ring: req_event = 1, so the first request notifies, the second does not.
    front.write_request(0).unwrap();
    assert!(front.push_requests_and_check_notify());
    front.write_request(1).unwrap();
    assert!(!front.push_requests_and_check_notify());
    // The back end drains and re-arms: req_event = req_cons + 1 = 3.
    while back.take_request().unwrap().is_some() {}
    assert_eq!(back.final_check_for_requests(), Ok(false));
    assert_eq!(page.get(REQ_EVENT), 3);
    front.write_request(2).unwrap();
    front.write_request(3).unwrap();
    assert!(front.push_requests_and_check_notify());
    // A final check with work pending does not re-arm.
    assert_eq!(back.final_check_for_requests(), Ok(true));
    assert_eq!(page.get(REQ_EVENT), 3);
}

#[test]
fn lying_back_end_is_detected_not_obeyed() {
    let page = Page::new();
    let (mut front, mut back) = pair(&page, 8, u32::MAX - 1);
    for i in 0..3 {
        front.write_request(i).unwrap();
    }
    front.push_requests();
    back.take_request().unwrap();
    back.write_response(answer(0)).unwrap();
    back.push_responses();
    assert_eq!(front.unconsumed_responses(), Ok(1));
    let cons = front.rsp_cons();

    // A response for a request never published (3 published, claims 4).
    page.set(RSP_PROD, cons.wrapping_add(4));
    let overrun = RingError::ProducerOverrun {
        prod: cons.wrapping_add(4),
        cons,
        limit: 3,
    };
    assert_eq!(front.unconsumed_responses(), Err(overrun));
    assert_eq!(front.take_response(), Err(overrun));
    assert_eq!(front.final_check_for_responses(), Err(overrun));
    assert_eq!(front.rsp_cons(), cons);

    // Far ahead, and behind.
    page.set(RSP_PROD, cons.wrapping_add(1 << 31));
    assert!(matches!(
        front.take_response(),
        Err(RingError::ProducerOverrun { .. })
    ));
    page.set(RSP_PROD, cons.wrapping_sub(1));
    assert!(matches!(
        front.take_response(),
        Err(RingError::ProducerOverrun { .. })
    ));
    assert_eq!(front.rsp_cons(), cons);

    // Back to the truth: the ring works again.
    page.set(RSP_PROD, cons.wrapping_add(1));
    assert_eq!(front.take_response(), Ok(Some(answer(0))));
}

#[test]
fn lying_front_end_is_detected_not_obeyed() {
    let page = Page::new();
    let (mut front, mut back) = pair(&page, 8, u32::MAX - 5);
    for i in 0..2 {
        front.write_request(i).unwrap();
    }
    front.push_requests();
    assert_eq!(back.take_request(), Ok(Some(0)));
    let cons = back.req_cons();
    // One request taken and unanswered: the front can have filled at most 7 more slots, of
    // which one (request 1) is published.
    page.set(REQ_PROD, cons.wrapping_add(8));
    assert_eq!(
        back.take_request(),
        Err(RingError::ProducerOverrun {
            prod: cons.wrapping_add(8),
            cons,
            limit: 7
        })
    );
    page.set(REQ_PROD, cons.wrapping_add(7));
    assert_eq!(back.unconsumed_requests(), Ok(7));
    // Far ahead, and backwards past what was consumed.
    page.set(REQ_PROD, cons.wrapping_add(1 << 31));
    assert!(matches!(
        back.final_check_for_requests(),
        Err(RingError::ProducerOverrun { .. })
    ));
    page.set(REQ_PROD, cons.wrapping_sub(1));
    assert!(matches!(
        back.take_request(),
        Err(RingError::ProducerOverrun { .. })
    ));
    assert_eq!(back.req_cons(), cons);
}

#[test]
fn peer_event_indices_in_past_or_future_only_change_the_notify_bit() {
    let page = Page::new();
    let (mut front, mut back) = pair(&page, 8, u32::MAX - 1);
    let cases = [
        // (event relative to the old producer index, expected notify for a push of 2)
        (0u32, false),           // in the past: already notified
        (u32::MAX - 100, false), // far in the past
        (1, true),               // first new request
        (2, true),               // last new request
        (3, false),              // future
        (1 << 31, false),        // far future
    ];
    for (relative, expected) in cases {
        let old = front.req_prod_pvt();
        page.set(REQ_EVENT, old.wrapping_add(relative));
        front.write_request(1).unwrap();
        front.write_request(2).unwrap();
        assert_eq!(
            front.push_requests_and_check_notify(),
            expected,
            "event {relative}"
        );
        // The back end keeps up regardless.
        while let Some(request) = back.take_request().unwrap() {
            back.write_response(answer(request)).unwrap();
        }
        let old = back.rsp_prod_pvt().wrapping_sub(2);
        page.set(RSP_EVENT, old.wrapping_add(relative));
        assert_eq!(
            back.push_responses_and_check_notify(),
            expected,
            "event {relative}"
        );
        while front.take_response().unwrap().is_some() {}
        // Our own final checks re-arm from our own indices, whatever the peer left there.
        assert_eq!(front.final_check_for_responses(), Ok(false));
        assert_eq!(page.get(RSP_EVENT), front.rsp_cons().wrapping_add(1));
    }
}

#[test]
fn front_and_back_on_two_threads() {
    const COUNT: u64 = 20_000;
    let page = Page::new();
    let (mut front, mut back) = pair(&page, 16, u32::MAX - 1000);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut answered = 0;
            while answered < COUNT {
                let mut any = false;
                while let Some(request) = back.take_request().unwrap() {
                    back.write_response(answer(request)).unwrap();
                    answered += 1;
                    any = true;
                }
                back.push_responses_and_check_notify();
                if !any && !back.final_check_for_requests().unwrap() {
                    std::thread::yield_now();
                }
            }
        });
        let mut sent = 0u64;
        let mut received = 0u64;
        while received < COUNT {
            while sent < COUNT && !front.is_full() {
                front.write_request(sent).unwrap();
                sent += 1;
            }
            front.push_requests_and_check_notify();
            let mut any = false;
            while let Some(response) = front.take_response().unwrap() {
                assert_eq!(response, answer(received));
                received += 1;
                any = true;
            }
            if !any && !front.final_check_for_responses().unwrap() {
                std::thread::yield_now();
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Rings of several pages
// ---------------------------------------------------------------------------------------------

/// `n` zeroed, page-aligned pages in one allocation: page `i` at `ptr + i * 4096`.
struct Pages {
    ptr: *mut u8,
    layout: Layout,
}

impl Pages {
    fn new(n: usize) -> Self {
        let layout = Layout::from_size_align(4096 * n, 4096).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Self { ptr, layout }
    }

    fn page(&self, i: usize) -> *mut u8 {
        assert!(4096 * (i + 1) <= self.layout.size());
        // SAFETY: inside the allocation (asserted).
        unsafe { self.ptr.add(4096 * i) }
    }

    fn byte(&self, offset: usize) -> u8 {
        assert!(offset < self.layout.size());
        // SAFETY: inside the live allocation; the rings write it only through atomics, and
        // no ring runs while this reads (each test is single-threaded).
        unsafe { std::ptr::read_volatile(self.ptr.add(offset)) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; every ring over it is gone (declared
        // after it).
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// A 40-byte slot: 4032 / 40 does not divide, so slot 100 straddles the first two pages.
type Wide = [u64; 5];

fn wide(i: u64) -> Wide {
    [
        i,
        !i,
        i.rotate_left(17),
        i ^ 0x5a5a,
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    ]
}

#[test]
fn a_ring_of_separate_pages_is_the_pages_end_to_end() {
    let mem = Pages::new(4);
    // The front end lays its ring over the four pages as separate pointers, the back end sees
    // them as one contiguous region (what Linux's vmap of `ring-ref0..3` gives): the same ring.
    let pages: Vec<*mut u8> = (0..4).map(|i| mem.page(i)).collect();
    // SAFETY: four live, page-aligned, distinct pages, reached only through these two rings
    // until `mem` is dropped after them.
    let front_mem = unsafe { SharedRing::<Wide, u64>::new_pages(&pages).unwrap() };
    // SAFETY: the same live 16 KiB, the other end of the same ring.
    let back_mem = unsafe { SharedRing::<Wide, u64>::new(mem.ptr, 4 * 4096).unwrap() };
    assert_eq!(front_mem.pages(), 4);
    assert_eq!(back_mem.pages(), 1);
    // (16384 - 64) / 40 = 408 slots, rounded down to 256.
    assert_eq!(front_mem.size(), 256);
    assert_eq!(back_mem.size(), 256);
    let mut front = FrontRing::init(front_mem);
    let mut back = BackRing::init(back_mem);
    for round in 0..3u64 {
        for i in 0..256 {
            front.write_request(wide(round * 1000 + i)).unwrap();
        }
        assert_eq!(front.write_request(wide(0)), Err(RingError::Full));
        front.push_requests();
        for i in 0..256 {
            assert_eq!(back.take_request().unwrap(), Some(wide(round * 1000 + i)));
            back.write_response(round * 1000 + i).unwrap();
        }
        back.push_responses();
        for i in 0..256 {
            assert_eq!(front.take_response().unwrap(), Some(round * 1000 + i));
        }
    }
    // Slot 100 (bytes 4064..4104) straddles pages 0 and 1: its first word in page 0, its
    // last bytes in page 1, as in one contiguous region.
    let last = wide(2000 + 100);
    let at = 64 + 100 * 40;
    assert_eq!(mem.byte(at), last[0].to_le_bytes()[0]);
    assert_eq!(mem.byte(at + 39), last[4].to_le_bytes()[7]);
    assert!(at < 4096 && at + 39 >= 4096);
    // The header is at the start of the first page only.
    let req_prod = u32::from_le_bytes([mem.byte(0), mem.byte(1), mem.byte(2), mem.byte(3)]);
    assert_eq!(req_prod, 3 * 256);
}

#[test]
fn pages_in_any_order_keep_the_ring_order() {
    let mem = Pages::new(2);
    // The ring's first page is the allocation's second: the header lands there.
    let pages = [mem.page(1), mem.page(0)];
    // SAFETY: two live, distinct, page-aligned pages, used only through these rings.
    let front_mem = unsafe { SharedRing::<Wide, u64>::new_pages(&pages).unwrap() };
    // SAFETY: as above, the other end.
    let back_mem = unsafe { SharedRing::<Wide, u64>::new_pages(&pages).unwrap() };
    assert_eq!(front_mem.size(), 128); // (8192 - 64) / 40 = 203 -> 128
    let mut front = FrontRing::init(front_mem);
    let mut back = BackRing::init(back_mem);
    for i in 0..128 {
        front.write_request(wide(i)).unwrap();
    }
    assert!(front.push_requests_and_check_notify());
    for i in 0..128 {
        assert_eq!(back.take_request().unwrap(), Some(wide(i)));
    }
    let req_prod = |base: usize| u32::from_le_bytes([0, 1, 2, 3].map(|k| mem.byte(base + k)));
    assert_eq!(req_prod(4096), 128);
    // Slot 101 (the first wholly in the ring's second page: 64 + 101 * 40 = 4104) sits at
    // byte 8 of the allocation's first page.
    assert_eq!(mem.byte(8), wide(101)[0].to_le_bytes()[0]);
}

#[test]
fn new_pages_checks_count_pointers_and_duplicates() {
    let mem = Pages::new(2);
    // SAFETY: rejected before any use (no pages).
    let none = unsafe { SharedRing::<u64, u64>::new_pages(&[]) };
    assert_eq!(none.map(|_| ()), Err(RingError::PageCount { pages: 0 }));
    let many = vec![mem.page(0); abi::ring::MAX_RING_PAGES + 1];
    // SAFETY: rejected before any use (too many pages).
    let many = unsafe { SharedRing::<u64, u64>::new_pages(&many) };
    assert_eq!(many.map(|_| ()), Err(RingError::PageCount { pages: 17 }));
    // SAFETY: rejected before any use (a null page).
    let null = unsafe { SharedRing::<u64, u64>::new_pages(&[mem.page(0), std::ptr::null_mut()]) };
    assert_eq!(null.map(|_| ()), Err(RingError::Null));
    // SAFETY: rejected before any use (the second page is not page-aligned).
    let odd = unsafe { SharedRing::<u64, u64>::new_pages(&[mem.page(0), mem.ptr.add(8)]) };
    assert_eq!(odd.map(|_| ()), Err(RingError::Misaligned));
    // The safe form refuses a page given twice.
    let page: &'static abi::page::AtomicPage = Box::leak(Box::new(abi::page::AtomicPage::zeroed()));
    let twice = SharedRing::<u64, u64>::from_pages(&[page, page]);
    assert_eq!(twice.map(|_| ()), Err(RingError::PageCount { pages: 2 }));
    let other: &'static abi::page::AtomicPage =
        Box::leak(Box::new(abi::page::AtomicPage::zeroed()));
    let ring = SharedRing::<u64, u64>::from_pages(&[page, other]).unwrap();
    assert_eq!((ring.pages(), ring.size()), (2, 1 << 9)); // (8192 - 64) / 8 = 1016 -> 512
}
