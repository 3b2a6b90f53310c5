//! Host tests of the grant table: every permission check of copy and map, the table size
//! calls and versions, and hostile entries and arguments.
#![allow(
    clippy::cast_possible_truncation,
    reason = "test fixtures: small known sizes and indexes, on 64-bit hosts only"
)]

use super::*;
use abi::xen::DOMID_SELF;

/// Entries and RAM pages (gfn < 16) as plain memory.
struct Env {
    entries: Vec<g::GrantEntryV1>,
    pages: Vec<[u8; 4096]>,
}

impl Env {
    fn new() -> Self {
        Self {
            entries: vec![g::GrantEntryV1::default(); (MAX_FRAMES * ENTRIES_PER_FRAME) as usize],
            pages: vec![[0; 4096]; 16],
        }
    }
}

impl GrantEnv for Env {
    fn entry(&self, gref: u32) -> g::GrantEntryV1 {
        self.entries[gref as usize]
    }
    fn set_flags(&mut self, gref: u32, flags: u16) {
        self.entries[gref as usize].flags = flags;
    }
    fn page_ok(&self, gfn: u64) -> bool {
        gfn < 16
    }
    fn copy(&mut self, src: Frame, src_off: u16, dst: Frame, dst_off: u16, len: u16) {
        let (Frame::Own(src_gfn), Frame::Own(dst_gfn)) = (src, dst) else {
            panic!("a domain alone copies only its own frames");
        };
        let (s, d, n) = (src_off as usize, dst_off as usize, len as usize);
        let data: Vec<u8> = self.pages[src_gfn as usize][s..s + n].to_vec();
        self.pages[dst_gfn as usize][d..d + n].copy_from_slice(&data);
    }
}

/// Domain 2 (`own`) beside domain 1 (`peer`, with its table): foreign grants reach domain
/// 1's table as the kernel's `Env` reaches another domain's.
struct Two {
    own: Env,
    peer: Env,
    peer_table: GrantTable,
}

impl GrantEnv for Two {
    fn entry(&self, gref: u32) -> g::GrantEntryV1 {
        self.own.entry(gref)
    }
    fn set_flags(&mut self, gref: u32, flags: u16) {
        self.own.set_flags(gref, flags);
    }
    fn page_ok(&self, gfn: u64) -> bool {
        self.own.page_ok(gfn)
    }
    fn copy(&mut self, src: Frame, so: u16, dst: Frame, d_o: u16, len: u16) {
        let n = len as usize;
        let data: Vec<u8> = match src {
            Frame::Own(gfn) => self.own.pages[gfn as usize][so as usize..][..n].to_vec(),
            Frame::Foreign(gfn) => self.peer.pages[gfn as usize][so as usize..][..n].to_vec(),
        };
        match dst {
            Frame::Own(gfn) => {
                self.own.pages[gfn as usize][d_o as usize..][..n].copy_from_slice(&data)
            }
            Frame::Foreign(gfn) => {
                self.peer.pages[gfn as usize][d_o as usize..][..n].copy_from_slice(&data)
            }
        }
    }
    fn foreign_exists(&self, dom: u16) -> bool {
        dom == 1
    }
    fn foreign_acquire(
        &mut self,
        dom: u16,
        gref: u32,
        ldom: u16,
        readonly: bool,
        pin: bool,
    ) -> Result<Foreign, i16> {
        assert_eq!(dom, 1);
        let (gfn, slot) = self
            .peer_table
            .acquire_for(&mut self.peer, gref, ldom, readonly, pin)?;
        Ok(Foreign {
            dom,
            gref,
            readonly,
            pin: slot,
            frame: gfn,
        })
    }
    fn foreign_release(&mut self, f: &Foreign) {
        self.peer_table
            .release_for(&mut self.peer, f.gref, f.readonly, f.pin);
    }
}

#[test]
fn copy_and_pin_through_another_domains_grant() {
    let mut two = Two {
        own: Env::new(),
        peer: Env::new(),
        peer_table: GrantTable::new(1),
    };
    // Domain 1 grants its frame 3 to domain 2 writable, frame 4 read-only, frame 5 to 7.
    two.peer.entries[10] = entry(RW, 2, 3);
    two.peer.entries[11] = entry(RO, 2, 4);
    two.peer.entries[12] = entry(RW, 7, 5);
    two.peer.pages[3][..4].copy_from_slice(b"peer");
    let t2 = GrantTable::new(2);
    // Copy from domain 1's grant 10 into domain 2's frame 6.
    let from_peer = |gref| CopyOp {
        source: CopyPtr {
            u: gref,
            domid: 1,
            offset: 0,
        },
        dest: CopyPtr {
            u: 6,
            domid: DOMID_SELF,
            offset: 0,
        },
        len: 4,
        flags: g::GNTCOPY_SOURCE_GREF,
    };
    assert_eq!(t2.copy(&mut two, &from_peer(10)), g::GNTST_OKAY);
    assert_eq!(&two.own.pages[6][..4], b"peer");
    // The flags are back as they were once the copy is done.
    assert_eq!(two.peer.entries[10].flags, RW);
    // Xen's refusals: a grant made for another domain, an unknown domain, a frame named
    // directly in another domain, a bad reference.
    assert_eq!(t2.copy(&mut two, &from_peer(12)), g::GNTST_GENERAL_ERROR);
    let mut op = from_peer(10);
    op.source.domid = 9;
    assert_eq!(t2.copy(&mut two, &op), g::GNTST_BAD_DOMAIN);
    let mut op = from_peer(3);
    op.flags = 0;
    op.source.domid = 1;
    assert_eq!(t2.copy(&mut two, &op), g::GNTST_PERMISSION_DENIED);
    // The domain is looked up before the frame is refused (Xen 4.17's order): a frame of
    // an id nobody has is a bad domain.
    op.source.domid = 9;
    assert_eq!(t2.copy(&mut two, &op), g::GNTST_BAD_DOMAIN);
    assert_eq!(t2.copy(&mut two, &from_peer(600)), g::GNTST_BAD_GNTREF);
    // Writing into domain 1's read-only grant is refused; its writable one is written.
    let to_peer = |gref| CopyOp {
        source: CopyPtr {
            u: 6,
            domid: DOMID_SELF,
            offset: 0,
        },
        dest: CopyPtr {
            u: gref,
            domid: 1,
            offset: 0,
        },
        len: 4,
        flags: g::GNTCOPY_DEST_GREF,
    };
    two.own.pages[6][..4].copy_from_slice(b"back");
    assert_eq!(t2.copy(&mut two, &to_peer(11)), g::GNTST_GENERAL_ERROR);
    assert_eq!(t2.copy(&mut two, &to_peer(10)), g::GNTST_OKAY);
    assert_eq!(&two.peer.pages[3][..4], b"back");
    // A pin (a mapping) by domain 2: reading and writing flags stay until it ends, and
    // another domain may not use the grant meanwhile.
    let f = two.foreign_acquire(1, 10, 2, false, true).unwrap();
    assert!(f.pin.is_some());
    assert_eq!(
        two.peer.entries[10].flags,
        RW | g::GTF_READING | g::GTF_WRITING
    );
    assert_eq!(
        two.peer_table
            .acquire_for(&mut two.peer, 10, 7, true, false)
            .unwrap_err(),
        g::GNTST_GENERAL_ERROR
    );
    assert_eq!(
        two.peer_table.foreign_pins().collect::<Vec<_>>(),
        [(f.pin.unwrap(), 10, 2)]
    );
    // Read-only grant pinned writable: refused, nothing left pinned.
    assert_eq!(
        two.foreign_acquire(1, 11, 2, false, true).unwrap_err(),
        g::GNTST_GENERAL_ERROR
    );
    two.foreign_release(&f);
    assert_eq!(two.peer.entries[10].flags, RW);
    assert_eq!(two.peer_table.foreign_pins().count(), 0);
}

#[test]
fn maptrack_hands_out_and_takes_back_handles() {
    let mut m = Maptrack::default();
    let f = Foreign {
        dom: 1,
        gref: 10,
        readonly: false,
        pin: Some(0),
        frame: 3,
    };
    for i in 0..MAX_MAPTRACK as u32 {
        let h = m.free_handle().unwrap();
        assert_eq!(h, i);
        m.insert(
            h,
            MapEntry {
                foreign: f,
                gfn: 0x100 + u64::from(i),
            },
        );
    }
    assert_eq!(m.free_handle(), None);
    assert_eq!(m.remove(7).unwrap().gfn, 0x107);
    assert_eq!(m.get(7), None);
    assert_eq!(m.remove(7), None);
    assert_eq!(m.free_handle(), Some(7));
    assert_eq!(m.get(u32::MAX), None);
    assert_eq!(m.drain().count(), MAX_MAPTRACK - 1);
    assert!(m.is_empty());
}

const RW: u16 = g::GTF_PERMIT_ACCESS;
const RO: u16 = g::GTF_PERMIT_ACCESS | g::GTF_READONLY;

/// A v1 entry granting `frame` to `domid` with `flags`.
fn entry(flags: u16, domid: u16, frame: u32) -> g::GrantEntryV1 {
    g::GrantEntryV1 {
        flags,
        domid,
        frame,
    }
}

fn copy_op(src: u64, src_dom: u16, dst: u64, dst_dom: u16, flags: u16) -> CopyOp {
    CopyOp {
        source: CopyPtr {
            u: src,
            domid: src_dom,
            offset: 0,
        },
        dest: CopyPtr {
            u: dst,
            domid: dst_dom,
            offset: 0,
        },
        len: 4096,
        flags,
    }
}

#[test]
fn sizes_and_versions() {
    let mut t = GrantTable::new(1);
    assert_eq!(t.query_size(DOMID_SELF), (0, 1, 64));
    assert_eq!(t.query_size(1), (0, 1, 64));
    assert_eq!(t.query_size(0).0, g::GNTST_PERMISSION_DENIED);
    assert_eq!(t.query_size(9).0, g::GNTST_BAD_DOMAIN);
    assert_eq!(t.setup_table(DOMID_SELF, 65), g::GNTST_GENERAL_ERROR);
    assert_eq!(t.setup_table(DOMID_SELF, 4), g::GNTST_OKAY);
    assert_eq!(t.nr_frames(), 4);
    assert_eq!(t.setup_table(DOMID_SELF, 2), g::GNTST_OKAY);
    assert_eq!(t.nr_frames(), 4);
    assert_eq!(t.frame_gfn(0), u64::MAX);
    assert_eq!(t.set_version(1), (0, 1));
    assert_eq!(t.set_version(2), (-38, 1));
    assert_eq!(t.set_version(3), (-22, 1));
    assert_eq!(t.get_version(DOMID_SELF), Ok(1));
    assert_eq!(t.get_version(0), Err(-1));
    assert_eq!(t.get_version(5), Err(-3));
}

#[test]
fn frames_placed_as_xen() {
    let mut t = GrantTable::new(1);
    assert_eq!(t.place_frame(0, 0x100), Ok((0, None)));
    // Recorded only once mapped.
    assert_eq!(t.frame_gfn(0), u64::MAX);
    t.frame_placed(0, 0x100);
    assert_eq!(t.frame_gfn(0), 0x100);
    // Moving frame 0 reports where it was.
    assert_eq!(t.place_frame(0, 0x200), Ok((0, Some(0x100))));
    t.frame_placed(0, 0x200);
    // Frame 5 grows the table to 6 frames.
    assert_eq!(t.place_frame(5, 0x300), Ok((5, None)));
    assert_eq!(t.query_size(DOMID_SELF), (0, 6, 64));
    assert_eq!(t.place_frame(64, 0x300), Err(-22));
    assert_eq!(t.place_frame(u64::from(u32::MAX), 0x300), Err(-22));
    // The status-frame bit is not special in a v1 table.
    assert_eq!(t.place_frame(0x8000_0000, 0x300), Err(-22));
    // Xen truncates the index to 32 bits (stock Xen 4.17 answers 0 for 2^32).
    assert_eq!(t.place_frame(1 << 32, 0x400), Ok((0, Some(0x200))));
    assert_eq!(t.place_frame((1 << 32) | 64, 0x400), Err(-22));
    t.frame_placed(0, 0x400);
    t.frame_replaced(0x400);
    assert_eq!(t.frame_gfn(0), u64::MAX);
}

#[test]
fn copy_through_own_grant() {
    let t = GrantTable::new(1);
    let mut e = Env::new();
    e.pages[3] = [0x5a; 4096];
    e.entries[10] = entry(RO, 1, 3);
    let op = copy_op(10, DOMID_SELF, 4, DOMID_SELF, g::GNTCOPY_SOURCE_GREF);
    assert_eq!(t.copy(&mut e, &op), g::GNTST_OKAY);
    assert_eq!(e.pages[4], [0x5a; 4096]);
    // GTF_reading lasts only for the copy.
    assert_eq!(e.entries[10].flags, RO);
}

#[test]
fn copy_refusals_as_xen() {
    let t = GrantTable::new(1);
    let mut e = Env::new();
    e.entries[10] = entry(RO, 0, 3); // granted to domain 0
    e.entries[11] = entry(0, 1, 3); // ended
    e.entries[12] = entry(RO, 1, 3); // read-only, ours
    e.entries[13] = entry(RW, 1, 99); // names a frame we do not own
    e.entries[14] = entry(g::GTF_ACCEPT_TRANSFER, 1, 3);
    let src = |gref| copy_op(gref, DOMID_SELF, 4, DOMID_SELF, g::GNTCOPY_SOURCE_GREF);
    assert_eq!(t.copy(&mut e, &src(10)), g::GNTST_GENERAL_ERROR);
    assert_eq!(t.copy(&mut e, &src(11)), g::GNTST_GENERAL_ERROR);
    assert_eq!(t.copy(&mut e, &src(14)), g::GNTST_GENERAL_ERROR);
    assert_eq!(t.copy(&mut e, &src(13)), g::GNTST_BAD_PAGE);
    assert_eq!(e.entries[13].flags, RW);
    assert_eq!(t.copy(&mut e, &src(512)), g::GNTST_BAD_GNTREF);
    // Writing through a read-only grant.
    let w = copy_op(4, DOMID_SELF, 12, DOMID_SELF, g::GNTCOPY_DEST_GREF);
    assert_eq!(t.copy(&mut e, &w), g::GNTST_GENERAL_ERROR);
    assert_eq!(e.entries[12].flags, RO);
    // A frame of another domain named without a grant; the caller's own id names its own
    // frames as DOMID_SELF does (Xen 4.15 on).
    assert_eq!(
        t.copy(&mut e, &copy_op(3, 0, 4, DOMID_SELF, 0)),
        g::GNTST_PERMISSION_DENIED
    );
    assert_eq!(
        t.copy(&mut e, &copy_op(3, 1, 4, DOMID_SELF, 0)),
        t.copy(&mut e, &copy_op(3, DOMID_SELF, 4, DOMID_SELF, 0))
    );
    assert_eq!(
        t.copy(&mut e, &copy_op(3, DOMID_SELF, 4, 0, 0)),
        g::GNTST_PERMISSION_DENIED
    );
    assert_eq!(
        t.copy(
            &mut e,
            &copy_op(3, 7, 4, DOMID_SELF, g::GNTCOPY_SOURCE_GREF)
        ),
        g::GNTST_BAD_DOMAIN
    );
    assert_eq!(
        t.copy(
            &mut e,
            &copy_op(3, 0, 4, DOMID_SELF, g::GNTCOPY_SOURCE_GREF)
        ),
        g::GNTST_GENERAL_ERROR
    );
    // Frames outside the domain.
    assert_eq!(
        t.copy(&mut e, &copy_op(99, DOMID_SELF, 4, DOMID_SELF, 0)),
        g::GNTST_BAD_PAGE
    );
    // Beyond the page.
    let mut op = copy_op(3, DOMID_SELF, 4, DOMID_SELF, 0);
    op.dest.offset = 1;
    assert_eq!(t.copy(&mut e, &op), g::GNTST_BAD_COPY_ARG);
    e.entries[15] = entry(RW, 1, 5);
    let mut op = copy_op(3, DOMID_SELF, 15, DOMID_SELF, g::GNTCOPY_DEST_GREF);
    op.source.offset = 4095;
    op.len = 2;
    assert_eq!(t.copy(&mut e, &op), g::GNTST_BAD_COPY_ARG);
    assert_eq!(e.entries[15].flags, RW);
}

#[test]
fn dom0_maps() {
    let mut t = GrantTable::new(1);
    let mut e = Env::new();
    e.entries[20] = entry(RW, 0, 6);
    e.entries[21] = entry(RO, 0, 7);
    e.entries[22] = entry(RW, 1, 7);
    let m = t.map(&mut e, 20, false).unwrap();
    assert_eq!(m.gfn, 6);
    assert_eq!(e.entries[20].flags, RW | g::GTF_READING | g::GTF_WRITING);
    // While mapped by domain 0 the guest cannot use it for its own copies.
    let op = copy_op(20, DOMID_SELF, 4, DOMID_SELF, g::GNTCOPY_SOURCE_GREF);
    assert_eq!(t.copy(&mut e, &op), g::GNTST_GENERAL_ERROR);
    assert_eq!(t.map(&mut e, 21, false), Err(g::GNTST_GENERAL_ERROR));
    assert_eq!(t.map(&mut e, 22, true), Err(g::GNTST_GENERAL_ERROR));
    let r = t.map(&mut e, 21, true).unwrap();
    assert_eq!(e.entries[21].flags, RO | g::GTF_READING);
    t.unmap(&mut e, m.handle).unwrap();
    assert_eq!(e.entries[20].flags, RW);
    assert_eq!(t.unmap(&mut e, m.handle), Err(g::GNTST_BAD_HANDLE));
    assert_eq!(t.unmap(&mut e, 9999), Err(g::GNTST_BAD_HANDLE));
    t.unmap(&mut e, r.handle).unwrap();
    assert_eq!(e.entries[21].flags, RO);
}

proptest::proptest! {
    /// Hostile entries and copy arguments: no panic, every status is one of Xen's, a copy
    /// succeeds only through an entry that permits it, and no entry keeps GTF_reading or
    /// GTF_writing that it did not have before.
    #[test]
    fn hostile_copies(
        entries in proptest::collection::vec((proptest::num::u16::ANY, 0u16..3, 0u32..20), 8),
        ops in proptest::collection::vec(
            (0u64..12, 0u16..3, 0u16..4200, 0u64..12, 0u16..3, 0u16..4200, 0u16..4200, 0u16..4), 1..40),
    ) {
        let t = GrantTable::new(1);
        let mut e = Env::new();
        for (i, en) in entries.iter().enumerate() {
            e.entries[i] = entry(en.0, en.1, en.2);
        }
        let before: Vec<_> = e.entries[..8].to_vec();
        let dom = |d: u16| [DOMID_SELF, 1, 0][d as usize];
        for (su, sd, so, du, dd, dof, len, flags) in ops {
            let op = CopyOp {
                source: CopyPtr { u: su, domid: dom(sd), offset: so },
                dest: CopyPtr { u: du, domid: dom(dd), offset: dof },
                len,
                flags,
            };
            let s = t.copy(&mut e, &op);
            proptest::prop_assert!([0, -1, -2, -3, -8, -9, -10].contains(&s), "status {}", s);
            if s == 0 && flags & g::GNTCOPY_SOURCE_GREF != 0 {
                let g::GrantEntryV1 { flags: f, domid: d, .. } = before[su as usize];
                proptest::prop_assert!(f & g::GTF_TYPE_MASK == g::GTF_PERMIT_ACCESS && d == 1);
            }
            if s == 0 && flags & g::GNTCOPY_DEST_GREF != 0 {
                let g::GrantEntryV1 { flags: f, domid: d, .. } = before[du as usize];
                proptest::prop_assert!(f & 3 == 1 && f & g::GTF_READONLY == 0 && d == 1);
            }
        }
        for (i, g::GrantEntryV1 { flags: f, .. }) in e.entries[..8].iter().enumerate() {
            let added = f & !before[i].flags;
            proptest::prop_assert_eq!(added, 0);
        }
    }
}
