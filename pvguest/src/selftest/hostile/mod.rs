//! Self-test group `hostile` (issue 23; not part of `platform`): a hostile guest's calls,
//! seeded and deterministic (`hostile-seed=`, default 1; `hostile-calls=`, default 1000,
//! shared out among the generated classes), in classes whose answers are compared between
//! stock Xen and hv:
//!
//! - `ops`: unassigned hypercall numbers, PV-only hypercalls, unknown sub-operations;
//! - `ports`: event-channel operations on ports past the table's end, xl's limit and the
//!   2-level ABI's, bad VIRQs and vCPUs;
//! - `grants`: grant references past the table (from `GNTTABOP_query_size`'s `nr_frames`),
//!   unused entries, bad copy lengths, handles never given, tables grown past their limit,
//!   copies from and to the canary frame;
//! - `frames`: reservation and physmap operations on frames past RAM (from the memory map),
//!   on the canary frame, with huge orders and for other domains;
//! - `domids`: calls naming other domains: ids far above any created, `DOMID_IO`/`XEN`/
//!   `COW`/`INVALID`/`IDLE`, ids with the top bit set, and (on hv's isolation boot) the
//!   victim's;
//! - `buffers`: arguments in a hole, unmapped, non-canonical, wrapping past 2^64, crossing
//!   into a hole or between two pages;
//! - `svm`: VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA and VMMCALL with numbers past
//!   the hypercall table, answered with the vector they raised (recorded by `trap`);
//! - `msrs`: RDMSR and WRMSR of a set of MSRs (#GP, or the value or its class), RDPMC,
//!   RDTSCP (the `TSC_AUX` the group wrote), MONITOR and MWAIT;
//! - `cpl3`: a few instructions at CPL 3 (`arch::user`): an unaligned load with alignment
//!   checks on (`#AC`, intercepted by hv and Xen against XSA-156 and reflected; QEMU's TCG
//!   checks no alignment, so there the load completes on both), a single step (`#DB`, also
//!   intercepted and reflected), and the CPL and `#GP` of a privileged instruction;
//! - `xenstore`: the `xs-quota` group's floods, up to and past each quota (the compared runs
//!   set smaller node, transaction-node and memory quotas on both platforms, xtask's
//!   `xen::hostile::QUOTAS`, so that each flood is about a hundred requests, and name them
//!   in `hostile-xs-quotas=<nodes>,<transaction nodes>,<memory>`: each flood must then be
//!   refused within them).
//!
//! Each class prints `FACT hostile.<class>.calls <n>`, `FACT hostile.<class>.errnos
//! <digest>` (FNV-1a over the answers in order, [`digest`]) and `TEST hostile-<class> ok`
//! once its calls returned; its answers per kind are logged. `TEST hostile-canary-unread`
//! fails if a copy brought the canary's pattern (`canary`) into the group's page.
//! `hostile-canary=<frame>` and `hostile-victim=<id>` aim the frame and domain-id calls
//! (hv's isolation boot passes the victim's canary's host frame and id); without them the
//! canary is a frame past RAM and the victim an id far above any created.

pub mod digest;

#[cfg(target_os = "none")]
#[allow(clippy::cast_possible_truncation)] // bad numbers are cut to their fields on purpose
mod calls;
#[cfg(target_os = "none")]
pub mod canary;
#[cfg(target_os = "none")]
mod trap;

#[cfg(target_os = "none")]
pub use run::run;

#[cfg(target_os = "none")]
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
mod run;
