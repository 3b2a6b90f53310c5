//! The image the `extended-state` self-test loads with `XRSTOR` into every XSAVE component it
//! enables (x87, SSE, AVX and, where offered, AVX-512), and its comparison with what `XSAVE`
//! stores after the domain gave up the CPU (host-testable; the test itself is
//! `extended_state`, kernel only).
//!
//! Every value carries the domain id and the round, as [`super::vector`]'s do, so neither
//! another domain's state nor this domain's own from an earlier round passes for the
//! expected one. The standard (non-compacted) form is used: the legacy region (x87 and SSE)
//! at 0, the header at 512, each further component at the offset CPUID 0xD gives it.

use core::fmt;

use super::vector;

/// x87 (XCR0 bit 0).
pub const X87: u64 = 1 << 0;
/// SSE: xmm0..15 and MXCSR (bit 1).
pub const SSE: u64 = 1 << 1;
/// AVX: the upper halves of ymm0..15 (bit 2).
pub const AVX: u64 = 1 << 2;
/// AVX-512: the opmask registers, the upper halves of zmm0..15, zmm16..31 (bits 5..=7),
/// enabled together or not at all.
pub const AVX512: u64 = 0b111 << 5;

/// Offset of the XSAVE header (XSTATE_BV, XCOMP_BV, reserved) in the standard form.
pub const HEADER: usize = 512;
/// Bytes of the header.
const HEADER_BYTES: usize = 64;

/// The XCR0 the test runs with on a CPU whose XCR0 may take `supported`: x87, SSE, AVX if
/// offered, AVX-512 if all three of its bits are (and AVX is). The MPX, PKRU and AMX
/// components are left out: their images have rules of their own.
pub fn tested_xcr0(supported: u64) -> u64 {
    let mut xcr0 = X87 | SSE;
    if supported & AVX != 0 {
        xcr0 |= AVX;
        if supported & AVX512 == AVX512 {
            xcr0 |= AVX512;
        }
    }
    xcr0
}

/// Where the enabled components lie: XCR0 and `(bit, offset, size)` of each component
/// above SSE (from CPUID 0xD), in bit order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The XCR0 the image is for.
    pub xcr0: u64,
    /// `(bit, offset, size)` of components 2 and up, at most 8 of them.
    pub components: [(u32, usize, usize); 8],
    /// How many of `components` are used.
    pub count: usize,
}

/// A layout CPUID described that does not fit an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadLayout {
    /// The component.
    pub bit: u32,
    /// Its offset.
    pub offset: usize,
    /// Its size.
    pub size: usize,
}

impl Layout {
    /// The layout for `xcr0`, asking `component(bit)` for `(offset, size)`; every component
    /// must lie after the header and end within `area_bytes`.
    pub fn new(
        xcr0: u64,
        area_bytes: usize,
        component: impl Fn(u32) -> (usize, usize),
    ) -> Result<Self, BadLayout> {
        let mut layout = Self {
            xcr0,
            components: [(0, 0, 0); 8],
            count: 0,
        };
        for bit in 2..63 {
            if xcr0 & (1 << bit) == 0 {
                continue;
            }
            let (offset, size) = component(bit);
            let bad = BadLayout { bit, offset, size };
            let end = offset.checked_add(size).ok_or(bad)?;
            if offset < HEADER + HEADER_BYTES || end > area_bytes || size == 0 {
                return Err(bad);
            }
            let slot = layout.components.get_mut(layout.count).ok_or(bad)?;
            *slot = (bit, offset, size);
            layout.count += 1;
        }
        Ok(layout)
    }

    /// The components above SSE.
    fn extended(&self) -> &[(u32, usize, usize)] {
        self.components.get(..self.count).unwrap_or(&[])
    }
}

/// The 8-byte word `index` of component `bit` in `round` of domain `domid`: a tag byte from
/// the component, the domain id in bits 40..=55, the round's low 24 bits in bits 16..=39 and
/// the word's index in bits 0..=15. Never zero, distinct across components, domains,
/// rounds (for 2^24 of them) and words (2^16 per component).
pub fn word(domid: u16, round: u32, bit: u32, index: usize) -> u64 {
    let tag = 0x80 | u64::from(bit & 0x3f);
    let index = u64::try_from(index & 0xffff).unwrap_or(0);
    tag << 56 | u64::from(domid) << 40 | u64::from(round & 0xff_ffff) << 16 | index
}

/// The x87 control word: every exception masked, 64-bit precision, rounding from the domain
/// and the round (so it changes every round).
pub fn fcw(domid: u16, round: u32) -> u16 {
    let rounding = domid.wrapping_add(round.to_le_bytes()[0].into()) & 3;
    0x037f | rounding << 10
}

/// The x87 status word: no flag, the stack top from the domain and the round.
pub fn fsw(domid: u16, round: u32) -> u16 {
    let top = domid.wrapping_add(round.to_le_bytes()[0].into()) & 7;
    top << 11
}

/// The abridged x87 tag word: which of the eight registers are valid.
pub fn ftw(domid: u16, round: u32) -> u8 {
    // Never 0, so x87 is never in its initial state.
    domid.to_le_bytes()[0].wrapping_add(round.to_le_bytes()[0]) | 0x80
}

fn put(area: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = area.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Writes into `area` (zeroed or not) the image of `round` for domain `domid`: every field
/// the test compares, the header (XSTATE_BV = every enabled component, XCOMP_BV and the
/// reserved bytes 0), the rest of the legacy region zero.
pub fn fill(area: &mut [u8], layout: &Layout, domid: u16, round: u32) {
    if let Some(legacy) = area.get_mut(..HEADER + HEADER_BYTES) {
        legacy.fill(0);
    }
    put(area, 0, &fcw(domid, round).to_le_bytes());
    put(area, 2, &fsw(domid, round).to_le_bytes());
    put(area, 4, &[ftw(domid, round)]);
    put(area, 24, &vector::mxcsr(domid).to_le_bytes());
    for st in 0..8u16 {
        // The 80-bit register in the low 10 bytes of its 16-byte slot: a word as the
        // significand, an exponent from the register's index.
        let at = usize::from(st);
        let bytes = u128::from(word(domid, round, 0, at)) | u128::from(0x4000 | st) << 64;
        put(area, 32 + 16 * at, &bytes.to_le_bytes()[..10]);
    }
    for (i, v) in vector::pattern(domid, round).iter().enumerate() {
        put(area, 160 + 16 * i, &v.to_le_bytes());
    }
    put(area, HEADER, &layout.xcr0.to_le_bytes());
    for &(bit, offset, size) in layout.extended() {
        for index in 0..size / 8 {
            put(
                area,
                offset + 8 * index,
                &word(domid, round, bit, index).to_le_bytes(),
            );
        }
    }
}

/// The first field that differs between the loaded image and the stored one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Difference {
    /// What the field is.
    pub field: &'static str,
    /// Its byte offset in the area.
    pub offset: usize,
    /// The 8 bytes (or fewer) found there, little-endian.
    pub seen: u64,
    /// What was loaded.
    pub expected: u64,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (byte {}) is {:#x}, expected {:#x}",
            self.field, self.offset, self.seen, self.expected
        )
    }
}

/// The little-endian value of `area[at..at + len]` (`len` at most 8; 0 if out of range).
fn read(area: &[u8], at: usize, len: usize) -> u64 {
    let mut bytes = [0u8; 8];
    if let (Some(src), Some(dst)) = (area.get(at..at + len), bytes.get_mut(..len)) {
        dst.copy_from_slice(src);
    }
    u64::from_le_bytes(bytes)
}

/// Compares what `XSAVE` stored (`seen`) with the image loaded (`expected`): the x87
/// control, status and tag words, ST0..7 (their 10 bytes), MXCSR, xmm0..15, every byte of
/// the enabled components above SSE, and XSTATE_BV, which must show every enabled
/// component in use (none of the image's values is a component's initial state). The x87
/// instruction and operand pointers, MXCSR_MASK and the bytes XSAVE leaves alone are not
/// compared.
pub fn first_difference(layout: &Layout, expected: &[u8], seen: &[u8]) -> Option<Difference> {
    let fields: [(&'static str, usize, usize); 4] = [
        ("the x87 control word", 0, 2),
        ("the x87 status word", 2, 2),
        ("the x87 tag word", 4, 1),
        ("MXCSR", 24, 4),
    ];
    for (name, at, len) in fields {
        let (s, e) = (read(seen, at, len), read(expected, at, len));
        if s != e {
            return Some(Difference {
                field: name,
                offset: at,
                seen: s,
                expected: e,
            });
        }
    }
    let chunks = (0..8)
        .flat_map(|st| {
            [
                ("an x87 register", 32 + 16 * st, 8),
                ("an x87 register", 40 + 16 * st, 2),
            ]
        })
        .chain((0..32).map(|i| ("an xmm register", 160 + 8 * i, 8)))
        .chain(layout.extended().iter().flat_map(|&(bit, offset, size)| {
            (0..size / 8).map(move |i| (component_name(bit), offset + 8 * i, 8))
        }));
    for (name, at, len) in chunks {
        let (s, e) = (read(seen, at, len), read(expected, at, len));
        if s != e {
            return Some(Difference {
                field: name,
                offset: at,
                seen: s,
                expected: e,
            });
        }
    }
    let in_use = read(seen, HEADER, 8);
    (in_use & layout.xcr0 != layout.xcr0).then_some(Difference {
        field: "XSTATE_BV (components in use)",
        offset: HEADER,
        seen: in_use,
        expected: layout.xcr0,
    })
}

/// The name of component `bit` in a difference.
fn component_name(bit: u32) -> &'static str {
    match bit {
        2 => "the upper half of a ymm register (AVX)",
        5 => "an opmask register (AVX-512)",
        6 => "the upper half of a zmm0..15 register (AVX-512)",
        7 => "a zmm16..31 register (AVX-512)",
        _ => "a component",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's `-cpu max` (x87, SSE, AVX) and a CPU with AVX-512, in the standard form.
    fn cpuid(bit: u32) -> (usize, usize) {
        match bit {
            2 => (576, 256),
            5 => (1088, 64),
            6 => (1152, 512),
            7 => (1664, 1024),
            _ => (0, 0),
        }
    }

    #[test]
    fn the_tested_components() {
        assert_eq!(tested_xcr0(0b11), X87 | SSE);
        assert_eq!(tested_xcr0(0x21f), X87 | SSE | AVX, "MPX and PKRU left out");
        assert_eq!(tested_xcr0(0x2ff), 0xe7);
        assert_eq!(tested_xcr0(0x67), 0b111, "AVX-512 only whole");
        assert_eq!(tested_xcr0(0xe3), 0b11, "AVX-512 only with AVX");
    }

    #[test]
    fn the_layout_keeps_inside_the_area() {
        let l = Layout::new(0xe7, 4096, cpuid).expect("fits");
        assert_eq!(l.count, 4);
        assert_eq!(l.extended()[3], (7, 1664, 1024));
        assert!(
            Layout::new(0xe7, 2687, cpuid).is_err(),
            "zmm16..31 ends at 2688"
        );
        let bad = Layout::new(0b111, 4096, |_| (520, 256)).expect_err("inside the header");
        assert_eq!((bad.bit, bad.offset), (2, 520));
        assert!(Layout::new(0b111, 4096, |_| (usize::MAX, 2)).is_err());
        assert!(Layout::new(0b111, 4096, |_| (576, 0)).is_err());
    }

    fn image(xcr0: u64, domid: u16, round: u32) -> (Layout, Vec<u8>) {
        let l = Layout::new(xcr0, 4096, cpuid).expect("fits");
        let mut a = vec![0xcc; 4096];
        fill(&mut a, &l, domid, round);
        (l, a)
    }

    #[test]
    fn the_image_is_valid_and_in_use_everywhere() {
        let (l, a) = image(0xe7, 3, 9);
        assert_eq!(read(&a, HEADER, 8), 0xe7, "XSTATE_BV");
        assert!(
            a[HEADER + 8..HEADER + 64].iter().all(|&b| b == 0),
            "XCOMP_BV, reserved"
        );
        assert_eq!(
            read(&a, 24, 4) & !0xffbf,
            0,
            "MXCSR without DAZ or reserved bits"
        );
        assert_eq!(read(&a, 0, 2) & 0x3f, 0x3f, "x87 exceptions masked");
        assert_eq!(read(&a, 2, 2) & 0xff, 0, "no x87 flags");
        assert_ne!(read(&a, 4, 1), 0);
        for &(_, offset, size) in l.extended() {
            assert!(a[offset..offset + size].chunks(8).all(|w| w != [0; 8]));
        }
        // XSTATE_BV shows as stored: every component in use.
        assert_eq!(first_difference(&l, &a, &a), None);
    }

    #[test]
    fn a_change_anywhere_compared_is_found() {
        let (l, a) = image(0xe7, 1, 0);
        for (at, field) in [
            (0, "the x87 control word"),
            (2, "the x87 status word"),
            (4, "the x87 tag word"),
            (24, "MXCSR"),
            (32 + 16 * 7 + 9, "an x87 register"),
            (160 + 255, "an xmm register"),
            (576 + 128, "the upper half of a ymm register (AVX)"),
            (1088, "an opmask register (AVX-512)"),
            (
                1152 + 511,
                "the upper half of a zmm0..15 register (AVX-512)",
            ),
            (1664 + 1023, "a zmm16..31 register (AVX-512)"),
        ] {
            let mut seen = a.clone();
            seen[at] ^= 1;
            let d = first_difference(&l, &a, &seen).expect(field);
            assert_eq!(d.field, field, "byte {at}");
        }
        // A component XSAVE stored as initial (another domain's XRSTOR of a zeroed header).
        let mut seen = a.clone();
        seen[HEADER] = 0xe3;
        let d = first_difference(&l, &a, &seen).expect("AVX shown initial");
        assert_eq!(d.field, "XSTATE_BV (components in use)");
        // What is not compared: the x87 pointers, MXCSR_MASK, the bytes XSAVE leaves alone.
        let mut seen = a.clone();
        for at in [6, 8, 16, 28, 32 + 10, 416, 511] {
            seen[at] ^= 0xff;
        }
        assert_eq!(first_difference(&l, &a, &seen), None);
    }

    #[test]
    fn other_domains_and_rounds_differ() {
        let (l, a) = image(0b111, 1, 5);
        for (domid, round) in [(2, 5), (1, 4), (1, 6)] {
            let (_, b) = image(0b111, domid, round);
            assert!(first_difference(&l, &a, &b).is_some(), "{domid} {round}");
        }
        let (_, avx512) = image(0xe7, 1, 5);
        assert_eq!(
            first_difference(&l, &a, &avx512),
            None,
            "same values where both have them"
        );
        let d = first_difference(&l, &a, &vec![0; 4096]).expect("zeroed");
        assert_eq!(d.offset, 0);
        assert_eq!(word(1, 0, 0, 0) >> 56, 0x80);
        assert_ne!(word(1, 0, 2, 0), word(1, 0, 5, 0));
    }
}
