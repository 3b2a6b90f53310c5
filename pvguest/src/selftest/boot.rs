//! Self-test group `boot`: what a guest learns before any event, grant or xenstore set-up —
//! Xen's version, CPUID leaves and features, the start info, the memory map, the heap, the
//! errors of refused hypercalls, and what memory outside RAM reads (`super::outside_ram`). Each test prints what the platform answered as
//! `FACT <test>.<key> <value>` lines (never a value that depends on the build, the time or
//! an address), so that runs on stock Xen and on `hv` can be compared line by line.
//!
//! Run alone by `selftest=boot` (needing only the hypercall page, the console and memory,
//! which is what `hv` offers first) and as the first part of `platform`.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "test patterns keep the low bits on purpose, and buffer sizes are small"
)]

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::arch::x86_64::__cpuid_count;

use abi::cpuid as c;
use abi::errno::{XEN_EINVAL, XEN_ENOSYS};
use abi::features as feat;
use abi::version as ver;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::boot_info::{MemoryRegion, RegionKind};
use crate::kernel::{self, BootState};
use crate::memory::heap;
use crate::xen::hypercall::{self, HypercallError, Refused};

/// What a test returns: `Err` carries the reason for the `FAIL` line.
type TestResult = Result<(), String>;

/// The facts a test gathered, in order: `(key, value)`.
#[derive(Default)]
pub struct Facts(Vec<(String, String)>);

impl Facts {
    /// Adds the fact `key` with `value`.
    pub(super) fn add(&mut self, key: &str, value: impl ToString) {
        self.0.push((key.to_string(), value.to_string()));
    }
}

/// A named test of this group.
type Test = (&'static str, fn(&mut Facts) -> TestResult);

/// The tests, in order.
pub const TESTS: &[Test] = &[
    ("xen-version", xen_version),
    ("xen-features", xen_features),
    ("start-info", start_info),
    ("memory-map", memory_map),
    ("heap-alloc", heap_alloc),
    ("hypercall-enosys", hypercall_enosys),
    ("memory-outside-ram", super::outside_ram::memory_outside_ram),
];

/// Runs the group: each test's FACT lines, then its TEST line.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    for &(name, test) in TESTS {
        let mut facts = Facts::default();
        let result = test(&mut facts);
        for (key, value) in &facts.0 {
            let _ = rep.fact(name, key, value);
        }
        let _ = rep.record(name, result);
    }
}

fn boot() -> Result<&'static BootState, String> {
    kernel::boot_state().ok_or_else(|| "boot state missing".to_string())
}

/// Xen's raw answer as a FACT value: the number (a negative errno when refused).
fn answer(r: Result<i64, HypercallError>) -> Result<i64, String> {
    r.map_err(|e| e.to_string())
}

fn leaf(leaf: u32, sub: u32) -> [u32; 4] {
    let r = __cpuid_count(leaf, sub);
    [r.eax, r.ebx, r.ecx, r.edx]
}

fn words(w: &[u32; 4], masked: Option<usize>) -> String {
    let mut s = String::new();
    for (i, x) in w.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        if masked == Some(i) {
            s.push('-');
        } else {
            s.push_str(&format!("{x:08x}"));
        }
    }
    s
}

fn c_string(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn xen_version(facts: &mut Facts) -> TestResult {
    let (major, minor) = hypercall::xen_version().map_err(|e| format!("XENVER_version: {e}"))?;
    facts.add("version", format!("{major}.{minor}"));
    let cpuid = boot()?.cpuid;
    if cpuid.base != c::XEN_CPUID_FIRST_LEAF {
        return Err(format!(
            "Xen leaves at {:#x}, expected 0x40000000",
            cpuid.base
        ));
    }
    // The leaves Xen 4.17 defines, one past them and the next 0x100 block (zeros). Leaf 3
    // sub-leaf 0 ECX is the TSC frequency, and sub-leaves 1 and 2 are TSC scale and host
    // frequency: those depend on the host's clock and are left out.
    for l in 0..=6u32 {
        let v = leaf(cpuid.base + l, 0);
        let masked = (l == 3).then_some(2);
        facts.add(&format!("cpuid.{:08x}", cpuid.base + l), words(&v, masked));
    }
    let v = leaf(cpuid.base + 0x100, 0);
    facts.add(
        &format!("cpuid.{:08x}", cpuid.base + 0x100),
        words(&v, None),
    );

    let mut buf: hypercall::XenVersionBuf = [0; 1024];
    // XENVER_pagesize answers only with a NULL argument (-EINVAL otherwise).
    let pagesize = answer(hypercall::xen_version_null(ver::XENVER_PAGESIZE))?;
    facts.add("pagesize", pagesize);
    let with_buffer = answer(hypercall::xen_version_raw(ver::XENVER_PAGESIZE, &mut buf))?;
    facts.add("pagesize-with-buffer", with_buffer);
    let caps = answer(hypercall::xen_version_raw(
        ver::XENVER_CAPABILITIES,
        &mut buf,
    ))?;
    facts.add("capabilities-rc", caps);
    // Xen ends the string with a space; the FACT line leaves it out.
    let caps_string = c_string(&buf).trim_end().to_string();
    facts.add("capabilities", caps_string.clone());
    // Xen 4.17 gives a domU its own command line but not the build id (XSM_PRIV), and
    // does not know sub-op 64.
    let commandline = answer(hypercall::xen_version_raw(
        ver::XENVER_COMMANDLINE,
        &mut buf,
    ))?;
    facts.add("commandline", commandline);
    let mut refused = [0i64; 2];
    for (i, (key, cmd)) in [("build-id", ver::XENVER_BUILD_ID), ("sub-op-64", 64)]
        .into_iter()
        .enumerate()
    {
        buf = [0; 1024];
        refused[i] = answer(hypercall::xen_version_raw(cmd, &mut buf))?;
        facts.add(key, refused[i]);
    }

    log::info!(
        "xen-version: XENVER_version {major}.{minor}, CPUID {}.{}",
        cpuid.version.0,
        cpuid.version.1
    );
    if major != 4 {
        return Err(format!("major version {major}, expected 4"));
    }
    if (major, minor) != cpuid.version {
        return Err(format!(
            "XENVER_version {major}.{minor} but CPUID says {}.{}",
            cpuid.version.0, cpuid.version.1
        ));
    }
    if pagesize != 4096 || with_buffer >= 0 {
        return Err(format!(
            "XENVER_pagesize {pagesize}, with a buffer {with_buffer}"
        ));
    }
    if caps != 0 || !caps_string.contains("hvm-3.0-x86_64") {
        return Err(format!(
            "XENVER_capabilities answered {caps}, {caps_string:?}: no hvm-3.0-x86_64"
        ));
    }
    if let Some(i) = refused.iter().position(|&r| r >= 0) {
        return Err(format!(
            "{} not refused: {}",
            ["XENVER_build_id", "xen_version sub-op 64"][i],
            refused[i]
        ));
    }
    Ok(())
}

fn xen_features(facts: &mut Facts) -> TestResult {
    let map = hypercall::get_features(0).map_err(|e| format!("XENVER_get_features(0): {e}"))?;
    facts.add("submap0", format!("{map:#010x}"));
    let next = hypercall::get_features(feat::XENFEAT_NR_SUBMAPS);
    facts.add(
        &format!("submap{}", feat::XENFEAT_NR_SUBMAPS),
        match next {
            Ok(m) => format!("{m:#010x}"),
            Err(HypercallError::Xen(e)) => format!("errno {e}"),
            Err(e) => e.to_string(),
        },
    );
    log::info!("xen-features: submap 0 = {map:#010x}");
    // What Xen 4.17 gives every HVM/PVH domain (xen/common/kernel.c, do_xen_version).
    let required = [
        (feat::XENFEAT_WRITABLE_PAGE_TABLES, "writable_page_tables"),
        (
            feat::XENFEAT_AUTO_TRANSLATED_PHYSMAP,
            "auto_translated_physmap",
        ),
        (feat::XENFEAT_HVM_CALLBACK_VECTOR, "hvm_callback_vector"),
        (feat::XENFEAT_HVM_SAFE_PVCLOCK, "hvm_safe_pvclock"),
    ];
    let missing: Vec<&str> = required
        .iter()
        .filter(|(bit, _)| map & (1 << bit) == 0)
        .map(|(_, n)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(format!("submap 0 {map:#x} lacks {}", missing.join(",")));
    }
    if map & (1 << feat::XENFEAT_DOM0) != 0 {
        return Err(format!("submap 0 {map:#x} claims dom0 for a domU"));
    }
    // Only XENFEAT_NR_SUBMAPS submaps exist: the next one must be refused with -EINVAL.
    match next {
        Err(HypercallError::Xen(e)) if e == -i64::from(XEN_EINVAL) => Ok(()),
        Ok(m) => Err(format!(
            "submap {} accepted ({m:#x})",
            feat::XENFEAT_NR_SUBMAPS
        )),
        Err(e) => Err(format!("submap {}: {e}", feat::XENFEAT_NR_SUBMAPS)),
    }
}

fn start_info(facts: &mut Facts) -> TestResult {
    let b = boot()?;
    let info = kernel::reread_start_info(b.start_info.paddr)
        .map_err(|e| format!("re-reading start info: {e:?}"))?;
    let raw = info.raw;
    facts.add("version", raw.version);
    facts.add("flags", format!("{:#x}", raw.flags));
    facts.add("nr-modules", raw.nr_modules);
    facts.add(
        "cmdline",
        if raw.cmdline_paddr != 0 {
            "present"
        } else {
            "none"
        },
    );
    facts.add("memmap", if info.has_memmap() { "present" } else { "none" });
    log::info!(
        "start-info: version {}, cmdline {:?}",
        raw.version,
        b.cmdline()
    );
    if raw.version > 1 {
        return Err(format!("unknown start info version {}", raw.version));
    }
    if raw.cmdline_paddr == 0 {
        return Err("no command line".to_string());
    }
    if !b.cmdline().contains("selftest=") {
        return Err(format!("command line {:?} lacks selftest=", b.cmdline()));
    }
    let size = crate::boot_info::start_info_size(raw.version);
    let in_ram = b
        .memory_map()
        .iter()
        .any(|r| r.kind == RegionKind::Ram && r.contains_range(info.paddr, info.paddr + size));
    if !in_ram {
        return Err(format!("start info at {:#x} is not in RAM", info.paddr));
    }
    Ok(())
}

fn ram_of(map: &[MemoryRegion]) -> Vec<(u64, u64)> {
    let mut v: Vec<_> = map
        .iter()
        .filter(|r| r.kind == RegionKind::Ram)
        .map(|r| (r.base, r.size))
        .collect();
    v.sort_unstable();
    v
}

/// The kind of the region holding frame `pfn` ("none" if no region holds it).
fn kind_of(map: &[MemoryRegion], pfn: u64) -> String {
    let a = pfn << 12;
    map.iter()
        .find(|r| r.contains_range(a, a + 4096))
        .map_or("none".to_string(), |r| {
            format!("{:?}", r.kind).to_lowercase()
        })
}

fn memory_map(facts: &mut Facts) -> TestResult {
    let b = boot()?;
    let map = b.memory_map();
    let ram = ram_of(map);
    let total: u64 = ram.iter().map(|r| r.1).sum();
    facts.add("source", format!("{:?}", b.map_source));
    facts.add("ram-regions", ram.len());
    facts.add("ram-kib", total >> 10);
    let mut from_xen = [MemoryRegion::EMPTY; kernel::MAX_MEMORY_REGIONS];
    let n = kernel::hypercall_memory_map(&mut from_xen)
        .map_err(|e| format!("XENMEM_memory_map: errno {e}"))?;
    let xen_ram = ram_of(&from_xen[..n]);
    facts.add(
        "xenmem-ram",
        if xen_ram == ram { "same" } else { "different" },
    );
    let mut special = [0u64; 2];
    for (i, (key, param)) in [
        ("console-page", abi::hvm::HVM_PARAM_CONSOLE_PFN),
        ("store-page", abi::hvm::HVM_PARAM_STORE_PFN),
    ]
    .into_iter()
    .enumerate()
    {
        let pfn = hypercall::hvm_get_param(param).map_err(|e| format!("get_param {param}: {e}"))?;
        special[i] = pfn;
        facts.add(key, kind_of(map, pfn));
    }

    if ram.is_empty() {
        return Err("no RAM region".to_string());
    }
    for r in map {
        if r.size == 0 || r.base.checked_add(r.size).is_none() {
            return Err(format!("bad region {r:?}"));
        }
    }
    let mut sorted: Vec<_> = map.to_vec();
    sorted.sort_unstable_by_key(|r| r.base);
    if let Some(w) = sorted.windows(2).find(|w| w[0].end() > w[1].base) {
        return Err(format!("regions overlap: {:?} and {:?}", w[0], w[1]));
    }
    if !(1 << 20..=1 << 40).contains(&total) {
        return Err(format!("implausible RAM total {total:#x}"));
    }
    let k = b.kernel;
    if !map
        .iter()
        .any(|r| r.kind == RegionKind::Ram && r.contains_range(k.start, k.end))
    {
        return Err(format!(
            "kernel image {:#x}-{:#x} not inside RAM",
            k.start, k.end
        ));
    }
    log::info!(
        "memory-map: source {:?}, {} regions, {} KiB RAM; XENMEM_memory_map: {n} entries, RAM {xen_ram:x?}",
        b.map_source,
        map.len(),
        total >> 10
    );
    if xen_ram != ram {
        return Err(format!(
            "RAM differs: start info {ram:x?}, XENMEM_memory_map {xen_ram:x?}"
        ));
    }
    if let Some(pfn) = special.iter().find(|&&p| kind_of(map, p) == "ram") {
        return Err(format!("special page {pfn:#x} lies in RAM"));
    }
    Ok(())
}

fn heap_alloc(facts: &mut Facts) -> TestResult {
    let (size, used_before) = heap::stats();
    {
        // Vec growth
        let v: Vec<u64> = (0..10_000u64).collect();
        if v.iter().sum::<u64>() != 10_000 * 9_999 / 2 {
            return Err("Vec contents wrong".to_string());
        }
        // Box
        let b = Box::new([0x5au8; 4096]);
        if b.iter().any(|&x| x != 0x5a) {
            return Err("Box contents wrong".to_string());
        }
        // BTreeMap insert/remove
        let mut m = BTreeMap::new();
        for i in 0..1000u32 {
            m.insert(i, format!("v{i}"));
        }
        m.retain(|k, _| k % 2 == 1);
        if m.len() != 500 || m.get(&501).map(String::as_str) != Some("v501") || m.contains_key(&500)
        {
            return Err("BTreeMap contents wrong".to_string());
        }
        // One big allocation (a quarter of the heap), written and checked end to end.
        let big_len = size / 4;
        let mut big = Vec::new();
        big.try_reserve_exact(big_len)
            .map_err(|_| format!("{big_len} byte allocation failed"))?;
        big.resize(big_len, 0u8);
        for (i, x) in big.iter_mut().enumerate() {
            *x = i as u8;
        }
        if big.iter().enumerate().any(|(i, &x)| x != i as u8) {
            return Err("big allocation contents wrong".to_string());
        }
        // Page-aligned allocation
        let layout = core::alloc::Layout::from_size_align(8192, 4096).map_err(|e| e.to_string())?;
        // SAFETY: layout has non-zero size; the block is freed with the same layout below.
        let p = unsafe { alloc::alloc::alloc(layout) };
        if p.is_null() || !(p as usize).is_multiple_of(4096) {
            return Err(format!("aligned allocation gave {p:p}"));
        }
        // SAFETY: `p` came from `alloc` with `layout` just above.
        unsafe { alloc::alloc::dealloc(p, layout) };
        // Fragmentation: many sizes, free every other block, then allocate larger ones.
        let mut blocks: Vec<Option<Vec<u8>>> = (0..256usize)
            .map(|i| Some(alloc::vec![i as u8; (i * 37) % 1000 + 1]))
            .collect();
        for b in blocks.iter_mut().step_by(2) {
            *b = None;
        }
        let larger: Vec<Vec<u8>> = (0..128usize)
            .map(|i| alloc::vec![!(i as u8); 2000])
            .collect();
        for (i, b) in blocks.iter().enumerate() {
            if let Some(b) = b
                && (b.len() != (i * 37) % 1000 + 1 || b.iter().any(|&x| x != i as u8))
            {
                return Err(format!("block {i} corrupted after fragmentation"));
            }
        }
        if larger
            .iter()
            .enumerate()
            .any(|(i, b)| b.iter().any(|&x| x != !(i as u8)))
        {
            return Err("larger blocks corrupted".to_string());
        }
    }
    let (_, used_after) = heap::stats();
    facts.add("heap-kib", size >> 10);
    facts.add("leaked-bytes", used_after as i64 - used_before as i64);
    log::info!(
        "heap-alloc: heap {} KiB, used {used_before} B before and {used_after} B after",
        size >> 10
    );
    if used_after != used_before {
        return Err(format!(
            "heap use {used_before} B before, {used_after} B after: leak"
        ));
    }
    Ok(())
}

fn hypercall_enosys(facts: &mut Facts) -> TestResult {
    let nr = hypercall::UNASSIGNED_HYPERCALL;
    let unassigned = answer(hypercall::unassigned())?;
    facts.add(&format!("hypercall-{nr}"), unassigned);
    let mut others = Vec::new();
    for (key, op) in [
        ("mmu-update", Refused::MmuUpdate),
        ("memory-op-63", Refused::MemoryOp63),
        ("hvm-op-255", Refused::HvmOp255),
        ("sched-op-255", Refused::SchedOp255),
        ("event-channel-op-255", Refused::EventChannelOp255),
    ] {
        let r = answer(hypercall::refused(op))?;
        facts.add(key, r);
        others.push((key, r));
    }
    // HVMOP_set_evtchn_upcall_vector with what Xen refuses: a vector below 0x10 (-EINVAL,
    // checked first) and a vCPU the domain does not have (-ENOENT).
    for (key, vcpu, vector) in [
        ("upcall-vector-0x0f", 0, 0x0f),
        ("upcall-vector-vcpu-4096", 4096, 0xf3),
    ] {
        // SAFETY: both calls are refused before anything changes (and a platform that took
        // one fails this test below).
        let r = answer(unsafe { hypercall::hvm_set_evtchn_upcall_vector(vcpu, vector) })?;
        facts.add(key, r);
        others.push((key, r));
    }
    let console = answer(hypercall::console_io_write(
        b"pvguest: CONSOLEIO_write probe\n",
    ))?;
    facts.add("console-io-write", console);
    others.push(("console-io-write", console));

    let enosys = -i64::from(XEN_ENOSYS);
    if unassigned != enosys {
        return Err(format!(
            "hypercall {nr} returned {unassigned}, expected {enosys}"
        ));
    }
    if let Some((key, r)) = others.iter().find(|(_, r)| *r >= 0) {
        return Err(format!("{key} accepted ({r}); a PVH domU is refused"));
    }
    Ok(())
}
