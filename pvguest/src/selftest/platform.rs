//! Self-test group `platform`: Xen version and features, start info, memory map, heap,
//! console under load, and the unknown-hypercall error; then time and event channels
//! ([`super::events`]), grants ([`super::grants`]) and xenstore ([`super::store`]).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use abi::features as feat;

use super::report::Reporter;
use super::run::ConsoleOut;
use crate::boot_info::{MemoryRegion, RegionKind};
use crate::kernel::{self, BootState};
use crate::memory::heap;
use crate::xen::{console, hypercall};

/// What a test returns: `Err` carries the reason for the `FAIL` line.
pub(super) type TestResult = Result<(), String>;
/// A named test.
pub(super) type Test = (&'static str, fn() -> TestResult);

/// Runs the group, recording each test.
pub fn run(rep: &mut Reporter<'_, ConsoleOut>) {
    let tests: [Test; 7] = [
        ("xen-version", xen_version),
        ("xen-features", xen_features),
        ("start-info", start_info),
        ("memory-map", memory_map),
        ("heap-alloc", heap_alloc),
        ("console-flood", console_flood),
        ("hypercall-enosys", hypercall_enosys),
    ];
    let rest = super::events::TESTS
        .iter()
        .chain(super::grants::TESTS)
        .chain(super::store::TESTS);
    for &(name, test) in tests.iter().chain(rest) {
        let result = test();
        let _ = rep.record(name, result);
    }
    log::info!(
        "platform: events {:?}, time {:?}, xenstore {:?}",
        crate::xen::events::stats(),
        crate::xen::time::stats(),
        crate::xen::xenstore::stats()
    );
}

fn boot() -> Result<&'static BootState, String> {
    kernel::boot_state().ok_or_else(|| "boot state missing".to_string())
}

fn xen_version() -> TestResult {
    let (major, minor) = hypercall::xen_version().map_err(|e| format!("XENVER_version: {e}"))?;
    let cpuid = boot()?.cpuid.version;
    log::info!(
        "xen-version: XENVER_version {major}.{minor}, CPUID {}.{}",
        cpuid.0,
        cpuid.1
    );
    if major != 4 {
        return Err(format!("major version {major}, expected 4"));
    }
    if (major, minor) != cpuid {
        return Err(format!(
            "XENVER_version {major}.{minor} but CPUID says {}.{}",
            cpuid.0, cpuid.1
        ));
    }
    Ok(())
}

fn xen_features() -> TestResult {
    let map = hypercall::get_features(0).map_err(|e| format!("XENVER_get_features(0): {e}"))?;
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
    // Only XENFEAT_NR_SUBMAPS submaps exist: the next one must be refused.
    match hypercall::get_features(feat::XENFEAT_NR_SUBMAPS) {
        Err(hypercall::HypercallError::Xen(_)) => Ok(()),
        Ok(m) => Err(format!(
            "submap {} accepted ({m:#x})",
            feat::XENFEAT_NR_SUBMAPS
        )),
        Err(e) => Err(format!("submap {}: {e}", feat::XENFEAT_NR_SUBMAPS)),
    }
}

fn start_info() -> TestResult {
    let b = boot()?;
    let info = kernel::reread_start_info(b.start_info.paddr)
        .map_err(|e| format!("re-reading start info: {e:?}"))?;
    log::info!(
        "start-info: version {}, cmdline {:?}",
        info.raw.version,
        b.cmdline()
    );
    if info.raw.version > 1 {
        return Err(format!("unknown start info version {}", info.raw.version));
    }
    if info.raw.cmdline_paddr == 0 {
        return Err("no command line".to_string());
    }
    if !b.cmdline().contains("selftest=") {
        return Err(format!("command line {:?} lacks selftest=", b.cmdline()));
    }
    let size = crate::boot_info::start_info_size(info.raw.version);
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

fn memory_map() -> TestResult {
    let b = boot()?;
    let map = b.memory_map();
    let ram = ram_of(map);
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
    let total: u64 = ram.iter().map(|r| r.1).sum();
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
    let mut from_xen = [MemoryRegion::EMPTY; kernel::MAX_MEMORY_REGIONS];
    let n = kernel::hypercall_memory_map(&mut from_xen)
        .map_err(|e| format!("XENMEM_memory_map: errno {e}"))?;
    let xen_ram = ram_of(&from_xen[..n]);
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
    Ok(())
}

fn heap_alloc() -> TestResult {
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

/// Lines of the console flood.
pub const FLOOD_LINES: u32 = 2000;

fn console_flood() -> TestResult {
    let before = console::stats();
    let mut failed = 0u32;
    let mut first = None;
    for i in 1..=FLOOD_LINES {
        // Batched: the backend is notified only when the ring fills, so the writer must wait
        // for it (the ring-full path) many times over.
        let mut result = console::print_batched(format_args!("FLOOD {i} {FLOOD_LINES}\n"));
        if i == FLOOD_LINES {
            result = result.and_then(|()| console::notify());
        }
        if let Err(e) = result {
            failed += 1;
            first.get_or_insert(e);
        }
    }
    let after = console::stats();
    log::info!(
        "console-flood: {} ring-full waits, {} polls, {} event waits",
        after.full_waits - before.full_waits,
        after.polls - before.polls,
        after.event_waits - before.event_waits
    );
    match first {
        None => Ok(()),
        Some(e) => Err(format!(
            "{failed} of {FLOOD_LINES} writes failed, first: {e}"
        )),
    }
}

fn hypercall_enosys() -> TestResult {
    let nr = hypercall::UNASSIGNED_HYPERCALL;
    let ret = hypercall::unassigned().map_err(|e| format!("hypercall {nr}: {e}"))?;
    let enosys = -i64::from(abi::errno::XEN_ENOSYS);
    if ret != enosys {
        return Err(format!("hypercall {nr} returned {ret}, expected {enosys}"));
    }
    Ok(())
}
