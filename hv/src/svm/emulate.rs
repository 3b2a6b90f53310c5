//! What hv emulates for a guest, as pure functions (host-tested): the I/O and MSR permission
//! maps, EFER, XCR0 checks, IN results, event injection, the answer to the instructions and
//! exceptions kept from the guest ([`answer`]), the hypercall page, and an
//! instruction's access to memory outside the domain's RAM ([`complete_access`]).

use crate::svm::decode::{Access, AluOp, Effect, MemoryOperand, Operand, Register};

/// `EFER.SCE`.
pub const EFER_SCE: u64 = 1 << 0;
/// `EFER.LME`.
pub const EFER_LME: u64 = 1 << 8;
/// `EFER.LMA`.
pub const EFER_LMA: u64 = 1 << 10;
/// `EFER.NXE`.
pub const EFER_NXE: u64 = 1 << 11;
/// `EFER.SVME`: kept set in the VMCB (VMRUN requires it), hidden from the guest.
pub const EFER_SVME: u64 = 1 << 12;

/// Size of the I/O permission map (one bit per port, plus the spill-over bytes).
pub const IOPM_BYTES: usize = 3 * 4096;
/// Size of the MSR permission map.
pub const MSRPM_BYTES: usize = 2 * 4096;

/// Byte and bit of `msr`'s read-intercept bit in the MSR permission map (the write bit is
/// the next one); None for MSRs outside the three ranges the map covers (always
/// intercepted).
pub fn msrpm_slot(msr: u32) -> Option<(usize, u32)> {
    let base = match msr {
        0..=0x1fff => 0,
        0xc000_0000..=0xc000_1fff => 0x800,
        0xc001_0000..=0xc001_1fff => 0x1000,
        _ => return None,
    };
    let bit = (msr & 0x1fff) * 2;
    Some((base + (bit / 8) as usize, bit % 8))
}

/// Fills the I/O permission map: every port intercepted.
pub fn fill_iopm(map: &mut [u8; IOPM_BYTES]) {
    map.fill(0xff);
}

/// Fills the MSR permission map: every MSR intercepted except `passthrough`.
pub fn fill_msrpm(map: &mut [u8; MSRPM_BYTES], passthrough: &[u32]) {
    map.fill(0xff);
    for &msr in passthrough {
        if let Some((byte, bit)) = msrpm_slot(msr) {
            map[byte] &= !(0b11 << bit);
        }
    }
}

/// The EFER a guest reads: the VMCB's without SVME.
pub fn efer_read(vmcb_efer: u64) -> u64 {
    vmcb_efer & !EFER_SVME
}

/// `CR0.PG`.
pub const CR0_PG: u64 = 1 << 31;

/// The VMCB's EFER after the guest writes `value` with `cr0` in force, or None (`#GP`) for a
/// bit hv does not offer (SVME among them: no nested virtualization) or, as Xen's
/// `hvm_set_efer` refuses it, a change of LME while paging is on. SCE, LME and NXE are
/// taken; LMA is the CPU's and keeps its current value.
pub fn efer_write(vmcb_efer: u64, value: u64, cr0: u64) -> Option<u64> {
    if value & !(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE) != 0 {
        return None;
    }
    if (value ^ vmcb_efer) & EFER_LME != 0 && cr0 & CR0_PG != 0 {
        return None;
    }
    Some((value & (EFER_SCE | EFER_LME | EFER_NXE)) | (vmcb_efer & EFER_LMA) | EFER_SVME)
}

/// CR4 bits (AMD APM vol. 2, 3.1.3).
pub mod cr4 {
    /// Virtual-8086 mode extensions.
    pub const VME: u64 = 1 << 0;
    /// Protected-mode virtual interrupts.
    pub const PVI: u64 = 1 << 1;
    /// Time stamp disable.
    pub const TSD: u64 = 1 << 2;
    /// Debugging extensions.
    pub const DE: u64 = 1 << 3;
    /// Page size extensions.
    pub const PSE: u64 = 1 << 4;
    /// Physical address extension.
    pub const PAE: u64 = 1 << 5;
    /// Machine check enable.
    pub const MCE: u64 = 1 << 6;
    /// Page global enable.
    pub const PGE: u64 = 1 << 7;
    /// Performance counter enable.
    pub const PCE: u64 = 1 << 8;
    /// FXSAVE/FXRSTOR and SSE.
    pub const OSFXSR: u64 = 1 << 9;
    /// Unmasked SIMD exceptions.
    pub const OSXMMEXCPT: u64 = 1 << 10;
    /// User-mode instruction prevention.
    pub const UMIP: u64 = 1 << 11;
    /// RDFSBASE and friends.
    pub const FSGSBASE: u64 = 1 << 16;
    /// Process-context identifiers.
    pub const PCIDE: u64 = 1 << 17;
    /// XSAVE and XSETBV.
    pub const OSXSAVE: u64 = 1 << 18;
    /// Supervisor-mode execution prevention.
    pub const SMEP: u64 = 1 << 20;
    /// Supervisor-mode access prevention.
    pub const SMAP: u64 = 1 << 21;
    /// Protection keys.
    pub const PKE: u64 = 1 << 22;
    /// Control-flow enforcement.
    pub const CET: u64 = 1 << 23;
}

/// `hvm_cr4_guest_valid_bits`: the CR4 bits the guest's CPUID (leaf 1 and leaf 7.0, as
/// `[eax, ebx, ecx, edx]`) lets it set; VMXE never (no nested virtualisation), CET only
/// with CET in leaf 7 (hv offers none).
pub fn cr4_guest_valid_bits(leaf1: [u32; 4], leaf7: [u32; 4]) -> u64 {
    let (c1, d1, b7, c7, d7) = (leaf1[2], leaf1[3], leaf7[1], leaf7[2], leaf7[3]);
    let has =
        |word: u32, bit: u32, cr4_bits: u64| if word & (1 << bit) != 0 { cr4_bits } else { 0 };
    has(d1, 1, cr4::VME | cr4::PVI)
        | has(d1, 4, cr4::TSD)
        | has(d1, 2, cr4::DE)
        | has(d1, 3, cr4::PSE)
        | has(d1, 6, cr4::PAE)
        | has(d1, 7, cr4::MCE)
        | has(d1, 14, cr4::MCE)
        | has(d1, 13, cr4::PGE)
        | cr4::PCE
        | has(d1, 24, cr4::OSFXSR)
        | has(d1, 25, cr4::OSXMMEXCPT)
        | has(c7, 2, cr4::UMIP)
        | has(b7, 0, cr4::FSGSBASE)
        | has(c1, 17, cr4::PCIDE)
        | has(c1, 26, cr4::OSXSAVE)
        | has(b7, 7, cr4::SMEP)
        | has(b7, 20, cr4::SMAP)
        | has(c7, 3, cr4::PKE)
        | has(c7, 7, cr4::CET)
        | has(d7, 20, cr4::CET)
}

/// `hvm_set_cr4`'s checks: no bit outside `valid`; PAE not cleared in long mode; CET only
/// with CR0.WP; PCIDE set only in long mode with `CR3[11:0]` clear. False: `#GP(0)`.
pub fn cr4_write_ok(value: u64, valid: u64, old_cr4: u64, cr0: u64, efer: u64, cr3: u64) -> bool {
    const CR0_WP: u64 = 1 << 16;
    let long_mode = efer & EFER_LMA != 0;
    if value & !valid != 0 {
        return false;
    }
    if value & cr4::PAE == 0 && long_mode {
        return false;
    }
    if value & cr4::CET != 0 && cr0 & CR0_WP == 0 {
        return false;
    }
    if value & cr4::PCIDE != 0 && old_cr4 & cr4::PCIDE == 0 && (!long_mode || cr3 & 0xfff != 0) {
        return false;
    }
    true
}

/// Whether XSETBV may load `value` into XCR`index` on a CPU supporting the `supported`
/// XCR0 bits (CPUID 0xD.0 EDX:EAX): x87 always; AVX needs SSE; the MPX pair together; the
/// AVX-512 trio together and with AVX. Anything else would fault in hv.
pub fn xcr0_valid(index: u32, value: u64, supported: u64) -> bool {
    let all_or_none = |bits: u64| value & bits == 0 || value & bits == bits;
    index == 0
        && value & 1 != 0
        && value & !supported == 0
        && (value & 0b100 == 0 || value & 0b10 != 0)
        && all_or_none(0b1_1000)
        && all_or_none(0b1110_0000)
        && (value & 0b1110_0000 == 0 || value & 0b100 != 0)
}

/// An IOIO exit, decoded from EXITINFO1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortIo {
    /// `IN` of `bytes` (1, 2 or 4) from `port`.
    In {
        /// The port.
        port: u16,
        /// Access size.
        bytes: u8,
    },
    /// `OUT` to `port`.
    Out {
        /// The port.
        port: u16,
    },
    /// `INS`/`OUTS` (no segment information without decode assists).
    String {
        /// The port.
        port: u16,
    },
}

/// Decodes EXITINFO1 of an IOIO exit.
pub fn decode_ioio(info1: u64) -> PortIo {
    // Bits 31:16 of EXITINFO1 are the port (AMD APM vol. 2, 15.10.2).
    #[allow(clippy::cast_possible_truncation, reason = "the port field is 16 bits")]
    let port = (info1 >> 16) as u16;
    if info1 & (1 << 2) != 0 {
        return PortIo::String { port };
    }
    if info1 & 1 == 0 {
        return PortIo::Out { port };
    }
    let bytes = if info1 & (1 << 4) != 0 {
        1
    } else if info1 & (1 << 5) != 0 {
        2
    } else {
        4
    };
    PortIo::In { port, bytes }
}

/// RAX after an `IN` of `bytes` that reads all ones (no device): the low bytes set, a
/// 32-bit read zero-extended.
pub fn in_all_ones(rax: u64, bytes: u8) -> u64 {
    match bytes {
        1 => rax | 0xff,
        2 => rax | 0xffff,
        _ => 0xffff_ffff,
    }
}

/// EVENTINJ for hardware exception `vector` with an optional error code.
pub fn exception_event(vector: u8, error_code: Option<u32>) -> u64 {
    let mut ev = u64::from(vector) | (3 << 8) | (1 << 31);
    if let Some(ec) = error_code {
        ev |= (1 << 11) | (u64::from(ec) << 32);
    }
    ev
}

/// What hv does at an exit it takes only to keep an instruction or an exception from the
/// guest, as Xen 4.17's `svm_vmexit_handler` does for a domU without a debugger attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Inject hardware exception `vector` (with `error_code`), RIP unchanged.
    Raise {
        /// The vector.
        vector: u8,
        /// Its error code, for the vectors that push one.
        error_code: Option<u32>,
    },
    /// Step over the instruction and do nothing else: INVD and WBINVD (Xen's
    /// `svm_vmexit_do_invalidate_cache` flushes only for a domain with devices passed
    /// through, and takes INVD as WBINVD so that no guest discards dirty lines).
    Skip,
}

/// The [`Answer`] for exit `code` (`exitinfo1` is its EXITINFO1), or None for the exits
/// handled elsewhere. MONITOR, MWAIT (CPUID offers neither), the SVM instructions (no
/// nested virtualization) get `#UD`; `#DB` and `#AC` are intercepted only so that an
/// endless delivery loop (XSA-156) comes back to hv, and are reflected unchanged.
pub fn answer(code: u64, exitinfo1: u64) -> Option<Answer> {
    use crate::svm::exit;
    const UD: Answer = Answer::Raise {
        vector: 6,
        error_code: None,
    };
    match code {
        exit::MONITOR
        | exit::MWAIT
        | exit::VMRUN
        | exit::VMLOAD
        | exit::VMSAVE
        | exit::STGI
        | exit::CLGI
        | exit::SKINIT
        | exit::INVLPGA => Some(UD),
        exit::INVD | exit::WBINVD => Some(Answer::Skip),
        exit::EXCP_DB => Some(Answer::Raise {
            vector: 1,
            error_code: None,
        }),
        #[allow(clippy::cast_possible_truncation, reason = "the error code is 32 bits")]
        exit::EXCP_AC => Some(Answer::Raise {
            vector: 17,
            error_code: Some(exitinfo1 as u32),
        }),
        _ => None,
    }
}

/// The guest's DR6 when hv injects `#DB` with `rflags` in force: single step (BS) added
/// while TF is set, as Xen's `svm_inject_event` adds it.
pub fn injected_db_dr6(dr6: u64, rflags: u64) -> u64 {
    const RFLAGS_TF: u64 = 1 << 8;
    const DR6_BS: u64 = 1 << 14;
    if rflags & RFLAGS_TF != 0 {
        dr6 | DR6_BS
    } else {
        dr6
    }
}

/// The hypercall page: stub `n` at `n * 32` is `mov $n, %eax; vmmcall; ret`, the rest of
/// the page int3; `__HYPERVISOR_iret` has no stub (as Xen writes it for HVM guests).
pub fn hypercall_page() -> [u8; 4096] {
    let mut page = [0xccu8; 4096];
    // 128 stubs of 32 bytes: `n` is below 128.
    #[allow(clippy::cast_possible_truncation, reason = "n < 128")]
    for (n, stub) in page.chunks_exact_mut(32).enumerate() {
        if n as u32 == abi::xen::HYPERVISOR_IRET {
            continue;
        }
        stub[0] = 0xb8;
        stub[1..5].copy_from_slice(&(n as u32).to_le_bytes());
        stub[5..8].copy_from_slice(&[0x0f, 0x01, 0xd9]);
        stub[8] = 0xc3;
    }
    page
}

/// EXITINFO1 of a nested page fault (AMD APM vol. 2, 15.25.6).
pub mod npf {
    /// The nested entry was present (a protection fault).
    pub const PRESENT: u64 = 1 << 0;
    /// A write.
    pub const WRITE: u64 = 1 << 1;
    /// An instruction fetch.
    pub const FETCH: u64 = 1 << 4;
    /// The fault came while walking the guest's own page tables.
    pub const GUEST_TABLES: u64 = 1 << 33;
}

/// The local APIC's page at its default base. While the guest's local APIC is enabled in
/// xAPIC mode there, the kernel hands its accesses to the emulated APIC (`crate::vlapic`)
/// before asking [`npf_action`]; otherwise (disabled, or in x2APIC mode) an access to it
/// crashes the domain, where Xen reads all ones.
pub const LAPIC_PAGE: u64 = 0xfee0_0000;

/// What hv does with a nested page fault, as Xen 4.17's `hvm_hap_nested_page_fault` does
/// for the frame's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpfAction {
    /// Crash the domain: `npf=crash`, the local APIC page, or a fault hv never causes (a
    /// read of a present entry).
    Crash,
    /// Nothing backs the frame (Xen's `p2m_mmio_dm` with no ioreq server): complete the
    /// instruction at RIP, its reads reading all ones and its writes dropped.
    Unbacked,
    /// A write to a read-only mapping (a grant mapped read-only, Xen's `p2m_grant_map_ro`,
    /// one of its `P2M_DISCARD_WRITE_TYPES`): complete the instruction at RIP with its write
    /// dropped; what it reads comes from the page.
    DiscardWrite,
    /// `#GP(0)`, as Xen injects when its emulator cannot complete the access; the reason.
    Refuse(&'static str),
}

/// The action for a nested page fault with EXITINFO1 `info1` at guest-physical `gpa`;
/// `crash` is the `npf=crash` option.
pub fn npf_action(info1: u64, gpa: u64, crash: bool) -> NpfAction {
    if crash || gpa & !0xfff == LAPIC_PAGE {
        return NpfAction::Crash;
    }
    if info1 & npf::FETCH != 0 {
        // Xen's emulator cannot fetch from there either (X86EMUL_UNHANDLEABLE).
        return NpfAction::Refuse("instruction fetch");
    }
    if info1 & npf::GUEST_TABLES != 0 {
        // Xen's emulator walks the tables and injects #PF; hv, without decode assists, has
        // no linear address for CR2.
        return NpfAction::Refuse("guest page-table walk");
    }
    match (info1 & npf::PRESENT != 0, info1 & npf::WRITE != 0) {
        (false, _) => NpfAction::Unbacked,
        (true, true) => NpfAction::DiscardWrite,
        (true, false) => NpfAction::Crash,
    }
}

/// Whether an instruction whose memory operand is accessed as `access` can have caused a
/// fault that was a write (`write`) or a read: else the bytes at RIP are not what faulted.
pub fn access_matches(access: Access, write: bool) -> bool {
    match access {
        Access::Read => !write,
        Access::Write => write,
        Access::ReadWrite => true,
    }
}

/// RFLAGS bits an emulated instruction sets.
pub mod rflags {
    /// Carry.
    pub const CF: u64 = 1 << 0;
    /// Parity (of the result's low byte).
    pub const PF: u64 = 1 << 2;
    /// Auxiliary carry (out of bit 3).
    pub const AF: u64 = 1 << 4;
    /// Zero.
    pub const ZF: u64 = 1 << 6;
    /// Sign.
    pub const SF: u64 = 1 << 7;
    /// Overflow.
    pub const OF: u64 = 1 << 11;
    /// The six arithmetic flags.
    pub const ARITHMETIC: u64 = CF | PF | AF | ZF | SF | OF;
}

/// The part of a vCPU an emulated instruction changes: the general registers (0 = RAX ..
/// 15 = R15) and RFLAGS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuState {
    /// RAX .. R15.
    pub gprs: [u64; 16],
    /// RFLAGS.
    pub rflags: u64,
}

/// The value an access of `bytes` reads where nothing backs the memory (Xen's `null_read`:
/// all ones, the low `bytes` bytes of it).
pub fn all_ones(bytes: u8) -> u64 {
    low_mask(bytes)
}

fn low_mask(bytes: u8) -> u64 {
    match bytes {
        0 => 0,
        8.. => u64::MAX,
        b => (1u64 << (8 * u32::from(b))) - 1,
    }
}

fn sign_bit(bytes: u8) -> u64 {
    1u64 << (8 * u32::from(bytes.clamp(1, 8)) - 1)
}

/// The value of `reg` in `gprs` (AH..BH from bits 15:8).
pub fn read_register(gprs: &[u64; 16], reg: Register) -> u64 {
    let full = gprs[usize::from(reg.number & 15)];
    if reg.high_byte {
        (full >> 8) & 0xff
    } else {
        full & low_mask(reg.size)
    }
}

/// Writes `value` to `reg` as the CPU does: a 32-bit register zero-extends into the whole
/// register, an 8- or 16-bit one leaves the other bits alone.
pub fn write_register(gprs: &mut [u64; 16], reg: Register, value: u64) {
    let full = &mut gprs[usize::from(reg.number & 15)];
    *full = match (reg.size, reg.high_byte) {
        (_, true) => (*full & !0xff00) | ((value & 0xff) << 8),
        (1 | 2, false) => (*full & !low_mask(reg.size)) | (value & low_mask(reg.size)),
        _ => value & low_mask(reg.size),
    };
}

/// ZF, SF and PF of a `bytes`-sized result.
fn result_flags(result: u64, bytes: u8) -> u64 {
    let mut f = 0;
    if result & low_mask(bytes) == 0 {
        f |= rflags::ZF;
    }
    if result & sign_bit(bytes) != 0 {
        f |= rflags::SF;
    }
    if (result & 0xff).count_ones().is_multiple_of(2) {
        f |= rflags::PF;
    }
    f
}

/// The arithmetic flags of `a - b` (`cmp`, `sub`) at `bytes`.
fn sub_flags(a: u64, b: u64, bytes: u8) -> u64 {
    let mask = low_mask(bytes);
    let (a, b) = (a & mask, b & mask);
    let r = a.wrapping_sub(b) & mask;
    let mut f = result_flags(r, bytes);
    if a < b {
        f |= rflags::CF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= rflags::AF;
    }
    if (a ^ b) & (a ^ r) & sign_bit(bytes) != 0 {
        f |= rflags::OF;
    }
    f
}

/// Completes an instruction whose memory operand `operand` read `value` (its writes go
/// nowhere): the destination register and the flags change as the CPU would change them.
/// `and`, `or` and `test` clear CF, OF and AF (AF is undefined; QEMU and Xen's emulator on
/// the CPUs at hand clear it); `bt` sets only CF.
pub fn complete_access(operand: &MemoryOperand, value: u64, cpu: &mut CpuState) {
    let size = operand.size;
    let value = value & low_mask(size);
    let operand_value = |cpu: &CpuState, o: Operand| match o {
        Operand::Register(r) => read_register(&cpu.gprs, r),
        Operand::Immediate(i) => i,
    };
    match operand.effect {
        Effect::Store => {}
        Effect::Load { register, signed } => {
            let extended = if signed && value & sign_bit(size) != 0 {
                value | !low_mask(size)
            } else {
                value
            };
            write_register(&mut cpu.gprs, register, extended);
        }
        Effect::BitTest { bit } => {
            let bits = 8 * u64::from(size.clamp(1, 8));
            let index = operand_value(cpu, bit) & (bits - 1);
            cpu.rflags &= !rflags::CF;
            if (value >> index) & 1 != 0 {
                cpu.rflags |= rflags::CF;
            }
        }
        Effect::Alu {
            op,
            other,
            register_first,
        } => {
            let other_value = operand_value(cpu, other) & low_mask(size);
            let (a, b) = if register_first {
                (other_value, value)
            } else {
                (value, other_value)
            };
            let (result, flags) = match op {
                AluOp::And | AluOp::Test => (a & b, result_flags(a & b, size)),
                AluOp::Or => (a | b, result_flags(a | b, size)),
                AluOp::Cmp => (a, sub_flags(a, b, size)),
            };
            cpu.rflags = (cpu.rflags & !rflags::ARITHMETIC) | flags;
            if let (AluOp::And | AluOp::Or, true, Operand::Register(r)) =
                (op, register_first, other)
            {
                write_register(&mut cpu.gprs, r, result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msr_map_passes_only_the_allow_list() {
        let mut map = [0u8; MSRPM_BYTES];
        fill_msrpm(&mut map, &[0xc000_0100, 0x174]);
        assert_eq!(msrpm_slot(0xc000_0100), Some((0x800 + 0x40, 0)));
        assert_eq!(map[0x840] & 0b11, 0);
        assert_eq!(map[0x840] & 0b1100, 0b1100); // FS_BASE's neighbour GS_BASE stays
        assert_eq!(map[0x174 * 2 / 8] & 0b11, 0);
        let efer = msrpm_slot(0xc000_0080).unwrap();
        assert_eq!(map[efer.0] >> efer.1 & 0b11, 0b11);
        assert_eq!(msrpm_slot(0x4000_0000), None);
        assert_eq!(
            msrpm_slot(0xc001_0117),
            Some((0x1000 + 0x117 * 2 / 8, (0x117 * 2) % 8))
        );
        let zero_bits: u32 = map.iter().map(|b| b.count_zeros()).sum();
        assert_eq!(zero_bits, 4);
        let mut io = [0u8; IOPM_BYTES];
        fill_iopm(&mut io);
        assert!(io.iter().all(|&b| b == 0xff));
    }

    #[test]
    fn efer_hides_and_keeps_svme() {
        let cur = EFER_LME | EFER_LMA | EFER_SVME;
        assert_eq!(efer_read(cur), EFER_LME | EFER_LMA);
        assert_eq!(
            efer_write(cur, EFER_LME | EFER_NXE | EFER_SCE, CR0_PG),
            Some(EFER_LME | EFER_NXE | EFER_SCE | EFER_LMA | EFER_SVME)
        );
        assert_eq!(efer_write(EFER_SVME, EFER_LMA, 0), Some(EFER_SVME));
        assert_eq!(efer_write(cur, EFER_SVME, 0), None);
        assert_eq!(efer_write(cur, 1 << 14, 0), None);
    }

    #[test]
    fn efer_lme_changes_only_with_paging_off() {
        let long = EFER_LME | EFER_LMA | EFER_SVME;
        // Clearing LME in long mode (paging on) is refused, as Xen's hvm_set_efer does.
        assert_eq!(efer_write(long, EFER_LMA, CR0_PG | 1), None);
        assert_eq!(efer_write(long, 0, CR0_PG), None);
        // Setting it with paging on too (a 32-bit paged guest).
        assert_eq!(efer_write(EFER_SVME, EFER_LME, CR0_PG), None);
        // Other bits change freely with paging on while LME stays.
        assert_eq!(
            efer_write(long, EFER_LME | EFER_NXE, CR0_PG),
            Some(long | EFER_NXE)
        );
        // With paging off LME goes either way.
        assert_eq!(
            efer_write(EFER_SVME, EFER_LME, 1),
            Some(EFER_LME | EFER_SVME)
        );
        assert_eq!(efer_write(EFER_LME | EFER_SVME, 0, 0), Some(EFER_SVME));
    }

    #[test]
    fn the_instructions_and_exceptions_xen_keeps_from_the_guest() {
        use crate::svm::exit;
        let ud = Answer::Raise {
            vector: 6,
            error_code: None,
        };
        for code in [
            exit::MONITOR,
            exit::MWAIT,
            exit::VMRUN,
            exit::SKINIT,
            exit::INVLPGA,
        ] {
            assert_eq!(answer(code, 0), Some(ud), "{code:#x}");
        }
        assert_eq!(answer(exit::INVD, 0), Some(Answer::Skip));
        assert_eq!(answer(exit::WBINVD, 0), Some(Answer::Skip));
        assert_eq!(
            answer(exit::EXCP_DB, 0x1234),
            Some(Answer::Raise {
                vector: 1,
                error_code: None
            })
        );
        assert_eq!(
            answer(exit::EXCP_AC, 0),
            Some(Answer::Raise {
                vector: 17,
                error_code: Some(0)
            })
        );
        assert_eq!(injected_db_dr6(0xffff_0ff0, 0x102), 0xffff_4ff0, "TF: BS");
        assert_eq!(
            injected_db_dr6(0xffff_0ff1, 0x2),
            0xffff_0ff1,
            "no TF: as it was"
        );
        assert_eq!(answer(exit::CPUID, 0), None);
        assert_eq!(answer(exit::NPF, 0), None);
    }

    #[test]
    fn xcr0_rules() {
        let all = 0xe7;
        assert!(xcr0_valid(0, 0b111, all));
        assert!(xcr0_valid(0, 0xe7, all));
        assert!(!xcr0_valid(1, 0b1, all));
        assert!(!xcr0_valid(0, 0b110, all));
        assert!(!xcr0_valid(0, 0b101, all));
        assert!(!xcr0_valid(0, 0x27, all));
        assert!(!xcr0_valid(0, 0xe3, all));
        assert!(!xcr0_valid(0, 0b1001, 0xff));
        assert!(!xcr0_valid(0, 1 << 9 | 1, all));
    }

    #[test]
    fn ioio_decoding_and_in_results() {
        assert_eq!(
            decode_ioio((0xe9 << 16) | 0b1100 | (1 << 4)),
            PortIo::String { port: 0xe9 }
        );
        assert_eq!(
            decode_ioio((0xf4 << 16) | (1 << 6)),
            PortIo::Out { port: 0xf4 }
        );
        assert_eq!(
            decode_ioio((0x71 << 16) | 1 | (1 << 4)),
            PortIo::In {
                port: 0x71,
                bytes: 1
            }
        );
        assert_eq!(
            decode_ioio((0xcfc << 16) | 1 | (1 << 6)),
            PortIo::In {
                port: 0xcfc,
                bytes: 4
            }
        );
        assert_eq!(in_all_ones(0x1234_5600, 1), 0x1234_56ff);
        assert_eq!(in_all_ones(0xdead_0000_1234_0000, 2), 0xdead_0000_1234_ffff);
        assert_eq!(in_all_ones(0xdead_0000_0000_0000, 4), 0xffff_ffff);
    }

    #[test]
    fn events_and_hypercall_page() {
        assert_eq!(exception_event(6, None), 0x8000_0306);
        assert_eq!(exception_event(13, Some(0)), 0x8000_0b0d);
        let p = hypercall_page();
        assert_eq!(
            &p[17 * 32..17 * 32 + 9],
            &[0xb8, 17, 0, 0, 0, 0x0f, 0x01, 0xd9, 0xc3]
        );
        assert!(p[23 * 32..24 * 32].iter().all(|&b| b == 0xcc));
        assert_eq!(p[9], 0xcc);
        assert_eq!(&p[127 * 32..127 * 32 + 5], &[0xb8, 127, 0, 0, 0]);
    }

    #[test]
    fn cr4_writes_are_checked_as_xen_checks_them() {
        // A CPU with VME, DE, PSE, TSC, PAE, MCE, PGE, FXSR, SSE; PCID and XSAVE; FSGSBASE,
        // SMEP, SMAP; UMIP; no PKU, no CET.
        let leaf1 = [0, 0, (1 << 17) | (1 << 26), 0x0300_20df];
        let leaf7 = [0, 1 | (1 << 7) | (1 << 20), 1 << 2, 0];
        let valid = cr4_guest_valid_bits(leaf1, leaf7);
        let expected = cr4::VME
            | cr4::PVI
            | cr4::TSD
            | cr4::DE
            | cr4::PSE
            | cr4::PAE
            | cr4::MCE
            | cr4::PGE
            | cr4::PCE
            | cr4::OSFXSR
            | cr4::OSXMMEXCPT
            | cr4::UMIP
            | cr4::FSGSBASE
            | cr4::PCIDE
            | cr4::OSXSAVE
            | cr4::SMEP
            | cr4::SMAP;
        assert_eq!(valid, expected);
        let long = EFER_LME | EFER_LMA;
        let ok = |v, old, efer, cr3| cr4_write_ok(v, valid, old, 0x8001_0033, efer, cr3);
        assert!(ok(cr4::PAE | cr4::OSFXSR, 0, 0, 0));
        assert!(!ok(cr4::PAE | cr4::PKE, 0, 0, 0), "PKE without PKU");
        assert!(!ok(cr4::PAE | (1 << 12), 0, 0, 0), "LA57");
        assert!(!ok(cr4::PAE | (1 << 13), 0, 0, 0), "VMXE");
        assert!(!ok(cr4::PAE | (1 << 15), 0, 0, 0), "reserved bit 15");
        assert!(!ok(cr4::PAE | (1 << 32), 0, 0, 0), "reserved high bit");
        assert!(
            !ok(cr4::OSFXSR, cr4::PAE, long, 0),
            "PAE cleared in long mode"
        );
        assert!(
            ok(cr4::OSFXSR, cr4::PAE, 0, 0),
            "PAE cleared outside long mode"
        );
        assert!(ok(cr4::PAE | cr4::PCIDE, cr4::PAE, long, 0x1000));
        assert!(
            !ok(cr4::PAE | cr4::PCIDE, cr4::PAE, long, 0x1001),
            "PCIDE with CR3[11:0]"
        );
        assert!(
            !ok(cr4::PAE | cr4::PCIDE, cr4::PAE, 0, 0),
            "PCIDE outside long mode"
        );
        assert!(
            ok(cr4::PAE | cr4::PCIDE, cr4::PAE | cr4::PCIDE, long, 0x1001),
            "kept"
        );
        let cet = cr4_guest_valid_bits(leaf1, [0, 0, 1 << 7, 0]);
        assert!(cr4_write_ok(cr4::CET, cet, 0, 1 << 16, 0, 0));
        assert!(
            !cr4_write_ok(cr4::CET, cet, 0, 0, 0, 0),
            "CET without CR0.WP"
        );
    }

    /// Decodes `bytes` (64-bit code), completes the access as if it read all ones, and
    /// gives the registers and flags after.
    fn unbacked(bytes: &[u8], cpu: CpuState) -> CpuState {
        let i = crate::svm::decode::decode(bytes, crate::svm::decode::Mode::Bits64).unwrap();
        let operand = i.memory_operand().unwrap();
        let mut after = cpu;
        complete_access(&operand, all_ones(operand.size), &mut after);
        after
    }

    const JUNK: u64 = 0x1122_3344_5566_7788;

    fn cpu() -> CpuState {
        let mut gprs = [0u64; 16];
        for (n, r) in (0u32..).zip(gprs.iter_mut()) {
            *r = JUNK.rotate_left(8 * n);
        }
        CpuState { gprs, rflags: 0x2 }
    }

    #[test]
    fn loads_from_unbacked_memory_read_all_ones_at_their_size() {
        let c = cpu();
        // mov rax, [rbx]; mov eax, [rbx] (zero-extends); mov ax, [rbx]; mov al, [rbx].
        assert_eq!(unbacked(&[0x48, 0x8b, 0x03], c).gprs[0], u64::MAX);
        assert_eq!(unbacked(&[0x8b, 0x03], c).gprs[0], 0xffff_ffff);
        assert_eq!(
            unbacked(&[0x66, 0x8b, 0x03], c).gprs[0],
            0x1122_3344_5566_ffff
        );
        assert_eq!(unbacked(&[0x8a, 0x03], c).gprs[0], 0x1122_3344_5566_77ff);
        // mov ah, [rbx] (no REX: register 4 is AH); mov spl, [rbx] with REX (register 4).
        assert_eq!(unbacked(&[0x8a, 0x23], c).gprs[0], 0x1122_3344_5566_ff88);
        let spl = unbacked(&[0x40, 0x8a, 0x23], c);
        assert_eq!((spl.gprs[0], spl.gprs[4] & 0xff), (c.gprs[0], 0xff));
        // mov r9d, [rbx] (REX.R).
        assert_eq!(unbacked(&[0x44, 0x8b, 0x0b], c).gprs[9], 0xffff_ffff);
        // movzx ecx, byte [rbx]; movzx rcx, word [rbx]; movsx rdx, byte [rbx]; movsx edx, word.
        assert_eq!(unbacked(&[0x0f, 0xb6, 0x0b], c).gprs[1], 0xff);
        assert_eq!(unbacked(&[0x48, 0x0f, 0xb7, 0x0b], c).gprs[1], 0xffff);
        assert_eq!(unbacked(&[0x48, 0x0f, 0xbe, 0x13], c).gprs[2], u64::MAX);
        assert_eq!(unbacked(&[0x0f, 0xbf, 0x13], c).gprs[2], 0xffff_ffff);
        // movzx cx, byte [rbx] keeps the upper 48 bits.
        assert_eq!(
            unbacked(&[0x66, 0x0f, 0xb6, 0x0b], c).gprs[1],
            (c.gprs[1] & !0xffff) | 0xff
        );
        // mov eax, [moffs64].
        assert_eq!(
            unbacked(&[0xa1, 0, 0, 0, 0xf0, 0, 0, 0, 0], c).gprs[0],
            0xffff_ffff
        );
        // Nothing else moved.
        let after = unbacked(&[0x8b, 0x03], c);
        assert_eq!(after.gprs[1..], c.gprs[1..]);
        assert_eq!(after.rflags, c.rflags);
    }

    #[test]
    fn stores_to_unbacked_memory_change_nothing() {
        let c = cpu();
        for bytes in [
            &[0x89, 0x03][..],
            &[0x48, 0x89, 0x03],
            &[0x88, 0x23],
            &[0xc7, 0x03, 0x78, 0x56, 0x34, 0x12],
            &[0xc6, 0x43, 0x10, 0xaa],
            &[0xa3, 0, 0, 0, 0xf0, 0, 0, 0, 0],
        ] {
            assert_eq!(unbacked(bytes, c), c, "{bytes:x?}");
        }
    }

    #[test]
    fn bit_tests_and_flags_of_and_or_cmp_test() {
        use rflags::*;
        let mut c = cpu();
        c.rflags = 0x2 | ZF | OF;
        // bt dword [rbx], 5; bt [rbx], ecx: CF set, the rest kept.
        assert_eq!(unbacked(&[0x0f, 0xba, 0x23, 5], c).rflags, c.rflags | CF);
        assert_eq!(unbacked(&[0x0f, 0xa3, 0x0b], c).rflags, c.rflags | CF);
        // test dword [rbx], 0: ZF PF; test byte [rbx], 0x80: SF; test [rbx], eax.
        assert_eq!(unbacked(&[0xf7, 0x03, 0, 0, 0, 0], c).rflags, 0x2 | ZF | PF);
        assert_eq!(unbacked(&[0xf6, 0x03, 0x80], c).rflags, 0x2 | SF);
        c.gprs[0] = 0x8000_0001;
        assert_eq!(unbacked(&[0x85, 0x03], c).rflags, 0x2 | SF);
        // cmp dword [rbx], 0xffffffff (83 /7 ib, sign-extended): equal. cmp byte [rbx], 1.
        assert_eq!(unbacked(&[0x83, 0x3b, 0xff], c).rflags, 0x2 | ZF | PF);
        assert_eq!(unbacked(&[0x80, 0x3b, 0x01], c).rflags, 0x2 | SF);
        // cmp eax, [rbx] with eax 0x80000001: 0x80000002 with a borrow out of bits 3 and
        // 31, no overflow.
        assert_eq!(unbacked(&[0x3b, 0x03], c).rflags, 0x2 | CF | AF | SF);
        // or eax, [rbx]: eax all ones (upper half cleared), SF PF. and eax, [rbx]: eax kept
        // (upper half cleared), flags of eax.
        let or = unbacked(&[0x0b, 0x03], c);
        assert_eq!((or.gprs[0], or.rflags), (0xffff_ffff, 0x2 | SF | PF));
        c.gprs[0] = 0xdead_0000_0000_0003;
        let and = unbacked(&[0x23, 0x03], c);
        assert_eq!((and.gprs[0], and.rflags), (3, 0x2 | PF));
        // and [rbx], eax and or dword [rbx], 1: flags only, the register kept.
        let and_mem = unbacked(&[0x21, 0x03], c);
        assert_eq!((and_mem.gprs[0], and_mem.rflags), (c.gprs[0], 0x2 | PF));
        assert_eq!(unbacked(&[0x83, 0x0b, 0x01], c).rflags, 0x2 | SF | PF);
    }

    #[test]
    fn register_writes_follow_the_cpu() {
        let mut g = [0u64; 16];
        g[3] = u64::MAX;
        let r = |number, size, high_byte| Register {
            number,
            size,
            high_byte,
        };
        write_register(&mut g, r(3, 4, false), 0x1_2345_6789);
        assert_eq!(g[3], 0x2345_6789);
        write_register(&mut g, r(3, 1, true), 0xab);
        assert_eq!(g[3], 0x2345_ab89);
        assert_eq!(read_register(&g, r(3, 1, true)), 0xab);
        assert_eq!(read_register(&g, r(3, 2, false)), 0xab89);
        write_register(&mut g, r(15, 8, false), 7);
        assert_eq!(g[15], 7);
        assert_eq!(all_ones(1), 0xff);
        assert_eq!(all_ones(8), u64::MAX);
    }

    #[test]
    fn nested_page_faults_as_xen_types_the_frame() {
        use NpfAction::*;
        let gpa = 0xf000_0010;
        let final_read = 1 << 32 | 0x4;
        assert_eq!(npf_action(final_read, gpa, false), Unbacked);
        assert_eq!(npf_action(final_read | npf::WRITE, gpa, false), Unbacked);
        assert_eq!(npf_action(final_read, gpa, true), Crash, "npf=crash");
        assert_eq!(npf_action(final_read, 0xfee0_0030, false), Crash, "LAPIC");
        assert_eq!(npf_action(final_read, 0xfee0_1000, false), Unbacked);
        assert_eq!(
            npf_action(final_read | npf::FETCH, gpa, false),
            Refuse("instruction fetch")
        );
        assert_eq!(
            npf_action(npf::GUEST_TABLES | 0x6, gpa, false),
            Refuse("guest page-table walk")
        );
        let present = final_read | npf::PRESENT;
        assert_eq!(npf_action(present | npf::WRITE, gpa, false), DiscardWrite);
        assert_eq!(npf_action(present, gpa, false), Crash);
        assert!(access_matches(Access::Read, false));
        assert!(!access_matches(Access::Read, true));
        assert!(!access_matches(Access::Write, false));
        assert!(
            access_matches(Access::ReadWrite, false) && access_matches(Access::ReadWrite, true)
        );
    }

    #[test]
    fn a_discarded_write_reads_the_page() {
        // or dword [rbx], 1 on a read-only page holding 0x80: flags of 0x81, nothing else.
        let i = crate::svm::decode::decode(&[0x83, 0x0b, 0x01], crate::svm::decode::Mode::Bits64)
            .unwrap();
        let operand = i.memory_operand().unwrap();
        let mut c = cpu();
        complete_access(&operand, 0x80, &mut c);
        assert_eq!(c.gprs, cpu().gprs);
        assert_eq!(c.rflags, 0x2 | rflags::PF);
    }
}
