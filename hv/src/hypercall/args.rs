//! Typed copies of hypercall arguments between guest memory and `abi`'s types, over
//! [`HypercallEnv`]'s checked guest-memory copy (Xen's `copy_from_guest` / `copy_to_guest`, a
//! fault answered `-EFAULT`): no decoder names a byte offset.
//!
//! - [`read_struct`] copies a [`Plain`] struct in (padding allowed: its bytes are dropped);
//! - [`write_struct`] copies an [`Unpadded`] struct back whole (Xen's `copy_to_guest(arg, &op,
//!   1)`);
//! - [`write_field!`] copies one field of a struct with C padding back at its `offset_of!`
//!   (Xen's `copy_field_to_guest`), leaving the guest's other bytes as they were;
//! - [`set_field!`] places one field in a byte image of such a struct, for a struct written
//!   whole with its padding zero (as Xen copies its own zero-initialised copy).
//!
//! The macros type-check the value against the field, so a wrong type does not compile.

use core::mem::size_of;

use abi::wire::{Plain, Unpadded};

use super::{GuestFault, HypercallEnv};

/// The largest argument struct read in one piece (Xen's largest here is 48 bytes).
const MAX_ARG: usize = 64;

/// `va` if `len` bytes from it stay below 2^64: a guest buffer that would cross it (or wrap to
/// address 0) is never reached, whatever the guest maps at either end; the copy faults
/// (`-EFAULT`) and nothing is written.
pub(crate) fn in_reach(va: u64, len: usize) -> Result<u64, GuestFault> {
    va.checked_add(len as u64).map(|_| va).ok_or(GuestFault)
}

/// Xen's `copy_from_guest` of one `T` at guest-virtual `va`.
pub(crate) fn read_struct<T: Plain>(env: &impl HypercallEnv, va: u64) -> Result<T, GuestFault> {
    const { assert!(size_of::<T>() <= MAX_ARG) };
    let mut buf = [0u8; MAX_ARG];
    let bytes = &mut buf[..size_of::<T>()];
    env.read_guest(in_reach(va, bytes.len())?, bytes)?;
    T::from_bytes(bytes).ok_or(GuestFault)
}

/// Xen's `copy_to_guest` of one padding-free `T` at guest-virtual `va`.
pub(crate) fn write_struct<T: Unpadded>(
    env: &mut impl HypercallEnv,
    va: u64,
    value: &T,
) -> Result<(), GuestFault> {
    let bytes = value.as_bytes();
    env.write_guest(in_reach(va, bytes.len())?, bytes)
}

/// The guest-virtual address of element `index` of an array of `T` at `base`, if the whole
/// element lies below 2^64 (else the copy faults).
pub(crate) fn element_va<T>(base: u64, index: u64) -> Result<u64, GuestFault> {
    let va = index
        .checked_mul(size_of::<T>() as u64)
        .and_then(|off| base.checked_add(off))
        .ok_or(GuestFault)?;
    in_reach(va, size_of::<T>())
}

/// Xen's `copy_field_to_guest`: `write_field!(env, va, Type, field.path, value)` writes
/// `value` (which must have the field's type) at the field's offset in the `Type` at `va`.
/// Evaluates to `Result<(), GuestFault>`.
macro_rules! write_field {
    ($env:expr, $va:expr, $ty:ty, $($path:ident).+, $value:expr) => {{
        let value = $value;
        let _type_check = |s: &mut $ty| s.$($path).+ = value;
        let at = core::mem::offset_of!($ty, $($path).+) as u64;
        // The whole struct must lie below 2^64, not only the field.
        match $crate::hypercall::args::in_reach($va, core::mem::size_of::<$ty>()) {
            Ok(va) => $crate::hypercall::HypercallEnv::write_guest(
                $env,
                va + at,
                abi::wire::Unpadded::as_bytes(&value),
            ),
            Err(e) => Err(e),
        }
    }};
}
pub(crate) use write_field;

/// `set_field!(image, Type, field.path, value)`: places `value` (which must have the field's
/// type) at the field's offset in `image`, a `[u8; size_of::<Type>()]`.
macro_rules! set_field {
    ($image:expr, $ty:ty, $($path:ident).+, $value:expr) => {{
        let value = $value;
        let _type_check = |s: &mut $ty| s.$($path).+ = value;
        let image: &mut [u8; core::mem::size_of::<$ty>()] = &mut $image;
        let at = core::mem::offset_of!($ty, $($path).+);
        let bytes = abi::wire::Unpadded::as_bytes(&value);
        image[at..at + bytes.len()].copy_from_slice(bytes);
    }};
}
pub(crate) use set_field;

/// `get_field!(image, Type, field.path)`: the field's value in `image`, a
/// `[u8; size_of::<Type>()]` copied from the guest; the way to read a union member whose
/// bytes a [`Plain`] struct copy cannot hand out safely (`gnttab_copy_ptr.u`).
macro_rules! get_field {
    ($image:expr, $ty:ty, $($path:ident).+) => {{
        let image: &[u8; core::mem::size_of::<$ty>()] = &$image;
        $crate::hypercall::args::field_from_image(
            image,
            core::mem::offset_of!($ty, $($path).+),
            |s: &mut $ty, v| s.$($path).+ = v,
        )
    }};
}
pub(crate) use get_field;

/// The `F` at byte `at` of `image`; `field` only names the field (its type is `F`).
pub(crate) fn field_from_image<T, F: Plain>(
    image: &[u8],
    at: usize,
    field: impl FnOnce(&mut T, F),
) -> F {
    let _ = field;
    image
        .get(at..at + size_of::<F>())
        .and_then(F::from_bytes)
        .unwrap_or_else(F::zeroed)
}
