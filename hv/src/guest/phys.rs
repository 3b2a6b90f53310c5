//! Guest-physical memory behind a small trait: the kernel implements it over the domain's
//! nested page tables, host tests over a map of pages.

/// The size of a page (4 KiB), the unit of every guest-physical access.
pub const PAGE_SIZE: u64 = 4096;

/// A guest-physical address that is not memory the domain owns (not RAM, not a special
/// page), or an access that would cross into such memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysError {
    /// The first guest-physical address that could not be reached.
    pub gpa: u64,
}

/// Reads and writes a domain's guest-physical memory.
///
/// Callers in this crate never pass a range that crosses a 4 KiB page boundary (the walk and
/// the builder split at pages), so an implementation needs one nested-table lookup per call.
/// An implementation must answer [`PhysError`] for anything the domain does not own; it must
/// not panic on any address.
pub trait GuestPhys {
    /// Reads `buf.len()` bytes at `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PhysError>;
    /// Writes `data` at `gpa`.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), PhysError>;
}

/// Calls `f(gpa, offset, len)` for each page-sized piece of `[gpa, gpa + len)`, in order;
/// stops at the first error. An address range that wraps around fails at its start.
pub fn for_each_page<E>(
    gpa: u64,
    len: usize,
    mut f: impl FnMut(u64, usize, usize) -> Result<(), E>,
    wrap: impl FnOnce(u64) -> E,
) -> Result<(), E> {
    if gpa.checked_add(len as u64).is_none() {
        return Err(wrap(gpa));
    }
    let mut done = 0usize;
    while done < len {
        let at = gpa + done as u64;
        // At most PAGE_SIZE (4096): fits any usize.
        #[allow(clippy::cast_possible_truncation, reason = "at most 4096")]
        let room = (PAGE_SIZE - at % PAGE_SIZE) as usize;
        let n = room.min(len - done);
        f(at, done, n)?;
        done += n;
    }
    Ok(())
}

/// Writes `data` at `gpa`, split at page boundaries.
pub fn write_bytes(mem: &mut impl GuestPhys, gpa: u64, data: &[u8]) -> Result<(), PhysError> {
    for_each_page(
        gpa,
        data.len(),
        |at, off, n| mem.write(at, &data[off..off + n]),
        |gpa| PhysError { gpa },
    )
}

/// Reads into `buf` from `gpa`, split at page boundaries.
pub fn read_bytes(mem: &impl GuestPhys, gpa: u64, buf: &mut [u8]) -> Result<(), PhysError> {
    let len = buf.len();
    for_each_page(
        gpa,
        len,
        |at, off, n| mem.read(at, &mut buf[off..off + n]),
        |gpa| PhysError { gpa },
    )
}
