//! Tiny ELF32 PVH kernels, assembled here, that probe what hv answers as Xen does.
//!
//! [`image`] checks MSR and CR4 answers: what hv answers without a `#GP` (`RDMSR` of PAT,
//! `WRMSR` of DEBUGCTL with LBR set) and what gets one (`MOV` to CR4 of reserved bit 15:
//! QEMU's TCG takes it in the guest, and the next VMRUN would fail, unless hv intercepts the
//! write). It powers off (`cli; hlt`, QEMU exit 33) only from its `#GP` handler after the
//! CR4 write; an earlier `#GP`, or none, ends in a triple fault (the domain crashes, QEMU
//! exit 35).
//!
//! [`intercepts_image`] checks the instructions and exceptions hv keeps from the guest as
//! Xen does: INVD, WBINVD and a prefixed WBINVD stepped over, MONITOR and then MWAIT each
//! answered with `#UD`, a single step's `#DB` delivered to the guest, then, with paging on
//! (one 4 MiB page), `WRMSR` of EFER with LME set answered with `#GP` (Xen's
//! `hvm_set_efer`; taken, the next VMRUN would fail). It powers off only from its `#GP`
//! handler at the last stage; anything else ends in a triple fault. The exits themselves
//! are seen in hv's `COUNTER` lines.
//!
//! Both run in 32-bit protected mode, paging off, loaded at 1 MiB: they load a flat GDT and
//! an IDT whose only present gates are their handlers, then run the probes with ESI as the
//! stage.

/// Where the kernel is loaded and entered.
const BASE: u32 = 0x10_0000;
/// Offset of the code and tables in the file.
const FILE_OFFSET: u32 = 0x1000;

/// The code (at `BASE`), see the module docs.
const CODE: [u8; 0x54] = [
    0xbc, 0x00, 0x20, 0x10, 0x00, // mov $0x102000,%esp
    0x0f, 0x01, 0x15, 0x18, 0x01, 0x10, 0x00, // lgdtl 0x100118
    0x0f, 0x01, 0x1d, 0x20, 0x01, 0x10, 0x00, // lidtl 0x100120
    0xea, 0x1a, 0x00, 0x10, 0x00, 0x08, 0x00, // ljmp $0x8,$0x10001a
    0x66, 0xb8, 0x10, 0x00, // mov $0x10,%ax
    0x8e, 0xd8, // mov %ax,%ds
    0x8e, 0xd0, // mov %ax,%ss
    0x31, 0xf6, // xor %esi,%esi (stage 0)
    0xb9, 0x77, 0x02, 0x00, 0x00, // mov $0x277,%ecx (PAT)
    0x0f, 0x32, // rdmsr
    0xb9, 0xd9, 0x01, 0x00, 0x00, // mov $0x1d9,%ecx (DEBUGCTL)
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov $1,%eax (LBR)
    0x31, 0xd2, // xor %edx,%edx
    0x0f, 0x30, // wrmsr
    0xbe, 0x01, 0x00, 0x00, 0x00, // mov $1,%esi (stage 1)
    0xb8, 0x00, 0x80, 0x00, 0x00, // mov $0x8000,%eax (CR4 bit 15, reserved)
    0x0f, 0x22, 0xe0, // mov %eax,%cr4
    0x0f, 0x0b, // ud2: no #GP
    // 0x48: the #GP handler.
    0x83, 0xfe, 0x01, // cmp $1,%esi
    0x75, 0x02, // jne 0x4f
    0xfa, // cli
    0xf4, // hlt: poweroff
    0x0f, 0x0b, // 0x4f: ud2: #GP at the wrong stage
    0x90, 0x90, 0x90,
];
/// Offset of the `#GP` handler in [`CODE`].
const GP_HANDLER: u32 = 0x48;

/// The code of [`intercepts_image`] (at `BASE`), see the module docs.
const INTERCEPTS_CODE: [u8; 0xb7] = [
    0xbc, 0x00, 0x20, 0x10, 0x00, // 0: mov $0x102000,%esp
    0x0f, 0x01, 0x15, 0x18, 0x01, 0x10, 0x00, // 5: lgdtl 0x100118
    0x0f, 0x01, 0x1d, 0x20, 0x01, 0x10, 0x00, // c: lidtl 0x100120
    0xea, 0x1a, 0x00, 0x10, 0x00, 0x08, 0x00, // 13: ljmp $0x8,$0x10001a
    0x66, 0xb8, 0x10, 0x00, // 1a: mov $0x10,%ax
    0x8e, 0xd8, // 1e: mov %ax,%ds
    0x8e, 0xd0, // 20: mov %ax,%ss
    0x31, 0xf6, // 22: xor %esi,%esi (stage 0)
    0x0f, 0x08, // 24: invd
    0x0f, 0x09, // 26: wbinvd
    0x2e, 0x0f, 0x09, // 28: cs wbinvd
    0xbe, 0x01, 0x00, 0x00, 0x00, // 2b: mov $0x1,%esi (stage 1)
    0x31, 0xc0, // 30: xor %eax,%eax
    0x31, 0xc9, // 32: xor %ecx,%ecx
    0x31, 0xd2, // 34: xor %edx,%edx
    0x0f, 0x01, 0xc8, // 36: monitor %eax,%ecx,%edx
    0xeb, 0x73, // 39: jmp ae (fail): no #UD
    // 0x3b: the #UD handler.
    0x83, 0xc4, 0x0c, // 3b: add $0xc,%esp (drop the frame)
    0x83, 0xfe, 0x01, // 3e: cmp $0x1,%esi
    0x75, 0x0a, // 41: jne 4d
    0xbe, 0x02, 0x00, 0x00, 0x00, // 43: mov $0x2,%esi (stage 2)
    0x0f, 0x01, 0xc9, // 48: mwait %eax,%ecx
    0xeb, 0x61, // 4b: jmp ae (fail): no #UD
    0x83, 0xfe, 0x02, // 4d: cmp $0x2,%esi
    0x75, 0x5c, // 50: jne ae (fail): #UD at the wrong stage
    0xbe, 0x03, 0x00, 0x00, 0x00, // 52: mov $0x3,%esi (stage 3)
    0x9c, // 57: pushf
    0x81, 0x0c, 0x24, 0x00, 0x01, 0x00, 0x00, // 58: orl $0x100,(%esp) (TF)
    0x9d, // 5f: popf
    0x90, // 60: nop
    0x90, // 61: nop
    0xeb, 0x4a, // 62: jmp ae (fail): no #DB
    // 0x64: the #DB handler.
    0x83, 0xfe, 0x03, // 64: cmp $0x3,%esi
    0x75, 0x45, // 67: jne ae (fail): #DB at the wrong stage
    0x83, 0xc4, 0x0c, // 69: add $0xc,%esp (drop the frame)
    0xbe, 0x04, 0x00, 0x00, 0x00, // 6c: mov $0x4,%esi (stage 4)
    0xc7, 0x05, 0x00, 0x20, 0x10, 0x00, 0x83, 0x00, 0x00,
    0x00, // 71: movl $0x83,0x102000 (PDE 0: 4 MiB)
    0xb8, 0x00, 0x20, 0x10, 0x00, // 7b: mov $0x102000,%eax
    0x0f, 0x22, 0xd8, // 80: mov %eax,%cr3
    0x0f, 0x20, 0xe0, // 83: mov %cr4,%eax
    0x83, 0xc8, 0x10, // 86: or $0x10,%eax (PSE)
    0x0f, 0x22, 0xe0, // 89: mov %eax,%cr4
    0x0f, 0x20, 0xc0, // 8c: mov %cr0,%eax
    0x0d, 0x00, 0x00, 0x00, 0x80, // 8f: or $0x80000000,%eax (PG)
    0x0f, 0x22, 0xc0, // 94: mov %eax,%cr0
    0xb9, 0x80, 0x00, 0x00, 0xc0, // 97: mov $0xc0000080,%ecx (EFER)
    0x0f, 0x32, // 9c: rdmsr
    0x0d, 0x00, 0x01, 0x00, 0x00, // 9e: or $0x100,%eax (LME)
    0x0f, 0x30, // a3: wrmsr
    0xeb, 0x07, // a5: jmp ae (fail): no #GP
    // 0xa7: the #GP handler.
    0x83, 0xfe, 0x04, // a7: cmp $0x4,%esi
    0x75, 0x02, // aa: jne ae (fail): #GP at the wrong stage
    0xfa, // ac: cli
    0xf4, // ad: hlt: poweroff
    // 0xae: fail.
    0x0f, 0x01, 0x1d, 0x28, 0x01, 0x10, 0x00, // ae: lidtl 0x100128 (no IDT)
    0x0f, 0x0b, // b5: ud2: a triple fault
];
/// Offset of the `#UD` handler in [`INTERCEPTS_CODE`].
const UD_HANDLER: u32 = 0x3b;
/// Offset of the `#DB` handler in [`INTERCEPTS_CODE`].
const DB_HANDLER: u32 = 0x64;
/// Offset of the `#GP` handler in [`INTERCEPTS_CODE`].
const INTERCEPTS_GP_HANDLER: u32 = 0xa7;

/// The MSR/CR4 probe's image (see the module docs).
pub fn image() -> Vec<u8> {
    elf32(&CODE, &[(13, GP_HANDLER)])
}

/// The intercepts probe's image (see the module docs).
pub fn intercepts_image() -> Vec<u8> {
    elf32(
        &INTERCEPTS_CODE,
        &[
            (1, DB_HANDLER),
            (6, UD_HANDLER),
            (13, INTERCEPTS_GP_HANDLER),
        ],
    )
}

/// An image: ELF32 header, a `PT_LOAD` and a `PT_NOTE` with `XEN_ELFNOTE_PHYS32_ENTRY`,
/// the note, then `code`, GDT, descriptors (GDTR, IDTR, an empty IDTR) and an IDT of 18
/// gates, present only for the `(vector, offset in code)` of `gates`.
fn elf32(code: &[u8], gates: &[(usize, u32)]) -> Vec<u8> {
    let mut seg = vec![0u8; 0x300];
    seg[..code.len()].copy_from_slice(code);
    // GDT at +0x100: null, flat 32-bit code (0x08), flat data (0x10).
    seg[0x108..0x110].copy_from_slice(&0x00cf_9a00_0000_ffffu64.to_le_bytes());
    seg[0x110..0x118].copy_from_slice(&0x00cf_9200_0000_ffffu64.to_le_bytes());
    // GDTR at +0x118, IDTR at +0x120 (14 gates).
    seg[0x118..0x11a].copy_from_slice(&23u16.to_le_bytes());
    seg[0x11a..0x11e].copy_from_slice(&(BASE + 0x100).to_le_bytes());
    seg[0x120..0x122].copy_from_slice(&(18u16 * 8 - 1).to_le_bytes());
    seg[0x122..0x126].copy_from_slice(&(BASE + 0x200).to_le_bytes());
    // The empty IDTR at +0x128 stays zero. IDT at +0x200: 32-bit interrupt gates.
    for &(vector, offset) in gates {
        let handler = (BASE + offset).to_le_bytes();
        let gate = 0x200 + vector * 8;
        seg[gate..gate + 2].copy_from_slice(&handler[..2]);
        seg[gate + 2..gate + 4].copy_from_slice(&0x08u16.to_le_bytes());
        seg[gate + 5] = 0x8e;
        seg[gate + 6..gate + 8].copy_from_slice(&handler[2..]);
    }

    let mut note = Vec::new();
    note.extend(4u32.to_le_bytes()); // namesz
    note.extend(4u32.to_le_bytes()); // descsz
    note.extend(18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
    note.extend(b"Xen\0");
    note.extend(BASE.to_le_bytes());
    let note_len = 20u32;
    assert_eq!(note.len(), note_len as usize);
    let note_offset = 0x60u32;

    let mut f = vec![0x7f, b'E', b'L', b'F', 1, 1, 1];
    f.resize(16, 0);
    f.extend(2u16.to_le_bytes()); // ET_EXEC
    f.extend(3u16.to_le_bytes()); // EM_386
    f.extend(1u32.to_le_bytes());
    f.extend(BASE.to_le_bytes()); // e_entry
    f.extend(52u32.to_le_bytes()); // e_phoff
    f.extend(0u32.to_le_bytes()); // e_shoff
    f.extend(0u32.to_le_bytes()); // e_flags
    f.extend(52u16.to_le_bytes());
    f.extend(32u16.to_le_bytes());
    f.extend(2u16.to_le_bytes());
    f.extend(40u16.to_le_bytes());
    f.extend([0u8; 4]);
    // PT_LOAD: the segment, 12 KiB in memory (the stack ends at +0x2000, a page directory
    // may follow), RWX.
    for v in [1, FILE_OFFSET, BASE, BASE, 0x300, 0x3000, 7, 0x1000] {
        f.extend(u32::to_le_bytes(v));
    }
    // PT_NOTE.
    for v in [4, note_offset, 0, 0, note_len, note_len, 4, 4] {
        f.extend(u32::to_le_bytes(v));
    }
    f.resize(note_offset as usize, 0);
    f.extend(note);
    f.resize(FILE_OFFSET as usize, 0);
    f.extend(seg);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_laid_out_as_its_code_expects() {
        let f = image();
        let seg = &f[FILE_OFFSET as usize..];
        // The far jump lands right after itself; the gate points at the handler.
        assert_eq!(
            &seg[0x13..0x1a],
            &[0xea, 0x1a, 0x00, 0x10, 0x00, 0x08, 0x00]
        );
        assert_eq!(
            &seg[GP_HANDLER as usize..GP_HANDLER as usize + 3],
            &[0x83, 0xfe, 0x01]
        );
        assert_eq!(&seg[0x4f..0x51], &[0x0f, 0x0b], "jne +2 from 0x4d");
        assert_eq!(&seg[0x268..0x26a], &0x48u16.to_le_bytes());
        assert_eq!(&seg[0x120..0x122], &(18u16 * 8 - 1).to_le_bytes());
        assert_eq!(&f[0x60 + 12..0x60 + 20], b"Xen\0\0\0\x10\0");
        assert_eq!(f.len(), 0x1300);
    }

    #[test]
    fn the_intercepts_image_is_laid_out_as_its_code_expects() {
        let f = intercepts_image();
        let seg = &f[FILE_OFFSET as usize..];
        assert_eq!(&seg[0x13..0x1a], &INTERCEPTS_CODE[0x13..0x1a]);
        // The gates point at the handlers, the jumps at fail.
        assert_eq!(&seg[0x208..0x20a], &0x64u16.to_le_bytes(), "#DB");
        assert_eq!(&seg[0x230..0x232], &0x3bu16.to_le_bytes(), "#UD");
        assert_eq!(&seg[0x268..0x26a], &0xa7u16.to_le_bytes(), "#GP");
        assert_eq!(&seg[UD_HANDLER as usize..][..3], &[0x83, 0xc4, 0x0c]);
        assert_eq!(&seg[DB_HANDLER as usize..][..3], &[0x83, 0xfe, 0x03]);
        assert_eq!(
            &seg[INTERCEPTS_GP_HANDLER as usize..][..3],
            &[0x83, 0xfe, 0x04]
        );
        let fail = 0xae;
        for jump in [0x39, 0x4b, 0x50, 0x62, 0x67, 0xa5, 0xaa] {
            assert_eq!(
                jump + 2 + usize::from(seg[jump + 1]),
                fail,
                "jump at {jump:#x}"
            );
        }
        assert_eq!(
            0x43 + usize::from(seg[0x42]),
            0x4d,
            "jne to the stage 2 check"
        );
        assert_eq!(&seg[fail..fail + 3], &[0x0f, 0x01, 0x1d], "fail");
        assert_eq!(&seg[0x128..0x12e], &[0; 6], "the empty IDTR");
        // The page directory lies in the segment's memory, past its file bytes.
        assert_eq!(&seg[0x73..0x77], &0x0010_2000u32.to_le_bytes());
        assert_eq!(
            u32::from_le_bytes(f[52 + 20..52 + 24].try_into().unwrap()),
            0x3000
        );
    }
}
