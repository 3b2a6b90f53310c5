//! A domain's memory as `hv` reaches it: guest-physical access ([`phys`]) and the walk of the
//! guest's own page tables that turns a hypercall's guest-virtual buffer into guest-physical
//! pages ([`walk`], Xen's `copy_from_guest` / `copy_to_guest`).

pub mod phys;
pub mod walk;

#[cfg(test)]
mod tests;
