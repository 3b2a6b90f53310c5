//! [`HostFrame`]: a 4 KiB page hv allocated for a domain and shares with it (the console and
//! xenstore rings), reached only by volatile loads and stores masked to the page.

/// A host page hv shares with a guest: identity mapped, freed only when its domain is torn down (after its last use), and written by the guest
/// at any time, so every access is a volatile load or store inside the page (a value read is
/// an allegation the caller checks).
pub struct HostFrame(u64);

impl HostFrame {
    /// The page at host-physical (= hv-virtual) address `addr`.
    ///
    /// # Safety
    /// `addr` is a 4 KiB page hv allocated and keeps for as long as this value is used; hv
    /// reaches it only through `HostFrame`s (the guest may write it concurrently).
    pub unsafe fn new(addr: u64) -> Self {
        Self(addr)
    }

    fn at(&self, off: usize) -> *mut u8 {
        // `off & 0xfff` stays inside the 4 KiB page.
        (self.0 as *mut u8).wrapping_add(off & 0xfff)
    }

    /// The aligned u32 at `off` (rounded down to 4, masked to the page).
    pub fn load_u32(&self, off: usize) -> u32 {
        // SAFETY: an aligned u32 inside the page `new`'s contract keeps alive; the guest may
        // write it concurrently, so a volatile read yields some value.
        unsafe { core::ptr::read_volatile(self.at(off & 0xffc).cast::<u32>()) }
    }

    /// Stores the aligned u32 at `off` (rounded down to 4, masked to the page).
    pub fn store_u32(&mut self, off: usize, value: u32) {
        // SAFETY: as in load_u32.
        unsafe { core::ptr::write_volatile(self.at(off & 0xffc).cast::<u32>(), value) };
    }

    /// The byte at `off` (masked to the page).
    pub fn load_u8(&self, off: usize) -> u8 {
        // SAFETY: as in load_u32, for any byte inside the page.
        unsafe { core::ptr::read_volatile(self.at(off)) }
    }

    /// Stores the byte at `off` (masked to the page).
    pub fn store_u8(&mut self, off: usize, value: u8) {
        // SAFETY: as in load_u8.
        unsafe { core::ptr::write_volatile(self.at(off), value) };
    }
}
