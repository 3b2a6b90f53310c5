//! The xenstore keys Xen's toolstack (`xl` through libxl 4.17) writes for a new domU, and
//! domain 0's own home, so a guest finds what it finds under stock Xen and is refused where
//! it is refused there.
//!
//! Written as domain 0 writes them (nodes created by domain 0 inherit their parent's
//! permissions, as in C xenstored), following `libxl__domain_make`, `libxl__build_post` and
//! `libxl__device_generic_add` for the console. Permission lists, in xenstore's text form:
//! the home and `/vm/<uuid>` are `n0 r<domid>` (read-only to the domain), `data`, `drivers`,
//! `feature`, `attr`, `error` and `control/shutdown` (and the other control keys the guest
//! answers) are `n<domid>` (the domain owns them); `device` and `control` are read-only to
//! the domain; the console's directory is `n<domid> r0` and its `port`/`ring-ref` are
//! `n0 r<domid>`. Not written: `/libxl/<domid>` and `/vss/<uuid>` (toolstack-private, no
//! access for the domain), `cpu/*`, `image/*` and `start_time` (nothing here reads them).
//!
//! Several domains share one [`Store`]: each gets its own home and `/vm/<uuid>` (hv's
//! UUIDs come from [`domain_uuid`], one per domain id), and [`destroy_domu`] takes one domain
//! out again as `xl destroy` does, leaving the others' nodes, watches and quotas untouched.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xenstored::{Access, Domid, Perm, Store, XsdError};

/// What the toolstack knows of a new domain.
#[derive(Clone, Copy, Debug)]
pub struct DomainInfo<'a> {
    /// The domain id.
    pub domid: Domid,
    /// `name` from the configuration.
    pub name: &'a str,
    /// The domain's UUID in its text form (xl's `uuid`; hv passes [`uuid_text`] of
    /// [`domain_uuid`], the bytes its `XENVER_guest_handle` returns).
    pub uuid: &'a str,
    /// `memory` in KiB (static-max and target).
    pub memory_kib: u64,
    /// The domain's end of the store channel (`HVM_PARAM_STORE_EVTCHN`).
    pub store_port: u32,
    /// The store page's frame (`HVM_PARAM_STORE_PFN`).
    pub store_gfn: u64,
    /// The domain's end of the console channel.
    pub console_port: u32,
    /// The console page's frame.
    pub console_gfn: u64,
}

fn perms(list: &[(Domid, Access)]) -> Vec<Perm> {
    list.iter()
        .map(|&(domid, access)| Perm { domid, access })
        .collect()
}

/// Writes domain 0's home (`/local/domain/0`, owned by domain 0, no access for others).
pub fn write_dom0(store: &mut Store) -> Result<(), XsdError> {
    store.write("/local/domain/0/name", b"Domain-0")?;
    store.write("/local/domain/0/domid", b"0")?;
    store.set_perms("/local/domain/0", perms(&[(0, Access::None)]))
}

/// Writes the keys of a new domU and gives it a connection ([`Store::introduce`]).
pub fn write_domu(store: &mut Store, d: &DomainInfo<'_>) -> Result<(), XsdError> {
    let id = d.domid;
    let home = Store::home(id);
    let vm = format!("/vm/{}", d.uuid);
    let ro = perms(&[(0, Access::None), (id, Access::Read)]);
    let rw = perms(&[(id, Access::None)]);

    // libxl__domain_make.
    let _ = store.rm(&home);
    store.mkdir(&home)?;
    store.set_perms(&home, ro.clone())?;
    let _ = store.rm(&vm);
    store.mkdir(&vm)?;
    store.set_perms(&vm, ro.clone())?;
    store.write(&format!("{home}/vm"), vm.as_bytes())?;
    store.write(&format!("{home}/name"), d.name.as_bytes())?;
    store.write(&format!("{vm}/name"), d.name.as_bytes())?;
    store.write(&format!("{vm}/uuid"), d.uuid.as_bytes())?;
    store.write(
        &format!("{home}/control/platform-feature-multiprocessor-suspend"),
        b"1",
    )?;
    store.write(
        &format!("{home}/control/platform-feature-xs_reset_watches"),
        b"1",
    )?;
    for dir in ["device", "control"] {
        let p = format!("{home}/{dir}");
        store.mkdir(&p)?;
        store.set_perms(&p, ro.clone())?;
    }
    for key in [
        "control/shutdown",
        "control/feature-poweroff",
        "control/feature-reboot",
        "control/feature-suspend",
        "control/sysrq",
        "data",
        "drivers",
        "feature",
        "attr",
        "error",
    ] {
        let p = format!("{home}/{key}");
        store.mkdir(&p)?;
        store.set_perms(&p, rw.clone())?;
    }

    // libxl__device_console_add (console 0: the frontend is `<home>/console`).
    let fe = format!("{home}/console");
    let be = format!("/local/domain/0/backend/console/{id}/0");
    let fe_perms = perms(&[(id, Access::None), (0, Access::Read)]);
    let be_perms = perms(&[(0, Access::None), (id, Access::Read)]);
    let _ = store.rm(&be);
    store.mkdir(&be)?;
    store.set_perms(&be, be_perms.clone())?;
    let id_text = format!("{id}");
    for (k, v) in [
        ("frontend", fe.as_str()),
        ("frontend-id", id_text.as_str()),
        ("online", "1"),
        ("state", "1"),
        ("protocol", "vt100"),
    ] {
        store.write(&format!("{be}/{k}"), v.as_bytes())?;
    }
    let _ = store.rm(&fe);
    store.mkdir(&fe)?;
    store.set_perms(&fe, fe_perms.clone())?;
    store.write(&format!("{fe}/backend"), be.as_bytes())?;
    for (k, v) in [
        ("backend-id", "0"),
        ("limit", "1048576"),
        ("type", "xenconsoled"),
        ("output", "pty"),
        ("tty", ""),
    ] {
        let p = format!("{fe}/{k}");
        store.write(&p, v.as_bytes())?;
        store.set_perms(&p, fe_perms.clone())?;
    }
    let port = format!("{}", d.console_port);
    let ring = format!("{}", d.console_gfn);
    for (k, v) in [("port", &port), ("ring-ref", &ring)] {
        let p = format!("{fe}/{k}");
        store.write(&p, v.as_bytes())?;
        store.set_perms(&p, be_perms.clone())?;
    }

    // libxl__build_post.
    let mem = format!("{}", d.memory_kib);
    let store_port = format!("{}", d.store_port);
    let store_ref = format!("{}", d.store_gfn);
    let ents: [(&str, &str); 6] = [
        ("memory/static-max", &mem),
        ("memory/target", &mem),
        ("memory/videoram", "0"),
        ("domid", &id_text),
        ("store/port", &store_port),
        ("store/ring-ref", &store_ref),
    ];
    for (k, v) in ents {
        store.write(&format!("{home}/{k}"), v.as_bytes())?;
    }
    store.introduce(id);
    Ok(())
}

/// A shared page and its event channel, as the toolstack passes them to a new domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// The domain's end of the channel.
    pub port: u32,
    /// The page's frame in the domain's guest-physical space.
    pub gfn: u64,
}

/// What the toolstack knows of domain `domid`: `name` and `memory` (MiB) from its
/// configuration, `uuid` in text form ([`uuid_text`]), and its xenstore and console pages
/// and channels (`HVM_PARAM_STORE_*` and `HVM_PARAM_CONSOLE_*`). Pass the result to
/// [`write_domu`].
pub fn domain_info<'a>(
    domid: Domid,
    name: &'a str,
    uuid: &'a str,
    memory_mib: u64,
    store: Ring,
    console: Ring,
) -> DomainInfo<'a> {
    DomainInfo {
        domid,
        name,
        uuid,
        memory_kib: memory_mib.saturating_mul(1024),
        store_port: store.port,
        store_gfn: store.gfn,
        console_port: console.port,
        console_gfn: console.gfn,
    }
}

/// hv's domain 1 as xtask's xl configuration describes it (`name = "pvguest"`,
/// `memory = 128`), with its ports and frames, and the all-zero UUID that matches the
/// all-zero `XENVER_guest_handle` hv gives it so far. [`domain_info`] with
/// [`domain_uuid`] replaces it once hv runs several domains.
pub fn pvguest_info(
    store_port: u32,
    store_gfn: u64,
    console_port: u32,
    console_gfn: u64,
) -> DomainInfo<'static> {
    domain_info(
        1,
        "pvguest",
        ZERO_UUID,
        128,
        Ring {
            port: store_port,
            gfn: store_gfn,
        },
        Ring {
            port: console_port,
            gfn: console_gfn,
        },
    )
}

/// The all-zero UUID: domain 0's handle, as under Xen (and [`pvguest_info`]'s).
pub const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// The UUID hv gives domain `domid` (xl makes a random one per domain; hv has no source of
/// randomness it would trust for this and wants runs to repeat). Domain 0's is all zeros,
/// as under Xen. Any other domain's is `68760000-0000-8000-8000-00000000NNNN`, `NNNN` being
/// the domain id in hex: bytes 0-1 are `hv` in ASCII, the version nibble is 8 and the
/// variant bits `10` (an RFC 9562 version 8, "custom", UUID), so it is well formed, distinct
/// per domain id and recognisably hv's. These bytes are also the domain's
/// `XENVER_guest_handle`.
pub fn domain_uuid(domid: Domid) -> [u8; 16] {
    if domid == 0 {
        return [0; 16];
    }
    let [hi, lo] = domid.to_be_bytes();
    [b'h', b'v', 0, 0, 0, 0, 0x80, 0, 0x80, 0, 0, 0, 0, 0, hi, lo]
}

/// A UUID in its text form, as libxl prints it (`LIBXL_UUID_FMT`: lower-case hex in groups
/// of 8-4-4-4-12 digits).
pub fn uuid_text(uuid: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in uuid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Removes domain `domid`'s xenstore state as `xl destroy` does (libxl 4.17's
/// `libxl__destroy_domid`), then releases its connection as C xenstored does once Xen
/// reports the domain dead. In order, all as domain 0:
/// 1. `libxl__devices_destroy`: the console (the one device written here) is removed
///    synchronously by `libxl__device_destroy`: `libxl__xs_path_cleanup` of the frontend
///    (`<home>/console`), then of the backend (`/local/domain/0/backend/console/<domid>/0`),
///    each also removing the parents it leaves empty (empty value, no children).
/// 2. `devices_destroy_cb`: `xs_rm` of `/vm/<uuid>` (the path `<home>/vm` names, else
///    `/vm/<uuid_text>`), then of the home `/local/domain/<domid>` (`/libxl/<domid>` and
///    `<home>/hvmloader` are not written here).
/// 3. `xc_domain_destroy`; xenstored's `domain_cleanup` then drops the connection
///    ([`Store::release`]: the domain's watches, transactions, queued events and any node it
///    still owns) and fires `@releaseDomain`.
///
/// Watches on the removed nodes fire as for any `XS_RM` by domain 0. As libxl, a step that
/// fails does not stop the next ones; the first error other than `ENOENT` (the node was
/// already gone) is returned after the connection is released.
pub fn destroy_domu(store: &mut Store, domid: Domid, uuid_text: &str) -> Result<(), XsdError> {
    let mut first: Result<(), XsdError> = Ok(());
    let mut note = |r: Result<(), XsdError>| {
        if let Err(e) = r
            && e != XsdError::Enoent
            && first.is_ok()
        {
            first = Err(e);
        }
    };
    if domid == 0 {
        return Err(XsdError::Einval);
    }
    let home = Store::home(domid);
    note(path_cleanup(store, &format!("{home}/console")));
    note(path_cleanup(
        store,
        &format!("/local/domain/0/backend/console/{domid}/0"),
    ));
    let vm = store
        .read(&format!("{home}/vm"))
        .and_then(|v| String::from_utf8(v).ok())
        .filter(|v| v.starts_with("/vm/"))
        .unwrap_or_else(|| format!("/vm/{uuid_text}"));
    note(store.rm(&vm));
    note(store.rm(&home));
    store.release(domid);
    first
}

/// One disk of a domU as the toolstack announces it (xl's `disk` entry).
#[derive(Clone, Copy, Debug)]
pub struct VbdInfo<'a> {
    /// The front end's domain.
    pub domid: Domid,
    /// The devid (`virtual-device`; xvda is 51712).
    pub devid: u32,
    /// The vdev name (`dev`).
    pub vdev: &'a str,
    /// The target (`params`).
    pub params: &'a str,
    /// `access=ro`.
    pub read_only: bool,
}

/// The front end's directory of a vbd: `/local/domain/<domid>/device/vbd/<devid>`.
pub fn vbd_frontend(domid: Domid, devid: u32) -> String {
    format!("{}/device/vbd/{devid}", Store::home(domid))
}

/// The back end's directory of a vbd: `/local/domain/0/backend/vbd/<domid>/<devid>`.
pub fn vbd_backend(domid: Domid, devid: u32) -> String {
    format!("/local/domain/0/backend/vbd/{domid}/{devid}")
}

/// Writes a vbd's keys as libxl 4.17's `device_disk_add` and `libxl__device_generic_add`
/// leave them for a `phy` disk once the hotplug script ran: the back end's directory
/// `n0 r<domid>` (`frontend`, `params`, `script`, `frontend-id`, `online`, `removable`,
/// `bootable`, `state` 1, `dev`, `type`, `mode` `w`/`r`, `device-type`, `discard-enable`, and
/// the script's `physical-device`, `physical-device-path` and `hotplug-status`), the front
/// end's `n<domid> r0` (`backend`, `backend-id`, `state` 1, `virtual-device`, `device-type`,
/// `trusted`). Written before the domain runs, as xl does before unpausing it.
pub fn write_vbd(store: &mut Store, v: &VbdInfo<'_>) -> Result<(), XsdError> {
    let id = v.domid;
    let front = vbd_frontend(id, v.devid);
    let back = vbd_backend(id, v.devid);
    let mode = if v.read_only { "r" } else { "w" };
    let devid = format!("{}", v.devid);
    let frontend_id = format!("{id}");
    let back_keys = [
        ("frontend", front.as_str()),
        ("params", v.params),
        ("script", "/etc/xen/scripts/block"),
        ("frontend-id", frontend_id.as_str()),
        ("online", "1"),
        ("removable", "0"),
        ("bootable", "1"),
        ("state", "1"),
        ("dev", v.vdev),
        ("type", "phy"),
        ("mode", mode),
        ("device-type", "disk"),
        ("discard-enable", "1"),
        ("physical-device", "fe:0"),
        ("physical-device-path", v.params),
        ("hotplug-status", "connected"),
    ];
    let front_keys = [
        ("backend", back.as_str()),
        ("backend-id", "0"),
        ("state", "1"),
        ("virtual-device", devid.as_str()),
        ("device-type", "disk"),
        ("trusted", "1"),
    ];
    generic_add(store, id, (&back, &back_keys), (&front, &front_keys))
}

/// libxl's `libxl__device_generic_add`: the device's directories made afresh, the back end's
/// `n0 r<domid>` and the front end's `n<domid> r0`, each with its keys in order.
fn generic_add(
    store: &mut Store,
    domid: Domid,
    (back, back_keys): (&str, &[(&str, &str)]),
    (front, front_keys): (&str, &[(&str, &str)]),
) -> Result<(), XsdError> {
    let _ = store.rm(front);
    let _ = store.rm(back);
    store.mkdir(back)?;
    store.set_perms(back, perms(&[(0, Access::None), (domid, Access::Read)]))?;
    for (key, value) in back_keys {
        store.write(&format!("{back}/{key}"), value.as_bytes())?;
    }
    store.mkdir(front)?;
    store.set_perms(front, perms(&[(domid, Access::None), (0, Access::Read)]))?;
    for (key, value) in front_keys {
        store.write(&format!("{front}/{key}"), value.as_bytes())?;
    }
    Ok(())
}

/// Removes a vbd's back-end directory as libxl does when the domain goes (the front end's
/// goes with the domain's home), and the parents it leaves empty.
pub fn remove_vbd(store: &mut Store, domid: Domid, devid: u32) -> Result<(), XsdError> {
    path_cleanup(store, &vbd_backend(domid, devid))
}

/// One vif of a domU as the toolstack announces it (xl's `vif` entry).
#[derive(Clone, Copy, Debug)]
pub struct VifInfo<'a> {
    /// The front end's domain.
    pub domid: Domid,
    /// The devid (`handle`): the entry's index in `vif`, or its `devid=`.
    pub devid: u32,
    /// The guest's MAC (`mac=`, else [`default_mac`]).
    pub mac: [u8; 6],
    /// `bridge=` (xl's default `xenbr0`).
    pub bridge: &'a str,
    /// `mtu=`: written to the back end only if not 1500, as libxl does; the front end always
    /// gets it (read-only).
    pub mtu: u32,
}

/// libxl's `LIBXL_DEVICE_NIC_MTU_DEFAULT`.
pub const DEFAULT_MTU: u32 = 1500;

/// The MAC of a vif whose entry has none. libxl makes `00:16:3e` (Xen's OUI) followed by three
/// random bytes, the first with its top bit clear; hv, which wants runs to repeat, takes them
/// from the domain and device instead: `00:16:3e:<domid high 7 bits>:<domid low 8 bits>:
/// <devid low 8 bits>` (distinct for devids below 256 of one domain; a configured MAC may
/// still collide, which the switch refuses).
pub fn default_mac(domid: Domid, devid: u32) -> [u8; 6] {
    let [hi, lo] = domid.to_be_bytes();
    [0x00, 0x16, 0x3e, hi & 0x7f, lo, devid.to_le_bytes()[0]]
}

/// A MAC as libxl prints it (`LIBXL_MAC_FMT`: lower-case hex, `:` between octets).
pub fn mac_text(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// The front end's directory of a vif: `/local/domain/<domid>/device/vif/<devid>`.
pub fn vif_frontend(domid: Domid, devid: u32) -> String {
    format!("{}/device/vif/{devid}", Store::home(domid))
}

/// The back end's directory of a vif: `/local/domain/0/backend/vif/<domid>/<devid>`.
pub fn vif_backend(domid: Domid, devid: u32) -> String {
    format!("/local/domain/0/backend/vif/{domid}/{devid}")
}

/// Writes a vif's keys as libxl 4.17's `libxl__set_xenstore_nic` and
/// `libxl__device_generic_add` leave them for a PVH domU once the `vif-bridge` hotplug script
/// ran: the back end's directory `n0 r<domid>` (`frontend`, `frontend-id`, `online` 1,
/// `state` 1, `script`, `mac`, `mtu` only if not 1500, `bridge`, `handle`, `type` `vif`, and
/// the script's `hotplug-status` `connected`), the front end's `n<domid> r0` (`backend`,
/// `backend-id` 0, `state` 1, `handle`, `mac`, `trusted` 1) with its read-only `mtu`
/// (`n0 r<domid>`, libxl's `ro_front`). Not written: `vifname`, `ip`, `rate`, `gatewaydev`
/// (hv's configs have none of them here), and the COLO keys.
pub fn write_vif(store: &mut Store, v: &VifInfo<'_>) -> Result<(), XsdError> {
    let id = v.domid;
    let front = vif_frontend(id, v.devid);
    let back = vif_backend(id, v.devid);
    let frontend_id = format!("{id}");
    let handle = format!("{}", v.devid);
    let mac = mac_text(&v.mac);
    let mtu = format!("{}", v.mtu);
    let mut keys: Vec<(&str, &str)> = alloc::vec![
        ("frontend", front.as_str()),
        ("frontend-id", frontend_id.as_str()),
        ("online", "1"),
        ("state", "1"),
        ("script", "/etc/xen/scripts/vif-bridge"),
        ("mac", mac.as_str()),
    ];
    if v.mtu != DEFAULT_MTU {
        keys.push(("mtu", mtu.as_str()));
    }
    keys.extend([
        ("bridge", v.bridge),
        ("handle", handle.as_str()),
        ("type", "vif"),
        ("hotplug-status", "connected"),
    ]);
    let front_keys = [
        ("backend", back.as_str()),
        ("backend-id", "0"),
        ("state", "1"),
        ("handle", handle.as_str()),
        ("mac", mac.as_str()),
        ("trusted", "1"),
    ];
    generic_add(store, id, (&back, &keys), (&front, &front_keys))?;
    let p = format!("{front}/mtu");
    store.write(&p, mtu.as_bytes())?;
    store.set_perms(&p, perms(&[(0, Access::None), (id, Access::Read)]))?;
    Ok(())
}

/// Removes a vif's back-end directory as libxl does when the domain goes (the front end's
/// goes with the domain's home), and the parents it leaves empty.
pub fn remove_vif(store: &mut Store, domid: Domid, devid: u32) -> Result<(), XsdError> {
    path_cleanup(store, &vif_backend(domid, devid))
}

/// libxl's `libxl__xs_path_cleanup`: removes `path` (a missing node whose parent exists is
/// fine, as for `XS_RM`), then each parent that is left with an empty value and no
/// children, stopping at the first that is not.
fn path_cleanup(store: &mut Store, path: &str) -> Result<(), XsdError> {
    store.rm(path)?;
    let mut at = path;
    while let Some((parent, _)) = at.rsplit_once('/') {
        if parent.is_empty() {
            break;
        }
        let empty = store.read(parent).is_some_and(|v| v.is_empty())
            && store.directory(parent).is_some_and(|c| c.is_empty());
        if !empty {
            break;
        }
        store.rm(parent)?;
        at = parent;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::io::xs_wire::{XS_DIRECTORY, XS_READ, XS_TRANSACTION_START, XS_WATCH, XS_WRITE};
    use std::collections::{BTreeMap, BTreeSet};

    fn text(p: &[Perm]) -> String {
        p.iter()
            .map(|p| format!("{p}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn built() -> Store {
        let mut s = Store::new();
        write_dom0(&mut s).unwrap();
        write_domu(&mut s, &pvguest_info(1, 0xfeffc, 2, 0xfefff)).unwrap();
        s
    }

    fn req(s: &mut Store, conn: Domid, t: u32, parts: &[&[u8]]) -> Result<Vec<u8>, XsdError> {
        let mut payload = Vec::new();
        for p in parts {
            payload.extend_from_slice(p);
        }
        s.handle(conn, t, 0, &payload)
    }

    #[test]
    fn keys_and_permissions_as_xl_leaves_them() {
        let s = built();
        assert_eq!(s.read("/local/domain/1/domid").unwrap(), b"1");
        assert_eq!(s.read("/local/domain/1/name").unwrap(), b"pvguest");
        assert_eq!(
            s.read("/local/domain/1/vm").unwrap(),
            format!("/vm/{ZERO_UUID}").as_bytes()
        );
        assert_eq!(
            s.read(&format!("/vm/{ZERO_UUID}/name")).unwrap(),
            b"pvguest"
        );
        assert_eq!(s.read("/local/domain/1/memory/target").unwrap(), b"131072");
        assert_eq!(
            s.read("/local/domain/1/console/ring-ref").unwrap(),
            b"1044479"
        );
        assert_eq!(s.read("/local/domain/1/console/port").unwrap(), b"2");
        assert_eq!(
            s.read("/local/domain/1/store/ring-ref").unwrap(),
            b"1044476"
        );
        assert_eq!(text(&s.perms("/local/domain/1").unwrap()), "n0 r1");
        assert_eq!(text(&s.perms("/local/domain/1/domid").unwrap()), "n0 r1");
        assert_eq!(text(&s.perms("/local/domain/1/data").unwrap()), "n1");
        assert_eq!(text(&s.perms("/local/domain/1/device").unwrap()), "n0 r1");
        assert_eq!(text(&s.perms("/local/domain/1/console").unwrap()), "n1 r0");
        assert_eq!(
            text(&s.perms("/local/domain/1/console/port").unwrap()),
            "n0 r1"
        );
        assert_eq!(text(&s.perms("/local/domain/0").unwrap()), "n0");
        assert!(s.is_introduced(1));
    }

    #[test]
    fn vbd_keys_as_libxl_writes_them_readable_by_their_owners_only() {
        let mut s = built();
        let v = VbdInfo {
            domid: 1,
            devid: 51712,
            vdev: "xvda",
            params: "/d/a.img",
            read_only: true,
        };
        write_vbd(&mut s, &v).unwrap();
        let back = "/local/domain/0/backend/vbd/1/51712";
        let front = "/local/domain/1/device/vbd/51712";
        assert_eq!(
            s.read(&format!("{back}/frontend")).unwrap(),
            front.as_bytes()
        );
        assert_eq!(s.read(&format!("{back}/frontend-id")).unwrap(), b"1");
        assert_eq!(s.read(&format!("{back}/mode")).unwrap(), b"r");
        assert_eq!(s.read(&format!("{back}/state")).unwrap(), b"1");
        assert_eq!(s.read(&format!("{back}/dev")).unwrap(), b"xvda");
        assert_eq!(
            s.read(&format!("{front}/backend")).unwrap(),
            back.as_bytes()
        );
        assert_eq!(s.read(&format!("{front}/backend-id")).unwrap(), b"0");
        assert_eq!(
            s.read(&format!("{front}/virtual-device")).unwrap(),
            b"51712"
        );
        assert_eq!(s.read(&format!("{front}/state")).unwrap(), b"1");
        assert_eq!(text(&s.perms(back).unwrap()), "n0 r1");
        assert_eq!(text(&s.perms(&format!("{back}/mode")).unwrap()), "n0 r1");
        assert_eq!(text(&s.perms(front).unwrap()), "n1 r0");
        assert_eq!(text(&s.perms(&format!("{front}/state")).unwrap()), "n1 r0");
        // The front end writes its own keys and reads the back end's; not the other way.
        let ring = "device/vbd/51712/ring-ref\08";
        assert!(req(&mut s, 1, XS_WRITE, &[ring.as_bytes()]).is_ok());
        let mode = format!("{back}/mode\0");
        assert_eq!(req(&mut s, 1, XS_READ, &[mode.as_bytes()]).unwrap(), b"r");
        let w = format!("{back}/mode\0w");
        assert_eq!(
            req(&mut s, 1, XS_WRITE, &[w.as_bytes()]),
            Err(XsdError::Eacces)
        );
        remove_vbd(&mut s, 1, 51712).unwrap();
        assert!(s.read(back).is_none());
        assert!(s.read("/local/domain/0/backend/vbd").is_none());
        assert!(s.read("/local/domain/0/backend/console/1/0").is_some());
    }

    /// Every node under `dir`, relative, with its value and permissions.
    fn under(s: &Store, dir: &str) -> Vec<(String, String, String)> {
        s.paths()
            .into_iter()
            .filter_map(|p| {
                let rel = p.strip_prefix(dir)?.strip_prefix('/')?.to_string();
                let v = String::from_utf8_lossy(&s.read(&p).unwrap()).into_owned();
                Some((rel, v, text(&s.perms(&p).unwrap())))
            })
            .collect()
    }

    #[test]
    fn vif_keys_as_libxl_writes_them_for_a_pvh_domu() {
        let mut s = built();
        let v = VifInfo {
            domid: 1,
            devid: 0,
            mac: [0x00, 0x16, 0x3e, 0, 0, 1],
            bridge: "xenbr0",
            mtu: DEFAULT_MTU,
        };
        write_vif(&mut s, &v).unwrap();
        let back = "/local/domain/0/backend/vif/1/0";
        let front = "/local/domain/1/device/vif/0";
        assert_eq!(vif_backend(1, 0), back);
        let ro = "n0 r1";
        let rw = "n1 r0";
        let want_back: Vec<(String, String, String)> = [
            ("bridge", "xenbr0"),
            ("frontend", front),
            ("frontend-id", "1"),
            ("handle", "0"),
            ("hotplug-status", "connected"),
            ("mac", "00:16:3e:00:00:01"),
            ("online", "1"),
            ("script", "/etc/xen/scripts/vif-bridge"),
            ("state", "1"),
            ("type", "vif"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string(), ro.to_string()))
        .collect();
        let mut got = under(&s, back);
        got.sort();
        assert_eq!(got, want_back);
        let mut want_front: Vec<(String, String, String)> = [
            ("backend", back, rw),
            ("backend-id", "0", rw),
            ("handle", "0", rw),
            ("mac", "00:16:3e:00:00:01", rw),
            ("mtu", "1500", ro),
            ("state", "1", rw),
            ("trusted", "1", rw),
        ]
        .iter()
        .map(|(k, v, p)| (k.to_string(), v.to_string(), p.to_string()))
        .collect();
        want_front.sort();
        let mut got = under(&s, front);
        got.sort();
        assert_eq!(got, want_front);
        assert_eq!(text(&s.perms(back).unwrap()), ro);
        assert_eq!(text(&s.perms(front).unwrap()), rw);
        // The front end writes its ring keys and reads the back end's; it may not change
        // the back end's keys or its read-only mtu.
        assert!(req(&mut s, 1, XS_WRITE, &[b"device/vif/0/tx-ring-ref\0", b"8"]).is_ok());
        let mac = format!("{back}/mac\0");
        assert_eq!(
            req(&mut s, 1, XS_READ, &[mac.as_bytes()]).unwrap(),
            b"00:16:3e:00:00:01"
        );
        for p in [format!("{back}/mac\0"), String::from("device/vif/0/mtu\0")] {
            assert_eq!(
                req(&mut s, 1, XS_WRITE, &[p.as_bytes(), b"1"]),
                Err(XsdError::Eacces),
                "{p}"
            );
        }
        // Another domain sees nothing of it.
        write_domu(&mut s, &info(2, &uuid(2))).unwrap();
        let other = format!("{front}/mac\0");
        assert_eq!(
            req(&mut s, 2, XS_READ, &[other.as_bytes()]),
            Err(XsdError::Eacces)
        );
        remove_vif(&mut s, 1, 0).unwrap();
        assert!(s.read(back).is_none());
        assert!(s.read("/local/domain/0/backend/vif").is_none());
        assert!(s.read("/local/domain/0/backend/console/1/0").is_some());
    }

    #[test]
    fn a_vif_with_another_mtu_says_so_in_its_back_end() {
        let mut s = built();
        let v = VifInfo {
            domid: 1,
            devid: 2,
            mac: default_mac(1, 2),
            bridge: "br1",
            mtu: 9000,
        };
        write_vif(&mut s, &v).unwrap();
        let back = vif_backend(1, 2);
        assert_eq!(s.read(&format!("{back}/mtu")).unwrap(), b"9000");
        assert_eq!(s.read(&format!("{back}/bridge")).unwrap(), b"br1");
        assert_eq!(s.read(&format!("{back}/handle")).unwrap(), b"2");
        assert_eq!(s.read("/local/domain/1/device/vif/2/mtu").unwrap(), b"9000");
    }

    #[test]
    fn default_macs_are_xens_oui_unicast_and_distinct_per_vif() {
        assert_eq!(mac_text(&default_mac(1, 0)), "00:16:3e:00:01:00");
        assert_eq!(mac_text(&default_mac(0x7ff0, 3)), "00:16:3e:7f:f0:03");
        let mut seen = BTreeSet::new();
        for d in 1..0x7ff0u16 {
            for devid in 0..4 {
                let m = default_mac(d, devid);
                assert_eq!(m[..3], [0x00, 0x16, 0x3e]);
                assert_eq!(m[3] & 0x80, 0, "libxl clears the top bit");
                assert!(seen.insert(m), "d{d} vif{devid}");
            }
        }
    }

    #[test]
    fn the_domain_reads_its_keys_and_is_refused_as_under_xen() {
        let mut s = built();
        assert_eq!(req(&mut s, 1, XS_READ, &[b"domid\0"]).unwrap(), b"1");
        let vm = format!("/vm/{ZERO_UUID}/name\0");
        assert_eq!(
            req(&mut s, 1, XS_READ, &[vm.as_bytes()]).unwrap(),
            b"pvguest"
        );
        assert!(req(&mut s, 1, XS_WRITE, &[b"data/k\0", b"v"]).is_ok());
        for path in [
            &b"/local/domain/0/data/x\0"[..],
            b"device/vif\0",
            b"domid\0",
            b"console/ring-ref\0",
            b"name\0",
        ] {
            assert_eq!(
                req(&mut s, 1, XS_WRITE, &[path, b"v"]),
                Err(XsdError::Eacces),
                "{path:?}"
            );
        }
        assert_eq!(
            req(&mut s, 1, XS_READ, &[b"/local/domain/0/name\0"]),
            Err(XsdError::Eacces)
        );
    }

    /// Domain `domid` as the kernel will describe it: its UUID from [`domain_uuid`], 128 MiB,
    /// the special pages and ports hv gives every domain.
    fn info(domid: Domid, uuid: &str) -> DomainInfo<'_> {
        let store = Ring {
            port: 1,
            gfn: 0xfeffc,
        };
        let console = Ring {
            port: 2,
            gfn: 0xfefff,
        };
        domain_info(domid, "guest", uuid, 128, store, console)
    }

    fn uuid(domid: Domid) -> String {
        uuid_text(&domain_uuid(domid))
    }

    /// Domain 0 and the domUs `domids`, written by the toolstack into one store.
    fn store_with(domids: &[Domid]) -> Store {
        let mut s = Store::new();
        write_dom0(&mut s).unwrap();
        for &d in domids {
            write_domu(&mut s, &info(d, &uuid(d))).unwrap();
        }
        s
    }

    /// Every node: path, value and permissions.
    fn dump(s: &Store) -> BTreeMap<String, (String, String)> {
        s.paths()
            .into_iter()
            .map(|p| {
                let v = String::from_utf8_lossy(&s.read(&p).unwrap()).into_owned();
                let perms = text(&s.perms(&p).unwrap());
                (p, (v, perms))
            })
            .collect()
    }

    #[test]
    fn domain_uuids_are_well_formed_distinct_and_printed_as_libxl_prints_them() {
        assert_eq!(domain_uuid(0), [0; 16]);
        assert_eq!(uuid_text(&domain_uuid(0)), ZERO_UUID);
        assert_eq!(uuid(1), "68760000-0000-8000-8000-000000000001");
        assert_eq!(uuid(0x7fef), "68760000-0000-8000-8000-000000007fef");
        let mut seen = BTreeSet::new();
        for d in 1..0x7ff0 {
            let u = domain_uuid(d);
            assert_eq!(u[6] >> 4, 8, "version 8");
            assert_eq!(u[8] >> 6, 0b10, "RFC 9562 variant");
            assert!(seen.insert(u), "domain {d}: UUID given twice");
        }
        let t = uuid_text(&[0xab; 16]);
        assert_eq!(t, "abababab-abab-abab-abab-abababababab");
        assert_eq!(
            domain_info(3, "n", &t, 3, Ring::default(), Ring::default()).memory_kib,
            3072
        );
    }

    #[test]
    fn two_domains_in_one_store_each_read_their_own_keys_and_nothing_of_the_other() {
        let mut s = store_with(&[1, 2]);
        assert_eq!(
            s.directory("/local/domain").unwrap(),
            ["0", "1", "2"].map(String::from)
        );
        let vms: BTreeSet<String> = s.directory("/vm").unwrap().into_iter().collect();
        assert_eq!(vms, BTreeSet::from([uuid(1), uuid(2)]));
        for (me, other) in [(1, 2), (2, 1)] {
            let home = Store::home(me);
            let vm = format!("/vm/{}", uuid(me));
            assert_eq!(s.read(&format!("{home}/vm")).unwrap(), vm.as_bytes());
            assert_eq!(s.read(&format!("{vm}/uuid")).unwrap(), uuid(me).as_bytes());
            // Every node of the domain's home and /vm entry names only domain 0 and itself.
            for p in s.paths() {
                if p.starts_with(&format!("{home}/")) || p.starts_with(&format!("{vm}/")) {
                    for perm in s.perms(&p).unwrap() {
                        assert!([0, me].contains(&perm.domid), "{p}: {perm}");
                    }
                }
            }
            assert_eq!(text(&s.perms(&home).unwrap()), format!("n0 r{me}"));
            assert_eq!(text(&s.perms(&vm).unwrap()), format!("n0 r{me}"));
            let mine = [
                format!("{home}/name\0"),
                format!("{vm}/name\0"),
                String::from("domid\0"),
            ];
            for p in &mine {
                assert!(
                    req(&mut s, me, XS_READ, &[p.as_bytes()]).is_ok(),
                    "{me}: {p}"
                );
            }
            let theirs = [
                format!("{}/name\0", Store::home(other)),
                format!("/vm/{}/name\0", uuid(other)),
                format!("/vm/{}\0", uuid(other)),
            ];
            for p in &theirs {
                assert_eq!(
                    req(&mut s, me, XS_READ, &[p.as_bytes()]),
                    Err(XsdError::Eacces),
                    "{me}: {p}"
                );
            }
            let dir = format!("{}\0", Store::home(other));
            assert_eq!(
                req(&mut s, me, XS_DIRECTORY, &[dir.as_bytes()]),
                Err(XsdError::Eacces)
            );
            let data = format!("{}/data/x\0", Store::home(other));
            assert_eq!(
                req(&mut s, me, XS_WRITE, &[data.as_bytes(), b"v"]),
                Err(XsdError::Eacces)
            );
            assert!(req(&mut s, me, XS_WRITE, &[b"data/x\0", b"v"]).is_ok());
        }
        assert_eq!(s.entries(1), s.entries(2));
    }

    /// What a running domain 2 leaves in the store: nodes under `data/`, two watches with
    /// events queued, an open transaction with a write in it.
    fn busy(s: &mut Store, d: Domid) {
        for (p, v) in [(&b"data/a\0"[..], &b"1"[..]), (b"data/b/c\0", b"2")] {
            req(s, d, XS_WRITE, &[p, v]).unwrap();
        }
        req(s, d, XS_WATCH, &[b"data\0", b"w-data\0"]).unwrap();
        req(s, d, XS_WATCH, &[b"control/shutdown\0", b"w-shutdown\0"]).unwrap();
        req(s, d, XS_WRITE, &[b"data/a\0", b"3"]).unwrap();
        let tx = req(s, d, XS_TRANSACTION_START, &[b"\0"]).unwrap();
        let tx: u32 = core::str::from_utf8(&tx[..tx.len() - 1])
            .unwrap()
            .parse()
            .unwrap();
        s.handle(d, XS_WRITE, tx, b"data/in-tx\0v").unwrap();
    }

    /// Domain 1's side of the store: nodes it owns, its watches, its memory.
    fn domain_one(s: &Store) -> (usize, usize, usize) {
        (s.entries(1), s.watch_count(1), s.memory(1))
    }

    #[test]
    fn destroying_a_domain_leaves_nothing_of_it_and_touches_no_other() {
        let mut s = store_with(&[1, 2]);
        let mut never = store_with(&[1]);
        for st in [&mut s, &mut never] {
            // Domain 1 at work, and watching where domain 2 lived (it may not read there).
            req(st, 1, XS_WRITE, &[b"data/mine\0", b"x"]).unwrap();
            req(st, 1, XS_WATCH, &[b"data\0", b"one\0"]).unwrap();
            req(st, 1, XS_WATCH, &[b"/local/domain/2\0", b"spy\0"]).unwrap();
            req(st, 1, XS_WATCH, &[b"/vm\0", b"spy-vm\0"]).unwrap();
            st.take_events(1);
        }
        busy(&mut s, 2);
        // Domain 0 (the toolstack) watches for domains going away, and domain 2's home.
        for (path, token) in [
            (&b"@releaseDomain\0"[..], &b"released\0"[..]),
            (b"/local/domain/2\0", b"home2\0"),
        ] {
            req(&mut s, 0, XS_WATCH, &[path, token]).unwrap();
        }
        s.take_events(0);
        assert!(s.entries(2) > 0 && s.memory(2) > 0);
        assert_eq!((s.watch_count(2), s.transaction_count(2)), (2, 1));
        assert!(s.queued_event_bytes(2) > 0);
        let one = domain_one(&s);
        assert_eq!(one, domain_one(&never));

        destroy_domu(&mut s, 2, &uuid(2)).unwrap();

        assert_eq!(s.entries(2), 0);
        assert_eq!(s.memory(2), 0);
        assert_eq!(s.watch_count(2), 0);
        assert_eq!(s.transaction_count(2), 0);
        assert_eq!(s.queued_event_bytes(2), 0);
        assert!(!s.is_introduced(2));
        // Exactly the store in which domain 2 never was: paths, values and permissions.
        assert_eq!(dump(&s), dump(&never));
        assert_eq!(domain_one(&s), one);
        assert!(s.take_events(1).is_empty(), "domain 1 saw domain 2 go");
        // Domain 0 saw the home go, then `@releaseDomain`.
        let events: Vec<(String, String)> = s
            .take_events(0)
            .into_iter()
            .map(|e| (e.path, e.token))
            .collect();
        let home = events
            .iter()
            .position(|e| e == &(String::from("/local/domain/2"), String::from("home2")));
        let released = events
            .iter()
            .position(|e| e == &(String::from("@releaseDomain"), String::from("released")));
        assert!(
            matches!((home, released), (Some(h), Some(r)) if h < r),
            "{events:?}"
        );
        assert_eq!(released, Some(events.len() - 1), "{events:?}");
        // Domain 2 is gone for good: its requests are refused.
        assert_eq!(
            req(&mut s, 2, XS_READ, &[b"domid\0"]),
            Err(XsdError::Eacces)
        );

        // Domain 1 next: what is left is domain 0's and the empty /vm.
        destroy_domu(&mut s, 1, &uuid(1)).unwrap();
        let mut bare = store_with(&[]);
        bare.mkdir("/vm").unwrap();
        assert_eq!(dump(&s), dump(&bare));
        assert_eq!((s.entries(1), s.memory(1), s.watch_count(1)), (0, 0, 0));
    }

    #[test]
    fn destroying_an_unknown_domain_changes_nothing_and_domain_0_is_refused() {
        let mut s = store_with(&[1]);
        let before = dump(&s);
        assert_eq!(destroy_domu(&mut s, 5, &uuid(5)), Ok(()));
        assert_eq!(dump(&s), before);
        assert_eq!(destroy_domu(&mut s, 0, ZERO_UUID), Err(XsdError::Einval));
        assert_eq!(dump(&s), before);
    }
}
