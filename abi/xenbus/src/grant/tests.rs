//! Tests of granting, ending grants and reference allocation against a fake table and peer.

use super::*;
use abi::grant_table::GNTTAB_NR_RESERVED_ENTRIES;
use core::cell::RefCell;
use proptest::prelude::*;

fn gref(raw: u32) -> GrantRef {
    GrantRef::try_new(raw).unwrap()
}

fn dom(id: u32) -> DomId {
    DomId::try_new(id).unwrap()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    flags: u16,
    domid: u16,
    frame: u32,
}

/// A fake grant table; `log` records the order of writes.
#[derive(Default)]
struct FakeTable {
    entries: RefCell<Vec<Entry>>,
    log: RefCell<Vec<&'static str>>,
    added: Vec<u32>,
    refuse_frames: bool,
}

impl FakeTable {
    fn with_frames(frames: u32) -> Self {
        let t = Self::default();
        t.entries
            .borrow_mut()
            .resize((frames * ENTRIES_PER_FRAME) as usize, Entry::default());
        t
    }
    fn entry(&self, gref: GrantRef) -> Entry {
        self.entries.borrow()[gref.get() as usize]
    }
    /// The peer (through Xen) maps or copies: Xen sets these bits.
    fn peer_sets(&self, gref: GrantRef, bits: u16) {
        self.entries.borrow_mut()[gref.get() as usize].flags |= bits;
    }
    fn peer_clears(&self, gref: GrantRef, bits: u16) {
        self.entries.borrow_mut()[gref.get() as usize].flags &= !bits;
    }
}

impl GrantEntries for FakeTable {
    fn write_domid_frame(&self, gref: u32, domid: Domid, frame: u32) {
        let mut e = self.entries.borrow_mut();
        e[gref as usize].domid = domid;
        e[gref as usize].frame = frame;
        self.log.borrow_mut().push("domid+frame");
    }
    fn write_flags(&self, gref: u32, flags: u16) {
        self.entries.borrow_mut()[gref as usize].flags = flags;
        self.log.borrow_mut().push("flags");
    }
    fn read_flags(&self, gref: u32) -> u16 {
        self.entries.borrow()[gref as usize].flags
    }
    fn compare_exchange_flags(&self, gref: u32, current: u16, new: u16) -> Result<u16, u16> {
        let mut e = self.entries.borrow_mut();
        let actual = e[gref as usize].flags;
        if actual == current {
            e[gref as usize].flags = new;
            Ok(actual)
        } else {
            Err(actual)
        }
    }
    fn add_frame(&mut self, index: u32) -> Result<(), FrameAddFailed> {
        if self.refuse_frames {
            return Err(FrameAddFailed);
        }
        self.added.push(index);
        self.entries
            .borrow_mut()
            .resize(((index + 1) * ENTRIES_PER_FRAME) as usize, Entry::default());
        Ok(())
    }
    fn write_barrier(&self) {
        self.log.borrow_mut().push("wmb");
    }
}

#[test]
fn grant_writes_entry_in_order() {
    let mut t = GrantTable::new(FakeTable::with_frames(1), 1, 4);
    let r = t.grant_access(dom(3), 0x1234, false).unwrap();
    assert_eq!(r.get(), GNTTAB_NR_RESERVED_ENTRIES);
    assert_eq!(
        t.entries().entry(r),
        Entry {
            flags: GTF_PERMIT_ACCESS,
            domid: 3,
            frame: 0x1234
        }
    );
    assert_eq!(*t.entries().log.borrow(), ["domid+frame", "wmb", "flags"]);
    let ro = t.grant_access(dom(0), 7, true).unwrap();
    assert_eq!(
        t.entries().entry(ro).flags,
        GTF_PERMIT_ACCESS | GTF_READONLY
    );
}

#[test]
fn bad_arguments_are_refused() {
    let mut t = GrantTable::new(FakeTable::with_frames(1), 1, 1);
    assert_eq!(
        t.grant_access(dom(1), 1 << 32, false),
        Err(GrantError::FrameTooLarge(1 << 32))
    );
    assert_eq!(t.refs().live(), 0);
}

#[test]
fn end_access_refuses_while_peer_reads_or_writes() {
    let mut t = GrantTable::new(FakeTable::with_frames(1), 1, 1);
    let r = t.grant_access(dom(1), 42, false).unwrap();
    for bits in [GTF_READING, GTF_WRITING, GTF_READING | GTF_WRITING] {
        t.entries().peer_sets(r, bits);
        assert_eq!(t.is_in_use(r), Ok(true));
        assert_eq!(t.end_access(r), Err(GrantError::StillInUse(r)));
        // Still granted, still allocated.
        assert_eq!(
            t.entries().entry(r).flags & GTF_PERMIT_ACCESS,
            GTF_PERMIT_ACCESS
        );
        assert!(t.refs().is_allocated(r.get()));
        t.entries().peer_clears(r, bits);
    }
    assert_eq!(t.end_access(r), Ok(()));
    assert_eq!(t.entries().entry(r).flags, 0);
    assert_eq!(t.end_access(r), Err(GrantError::NotAllocated(r)));
}

#[test]
fn end_access_checks_the_reference() {
    let mut t = GrantTable::new(FakeTable::with_frames(1), 1, 1);
    // A reserved entry cannot even be named by a driver.
    assert!(GrantRef::try_new(1).is_err());
    assert_eq!(
        t.end_access(gref(512)),
        Err(GrantError::OutOfRange(gref(512)))
    );
    assert_eq!(
        t.end_access(gref(9)),
        Err(GrantError::NotAllocated(gref(9)))
    );
}

#[test]
fn freed_refs_are_reused() {
    let mut t = GrantTable::new(FakeTable::with_frames(1), 1, 1);
    let a = t.grant_access(dom(1), 1, false).unwrap();
    let b = t.grant_access(dom(1), 2, false).unwrap();
    assert_eq!((a.get(), b.get()), (8, 9));
    t.end_access(a).unwrap();
    assert_eq!(t.grant_access(dom(1), 3, false).unwrap(), a);
}

#[test]
fn table_grows_by_frames_up_to_the_maximum() {
    let mut t = GrantTable::new(FakeTable::with_frames(1), 1, 2);
    let mut refs = Vec::new();
    for i in 0..(512 - 8) {
        refs.push(t.grant_access(dom(1), i, false).unwrap());
    }
    assert!(t.entries().added.is_empty());
    let r = t.grant_access(dom(1), 9999, false).unwrap();
    assert_eq!(r.get(), 512);
    assert_eq!(t.entries().added, [1]);
    assert_eq!((t.frames(), t.refs().capacity()), (2, 1024));
    for i in 0..511 {
        t.grant_access(dom(1), i, false).unwrap();
    }
    assert_eq!(t.grant_access(dom(1), 0, false), Err(GrantError::Exhausted));
    t.end_access(refs[5]).unwrap();
    assert_eq!(t.grant_access(dom(1), 0, false), Ok(refs[5]));
}

#[test]
fn failed_growth_is_typed() {
    let mut fake = FakeTable::with_frames(0);
    fake.refuse_frames = true;
    let mut t = GrantTable::new(fake, 0, 4);
    assert_eq!(
        t.grant_access(dom(1), 1, false),
        Err(GrantError::FrameAddFailed)
    );
    t.entries_mut().refuse_frames = false;
    assert_eq!(t.grant_access(dom(1), 1, false).unwrap().get(), 8);
    assert_eq!(t.entries().added, [0]);
}

proptest! {
    /// Random grant/end sequences: live references are distinct, never reserved, within
    /// capacity, and the allocator's count matches.
    #[test]
    fn allocator_never_hands_out_a_live_or_reserved_ref(ops in proptest::collection::vec(any::<(bool, u16)>(), 1..400)) {
        let mut t = GrantTable::new(FakeTable::with_frames(1), 1, 2);
        let mut live: Vec<GrantRef> = Vec::new();
        for (grant, pick) in ops {
            if grant || live.is_empty() {
                match t.grant_access(dom(1), 5, false) {
                    Ok(r) => {
                        prop_assert!(r.get() >= GNTTAB_NR_RESERVED_ENTRIES && r.get() < t.refs().capacity());
                        prop_assert!(!live.contains(&r));
                        live.push(r);
                    }
                    Err(e) => prop_assert_eq!(e, GrantError::Exhausted),
                }
            } else {
                let r = live.swap_remove(pick as usize % live.len());
                prop_assert_eq!(t.end_access(r), Ok(()));
            }
            prop_assert_eq!(t.refs().live() as usize, live.len());
        }
    }
}
