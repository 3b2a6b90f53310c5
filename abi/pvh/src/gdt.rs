//! The kernel GDT (code, data, TSS) and the TSS whose IST 1 stack serves double faults, so a
//! stack overflow into the guard page is reported instead of triple-faulting. (hv: VMSAVE and
//! VMLOAD keep this TR across guest runs.)

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
}

/// Loads the kernel GDT and TSS and reloads the segment registers. Called once at boot.
pub fn init() -> Selectors {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let top = (&raw const DOUBLE_FAULT_STACK) as u64 + IST_STACK_SIZE as u64;
        tss.interrupt_stack_table[usize::from(DOUBLE_FAULT_IST - 1)] = VirtAddr::new(top);
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
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
