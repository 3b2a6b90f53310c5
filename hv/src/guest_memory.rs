//! Guest-physical memory access: the trait the page walk, the domain builder and the
//! hypercall handlers use, implemented by the kernel over the nested page tables and, for
//! host tests, by [`VecPhys`].
//!
//! Every address here is a guest allegation: implementations check the whole range and
//! answer an error instead of touching memory the domain does not own.

/// Why a guest-physical access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysError {
    /// No memory of the domain at this guest-physical address.
    Unmapped(u64),
    /// The page at this guest-physical address is read-only to the domain.
    ReadOnly(u64),
}

/// Reads and writes a domain's guest-physical memory.
pub trait GuestPhys {
    /// Copies `buf.len()` bytes starting at `gpa` into `buf`. The range may cross pages;
    /// on error nothing useful is in `buf`.
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PhysError>;
    /// Copies `data` to guest-physical `gpa`. The range may cross pages; on error a prefix
    /// may have been written (as Xen's copy_to_guest may leave a partial copy).
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), PhysError>;

    /// Reads a little-endian `u64` at `gpa`.
    fn read_u64(&self, gpa: u64) -> Result<u64, PhysError> {
        let mut b = [0u8; 8];
        self.read_phys(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a little-endian `u32` at `gpa`.
    fn read_u32(&self, gpa: u64) -> Result<u32, PhysError> {
        let mut b = [0u8; 4];
        self.read_phys(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

/// A flat, writable guest-physical range backed by a `Vec` (host tests only).
#[cfg(not(target_os = "none"))]
#[derive(Clone, Debug)]
pub struct VecPhys {
    /// Guest-physical address of `bytes[0]`.
    pub base: u64,
    /// The memory.
    pub bytes: Vec<u8>,
}

#[cfg(not(target_os = "none"))]
impl VecPhys {
    /// `len` zero bytes at guest-physical `base`.
    pub fn new(base: u64, len: usize) -> Self {
        Self {
            base,
            bytes: vec![0; len],
        }
    }

    fn range(&self, gpa: u64, len: usize) -> Result<core::ops::Range<usize>, PhysError> {
        let start = gpa.checked_sub(self.base).ok_or(PhysError::Unmapped(gpa))?;
        let start = usize::try_from(start).map_err(|_| PhysError::Unmapped(gpa))?;
        let end = start.checked_add(len).ok_or(PhysError::Unmapped(gpa))?;
        if end > self.bytes.len() {
            let first_bad = self.base + self.bytes.len().max(start) as u64;
            return Err(PhysError::Unmapped(first_bad));
        }
        Ok(start..end)
    }
}

#[cfg(not(target_os = "none"))]
impl GuestPhys for VecPhys {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PhysError> {
        let r = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), PhysError> {
        let r = self.range(gpa, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_phys_checks_bounds() {
        let mut m = VecPhys::new(0x1000, 0x2000);
        assert!(m.write_phys(0x1ff8, &7u64.to_le_bytes()).is_ok());
        assert_eq!(m.read_u64(0x1ff8), Ok(7));
        assert_eq!(m.read_u32(0xfff), Err(PhysError::Unmapped(0xfff)));
        assert!(m.read_u64(0x2ffc).is_err());
        assert!(m.write_phys(u64::MAX - 2, &[0; 8]).is_err());
    }
}
