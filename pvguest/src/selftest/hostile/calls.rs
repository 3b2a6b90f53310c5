//! The hypercall classes of the `hostile` group: each call drawn by the seeded generator,
//! its arguments bad in the way its class says, derived from what the domain was told (its
//! RAM, its grant table's frames, its event channels' limit), never from constants of one
//! platform. Every call's answer (its return value, or the status Xen wrote for it) goes
//! into the class's [`ClassRecord`].

use alloc::format;

use abi::event_channel as ev;
use abi::grant_table::{
    GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF,
    GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE, GNTTABOP_UNMAP_GRANT_REF, GnttabCopy, GnttabCopyPtr,
    GnttabCopyPtrU, GnttabMapGrantRef, GnttabQuerySize, GnttabSetupTable, GnttabUnmapGrantRef,
};
use abi::hvm::{HVM_PARAM_STORE_PFN, HVMOP_GET_PARAM, XenHvmParam};
use abi::memory as mem;
use abi::xen::{self as x, DOMID_SELF};

use super::digest::{ClassRecord, Prng};
use crate::memory::frames::FRAME_SIZE;
use crate::xen::hypercall::{self, HypercallError};

/// `GNTMAP_device_map` and `GNTMAP_host_map`.
const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// Grant entries per frame in a v1 table.
const ENTRIES_PER_FRAME: u64 = FRAME_SIZE / 8;
/// `VIRQ_TIMER` (bound by the kernel) and the number of VIRQs Xen knows.
const VIRQ_TIMER: u32 = 0;
const NR_VIRQS: u32 = 24;
/// `XENMEM_remove_from_physmap`.
const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
/// Hypercall numbers the hypercall page's slots reach but Xen 4.17 does not assign (after
/// `__HYPERVISOR_arch_7` = 55).
const FIRST_UNASSIGNED: u64 = 56;
/// Hypercalls of PV guests only: a PVH domU is answered `-ENOSYS`.
const PV_ONLY: [u32; 12] = [0, 2, 3, 4, 5, 6, 8, 9, 10, 14, 16, 22];

/// What the group derives its bad arguments from, and the pages it works in.
pub struct Ctx {
    /// Frames of RAM (the end of the highest RAM region, in frames).
    pub ram_frames: u64,
    /// Grant entries of the domain's table (`nr_frames` from `GNTTABOP_query_size`, v1).
    pub grant_entries: u64,
    /// The most grant frames the domain may have (`max_nr_frames`).
    pub max_grant_frames: u32,
    /// The first port `EVTCHNOP_status` calls invalid (the table's current end).
    pub port_limit: u32,
    /// A page for argument blocks.
    pub args: u64,
    /// A page Xen may write (copy destinations), zeroed before each use.
    pub data: u64,
    /// Two pages, the second a hole in the domain's physical map.
    pub before_hole: u64,
    /// Two pages of ours, one after the other.
    pub two_pages: u64,
    /// The frame aimed at (the victim's canary on hv, else a frame past RAM).
    pub canary: u64,
    /// Another domain's id (the victim on hv, else an id far above any created).
    pub victim: u16,
    /// Set when a copy brought the canary's pattern into [`Ctx::data`].
    pub canary_seen: bool,
}

/// A hypercall's raw answer as one number (a missing hypercall page as `i64::MIN`).
fn answer(r: Result<i64, HypercallError>) -> i64 {
    r.unwrap_or(i64::MIN)
}

/// Writes `value` at `addr` (one of the group's own pages).
fn put<T: Copy>(addr: u64, value: T) {
    // SAFETY: `addr` lies in pages the group took from the allocator (identity mapped, used
    // by nothing else; possibly unaligned); the hypervisor writes them only during calls.
    unsafe { core::ptr::write_unaligned(addr as *mut T, value) }
}

/// Reads a `T` at `addr` (one of the group's own pages).
fn get<T: Copy>(addr: u64) -> T {
    // SAFETY: as in `put`.
    unsafe { core::ptr::read_unaligned(addr as *const T) }
}

/// Hypercall `nr` with `args`.
fn call(nr: u32, args: [u64; 5]) -> i64 {
    // SAFETY: every caller in this module passes arguments that are refused (bad op,
    // number, domain or pointer), or name only the group's own pages or frames outside the
    // domain's RAM; no call may take away memory the kernel uses (`Ctx` keeps the canary
    // outside RAM).
    answer(unsafe { hypercall::raw_call(nr, args) })
}

/// The page-slot hypercall of `event_channel_op(cmd)` on a block written first.
fn evtchn(ctx: &Ctx, cmd: u32, words: [u32; 6]) -> i64 {
    put(ctx.args, words);
    call(
        x::HYPERVISOR_EVENT_CHANNEL_OP,
        [cmd.into(), ctx.args, 0, 0, 0],
    )
}

fn far_domid(rng: &mut Prng) -> u16 {
    // Far above any domain either platform created in a test run, below DOMID_FIRST_RESERVED.
    0x7fe0 + rng.below(16) as u16
}

/// Ids whose existence is the same on both platforms (none of them is a domain the caller
/// may touch), and the victim.
fn other_domid(ctx: &Ctx, rng: &mut Prng) -> u16 {
    match rng.below(8) {
        0 => far_domid(rng),
        1 => x::DOMID_IO,
        2 => x::DOMID_XEN,
        3 => x::DOMID_COW,
        4 => x::DOMID_INVALID,
        5 => x::DOMID_IDLE,
        6 => 0x8000 | rng.below(0x7fff) as u16,
        _ => ctx.victim,
    }
}

/// A port number no table of the domain's holds: past its current end, past xl's limit, past
/// the 2-level ABI's, or wrapping.
fn bad_port(ctx: &Ctx, rng: &mut Prng) -> u32 {
    match rng.below(6) {
        0 => ctx.port_limit.saturating_add(rng.below(64) as u32),
        1 => 1023 + rng.below(2) as u32,
        2 => 4095 + rng.below(2) as u32,
        3 => 0x7fff_ffff,
        4 => u32::MAX,
        _ => ctx.port_limit.saturating_add(0x10000),
    }
}

/// `ops`: hypercall, sub-operation and command numbers nobody assigned.
pub fn ops(_ctx: &mut Ctx, rng: &mut Prng, rec: &mut ClassRecord) {
    let (kind, a) = match rng.below(10) {
        0 => {
            let nr = FIRST_UNASSIGNED + rng.below(u64::from(hypercall::HYPERCALL_SLOTS) - 56);
            ("unassigned", call(nr as u32, [0; 5]))
        }
        1 => {
            let nr = *rng.pick(&PV_ONLY).unwrap_or(&0);
            ("pv-only", call(nr, [0; 5]))
        }
        2 => (
            "memory-op",
            call(x::HYPERVISOR_MEMORY_OP, [32 + rng.below(32), 0, 0, 0, 0]),
        ),
        3 => (
            "evtchn-op",
            call(
                x::HYPERVISOR_EVENT_CHANNEL_OP,
                [14 + rng.below(242), 0, 0, 0, 0],
            ),
        ),
        4 => (
            "gnttab-op",
            call(
                x::HYPERVISOR_GRANT_TABLE_OP,
                [13 + rng.below(243), 0, 0, 0, 0],
            ),
        ),
        5 => (
            "hvm-op",
            call(x::HYPERVISOR_HVM_OP, [64 + rng.below(192), 0, 0, 0, 0]),
        ),
        6 => (
            "sched-op",
            call(x::HYPERVISOR_SCHED_OP, [64 + rng.below(192), 0, 0, 0, 0]),
        ),
        7 => (
            "vcpu-op",
            call(x::HYPERVISOR_VCPU_OP, [14 + rng.below(50), 0, 0, 0, 0]),
        ),
        8 => (
            "xen-version",
            call(x::HYPERVISOR_XEN_VERSION, [64 + rng.below(192), 0, 0, 0, 0]),
        ),
        _ => (
            "physdev-op",
            call(x::HYPERVISOR_PHYSDEV_OP, [200 + rng.below(56), 0, 0, 0, 0]),
        ),
    };
    rec.add(kind, a);
}

/// `ports`: event-channel operations on ports and vCPUs the domain does not have.
pub fn ports(ctx: &mut Ctx, rng: &mut Prng, rec: &mut ClassRecord) {
    let port = bad_port(ctx, rng);
    let vcpu = 1 + rng.below(1 << 12) as u32;
    let (kind, a) = match rng.below(8) {
        0 => (
            "send",
            evtchn(ctx, ev::EVTCHNOP_SEND, [port, 0, 0, 0, 0, 0]),
        ),
        1 => (
            "close",
            evtchn(ctx, ev::EVTCHNOP_CLOSE, [port, 0, 0, 0, 0, 0]),
        ),
        2 => (
            "unmask",
            evtchn(ctx, ev::EVTCHNOP_UNMASK, [port, 0, 0, 0, 0, 0]),
        ),
        3 => (
            "status",
            evtchn(
                ctx,
                ev::EVTCHNOP_STATUS,
                [u32::from(DOMID_SELF), port, 0, 0, 0, 0],
            ),
        ),
        4 => (
            "bind-vcpu",
            evtchn(ctx, ev::EVTCHNOP_BIND_VCPU, [port, 0, 0, 0, 0, 0]),
        ),
        5 => {
            let virq = NR_VIRQS + rng.below(1000) as u32;
            (
                "bind-virq-bad",
                evtchn(ctx, ev::EVTCHNOP_BIND_VIRQ, [virq, 0, 0, 0, 0, 0]),
            )
        }
        6 => (
            "bind-virq-vcpu",
            evtchn(ctx, ev::EVTCHNOP_BIND_VIRQ, [VIRQ_TIMER, vcpu, 0, 0, 0, 0]),
        ),
        _ => (
            "bind-ipi-vcpu",
            evtchn(ctx, ev::EVTCHNOP_BIND_IPI, [vcpu, 0, 0, 0, 0, 0]),
        ),
    };
    rec.add(kind, a);
}

/// One `GNTTABOP_copy` of `op`; the call's answer, else the status Xen wrote.
fn copy(ctx: &Ctx, op: GnttabCopy) -> i64 {
    put(
        ctx.args,
        GnttabCopy {
            status: 0x7777,
            ..op
        },
    );
    let r = call(
        x::HYPERVISOR_GRANT_TABLE_OP,
        [GNTTABOP_COPY.into(), ctx.args, 1, 0, 0],
    );
    if r != 0 {
        return r;
    }
    i64::from(get::<GnttabCopy>(ctx.args).status)
}

fn gref_end(domid: u16, gref: u32) -> GnttabCopyPtr {
    GnttabCopyPtr {
        u: GnttabCopyPtrU { ref_: gref },
        domid,
        offset: 0,
    }
}

fn frame_end(domid: u16, gmfn: u64) -> GnttabCopyPtr {
    GnttabCopyPtr {
        u: GnttabCopyPtrU { gmfn },
        domid,
        offset: 0,
    }
}

/// A grant reference past the domain's table (or wrapping).
fn bad_gref(ctx: &Ctx, rng: &mut Prng) -> u32 {
    match rng.below(4) {
        0 => ctx.grant_entries.saturating_add(rng.below(4096)) as u32,
        1 => (u64::from(ctx.max_grant_frames) * ENTRIES_PER_FRAME + rng.below(64)) as u32,
        2 => 0x8000_0000 | rng.below(1 << 20) as u32,
        _ => u32::MAX,
    }
}

/// `grants`: grant references past the table, unused ones, bad lengths, handles never
/// given, tables grown past their limit and other domains' tables.
pub fn grants(ctx: &mut Ctx, rng: &mut Prng, rec: &mut ClassRecord) {
    let data_frame = ctx.data / FRAME_SIZE;
    let gref = bad_gref(ctx, rng);
    let (kind, a) = match rng.below(9) {
        0 => {
            let op = GnttabCopy {
                source: gref_end(DOMID_SELF, gref),
                dest: frame_end(DOMID_SELF, data_frame),
                len: 8,
                flags: GNTCOPY_SOURCE_GREF,
                status: 0,
            };
            ("copy-source-gref", copy(ctx, op))
        }
        1 => {
            let op = GnttabCopy {
                source: frame_end(DOMID_SELF, data_frame),
                dest: gref_end(DOMID_SELF, gref),
                len: 8,
                flags: GNTCOPY_DEST_GREF,
                status: 0,
            };
            ("copy-dest-gref", copy(ctx, op))
        }
        2 => {
            // The table's last entries: never handed out by the kernel's allocator.
            let unused = ctx.grant_entries.saturating_sub(1 + rng.below(8)) as u32;
            let op = GnttabCopy {
                source: gref_end(DOMID_SELF, unused),
                dest: frame_end(DOMID_SELF, data_frame),
                len: 8,
                flags: GNTCOPY_SOURCE_GREF,
                status: 0,
            };
            ("copy-unused-gref", copy(ctx, op))
        }
        3 => {
            let mut op = GnttabCopy {
                source: frame_end(DOMID_SELF, data_frame),
                dest: frame_end(DOMID_SELF, data_frame),
                len: 200 + rng.below(4000) as u16,
                flags: 0,
                status: 0,
            };
            op.source.offset = 4000;
            ("copy-bad-length", copy(ctx, op))
        }
        4 => {
            let flags = match rng.below(3) {
                0 => 0,
                1 => GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP,
                _ => GNTMAP_HOST_MAP,
            };
            let dom = if rng.below(2) == 0 {
                DOMID_SELF
            } else {
                far_domid(rng)
            };
            put(
                ctx.args,
                GnttabMapGrantRef {
                    host_addr: ctx.canary * FRAME_SIZE,
                    flags,
                    ref_: gref,
                    dom,
                    status: 0x7777,
                    handle: 0,
                    dev_bus_addr: 0,
                },
            );
            let r = call(
                x::HYPERVISOR_GRANT_TABLE_OP,
                [GNTTABOP_MAP_GRANT_REF.into(), ctx.args, 1, 0, 0],
            );
            let s = i64::from(get::<GnttabMapGrantRef>(ctx.args).status);
            ("map", if r == 0 { s } else { r })
        }
        5 => {
            let handle = match rng.below(3) {
                0 => 0x1_0000 + rng.below(1 << 16) as u32,
                1 => 0x7fff_ffff,
                _ => u32::MAX,
            };
            put(
                ctx.args,
                GnttabUnmapGrantRef {
                    host_addr: ctx.canary * FRAME_SIZE,
                    dev_bus_addr: 0,
                    handle,
                    status: 0x7777,
                },
            );
            let r = call(
                x::HYPERVISOR_GRANT_TABLE_OP,
                [GNTTABOP_UNMAP_GRANT_REF.into(), ctx.args, 1, 0, 0],
            );
            let s = i64::from(get::<GnttabUnmapGrantRef>(ctx.args).status);
            ("unmap-bad-handle", if r == 0 { s } else { r })
        }
        6 => {
            let nr = ctx.max_grant_frames + 1 + rng.below(64) as u32;
            put(
                ctx.args,
                GnttabSetupTable {
                    dom: DOMID_SELF,
                    nr_frames: nr,
                    status: 0x7777,
                    frame_list: ctx.data,
                },
            );
            let r = call(
                x::HYPERVISOR_GRANT_TABLE_OP,
                [GNTTABOP_SETUP_TABLE.into(), ctx.args, 1, 0, 0],
            );
            let s = i64::from(get::<GnttabSetupTable>(ctx.args).status);
            ("setup-too-many", if r == 0 { s } else { r })
        }
        7 => {
            let op = GnttabCopy {
                source: frame_end(DOMID_SELF, ctx.canary),
                dest: frame_end(DOMID_SELF, data_frame),
                len: 4096,
                flags: 0,
                status: 0,
            };
            let a = copy(ctx, op);
            ctx.canary_seen |= super::canary::holds_pattern(ctx.data);
            ("copy-from-canary", a)
        }
        _ => {
            let op = GnttabCopy {
                source: frame_end(DOMID_SELF, data_frame),
                dest: frame_end(DOMID_SELF, ctx.canary),
                len: 4096,
                flags: 0,
                status: 0,
            };
            ("copy-to-canary", copy(ctx, op))
        }
    };
    rec.add(kind, a);
}

/// A reservation call `cmd` of one extent at `gfn` of `order` for `domid`.
fn reservation(ctx: &Ctx, cmd: u32, gfn: u64, order: u32, domid: u16) -> i64 {
    let list = ctx.args + 512;
    put(list, gfn);
    put(
        ctx.args,
        mem::XenMemoryReservation {
            extent_start: list,
            nr_extents: 1,
            extent_order: order,
            mem_flags: 0,
            domid,
        },
    );
    call(x::HYPERVISOR_MEMORY_OP, [cmd.into(), ctx.args, 0, 0, 0])
}

/// A frame past the domain's RAM (below the special pages) or far past anything.
fn bad_gfn(ctx: &Ctx, rng: &mut Prng) -> u64 {
    match rng.below(4) {
        0 => ctx.ram_frames + rng.below(1 << 16),
        1 => (1 << 36) + rng.below(1 << 20),
        2 => (1 << 52) - 1 - rng.below(16),
        _ => u64::MAX >> 12,
    }
}

/// `frames`: the memory operations that take frames, on frames past RAM, the canary, huge
/// orders and other domains.
pub fn frames(ctx: &mut Ctx, rng: &mut Prng, rec: &mut ClassRecord) {
    let gfn = bad_gfn(ctx, rng);
    let (kind, a) = match rng.below(9) {
        0 => (
            "decrease-past-ram",
            reservation(ctx, mem::XENMEM_DECREASE_RESERVATION, gfn, 0, DOMID_SELF),
        ),
        1 => (
            "decrease-canary",
            reservation(
                ctx,
                mem::XENMEM_DECREASE_RESERVATION,
                ctx.canary,
                0,
                DOMID_SELF,
            ),
        ),
        2 => {
            let order = 10 + rng.below(10) as u32;
            (
                "populate-huge-order",
                reservation(
                    ctx,
                    mem::XENMEM_POPULATE_PHYSMAP,
                    ctx.canary,
                    order,
                    DOMID_SELF,
                ),
            )
        }
        3 => {
            let cmd = match rng.below(3) {
                0 => mem::XENMEM_INCREASE_RESERVATION,
                1 => mem::XENMEM_DECREASE_RESERVATION,
                _ => mem::XENMEM_POPULATE_PHYSMAP,
            };
            let dom = other_domid(ctx, rng);
            (
                "reservation-other-domain",
                reservation(ctx, cmd, ctx.canary, 0, dom),
            )
        }
        4 => {
            // Fresh memory at the canary's number in our own space, given back at once: a
            // frame of our own, never the victim's.
            let p = reservation(ctx, mem::XENMEM_POPULATE_PHYSMAP, ctx.canary, 0, DOMID_SELF);
            let d = reservation(
                ctx,
                mem::XENMEM_DECREASE_RESERVATION,
                ctx.canary,
                0,
                DOMID_SELF,
            );
            ("populate-release-canary", p * 16 + d)
        }
        5 => {
            put(
                ctx.args,
                mem::XenRemoveFromPhysmap {
                    domid: DOMID_SELF,
                    gpfn: gfn,
                },
            );
            (
                "remove-past-ram",
                call(
                    x::HYPERVISOR_MEMORY_OP,
                    [XENMEM_REMOVE_FROM_PHYSMAP.into(), ctx.args, 0, 0, 0],
                ),
            )
        }
        6 => {
            let space = 6 + rng.below(250) as u32;
            // SAFETY: an unknown space is refused before any frame is touched.
            let a = answer(unsafe { hypercall::add_to_physmap_raw(space, 0, ctx.canary) });
            ("add-bad-space", a)
        }
        7 => {
            let op = GnttabCopy {
                source: frame_end(DOMID_SELF, gfn),
                dest: frame_end(DOMID_SELF, ctx.data / FRAME_SIZE),
                len: 8,
                flags: 0,
                status: 0,
            };
            ("copy-past-ram", copy(ctx, op))
        }
        _ => {
            let op = GnttabCopy {
                source: frame_end(ctx.victim, ctx.canary),
                dest: frame_end(DOMID_SELF, ctx.data / FRAME_SIZE),
                len: 4096,
                flags: 0,
                status: 0,
            };
            let a = copy(ctx, op);
            ctx.canary_seen |= super::canary::holds_pattern(ctx.data);
            ("copy-other-domain-frame", a)
        }
    };
    rec.add(kind, a);
}

/// `domids`: calls naming another domain.
pub fn domids(ctx: &mut Ctx, rng: &mut Prng, rec: &mut ClassRecord) {
    let dom = other_domid(ctx, rng);
    let (kind, a) = match rng.below(8) {
        0 => (
            "current-reservation",
            answer(hypercall::reservation_query(true, dom, 0)),
        ),
        1 => (
            "maximum-reservation",
            answer(hypercall::reservation_query(false, dom, 0)),
        ),
        2 => (
            "alloc-unbound",
            evtchn(
                ctx,
                ev::EVTCHNOP_ALLOC_UNBOUND,
                [u32::from(dom), 0, 0, 0, 0, 0],
            ),
        ),
        3 => (
            "bind-interdomain",
            evtchn(
                ctx,
                ev::EVTCHNOP_BIND_INTERDOMAIN,
                [u32::from(dom), 1, 0, 0, 0, 0],
            ),
        ),
        4 => (
            "evtchn-status",
            evtchn(ctx, ev::EVTCHNOP_STATUS, [u32::from(dom), 1, 0, 0, 0, 0]),
        ),
        5 => {
            put(
                ctx.args,
                GnttabQuerySize {
                    dom,
                    nr_frames: 0,
                    max_nr_frames: 0,
                    status: 0x7777,
                },
            );
            let r = call(
                x::HYPERVISOR_GRANT_TABLE_OP,
                [GNTTABOP_QUERY_SIZE.into(), ctx.args, 1, 0, 0],
            );
            let s = i64::from(get::<GnttabQuerySize>(ctx.args).status);
            ("query-size", if r == 0 { s } else { r })
        }
        6 => {
            put(
                ctx.args,
                XenHvmParam {
                    domid: dom,
                    pad: 0,
                    index: HVM_PARAM_STORE_PFN,
                    value: 0,
                },
            );
            (
                "hvm-get-param",
                call(
                    x::HYPERVISOR_HVM_OP,
                    [HVMOP_GET_PARAM.into(), ctx.args, 0, 0, 0],
                ),
            )
        }
        _ => {
            let op = GnttabCopy {
                source: gref_end(dom, 0),
                dest: frame_end(DOMID_SELF, ctx.data / FRAME_SIZE),
                len: 8,
                flags: GNTCOPY_SOURCE_GREF,
                status: 0,
            };
            ("copy-other-domain-gref", copy(ctx, op))
        }
    };
    rec.add(kind, a);
}

/// A pointer of one of the bad kinds, and its kind's name.
fn bad_pointer(ctx: &Ctx, rng: &mut Prng) -> (&'static str, u64) {
    let off = rng.below(512) * 8;
    match rng.below(7) {
        0 => ("hole", 0xf000_0000 + off),
        1 => (
            "unmapped",
            (1 << 46) + rng.below(1 << 20) * FRAME_SIZE + off,
        ),
        2 => (
            "non-canonical",
            (1 << 63) | (rng.below(1 << 30) * FRAME_SIZE),
        ),
        3 => ("non-canonical-low", (1 << 47) + off),
        4 => ("wrapping", u64::MAX - rng.below(16)),
        5 => ("into-hole", ctx.before_hole + FRAME_SIZE - 4 - rng.below(4)),
        _ => (
            "across-pages",
            ctx.two_pages + FRAME_SIZE - 4 - rng.below(4),
        ),
    }
}

/// `buffers`: calls whose argument is a pointer into a hole, unmapped or non-canonical
/// memory, wrapping past 2^64, or crossing a page (into a hole, or between two of ours).
pub fn buffers(ctx: &mut Ctx, rng: &mut Prng, rec: &mut ClassRecord) {
    let (where_, p) = bad_pointer(ctx, rng);
    let valid = where_ == "across-pages";
    let (call_name, a) = match rng.below(6) {
        0 => (
            "extraversion",
            call(
                x::HYPERVISOR_XEN_VERSION,
                [abi::version::XENVER_EXTRAVERSION.into(), p, 0, 0, 0],
            ),
        ),
        1 => {
            if valid {
                put::<[u32; 2]>(p, [0, 0]);
            }
            (
                "get-features",
                call(
                    x::HYPERVISOR_XEN_VERSION,
                    [abi::version::XENVER_GET_FEATURES.into(), p, 0, 0, 0],
                ),
            )
        }
        2 => {
            if valid {
                put::<[u64; 2]>(p, [0, 0]);
            }
            (
                "memory-map",
                call(
                    x::HYPERVISOR_MEMORY_OP,
                    [mem::XENMEM_MEMORY_MAP.into(), p, 0, 0, 0],
                ),
            )
        }
        3 => {
            if valid {
                put::<[u32; 4]>(p, [u32::from(DOMID_SELF), HVM_PARAM_STORE_PFN, 0, 0]);
            }
            (
                "get-param",
                call(x::HYPERVISOR_HVM_OP, [HVMOP_GET_PARAM.into(), p, 0, 0, 0]),
            )
        }
        4 => {
            if valid {
                put::<[u32; 6]>(p, [u32::from(DOMID_SELF), 1, 0, 0, 0, 0]);
            }
            (
                "evtchn-status",
                call(
                    x::HYPERVISOR_EVENT_CHANNEL_OP,
                    [ev::EVTCHNOP_STATUS.into(), p, 0, 0, 0],
                ),
            )
        }
        _ => {
            if valid {
                put::<[u32; 4]>(p, [u32::from(DOMID_SELF), 0, 0, 0]);
            }
            (
                "query-size",
                call(
                    x::HYPERVISOR_GRANT_TABLE_OP,
                    [GNTTABOP_QUERY_SIZE.into(), p, 1, 0, 0],
                ),
            )
        }
    };
    rec.add(&format!("{call_name}@{where_}"), a);
}
