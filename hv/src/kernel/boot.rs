//! hv's PVH entry: the `XEN_ELFNOTE_PHYS32_ENTRY` note, the 32-bit entry stub, the boot page
//! tables (identity map of the first 4 GiB with 2 MiB pages, which hv keeps for good), the
//! stack, and the switch to long mode.
//!
//! Copied from `pvguest/src/arch/boot.rs` and cut down (no stack guard page; the Rust entry
//! is `kernel::start`), as are `gdt.rs` and `exceptions.rs` (hv's handler reports on the
//! serial port and stops QEMU). Why copies and not a small shared crate: the stub is ~100
//! lines of assembly tied to each kernel's linker-script symbols and entry function, and the
//! exception handlers end differently (pvguest shuts its domain down, hv stops the machine);
//! a crate would need both kernels to agree on symbol names through `extern` declarations
//! and a callback, and pvguest's boot path was being changed by another engineer at the same
//! time. `duplicates --change` shows the copies; folding them into one crate is a follow-up.
//!
//! QEMU's PVH loader enters `pvh_start32` in 32-bit protected mode with paging off, flat
//! segments and `ebx` = physical address of `hvm_start_info` (Xen's docs/misc/pvh.pandoc).

use abi::elfnote::{XEN_ELFNOTE_NAME, XEN_ELFNOTE_PHYS32_ENTRY};

/// Size of the boot stack (hv's only stack).
pub const BOOT_STACK_SIZE: usize = 128 * 1024;

/// Bytes identity mapped by the boot page tables (2 MiB pages, writable, executable; the
/// local APIC's page uncached).
pub const IDENTITY_MAP_BYTES: u64 = 4 << 30;

const _: () = assert!(XEN_ELFNOTE_NAME.len() == 4);

core::arch::global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .p2align 2
    .long 4
    .long 8
    .long {note_type}
    .asciz "Xen"
    .p2align 2
    .quad pvh_start32
    .p2align 2
    .popsection

    .pushsection .bss.boot_stack, "aw", @nobits
    .p2align 12
boot_stack_bottom:
    .skip {stack_size}
boot_stack_top:
    .popsection

    .pushsection .bss.boot_page_tables, "aw", @nobits
    .p2align 12
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
    .popsection

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

    .pushsection .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi

    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl
    mov $boot_stack_top, %esp

    mov $boot_pdpt + 3, %eax
    mov %eax, boot_pml4
    mov $boot_pd + 3, %eax
    xor %ecx, %ecx
1:  mov %eax, boot_pdpt(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jne 1b

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
    /* CR0: PG | NE | MP, clear EM */
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
    mov %esi, %edi
    call {kernel_start}
4:  cli
    hlt
    jmp 4b
    .popsection
"#,
    note_type = const XEN_ELFNOTE_PHYS32_ENTRY,
    stack_size = const BOOT_STACK_SIZE,
    kernel_start = sym super::start::start,
    options(att_syntax)
);
