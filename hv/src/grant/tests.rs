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
    fn copy(&mut self, src_gfn: u64, src_off: u16, dst_gfn: u64, dst_off: u16, len: u16) {
        let (s, d, n) = (src_off as usize, dst_off as usize, len as usize);
        let data: Vec<u8> = self.pages[src_gfn as usize][s..s + n].to_vec();
        self.pages[dst_gfn as usize][d..d + n].copy_from_slice(&data);
    }
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
    // A frame of another domain named without a grant.
    assert_eq!(
        t.copy(&mut e, &copy_op(3, 1, 4, DOMID_SELF, 0)),
        g::GNTST_PERMISSION_DENIED
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
