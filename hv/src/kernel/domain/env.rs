//! What a hypercall may touch: the guest's memory through its page tables, the nested
//! tables (to place shared_info and grant frames), the shared_info page's event words, the
//! grant frames, the memory map, the console backend and the clock.

use crate::dom0::ports::{PortTable, Service};
use crate::evtchn::{EventPeers, EventWords};
use crate::frames::{FRAME_SIZE, FrameAllocator};
use crate::grant::{self, Foreign, Frame, GrantEnv};
use crate::guest::phys::{GuestPhys, PAGE_SIZE};
use crate::guest::walk::{self, PagingState};
use crate::hypercall::memory::{Ledger, Reservation};
use crate::hypercall::upcall_vector::UpcallGate;
use crate::hypercall::{GuestFault, HypercallEnv};
use crate::npt::GPA_LIMIT;
use crate::time::Clock;
use crate::xen_errno::{XenErrno, xen_errno};
use abi::grant_table::GrantEntryV1;
use abi::memory::E820Entry;
use abi::wire::Plain;

use super::super::console::Console;
use super::super::memory::{self, DomainMemory, TableReader, alloc_zeroed, zero};
use super::Domain;

/// Offsets in the shared_info page (vCPU 0's `vcpu_info` is at its start).
mod off {
    use abi::xen::{SharedInfo, VcpuInfo, VcpuTimeInfo};
    use core::mem::offset_of;
    pub const UPCALL_PENDING: usize = offset_of!(VcpuInfo, evtchn_upcall_pending);
    pub const PENDING_SEL: usize = offset_of!(VcpuInfo, evtchn_pending_sel);
    pub const TIME: usize = offset_of!(VcpuInfo, time);
    pub const TIME_VERSION: usize = TIME + offset_of!(VcpuTimeInfo, version);
    pub const PENDING: usize = offset_of!(SharedInfo, evtchn_pending);
    pub const MASK: usize = offset_of!(SharedInfo, evtchn_mask);
    pub const WC_VERSION: usize = offset_of!(SharedInfo, wc_version);
    pub const WC_SEC: usize = offset_of!(SharedInfo, wc_sec);
    pub const WC_NSEC: usize = offset_of!(SharedInfo, wc_nsec);
    pub const WC_SEC_HI: usize = offset_of!(SharedInfo, wc_sec_hi);
}

/// hv's shared_info page and vCPU 0's `vcpu_info` (at the start of shared_info, or where
/// the guest registered it with `VCPUOP_register_vcpu_info`: 64 bytes at an 8-aligned
/// offset inside one of its RAM pages), both identity mapped and freed only when the
/// domain is torn down (after their last use). The guest may
/// write them at any time; every access is a volatile load or store of a naturally aligned
/// field.
#[derive(Clone, Copy)]
pub(in crate::kernel) struct SharedInfoView {
    /// Host address of the shared_info page.
    pub(in crate::kernel) shared: u64,
    /// Host address of vCPU 0's `vcpu_info` (8-aligned, 64 bytes inside one page).
    pub(in crate::kernel) vcpu: u64,
}

/// Which of the two areas an offset is in.
#[derive(Clone, Copy)]
enum Area {
    Shared,
    Vcpu,
}

impl SharedInfoView {
    /// The page of shared_info with vCPU 0's `vcpu_info` inside it.
    pub(in crate::kernel) fn new(shared: u64) -> Self {
        Self {
            shared,
            vcpu: shared,
        }
    }

    /// The address of `off` in `area`: inside the shared_info page (`off` masked to it), or
    /// inside the 64-byte `vcpu_info` (masked to it).
    fn at(&self, area: Area, off: usize, align_mask: usize) -> u64 {
        match area {
            Area::Shared => self.shared + (off & 0xfff & align_mask) as u64,
            Area::Vcpu => self.vcpu + (off & 0x3f & align_mask) as u64,
        }
    }
    fn load64(&self, area: Area, off: usize) -> u64 {
        // SAFETY: `at` gives an 8-aligned u64 inside the shared_info page or the vcpu_info
        // hv placed (both inside pages hv allocated for the domain); the guest may change it
        // concurrently (plain data).
        unsafe { core::ptr::read_volatile(self.at(area, off, !7) as *const u64) }
    }
    fn store64(&self, area: Area, off: usize, v: u64) {
        // SAFETY: as in load64.
        unsafe { core::ptr::write_volatile(self.at(area, off, !7) as *mut u64, v) }
    }
    fn load32(&self, area: Area, off: usize) -> u32 {
        // SAFETY: as in load64, for an aligned u32.
        unsafe { core::ptr::read_volatile(self.at(area, off, !3) as *const u32) }
    }
    fn store32(&self, area: Area, off: usize, v: u32) {
        // SAFETY: as in load32.
        unsafe { core::ptr::write_volatile(self.at(area, off, !3) as *mut u32, v) }
    }
    fn load8(&self, area: Area, off: usize) -> u8 {
        // SAFETY: as in load64, for a byte.
        unsafe { core::ptr::read_volatile(self.at(area, off, !0) as *const u8) }
    }
    fn store8(&self, area: Area, off: usize, v: u8) {
        // SAFETY: as in load8.
        unsafe { core::ptr::write_volatile(self.at(area, off, !0) as *mut u8, v) }
    }

    /// vCPU 0's `evtchn_upcall_pending`.
    pub(in crate::kernel) fn upcall_pending(&self) -> bool {
        self.load8(Area::Vcpu, off::UPCALL_PENDING) != 0
    }

    /// Writes vCPU 0's `vcpu_info.time` with Xen's version protocol, stamped at `tsc`.
    pub(in crate::kernel) fn write_time(&self, clock: &Clock, tsc: u64) {
        let t = clock.time_info(tsc);
        let (odd, even) = crate::time::version_update(self.load32(Area::Vcpu, off::TIME_VERSION));
        self.store32(Area::Vcpu, off::TIME_VERSION, odd);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.store64(Area::Vcpu, off::TIME + 8, t.tsc_timestamp);
        self.store64(Area::Vcpu, off::TIME + 16, t.system_time);
        self.store32(Area::Vcpu, off::TIME + 24, t.tsc_to_system_mul);
        self.store8(Area::Vcpu, off::TIME + 28, t.tsc_shift as u8);
        self.store8(Area::Vcpu, off::TIME + 29, 0);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.store32(Area::Vcpu, off::TIME_VERSION, even);
    }

    /// Writes the wall clock at system time 0 (`wc_*`), with the version protocol.
    pub(in crate::kernel) fn write_wallclock(&self, sec: u64, nsec: u32) {
        let (odd, even) = crate::time::version_update(self.load32(Area::Shared, off::WC_VERSION));
        self.store32(Area::Shared, off::WC_VERSION, odd);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.store32(Area::Shared, off::WC_SEC, sec as u32);
        self.store32(Area::Shared, off::WC_NSEC, nsec);
        self.store32(Area::Shared, off::WC_SEC_HI, (sec >> 32) as u32);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.store32(Area::Shared, off::WC_VERSION, even);
    }
}

impl EventWords for SharedInfoView {
    fn pending(&self, word: usize) -> u64 {
        self.load64(Area::Shared, off::PENDING + 8 * (word & 63))
    }
    fn set_pending_word(&mut self, word: usize, value: u64) {
        self.store64(Area::Shared, off::PENDING + 8 * (word & 63), value);
    }
    fn mask(&self, word: usize) -> u64 {
        self.load64(Area::Shared, off::MASK + 8 * (word & 63))
    }
    fn set_mask_word(&mut self, word: usize, value: u64) {
        self.store64(Area::Shared, off::MASK + 8 * (word & 63), value);
    }
    fn pending_sel(&self) -> u64 {
        self.load64(Area::Vcpu, off::PENDING_SEL)
    }
    fn set_pending_sel(&mut self, value: u64) {
        self.store64(Area::Vcpu, off::PENDING_SEL, value);
    }
    fn upcall_pending(&self) -> u8 {
        self.load8(Area::Vcpu, off::UPCALL_PENDING)
    }
    fn set_upcall_pending(&mut self, value: u8) {
        self.store8(Area::Vcpu, off::UPCALL_PENDING, value);
    }
}

/// What a hypercall may touch.
pub(super) struct Env<'a> {
    pub(super) mem: &'a mut DomainMemory,
    pub(super) frames: &'a mut FrameAllocator,
    pub(super) paging: PagingState,
    pub(super) shared_info: u64,
    pub(super) shared_info_gfn: &'a mut Option<u64>,
    /// Host address of vCPU 0's `vcpu_info` (moved by `VCPUOP_register_vcpu_info`).
    pub(super) vcpu_info: &'a mut u64,
    pub(super) e820: &'a [E820Entry],
    /// Domain 0's ports and the services behind them.
    pub(super) dom0_ports: &'a PortTable,
    pub(super) console: &'a mut Console,
    /// The store every domain shares.
    pub(super) store: &'a mut xenstored::Store,
    /// This domain's connection to it.
    pub(super) xenstore: &'a mut super::super::xenstore::Xenstore,
    pub(super) grant_frames: &'a mut [u64; grant::MAX_FRAMES as usize],
    pub(super) clock: &'a Clock,
    /// How an upcall would reach the vCPU at once, as it was when the hypercall came.
    pub(super) upcall: UpcallGate,
    /// The frames the domain owns and its page count.
    pub(super) ledger: &'a mut Ledger,
    /// The other domains (the calling domain's slot is empty meanwhile).
    pub(super) peers: &'a mut [Option<alloc::boxed::Box<Domain>>],
    /// Frames of dead domains that mappings still hold.
    pub(super) held: &'a mut crate::held::HeldFrames,
}

/// The domain `dom` among `peers`.
fn peer_mut(peers: &mut [Option<alloc::boxed::Box<Domain>>], dom: u16) -> Option<&mut Domain> {
    peers
        .iter_mut()
        .flatten()
        .find(|d| d.domid() == dom)
        .map(|d| &mut **d)
}

impl EventPeers for Env<'_> {
    fn peer_exists(&self, dom: u16) -> bool {
        self.peers.iter().flatten().any(|d| d.domid() == dom)
    }

    fn peer_bind(&mut self, rdom: u16, rport: u32, ldom: u16, lport: u32) -> Result<(), XenErrno> {
        peer_mut(self.peers, rdom)
            .ok_or(xen_errno(abi::errno::XEN_ESRCH))?
            .xen
            .evtchn
            .accept_bind(rport, ldom, lport)
    }

    fn peer_unbind(&mut self, rdom: u16, rport: u32, ldom: u16, lport: u32) {
        if let Some(d) = peer_mut(self.peers, rdom) {
            d.xen.evtchn.peer_closed(rport, ldom, lport);
        }
    }

    fn peer_notify(&mut self, rdom: u16, rport: u32, ldom: u16, lport: u32) {
        if let Some(d) = peer_mut(self.peers, rdom) {
            let mut w = d.words();
            d.xen.evtchn.peer_sent(&mut w, rport, ldom, lport);
        }
    }
}

impl Env<'_> {
    /// This domain's grant entries and RAM.
    fn own_grants(&self) -> GrantView<'_> {
        GrantView {
            grant_frames: self.grant_frames,
            mem: self.mem,
        }
    }

    fn words(&self) -> SharedInfoView {
        SharedInfoView {
            shared: self.shared_info,
            vcpu: *self.vcpu_info,
        }
    }
}

impl Env<'_> {
    /// The host frame mapped at guest frame `gfn`, if any.
    fn frame_at(&self, gfn: u64) -> Option<u64> {
        let gpa = gfn.checked_mul(PAGE_SIZE)?;
        let t = self.mem.npt.translate(&TableReader, gpa)?;
        Some(t.hpa & !(PAGE_SIZE - 1))
    }

    /// Frame `hpa` no longer appears in the guest's physical map (Xen's
    /// `guest_remove_page`, also on the page `XENMEM_add_to_physmap` replaces): it goes back
    /// to hv unless something still holds it (the page of the registered `vcpu_info` or a
    /// page another domain maps through a grant, as Xen's references keep them; special pages
    /// the ledger does not own). The ledger counts it.
    fn release(&mut self, hpa: u64) {
        if hpa == *self.vcpu_info & !(PAGE_SIZE - 1) {
            return;
        }
        // Another domain maps it through a grant: it stays until the domain ends (and then
        // is held until the last unmap, as Xen's mapping reference keeps the page).
        let mapped_elsewhere = self
            .peers
            .iter()
            .flatten()
            .any(|d| d.xen.maptrack.iter().any(|m| m.foreign.frame == hpa));
        if mapped_elsewhere {
            return;
        }
        let frames = &mut *self.frames;
        self.ledger.release(hpa, |f| memory::free_frame(frames, f));
    }
}

impl HypercallEnv for Env<'_> {
    fn map_foreign(&mut self, gfn: u64, f: &Foreign) -> Result<(), i16> {
        const ERR: i16 = abi::grant_table::GNTST_GENERAL_ERROR;
        let gpa = gfn.checked_mul(PAGE_SIZE).ok_or(ERR)?;
        if gpa >= crate::npt::GPA_LIMIT {
            return Err(ERR);
        }
        let (npt, mut t) = self.mem.tables();
        npt.map_4k(&mut t, gpa, f.frame, !f.readonly)
            .map_err(|_| ERR)?;
        if *self.shared_info_gfn == Some(gfn) {
            *self.shared_info_gfn = None;
        }
        Ok(())
    }

    fn unmap_foreign(&mut self, gfn: u64, f: &Foreign) -> Result<(), i16> {
        const ERR: i16 = abi::grant_table::GNTST_GENERAL_ERROR;
        let gpa = gfn.checked_mul(PAGE_SIZE).ok_or(ERR)?;
        let t = self
            .mem
            .npt
            .translate(&super::super::memory::TableReader, gpa)
            .ok_or(ERR)?;
        if t.hpa & !(PAGE_SIZE - 1) != f.frame {
            return Err(ERR);
        }
        let (npt, mut tables) = self.mem.tables();
        npt.unmap_4k(&mut tables, gpa).map_err(|_| ERR)
    }

    fn read_guest(&self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault> {
        walk::copy_from_guest(&*self.mem, &self.paging, va, buf).map_err(|_| GuestFault)
    }

    fn write_guest(&mut self, va: u64, data: &[u8]) -> Result<(), GuestFault> {
        walk::copy_to_guest(self.mem, &self.paging, va, data).map_err(|_| GuestFault)
    }

    fn map_shared_info(&mut self, gfn: u64) -> Result<(), XenErrno> {
        let einval = xen_errno(abi::errno::XEN_EINVAL);
        let gpa = gfn.checked_mul(PAGE_SIZE).ok_or(einval)?;
        if gpa >= crate::npt::GPA_LIMIT {
            return Err(einval);
        }
        let enomem = xen_errno(abi::errno::XEN_ENOMEM);
        let old = self.shared_info_gfn.map(|o| o * PAGE_SIZE);
        let replaced = self.frame_at(gfn).filter(|&f| f != self.shared_info);
        let (npt, mut t) = self.mem.tables();
        // The new mapping first: without a table page for it, the old one stays.
        npt.remap_4k(&mut t, old, gpa, self.shared_info, true)
            .map_err(|_| enomem)?;
        *self.shared_info_gfn = Some(gfn);
        if let Some(f) = replaced {
            self.release(f);
        }
        Ok(())
    }

    fn e820(&self) -> &[E820Entry] {
        self.e820
    }

    fn deliver_to_dom0(&mut self, dom0_port: u32) -> bool {
        match self.dom0_ports.route(dom0_port) {
            Some(Service::Console) => {
                self.console.drain();
                // xenconsoled answers on the port once it has read the ring.
                true
            }
            // xenstored answers on the port when it moved bytes.
            Some(Service::Xenstored) => self.xenstore.service(self.store),
            // The machine runs domain 0's back ends after every exit of the domain.
            Some(Service::Blkback(_) | Service::Netback(_)) | None => false,
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.ns(super::super::tsc::now())
    }

    fn upcall_deliverable(&self) -> bool {
        self.upcall.deliverable(self.words().upcall_pending())
    }

    fn map_vcpu_info(&mut self, gfn: u64, offset: u32) -> Result<(), XenErrno> {
        let einval = xen_errno(abi::errno::XEN_EINVAL);
        // get_page_from_gfn: a writable page of the domain (RAM or a page hv gave it).
        let t = gfn
            .checked_mul(PAGE_SIZE)
            .and_then(|gpa| self.mem.npt.translate(&TableReader, gpa))
            .filter(|t| t.writable)
            .ok_or(einval)?;
        let new = t.hpa + u64::from(offset);
        // Checked by the caller: offset <= 4096 - 64 and 8-aligned, so the 64 bytes stay in
        // the page. Copy the current vcpu_info there (Xen's memcpy).
        let mut buf = [0u8; 64];
        // SAFETY: the old and new vcpu_info are 64 bytes each inside pages hv allocated for
        // the domain (identity mapped); they may overlap only if equal (copy is then a no-op
        // in effect, and copy through a buffer is correct anyway).
        unsafe {
            core::ptr::copy_nonoverlapping(*self.vcpu_info as *const u8, buf.as_mut_ptr(), 64);
            core::ptr::copy_nonoverlapping(buf.as_ptr(), new as *mut u8, 64);
        }
        *self.vcpu_info = new;
        self.words()
            .write_time(self.clock, super::super::tsc::now());
        Ok(())
    }

    fn map_grant_frame(&mut self, idx: u32, gfn: u64, old: Option<u64>) -> Result<(), XenErrno> {
        let enomem = xen_errno(abi::errno::XEN_ENOMEM);
        let einval = xen_errno(abi::errno::XEN_EINVAL);
        let slot = self.grant_frames.get_mut(idx as usize).ok_or(einval)?;
        if *slot == 0 {
            *slot = alloc_zeroed(self.frames, FRAME_SIZE, FRAME_SIZE).map_err(|_| enomem)?;
        }
        let host = *slot;
        let gpa = gfn.checked_mul(PAGE_SIZE).ok_or(einval)?;
        let replaced = self.frame_at(gfn).filter(|&f| f != host);
        let (npt, mut t) = self.mem.tables();
        npt.remap_4k(&mut t, old.map(|o| o * PAGE_SIZE), gpa, host, true)
            .map_err(|_| enomem)?;
        if *self.shared_info_gfn == Some(gfn) {
            *self.shared_info_gfn = None;
        }
        if let Some(f) = replaced {
            self.release(f);
        }
        Ok(())
    }

    fn reservation(&self) -> Reservation {
        Reservation {
            tot_pages: self.ledger.tot_pages(),
            max_pages: self.ledger.max_pages(),
        }
    }

    fn remove_page(&mut self, gfn: u64) -> Result<(), XenErrno> {
        let hpa = self
            .frame_at(gfn)
            .ok_or(xen_errno(abi::errno::XEN_ENOENT))?;
        let (npt, mut t) = self.mem.tables();
        // frame_at translated gfn * PAGE_SIZE: it does not overflow.
        npt.unmap_4k(&mut t, gfn * PAGE_SIZE)
            .map_err(|_| xen_errno(abi::errno::XEN_ENOMEM))?;
        if *self.shared_info_gfn == Some(gfn) {
            *self.shared_info_gfn = None;
        }
        self.release(hpa);
        Ok(())
    }

    fn populate(&mut self, gfn: Option<u64>, order: u32, below: u64) -> Result<(), XenErrno> {
        let enomem = xen_errno(abi::errno::XEN_ENOMEM);
        let pages = 1u64.checked_shl(order).ok_or(enomem)?;
        let bytes = pages.checked_mul(FRAME_SIZE).ok_or(enomem)?;
        let spare = if pages == 1 && below == u64::MAX {
            self.ledger.reuse_spare()
        } else {
            None
        };
        let hpa = match spare {
            Some(f) => {
                // SAFETY: a spare frame is the domain's, mapped nowhere and held by nothing
                // in hv (the ledger's contract), identity mapped like every frame hv owns.
                unsafe { zero(f, FRAME_SIZE) };
                f
            }
            None => {
                let pa = alloc_zeroed(self.frames, bytes, bytes).map_err(|_| enomem)?;
                if pa.saturating_add(bytes) > below || !self.ledger.add(pa, pages) {
                    if let Err(e) = self.frames.free(pa, bytes) {
                        crate::hvlog!("populate: {pa:#x}+{bytes:#x} not given back: {e:?}");
                    }
                    return Err(enomem);
                }
                pa
            }
        };
        let Some(gfn) = gfn else {
            return Ok(());
        };
        // From here the frames are the domain's, counted, whether or not they get mapped
        // (Xen's populate_physmap keeps an extent it could not add to the physical map).
        let gpa = gfn
            .checked_mul(PAGE_SIZE)
            .filter(|g| g.checked_add(bytes).is_some_and(|end| end <= GPA_LIMIT))
            .ok_or(xen_errno(abi::errno::XEN_EINVAL))?;
        let (npt, mut t) = self.mem.tables();
        npt.map_range(&mut t, gpa, hpa, bytes, true)
            .map_err(|_| enomem)?;
        if self
            .shared_info_gfn
            .is_some_and(|s| s.wrapping_sub(gfn) < pages)
        {
            *self.shared_info_gfn = None;
        }
        Ok(())
    }

    fn max_ram_page(&self) -> u64 {
        memory::max_ram_page()
    }
}

impl EventWords for Env<'_> {
    fn pending(&self, word: usize) -> u64 {
        self.words().pending(word)
    }
    fn set_pending_word(&mut self, word: usize, value: u64) {
        self.words().set_pending_word(word, value);
    }
    fn mask(&self, word: usize) -> u64 {
        self.words().mask(word)
    }
    fn set_mask_word(&mut self, word: usize, value: u64) {
        self.words().set_mask_word(word, value);
    }
    fn pending_sel(&self) -> u64 {
        self.words().pending_sel()
    }
    fn set_pending_sel(&mut self, value: u64) {
        self.words().set_pending_sel(value);
    }
    fn upcall_pending(&self) -> u8 {
        EventWords::upcall_pending(&self.words())
    }
    fn set_upcall_pending(&mut self, value: u8) {
        self.words().set_upcall_pending(value);
    }
}

/// A domain's grant entries and RAM as its grant table's checks see them (the calling
/// domain's own, or a peer's when another domain uses its grants).
pub(in crate::kernel) struct GrantView<'a> {
    /// Host frames of the grant table (0: not allocated yet).
    pub(in crate::kernel) grant_frames: &'a [u64; grant::MAX_FRAMES as usize],
    /// The domain's memory.
    pub(in crate::kernel) mem: &'a DomainMemory,
}

impl GrantView<'_> {
    /// The host address of grant entry `gref`, if its frame exists.
    fn entry_addr(&self, gref: u32) -> Option<u64> {
        let frame = *self
            .grant_frames
            .get((gref / grant::ENTRIES_PER_FRAME) as usize)?;
        (frame != 0).then_some(
            frame
                + core::mem::size_of::<GrantEntryV1>() as u64
                    * u64::from(gref % grant::ENTRIES_PER_FRAME),
        )
    }

    /// The host frame of the domain's writable page `gfn`.
    pub(super) fn host_frame(&self, gfn: u64) -> Option<u64> {
        gfn.checked_mul(PAGE_SIZE)
            .and_then(|gpa| {
                self.mem
                    .npt
                    .translate(&super::super::memory::TableReader, gpa)
            })
            .filter(|t| t.writable)
            .map(|t| t.hpa & !(PAGE_SIZE - 1))
    }
}

impl GrantEnv for GrantView<'_> {
    fn entry(&self, gref: u32) -> GrantEntryV1 {
        let Some(a) = self.entry_addr(gref) else {
            return GrantEntryV1::default();
        };
        // SAFETY: `a` is an aligned u64 inside a grant frame hv allocated (identity mapped);
        // the guest may write it concurrently (plain data, checked by the caller). One
        // 8-byte load, so the entry's fields are read together.
        let raw = unsafe { core::ptr::read_volatile(a as *const u64) };
        GrantEntryV1::from_bytes(&raw.to_ne_bytes()).unwrap_or_default()
    }

    fn set_flags(&mut self, gref: u32, flags: u16) {
        if let Some(a) = self.entry_addr(gref) {
            // SAFETY: as in `entry`, for the entry's first two bytes.
            unsafe { core::ptr::write_volatile(a as *mut u16, flags) };
        }
    }

    fn page_ok(&self, gfn: u64) -> bool {
        self.host_frame(gfn).is_some()
    }

    fn copy(&mut self, _src: Frame, _so: u16, _dst: Frame, _do: u16, _len: u16) {
        // A granter's view never copies: the calling domain's `Env` does.
    }
}

impl GrantEnv for Env<'_> {
    fn entry(&self, gref: u32) -> GrantEntryV1 {
        self.own_grants().entry(gref)
    }

    fn set_flags(&mut self, gref: u32, flags: u16) {
        self.own_grants().set_flags(gref, flags);
    }

    fn page_ok(&self, gfn: u64) -> bool {
        self.own_grants().page_ok(gfn)
    }

    fn copy(&mut self, src: Frame, src_off: u16, dst: Frame, dst_off: u16, len: u16) {
        let mut buf = [0u8; 4096];
        let n = usize::from(len).min(4096);
        // Both ranges lie in one page each (checked by the grant code).
        let read = match src {
            Frame::Own(gfn) => self
                .mem
                .read(gfn * PAGE_SIZE + u64::from(src_off), &mut buf[..n])
                .is_ok(),
            Frame::Foreign(hpa) => {
                // SAFETY: `hpa` is a page of another domain acquired through its grant for
                // this copy (identity mapped, held until the copy ends); `src_off + n` stays
                // inside it (checked by the grant code). Plain bytes the peer may change.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        (hpa + u64::from(src_off)) as *const u8,
                        buf.as_mut_ptr(),
                        n,
                    );
                }
                true
            }
        };
        if !read {
            return;
        }
        match dst {
            Frame::Own(gfn) => {
                let _ = self
                    .mem
                    .write(gfn * PAGE_SIZE + u64::from(dst_off), &buf[..n]);
            }
            Frame::Foreign(hpa) => {
                // SAFETY: as above, for a page the peer granted writable to this domain.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        buf.as_ptr(),
                        (hpa + u64::from(dst_off)) as *mut u8,
                        n,
                    );
                }
            }
        }
    }

    fn foreign_exists(&self, dom: u16) -> bool {
        self.peers.iter().flatten().any(|d| d.domid() == dom)
    }

    fn foreign_acquire(
        &mut self,
        dom: u16,
        gref: u32,
        ldom: u16,
        readonly: bool,
        pin: bool,
    ) -> Result<Foreign, i16> {
        peer_mut(self.peers, dom)
            .ok_or(abi::grant_table::GNTST_BAD_DOMAIN)?
            .acquire_grant(gref, ldom, readonly, pin)
    }

    fn foreign_release(&mut self, f: &Foreign) {
        if let Some(d) = peer_mut(self.peers, f.dom) {
            d.release_grant(f);
            return;
        }
        if f.pin.is_none() {
            return;
        }
        // The granter died: its frame was held for the mappings; the last one frees it.
        if let Err(e) = self.held.release(f.dom, f.frame, self.frames) {
            crate::hvlog!(
                "d{}: held frame {:#x} not given back: {e:?}",
                f.dom,
                f.frame
            );
        }
    }
}
