//! `memory_op`'s reservation operations as Xen 4.17's `common/memory.c` answers a PVH domU:
//! `XENMEM_increase_reservation`, `decrease_reservation` and `populate_physmap` (extent
//! lists, the domU's extent-order limit, `max_pages` as the ceiling, the count of extents
//! done as the answer, continuations), `current_reservation`, `maximum_reservation`,
//! `maximum_ram_page` and the PoD target queries; and the domain's [`Ledger`] of the frames
//! it owns, which the kernel keeps.
//!
//! Xen answers a reservation operation with the number of extents done, also when it
//! refuses the whole request (a bad argument, another domain, an order too big): then the
//! answer is the extent it was asked to start at. Pages go one at a time through
//! [`HypercallEnv::remove_page`] (Xen's `guest_remove_page`) and extents through
//! [`HypercallEnv::populate`].

mod ledger;

pub use ledger::{Ledger, MAX_EXTRA_RUNS, Released};

use abi::errno::{XEN_EINVAL, XEN_ENOSYS, XEN_EPERM, XEN_ESRCH};
use abi::memory as m;
use abi::xen as x;

use super::args::{element_va, read_struct};
use super::{
    DomainParams, EFAULT, HypercallEnv, Outcome, XenState, done, err, other_domain_refused,
    own_domain,
};

/// `MEMOP_EXTENT_SHIFT`: a reservation command's bits above this are the extent to start
/// at (a continuation's progress).
pub const MEMOP_EXTENT_SHIFT: u32 = 6;

/// The largest extent order a domU may use: x86's `CONFIG_DOMU_MAX_ORDER`
/// (`PAGETABLE_ORDER`, 2 MiB extents).
pub const DOMU_MAX_ORDER: u32 = 9;

/// Xen's `MAX_ORDER` on x86 (`CONFIG_PAGEALLOC_MAX_ORDER`, `2 * PAGETABLE_ORDER`): the order
/// limit of a populate-on-demand request.
pub const MAX_ORDER: u32 = 18;

/// libxl's `LIBXL_MAXMEM_CONSTANT` (1 MiB) in pages: xl sets a domain's `max_pages` to its
/// memory plus this.
pub const MAXMEM_SLACK_PAGES: u64 = 256;

/// `XENMEMF_get_node`'s "no node" (`NUMA_NO_NODE`).
const NO_NODE: u32 = 0xff;

/// A domain's page count and its ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Xen's `domain_tot_pages`: the pages the domain owns.
    pub tot_pages: u64,
    /// Xen's `max_pages`: the most it may own.
    pub max_pages: u64,
}

/// Xen's `get_order_from_pages`: the least order with `2^order >= pages`.
fn order_from_pages(pages: u64) -> u32 {
    pages.max(1).next_power_of_two().trailing_zeros()
}

/// The address below which frames must lie for `mem_flags`' address bits
/// (`construct_memop_from_reservation`), given the host's `max_page`; `None` refuses the
/// request (bits that cannot hold a page).
fn address_limit(mem_flags: u32, max_page: u64) -> Option<u64> {
    let bits = mem_flags & 0xff;
    if bits == 0 || bits >= order_from_pages(max_page) + 12 {
        return Some(u64::MAX);
    }
    (bits > 12).then(|| 1u64 << bits)
}

/// `propagate_node` for a domU without vNUMA: a node is ignored unless the request insists
/// on it (`XENMEMF_exact_node_request`), which a domU may not.
fn node_ok(mem_flags: u32) -> bool {
    if mem_flags & m::XENMEMF_VNODE != 0 {
        return true; // no vNUMA: the node is not looked at
    }
    let node = ((mem_flags >> 8).wrapping_sub(1)) & 0xff;
    node == NO_NODE || mem_flags & m::XENMEMF_EXACT_NODE_REQUEST == 0
}

/// `XENMEM_increase_reservation`, `decrease_reservation` or `populate_physmap` (`op`), with
/// `args[0]`'s bits from [`MEMOP_EXTENT_SHIFT`] the extent to start at.
pub(super) fn reservation_op(
    env: &mut impl HypercallEnv,
    params: &DomainParams,
    st: &mut XenState,
    op: u32,
    args: [u64; 5],
) -> Outcome {
    let (start, arg) = (args[0] >> MEMOP_EXTENT_SHIFT, args[1]);
    // start < 2^58: the answer fits.
    let answer = |n: u64| done(i64::try_from(n).unwrap_or(i64::MAX));
    let Ok(r) = read_struct::<m::XenMemoryReservation>(env, arg) else {
        return answer(start);
    };
    if r.nr_extents > u64::from(u32::MAX >> MEMOP_EXTENT_SHIFT)
        || start >= r.nr_extents
        || own_domain(params, r.domid).is_err()
        || !node_ok(r.mem_flags)
    {
        return answer(start);
    }
    let Some(below) = address_limit(r.mem_flags, env.max_ram_page()) else {
        return answer(start);
    };
    let pod = op == m::XENMEM_POPULATE_PHYSMAP && r.mem_flags & m::XENMEMF_POPULATE_ON_DEMAND != 0;
    if r.extent_order > if pod { MAX_ORDER } else { DOMU_MAX_ORDER } {
        return answer(start);
    }
    let started = env.now_ns();
    let mut i = start;
    while i < r.nr_extents {
        if i != start && super::preempt_due(env, st, started) {
            let cmd = u64::from(op) | (i << MEMOP_EXTENT_SHIFT);
            return super::continuation([cmd, arg, args[2], args[3], args[4]]);
        }
        let ok = match op {
            m::XENMEM_DECREASE_RESERVATION => read_extent(env, r.extent_start, i)
                .is_some_and(|gfn| decrease(env, st, gfn, r.extent_order)),
            // Populate-on-demand on oneself is refused at the first extent.
            m::XENMEM_POPULATE_PHYSMAP => match read_extent(env, r.extent_start, i) {
                Some(gfn) if !pod && over_grant_mapping(st, gfn, r.extent_order) => {
                    // p2m_add_page does not let a grant mapping be replaced: it crashes the
                    // domain, the extent allocated and counted.
                    allocate(env, st, None, r.extent_order, below);
                    return Outcome {
                        ret: 0,
                        action: super::Action::Shutdown(abi::sched::SHUTDOWN_CRASH),
                        implemented: true,
                    };
                }
                Some(gfn) => !pod && allocate(env, st, Some(gfn), r.extent_order, below),
                None => false,
            },
            _ => allocate(env, st, None, r.extent_order, below),
        };
        if !ok {
            break;
        }
        i += 1;
    }
    answer(i)
}

/// Extent `i` of the list at `base` (Xen's `__copy_from_guest_offset`); `None` if it cannot
/// be read (the operation stops there).
fn read_extent(env: &impl HypercallEnv, base: u64, i: u64) -> Option<u64> {
    element_va::<x::XenPfn>(base, i)
        .and_then(|va| read_struct::<x::XenPfn>(env, va))
        .ok()
}

/// One extent of `decrease_reservation`: each page through `guest_remove_page`, stopping
/// at the first that fails (the pages before it stay removed, the extent is not counted).
/// Another domain's page mapped through a grant is not the domain's to give (`get_page`
/// fails: `-ENXIO`), and stays mapped.
fn decrease(env: &mut impl HypercallEnv, st: &mut XenState, gfn: u64, order: u32) -> bool {
    (0..1u64 << order).all(|j| {
        let page = gfn.wrapping_add(j);
        if st.maptrack.iter().any(|m| m.gfn == page) {
            return false;
        }
        let removed = env.remove_page(page).is_ok();
        if removed {
            st.grants.frame_replaced(page);
        }
        removed
    })
}

/// Whether the `2^order` frames from `gfn` hold a mapping of another domain's grant.
fn over_grant_mapping(st: &XenState, gfn: u64, order: u32) -> bool {
    st.maptrack
        .iter()
        .any(|m| m.gfn.wrapping_sub(gfn) < 1u64 << order)
}

/// One extent of `populate_physmap` (at `gfn`) or `increase_reservation` (`None`): within
/// `max_pages` (`assign_pages`), then the frames, then the mapping.
fn allocate(
    env: &mut impl HypercallEnv,
    st: &mut XenState,
    gfn: Option<u64>,
    order: u32,
    below: u64,
) -> bool {
    let pages = 1u64 << order;
    let Reservation {
        tot_pages,
        max_pages,
    } = env.reservation();
    if tot_pages > max_pages || pages > max_pages - tot_pages {
        return false;
    }
    if env.populate(gfn, order, below).is_err() {
        return false;
    }
    if let Some(gfn) = gfn {
        for j in 0..pages {
            st.grants.frame_replaced(gfn.wrapping_add(j));
        }
    }
    true
}

/// `XENMEM_current_reservation` or `maximum_reservation` (`op`).
pub(super) fn reservation_query(
    env: &impl HypercallEnv,
    params: &DomainParams,
    op: u32,
    args: [u64; 5],
) -> Outcome {
    if args[0] >> MEMOP_EXTENT_SHIFT != 0 {
        return done(err(XEN_EINVAL));
    }
    let Ok(m::XenMemoryDomain { domid }) = read_struct(env, args[1]) else {
        return done(EFAULT);
    };
    if let Err(e) = own_domain(params, domid) {
        return done(other_domain_refused(env, domid, e));
    }
    let r = env.reservation();
    let pages = if op == m::XENMEM_CURRENT_RESERVATION {
        r.tot_pages
    } else {
        r.max_pages
    };
    done(i64::try_from(pages).unwrap_or(i64::MAX))
}

/// `XENMEM_maximum_ram_page`: the host's `max_page`.
pub(super) fn maximum_ram_page(env: &impl HypercallEnv, args: [u64; 5]) -> Outcome {
    if args[0] >> MEMOP_EXTENT_SHIFT != 0 {
        return done(err(XEN_EINVAL));
    }
    done(i64::try_from(env.max_ram_page()).unwrap_or(i64::MAX))
}

/// `XENMEM_get_pod_target` / `set_pod_target` from a domU (x86's `arch_memory_op`, which
/// matches the whole command): the privileged check refuses the caller itself (`-EPERM`);
/// domain 0, a PV domain, is `-EINVAL`; no other domain exists.
pub(super) fn pod_target(
    env: &impl HypercallEnv,
    params: &DomainParams,
    args: [u64; 5],
) -> Outcome {
    if args[0] >> MEMOP_EXTENT_SHIFT != 0 {
        return done(err(XEN_ENOSYS));
    }
    let Ok(m::XenPodTarget { domid, .. }) = read_struct(env, args[1]) else {
        return done(EFAULT);
    };
    if domid == x::DOMID_SELF || domid == params.domid {
        done(err(XEN_EPERM))
    } else if domid == 0 {
        done(err(XEN_EINVAL))
    } else {
        done(err(XEN_ESRCH))
    }
}

#[cfg(test)]
pub(super) mod tests;
