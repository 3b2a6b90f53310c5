//! What a hypercall may touch: the guest's memory through its page tables, the nested
//! tables (to place shared_info), the memory map and the console backend.

use crate::frames::Frames;
use crate::guest::phys::PAGE_SIZE;
use crate::guest::walk::{self, PagingState};
use crate::hypercall::{E820, GuestFault, HypercallEnv};

use super::super::console::Console;
use super::super::memory::{DomainMemory, HostTables};

/// What a hypercall may touch.
pub(super) struct Env<'a> {
    pub(super) mem: &'a mut DomainMemory,
    pub(super) frames: &'a mut Frames,
    pub(super) paging: PagingState,
    pub(super) shared_info: u64,
    pub(super) shared_info_gfn: &'a mut Option<u64>,
    pub(super) e820: &'a [E820],
    pub(super) console: &'a mut Console,
}

impl HypercallEnv for Env<'_> {
    fn read_guest(&self, va: u64, buf: &mut [u8]) -> Result<(), GuestFault> {
        walk::copy_from_guest(&*self.mem, &self.paging, va, buf).map_err(|_| GuestFault)
    }

    fn write_guest(&mut self, va: u64, data: &[u8]) -> Result<(), GuestFault> {
        walk::copy_to_guest(self.mem, &self.paging, va, data).map_err(|_| GuestFault)
    }

    fn map_shared_info(&mut self, gfn: u64) -> Result<(), i64> {
        let einval = -i64::from(abi::errno::XEN_EINVAL);
        let gpa = gfn.checked_mul(PAGE_SIZE).ok_or(einval)?;
        if gpa >= crate::npt::GPA_LIMIT {
            return Err(einval);
        }
        let enomem = -i64::from(abi::errno::XEN_ENOMEM);
        let mut t = HostTables {
            frames: self.frames,
        };
        if let Some(old) = *self.shared_info_gfn {
            self.mem
                .npt
                .unmap_4k(&mut t, old * PAGE_SIZE)
                .map_err(|_| enomem)?;
        }
        self.mem
            .npt
            .map_4k(&mut t, gpa, self.shared_info, true)
            .map_err(|_| enomem)?;
        *self.shared_info_gfn = Some(gfn);
        Ok(())
    }

    fn e820(&self) -> &[E820] {
        self.e820
    }

    fn console_notify(&mut self) {
        self.console.drain();
    }
}
