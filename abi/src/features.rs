//! Feature bits reported by `XENVER_get_features`: `xen/features.h`.
//!
//! Each constant is a bit number in the 32-bit submap `n / 32` (only submap 0 exists).

// ---------------------------------------------------------------------------------------------
// XENFEAT_* bit numbers
// ---------------------------------------------------------------------------------------------

/// The guest may update its page tables by direct writes (PV).
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// The guest may update its descriptor tables by direct writes (PV).
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// Xen translates guest-physical to machine addresses (always set for HVM/PVH).
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// The guest runs in supervisor mode (x86 ring 0).
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// PAE page directories need not be below 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// x86: the host supports `MMU_PT_UPDATE_PRESERVE_AD`.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// x86: the host supports `MMUEXT_{CLEAR,COPY}_PAGE`.
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// `GNTTABOP_map_grant_ref` honours `GNTMAP_guest_avail` PTE bits.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// x86: the host supports `HVM_PARAM_CALLBACK_TYPE_VECTOR`.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// x86: the pvclock algorithm is safe to use on HVM.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// x86: HVM guests can use PIRQs.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// Operation as domain 0 is supported.
pub const XENFEAT_DOM0: u32 = 11;
/// The guest can use `XENMEMF_vnode` in memory ops.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// Arm: the hypervisor supports the SMC calling convention.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// x86 PVH: the ACPI RSDP may be anywhere (not only below 1 MiB); Linux guests only.
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// The domain's memory is not direct-mapped (gfn != mfn).
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// The domain's memory is direct-mapped (gfn == mfn).
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;

/// Number of 32-bit feature submaps.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;
