//! `xlcfg`: domain configs in a subset of `xl.cfg(5)` syntax, parsed into typed values.
//!
//! Shared by xtask (which checks configs before it builds anything), hv and later a control
//! channel. [`parse`] takes a config's text and the directory of its file and returns a
//! [`Config`] or every [`Problem`], in line order; [`Problem::render`] formats one as
//! `<path>:<line>: <key>: <what is wrong>`.
//!
//! Keys: `name`, `type` (only `"pvh"`), `kernel`, `ramdisk`, `cmdline` (`root` and `extra`,
//! xl's older names, are used as xl uses them when `cmdline` is absent), `memory`, `maxmem`,
//! `vcpus` (only 1 for now), `on_poweroff`, `on_reboot`, `on_crash` (`destroy`, `restart`,
//! `preserve`), `vif` and `disk` (lists of specs in xl's own syntax: [`vif`], [`disk`]).
//! As in xl, the last setting of a key wins, `+=` appends, numbers are read as `strtol(.., 0)`
//! reads them, and `kernel`, `ramdisk` and disk targets are relative to the config file's
//! directory ([`dir_of`]).
//!
//! [`archive`] is the format in which xtask hands hv its configs and the kernels they name.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod archive;
pub mod disk;
pub mod lex;
pub mod vif;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use disk::Disk;
pub use lex::Value;
pub use vif::Vif;

/// One thing wrong with a config (or, in [`Config::warnings`], worth saying about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line (1-based); problems about the whole file (a missing key) carry its last line.
    pub line: usize,
    /// The key concerned (`syntax` where no key was read).
    pub key: String,
    /// What is wrong.
    pub what: String,
}

impl Problem {
    /// A problem at `line` about `key`.
    pub fn new(line: usize, key: impl Into<String>, what: impl Into<String>) -> Self {
        Self {
            line,
            key: key.into(),
            what: what.into(),
        }
    }

    /// `<path>:<line>: <key>: <what>`.
    pub fn render(&self, path: &str) -> String {
        format!("{path}:{self}")
    }
}

impl fmt::Display for Problem {
    /// `<line>: <key>: <what>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.line, self.key, self.what)
    }
}

/// What to do when the domain powers off, reboots or crashes (xl's `on_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Destroy the domain.
    Destroy,
    /// Destroy it and build it again from the same config.
    Restart,
    /// Keep it (paused) for inspection.
    Preserve,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "destroy" => Some(Self::Destroy),
            "restart" => Some(Self::Restart),
            "preserve" => Some(Self::Preserve),
            _ => None,
        }
    }
}

/// A checked domain config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `name`.
    pub name: String,
    /// `kernel`, joined to the config's directory if relative.
    pub kernel: String,
    /// `ramdisk`, joined likewise.
    pub ramdisk: Option<String>,
    /// The guest command line: `cmdline`, else `root=<root> <extra>` as xl makes it.
    pub cmdline: String,
    /// `memory` in MiB (xl's default: 32).
    pub memory_mib: u64,
    /// `maxmem` in MiB (default: `memory`).
    pub maxmem_mib: u64,
    /// `vcpus` (1).
    pub vcpus: u32,
    /// `on_poweroff` (default `destroy`).
    pub on_poweroff: Action,
    /// `on_reboot` (default `restart`).
    pub on_reboot: Action,
    /// `on_crash` (default `destroy`).
    pub on_crash: Action,
    /// `vif` entries.
    pub vifs: Vec<Vif>,
    /// `disk` entries.
    pub disks: Vec<Disk>,
    /// The line of each key set, in line order (for messages about a setting).
    pub lines: Vec<(String, usize)>,
    /// The file's last line (where a message about a key left out belongs).
    pub end_line: usize,
    /// Things xl would warn about (e.g. `extra` ignored in favour of `cmdline`).
    pub warnings: Vec<Problem>,
}

impl Config {
    /// The line where `key` was (last) set, if it was.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.lines.iter().find(|(k, _)| k == key).map(|(_, l)| *l)
    }
}

/// xl's default `memory` (libxl's `max_memkb` default, 32 MiB).
pub const DEFAULT_MEMORY_MIB: u64 = 32;

/// The keys this parser knows.
pub const KEYS: [&str; 15] = [
    "name",
    "type",
    "kernel",
    "ramdisk",
    "cmdline",
    "root",
    "extra",
    "memory",
    "maxmem",
    "vcpus",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "vif",
    "disk",
];

/// The directory of the file at `path` (everything before its last `/`; `""` if there is
/// none, `"/"` for a file in the root): where the relative paths of a config read from `path`
/// resolve, as xl resolves them. xtask and hv both resolve a config's `kernel` with
/// `parse(text, dir_of(path))`, so the names agree.
pub fn dir_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

/// Joins a relative `path` to `dir` (as xl resolves `kernel` and friends against the config
/// file's directory); absolute paths and an empty `dir` leave it as it is.
pub fn resolve(dir: &str, path: &str) -> String {
    if path.starts_with('/') || dir.is_empty() {
        path.to_owned()
    } else if dir.ends_with('/') {
        format!("{dir}{path}")
    } else {
        format!("{dir}/{path}")
    }
}

/// Reads a number as `strtol(s, &end, 0)` does and requires all of `s` used: decimal, `0x`
/// hexadecimal or `0` octal.
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// Merges `+=` into earlier settings and keeps the last setting of each key (in the order
/// of their lines). Unknown keys are problems.
fn effective(settings: Vec<lex::Setting>, problems: &mut Vec<Problem>) -> Vec<lex::Setting> {
    let mut out: Vec<lex::Setting> = Vec::new();
    for s in settings {
        if !KEYS.contains(&s.key.as_str()) {
            problems.push(Problem::new(s.line, s.key, "unknown key"));
            continue;
        }
        let before = out.iter().position(|o| o.key == s.key);
        let merged = match (before.map(|b| out.remove(b)), s.append) {
            (Some(mut old), true) => {
                match (&mut old.value, s.value) {
                    (Value::Atom(a), Value::Atom(b)) => a.push_str(&b),
                    (Value::List(a), Value::List(b)) => a.extend(b),
                    (_, other) => old.value = other,
                }
                old.line = s.line;
                old
            }
            _ => s,
        };
        out.push(merged);
    }
    out.sort_by_key(|s| s.line);
    out
}

fn atom<'a>(s: &'a lex::Setting, problems: &mut Vec<Problem>) -> Option<&'a str> {
    match &s.value {
        Value::Atom(a) => Some(a),
        Value::List(_) => {
            problems.push(Problem::new(
                s.line,
                &*s.key,
                "is a list but should be a single value",
            ));
            None
        }
    }
}

fn list<'a>(s: &'a lex::Setting, problems: &mut Vec<Problem>) -> Option<&'a [(usize, String)]> {
    match &s.value {
        Value::List(l) => Some(l),
        Value::Atom(_) => {
            problems.push(Problem::new(
                s.line,
                &*s.key,
                "is a single value but should be a list",
            ));
            None
        }
    }
}

fn number(s: &lex::Setting, problems: &mut Vec<Problem>) -> Option<u64> {
    let a = atom(s, problems)?;
    match parse_number(a) {
        Some(n) => Some(n),
        None => {
            problems.push(Problem::new(
                s.line,
                &*s.key,
                format!("{a:?} is not a number"),
            ));
            None
        }
    }
}

/// Parses and checks a config's `text`; `dir` is its file's directory (relative paths are
/// joined to it). Returns every problem, in line order, if there is any.
pub fn parse(text: &str, dir: &str) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let settings = lex::statements(text, &mut problems);
    let settings = effective(settings, &mut problems);
    let last_line = text.lines().count().max(1);

    let mut name = None;
    let mut kind = None;
    let mut kernel = None;
    let mut ramdisk = None;
    let (mut cmdline, mut root, mut extra) = (None, None, None);
    let (mut memory, mut maxmem) = (None, None);
    let mut vcpus = 1;
    let mut actions = [Action::Destroy, Action::Restart, Action::Destroy];
    let mut vifs = Vec::new();
    let mut disks = Vec::new();
    let mut warnings = Vec::new();
    let mut lines = Vec::new();

    for s in &settings {
        lines.push((s.key.clone(), s.line));
        let key = s.key.as_str();
        match key {
            "name" => {
                if let Some(a) = atom(s, &mut problems) {
                    if a.is_empty() {
                        problems.push(Problem::new(s.line, key, "is empty"));
                    } else if a.chars().any(|c| c.is_control() || c == '/') {
                        problems.push(Problem::new(
                            s.line,
                            key,
                            "contains a control character or `/`",
                        ));
                    } else {
                        name = Some(a.to_owned());
                    }
                }
            }
            "type" => {
                if let Some(a) = atom(s, &mut problems) {
                    if a == "pvh" {
                        kind = Some(());
                    } else {
                        problems.push(Problem::new(
                            s.line,
                            key,
                            format!("{a:?} is not supported: only \"pvh\""),
                        ));
                        kind = Some(());
                    }
                }
            }
            "kernel" | "ramdisk" => {
                if let Some(a) = atom(s, &mut problems) {
                    if a.is_empty() {
                        problems.push(Problem::new(s.line, key, "is empty"));
                    } else if key == "kernel" {
                        kernel = Some(resolve(dir, a));
                    } else {
                        ramdisk = Some(resolve(dir, a));
                    }
                }
            }
            "cmdline" => cmdline = atom(s, &mut problems).map(str::to_owned),
            "root" => root = atom(s, &mut problems).map(str::to_owned),
            "extra" => extra = atom(s, &mut problems).map(str::to_owned),
            "memory" | "maxmem" => {
                if let Some(n) = number(s, &mut problems) {
                    if n == 0 {
                        problems.push(Problem::new(s.line, key, "must be at least 1 (MiB)"));
                    } else if n > u64::MAX >> 20 {
                        problems.push(Problem::new(s.line, key, format!("{n} MiB is too large")));
                    } else if key == "memory" {
                        memory = Some(n);
                    } else {
                        maxmem = Some((s.line, n));
                    }
                }
            }
            "vcpus" => {
                if let Some(n) = number(s, &mut problems) {
                    if n == 1 {
                        vcpus = 1;
                    } else {
                        problems.push(Problem::new(
                            s.line,
                            key,
                            format!("{n} given, but a domain has exactly 1 vCPU for now"),
                        ));
                    }
                }
            }
            "on_poweroff" | "on_reboot" | "on_crash" => {
                if let Some(a) = atom(s, &mut problems) {
                    match Action::parse(a) {
                        Some(act) => {
                            let i = match key {
                                "on_poweroff" => 0,
                                "on_reboot" => 1,
                                _ => 2,
                            };
                            actions[i] = act;
                        }
                        None => problems.push(Problem::new(
                            s.line,
                            key,
                            format!("{a:?} is not supported (destroy, restart, preserve)"),
                        )),
                    }
                }
            }
            "vif" => {
                for (line, spec) in list(s, &mut problems).unwrap_or_default() {
                    match vif::parse(spec) {
                        Ok(v) => vifs.push(v),
                        Err(e) => problems.push(Problem::new(*line, key, format!("{spec:?}: {e}"))),
                    }
                }
            }
            "disk" => {
                for (line, spec) in list(s, &mut problems).unwrap_or_default() {
                    match disk::parse(spec, dir) {
                        Ok(d) => disks.push(d),
                        Err(e) => problems.push(Problem::new(*line, key, format!("{spec:?}: {e}"))),
                    }
                }
            }
            _ => {}
        }
    }

    let cmdline = match (cmdline, root, extra) {
        (Some(c), r, e) => {
            if r.is_some() || e.is_some() {
                let line = settings
                    .iter()
                    .find(|s| s.key == "root" || s.key == "extra")
                    .map_or(last_line, |s| s.line);
                warnings.push(Problem::new(
                    line,
                    "extra",
                    "ignored in favour of cmdline (as xl ignores root= and extra=)",
                ));
            }
            c
        }
        (None, Some(r), Some(e)) => format!("root={r} {e}"),
        (None, Some(r), None) => format!("root={r}"),
        (None, None, Some(e)) => e,
        (None, None, None) => String::new(),
    };

    let memory_mib = memory.unwrap_or(DEFAULT_MEMORY_MIB);
    let maxmem_mib = match maxmem {
        Some((line, m)) if m < memory_mib => {
            problems.push(Problem::new(
                line,
                "maxmem",
                format!("{m} MiB is less than memory ({memory_mib} MiB)"),
            ));
            memory_mib
        }
        Some((_, m)) => m,
        None => memory_mib,
    };

    // Missing keys last (at the file's last line), after every problem with a line.
    problems.sort_by_key(|p| p.line);
    let had_bad_name = settings.iter().any(|s| s.key == "name");
    if name.is_none() && !had_bad_name {
        problems.push(Problem::new(
            last_line,
            "name",
            "missing (every domain needs a name)",
        ));
    }
    if kind.is_none() {
        problems.push(Problem::new(
            last_line,
            "type",
            "missing (xl's default is \"pv\"; only \"pvh\" is supported)",
        ));
    }
    let had_bad_kernel = settings.iter().any(|s| s.key == "kernel");
    if kernel.is_none() && !had_bad_kernel {
        problems.push(Problem::new(
            last_line,
            "kernel",
            "missing (a PVH kernel ELF)",
        ));
    }
    match (name, kernel) {
        (Some(name), Some(kernel)) if problems.is_empty() => Ok(Config {
            name,
            kernel,
            ramdisk,
            cmdline,
            memory_mib,
            maxmem_mib,
            vcpus,
            on_poweroff: actions[0],
            on_reboot: actions[1],
            on_crash: actions[2],
            vifs,
            disks,
            lines,
            end_line: last_line,
            warnings,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests;
