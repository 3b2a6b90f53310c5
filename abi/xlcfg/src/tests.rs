//! Host tests of the parser: every key, every error, the order of errors, quoting, lists
//! over lines, comments, relative paths.

use super::*;
use alloc::vec;

const GOOD: &str = r#"# A PVH guest.
name = "web"
type = 'pvh'
kernel = "../../target/pvguest"   # relative to the file
ramdisk = "/boot/initrd"
cmdline = "selftest=boot console=hvc0";
memory = 128; maxmem = 0x100
vcpus = 1
on_poweroff = "destroy"
on_reboot = 'restart'
on_crash = "preserve"
vif = [ 'mac=00:16:3e:01:02:03,bridge=xenbr0',
        "ip=10.0.0.2",
      ]
disk = [
  'disk.img,raw,xvda,rw',   # comment inside a list
  "format=qcow2, vdev=xvdb, access=ro, target=/images/a,b.qcow2",
]
"#;

fn errs(text: &str) -> Vec<String> {
    match parse(text, "/cfg") {
        Ok(c) => panic!("parsed: {c:?}"),
        Err(p) => p.iter().map(|p| p.render("a.cfg")).collect(),
    }
}

const MIN: &str = "name = \"d\"\ntype = \"pvh\"\nkernel = \"k\"\n";

fn ok(extra: &str) -> Config {
    parse(&format!("{MIN}{extra}"), "/cfg").unwrap_or_else(|p| panic!("{p:?}"))
}

#[test]
fn every_key() {
    let c = parse(GOOD, "/etc/xen").unwrap();
    assert_eq!(c.name, "web");
    assert_eq!(c.kernel, "/etc/xen/../../target/pvguest");
    assert_eq!(c.ramdisk.as_deref(), Some("/boot/initrd"));
    assert_eq!(c.cmdline, "selftest=boot console=hvc0");
    assert_eq!((c.memory_mib, c.maxmem_mib, c.vcpus), (128, 256, 1));
    assert_eq!(
        (c.on_poweroff, c.on_reboot, c.on_crash),
        (Action::Destroy, Action::Restart, Action::Preserve)
    );
    assert_eq!(c.vifs.len(), 2);
    assert_eq!(c.vifs[0].mac, Some([0, 0x16, 0x3e, 1, 2, 3]));
    assert_eq!(c.vifs[0].bridge.as_deref(), Some("xenbr0"));
    assert_eq!(c.vifs[1].ip.as_deref(), Some("10.0.0.2"));
    assert_eq!(c.disks.len(), 2);
    assert_eq!(c.disks[0].target.as_deref(), Some("/etc/xen/disk.img"));
    assert_eq!(c.disks[0].vdev, "xvda");
    assert_eq!(c.disks[0].access, disk::Access::ReadWrite);
    assert_eq!(c.disks[1].target.as_deref(), Some("/images/a,b.qcow2"));
    assert_eq!(c.disks[1].format, disk::Format::Qcow2);
    assert_eq!(c.disks[1].access, disk::Access::ReadOnly);
    assert_eq!(c.line_of("memory"), Some(7));
    assert_eq!(c.line_of("disk"), Some(15));
    assert!(c.warnings.is_empty());
    assert_eq!(c.end_line, 18);
}

#[test]
fn defaults_as_xl() {
    let c = ok("");
    assert_eq!(c.kernel, "/cfg/k");
    assert_eq!(
        (c.memory_mib, c.maxmem_mib),
        (DEFAULT_MEMORY_MIB, DEFAULT_MEMORY_MIB)
    );
    assert_eq!(
        (c.on_poweroff, c.on_reboot, c.on_crash),
        (Action::Destroy, Action::Restart, Action::Destroy)
    );
    assert_eq!(c.cmdline, "");
    assert!(c.vifs.is_empty() && c.disks.is_empty());
}

#[test]
fn cmdline_root_and_extra_as_xl() {
    assert_eq!(ok("extra = \"a b\"").cmdline, "a b");
    assert_eq!(
        ok("root = \"/dev/xvda\"\nextra = \"ro\"").cmdline,
        "root=/dev/xvda ro"
    );
    assert_eq!(ok("root = \"/dev/xvda\"").cmdline, "root=/dev/xvda");
    let c = ok("cmdline = \"x\"\nextra = \"y\"");
    assert_eq!(c.cmdline, "x");
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].line, 5);
}

#[test]
fn quoting_and_escapes() {
    assert_eq!(ok(r#"cmdline = "a \"q\" \\ \t""#).cmdline, "a \"q\" \\ \t");
    // Single quotes take backslashes as they are.
    assert_eq!(ok(r"cmdline = 'a\nb'").cmdline, r"a\nb");
    assert_eq!(ok("cmdline = 'say \"hi\"'").cmdline, "say \"hi\"");
    // Numbers may be quoted, as xl reads them from the text either way.
    assert_eq!(ok("memory = \"64\"").memory_mib, 64);
    assert_eq!(ok("memory = 010").memory_mib, 8);
    assert_eq!(
        errs(&format!("{MIN}cmdline = \"a\\qb\"")),
        ["a.cfg:4: cmdline: unsupported escape \\q in a string"]
    );
    assert_eq!(
        errs(&format!("{MIN}cmdline = \"open\nmemory = 64")),
        ["a.cfg:4: cmdline: unterminated string"]
    );
}

#[test]
fn last_setting_wins_and_append() {
    assert_eq!(ok("memory = 64\nmemory = 96").memory_mib, 96);
    assert_eq!(ok("cmdline = \"a\"\ncmdline += \" b\"").cmdline, "a b");
    assert_eq!(
        ok("vif = ['']\nvif += ['mac=00:16:3e:00:00:01']")
            .vifs
            .len(),
        2
    );
    // Only the setting that counts is checked.
    assert_eq!(ok("memory = \"x\"\nmemory = 64").memory_mib, 64);
    assert_eq!(
        errs(&format!("{MIN}maxmem = 0")),
        ["a.cfg:4: maxmem: must be at least 1 (MiB)"]
    );
}

#[test]
fn comments_and_semicolons() {
    let c = ok("# only a comment\n\n  ; ;\nmemory = 64 ; # after\n#memory = 1\n");
    assert_eq!(c.memory_mib, 64);
}

#[test]
fn every_error_in_line_order() {
    // Lines 3 and 4 are overridden by 15 and 16: as in xl, only the last setting counts.
    let text = "\
name = ''
type = \"hvm\"
memory = \"lots\"
maxmem = 0
vcpus = 2
bogus = 1
on_reboot = \"rename-restart\"
on_crash = [ 'destroy' ]
vif = 'mac=1'
disk = [ 'a.img,raw', 'x.img,raw,xvda,rw,extra',
         'vdev=xvdb,target=b.img', 'q.img,weird,xvdc' ]
kernel = 
cmdline = \"x\" \"y\"
Name = 1
memory = 64
maxmem = 32
vif = [ 'bridge=br0,colour=red', 'mac=00:16:3e:zz:00:00' ]
";
    assert_eq!(
        errs(text),
        [
            "a.cfg:1: name: is empty",
            "a.cfg:2: type: \"hvm\" is not supported: only \"pvh\"",
            "a.cfg:5: vcpus: 2 given, but a domain has exactly 1 vCPU for now",
            "a.cfg:6: bogus: unknown key",
            "a.cfg:7: on_reboot: \"rename-restart\" is not supported (destroy, restart, preserve)",
            "a.cfg:8: on_crash: is a list but should be a single value",
            "a.cfg:10: disk: \"a.img,raw\": no vdev (the device name the guest sees, e.g. xvda)",
            "a.cfg:10: disk: \"x.img,raw,xvda,rw,extra\": `extra`: too many positional parameters",
            "a.cfg:11: disk: \"q.img,weird,xvdc\": format `weird` is not raw, qcow, qcow2, vhd or qed",
            "a.cfg:12: kernel: expected a value after `=`, found end of line",
            "a.cfg:13: cmdline: expected the end of the line or `;`, found value \"y\"",
            "a.cfg:14: syntax: expected a key, found unexpected character 'N'",
            "a.cfg:16: maxmem: 32 MiB is less than memory (64 MiB)",
            "a.cfg:17: vif: \"bridge=br0,colour=red\": unknown vif setting `colour`",
            "a.cfg:17: vif: \"mac=00:16:3e:zz:00:00\": mac=00:16:3e:zz:00:00: not a MAC",
            "a.cfg:17: kernel: missing (a PVH kernel ELF)",
        ]
    );
}

#[test]
fn unknown_key_reported_with_missing_required_keys() {
    assert_eq!(
        errs("colour = \"blue\"\n"),
        [
            "a.cfg:1: colour: unknown key",
            "a.cfg:1: name: missing (every domain needs a name)",
            "a.cfg:1: type: missing (xl's default is \"pv\"; only \"pvh\" is supported)",
            "a.cfg:1: kernel: missing (a PVH kernel ELF)",
        ]
    );
}

#[test]
fn list_errors_and_recovery() {
    assert_eq!(
        errs(&format!("{MIN}vif = [ 'a'\n 'b' ]\nmemory = x\n")),
        [
            "a.cfg:5: vif: in a list: expected `,` or `]`, found value \"b\"",
            "a.cfg:6: memory: expected a value after `=`, found `x`",
        ]
    );
    assert_eq!(
        errs(&format!("{MIN}disk = 'x.img,,xvda'")),
        ["a.cfg:4: disk: is a single value but should be a list"]
    );
    assert_eq!(
        errs(&format!("{MIN}vif = [ [ 'a' ] ]")),
        ["a.cfg:4: vif: in a list: expected a value or `]`, found `[`"]
    );
}

#[test]
fn disk_specs_as_xl_documents() {
    let d = |s: &str| disk::parse(s, "/cfg").unwrap();
    let a = d("/dev/vg/guest-volume,,hda");
    assert_eq!(a, d("/dev/vg/guest-volume,raw,hda,rw"));
    assert_eq!(
        a,
        d("format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume")
    );
    let c = d("/root/image.iso,,hdc,cdrom");
    assert!(c.cdrom);
    assert_eq!(c, d("/root/image.iso,,hdc,,cdrom"));
    assert_eq!(c, d("/root/image.iso,raw,hdc,devtype=cdrom"));
    assert_eq!(
        d("rel/x.img,,xvda").target.as_deref(),
        Some("/cfg/rel/x.img")
    );
    assert_eq!(d(",,hdc,cdrom").target, None);
    assert_eq!(d("a,,xvda,r").access, disk::Access::ReadOnly);
    assert_eq!(d("a,,xvda,w"), d("a,,xvda,rw"));
    assert!(disk::parse(",,xvda", "/").is_err());
    assert!(disk::parse("a,,xvda,rw,vdev=xvdb", "/").is_err());
    assert!(disk::parse("a,,xvda,maybe", "/").is_err());
    assert!(disk::parse("a,,xvda,devtype=floppy", "/").is_err());
}

#[test]
fn vif_specs() {
    assert_eq!(vif::parse("").unwrap(), Vif::default());
    let v = vif::parse("mac=00-16-3e-aa-bb-cc, bridge=br0, mtu=1500, type=vif").unwrap();
    assert_eq!(v.mac, Some([0, 0x16, 0x3e, 0xaa, 0xbb, 0xcc]));
    assert_eq!(v.mtu, Some(1500));
    assert!(vif::parse("bridge").is_err());
    assert!(vif::parse("bridge=a,bridge=b").is_err());
    assert!(vif::parse("mac=00:16:3e:00:00").is_err());
    assert!(vif::parse("type=tap").is_err());
}

#[test]
fn relative_paths() {
    assert_eq!(resolve("/a/b", "k"), "/a/b/k");
    assert_eq!(resolve("/a/b/", "k"), "/a/b/k");
    assert_eq!(resolve("/a/b", "/k"), "/k");
    assert_eq!(resolve("", "k"), "k");
    assert_eq!(resolve("cfgs", "../k"), "cfgs/../k");
}

#[test]
fn the_directory_of_a_config() {
    assert_eq!(dir_of("/w/hv/examples/a.cfg"), "/w/hv/examples");
    assert_eq!(dir_of("cfg/a.cfg"), "cfg");
    assert_eq!(dir_of("a.cfg"), "");
    assert_eq!(dir_of("/a.cfg"), "/");
    assert_eq!(dir_of(""), "");
    let c = parse(
        "name = \"a\"\ntype = \"pvh\"\nkernel = \"../k\"\n",
        dir_of("/w/c/a.cfg"),
    );
    assert_eq!(c.map(|c| c.kernel), Ok("/w/c/../k".to_owned()));
}

#[test]
fn numbers_as_strtol() {
    assert_eq!(parse_number("128"), Some(128));
    assert_eq!(parse_number("0x80"), Some(128));
    assert_eq!(parse_number("0200"), Some(128));
    assert_eq!(parse_number("0"), Some(0));
    assert_eq!(parse_number("12x"), None);
    assert_eq!(parse_number("09"), None);
    assert_eq!(vec![parse_number("")], vec![None]);
}
