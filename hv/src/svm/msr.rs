//! The MSRs Xen 4.17 virtualises for a PVH domU on AMD (SVM), as pure functions over the
//! vCPU's MSR state and its VMCB save area: `guest_rdmsr`/`guest_wrmsr`
//! (`xen/arch/x86/msr.c`), then `hvm_msr_read_intercept`/`hvm_msr_write_intercept`
//! (`hvm/hvm.c`, with `hvm/mtrr.c` and `hvm/vlapic.c`), then `svm_msr_read_intercept`/
//! `svm_msr_write_intercept` (`hvm/svm/svm.c`). An MSR none of them handles is `#GP`
//! (`None`/`false` here), as in Xen without `msr_relaxed`.

use super::vmcb::SaveArea;
use crate::vlapic::{MSR_X2APIC_FIRST, MSR_X2APIC_LAST, Vlapic};

/// The MSRs kept in the VMCB save area (PAT for nested paging, DEBUGCTL and the LBR
/// registers for LBR virtualisation), copied out before an access and back after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmcbMsrs {
    /// `G_PAT`.
    pub g_pat: u64,
    /// `DBGCTL`.
    pub dbgctl: u64,
    /// `BR_FROM`.
    pub br_from: u64,
    /// `BR_TO`.
    pub br_to: u64,
    /// `LASTEXCPFROM`.
    pub last_excp_from: u64,
    /// `LASTEXCPTO`.
    pub last_excp_to: u64,
}

impl VmcbMsrs {
    /// The save area's.
    pub fn from_save(s: &SaveArea) -> Self {
        Self {
            g_pat: s.g_pat,
            dbgctl: s.dbgctl,
            br_from: s.br_from,
            br_to: s.br_to,
            last_excp_from: s.last_excp_from,
            last_excp_to: s.last_excp_to,
        }
    }

    /// Puts them back into the save area.
    pub fn store(&self, s: &mut SaveArea) {
        s.g_pat = self.g_pat;
        s.dbgctl = self.dbgctl;
        s.br_from = self.br_from;
        s.br_to = self.br_to;
        s.last_excp_from = self.last_excp_from;
        s.last_excp_to = self.last_excp_to;
    }
}

/// `MSR_APIC_BASE`.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// `MSR_MTRRcap`.
pub const MSR_MTRR_CAP: u32 = 0xfe;
/// `MSR_IA32_DEBUGCTLMSR`.
pub const MSR_DEBUGCTL: u32 = 0x1d9;
/// `MSR_IA32_LASTBRANCHFROMIP` (then TOIP, LASTINTFROMIP, LASTINTTOIP).
pub const MSR_LAST_BRANCH_FROM_IP: u32 = 0x1db;
/// `MSR_IA32_MTRR_PHYSBASE(0)`; bases and masks alternate.
pub const MSR_MTRR_PHYS_BASE0: u32 = 0x200;
/// `MSR_MTRRfix64K_00000`.
pub const MSR_MTRR_FIX64K: u32 = 0x250;
/// `MSR_MTRRfix16K_80000`, `_A0000`.
pub const MSR_MTRR_FIX16K: u32 = 0x258;
/// `MSR_MTRRfix4K_C0000` .. `_F8000`.
pub const MSR_MTRR_FIX4K: u32 = 0x268;
/// `MSR_IA32_CR_PAT`.
pub const MSR_PAT: u32 = 0x277;
/// `MSR_MTRRdefType`.
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
/// `MSR_K8_SYSCFG`.
pub const MSR_K8_SYSCFG: u32 = 0xc001_0010;
/// `MSR_K8_HWCR`.
pub const MSR_K8_HWCR: u32 = 0xc001_0015;
/// `MSR_K8_TOP_MEM1`.
pub const MSR_K8_TOP_MEM1: u32 = 0xc001_001a;
/// `MSR_K8_TOP_MEM2`.
pub const MSR_K8_TOP_MEM2: u32 = 0xc001_001d;
/// `MSR_AMD64_NB_CFG`.
pub const MSR_AMD64_NB_CFG: u32 = 0xc001_001f;
/// `MSR_K8_ENABLE_C1E`.
pub const MSR_K8_ENABLE_C1E: u32 = 0xc001_0055;
/// `MSR_K8_VM_CR`.
pub const MSR_K8_VM_CR: u32 = 0xc001_0114;
/// `MSR_K8_VM_HSAVE_PA`: the guest's own, never the host's.
pub const MSR_K8_VM_HSAVE_PA: u32 = 0xc001_0117;
/// `MSR_TSC_AUX`.
pub const MSR_TSC_AUX: u32 = 0xc000_0103;
/// `MSR_AMD64_DE_CFG`.
pub const MSR_AMD64_DE_CFG: u32 = 0xc001_1029;
/// `MSR_AMD64_EX_CFG`.
pub const MSR_AMD64_EX_CFG: u32 = 0xc001_102c;

/// `APIC_DEFAULT_PHYS_BASE | APIC_BASE_ENABLE | APIC_BASE_BSP`: vCPU 0's reset value.
pub const APIC_BASE_RESET: u64 = 0xfee0_0000 | APIC_BASE_ENABLE | APIC_BASE_BSP;
const APIC_BASE_BSP: u64 = 1 << 8;
const APIC_BASE_EXTD: u64 = 1 << 10;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// `mtrr_cap`: 8 variable ranges, fixed ranges, write-combining (`hvm_vcpu_cacheattr_init`).
pub const MTRR_CAP: u64 = (1 << 10) | (1 << 8) | MTRR_VCNT as u64;
const MTRR_VCNT: usize = 8;
/// The default type libxenguest sets for a PVH vCPU: write-back, MTRRs enabled.
pub const MTRR_DEF_TYPE_RESET: u64 = 6 | (1 << 11);
/// `AMD64_DE_CFG_LFENCE_SERIALISE`, what Xen reports in `DE_CFG`.
const DE_CFG_LFENCE_SERIALISE: u64 = 1 << 1;

/// What the guest's CPUID policy says that the MSRs depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrPolicy {
    /// CPUID 1 EDX.MTRR.
    pub mtrr: bool,
    /// CPUID 0x80000001 EDX.RDTSCP or 7.0 ECX.RDPID: `TSC_AUX` exists.
    pub tsc_aux: bool,
    /// CPUID 0x80000008 `EAX[7:0]`: the physical address width.
    pub maxphysaddr: u8,
    /// CPUID 1 ECX.x2APIC: `APIC_BASE.EXTD` may be set.
    pub x2apic: bool,
    /// System time (ns) now, for the local APIC's timer registers.
    pub now: u64,
}

/// The MSRs of one vCPU that do not live in the VMCB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMsrs {
    /// `MSR_APIC_BASE`.
    pub apic_base: u64,
    /// The local APIC (its x2APIC MSRs and, in the kernel, its xAPIC page).
    pub vlapic: Vlapic,
    /// `MSR_MTRRdefType`.
    pub mtrr_def_type: u64,
    /// The eleven fixed-range MTRRs (64K, 16K x2, 4K x8).
    pub mtrr_fixed: [u64; 11],
    /// The variable-range MTRRs, base and mask alternating.
    pub mtrr_var: [u64; 2 * MTRR_VCNT],
    /// `MSR_K8_VM_HSAVE_PA` (nested SVM's save area, stored only).
    pub hsave_pa: u64,
    /// `MSR_TSC_AUX` (the kernel loads it into the CPU before each VMRUN of this vCPU:
    /// `RDTSCP` reads it without an exit).
    pub tsc_aux: u32,
    /// The virtual machine-check state (`struct vmce`).
    pub vmce: Vmce,
}

/// The virtual machine-check architecture Xen 4.17 gives an HVM vCPU on AMD
/// (`cpu/mcheck/vmce.c`): `MCG_CAP` of [`GUEST_MC_BANK_NUM`] banks and no other capability
/// (`AMD_GUEST_MCG_CAP`), `MCG_STATUS` stored, each bank's `MCi_CTL` all ones and its status,
/// address and misc registers stored. hv never injects a machine check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vmce {
    /// `MSR_IA32_MCG_STATUS`.
    pub mcg_status: u64,
    /// Each bank's `MCi_STATUS`, `MCi_ADDR`, `MCi_MISC`.
    pub banks: [[u64; 3]; GUEST_MC_BANK_NUM],
}

/// The banks Xen emulates for a guest (`GUEST_MC_BANK_NUM`).
pub const GUEST_MC_BANK_NUM: usize = 2;
/// `MSR_IA32_MCG_CAP`.
pub const MSR_MCG_CAP: u32 = 0x179;
/// `MSR_IA32_MCG_STATUS`.
pub const MSR_MCG_STATUS: u32 = 0x17a;
/// `MSR_IA32_MCG_CTL`.
pub const MSR_MCG_CTL: u32 = 0x17b;
/// `MSR_IA32_MC0_CTL`: bank `i`'s CTL, STATUS, ADDR, MISC at `0x400 + 4 * i + 0..3`.
pub const MSR_MC0_CTL: u32 = 0x400;
/// `MSR_IA32_MCG_EXT_CTL`.
pub const MSR_MCG_EXT_CTL: u32 = 0x4d0;

/// Whether `msr` is one `guest_rdmsr`/`guest_wrmsr` hand to `vmce_rdmsr`/`vmce_wrmsr`
/// (0x179..=0x17b, `MCx_CTL2` 0x280..=0x29f, the banks 0x400..=0x47f, 0x4d0).
fn is_vmce(msr: u32) -> bool {
    matches!(msr, MSR_MCG_CAP..=MSR_MCG_CTL | 0x280..=0x29f | 0x400..=0x47f | MSR_MCG_EXT_CTL)
}

impl Vmce {
    /// `vmce_rdmsr` on AMD: never a fault; what it does not handle reads 0.
    fn read(&self, msr: u32) -> u64 {
        match msr {
            MSR_MCG_CAP => GUEST_MC_BANK_NUM as u64,
            MSR_MCG_STATUS => self.mcg_status,
            0x400..=0x47f => {
                let bank = ((msr - MSR_MC0_CTL) / 4) as usize;
                match (bank < GUEST_MC_BANK_NUM, msr & 3) {
                    (true, 0) => u64::MAX,
                    (true, r) => self.banks[bank][r as usize - 1],
                    (false, _) => 0,
                }
            }
            _ => 0,
        }
    }

    /// `vmce_wrmsr` on AMD: never a fault; `MCG_STATUS` and the banks' status, address and
    /// misc registers are stored, every other write dropped.
    fn write(&mut self, msr: u32, value: u64) {
        match msr {
            MSR_MCG_STATUS => self.mcg_status = value,
            0x400..=0x47f => {
                let bank = ((msr - MSR_MC0_CTL) / 4) as usize;
                let r = (msr & 3) as usize;
                if bank < GUEST_MC_BANK_NUM && r != 0 {
                    self.banks[bank][r - 1] = value;
                }
            }
            _ => {}
        }
    }
}

impl Default for GuestMsrs {
    fn default() -> Self {
        Self {
            apic_base: APIC_BASE_RESET,
            vlapic: Vlapic::new(0),
            mtrr_def_type: MTRR_DEF_TYPE_RESET,
            mtrr_fixed: [0; 11],
            mtrr_var: [0; 2 * MTRR_VCNT],
            hsave_pa: 0,
            tsc_aux: 0,
            vmce: Vmce::default(),
        }
    }
}

/// `valid_mtrr_type`: UC, WC, WT, WP, WB.
fn valid_mtrr_type(t: u8) -> bool {
    matches!(t, 0 | 1 | 4 | 5 | 6)
}

/// `hvm_set_guest_pat`'s check: every entry UC, WC, WT, WP, WB or UC-.
pub fn pat_valid(pat: u64) -> bool {
    pat.to_le_bytes()
        .iter()
        .all(|&t| valid_mtrr_type(t) || t == 7)
}

/// The index into [`GuestMsrs::mtrr_fixed`] of a fixed-range MTRR.
fn fixed_index(msr: u32) -> Option<usize> {
    match msr {
        MSR_MTRR_FIX64K => Some(0),
        MSR_MTRR_FIX16K | 0x259 => Some(1 + (msr - MSR_MTRR_FIX16K) as usize),
        0x268..=0x26f => Some(3 + (msr - MSR_MTRR_FIX4K) as usize),
        _ => None,
    }
}

/// The index into [`GuestMsrs::mtrr_var`] of a variable-range MTRR Xen knows
/// (`MSR_IA32_MTRR_PHYSBASE(0)..PHYSMASK(MTRR_VCNT_MAX - 1)`, 0x200..=0x2ff less the
/// others), and whether the guest has it (below `MTRRcap.VCNT`).
fn var_index(msr: u32) -> Option<Option<usize>> {
    // MTRR_VCNT_MAX: the variable ranges end where the fixed ones begin.
    if !(MSR_MTRR_PHYS_BASE0..MSR_MTRR_FIX64K).contains(&msr) {
        return None;
    }
    let index = (msr - MSR_MTRR_PHYS_BASE0) as usize;
    Some((index / 2 < MTRR_VCNT).then_some(index))
}

/// RDMSR `msr`: its value, or `None` for `#GP`.
pub fn read(msr: u32, m: &GuestMsrs, save: &VmcbMsrs, p: &MsrPolicy) -> Option<u64> {
    let mtrr = |v: u64| p.mtrr.then_some(v);
    match msr {
        MSR_APIC_BASE => Some(m.apic_base),
        MSR_X2APIC_FIRST..=MSR_X2APIC_LAST => m.vlapic.msr_read(msr, p.now),
        MSR_PAT => Some(save.g_pat),
        MSR_MTRR_CAP => mtrr(MTRR_CAP),
        MSR_MTRR_DEF_TYPE => mtrr(m.mtrr_def_type),
        _ if fixed_index(msr).is_some() => mtrr(m.mtrr_fixed[fixed_index(msr)?]),
        _ if var_index(msr).is_some() => {
            let index = var_index(msr)??;
            mtrr(m.mtrr_var[index])
        }
        // svm_msr_read_intercept: the VMCB's, as LBR virtualisation keeps them.
        MSR_DEBUGCTL => Some(save.dbgctl),
        0x1db => Some(save.br_from),
        0x1dc => Some(save.br_to),
        0x1dd => Some(save.last_excp_from),
        0x1de => Some(save.last_excp_to),
        // AMD-only registers a guest may read (zero), and Xen's constant for DE_CFG.
        MSR_K8_HWCR | MSR_K8_ENABLE_C1E | MSR_AMD64_NB_CFG | MSR_K8_SYSCFG | MSR_K8_TOP_MEM1
        | MSR_K8_TOP_MEM2 | MSR_K8_VM_CR | MSR_AMD64_EX_CFG => Some(0),
        MSR_AMD64_DE_CFG => Some(DE_CFG_LFENCE_SERIALISE),
        MSR_K8_VM_HSAVE_PA => Some(m.hsave_pa),
        MSR_TSC_AUX => p.tsc_aux.then_some(u64::from(m.tsc_aux)),
        _ if is_vmce(msr) => Some(m.vmce.read(msr)),
        _ => None,
    }
}

/// WRMSR `msr` = `value`: false for `#GP`.
pub fn write(msr: u32, value: u64, m: &mut GuestMsrs, save: &mut VmcbMsrs, p: &MsrPolicy) -> bool {
    match msr {
        // guest_wrmsr: only with RDTSCP or RDPID, and only 32 bits (else #GP).
        MSR_TSC_AUX => match u32::try_from(value) {
            Ok(v) if p.tsc_aux => {
                m.tsc_aux = v;
                true
            }
            _ => false,
        },
        MSR_APIC_BASE => apic_base_write(m, value, p.x2apic),
        MSR_X2APIC_FIRST..=MSR_X2APIC_LAST => m.vlapic.msr_write(msr, value, p.now),
        MSR_PAT => {
            let ok = pat_valid(value);
            if ok {
                save.g_pat = value;
            }
            ok
        }
        MSR_MTRR_CAP => false,
        // mtrr_def_type_msr_set.
        MSR_MTRR_DEF_TYPE => {
            let ok = p.mtrr
                && valid_mtrr_type((value & 0xff) as u8)
                && (value == 0 || value & !0xcff == 0);
            if ok {
                m.mtrr_def_type = value;
            }
            ok
        }
        // mtrr_fix_range_msr_set.
        _ if fixed_index(msr).is_some() => {
            let Some(i) = fixed_index(msr) else {
                return false;
            };
            let ok = p.mtrr && value.to_le_bytes().iter().all(|&t| valid_mtrr_type(t));
            if ok {
                m.mtrr_fixed[i] = value;
            }
            ok
        }
        // mtrr_var_range_msr_set: the low byte a valid type (even in a mask), no bit above
        // the physical address width, the reserved low bits clear.
        _ if var_index(msr).is_some() => {
            let Some(Some(i)) = var_index(msr) else {
                return false;
            };
            if !p.mtrr {
                return false;
            }
            if m.mtrr_var[i] == value {
                return true;
            }
            let width = u32::from(p.maxphysaddr).min(63);
            let reserved = !((1u64 << width) - 1) | if i % 2 == 1 { 0x7ff } else { 0xf00 };
            let ok = valid_mtrr_type((value & 0xff) as u8) && value & reserved == 0;
            if ok {
                m.mtrr_var[i] = value;
            }
            ok
        }
        // svm_msr_write_intercept: any DEBUGCTL value is taken (LBR writes included; with
        // LBR virtualisation the CPU would then use it).
        MSR_DEBUGCTL => {
            save.dbgctl = value;
            true
        }
        0x1db => {
            save.br_from = value;
            true
        }
        0x1dc => {
            save.br_to = value;
            true
        }
        0x1dd => {
            save.last_excp_from = value;
            true
        }
        0x1de => {
            save.last_excp_to = value;
            true
        }
        // Read-only for the guest: writes are dropped.
        MSR_K8_SYSCFG | MSR_K8_TOP_MEM1 | MSR_K8_TOP_MEM2 | MSR_K8_VM_CR | MSR_AMD64_EX_CFG
        | MSR_AMD64_DE_CFG => true,
        MSR_K8_VM_HSAVE_PA => {
            let ok = value & 0xfff == 0 && value <= 0xfd_0000_0000;
            if ok {
                m.hsave_pa = value;
            }
            ok
        }
        _ if is_vmce(msr) => {
            m.vmce.write(msr, value);
            true
        }
        _ => false,
    }
}

/// `guest_wrmsr_apic_base`: no reserved bit (EXTD is one without x2APIC in CPUID), the
/// xAPIC window not moved while enabled, no enabling or disabling with EXTD set, EXTD
/// changed only from xAPIC mode (so x2APIC goes back through disabled). The local APIC
/// follows ([`Vlapic::base_changed`]: reset when enabled, x2APIC ID and LDR with EXTD).
fn apic_base_write(m: &mut GuestMsrs, value: u64, x2apic: bool) -> bool {
    let extd = if x2apic { APIC_BASE_EXTD } else { 0 };
    if value & !(APIC_BASE_ADDR_MASK | APIC_BASE_ENABLE | APIC_BASE_BSP | extd) != 0 {
        return false;
    }
    if value & (APIC_BASE_EXTD | APIC_BASE_ENABLE) == APIC_BASE_ENABLE
        && value & APIC_BASE_ADDR_MASK != 0xfee0_0000
    {
        return false;
    }
    let old = m.apic_base;
    if (old ^ value) & APIC_BASE_ENABLE != 0 {
        if value & APIC_BASE_EXTD != 0 {
            return false;
        }
    } else if (old ^ value) & APIC_BASE_EXTD != 0
        && old & (APIC_BASE_ENABLE | APIC_BASE_EXTD) != APIC_BASE_ENABLE
    {
        return false;
    }
    m.apic_base = value;
    m.vlapic.base_changed(old, value);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: MsrPolicy = MsrPolicy {
        mtrr: true,
        tsc_aux: true,
        maxphysaddr: 40,
        x2apic: false,
        now: 0,
    };

    fn save() -> VmcbMsrs {
        VmcbMsrs {
            g_pat: 0x0007_0406_0007_0406,
            ..VmcbMsrs::default()
        }
    }

    #[test]
    fn values_xen_gives_a_new_pvh_vcpu() {
        let (m, s) = (GuestMsrs::default(), save());
        assert_eq!(read(MSR_APIC_BASE, &m, &s, &P), Some(0xfee0_0900));
        assert_eq!(read(MSR_PAT, &m, &s, &P), Some(0x0007_0406_0007_0406));
        assert_eq!(read(MSR_MTRR_CAP, &m, &s, &P), Some(0x508));
        assert_eq!(read(MSR_MTRR_DEF_TYPE, &m, &s, &P), Some(0x806));
        assert_eq!(read(0x26f, &m, &s, &P), Some(0));
        assert_eq!(read(0x20f, &m, &s, &P), Some(0));
        assert_eq!(read(0x210, &m, &s, &P), None, "beyond MTRRcap.VCNT");
        assert_eq!(read(MSR_DEBUGCTL, &m, &s, &P), Some(0));
        assert_eq!(read(MSR_AMD64_DE_CFG, &m, &s, &P), Some(2));
        assert_eq!(read(MSR_K8_HWCR, &m, &s, &P), Some(0));
        // MISC_ENABLE is Intel's (Xen answers it on VMX only), and unknown MSRs #GP.
        for msr in [0x1a0, 0x10, 0x3a, 0xc001_0140] {
            assert_eq!(read(msr, &m, &s, &P), None, "{msr:#x}");
        }
        let no_mtrr = MsrPolicy { mtrr: false, ..P };
        assert_eq!(read(MSR_MTRR_CAP, &m, &s, &no_mtrr), None);
    }

    #[test]
    fn machine_check_registers_are_xens_vmce() {
        let (mut m, mut s) = (GuestMsrs::default(), save());
        assert_eq!(
            read(MSR_MCG_CAP, &m, &s, &P),
            Some(2),
            "two banks, no MCG_CTL"
        );
        assert_eq!(read(MSR_MCG_STATUS, &m, &s, &P), Some(0));
        assert_eq!(read(MSR_MCG_CTL, &m, &s, &P), Some(0));
        assert_eq!(read(0x400, &m, &s, &P), Some(u64::MAX), "MC0_CTL all ones");
        assert_eq!(read(0x408, &m, &s, &P), Some(0), "no third bank: zero");
        assert!(write(0x405, 0x55, &mut m, &mut s, &P));
        assert_eq!(read(0x405, &m, &s, &P), Some(0x55), "MC1_STATUS stored");
        assert!(write(0x404, 0, &mut m, &mut s, &P));
        assert_eq!(
            read(0x404, &m, &s, &P),
            Some(u64::MAX),
            "CTL writes dropped"
        );
        assert!(write(MSR_MCG_CAP, 7, &mut m, &mut s, &P));
        assert_eq!(read(MSR_MCG_CAP, &m, &s, &P), Some(2));
        assert!(write(0x47f, 1, &mut m, &mut s, &P));
        assert_eq!(read(0x480, &m, &s, &P), None, "past the banks: #GP");
    }

    #[test]
    fn writes_are_checked_as_xen_checks_them() {
        let (mut m, mut s) = (GuestMsrs::default(), save());
        let mut w = |msr, v| write(msr, v, &mut m, &mut s, &P);
        // DEBUGCTL: LBR (bit 0) and BTF are taken, as on Xen's AMD path.
        assert!(w(MSR_DEBUGCTL, 0b11));
        assert!(w(0x1db, 0x1234));
        // PAT: UC- (7) is a PAT type; 2 and 3 are not.
        assert!(w(MSR_PAT, 0x0007_0406_0105_0600));
        assert!(!w(MSR_PAT, 0x0002_0406_0007_0406));
        // APIC base: reserved bits, x2APIC mode, moving the enabled window.
        assert!(!w(MSR_APIC_BASE, APIC_BASE_RESET | 1));
        assert!(!w(MSR_APIC_BASE, APIC_BASE_RESET | APIC_BASE_EXTD));
        assert!(!w(MSR_APIC_BASE, 0xfed0_0900));
        assert!(
            w(MSR_APIC_BASE, 0xfed0_0100),
            "disabled: the window may move"
        );
        assert!(w(MSR_APIC_BASE, APIC_BASE_RESET));
        // MTRRs.
        assert!(!w(MSR_MTRR_CAP, MTRR_CAP));
        assert!(w(MSR_MTRR_DEF_TYPE, 0));
        assert!(!w(MSR_MTRR_DEF_TYPE, 0x2));
        assert!(!w(MSR_MTRR_DEF_TYPE, 0x1006));
        assert!(w(MSR_MTRR_DEF_TYPE, 0xc00));
        assert!(w(0x250, 0x0606_0606_0606_0606));
        assert!(!w(0x268, 0x0606_0606_0606_0607));
        assert!(w(0x200, 0xf_0000_0006));
        assert!(!w(0x200, 0x100_0000_0006), "above 40 physical address bits");
        assert!(!w(0x200, 0x106), "reserved bits 8..11 of a base");
        assert!(w(0x201, 0xff_f000_0800));
        assert!(!w(0x201, 0xff_f000_0801), "reserved bits 0..10 of a mask");
        assert!(!w(0x210, 0));
        // Read-only AMD registers drop writes; HWCR is not writable.
        assert!(w(MSR_K8_SYSCFG, 0xffff));
        assert!(!w(MSR_K8_HWCR, 0));
        assert!(!w(0x1a0, 0), "MISC_ENABLE");
        assert!(!w(MSR_K8_VM_HSAVE_PA, 0x1001));
        assert!(!w(MSR_K8_VM_HSAVE_PA, 0xfd_0000_1000));
        assert!(w(MSR_K8_VM_HSAVE_PA, 0x10_0000));
        assert_eq!(read(MSR_DEBUGCTL, &m, &s, &P), Some(0b11));
        assert_eq!(read(0x1db, &m, &s, &P), Some(0x1234));
        assert_eq!(read(MSR_SYSCFG_READ, &m, &s, &P), Some(0));
        assert_eq!(read(MSR_MTRR_DEF_TYPE, &m, &s, &P), Some(0xc00));
        assert_eq!(read(0x201, &m, &s, &P), Some(0xff_f000_0800));
        assert_eq!(read(MSR_PAT, &m, &s, &P), Some(0x0007_0406_0105_0600));
        assert_eq!(read(MSR_K8_VM_HSAVE_PA, &m, &s, &P), Some(0x10_0000));
    }

    const MSR_SYSCFG_READ: u32 = MSR_K8_SYSCFG;

    #[test]
    fn x2apic_mode_through_apic_base_as_xen_allows_it() {
        let (mut m, mut s) = (GuestMsrs::default(), save());
        let x2 = MsrPolicy { x2apic: true, ..P };
        let mut w = |v| write(MSR_APIC_BASE, v, &mut m, &mut s, &x2);
        let extd = APIC_BASE_RESET | APIC_BASE_EXTD;
        assert!(!w(0xfee0_0000 | APIC_BASE_EXTD), "EXTD without EN");
        assert!(w(extd), "xAPIC to x2APIC");
        assert!(!w(APIC_BASE_RESET), "x2APIC straight back to xAPIC");
        assert!(
            !w(0xfee0_0000 | APIC_BASE_BSP | APIC_BASE_EXTD),
            "disable keeping EXTD"
        );
        assert!(w(0xfee0_0000 | APIC_BASE_BSP), "disable");
        assert!(!w(extd), "enable straight into x2APIC");
        assert!(w(APIC_BASE_RESET));
        assert!(w(extd));
        assert_eq!(
            read(0x803, &m, &s, &x2),
            Some(0x0005_0014),
            "x2APIC version"
        );
        assert_eq!(read(0x80e, &m, &s, &x2), None, "DFR is #GP in x2APIC mode");
        assert!(write(0x83f, 0x40, &mut m, &mut s, &x2), "SELF_IPI");
        assert_eq!(
            read(0x814, &m, &s, &x2),
            Some(0),
            "software-disabled: dropped"
        );
    }

    #[test]
    fn tsc_aux_takes_32_bits_and_exists_only_with_rdtscp_or_rdpid() {
        let (mut m, mut s) = (GuestMsrs::default(), save());
        assert_eq!(read(MSR_TSC_AUX, &m, &s, &P), Some(0));
        assert!(write(MSR_TSC_AUX, 0xdead_beef, &mut m, &mut s, &P));
        assert!(!write(MSR_TSC_AUX, 1 << 32, &mut m, &mut s, &P));
        assert_eq!(m.tsc_aux, 0xdead_beef);
        assert_eq!(read(MSR_TSC_AUX, &m, &s, &P), Some(0xdead_beef));
        let none = MsrPolicy {
            tsc_aux: false,
            ..P
        };
        assert_eq!(read(MSR_TSC_AUX, &m, &s, &none), None);
        assert!(!write(MSR_TSC_AUX, 1, &mut m, &mut s, &none));
    }
}
