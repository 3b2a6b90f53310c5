//! SVM exit codes (AMD64 APM vol. 2, appendix C) and their names for the counters.

/// A physical interrupt arrived while the guest ran.
pub const INTR: u64 = 0x60;
/// NMI.
pub const NMI: u64 = 0x61;
/// `#DB` (exception intercepts are 0x40 + vector).
pub const EXCP_DB: u64 = 0x41;
/// `#AC` (EXITINFO1 = error code).
pub const EXCP_AC: u64 = 0x51;
/// INVD.
pub const INVD: u64 = 0x76;
/// Virtual interrupt window.
pub const VINTR: u64 = 0x64;
/// CPUID.
pub const CPUID: u64 = 0x72;
/// HLT.
pub const HLT: u64 = 0x78;
/// INVLPGA.
pub const INVLPGA: u64 = 0x7a;
/// IN/OUT/INS/OUTS.
pub const IOIO: u64 = 0x7b;
/// RDMSR/WRMSR (EXITINFO1 = 0 read, 1 write).
pub const MSR: u64 = 0x7c;
/// Shutdown (triple fault).
pub const SHUTDOWN: u64 = 0x7f;
/// VMRUN.
pub const VMRUN: u64 = 0x80;
/// VMMCALL.
pub const VMMCALL: u64 = 0x81;
/// VMLOAD.
pub const VMLOAD: u64 = 0x82;
/// VMSAVE.
pub const VMSAVE: u64 = 0x83;
/// STGI.
pub const STGI: u64 = 0x84;
/// CLGI.
pub const CLGI: u64 = 0x85;
/// SKINIT.
pub const SKINIT: u64 = 0x86;
/// WBINVD.
pub const WBINVD: u64 = 0x89;
/// MONITOR.
pub const MONITOR: u64 = 0x8a;
/// MWAIT.
pub const MWAIT: u64 = 0x8b;
/// XSETBV.
pub const XSETBV: u64 = 0x8d;
/// Nested page fault (EXITINFO1 = error code, EXITINFO2 = guest-physical address).
pub const NPF: u64 = 0x400;
/// VMRUN refused the VMCB (invalid guest state).
pub const INVALID: u64 = u64::MAX;

/// `VMEXIT_CR4_WRITE`.
pub const CR4_WRITE: u64 = 0x14;

/// Exit reasons hv counts separately; anything else counts as `other`.
pub const COUNTED: [(u64, &str); 26] = [
    (CR4_WRITE, "cr4_write"),
    (EXCP_DB, "excp_db"),
    (EXCP_AC, "excp_ac"),
    (INVD, "invd"),
    (INTR, "intr"),
    (NMI, "nmi"),
    (VINTR, "vintr"),
    (CPUID, "cpuid"),
    (HLT, "hlt"),
    (INVLPGA, "invlpga"),
    (IOIO, "ioio"),
    (MSR, "msr"),
    (SHUTDOWN, "shutdown"),
    (VMRUN, "vmrun"),
    (VMMCALL, "vmmcall"),
    (VMLOAD, "vmload"),
    (VMSAVE, "vmsave"),
    (STGI, "stgi"),
    (CLGI, "clgi"),
    (SKINIT, "skinit"),
    (WBINVD, "wbinvd"),
    (MONITOR, "monitor"),
    (MWAIT, "mwait"),
    (XSETBV, "xsetbv"),
    (NPF, "npf"),
    (INVALID, "invalid"),
];

/// The counter slot of `code` (`COUNTED.len()` for `other`).
pub fn slot(code: u64) -> usize {
    COUNTED
        .iter()
        .position(|&(c, _)| c == code)
        .unwrap_or(COUNTED.len())
}

/// The counter name of `code`.
pub fn name(code: u64) -> &'static str {
    COUNTED.get(slot(code)).map_or("other", |&(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_slots() {
        assert_eq!(name(VMMCALL), "vmmcall");
        assert_eq!(name(0x1234), "other");
        assert_eq!(slot(0x1234), COUNTED.len());
        assert_eq!(slot(INVALID), COUNTED.len() - 1);
    }
}
