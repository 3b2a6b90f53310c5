//! `hv-run --config <file>`: domain configs in xl.cfg syntax (crate `xlcfg`), checked before
//! anything is built, and what hv can run of them today.
//!
//! Every problem is one line `<path>:<line>: <key>: <what is wrong>`, all of them reported
//! (files in the order given, each in line order); then `hv-run` exits 2.

use std::path::{Path, PathBuf};

/// The memory hv gives every domain today (`hv/src/layout.rs` `MEMORY_MIB`): hv takes no
/// memory size yet.
pub const HV_MEMORY_MIB: u64 = 128;

/// Where several domains, vif and disk on hv are tracked.
pub const SEVERAL_DOMAINS_ISSUE: &str = "issue \"hv runs several domains at once\"";

/// A config file as read.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Its path as given (used in messages).
    pub path: String,
    /// Its text.
    pub text: String,
}

/// The directory relative paths in the config at `path` resolve against (as xl does).
fn dir_of(path: &str) -> String {
    Path::new(path)
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What `hv-run` boots from a config today: the kernel and its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// The kernel ELF (joined to the config's directory if relative).
    pub kernel: PathBuf,
    /// The guest command line.
    pub cmdline: String,
}

/// Parses every config and checks them together (distinct names, as xl refuses a second
/// domain with a name in use) and against what hv runs today (one domain of
/// [`HV_MEMORY_MIB`] MiB, a kernel and a command line, no ramdisk, vif or disk).
/// `is_file` says whether a kernel path exists. Returns the boot, or every problem (and the
/// warnings xl would print either way).
pub fn check(
    files: &[ConfigFile],
    is_file: impl Fn(&str) -> bool,
) -> (Result<Boot, Vec<String>>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut parsed: Vec<(&ConfigFile, xlcfg::Config)> = Vec::new();
    for f in files {
        match xlcfg::parse(&f.text, &dir_of(&f.path)) {
            Ok(c) => {
                warnings.extend(c.warnings.iter().map(|w| w.render(&f.path)));
                let at = |key: &str| c.line_of(key).unwrap_or(c.end_line);
                // This file's problems, put in line order below.
                let mut mine: Vec<(usize, String)> = Vec::new();
                if let Some((other, oc)) = parsed.iter().find(|(_, o)| o.name == c.name) {
                    mine.push((
                        at("name"),
                        format!(
                            "{}:{}: name: {:?} is already the name of the domain in {}:{} (two \
                         domains may not share a name, as xl refuses)",
                            f.path,
                            at("name"),
                            c.name,
                            other.path,
                            oc.line_of("name").unwrap_or(oc.end_line)
                        ),
                    ));
                }
                let mut unsupported = |key: &str, what: String| {
                    mine.push((at(key), format!("{}:{}: {key}: {what}", f.path, at(key))));
                };
                if c.memory_mib != HV_MEMORY_MIB {
                    unsupported(
                        "memory",
                        format!(
                            "{} MiB{}: hv builds every domain with {HV_MEMORY_MIB} MiB and \
                             cannot take another size yet (set memory = {HV_MEMORY_MIB})",
                            c.memory_mib,
                            if c.line_of("memory").is_none() {
                                " (xl's default)"
                            } else {
                                ""
                            },
                        ),
                    );
                }
                if c.maxmem_mib != c.memory_mib {
                    unsupported(
                        "maxmem",
                        format!(
                            "{} MiB: hv gives a domain exactly its memory; maxmem above it is \
                             not implemented yet",
                            c.maxmem_mib
                        ),
                    );
                }
                if c.ramdisk.is_some() {
                    unsupported(
                        "ramdisk",
                        "hv passes no ramdisk module to a domain yet".to_owned(),
                    );
                }
                if !c.vifs.is_empty() {
                    unsupported(
                        "vif",
                        format!("vif on hv is not implemented yet ({SEVERAL_DOMAINS_ISSUE})"),
                    );
                }
                if !c.disks.is_empty() {
                    unsupported(
                        "disk",
                        format!("disk on hv is not implemented yet ({SEVERAL_DOMAINS_ISSUE})"),
                    );
                }
                if !is_file(&c.kernel) {
                    unsupported(
                        "kernel",
                        format!(
                            "{}: not a file (pvguest's ELF is built by `cargo xtask build`)",
                            c.kernel
                        ),
                    );
                }
                mine.sort_by_key(|(line, _)| *line);
                problems.extend(mine.into_iter().map(|(_, p)| p));
                parsed.push((f, c));
            }
            Err(ps) => problems.extend(ps.iter().map(|p| p.render(&f.path))),
        }
    }
    if files.len() > 1 {
        problems.push(format!(
            "hv-run: {} configs given: several domains on hv are not implemented yet \
             ({SEVERAL_DOMAINS_ISSUE}); give one --config",
            files.len()
        ));
    }
    let result = match parsed.first() {
        Some((_, c)) if problems.is_empty() => Ok(Boot {
            kernel: PathBuf::from(&c.kernel),
            cmdline: c.cmdline.clone(),
        }),
        _ if problems.is_empty() => Err(vec!["hv-run: no config given".to_owned()]),
        _ => Err(problems),
    };
    (result, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> ConfigFile {
        ConfigFile {
            path: path.to_owned(),
            text: text.to_owned(),
        }
    }

    const ONE: &str = "name = \"one\"\ntype = \"pvh\"\nkernel = \"../k\"\nmemory = 128\n\
                       cmdline = \"selftest=boot\"\n";

    #[test]
    fn one_supported_config_boots() {
        let (r, w) = check(&[file("cfg/a.cfg", ONE)], |k| k == "cfg/../k");
        assert_eq!(
            r,
            Ok(Boot {
                kernel: PathBuf::from("cfg/../k"),
                cmdline: "selftest=boot".to_owned()
            })
        );
        assert!(w.is_empty());
    }

    #[test]
    fn every_problem_of_every_file_in_order() {
        let bad = "name = \"one\"\ntype = \"pvh\"\nkernel = \"/k\"\nbogus = 1\n";
        let devices = "name = \"two\"\ntype = \"pvh\"\nkernel = \"/k\"\nmemory = 64\n\
                       vif = [ '' ]\ndisk = [ 'd.img,,xvda' ]\n";
        let (r, _) = check(
            &[
                file("a.cfg", ONE),
                file("b.cfg", bad),
                file("c.cfg", devices),
                file("d.cfg", ONE),
            ],
            |_| true,
        );
        let issue = SEVERAL_DOMAINS_ISSUE;
        assert_eq!(
            r,
            Err(vec![
                "b.cfg:4: bogus: unknown key".to_owned(),
                format!(
                    "c.cfg:4: memory: 64 MiB: hv builds every domain with 128 MiB and cannot \
                     take another size yet (set memory = 128)"
                ),
                format!("c.cfg:5: vif: vif on hv is not implemented yet ({issue})"),
                format!("c.cfg:6: disk: disk on hv is not implemented yet ({issue})"),
                "d.cfg:1: name: \"one\" is already the name of the domain in a.cfg:1 (two \
                 domains may not share a name, as xl refuses)"
                    .to_owned(),
                format!(
                    "hv-run: 4 configs given: several domains on hv are not implemented yet \
                     ({issue}); give one --config"
                ),
            ])
        );
    }

    #[test]
    fn missing_kernel_file_default_memory_and_ramdisk() {
        let text = "name = \"x\"\ntype = \"pvh\"\nkernel = \"k\"\nramdisk = \"r\"\n";
        let (r, _) = check(&[file("/c/x.cfg", text)], |_| false);
        assert_eq!(
            r,
            Err(vec![
                "/c/x.cfg:3: kernel: /c/k: not a file (pvguest's ELF is built by `cargo xtask \
                 build`)"
                    .to_owned(),
                "/c/x.cfg:4: memory: 32 MiB (xl's default): hv builds every domain with 128 MiB \
                 and cannot take another size yet (set memory = 128)"
                    .to_owned(),
                "/c/x.cfg:4: ramdisk: hv passes no ramdisk module to a domain yet".to_owned(),
            ])
        );
    }

    #[test]
    fn warnings_kept() {
        let text = format!("{ONE}extra = \"ignored\"\n");
        let (r, w) = check(&[file("a.cfg", &text)], |_| true);
        assert!(r.is_ok());
        assert_eq!(
            w,
            ["a.cfg:6: extra: ignored in favour of cmdline (as xl ignores root= and extra=)"]
        );
    }
}
