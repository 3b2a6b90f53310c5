//! `--gdb[=PORT]` and `--gdb-wait`: QEMU's gdbstub for `hv-run` and `run`, and for the first
//! boot of `hv-test`, `xen-test` and `blk-test` ([`parse_test_args`], [`boot_timeout`]), and
//! the `gdb` command lines xtask prints for it.
//!
//! QEMU listens with `-gdb tcp:127.0.0.1:PORT` (and holds the CPU before its first instruction
//! with `-S`). Under `-accel tcg` the guest's code runs in the same emulated CPU as the
//! hypervisor, so a breakpoint on a guest address hits when the guest runs it. Both kernels
//! are linked at 1 MiB, so an address may be hv's code as well as the guest's: the two are
//! told apart by CR3, which neither changes after its PVH entry (each keeps its `boot_pml4`;
//! guest-physical = guest-virtual in pvguest). QEMU 7.2 reads memory for gdb through the
//! guest's page tables but not hv's nested ones, so while the guest runs, gdb sees its
//! registers and breakpoints but not its memory (no `x`, no `bt` beyond the first frame).
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// QEMU's default gdb port (as `-s` would use).
pub const DEFAULT_PORT: u16 = 1234;

/// What `--gdb[=PORT]` and `--gdb-wait` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gdb {
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// `--gdb-wait`: QEMU starts stopped (`-S`) until gdb continues it.
    pub wait: bool,
}

/// The help text of the two options, for the commands' usage texts.
pub const HELP: &str =
    "  --gdb[=PORT]       QEMU's gdbstub on 127.0.0.1:PORT (default 1234); the gdb command
                     lines to attach are printed before the boot (README: Debugging)
  --gdb-wait         as --gdb, and QEMU waits for gdb before the first instruction (-S)
";

/// Folds `arg` into `gdb` if it is `--gdb`, `--gdb=PORT` or `--gdb-wait`; `Ok(false)` if it
/// is none of them.
pub fn parse_arg(arg: &str, gdb: &mut Option<Gdb>) -> Result<bool> {
    let port = match arg {
        "--gdb" => None,
        "--gdb-wait" => {
            let g = gdb.get_or_insert(Gdb {
                port: DEFAULT_PORT,
                wait: true,
            });
            g.wait = true;
            return Ok(true);
        }
        _ => match arg.strip_prefix("--gdb=") {
            Some(v) => Some(
                v.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .with_context(|| format!("--gdb={v}: not a port number (1-65535)"))?,
            ),
            None => return Ok(false),
        },
    };
    let g = gdb.get_or_insert(Gdb {
        port: DEFAULT_PORT,
        wait: false,
    });
    if let Some(p) = port {
        g.port = p;
    }
    Ok(true)
}

/// QEMU's arguments for `gdb`.
pub fn qemu_args(gdb: &Gdb) -> Vec<String> {
    let mut args = vec!["-gdb".to_owned(), format!("tcp:127.0.0.1:{}", gdb.port)];
    if gdb.wait {
        args.push("-S".to_owned());
    }
    args
}

/// The least hard timeout of a test boot under gdb: hv-run's default. A test boot's own
/// (120 s on hv, 300 s on stock Xen) would kill QEMU while it waits for gdb (`--gdb-wait`) or
/// sits at a breakpoint; no timeout at all would leave a forgotten QEMU running for ever.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(600);

/// The hard timeout of the boot that gets the gdbstub: its usual `timeout` (which
/// `PVXEN_TIMEOUT` may have set), at least [`BOOT_TIMEOUT`].
pub fn boot_timeout(timeout: Duration) -> Duration {
    timeout.max(BOOT_TIMEOUT)
}

/// What the words after a test command asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestArgs {
    /// Run it, its first boot with QEMU's gdbstub if given.
    Run(Option<Gdb>),
    /// `--help`: print [`test_help`] and run nothing.
    Help,
}

/// The words after `hv-test`, `xen-test` or `blk-test` (`command`): only `--gdb[=PORT]` and
/// `--gdb-wait`, which give the command's first boot QEMU's gdbstub, or `--help`.
pub fn parse_test_args(command: &str, args: &[String]) -> Result<TestArgs> {
    let mut gdb = None;
    for arg in args {
        if arg == "--help" || arg == "-h" {
            return Ok(TestArgs::Help);
        }
        if !parse_arg(arg, &mut gdb)? {
            bail!(
                "{command}: unknown argument `{arg}` (it takes --gdb[=PORT] and --gdb-wait)\n\n{}",
                test_help(command)
            );
        }
    }
    Ok(TestArgs::Run(gdb))
}

/// The usage text of a test command's gdb options.
pub fn test_help(command: &str) -> String {
    format!(
        "cargo xtask {command} [--gdb[=PORT]] [--gdb-wait]\n\n\
         The first boot gets QEMU's gdbstub and a hard timeout of at least {} s; the gdb\n\
         command lines are printed before it starts.\n\n{HELP}",
        BOOT_TIMEOUT.as_secs()
    )
}

/// `gdb -q <elf> -ex 'target remote 127.0.0.1:PORT'` and any further `-ex` commands.
pub fn command(elf: &Path, port: u16, extra: &[String]) -> String {
    let mut cmd = format!(
        "gdb -q {} -ex 'target remote 127.0.0.1:{port}'",
        shell_word(&elf.display().to_string())
    );
    for e in extra {
        cmd.push_str(&format!(" -ex '{e}'"));
    }
    cmd
}

/// `word` quoted for a POSIX shell if it needs it.
fn shell_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=,@".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The address of the symbol `name` in the ELF at `elf`.
pub fn symbol_address(elf: &Path, name: &str) -> Result<u64> {
    use object::{Object as _, ObjectSymbol as _};
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let file = object::File::parse(&*bytes).with_context(|| format!("{}", elf.display()))?;
    match file.symbols().find(|s| s.name() == Ok(name)) {
        Some(s) => Ok(s.address()),
        None => bail!("{}: no symbol {name}", elf.display()),
    }
}

/// The lines `hv-run --gdb` prints: how to attach to hv, and to the guest `guest` (when its
/// ELF has pvh's `boot_pml4`, the CR3 that tells its code from hv's at the same address).
pub fn hv_instructions(hv: &Path, guests: &[&Path], gdb: &Gdb) -> Result<Vec<String>> {
    let hv_cr3 = symbol_address(hv, "boot_pml4")?;
    let mut lines = vec![
        format!(
            "gdb: QEMU's gdbstub listens on 127.0.0.1:{}{}",
            gdb.port,
            if gdb.wait {
                "; QEMU waits for gdb's `continue`"
            } else {
                ""
            }
        ),
        format!("gdb: hv:    {}", command(hv, gdb.port, &[])),
    ];
    for guest in guests {
        let mut extra = vec![format!("set $hv_cr3 = {hv_cr3:#x}")];
        if let Ok(cr3) = symbol_address(guest, "boot_pml4") {
            extra.push(format!("set $guest_cr3 = {cr3:#x}"));
        }
        lines.push(format!("gdb: guest: {}", command(guest, gdb.port, &extra)));
    }
    lines.push(
        "gdb: hv and the guest are both linked at 1 MiB: break in the guest with \
         `break <function> if $cr3 != $hv_cr3` (hv never changes its CR3); registers and \
         breakpoints work in the guest, its memory does not (QEMU's gdbstub ignores nested \
         paging). `add-symbol-file <guest elf>` in hv's gdb adds the guest's symbols."
            .to_owned(),
    );
    Ok(lines)
}

/// The lines `run --gdb` prints: how to attach to pvguest on stock Xen (Xen's own symbols
/// are not in Debian's packages).
pub fn xen_instructions(guest: &Path, gdb: &Gdb) -> Vec<String> {
    let mut extra = Vec::new();
    if let Ok(cr3) = symbol_address(guest, "boot_pml4") {
        extra.push(format!("set $guest_cr3 = {cr3:#x}"));
    }
    vec![
        format!(
            "gdb: QEMU's gdbstub listens on 127.0.0.1:{}{}",
            gdb.port,
            if gdb.wait {
                "; QEMU waits for gdb's `continue`"
            } else {
                ""
            }
        ),
        format!("gdb: guest: {}", command(guest, gdb.port, &extra)),
        "gdb: Xen and dom0 share the CPUs with the guest (two vCPUs, gdb threads 1 and 2): \
         break in the guest with `break <function> if $cr3 == $guest_cr3`; its registers and \
         breakpoints work, its memory does not (QEMU's gdbstub ignores nested paging)."
            .to_owned(),
    ]
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for tests).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdb_flags() {
        let mut g = None;
        assert!(!parse_arg("--guest", &mut g).unwrap());
        assert_eq!(g, None);
        assert!(parse_arg("--gdb", &mut g).unwrap());
        assert_eq!(
            g,
            Some(Gdb {
                port: DEFAULT_PORT,
                wait: false
            })
        );
        assert!(parse_arg("--gdb-wait", &mut g).unwrap());
        assert!(parse_arg("--gdb=4321", &mut g).unwrap());
        assert_eq!(
            g,
            Some(Gdb {
                port: 4321,
                wait: true
            })
        );
        let mut g = None;
        assert!(parse_arg("--gdb-wait", &mut g).unwrap());
        assert_eq!(
            g,
            Some(Gdb {
                port: DEFAULT_PORT,
                wait: true
            })
        );
        for bad in ["--gdb=", "--gdb=0", "--gdb=70000", "--gdb=x"] {
            assert!(parse_arg(bad, &mut None).is_err(), "{bad}");
        }
        assert_eq!(
            qemu_args(&Gdb {
                port: 99,
                wait: true
            })
            .join(" "),
            "-gdb tcp:127.0.0.1:99 -S"
        );
        assert_eq!(
            boot_timeout(Duration::from_secs(120)),
            Duration::from_secs(600)
        );
        assert_eq!(
            boot_timeout(Duration::from_secs(900)),
            Duration::from_secs(900)
        );
        assert_eq!(
            command(Path::new("/t/a b"), 99, &["set $x = 1".to_owned()]),
            "gdb -q '/t/a b' -ex 'target remote 127.0.0.1:99' -ex 'set $x = 1'"
        );
    }

    #[test]
    fn test_commands_take_only_the_gdb_flags() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_test_args("hv-test", &[]).unwrap(),
            TestArgs::Run(None)
        );
        assert_eq!(
            parse_test_args("xen-test", &words(&["--gdb"])).unwrap(),
            TestArgs::Run(Some(Gdb {
                port: DEFAULT_PORT,
                wait: false
            }))
        );
        assert_eq!(
            parse_test_args("blk-test", &words(&["--gdb-wait", "--gdb=5555"])).unwrap(),
            TestArgs::Run(Some(Gdb {
                port: 5555,
                wait: true
            }))
        );
        assert_eq!(
            parse_test_args("hv-test", &words(&["--gdb", "--help"])).unwrap(),
            TestArgs::Help
        );
        let e = parse_test_args("hv-test", &words(&["--gdb", "--cmdline"])).unwrap_err();
        assert!(
            e.to_string()
                .contains("hv-test: unknown argument `--cmdline`"),
            "{e}"
        );
        assert!(parse_test_args("hv-test", &words(&["--gdb=0"])).is_err());
        assert!(test_help("xen-test").starts_with("cargo xtask xen-test [--gdb[=PORT]]"));
        assert!(HELP.starts_with("  --gdb[=PORT]"), "{HELP}");
    }
}
