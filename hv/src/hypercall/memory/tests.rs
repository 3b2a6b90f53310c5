//! The reservation operations against a fake physical map, and the ledger.

use alloc::collections::BTreeSet;

use abi::memory as m;
use abi::xen as x;
use proptest::prelude::*;

use super::super::Action;
use super::super::args::set_field;
use super::super::tests::{Fake, call5};
use super::*;
use crate::guest::phys::PAGE_SIZE;
use crate::xen_errno::XenErrno;

/// The fake host's `max_page` (1 GiB of RAM).
pub(in crate::hypercall) const HOST_MAX_PAGE: u64 = 0x40000;
/// The fake domain's RAM: guest frames 0x100..0x140.
const RAM: core::ops::Range<u64> = 0x100..0x140;
/// Its special pages (counted, as Xen counts the console and xenstore pages).
const FIXED: u64 = 2;
/// Its slack below `max_pages`.
const SLACK: u64 = 4;

/// A domain's physical map as the reservation operations see it.
pub(in crate::hypercall) struct FakePhysmap {
    /// Guest frames mapped.
    pub(in crate::hypercall) mapped: BTreeSet<u64>,
    /// Guest frames whose page hv holds (a `vcpu_info`): unmapped but not given back.
    pub(in crate::hypercall) held: BTreeSet<u64>,
    pub(in crate::hypercall) tot: u64,
    pub(in crate::hypercall) max: u64,
    /// Frames hv has free.
    pub(in crate::hypercall) host_free: u64,
    /// The host addresses of the last populate's limit.
    pub(in crate::hypercall) last_below: u64,
}

impl FakePhysmap {
    pub(in crate::hypercall) fn new() -> Self {
        let ram = RAM.end - RAM.start;
        Self {
            mapped: RAM.collect(),
            held: BTreeSet::new(),
            tot: ram + FIXED,
            max: ram + FIXED + SLACK,
            host_free: 1024,
            last_below: 0,
        }
    }
    pub(in crate::hypercall) fn reservation(&self) -> Reservation {
        Reservation {
            tot_pages: self.tot,
            max_pages: self.max,
        }
    }
    pub(in crate::hypercall) fn remove(&mut self, gfn: u64) -> Result<(), XenErrno> {
        if !self.mapped.remove(&gfn) {
            return Err(-2);
        }
        if !self.held.contains(&gfn) {
            self.tot -= 1;
            self.host_free += 1;
        }
        Ok(())
    }
    pub(in crate::hypercall) fn populate(
        &mut self,
        gfn: Option<u64>,
        order: u32,
        below: u64,
    ) -> Result<(), XenErrno> {
        let n = 1u64 << order;
        self.last_below = below;
        if self.host_free < n {
            return Err(-12);
        }
        self.host_free -= n;
        self.tot += n;
        if let Some(g) = gfn {
            if g.checked_add(n).is_none_or(|end| end > 1 << 36) {
                return Err(-22);
            }
            self.mapped.extend(g..g + n);
        }
        Ok(())
    }
}

/// Where the tests put the reservation and the extent list.
const ARG: u64 = 0x100;
const LIST: u64 = 0x1000;

/// Writes a reservation for `extents` (placed at [`LIST`]) and calls `op` from `start`.
fn reserve(f: &mut Fake, op: u32, extents: &[u64], order: u32, flags: u32, domid: u16) -> i64 {
    reserve_from(f, op, extents, order, flags, domid, 0).ret
}

fn reserve_from(
    f: &mut Fake,
    op: u32,
    extents: &[u64],
    order: u32,
    flags: u32,
    domid: u16,
    start: u64,
) -> Outcome {
    for (i, e) in extents.iter().enumerate() {
        f.put(LIST + 8 * i as u64, &e.to_le_bytes());
    }
    f.put(
        ARG,
        &reservation_image(LIST, extents.len() as u64, order, flags, domid),
    );
    call5(
        f,
        u64::from(x::HYPERVISOR_MEMORY_OP),
        [u64::from(op) | (start << MEMOP_EXTENT_SHIFT), ARG, 0, 0, 0],
    )
}

/// `xen_memory_reservation`'s bytes, its padding zero.
fn reservation_image(
    extent_start: u64,
    nr_extents: u64,
    order: u32,
    flags: u32,
    domid: u16,
) -> [u8; size_of::<m::XenMemoryReservation>()] {
    type R = m::XenMemoryReservation;
    let mut image = [0u8; size_of::<R>()];
    set_field!(image, R, extent_start, extent_start);
    set_field!(image, R, nr_extents, nr_extents);
    set_field!(image, R, extent_order, order);
    set_field!(image, R, mem_flags, flags);
    set_field!(image, R, domid, domid);
    image
}

use core::mem::size_of;

fn query(f: &mut Fake, op: u32, domid: u16) -> i64 {
    f.put(ARG, &domid.to_le_bytes());
    call5(
        f,
        u64::from(x::HYPERVISOR_MEMORY_OP),
        [u64::from(op), ARG, 0, 0, 0],
    )
    .ret
}

const DEC: u32 = m::XENMEM_DECREASE_RESERVATION;
const POP: u32 = m::XENMEM_POPULATE_PHYSMAP;
const INC: u32 = m::XENMEM_INCREASE_RESERVATION;
const CUR: u32 = m::XENMEM_CURRENT_RESERVATION;
const MAX: u32 = m::XENMEM_MAXIMUM_RESERVATION;
const SELF: u16 = x::DOMID_SELF;

#[test]
fn decrease_then_populate_back_moves_the_count_and_the_map() {
    let mut f = Fake::new();
    let tot = query(&mut f, CUR, SELF);
    assert_eq!(tot, 66);
    assert_eq!(query(&mut f, MAX, SELF), 70);
    assert_eq!(query(&mut f, MAX, 1), 70);
    assert_eq!(reserve(&mut f, DEC, &[0x101, 0x103, 0x105], 0, 0, SELF), 3);
    assert_eq!(query(&mut f, CUR, SELF), tot - 3);
    assert!(!f.physmap.mapped.contains(&0x103));
    // Gone: removing it again stops at once, before the next extent.
    assert_eq!(reserve(&mut f, DEC, &[0x103, 0x107], 0, 0, SELF), 0);
    assert!(f.physmap.mapped.contains(&0x107));
    assert_eq!(reserve(&mut f, POP, &[0x101, 0x103, 0x105], 0, 0, SELF), 3);
    assert_eq!(query(&mut f, CUR, SELF), tot);
    assert!(f.physmap.mapped.contains(&0x103));
}

#[test]
fn refusals_answer_the_extent_to_start_at() {
    let mut f = Fake::new();
    // Order 10, above a domU's limit of 9 (2 MiB extents), for each operation.
    for op in [DEC, POP, INC] {
        assert_eq!(reserve(&mut f, op, &[0x100], 10, 0, SELF), 0);
    }
    // Another domain, domain 0 included.
    assert_eq!(reserve(&mut f, DEC, &[0x100], 0, 0, 0), 0);
    assert_eq!(reserve(&mut f, DEC, &[0x100], 0, 0, 7), 0);
    // Address bits that cannot hold a page; an exact node a domU may not ask for.
    assert_eq!(reserve(&mut f, POP, &[0x200], 0, 12, SELF), 0);
    let node0 = 1 << 8;
    assert_eq!(
        reserve(
            &mut f,
            POP,
            &[0x200],
            0,
            node0 | m::XENMEMF_EXACT_NODE_REQUEST,
            SELF
        ),
        0
    );
    // Populate-on-demand on oneself, within and beyond MAX_ORDER.
    let pod = m::XENMEMF_POPULATE_ON_DEMAND;
    assert_eq!(reserve(&mut f, POP, &[0x200], 0, pod, SELF), 0);
    assert_eq!(reserve(&mut f, POP, &[0x200], 19, pod, SELF), 0);
    // The start beyond the list, from a continuation the guest made up.
    assert_eq!(reserve_from(&mut f, DEC, &[0x100], 0, 0, SELF, 5).ret, 5);
    assert_eq!(f.physmap.reservation().tot_pages, 66);
    assert_eq!(f.physmap.mapped.len(), 64);
    // A node without insisting, and address bits above the host's: served.
    assert_eq!(reserve(&mut f, POP, &[0x200], 0, node0, SELF), 1);
    assert_eq!(f.physmap.last_below, u64::MAX);
    assert_eq!(reserve(&mut f, POP, &[0x201], 0, 40, SELF), 1);
    assert_eq!(f.physmap.last_below, u64::MAX);
    assert_eq!(reserve(&mut f, POP, &[0x202], 0, 20, SELF), 1);
    assert_eq!(f.physmap.last_below, 1 << 20);
}

#[test]
fn too_many_extents_or_an_unreadable_argument_answer_the_start() {
    let mut f = Fake::new();
    f.put(
        ARG,
        &reservation_image(
            LIST,
            u64::from(u32::MAX >> MEMOP_EXTENT_SHIFT) + 1,
            0,
            0,
            SELF,
        ),
    );
    let op = u64::from(x::HYPERVISOR_MEMORY_OP);
    assert_eq!(call5(&mut f, op, [u64::from(DEC), ARG, 0, 0, 0]).ret, 0);
    // The reservation itself out of reach: the start, not -EFAULT.
    let cmd = u64::from(DEC) | (3 << MEMOP_EXTENT_SHIFT);
    assert_eq!(call5(&mut f, op, [cmd, 1 << 40, 0, 0, 0]).ret, 3);
    // An extent list that ends in the middle: the extents before it are done.
    f.put(ARG, &reservation_image(0x10000 - 16, 3, 0, 0, SELF));
    f.put(0x10000 - 16, &0x110u64.to_le_bytes());
    f.put(0x10000 - 8, &0x111u64.to_le_bytes());
    assert_eq!(call5(&mut f, op, [u64::from(DEC), ARG, 0, 0, 0]).ret, 2);
}

#[test]
fn populate_stops_at_max_pages_and_keeps_what_it_could_not_map() {
    let mut f = Fake::new();
    // Four pages of slack: the fifth extent is refused, the answer is four.
    let five = [0x200, 0x201, 0x202, 0x203, 0x204];
    assert_eq!(reserve(&mut f, POP, &five, 0, 0, SELF), 4);
    assert_eq!(query(&mut f, CUR, SELF), query(&mut f, MAX, SELF));
    assert!(!f.physmap.mapped.contains(&0x204));
    // A 2-page extent with one page of slack left is refused whole.
    assert_eq!(reserve(&mut f, DEC, &[0x200], 0, 0, SELF), 1);
    assert_eq!(reserve(&mut f, POP, &[0x300], 1, 0, SELF), 0);
    assert!(!f.physmap.mapped.contains(&0x300));
    assert_eq!(reserve(&mut f, DEC, &five[1..4], 0, 0, SELF), 3);
    let tot = query(&mut f, CUR, SELF);
    // A frame beyond the guest-physical limit: not done, but the page stays counted.
    assert_eq!(reserve(&mut f, POP, &[1 << 40], 0, 0, SELF), 0);
    assert_eq!(query(&mut f, CUR, SELF), tot + 1);
    // increase_reservation: counted, mapped nowhere.
    let mapped = f.physmap.mapped.len();
    assert_eq!(reserve(&mut f, INC, &[0], 0, 0, SELF), 1);
    assert_eq!(query(&mut f, CUR, SELF), tot + 2);
    assert_eq!(f.physmap.mapped.len(), mapped);
}

#[test]
fn a_2_mib_extent_goes_and_comes_back_whole() {
    let mut f = Fake::new();
    f.physmap.mapped.extend(0x200..0x400);
    f.physmap.tot += 512;
    f.physmap.max += 512;
    assert_eq!(reserve(&mut f, DEC, &[0x200], 9, 0, SELF), 1);
    assert_eq!(query(&mut f, CUR, SELF), 66);
    assert!(f.physmap.mapped.range(0x200..0x400).next().is_none());
    assert_eq!(reserve(&mut f, POP, &[0x200], 9, 0, SELF), 1);
    assert_eq!(f.physmap.mapped.range(0x200..0x400).count(), 512);
    // An extent with a hole in it: the pages before the hole go, the extent is not done.
    assert_eq!(reserve(&mut f, DEC, &[0x13e], 0, 0, SELF), 1);
    assert_eq!(reserve(&mut f, DEC, &[0x13c], 2, 0, SELF), 0);
    assert!(!f.physmap.mapped.contains(&0x13c) && !f.physmap.mapped.contains(&0x13d));
    assert!(f.physmap.mapped.contains(&0x13f));
}

#[test]
fn a_page_hv_holds_is_unmapped_but_not_given_back() {
    let mut f = Fake::new();
    f.physmap.held.insert(0x120);
    assert_eq!(reserve(&mut f, DEC, &[0x120], 0, 0, SELF), 1);
    assert_eq!(query(&mut f, CUR, SELF), 66);
    assert!(!f.physmap.mapped.contains(&0x120));
}

#[test]
fn a_page_mapped_from_another_domain_is_not_given_and_stays_mapped() {
    let mut f = Fake::new();
    let foreign = crate::grant::Foreign {
        dom: 2,
        gref: 8,
        readonly: false,
        pin: Some(0),
        frame: 0x7000_0000,
    };
    if let Some(st) = f.st_mut() {
        st.maptrack.insert(
            0,
            crate::grant::MapEntry {
                foreign,
                gfn: 0x121,
            },
        );
    }
    assert_eq!(reserve(&mut f, DEC, &[0x120, 0x121, 0x122], 0, 0, SELF), 1);
    assert!(f.physmap.mapped.contains(&0x121) && f.physmap.mapped.contains(&0x122));
    assert_eq!(reserve(&mut f, DEC, &[0x120], 1, 0, SELF), 0);
    assert_eq!(query(&mut f, CUR, SELF), 65);
    // Populating over it crashes the domain, as Xen's p2m_add_page does; the pages were
    // allocated and stay counted.
    let o = reserve_from(&mut f, POP, &[0x120], 1, 0, SELF, 0);
    assert_eq!(o.action, Action::Shutdown(abi::sched::SHUTDOWN_CRASH));
    assert_eq!(query(&mut f, CUR, SELF), 67);
    assert!(!f.physmap.mapped.contains(&0x120));
}

#[test]
fn removing_a_placed_grant_frame_forgets_its_place() {
    let mut f = Fake::new();
    let op = u64::from(x::HYPERVISOR_MEMORY_OP);
    let xatp = m::XenAddToPhysmap {
        domid: SELF,
        size: 0,
        space: m::XENMAPSPACE_GRANT_TABLE,
        idx: 0,
        gpfn: 0x130,
    };
    f.put_struct(ARG, &xatp);
    let add = call5(
        &mut f,
        op,
        [u64::from(m::XENMEM_ADD_TO_PHYSMAP), ARG, 0, 0, 0],
    );
    assert_eq!(add.ret, 0);
    assert_eq!(f.st().map(|s| s.grants.frame_gfn(0)), Some(0x130));
    assert_eq!(reserve(&mut f, DEC, &[0x130], 0, 0, SELF), 1);
    assert_eq!(f.st().map(|s| s.grants.frame_gfn(0)), Some(u64::MAX));
}

#[test]
fn a_long_request_continues_where_it_stopped() {
    let mut f = Fake::new();
    f.step = super::super::HYPERCALL_SLICE_NS / 4;
    let list: Vec<u64> = (0x100..0x110).collect();
    let mut o = reserve_from(&mut f, DEC, &list, 0, 0, SELF, 0);
    let mut rounds = 0;
    while let Action::Continue { args } = o.action {
        let done_so_far = args[0] >> MEMOP_EXTENT_SHIFT;
        assert_eq!(args[0] & 0x3f, u64::from(DEC));
        assert_eq!(args[1], ARG);
        assert!(done_so_far > 0 && done_so_far < 16);
        assert_eq!(
            f.physmap.mapped.range(0x100..0x110).count() as u64,
            16 - done_so_far
        );
        o = call5(&mut f, u64::from(x::HYPERVISOR_MEMORY_OP), args);
        rounds += 1;
    }
    assert!(rounds >= 3, "{rounds} continuations");
    assert_eq!((o.ret, o.action), (16, Action::Resume));
    assert_eq!(query(&mut f, CUR, SELF), 66 - 16);
}

#[test]
fn queries_check_their_argument_and_the_domain() {
    let mut f = Fake::new();
    let op = u64::from(x::HYPERVISOR_MEMORY_OP);
    assert_eq!(query(&mut f, CUR, 0), -1);
    assert_eq!(query(&mut f, MAX, 9), -3);
    assert_eq!(
        call5(&mut f, op, [u64::from(CUR), 1 << 40, 0, 0, 0]).ret,
        -14
    );
    assert_eq!(
        call5(&mut f, op, [u64::from(CUR) | 1 << 6, ARG, 0, 0, 0]).ret,
        -22
    );
    let ram_page = u64::from(m::XENMEM_MAXIMUM_RAM_PAGE);
    assert_eq!(call5(&mut f, op, [ram_page, 0, 0, 0, 0]).ret, 0x40000);
    assert_eq!(call5(&mut f, op, [ram_page | 1 << 6, 0, 0, 0, 0]).ret, -22);
    let pod = |f: &mut Fake, cmd: u64, domid: u16| {
        // target_pages, tot_pages, pod_cache_pages, pod_entries, then domid.
        f.put(ARG, &[0; 32]);
        f.put(ARG + 32, &domid.to_le_bytes());
        call5(f, op, [cmd, ARG, 0, 0, 0]).ret
    };
    let get = u64::from(m::XENMEM_GET_POD_TARGET);
    let set = u64::from(m::XENMEM_SET_POD_TARGET);
    assert_eq!(pod(&mut f, get, SELF), -1);
    assert_eq!(pod(&mut f, set, 1), -1);
    assert_eq!(pod(&mut f, get, 0), -22);
    assert_eq!(pod(&mut f, get, 5), -3);
    assert_eq!(pod(&mut f, get | 1 << 6, SELF), -38);
    assert_eq!(call5(&mut f, op, [get, 1 << 40, 0, 0, 0]).ret, -14);
}

// The ledger.

const BASE: u64 = 0x100_0000;

fn ledger() -> Ledger {
    Ledger::new(BASE, 16, 2, 16 + 2 + 8)
}

/// Every frame in `runs`, checking that none is there twice.
fn frames_of(runs: &[(u64, u64)]) -> BTreeSet<u64> {
    let mut all = BTreeSet::new();
    for &(start, bytes) in runs {
        for k in 0..bytes / PAGE_SIZE {
            assert!(
                all.insert(start + k * PAGE_SIZE),
                "frame twice in {runs:x?}"
            );
        }
    }
    all
}

#[test]
fn a_ram_page_given_back_leaves_a_hole_in_the_block() {
    let mut l = ledger();
    assert_eq!(l.tot_pages(), 18);
    assert_eq!(l.runs(), [(BASE, 16 * PAGE_SIZE)]);
    assert_eq!(
        l.release(BASE + 3 * PAGE_SIZE + 0x123, |_| true),
        Released::ToHost
    );
    assert_eq!(l.tot_pages(), 17);
    assert_eq!(
        l.runs(),
        [
            (BASE, 3 * PAGE_SIZE),
            (BASE + 4 * PAGE_SIZE, 12 * PAGE_SIZE)
        ]
    );
    // Twice, or a frame that is not the domain's: nothing changes.
    assert_eq!(l.release(BASE + 3 * PAGE_SIZE, |_| true), Released::Kept);
    assert_eq!(l.release(0x5000, |_| true), Released::Kept);
    assert_eq!(l.tot_pages(), 17);
}

#[test]
fn extra_runs_merge_split_and_stay_bounded() {
    let mut l = ledger();
    let at = 0x800_0000;
    assert!(l.add(at + 4 * PAGE_SIZE, 4));
    assert!(l.add(at, 4)); // touches the run above
    assert!(l.add(at + 8 * PAGE_SIZE, 1)); // touches the run below
    assert_eq!(l.runs()[1..], [(at, 9 * PAGE_SIZE)]);
    assert_eq!(l.tot_pages(), 18 + 9);
    assert_eq!(l.release(at + 2 * PAGE_SIZE, |_| true), Released::ToHost);
    assert_eq!(
        l.runs()[1..],
        [(at, 2 * PAGE_SIZE), (at + 3 * PAGE_SIZE, 6 * PAGE_SIZE)]
    );
    let mut l = Ledger::new(BASE, 0, 0, u64::MAX);
    for k in 0..MAX_EXTRA_RUNS as u64 {
        assert!(l.add(at + 2 * k * PAGE_SIZE, 1));
    }
    assert!(!l.add(at + 2 * MAX_EXTRA_RUNS as u64 * PAGE_SIZE, 1));
    assert_eq!(l.tot_pages(), MAX_EXTRA_RUNS as u64);
    let mut l = Ledger::new(BASE, 0, 0, u64::MAX);
    for k in 0..MAX_EXTRA_RUNS as u64 {
        assert!(l.add(at + 4 * k * PAGE_SIZE, 3));
    }
    // Cutting a middle frame would take a run more: it stays the domain's as a spare.
    let mut offered = false;
    let middle = at + PAGE_SIZE;
    assert_eq!(
        l.release(middle, |_| {
            offered = true;
            true
        }),
        Released::Spare
    );
    assert!(!offered);
    assert_eq!(l.reuse_spare(), Some(middle));
}

#[test]
fn a_frame_the_host_cannot_take_is_a_spare_until_reused() {
    let mut l = ledger();
    assert_eq!(l.release(BASE + 5 * PAGE_SIZE, |_| false), Released::Spare);
    assert_eq!(l.tot_pages(), 17);
    // Still the domain's: teardown frees it with the block.
    assert_eq!(l.runs(), [(BASE, 16 * PAGE_SIZE)]);
    assert_eq!(l.reuse_spare(), Some(BASE + 5 * PAGE_SIZE));
    assert_eq!(l.reuse_spare(), None);
    assert_eq!(l.tot_pages(), 18);
}

/// One step of the ledger model.
#[derive(Clone, Debug)]
enum Step {
    /// Release the k-th owned frame (modulo), the host taking it or not.
    Release(usize, bool),
    /// Reuse a spare.
    Reuse,
    /// Add `n` fresh frames at slot `s` of a host area (skipped if any is taken).
    Add(u64, u64),
    /// Add the k-th frame hv's allocator has (modulo), a hole of the block among them.
    Readd(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (any::<usize>(), any::<bool>()).prop_map(|(k, t)| Step::Release(k, t)),
        Just(Step::Reuse),
        (0u64..64, 1u64..4).prop_map(|(s, n)| Step::Add(s, n)),
        any::<usize>().prop_map(Step::Readd),
    ]
}

proptest! {
    /// Whatever the guest gives back and takes, the runs hold every frame the domain owns
    /// once, nothing hv's allocator has, and the count is owned frames less spares plus the
    /// fixed pages.
    #[test]
    fn runs_hold_every_owned_frame_once(steps in proptest::collection::vec(step(), 0..80)) {
        let area = 0x800_0000u64;
        let mut l = Ledger::new(BASE, 16, 2, u64::MAX);
        let mut owned: BTreeSet<u64> = (0..16).map(|i| BASE + i * PAGE_SIZE).collect();
        let mut host: BTreeSet<u64> = (0..64).map(|i| area + i * PAGE_SIZE).collect();
        let mut spare = 0u64;
        let mut in_use: BTreeSet<u64> = owned.clone();
        for s in steps {
            match s {
                Step::Release(k, take) => {
                    let Some(&f) = in_use.iter().nth(k % in_use.len().max(1)) else { continue };
                    match l.release(f, |_| take) {
                        Released::ToHost => {
                            owned.remove(&f);
                            host.insert(f);
                            in_use.remove(&f);
                        }
                        Released::Spare => {
                            spare += 1;
                            in_use.remove(&f);
                        }
                        Released::Kept => prop_assert!(false, "owned frame {f:#x} kept"),
                    }
                }
                Step::Reuse => {
                    if let Some(f) = l.reuse_spare() {
                        prop_assert!(owned.contains(&f) && !in_use.contains(&f));
                        spare -= 1;
                        in_use.insert(f);
                    }
                }
                Step::Add(slot, n) => {
                    let fs: Vec<u64> = (slot..slot + n).map(|i| area + i * PAGE_SIZE).collect();
                    if fs.iter().all(|f| host.contains(f)) {
                        prop_assert!(l.add(fs[0], n));
                        for f in fs {
                            host.remove(&f);
                            owned.insert(f);
                            in_use.insert(f);
                        }
                    }
                }
                Step::Readd(k) => {
                    let Some(&f) = host.iter().nth(k % host.len().max(1)) else { continue };
                    prop_assert!(l.add(f, 1));
                    host.remove(&f);
                    owned.insert(f);
                    in_use.insert(f);
                }
            }
            prop_assert_eq!(frames_of(&l.runs()), owned.clone());
            prop_assert_eq!(l.tot_pages(), owned.len() as u64 - spare + 2);
        }
    }
}
