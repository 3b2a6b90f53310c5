//! Symbolised crash reports: the kernels print `BACKTRACE <fault|panic> 0x<address>...`
//! (`pvh::backtrace`) and carry no symbol tables; xtask resolves each address on the host from
//! the ELF it built (its DWARF: the release profile keeps debug info) and prints one line per
//! frame, `<address> <function> <file>:<line>`, inlined frames included (innermost first).
//!
//! The resolver is the `addr2line` crate (gimli-rs: the DWARF reader behind Rust's own
//! backtraces and `cargo`'s tooling, maintained alongside `gimli` and `object`) with its
//! `loader` feature, which opens and maps the ELF; no external `addr2line` binary is needed.
use std::path::{Path, PathBuf};

/// A parsed `BACKTRACE` line.
#[derive(Debug, PartialEq, Eq)]
pub struct Backtrace {
    /// `fault`: the first address is the faulting instruction; `panic`: all are return
    /// addresses.
    pub fault: bool,
    /// The addresses, innermost first.
    pub addresses: Vec<u64>,
}

/// Parses `BACKTRACE <fault|panic> 0x<address>...` (after any prefix such as `hv: `).
pub fn parse(line: &str) -> Option<Backtrace> {
    let rest = line.strip_prefix("BACKTRACE ")?;
    let mut words = rest.split_whitespace();
    let fault = match words.next()? {
        "fault" => true,
        "panic" => false,
        _ => return None,
    };
    let addresses = words
        .map(|w| u64::from_str_radix(w.strip_prefix("0x")?, 16).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(Backtrace { fault, addresses })
}

/// An ELF's symbols, opened on first use.
pub struct Symbols {
    elf: PathBuf,
    loader: Option<Result<addr2line::Loader, String>>,
}

impl Symbols {
    /// The symbols of the ELF at `elf` (read when first needed).
    pub fn new(elf: &Path) -> Self {
        Self {
            elf: elf.to_owned(),
            loader: None,
        }
    }

    /// If `line` is a `BACKTRACE` line, its frames resolved: `    <address> <function>
    /// <file>:<line>` per frame (`??` where unknown), else `None`.
    pub fn resolve_line(&mut self, line: &str) -> Option<Vec<String>> {
        let bt = parse(line)?;
        let elf = self.elf.clone();
        let loader = self
            .loader
            .get_or_insert_with(|| addr2line::Loader::new(&elf).map_err(|e| e.to_string()));
        let loader = match loader {
            Ok(l) => l,
            Err(e) => return Some(vec![format!("    (no symbols: {}: {e})", elf.display())]),
        };
        let mut out = Vec::new();
        for (i, &addr) in bt.addresses.iter().enumerate() {
            // A return address follows its call: look up the call itself.
            let probe = if i == 0 && bt.fault {
                addr
            } else {
                addr.saturating_sub(1)
            };
            let frames = resolve(loader, probe);
            if frames.is_empty() {
                out.push(format!("    {addr:#x} ?? ??"));
            }
            for (function, place) in frames {
                out.push(format!("    {addr:#x} {function} {place}"));
            }
        }
        Some(out)
    }
}

/// The frames at `probe` (inlined ones first): `(function, file:line)`.
fn resolve(loader: &addr2line::Loader, probe: u64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(mut frames) = loader.find_frames(probe) {
        while let Ok(Some(frame)) = frames.next() {
            let function = frame
                .function
                .as_ref()
                .and_then(|f| f.demangle().ok().map(|n| n.into_owned()))
                .unwrap_or_else(|| "??".to_owned());
            let place = match &frame.location {
                Some(l) => format!(
                    "{}:{}",
                    l.file.map(short_path).unwrap_or_else(|| "??".to_owned()),
                    l.line.unwrap_or(0)
                ),
                None => "??:0".to_owned(),
            };
            out.push((strip_hash(&function), place));
        }
    }
    if out.is_empty()
        && let Some(name) = loader.find_symbol(probe)
    {
        let name = rustc_demangle_name(name);
        out.push((name, "??:0".to_owned()));
    }
    out
}

/// `file` relative to the workspace when inside it.
fn short_path(file: &str) -> String {
    let root = crate::build::workspace_root();
    Path::new(file)
        .strip_prefix(&root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| file.to_owned())
}

/// A demangled name without its trailing `::h<hash>`.
fn strip_hash(name: &str) -> String {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            head.to_owned()
        }
        _ => name.to_owned(),
    }
}

/// A symbol table name, demangled (without its hash) if it is a Rust one.
fn rustc_demangle_name(name: &str) -> String {
    strip_hash(&addr2line::demangle_auto(name.into(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtrace_lines() {
        assert_eq!(
            parse("BACKTRACE fault 0x10 0x20"),
            Some(Backtrace {
                fault: true,
                addresses: vec![0x10, 0x20]
            })
        );
        assert_eq!(
            parse("BACKTRACE panic"),
            Some(Backtrace {
                fault: false,
                addresses: vec![]
            })
        );
        assert_eq!(parse("BACKTRACE other 0x10"), None);
        assert_eq!(parse("BACKTRACE fault 10"), None);
        assert_eq!(parse("TEST x ok"), None);
        assert_eq!(strip_hash("a::b::h0123456789abcdef"), "a::b");
        assert_eq!(strip_hash("a::b::hello"), "a::b::hello");
    }

    /// This test binary's own symbols: the address of a function resolves to its name and
    /// this file.
    #[test]
    fn resolves_a_function_of_this_binary() {
        let exe = std::env::current_exe().unwrap();
        let mut s = Symbols::new(&exe);
        // A position-independent executable is loaded elsewhere: look the function up by its
        // link-time address instead of its address in this process.
        let addr =
            crate::gdb::symbol_address(&exe, "xtask_symbols_probe").expect("the probe's symbol");
        let lines = s
            .resolve_line(&format!("BACKTRACE fault {addr:#x}"))
            .unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("xtask_symbols_probe") && l.contains("xtask/src/symbols.rs:")),
            "{lines:?}"
        );
        std::hint::black_box(xtask_symbols_probe());
    }

    #[unsafe(no_mangle)]
    #[inline(never)]
    extern "C" fn xtask_symbols_probe() -> u64 {
        std::hint::black_box(42)
    }
}
