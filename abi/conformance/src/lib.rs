//! ABI conformance: compares the `abi` crate with Xen's public C headers (Debian `libxen-dev`).
//!
//! `spec/*.spec` (one file per `abi` module) list what to compare; the format and the naming
//! rules that pair C and Rust names are in [`spec`]. The build script turns the specs into a
//! table ([`table`]); the test `tests/conformance.rs` evaluates the Rust side against `abi`, the
//! C side with a generated program ([`c_side`]), and compares them ([`mod@compare`]).
//!
//! [`coverage`] keeps the specs complete: every public constant, `#[repr(C)]` type and type
//! alias of `abi` must be checked by a spec line or listed, with the reason, in
//! `abi/conformance/unchecked.txt`.
//!
//! An item is one constant value, struct size, struct alignment, field offset, field size or
//! ring size. The C side is compiled with `-D__XEN_INTERFACE_VERSION__=0x00040e00` and without
//! `__XEN_TOOLS__`. Missing headers fail the test with the `apt-get install` command to run.
//!
//! Spec extensions beyond the basic format: a struct or union name ending in `_t` is spelled as
//! a typedef in C (for anonymous structs such as `xen_uuid_t`); an explicit Rust name containing
//! `::` is taken relative to `abi::` instead of the current module.

pub mod c_side;
pub mod compare;
pub mod coverage;
pub mod spec;
pub mod table;
pub mod version;

pub use c_side::{CError, CSide, evaluate};
pub use compare::{Outcome, compare, report_lines, summary_line};
pub use spec::Kind;
pub use table::{Compiler, Entry, Header, Table};

/// The size of the type a field-projection function points to; used by [`field_size!`].
pub fn size_of_pointee<T, F>(_projection: fn(*const T) -> *const F) -> u64 {
    core::mem::size_of::<F>() as u64
}

/// The size of a (possibly nested) field, as `u64`: `field_size!(abi::m::Type, a.b)`.
///
/// Works for fields of unions and packed structs too, because it never forms a reference or
/// reads memory: only the type of the projection matters.
#[macro_export]
macro_rules! field_size {
    ($type:ty, $($field:tt)+) => {
        $crate::size_of_pointee::<$type, _>(|pointer| {
            // SAFETY: the closure is never called (size_of_pointee only uses its type), so the
            // pointer is never dereferenced.
            unsafe { ::core::ptr::addr_of!((*pointer).$($field)+) }
        })
    };
}
