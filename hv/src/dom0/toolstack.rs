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

use alloc::format;
use alloc::vec::Vec;

use xenstored::{Access, Domid, Perm, Store, XsdError};

/// What the toolstack knows of a new domain.
#[derive(Clone, Copy, Debug)]
pub struct DomainInfo<'a> {
    /// The domain id.
    pub domid: Domid,
    /// `name` from the configuration.
    pub name: &'a str,
    /// The domain's UUID in its text form (xl's `uuid`; hv's `XENVER_guest_handle` is zeros,
    /// so hv passes the all-zero UUID).
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

/// hv's domain 1 as xtask's xl configuration describes it (`name = "pvguest"`,
/// `memory = 128`), with its ports and frames.
pub fn pvguest_info(
    store_port: u32,
    store_gfn: u64,
    console_port: u32,
    console_gfn: u64,
) -> DomainInfo<'static> {
    DomainInfo {
        domid: 1,
        name: "pvguest",
        uuid: ZERO_UUID,
        memory_kib: 128 * 1024,
        store_port,
        store_gfn,
        console_port,
        console_gfn,
    }
}

/// The all-zero UUID (hv's domains have no handle).
pub const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

#[cfg(test)]
mod tests {
    use super::*;
    use abi::io::xs_wire::{XS_READ, XS_WRITE};
    use alloc::string::String;

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
}
