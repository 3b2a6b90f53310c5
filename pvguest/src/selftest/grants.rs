//! Self-tests (group `grants`) of the grant table, with the group's `FACT grants.*` lines: grant a page, check the shared entry,
//! end the grant; and let Xen itself use a grant (`GNTTABOP_copy` through a grant this
//! domain gave itself). Ending a grant the peer still uses is covered by host tests with a
//! fake peer: nothing on stock Xen keeps this guest's grants mapped here.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use abi::grant_table::{
    GNTCOPY_SOURCE_GREF, GNTST_GENERAL_ERROR, GNTST_OKAY, GTF_PERMIT_ACCESS, GTF_READONLY,
    GnttabCopy, GnttabCopyPtr, GnttabCopyPtrU,
};
use abi::xen::DOMID_SELF;

use super::platform::{Test, TestResult};
use crate::memory::frames::FRAME_SIZE;
use crate::memory::global;
use crate::xen::grant_table::{self, GrantOpError};
use crate::xen::hypercall;
use crate::xen::platform::KernelPages;
use xenbus::grant::{GrantAccess, GrantError};
use xenbus::{DomId, GrantRef, PageProvider};

/// The tests, in order.
pub const TESTS: &[Test] = &[("grant-access", grant_access), ("grant-copy", grant_copy)];

/// The table's limits and what Xen refuses; `(key, value)` for the group's FACT lines.
pub fn facts() -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    match hypercall::gnttab_query_size() {
        Ok((_, max)) => facts.push(("max-frames", format!("{max}"))),
        Err(e) => facts.push(("max-frames", format!("{e}"))),
    }
    // The stock-Xen tier runs with max_grant_version = 1, as hv: version 2 is refused.
    match hypercall::gnttab_set_version(2) {
        Ok((ret, version)) => {
            facts.push(("v2-errno", format!("{ret}")));
            facts.push(("version-after-v2", format!("{version}")));
        }
        Err(e) => facts.push(("v2-errno", format!("{e}"))),
    }
    match hypercall::gnttab_set_version(3) {
        Ok((ret, _)) => facts.push(("v3-errno", format!("{ret}"))),
        Err(e) => facts.push(("v3-errno", format!("{e}"))),
    }
    // Copies Xen refuses before moving a byte: their GNTST_* statuses.
    let Ok(dst) = global::allocate_frames(1) else {
        facts.push(("copy", "no frame".into()));
        return facts;
    };
    let dst_pfn = dst / FRAME_SIZE;
    let refused = |source: GnttabCopyPtr, flags: u16, source_len: u16| {
        let mut op = GnttabCopy {
            source,
            dest: GnttabCopyPtr {
                u: GnttabCopyPtrU { gmfn: dst_pfn },
                domid: DOMID_SELF,
                offset: 0,
            },
            len: source_len,
            flags,
            status: 0,
        };
        // SAFETY: the destination is a frame taken from the allocator for this probe and
        // never read through a Rust reference.
        match unsafe { hypercall::gnttab_copy(&mut op) } {
            Ok(()) => format!("{}", op.status),
            Err(e) => format!("{e}"),
        }
    };
    let by_ref = |r: u32, domid| GnttabCopyPtr {
        u: GnttabCopyPtrU { ref_: r },
        domid,
        offset: 0,
    };
    facts.push((
        "copy-bad-gref",
        refused(by_ref(0xffff, DOMID_SELF), GNTCOPY_SOURCE_GREF, 8),
    ));
    facts.push((
        "copy-unknown-domain",
        refused(by_ref(0, 0x7000), GNTCOPY_SOURCE_GREF, 8),
    ));
    // A frame named by number for a domain other than DOMID_SELF (here domain 0).
    let frame = |domid, offset| GnttabCopyPtr {
        u: GnttabCopyPtrU { gmfn: dst_pfn },
        domid,
        offset,
    };
    facts.push(("copy-dom0-frame", refused(frame(0, 0), 0, 8)));
    facts.push(("copy-beyond-page", refused(frame(DOMID_SELF, 4000), 0, 200)));
    facts
}

/// This domain's id without xenstore: Xen records `DOMID_SELF` as the caller's own id in an
/// unbound port, and `EVTCHNOP_status` reports it.
fn own_domid() -> Result<DomId, String> {
    let port = crate::xen::events::alloc_unbound(DOMID_SELF).map_err(|e| format!("alloc: {e}"))?;
    let status = hypercall::evtchn_status(port).map_err(|e| format!("status: {e}"));
    let _ = crate::xen::events::close(port);
    let status = status?;
    if status.status != abi::event_channel::EVTCHNSTAT_UNBOUND {
        return Err(format!("new port is in state {}", status.status));
    }
    // SAFETY: an unbound port's status fills `u.unbound`; any bits are a valid u16.
    let dom = unsafe { status.u.unbound.dom };
    DomId::try_new(u32::from(dom)).map_err(|e| format!("own {e}"))
}

fn grant_access() -> TestResult {
    let (frames, max) = hypercall::gnttab_query_size().map_err(|e| format!("query_size: {e}"))?;
    if frames == 0 || frames > max {
        return Err(format!(
            "query_size: {frames} frames of {max} after mapping frame 0"
        ));
    }
    let page = global::allocate_frames(1).map_err(|e| format!("frame: {e:?}"))?;
    let pfn = page / FRAME_SIZE;
    let rw =
        grant_table::grant_access(DomId::ZERO, pfn, false).map_err(|e| format!("grant: {e:?}"))?;
    let ro = grant_table::grant_access(DomId::ZERO, pfn, true)
        .map_err(|e| format!("grant ro: {e:?}"))?;
    let entry = |gref| grant_table::read_entry(gref).ok_or("entry unreadable");
    let (flags, domid, frame) = entry(rw)?;
    log::info!(
        "grant-access: {frames} of {max} frames; ref {} = flags {flags:#x} domid {domid} frame {frame:#x}",
        rw.get()
    );
    if (flags, domid, u64::from(frame)) != (GTF_PERMIT_ACCESS, 0, pfn) {
        return Err(format!(
            "ref {}: flags {flags:#x} domid {domid} frame {frame:#x}, expected {GTF_PERMIT_ACCESS:#x} 0 {pfn:#x}",
            rw.get()
        ));
    }
    let (ro_flags, ..) = entry(ro)?;
    if ro_flags != GTF_PERMIT_ACCESS | GTF_READONLY {
        return Err(format!("read-only ref flags {ro_flags:#x}"));
    }
    for gref in [rw, ro] {
        grant_table::end_access(gref).map_err(|e| format!("end {}: {e:?}", gref.get()))?;
        let (after, ..) = entry(gref)?;
        if after != 0 {
            return Err(format!("ref {} flags {after:#x} after end", gref.get()));
        }
    }
    match grant_table::end_access(rw) {
        Err(GrantOpError::Table(GrantError::NotAllocated(_))) => Ok(()),
        other => Err(format!("ending ref {} twice: {other:?}", rw.get())),
    }
}

/// Copies one page from grant `gref` (of this domain) into frame `dest_pfn`; Xen's status.
fn copy_from_grant(gref: GrantRef, dest_pfn: u64) -> Result<i16, String> {
    let mut op = GnttabCopy {
        source: GnttabCopyPtr {
            u: GnttabCopyPtrU { ref_: gref.get() },
            domid: DOMID_SELF,
            offset: 0,
        },
        dest: GnttabCopyPtr {
            u: GnttabCopyPtrU { gmfn: dest_pfn },
            domid: DOMID_SELF,
            offset: 0,
        },
        len: FRAME_SIZE as u16,
        flags: GNTCOPY_SOURCE_GREF,
        status: 0,
    };
    // SAFETY: the destination is a frame this test took from the allocator and reaches only
    // through raw volatile accesses.
    unsafe { hypercall::gnttab_copy(&mut op) }.map_err(|e| format!("GNTTABOP_copy: {e}"))?;
    Ok(op.status)
}

fn fill(paddr: u64, seed: u8) {
    for i in 0..FRAME_SIZE {
        // SAFETY: `paddr` is a whole free frame this test owns, identity mapped.
        unsafe { core::ptr::write_volatile((paddr + i) as *mut u8, seed.wrapping_add(i as u8)) };
    }
}

fn matches(paddr: u64, seed: u8) -> bool {
    (0..FRAME_SIZE).all(|i| {
        // SAFETY: as in `fill`; Xen's writes (during the hypercall) are over.
        let byte = unsafe { core::ptr::read_volatile((paddr + i) as *const u8) };
        byte == seed.wrapping_add(i as u8)
    })
}

fn grant_copy() -> TestResult {
    let me = own_domid()?;
    // The source is a driver's page: from the page provider, granted through `GrantAccess`,
    // handed back only once the grant has ended.
    let mut pages = KernelPages::new();
    let src = pages.alloc_zeroed().map_err(|e| format!("page: {e}"))?;
    let src_pfn = src.gfn().get();
    let pattern: [u8; FRAME_SIZE as usize] = core::array::from_fn(|i| 0x5au8.wrapping_add(i as u8));
    src.write(0, &pattern)
        .map_err(|e| format!("page write: {e}"))?;
    let dst = global::allocate_frames(1).map_err(|e| format!("frame: {e:?}"))?;
    fill(dst, 0);
    // Granted to ourselves (by number: Xen compares the entry's domid with the copier's id).
    let granted = grant_table::with(|t| t.grant(src, me, true))
        .map_err(|e| format!("grant: {e:?}"))?
        .map_err(|(_, e)| format!("grant: {e}"))?;
    let gref = granted.gref();
    let status = copy_from_grant(gref, dst / FRAME_SIZE)?;
    let copied = matches(dst, 0x5a);
    let (flags, ..) = grant_table::read_entry(gref).ok_or("entry unreadable")?;
    let src = grant_table::with(|t| t.end(granted))
        .map_err(|e| format!("end: {e:?}"))?
        .map_err(|(_, e)| format!("end: {e}"))?;
    log::info!(
        "grant-copy: copy through ref {} (domid {me}): status {status}",
        gref.get()
    );
    if status != GNTST_OKAY || !copied {
        return Err(format!(
            "copy through our grant: status {status}, data copied {copied}"
        ));
    }
    // Xen's GTF_reading lasts only for the copy: the entry is back to the bare grant.
    if flags != GTF_PERMIT_ACCESS | GTF_READONLY {
        return Err(format!("entry flags {flags:#x} after the copy"));
    }
    // A grant to another domain (0) is not one Xen lets us use.
    let other = grant_table::grant_access(DomId::ZERO, src_pfn, true)
        .map_err(|e| format!("grant: {e:?}"))?;
    fill(dst, 0);
    let refused = copy_from_grant(other, dst / FRAME_SIZE)?;
    grant_table::end_access(other).map_err(|e| format!("end: {e:?}"))?;
    // After end_access the reference no longer grants anything.
    let ended = copy_from_grant(gref, dst / FRAME_SIZE)?;
    pages.release(src);
    log::info!(
        "grant-copy: copy through a grant to domain 0: {refused}; through an ended grant: {ended}"
    );
    // Stock Xen answers both with GNTST_general_error (-1), not GNTST_permission_denied:
    // acquire_grant_for_copy reports a grant for another domain, or no grant, as a bad entry.
    if (refused, ended) != (GNTST_GENERAL_ERROR, GNTST_GENERAL_ERROR) || matches(dst, 0x5a) {
        return Err(format!(
            "copy through a grant to domain 0: {refused}, through an ended grant: {ended} (expected {GNTST_GENERAL_ERROR})"
        ));
    }
    Ok(())
}
