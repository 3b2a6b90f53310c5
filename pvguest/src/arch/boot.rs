//! The PVH entry: the `XEN_ELFNOTE_PHYS32_ENTRY` note, the 32-bit entry stub, the boot page
//! tables (identity map of the first 4 GiB with 2 MiB pages), the boot stack, and the switch
//! to long mode.
//!
//! Xen (and QEMU's PVH loader) enter `pvh_start32` in 32-bit protected mode with paging off,
//! flat segments and `ebx` = physical address of `hvm_start_info` (Xen's docs/misc/pvh.pandoc).

use abi::elfnote::{XEN_ELFNOTE_NAME, XEN_ELFNOTE_PHYS32_ENTRY};

/// Size of the boot stack (the kernel's only stack); an unmapped guard page lies below it.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

/// Number of 2 MiB boot page-directory entries: 4 GiB identity mapped.
pub const IDENTITY_MAP_BYTES: u64 = 4 << 30;

const _: () = assert!(XEN_ELFNOTE_NAME.len() == 4);

core::arch::global_asm!(
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

    /* ---- boot stack with a guard page below (unmapped later by paging::install_guard) ---- */
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
    xor %ebp, %ebp
    mov %esi, %edi              /* arg 0: start info physical address */
    call kernel_start           /* the kernel's Rust entry, by name: the binary defines it */
4:  hlt
    jmp 4b
    .popsection
"#,
    note_type = const XEN_ELFNOTE_PHYS32_ENTRY,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    /// The guard page below the boot stack.
    static boot_stack_guard: u8;
    /// The lowest byte of the boot stack.
    static boot_stack_bottom: u8;
    /// One past the top of the boot stack.
    static boot_stack_top: u8;
}

/// Physical (= virtual) address of the stack guard page.
pub fn stack_guard_address() -> u64 {
    // Taking the address of an extern static reads nothing.
    (&raw const boot_stack_guard) as u64
}

/// The boot stack as `[bottom, top)`.
pub fn stack_range() -> (u64, u64) {
    (
        (&raw const boot_stack_bottom) as u64,
        (&raw const boot_stack_top) as u64,
    )
}
