//! The toolstack's hypercalls, `sysctl` and `domctl`, as Xen 4.17 answers them for a domU
//! (`do_sysctl`, `do_domctl` and the dummy XSM policy of a release build): the argument is
//! copied in (`-EFAULT`), its interface version checked (`-EACCES`), the target domain
//! looked up (`domctl`: `-ESRCH`), and then the caller is not privileged (`-EPERM`).

use abi::errno::{XEN_EACCES, XEN_EINVAL, XEN_EPERM, XEN_ESRCH};
use abi::xen::{DOMID_FIRST_RESERVED, DOMID_INVALID, DOMID_IO};

use abi::wire::Plain;

use super::{DomainParams, EFAULT, HypercallEnv, Outcome, done, err};

/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub const SYSCTL_INTERFACE_VERSION: u32 = 0x15;
/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub const DOMCTL_INTERFACE_VERSION: u32 = 0x15;
/// `sizeof(struct xen_sysctl)`: `cmd`, `interface_version` and a 128-byte union.
const SYSCTL_BYTES: usize = 136;
/// `sizeof(struct xen_domctl)`: `cmd`, `interface_version`, `domain`, padding and a 128-byte
/// union.
const DOMCTL_BYTES: usize = 144;

const XEN_DOMCTL_CREATEDOMAIN: u32 = 1;
const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
const XEN_DOMCTL_ASSIGN_DEVICE: u32 = 37;
const XEN_DOMCTL_TEST_ASSIGN_DEVICE: u32 = 45;
const XEN_DOMCTL_DEASSIGN_DEVICE: u32 = 47;
const XEN_DOMCTL_VM_EVENT_OP: u32 = 56;

/// `cmd` and `interface_version`, the first two `uint32_t` of both structs.
fn cmd_and_version(raw: &[u8]) -> [u32; 2] {
    raw.get(..8)
        .and_then(<[u32; 2]>::from_bytes)
        .unwrap_or_default()
}

/// `xen_domctl.domain`, the `domid_t` after `cmd` and `interface_version`.
fn domctl_domain(raw: &[u8]) -> u16 {
    raw.get(8..10).and_then(u16::from_bytes).unwrap_or_default()
}

/// `HYPERVISOR_sysctl` from a domU.
pub(super) fn sysctl(env: &impl HypercallEnv, arg: u64) -> Outcome {
    let mut raw = [0u8; SYSCTL_BYTES];
    if env.read_guest(arg, &mut raw).is_err() {
        return done(EFAULT);
    }
    if cmd_and_version(&raw)[1] != SYSCTL_INTERFACE_VERSION {
        return done(err(XEN_EACCES));
    }
    done(err(XEN_EPERM))
}

/// `HYPERVISOR_domctl` from a domU. hv's domains are domain 0 and the caller.
pub(super) fn domctl(env: &impl HypercallEnv, params: &DomainParams, arg: u64) -> Outcome {
    let mut raw = [0u8; DOMCTL_BYTES];
    if env.read_guest(arg, &mut raw).is_err() {
        return done(EFAULT);
    }
    let [cmd, version] = cmd_and_version(&raw);
    if version != DOMCTL_INTERFACE_VERSION {
        return done(err(XEN_EACCES));
    }
    let domain = domctl_domain(&raw);
    let exists = |d: u16| d == 0 || d == params.domid;
    let found = match cmd {
        XEN_DOMCTL_ASSIGN_DEVICE | XEN_DOMCTL_DEASSIGN_DEVICE if domain == DOMID_IO => true,
        XEN_DOMCTL_ASSIGN_DEVICE | XEN_DOMCTL_DEASSIGN_DEVICE if domain == DOMID_INVALID => false,
        XEN_DOMCTL_TEST_ASSIGN_DEVICE | XEN_DOMCTL_VM_EVENT_OP if domain == DOMID_INVALID => true,
        XEN_DOMCTL_CREATEDOMAIN => true,
        // The first domain at or above the id (xsm_getdomaininfo then denies it).
        XEN_DOMCTL_GETDOMAININFO if !exists(domain) => {
            if domain >= DOMID_FIRST_RESERVED {
                return done(err(XEN_EINVAL));
            }
            domain <= params.domid
        }
        _ => exists(domain),
    };
    if !found {
        return done(err(XEN_ESRCH));
    }
    done(err(XEN_EPERM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_versions_are_xen_4_17s() {
        // xen/include/public/{sysctl,domctl}.h of Xen 4.17.
        assert_eq!(
            (SYSCTL_INTERFACE_VERSION, DOMCTL_INTERFACE_VERSION),
            (0x15, 0x15)
        );
    }
}
