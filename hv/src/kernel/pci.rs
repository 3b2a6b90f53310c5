//! PCI configuration space through the legacy ports 0xCF8/0xCFC (QEMU's `pc` machine has no
//! ECAM), as `virtio-drivers`' [`ConfigurationAccess`], and memory BARs made uncached in hv's
//! identity map. The checks (inside the map, no RAM in the pages made uncached) are
//! [`crate::dom0::blk::check_bar`]'s.

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use x86_64::instructions::port::Port;

use crate::dom0::blk::{BarWindow, MAP_PAGE};

/// The configuration-address port.
const CONFIG_ADDRESS: u16 = 0xcf8;
/// The configuration-data port.
const CONFIG_DATA: u16 = 0xcfc;

/// Configuration mechanism #1: the enable bit, bus, device, function and dword offset.
fn address(df: DeviceFunction, offset: u8) -> u32 {
    0x8000_0000
        | u32::from(df.bus) << 16
        | u32::from(df.device & 0x1f) << 11
        | u32::from(df.function & 0x7) << 8
        | u32::from(offset & 0xfc)
}

/// Configuration space through ports 0xCF8/0xCFC. hv runs on one CPU with interrupts off,
/// so an address write and its data access are never interleaved with another's.
#[derive(Debug, Default)]
pub struct PortCam;

impl ConfigurationAccess for PortCam {
    fn read_word(&self, device_function: DeviceFunction, register_offset: u8) -> u32 {
        // SAFETY: 0xCF8/0xCFC are the PC's PCI configuration ports; selecting a register and
        // reading it has no effect on memory hv uses (configuration reads have no side
        // effects on the devices QEMU emulates here).
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(address(device_function, register_offset));
            Port::<u32>::new(CONFIG_DATA).read()
        }
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        // SAFETY: as in read_word; the writes virtio-drivers makes (command register, BAR
        // sizing, which it restores) change only the device's decoding, whose BARs hv
        // checks and maps before any access.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(address(device_function, register_offset));
            Port::<u32>::new(CONFIG_DATA).write(data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Self
    }
}

/// Page-table entry bits.
const PRESENT: u64 = 1;
const HUGE: u64 = 0x80;
/// Page-level write-through and cache-disable: with PAT's default this is UC.
const PWT_PCD: u64 = 0x18;
/// The physical-address bits of an entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why a BAR's pages could not be made uncached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UncacheError {
    /// The boot tables do not map the page with a 2 MiB entry (the guard page's split page,
    /// or no mapping at all).
    NotA2MiBPage(u64),
}

/// Makes the 2 MiB pages of `window` uncached in the live page tables (the boot identity
/// map: PML4 -> PDPT -> PD of 2 MiB pages, as pvh's entry stub builds it).
pub fn uncache(window: &BarWindow) -> Result<(), UncacheError> {
    let (frame, _) = x86_64::registers::control::Cr3::read();
    let pml4 = frame.start_address().as_u64();
    let mut page = window.first_page;
    while page < window.end_page {
        // SAFETY: CR3 holds the boot PML4, identity mapped (it lies in hv's image); its
        // entries are aligned u64s, indices masked to 0..512.
        let pml4e = unsafe {
            core::ptr::read_volatile((pml4 as *const u64).add(((page >> 39) & 511) as usize))
        };
        if pml4e & PRESENT == 0 {
            return Err(UncacheError::NotA2MiBPage(page));
        }
        let pdpt = pml4e & ADDR_MASK;
        // SAFETY: as above: a present PML4 entry of the boot tables points at its PDPT.
        let pdpte = unsafe {
            core::ptr::read_volatile((pdpt as *const u64).add(((page >> 30) & 511) as usize))
        };
        if pdpte & PRESENT == 0 || pdpte & HUGE != 0 {
            return Err(UncacheError::NotA2MiBPage(page));
        }
        let pd = (pdpte & ADDR_MASK) as *mut u64;
        let index = ((page >> 21) & 511) as usize;
        // SAFETY: a present, non-huge PDPT entry of the boot tables points at a page
        // directory (identity mapped, in hv's image); one CPU, interrupts off: nothing else
        // reads or writes the entry meanwhile.
        let pde = unsafe { core::ptr::read_volatile(pd.add(index)) };
        if pde & PRESENT == 0 || pde & HUGE == 0 || pde & ADDR_MASK & !(MAP_PAGE - 1) != page {
            return Err(UncacheError::NotA2MiBPage(page));
        }
        // SAFETY: as above; the entry keeps its frame and rights, only its caching changes,
        // and the checks made sure the page holds no RAM (check_bar), so no cached data of
        // hv's is lost.
        unsafe { core::ptr::write_volatile(pd.add(index), pde | PWT_PCD) };
        page += MAP_PAGE;
    }
    x86_64::instructions::tlb::flush_all();
    Ok(())
}
