//! Grant tables v1 of one guest domain, answered as Xen 4.17's `common/grant_table.c`
//! answers a domain with `max_grant_version = 1` and xl's default of 64 frames:
//! `GNTTABOP_query_size`, `setup_table`, `set_version` / `get_version`, `copy` with
//! `acquire_grant_for_copy`'s checks (through this domain's grants, or another domU's
//! through [`GrantEnv::foreign_acquire`]), the frames placed with `XENMEM_add_to_physmap`
//! (`XENMAPSPACE_grant_table`), pins held by mappers ([`GrantTable::acquire_for`], used by
//! domain 0's services and by other domUs' `GNTTABOP_map_grant_ref`), and the mapper's side
//! of those mappings ([`Maptrack`]).
//!
//! The shared entries live in frames the guest writes at will: every entry is read once per
//! use and checked; nothing read there is trusted across a step.
#![allow(
    clippy::cast_possible_truncation,
    reason = "Xen reads these fields as its C types do (unsigned int refs and indexes: the low 32 bits); map slots are few"
)]

use abi::grant_table as g;

use crate::xen_errno::{XenErrno, xen_errno as err};

/// xl's default `max_grant_frames`.
pub const MAX_FRAMES: u32 = 64;
/// v1 entries per 4 KiB frame (8 bytes each).
pub const ENTRIES_PER_FRAME: u32 = 512;
/// The page size.
const PAGE: u32 = 4096;
/// Frames a new domain's table has (`INITIAL_NR_GRANT_FRAMES`).
pub const INITIAL_FRAMES: u32 = 1;
/// Concurrent pins of a domain's grants (domain 0's and other domUs' mappings together).
pub const MAX_MAPS: usize = 256;
/// Mappings one domain may hold of other domains' grants (its maptrack handles).
pub const MAX_MAPTRACK: usize = 256;

/// One end of a copy as the environment resolves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A frame of the calling domain (checked with [`GrantEnv::page_ok`]).
    Own(u64),
    /// A frame of another domain, acquired through [`GrantEnv::foreign_acquire`] (the value
    /// is the environment's own handle on it, e.g. a host address).
    Foreign(u64),
}

/// A grant of another domU acquired by this domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Foreign {
    /// The granting domain.
    pub dom: u16,
    /// Its grant reference.
    pub gref: u32,
    /// Acquired for reading only.
    pub readonly: bool,
    /// The pin slot in the granter's table, for a mapping (`None` for a copy).
    pub pin: Option<u32>,
    /// The frame, as the environment names it ([`Frame::Foreign`]).
    pub frame: u64,
}

/// What the grant code needs from the domain.
pub trait GrantEnv {
    /// Reads v1 entry `gref` from the table frames (all zero if its frame is not placed).
    fn entry(&self, gref: u32) -> g::GrantEntryV1;
    /// Writes the `flags` of entry `gref`.
    fn set_flags(&mut self, gref: u32, flags: u16);
    /// Whether `gfn` is a frame of the domain's own memory a grant may name (RAM).
    fn page_ok(&self, gfn: u64) -> bool;
    /// Copies `len` bytes from (`src`, `src_off`) to (`dst`, `dst_off`), both frames
    /// already checked ([`Self::page_ok`] or acquired) and the ranges within one page.
    fn copy(&mut self, src: Frame, src_off: u16, dst: Frame, dst_off: u16, len: u16);
    /// Whether `dom` names another domU (`rcu_lock_domain_by_any_id`). Default: none.
    fn foreign_exists(&self, _dom: u16) -> bool {
        false
    }
    /// Acquires grant `gref` of domain `dom` for `ldom` on the granter's side
    /// ([`GrantTable::acquire_for`] on its table), held as a pin when `pin` (a mapping) or
    /// only until [`Self::foreign_release`] (a copy). Default: no such domain.
    fn foreign_acquire(
        &mut self,
        _dom: u16,
        _gref: u32,
        _ldom: u16,
        _readonly: bool,
        _pin: bool,
    ) -> Result<Foreign, i16> {
        Err(g::GNTST_BAD_DOMAIN)
    }
    /// Releases what [`Self::foreign_acquire`] acquired (also when the granter has died
    /// meanwhile: then its held frame is given back once no mapping remains).
    fn foreign_release(&mut self, _f: &Foreign) {}
}

/// One end of a `GNTTABOP_copy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyPtr {
    /// The grant reference or the frame (`u.ref` / `u.gmfn`).
    pub u: u64,
    /// The domain.
    pub domid: u16,
    /// Offset in the page.
    pub offset: u16,
}

/// A `gnttab_copy` as read from the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyOp {
    /// Where from.
    pub source: CopyPtr,
    /// Where to.
    pub dest: CopyPtr,
    /// Bytes.
    pub len: u16,
    /// `GNTCOPY_*`.
    pub flags: u16,
}

/// An internal mapping held by domain 0 ([`GrantTable::map`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The handle for [`GrantTable::unmap`].
    pub handle: u32,
    /// The guest frame the grant names.
    pub gfn: u64,
    /// Whether only reading was granted or asked.
    pub readonly: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pin {
    gref: u32,
    readonly: bool,
    /// The mapping domain (0 for domain 0's services).
    by: u16,
}

/// The grant table of one domain.
pub struct GrantTable {
    domid: u16,
    nr_frames: u32,
    /// Where each frame is mapped in the guest (`None`: not mapped).
    frame_gfn: [Option<u64>; MAX_FRAMES as usize],
    maps: [Option<Pin>; MAX_MAPS],
}

/// Which domain a copy end names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dom {
    Own,
    Dom0,
    Other(u16),
}

impl GrantTable {
    /// The table of a new domain `domid` (one frame, version 1).
    pub fn new(domid: u16) -> Self {
        Self {
            domid,
            nr_frames: INITIAL_FRAMES,
            frame_gfn: [None; MAX_FRAMES as usize],
            maps: [None; MAX_MAPS],
        }
    }

    /// Frames in use (`nr_grant_frames`).
    pub fn nr_frames(&self) -> u32 {
        self.nr_frames
    }

    fn nr_entries(&self) -> u32 {
        self.nr_frames * ENTRIES_PER_FRAME
    }

    /// Xen's domain lookup and `XSM_TARGET` for table queries: itself passes, domain 0 is
    /// refused, other ids name no domain.
    fn target(&self, dom: u16) -> Result<(), Target> {
        if dom == abi::xen::DOMID_SELF || dom == self.domid {
            Ok(())
        } else if dom == 0 {
            Err(Target::Denied)
        } else {
            Err(Target::NoDomain)
        }
    }

    /// `GNTTABOP_query_size(dom)`: `(status, nr_frames, max_nr_frames)`.
    pub fn query_size(&self, dom: u16) -> (i16, u32, u32) {
        match self.target(dom) {
            Ok(()) => (g::GNTST_OKAY, self.nr_frames, MAX_FRAMES),
            Err(Target::Denied) => (g::GNTST_PERMISSION_DENIED, 0, 0),
            Err(Target::NoDomain) => (g::GNTST_BAD_DOMAIN, 0, 0),
        }
    }

    /// `GNTTABOP_setup_table(dom, nr_frames)`: grows the table to `nr_frames` and returns
    /// the status; the caller writes [`Self::frame_gfn`] for each frame on success.
    pub fn setup_table(&mut self, dom: u16, nr_frames: u32) -> i16 {
        match self.target(dom) {
            Ok(()) => {}
            Err(Target::Denied) => return g::GNTST_PERMISSION_DENIED,
            Err(Target::NoDomain) => return g::GNTST_BAD_DOMAIN,
        }
        if nr_frames > MAX_FRAMES {
            return g::GNTST_GENERAL_ERROR;
        }
        self.nr_frames = self.nr_frames.max(nr_frames);
        g::GNTST_OKAY
    }

    /// The guest frame where table frame `i` is mapped (`INVALID_GFN`, all ones, if none).
    pub fn frame_gfn(&self, i: u32) -> u64 {
        self.frame_gfn
            .get(i as usize)
            .copied()
            .flatten()
            .unwrap_or(u64::MAX)
    }

    /// `XENMEM_add_to_physmap(XENMAPSPACE_grant_table, idx, gfn)` (Xen's
    /// `gnttab_map_frame`): grows the table to make frame `idx` exist (idx truncated to 32
    /// bits, as stock Xen 4.17 answers: index 2^32 places frame 0, seen with the
    /// `hostile-bounds` self-test on stock Xen) and returns the frame index and the gfn it is
    /// at now (to unmap), or `-EINVAL`. The caller records the new place with
    /// [`Self::frame_placed`] once the frame is mapped there, so a failed map leaves the old
    /// place recorded. v2 status frames (`XENMAPIDX_grant_table_status`) do not exist in a v1
    /// table: the bit is part of the index, which is then out of range.
    pub fn place_frame(&mut self, idx: u64, gfn: u64) -> Result<(u32, Option<u64>), XenErrno> {
        let idx = idx as u32;
        if idx >= MAX_FRAMES {
            return Err(err(abi::errno::XEN_EINVAL));
        }
        if idx >= self.nr_frames {
            self.nr_frames = idx + 1;
        }
        let old = self.frame_gfn[idx as usize];
        Ok((idx, old.filter(|&o| o != gfn)))
    }

    /// Records that table frame `idx` (from [`Self::place_frame`]) is now mapped at `gfn`.
    pub fn frame_placed(&mut self, idx: u32, gfn: u64) {
        if let Some(slot) = self.frame_gfn.get_mut(idx as usize) {
            *slot = Some(gfn);
        }
    }

    /// Forgets a frame placement at `gfn` (something else was mapped over it).
    pub fn frame_replaced(&mut self, gfn: u64) {
        for slot in self.frame_gfn.iter_mut() {
            if *slot == Some(gfn) {
                *slot = None;
            }
        }
    }

    /// `GNTTABOP_set_version(version)`: `(ret, version written back)`. A table limited to
    /// version 1 refuses 2 with `-ENOSYS`, as Xen with `max_grant_version = 1`.
    pub fn set_version(&self, version: u32) -> (XenErrno, u32) {
        let ret = match version {
            1 => 0,
            2 => err(abi::errno::XEN_ENOSYS),
            _ => err(abi::errno::XEN_EINVAL),
        };
        (ret, 1)
    }

    /// `GNTTABOP_get_version(dom)`.
    pub fn get_version(&self, dom: u16) -> Result<u32, XenErrno> {
        match self.target(dom) {
            Ok(()) => Ok(1),
            Err(Target::Denied) => Err(err(abi::errno::XEN_EPERM)),
            Err(Target::NoDomain) => Err(err(abi::errno::XEN_ESRCH)),
        }
    }

    /// `gnttab_copy_lock_domain` as Xen 4.17 has it (since 4.15's "common: don't require use
    /// of DOMID_SELF"): the domain is looked up first (`GNTST_bad_domain` if none has the
    /// id), then only the calling domain, by `DOMID_SELF` or its own id, may name a frame
    /// directly (`GNTST_permission_denied`). Stock Xen 4.17.7 answers a frame of an id
    /// nobody has with `GNTST_bad_domain`, which the older order (the frame check first)
    /// would not.
    fn lock_domain(&self, env: &impl GrantEnv, ptr: &CopyPtr, is_gref: bool) -> Result<Dom, i16> {
        let dom = if ptr.domid == abi::xen::DOMID_SELF || ptr.domid == self.domid {
            Dom::Own
        } else if ptr.domid == 0 {
            Dom::Dom0
        } else if env.foreign_exists(ptr.domid) {
            Dom::Other(ptr.domid)
        } else {
            return Err(g::GNTST_BAD_DOMAIN);
        };
        if !is_gref && !matches!(dom, Dom::Own) {
            return Err(g::GNTST_PERMISSION_DENIED);
        }
        Ok(dom)
    }

    /// Whether some mapping pins `gref`, by which domain, and whether one pins it writable.
    fn pinned(&self, gref: u32) -> (Option<u16>, bool) {
        let mut by = None;
        let mut writable = false;
        for p in self.maps.iter().flatten() {
            if p.gref == gref {
                by = Some(p.by);
                writable |= !p.readonly;
            }
        }
        (by, writable)
    }

    /// The pins other domUs hold on this domain's grants: `(slot, gref, mapper)`, for the
    /// domain's death (their frames stay held until unmapped).
    pub fn foreign_pins(&self) -> impl Iterator<Item = (u32, u32, u16)> + '_ {
        self.maps
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.filter(|p| p.by != 0).map(|p| (i as u32, p.gref, p.by)))
    }

    /// `acquire_grant_for_copy` / `map_grant_ref` on this domain's entry `gref` for domain
    /// `ldom`: checks the entry, sets `GTF_reading` (and `GTF_writing`), returns the frame.
    fn acquire(
        &self,
        env: &mut impl GrantEnv,
        gref: u32,
        ldom: u16,
        readonly: bool,
    ) -> Result<u64, i16> {
        if gref >= self.nr_entries() {
            return Err(g::GNTST_BAD_GNTREF);
        }
        let g::GrantEntryV1 {
            flags,
            domid,
            frame,
        } = env.entry(gref);
        let (pinned_by, _) = self.pinned(gref);
        // Pinned already: only the domain that pinned it may use it (the active entry's
        // domid).
        if pinned_by.is_some_and(|by| by != ldom) {
            return Err(g::GNTST_GENERAL_ERROR);
        }
        if pinned_by.is_none()
            && ((flags & g::GTF_TYPE_MASK) != g::GTF_PERMIT_ACCESS || domid != ldom)
        {
            return Err(g::GNTST_GENERAL_ERROR);
        }
        if !readonly && flags & g::GTF_READONLY != 0 {
            return Err(g::GNTST_GENERAL_ERROR);
        }
        let mut new = flags | g::GTF_READING;
        if !readonly {
            new |= g::GTF_WRITING;
        }
        env.set_flags(gref, new);
        let gfn = u64::from(frame);
        if !env.page_ok(gfn) {
            self.release(env, gref, readonly);
            return Err(g::GNTST_BAD_PAGE);
        }
        Ok(gfn)
    }

    /// `reduce_status_for_pin`: clears `GTF_writing` when no writer remains and
    /// `GTF_reading` when no pin remains.
    fn release(&self, env: &mut impl GrantEnv, gref: u32, readonly: bool) {
        let (pinned_by, writable) = self.pinned(gref);
        let mut flags = env.entry(gref).flags;
        if !readonly && !writable {
            flags &= !g::GTF_WRITING;
        }
        if pinned_by.is_none() {
            flags &= !g::GTF_READING;
        }
        env.set_flags(gref, flags);
    }

    /// The granter's side of another domain's use of grant `gref` (Xen's
    /// `acquire_grant_for_copy` and the first half of `map_grant_ref`): checks the entry for
    /// `ldom`, sets `GTF_reading` (and `GTF_writing`), and, when `pin`, records a pin held
    /// until [`Self::release_for`]. Returns the granted frame and the pin's slot.
    pub fn acquire_for(
        &mut self,
        env: &mut impl GrantEnv,
        gref: u32,
        ldom: u16,
        readonly: bool,
        pin: bool,
    ) -> Result<(u64, Option<u32>), i16> {
        let slot = if pin {
            Some(
                self.maps
                    .iter()
                    .position(Option::is_none)
                    .ok_or(g::GNTST_NO_DEVICE_SPACE)?,
            )
        } else {
            None
        };
        let gfn = self.acquire(env, gref, ldom, readonly)?;
        if let Some(s) = slot {
            self.maps[s] = Some(Pin {
                gref,
                readonly,
                by: ldom,
            });
        }
        Ok((gfn, slot.map(|s| s as u32)))
    }

    /// Ends what [`Self::acquire_for`] acquired: the pin in `slot` (if it is still `gref`'s),
    /// then the entry's flags as `reduce_status_for_pin` leaves them.
    pub fn release_for(
        &mut self,
        env: &mut impl GrantEnv,
        gref: u32,
        readonly: bool,
        slot: Option<u32>,
    ) {
        if let Some(s) = slot
            && let Some(p) = self.maps.get_mut(s as usize)
            && p.is_some_and(|p| p.gref == gref)
        {
            *p = None;
        }
        self.release(env, gref, readonly);
    }

    /// Claims one end of a copy: `(gfn, acquired grant)`.
    fn claim(
        &self,
        env: &mut impl GrantEnv,
        ptr: &CopyPtr,
        dom: Dom,
        is_gref: bool,
        readonly: bool,
    ) -> Result<(Frame, Held), i16> {
        if is_gref {
            let gref = ptr.u as u32;
            match dom {
                // hv's domain 0 grants nothing to this domain.
                Dom::Dom0 => Err(g::GNTST_GENERAL_ERROR),
                Dom::Own => {
                    let gfn = self.acquire(env, gref, self.domid, readonly)?;
                    Ok((Frame::Own(gfn), Held::Own(gref)))
                }
                Dom::Other(d) => {
                    let f = env.foreign_acquire(d, gref, self.domid, readonly, false)?;
                    Ok((Frame::Foreign(f.frame), Held::Foreign(f)))
                }
            }
        } else if env.page_ok(ptr.u) {
            Ok((Frame::Own(ptr.u), Held::Nothing))
        } else {
            Err(g::GNTST_BAD_PAGE)
        }
    }

    fn unclaim(&self, env: &mut impl GrantEnv, held: Held, readonly: bool) {
        match held {
            Held::Nothing => {}
            Held::Own(gref) => self.release(env, gref, readonly),
            Held::Foreign(f) => env.foreign_release(&f),
        }
    }

    /// One `GNTTABOP_copy` element: its status.
    pub fn copy(&self, env: &mut impl GrantEnv, op: &CopyOp) -> i16 {
        let src_gref = op.flags & g::GNTCOPY_SOURCE_GREF != 0;
        let dst_gref = op.flags & g::GNTCOPY_DEST_GREF != 0;
        let src_dom = match self.lock_domain(env, &op.source, src_gref) {
            Ok(d) => d,
            Err(s) => return s,
        };
        let dst_dom = match self.lock_domain(env, &op.dest, dst_gref) {
            Ok(d) => d,
            Err(s) => return s,
        };
        let (src, src_held) = match self.claim(env, &op.source, src_dom, src_gref, true) {
            Ok(c) => c,
            Err(s) => return s,
        };
        let (dst, dst_held) = match self.claim(env, &op.dest, dst_dom, dst_gref, false) {
            Ok(c) => c,
            Err(s) => {
                self.unclaim(env, src_held, true);
                return s;
            }
        };
        let status = if u32::from(op.source.offset) + u32::from(op.len) > PAGE
            || u32::from(op.dest.offset) + u32::from(op.len) > PAGE
        {
            g::GNTST_BAD_COPY_ARG
        } else {
            env.copy(src, op.source.offset, dst, op.dest.offset, op.len);
            g::GNTST_OKAY
        };
        self.unclaim(env, src_held, true);
        self.unclaim(env, dst_held, false);
        status
    }

    /// Domain 0 maps this domain's grant `gref` (granted to domain 0), read-only or
    /// writable: the entry gets `GTF_reading`/`GTF_writing` until [`Self::unmap`].
    pub fn map(
        &mut self,
        env: &mut impl GrantEnv,
        gref: u32,
        readonly: bool,
    ) -> Result<Mapping, i16> {
        let (gfn, slot) = self.acquire_for(env, gref, 0, readonly, true)?;
        Ok(Mapping {
            handle: slot.unwrap_or(u32::MAX),
            gfn,
            readonly,
        })
    }

    /// Ends mapping `handle`.
    pub fn unmap(&mut self, env: &mut impl GrantEnv, handle: u32) -> Result<(), i16> {
        let pin = self
            .maps
            .get_mut(handle as usize)
            .and_then(Option::take)
            .ok_or(g::GNTST_BAD_HANDLE)?;
        self.release(env, pin.gref, pin.readonly);
        Ok(())
    }
}

enum Target {
    Denied,
    NoDomain,
}

/// What a copy end holds until the copy is done.
#[derive(Clone, Copy, Debug)]
enum Held {
    Nothing,
    Own(u32),
    Foreign(Foreign),
}

/// One mapping a domain holds of another domain's grant (Xen's maptrack entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry {
    /// The grant and its pin at the granter.
    pub foreign: Foreign,
    /// The guest frame it is mapped at in the mapping domain.
    pub gfn: u64,
}

/// The mappings a domain holds of other domains' grants, by handle (Xen's maptrack).
#[derive(Clone, Debug)]
pub struct Maptrack {
    entries: [Option<MapEntry>; MAX_MAPTRACK],
}

impl Default for Maptrack {
    fn default() -> Self {
        Self {
            entries: [None; MAX_MAPTRACK],
        }
    }
}

impl Maptrack {
    /// A free handle (`get_maptrack_handle`), if any.
    pub fn free_handle(&self) -> Option<u32> {
        self.entries
            .iter()
            .position(Option::is_none)
            .map(|h| h as u32)
    }

    /// Records `entry` under `handle` (from [`Self::free_handle`]).
    pub fn insert(&mut self, handle: u32, entry: MapEntry) {
        if let Some(e) = self.entries.get_mut(handle as usize) {
            *e = Some(entry);
        }
    }

    /// The mapping under `handle`.
    pub fn get(&self, handle: u32) -> Option<MapEntry> {
        self.entries.get(handle as usize).copied().flatten()
    }

    /// Removes the mapping under `handle`.
    pub fn remove(&mut self, handle: u32) -> Option<MapEntry> {
        self.entries.get_mut(handle as usize).and_then(Option::take)
    }

    /// Every mapping held.
    pub fn iter(&self) -> impl Iterator<Item = &MapEntry> + '_ {
        self.entries.iter().flatten()
    }

    /// Every mapping left, removed (the mapping domain dies).
    pub fn drain(&mut self) -> impl Iterator<Item = MapEntry> + '_ {
        self.entries.iter_mut().filter_map(Option::take)
    }

    /// How many mappings are held.
    pub fn len(&self) -> usize {
        self.entries.iter().flatten().count()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
