//! The kernel GDT (code, data, TSS, then user data and user code) and the TSS whose IST 1
//! stack serves double faults, so a stack overflow into the guard page is reported instead of
//! triple-faulting, and whose RSP0 stack takes exceptions raised at CPL 3 (pvguest's `cpl3`
//! probes; hv never leaves CPL 0). (hv: VMSAVE and VMLOAD keep this TR across guest runs.)

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// The IST slot (1-based, as in the IDT gate) used for double faults.
pub const DOUBLE_FAULT_IST: u8 = 1;

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

/// The double-fault stack; only the CPU writes to it (on a double fault).
static mut DOUBLE_FAULT_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);

/// The RSP0 stack's size: enough for the kernel's fault report.
const PRIVILEGE_STACK_SIZE: usize = 12 * 1024;

#[repr(C, align(16))]
struct PrivilegeStack([u8; PRIVILEGE_STACK_SIZE]);

/// The RSP0 stack: the CPU switches to it for an exception raised at CPL 3.
static mut PRIVILEGE_STACK: PrivilegeStack = PrivilegeStack([0; PRIVILEGE_STACK_SIZE]);

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// The selectors of the kernel GDT.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    /// 64-bit code segment.
    pub code: SegmentSelector,
    /// Data segment.
    pub data: SegmentSelector,
    /// The TSS.
    pub tss: SegmentSelector,
    /// User (DPL 3) data segment, RPL 3.
    pub user_data: SegmentSelector,
    /// User (DPL 3) 64-bit code segment, RPL 3.
    pub user_code: SegmentSelector,
}

/// Loads the kernel GDT and TSS and reloads the segment registers. Called once at boot.
pub fn init() -> Selectors {
    let tss = TSS.call_once(|| {
        // SAFETY: once (inside call_once), before the TSS naming the RSP0 stack is loaded:
        // nothing has used that stack yet, and nothing but `privilege_stack_use` reads it.
        unsafe {
            crate::stack::paint((&raw mut PRIVILEGE_STACK) as u64, PRIVILEGE_STACK_SIZE);
        }
        let mut tss = TaskStateSegment::new();
        let top = (&raw const DOUBLE_FAULT_STACK) as u64 + IST_STACK_SIZE as u64;
        tss.interrupt_stack_table[usize::from(DOUBLE_FAULT_IST - 1)] = VirtAddr::new(top);
        let rsp0 = (&raw const PRIVILEGE_STACK) as u64 + PRIVILEGE_STACK_SIZE as u64;
        tss.privilege_stack_table[0] = VirtAddr::new(rsp0);
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        (
            gdt,
            Selectors {
                code,
                data,
                tss,
                user_data,
                user_code,
            },
        )
    });
    gdt.load();
    // SAFETY: the selectors name descriptors of the GDT just loaded (which lives forever in a
    // static): a 64-bit code segment, a flat data segment and an available TSS.
    unsafe {
        CS::set_reg(sel.code);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        SS::set_reg(sel.data);
        load_tss(sel.tss);
    }
    *sel
}

/// The code selector (after [`init`]); the boot GDT's 0x08 before.
pub fn code_selector() -> u16 {
    GDT.get().map_or(0x08, |(_, s)| s.code.0)
}

/// The user code and data selectors (RPL 3), after [`init`].
pub fn user_selectors() -> Option<(u16, u16)> {
    GDT.get().map(|(_, s)| (s.user_code.0, s.user_data.0))
}

/// The kernel code and data selectors, after [`init`].
pub fn kernel_selectors() -> Option<(u16, u16)> {
    GDT.get().map(|(_, s)| (s.code.0, s.data.0))
}

/// The RSP0 stack's size and peak so far (painted by [`init`]; all zero peak before it).
pub fn privilege_stack_use() -> crate::stack::StackUse {
    if TSS.get().is_none() {
        return crate::stack::StackUse::from_untouched(PRIVILEGE_STACK_SIZE, PRIVILEGE_STACK_SIZE);
    }
    // SAFETY: the RSP0 stack, a static, always mapped; painted by `init` (checked above).
    unsafe { crate::stack::scan((&raw const PRIVILEGE_STACK) as u64, PRIVILEGE_STACK_SIZE) }
}
