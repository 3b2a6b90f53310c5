//! `hv`, a tiny type-1 hypervisor speaking the Xen guest ABI.
//!
//! hv boots from QEMU's PVH loader, enables AMD SVM and builds its domains from the first
//! PVH module: either a config archive (`xlcfg::archive`: `xl.cfg` configs and their
//! kernels, one domain per config, ids 1, 2, ... in config order) or a bare PVH ELF (one
//! domain `pvguest` of 128 MiB, like `xl`'s `memory = 128`, its command line after `--` in
//! hv's). Each domain has one vCPU, its own nested page tables, grant table, event channels
//! and xenstore home; hv runs them side by side with nested paging under its scheduler
//! ([`sched`]), answering their hypercalls as Xen 4.17 would, and tears each down as its
//! config's `on_poweroff`/`on_reboot`/`on_crash` says while the others run on. Each guest's
//! console ring goes to the serial port line by line, prefixed `(d<id>) `. Domain 0's
//! console backend and xenstored (one tree for every domain) live inside hv (`dom0`);
//! netback and blkback will follow.
//!
//! Host-testable logic (builds and tests everywhere):
//! - [`guest`]: guest-physical access and the guest page walk (`copy_from_guest`).
//! - [`builder`]: the domain builder (PVH ELF32/ELF64 and Xen's notes, `hvm_start_info`
//!   with the ramdisk module, the ACPI tables, initial registers).
//! - [`cpuid`]: Xen's CPUID leaves from 0x40000000 and the policy over the host's leaves.
//! - [`hypercall`]: hypercall dispatch and Xen's answers.
//! - [`npt`]: the nested page tables.
//! - [`cmdline`]: hv's command line (`<hv options> -- <guest command line>`) and its
//!   options (`npf=`). What QEMU
//!   hands hv (the start info) is read by the `pvh` crate's `boot_info`, and hv's frames come
//!   from its frame allocator ([`frames`], re-exported).
//! - [`counters`], [`svm`]: exit and hypercall counters, the VMCB layout and exit codes, the
//!   MSRs and CR4 checks Xen makes (`svm::msr`, `svm::emulate`), and the one x86 instruction
//!   decoder (`svm::decode`) that gives exits their lengths, `mov` to CR4 its register and an
//!   access outside the domain's memory its operand (completed by `svm::emulate`).
//! - [`dom0`]: domain 0's services inside hv: the console backend, xenstored's ring
//!   connection layer over the `xenstored` crate, the keys Xen's toolstack writes, and the
//!   port table that routes an event sent to domain 0 to the service owning the port.
//! - [`grant`]: the domain's grant table v1 (sizes, versions, copy checks, pins by mappers
//!   and the mapper's maptrack); [`held`]: dead domains' frames still mapped by others.
//! - [`time`]: TSC scale, `vcpu_time_info` versions, the singleshot timer, the RTC date.
//! - [`trace`]: the exit trace, a ring of each domain's last exits (printed when it crashes,
//!   or with hv's option `trace=dump`).
//! - [`evtchn`]: the domain's two-level event channels (port table, pending/mask words).
//! - [`sched`]: the scheduler (round robin, 10 ms slices, woken vCPUs first after a 1 ms
//!   rate limit), with time passed in.
//! - [`vlapic`]: the emulated local APIC (xAPIC page, x2APIC MSRs, timer, self-IPI, EOI).
//! - [`xen_errno`]: [`xen_errno::XenErrno`], the one type of a Xen errno as a hypercall answers it.
//!
//! The kernel proper (`kernel`: boot, descriptor tables, serial, SVM, the domain's exit
//! loop, the console backend) builds only for `x86_64-unknown-none`.
//!
//! # Divergences from Xen
//! - Port I/O: every port is intercepted. `IN` reads all ones and `OUT` is dropped, as Xen
//!   answers a PVH domU without a device model; string I/O (`INS`/`OUTS`, e.g. pvguest's
//!   `rep outsb` mirror of its console to port 0xE9) is skipped whole (RIP moves past it,
//!   RSI/RCX stay as they were). Xen would print port 0xE9 bytes in its own log with
//!   `guest_loglvl=all`; hv drops them because the PV console carries the same text.
//! - Memory outside the domain's RAM and special pages: as on Xen 4.17 for a PVH domU with
//!   no device model (`p2m_mmio_dm`, `handle_mmio`, `null_handler`), an access reads all ones
//!   and its write is dropped; hv decodes the instruction at RIP with `svm::decode` (QEMU has
//!   no decode assists) and completes `mov`, `movzx`, `movsx`, `bt`, `and`, `or`, `cmp` and
//!   `test` (`svm::emulate::complete_access`). Decoding was chosen over mapping one shared
//!   all-ones frame read-only: nothing is mapped, so nothing is charged to the paging pool,
//!   nothing must be undone when the guest later places a page there (`add_to_physmap`,
//!   ballooning), and hv's own accesses to guest memory (hypercall buffers, grants) never
//!   find a frame where Xen finds none. Where hv differs: any other instruction (string
//!   moves and stores, `add`, `xor`, SSE, ...), an instruction fetched from there and a guest
//!   page-table walk through there get `#GP(0)` (Xen's emulator completes the first, and
//!   injects `#PF` for the walk); `bt` leaves the flags it does not define unchanged. A
//!   write to a grant mapped read-only is completed the same way with the write dropped and
//!   the reads from the page, as Xen drops writes to `p2m_grant_map_ro`. The local APIC page
//!   (0xFEE00000) goes to the emulated local APIC ([`vlapic`]) while it is enabled in
//!   xAPIC mode (only `mov` writes it); disabled or in x2APIC mode it still crashes the
//!   domain (Xen reads all ones), and so does every such access with the hv option
//!   `npf=crash` (for debugging; `cargo xtask hv-run --hv-options npf=crash`).
//! - The local APIC ([`vlapic`], Xen's `hvm/vlapic.c`): one vCPU, so IPIs reach itself or
//!   nothing; NMI, INIT, SIPI and SMI IPIs are dropped; no TSC-deadline timer (hidden in
//!   CPUID, its MSR `#GP`); CR8 is not tied to TPR. It carries vCPU 0's own event upcall
//!   vector once the guest sets one with `HVMOP_set_evtchn_upcall_vector` (offered, as Xen
//!   4.17 offers it, by `XEN_HVM_CPUID_UPCALL_VECTOR`; Linux 6.1 takes it): Xen's checks
//!   (`-EFAULT`, a vector below 0x10 `-EINVAL`, a vCPU other than 0 `-ENOENT`, as for a Xen
//!   domain with `vcpus = 1`), the vector asserted at the call and at each raise of
//!   `evtchn_upcall_pending` from 0 to 1, delivered as a fixed edge interrupt the guest
//!   EOIs. hv notices a raise before the guest next runs rather than at the raise (the
//!   guest cannot run in between, so it sees the same interrupts); Xen logs every call,
//!   hv the first (then a change of vector).
//! - Nested page tables come from a per-domain paging pool of Xen's default size (256 pages
//!   per vCPU plus one per MiB of RAM, as `libxl__get_required_paging_memory`), and a table
//!   left empty by a remap goes back to the pool; Xen's HAP keeps emptied tables, so a long
//!   flood of `XENMEM_add_to_physmap` moves to fresh regions answers `-ENOMEM` on Xen (363
//!   moves, then `-ENOMEM`, on stock Xen 4.17 here) and 0 on hv. The pool, the domain's RAM,
//!   its special pages and grant frames go back to hv's frame allocator when the domain ends.
//! - A grant-table frame index is truncated to 32 bits before the limit check, as Xen 4.17
//!   does (an index of 2^32 places frame 0 on both).
//! - Guest kernels: hv takes what Xen 4.17's toolstack takes for `type = "pvh"`
//!   ([`builder::elf`]: ELF32 or ELF64 with a PHYS32_ENTRY note, Xen's note checks and
//!   refusals, an ELF32 without usable notes entered at `e_entry` as the HVM-generic loader
//!   does), except: a `BSD_SYMTAB` note does not load the symbol table after the kernel;
//!   ELF class or data values other than 1 and 2 are refused (libelf reads them as ELF32
//!   and byte-swapped); a note that runs past its segment is not read past it as libelf
//!   reads it (bounded by the image only); notes in a `PT_LOAD` whose file size exceeds its
//!   memory size are refused (libelf would clip them); and the kernel must fit in the
//!   domain's RAM below the special pages (hv has no other memory to put it in).
//! - MSRs ([`svm::msr`]) are answered as Xen 4.17 answers a PVH domU on AMD: APIC base
//!   (the emulated local APIC's: enable, x2APIC mode), PAT, the MTRRs (capability, default type, fixed and
//!   variable ranges with Xen's checks), DEBUGCTL and the LBR registers (any value, as Xen's
//!   SVM path takes it; QEMU has no LBR virtualisation, so they are stored only), the AMD
//!   registers Xen reads as zero or drops writes to, `DE_CFG`, `VM_HSAVE_PA` (the guest's
//!   own), `TSC_AUX` (32 bits, with RDTSCP or RDPID; per domain, loaded before its VMRUN).
//!   Everything else is `#GP`, as in Xen without `msr_relaxed` (`MISC_ENABLE` too: Xen
//!   answers it on VMX only). Not yet: the TSC and TSC_ADJUST MSRs (Xen reads and writes the
//!   guest's TSC), `SPEC_CTRL`/`VIRT_SPEC_CTRL`, the machine-check banks, the
//!   performance counters (vPMU off in Xen answers most of them), `OSVW`, and
//!   `MSR_IA32_XSS` (so XSAVES is hidden from CPUID).
//! - CPUID ([`cpuid::policy_leaf`]): the host's leaves filtered by Xen 4.17's default HVM
//!   featureset and `recalculate_misc` (the local APIC and x2APIC offered, as Xen's HVM
//!   policy offers them), except that hv also hides TSC-deadline (see the last item), PKU
//!   (hv's page walk has no protection keys) and XSAVES; the topology and cache leaves Xen synthesises from the vCPU count are
//!   empty or the host's; the leaf counts are the host's.
//! - Instructions and exceptions kept from the guest ([`svm::emulate::answer`]), as Xen
//!   4.17's `construct_vmcb` intercepts them and `svm_vmexit_handler` answers a PVH domU:
//!   MONITOR and MWAIT get `#UD` (CPUID offers no MONITOR); INVD and WBINVD are stepped over
//!   (Xen flushes only for a domain with devices passed through, INVD as WBINVD); `#DB` and
//!   `#AC` are intercepted and reflected unchanged, so that an endless delivery loop
//!   (XSA-156) exits to hv instead of hanging the CPU (the `hostile` group's `cpl3` class
//!   compares both with Xen from CPL 3: a single step's `#DB` under QEMU; its unaligned load
//!   with CR0.AM and EFLAGS.AC set completes there, as QEMU's TCG checks no alignment, and
//!   raises `#AC` only on hardware). RDTSC, RDTSCP and RDPMC are not
//!   intercepted, as in Xen (default TSC mode, no vPMU): RDTSCP reads the domain's own
//!   `TSC_AUX`, loaded before each VMRUN. Where hv differs: `#MC` is not intercepted (Xen
//!   takes it for the host's machine-check handling; hv has none), nor ICEBP (Xen delivers
//!   it as a privileged software `#DB`; here it is the CPU's `#DB`, reflected), and an
//!   intercepted `#DB`/`#AC` that interrupted the delivery of `#DF` replaces it (Xen's
//!   `hvm_combine_hw_exceptions` crashes the domain; any other interrupted event is
//!   replaced on both, as Xen's `svm_inject_event` overwrites it). EFER writes that change LME while
//!   CR0.PG is set get `#GP(0)`, as `hvm_set_efer` refuses them.
//! - The `hostile` self-test group's classes whose answers differ from stock Xen 4.17's
//!   (xtask's `compare::HOSTILE_DIVERGENCES`; their call counts and verdicts are still
//!   compared):
//!   - `hostile.msrs`: reading the TSC MSR is `#GP` (Xen returns the guest's TSC,
//!     xen/arch/x86/hvm/hvm.c:3539), and so is `MSR_AMD_PATCHLEVEL` (Xen forwards the host's
//!     microcode revision, xen/arch/x86/msr.c:131); a PAT write with reserved memory types is
//!     `#GP` on hv as on hardware, while Xen leaves PAT to the CPU under nested paging
//!     (xen/arch/x86/hvm/svm/vmcb.c:164) and QEMU's TCG takes any value.
//! - CR4 writes are intercepted and checked as `hvm_set_cr4` checks them against the
//!   guest's CPUID (`#GP` for a reserved or unoffered bit, PAE cleared in long mode, PCIDE
//!   from 0 with `CR3[11:0]` or outside long mode, CET without CR0.WP). CR0 and CR3 writes
//!   are not intercepted (QEMU checks them in the guest).
//! - Hypercalls hv does not implement yet answer `-ENOSYS` and are counted as
//!   `COUNTER hypercall.enosys`: `EVTCHNOP_init_control` that passes Xen's checks (hv has no
//!   FIFO event channels: Xen would answer 0 and switch the domain to them; a vCPU other
//!   than 0 is `-ENOENT`, a misplaced control block or a frame that is not RAM or a special
//!   page `-EINVAL`; `EVTCHNOP_expand_array` answers `-EOPNOTSUPP` as Xen does before
//!   `init_control`), `EVTCHNOP_bind_pirq` and `reset`; `GNTTABOP_unmap_and_replace` /
//!   `transfer` / `get_status_frames` / `swap_grant_ref` / `cache_flush`;
//!   `register_vcpu_time_memory_area`, `get_physid`,
//!   `send_nmi`, `initialise`, `up`, `down` and the periodic timer (its argument checks are
//!   Xen's); `HVMOP_set_param` of the guest-settable parameters other than
//!   `HVM_PARAM_CALLBACK_IRQ`; the HVM operations other than `set_param`, `get_param` and
//!   `set_evtchn_upcall_vector`; `SCHEDOP_shutdown_code` and `watchdog`; physdev, mmuext,
//!   multicall, vm_assist, argo, dm_op, hypfs. `sysctl` and `domctl` answer as Xen's
//!   dummy XSM policy answers a domU (`-EFAULT`, `-EACCES` for another interface version,
//!   `-ESRCH` for a domain other than 0 and the caller, else `-EPERM`), except that the
//!   sub-operation argument checks Xen makes before its permission check (e.g.
//!   `iomem_permission`'s wrap check, `-EINVAL`) are not made.
//! - Event channels: domain 0's end of the store and console channels is inside hv (ports
//!   1 and 2 of domain 0); hv's domain 0 offers no other port, so `bind_interdomain` to
//!   domain 0 answers `-EINVAL`, and `GNTTABOP_copy` through a grant of domain 0 answers
//!   `GNTST_general_error` (Xen would answer `GNTST_bad_gntref` past the end of dom0's
//!   table). The port table
//!   grows in buckets of 64 ports, as Xen's `struct evtchn` buckets on x86_64. Between
//!   domUs, ports, `GNTTABOP_copy` and `GNTTABOP_map_grant_ref` follow Xen's checks
//!   ([`evtchn`], [`grant`]), except: a domain mapping its own grant gets
//!   `GNTST_general_error` (Xen maps it); a mapping's `dev_bus_addr` is 0; a domain holds at
//!   most 256 mappings (Xen's maptrack grows to `max_maptrack_frames`) and a domain's
//!   grants at most 256 pins; mapping over one of the domain's RAM pages replaces it and
//!   the unmap leaves a hole, as in Xen, but the RAM page stays the domain's until it dies.
//!   A dead granter's frames stay held until the last mapping of them is unmapped, as Xen
//!   keeps the page referenced.
//! - `HVM_PARAM_CALLBACK_IRQ` of type GSI or PCI INTx is stored but never delivers (a PVH
//!   domU has no IO-APIC or PIC, so Xen ignores them too); a callback vector below 32 is
//!   stored but never injected (Xen would inject it).
//! - Time: hv's own timer is the local APIC timer (xAPIC MMIO, one-shot, calibrated
//!   against the TSC), armed before each VMRUN for the earliest of the running domain's
//!   slice end, its singleshot deadline and every waiting domain's deadline, and while hv
//!   halts with no domain to run; it is armed for at most 1 ms at a time (see
//!   `kernel::machine`). Without a usable local APIC hv spins on the TSC instead, and a
//!   domain that never exits is never preempted. When no domain can run and none has a
//!   deadline, nothing can wake them: each crashes with a message saying so (Xen would wait
//!   for ever). System time counts from hv's start, for every domain. `vcpu_time_info` is
//!   stamped at build and after every wait (Xen also refreshes it at each reschedule); the
//!   wall clock comes from the CMOS RTC at boot. The periodic timer is not implemented.
//! - Scheduling: one CPU, round robin with 10 ms slices, a woken vCPU first once the
//!   running one has had 1 ms ([`sched`]); not credit2's credits or weights (`cpu_weight`
//!   and `cap` are not read from configs).
//! - Domains: a restart (`on_* = "restart"`) builds the domain again from its config under
//!   the next domain id, as xl does, with no limit on how often; each domain's UUID is
//!   fixed by its id (xl makes random ones). A hypercall that names another domU which
//!   exists gets Xen's XSM refusal, `-EPERM`, in `XENMEM_current/maximum_reservation`,
//!   `XENMEM_add_to_physmap`, `HVMOP_get_param` and `EVTCHNOP_status/alloc_unbound`; the
//!   other calls still answer as if it did not exist (`-ESRCH` and the like; issue "Between
//!   hv's domains").
//! - Grant tables: only version 1 (as Xen with `max_grant_version = 1`); the table's
//!   frames are allocated when first placed with `XENMEM_add_to_physmap` (Xen allocates
//!   them when the table grows); entries of frames never placed read as zero, as fresh
//!   frames do in Xen.
//! - `XENVER_guest_handle` is the domain's UUID, fixed by its id (xl makes a random one);
//!   `XENVER_extraversion` (`-hv`), `compile_info` and `changeset` give hv's own strings,
//!   not a build's;
//!   `platform_parameters` answers `-ENOSYS` (its answer depends on the caller's mode).
//! - `HLT` with IF=1 waits for an upcall (see Time); with IF=0 it powers the domain off,
//!   as in Xen.
//! - ACPI ([`builder::acpi`]): the tables libxl builds for a PVH domU, in its three regions
//!   at 0xFC000000 and its memory-map entries, except an empty DSDT (Xen's declares the
//!   processor objects), a revision 5 FADT with the HW-reduced flag (libacpi's is revision 4
//!   with PM blocks) and no separate revision 1 FADT for the RSDT.
//! - `VCPUOP_register_runstate_memory_area` copies the runstate to the area when it is
//!   registered; hv does not copy it again at each reschedule as Xen does (so a guest's
//!   steal time stays what it read first), and `VMASST_TYPE_runstate_update_flag` is not
//!   offered (`vm_assist` answers `-ENOSYS`).
//! - Machine checks ([`svm::msr`]): Xen's vMCE MSRs for AMD (two banks, `MCi_CTL` all ones,
//!   status, address and misc stored); hv never injects a machine check.
//! - Ramdisk: xl's `ramdisk` is the start info's one module, on the page after the kernel,
//!   with no command line of its own, as libxl passes it; hv has no decompressor, so a
//!   kernel must be an ELF (Linux's `vmlinux`, not its bzImage, which xl unpacks).
//! - The guest page walk behind `copy_from_guest`/`copy_to_guest` does not set Accessed/Dirty
//!   bits in the guest's page tables (Xen's does); 32-bit, PAE and 5-level guest paging
//!   answer `-EFAULT` (not implemented).
//! - CPUID hides the TSC-deadline timer (the emulated local APIC has none).
//! - Ballooning ([`hypercall::memory`]): `XENMEM_decrease_reservation`, `populate_physmap`
//!   and `increase_reservation` take Xen 4.17's checks and answers for a domU (order 9 at
//!   most, the count of extents done, the start extent for a refused request, continuations
//!   with `MEMOP_EXTENT_SHIFT`, `max_pages` as the ceiling, a populated extent that cannot be
//!   mapped kept and counted, the page a populate maps over kept and counted, the page
//!   `XENMEM_add_to_physmap` maps over given back, another domain's page mapped through a
//!   grant refused to a decrease and crashing the domain that populates over it, a page
//!   another domain maps kept until both are done with it); `current_reservation`,
//!   `maximum_reservation`, `maximum_ram_page` (hv's host) and the PoD target queries
//!   (refused) answer as Xen's. `max_pages` is `memory` plus 1 MiB as xl sets it (`maxmem`
//!   must equal `memory` on hv): 33024 for 128 MiB on both. `tot_pages` counts the domain's
//!   RAM and its console and xenstore pages; Xen's toolstack populates more (its other
//!   special pages, the ACPI tables): the `balloon` group's start saw 32769 on hv and 32784
//!   on stock Xen.
//!   A ballooned-out page goes back to hv's frame allocator if it joins a free range, or
//!   takes a range of its own while half the allocator's table of 32 ranges stays unused
//!   (kept for teardowns); otherwise the domain keeps it as a spare, uncounted, for its next
//!   populate, and it is freed at teardown (so pages ballooned out in an order that never
//!   touches free memory reach other domains only then). A page the domain gave back while
//!   another domain mapped it, or while its `vcpu_info` was on it, stays counted until the
//!   domain ends (Xen counts it until the last reference goes). A request with address bits below the host's is served only from frames
//!   already below them (Xen allocates there). A domain's record of frames outside its RAM
//!   block holds at most 1024 runs (a populate that needs more fails, as for no memory).
//!   Reading a ballooned-out page crashes the domain (see the nested page fault item).
//!   `XENMEM_exchange`, `maximum_gpfn` and populate-on-demand are not implemented;
//!   `XENMEM_remove_from_physmap` answers as Xen for a frame with nothing behind it
//!   (`-ENOENT`, xen/common/memory.c:1646), and removing a page that is there is not
//!   implemented (`-ENOSYS`).
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

pub mod builder;
pub mod cmdline;
pub mod counters;
pub mod cpuid;
pub mod dom0;
pub mod evtchn;
/// The frame allocator (pvh's, shared with pvguest).
pub use pvh::frames;
pub mod grant;
pub mod guest;
pub mod held;
pub mod hypercall;
pub mod layout;
pub mod npt;
pub mod sched;
pub mod svm;
pub mod time;
pub mod trace;
pub mod vlapic;
pub mod xen_errno;

#[cfg(target_os = "none")]
pub mod kernel;
