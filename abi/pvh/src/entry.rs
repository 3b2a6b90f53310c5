//! The PVH entry, expanded in each kernel crate by [`pvh_entry!`](crate::pvh_entry): what
//! differs between the kernels (the boot stack's size, the Rust entry function) is a macro
//! argument, the rest is this one text.
//!
//! Why a macro and not assembly in this crate: the stack size is an assembler constant
//! (`.skip`), and the call to the Rust entry names a symbol of the kernel crate; a macro lets
//! the kernel pass both as ordinary Rust (`const` and `sym` operands, type-checked below)
//! instead of agreeing on magic symbol names through `extern` declarations.

/// Emits, in the calling kernel crate, the PVH entry: the `XEN_ELFNOTE_PHYS32_ENTRY` note, the
/// boot stack with a guard page below it, the boot page tables, the boot GDT, and
/// `pvh_start32`, which Xen and QEMU's PVH loader enter in 32-bit protected mode with paging
/// off, flat segments and `ebx` = the physical address of `hvm_start_info` (Xen's
/// docs/misc/pvh.pandoc).
///
/// `pvh_start32` zeroes `.bss` (`__bss_start`..`__bss_end`), builds the identity map of the
/// first 4 GiB ([`boot::IDENTITY_MAP_BYTES`](crate::boot::IDENTITY_MAP_BYTES), 2 MiB pages,
/// writable and executable; the local APIC's page at 0xFEE00000 uncached), enables PAE, SSE
/// (the target is soft-float, but the CPU must not trap on it), long mode and paging, paints
/// the boot stack with [`stack::PAINT`](crate::stack::PAINT) (its high-water mark), and
/// calls `entry(start_info_paddr)` on the boot stack, which must not return.
///
/// `stack_size` is the boot stack in bytes (a positive multiple of 4096); `entry` is an
/// `extern "C" fn(u32) -> !`.
///
/// The kernel's linker script must provide (`pvguest/link.ld` and `hv/link.ld` do):
/// `__bss_start`/`__bss_end` around all of `.bss` (4-byte multiples), with
/// `.bss.boot_stack` 4 KiB aligned inside it; `KEEP(*(.text.boot))`; and `.note.Xen` kept in a
/// `PT_NOTE` segment of its own, whose `p_align` (4) comes from the section's alignment. The
/// note is name "Xen", type 18, and an 8-byte value (the 32-bit entry zero-extended): QEMU 7.2
/// reads 8 bytes from an ELF64 note, Xen's loader aligns notes to 4; `xtask`'s `elf_note`
/// check holds a kernel to this.
///
/// ```ignore
/// pvh::pvh_entry!(stack_size = 64 * 1024, entry = crate::kernel::start);
/// ```
#[macro_export]
macro_rules! pvh_entry {
    (stack_size = $stack:expr, entry = $entry:path $(,)?) => {
        const _: () = ::core::assert!(
            ($stack) >= 4096 && ($stack) % 4096 == 0,
            "the boot stack is a positive multiple of 4 KiB"
        );
        const _: extern "C" fn(u32) -> ! = $entry;
        ::core::arch::global_asm!(
            r#"
    /* ---- ELF note: XEN_ELFNOTE_PHYS32_ENTRY, name "Xen", 8-byte value ---- */
    .pushsection .note.Xen, "a", @note
    .p2align 2
    .long 4                     /* namesz: "Xen\0" */
    .long 8                     /* descsz: the entry, zero-extended to 64 bits */
    .long {note_type}
    .asciz "Xen"
    .p2align 2
    .quad pvh_start32
    .p2align 2
    .popsection

    /* ---- boot stack with a guard page below (unmapped by boot::install_stack_guard) ---- */
    .pushsection .bss.boot_stack, "aw", @nobits
    .p2align 12
    .global boot_stack_guard
boot_stack_guard:
    .skip 4096
    .global boot_stack_bottom
boot_stack_bottom:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:
    .popsection

    /* ---- boot page tables ---- */
    .pushsection .bss.boot_page_tables, "aw", @nobits
    .p2align 12
    .global boot_pml4
boot_pml4:
    .skip 4096
    .global boot_pdpt
boot_pdpt:
    .skip 4096
    .global boot_pd
boot_pd:
    .skip 4096 * 4
    .popsection

    /* ---- the GDT used to enter long mode (gdt::init replaces it) ---- */
    .pushsection .rodata.boot_gdt, "a"
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff    /* 0x10: data, DPL 0 */
boot_gdt_end:
    .p2align 2
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
    .popsection

    /* ---- 32-bit entry ---- */
    .pushsection .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi              /* hvm_start_info, kept in esi */

    /* Zero .bss (the loaders do; nothing promises it). Includes stack and page tables. */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl
    mov $boot_stack_top, %esp

    /* PML4[0] -> PDPT; PDPT[0..4] -> the four PD pages */
    mov $boot_pdpt + 3, %eax
    mov %eax, boot_pml4
    mov $boot_pd + 3, %eax
    xor %ecx, %ecx
1:  mov %eax, boot_pdpt(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jne 1b

    /* PD: 2048 entries of 2 MiB, present | writable | page size */
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, boot_pd(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 2b
    /* The 2 MiB page of the local APIC (0xFEE00000): uncached (PCD | PWT). */
    orl $0x18, boot_pd + (0xfee00000 >> 21) * 8

    /* CR4: PAE | OSFXSR | OSXMMEXCPT */
    mov %cr4, %eax
    or $0x620, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    /* EFER.LME */
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    /* CR0: PG | NE | MP, clear EM (SSE usable even though the target is soft-float) */
    mov %cr0, %eax
    and $0xfffffffb, %eax
    or $0x80000022, %eax
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $3f

    .code64
3:  mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $boot_stack_top, %rsp
    /* Paint the whole boot stack (nothing is on it yet) for pvh::stack's high-water mark. */
    mov $boot_stack_bottom, %edi
    mov $({stack_size} / 8), %ecx
    movabs ${paint}, %rax
    rep stosq
    xor %ebp, %ebp
    mov %esi, %edi              /* arg 0: start info physical address */
    call {kernel_start}
4:  cli
    hlt
    jmp 4b
    .popsection
"#,
            note_type = const $crate::boot::PHYS32_ENTRY_NOTE,
            stack_size = const $stack,
            paint = const $crate::stack::PAINT,
            kernel_start = sym $entry,
            options(att_syntax)
        );
    };
}
