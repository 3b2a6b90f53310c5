//! Self-tests (group `events`) of time and event channels: the monotonic clock, timer
//! sleeps, the wall clock, an event-channel loopback and masking; and the group's `FACT
//! events.*` lines (the port limit and the errno of each call Xen refuses).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use abi::xen::DOMID_SELF;

use super::platform::{Test, TestResult};
use crate::proto::evtchn::Port;
use crate::xen::events::{self, PortStatus};
use crate::xen::hypercall;
use crate::xen::time;
use xenbus::Instant;

/// The tests, in order.
pub const TESTS: &[Test] = &[
    ("clock-monotonic", clock_monotonic),
    ("timer-sleep", timer_sleep),
    ("wallclock", wallclock),
    ("evtchn-loopback", evtchn_loopback),
    ("evtchn-mask", evtchn_mask),
];

const MS: u64 = 1_000_000;

/// Probes the event-channel limits and refusals; `(key, value)` for the group's FACT lines.
/// Also logs the cost of a hypercall round trip and of an event delivered to this domain.
pub fn facts() -> Vec<(&'static str, String)> {
    use abi::event_channel as ec;
    let mut facts = Vec::new();
    let raw = |cmd: u32, mut arg: [u32; 6]| match hypercall::evtchn_op_raw(cmd, &mut arg) {
        Ok(r) => format!("{r}"),
        Err(e) => format!("{e}"),
    };
    // The highest port this domain can allocate, and the answer past it.
    let mut ports = Vec::new();
    let beyond = loop {
        match events::alloc_unbound(DOMID_SELF) {
            Ok(p) if ports.len() < 5000 => ports.push(p),
            Ok(_) => break "no limit".to_string(),
            Err(events::EventError::Hypercall(hypercall::HypercallError::Xen(n))) => {
                break format!("{n}");
            }
            Err(e) => break format!("{e}"),
        }
    };
    let max = ports.iter().map(|p| p.get()).max().unwrap_or(0);
    for p in ports {
        let _ = events::close(p);
    }
    facts.push(("max-port", format!("{max}")));
    facts.push(("alloc-beyond-max", beyond));
    let self_dom = u32::from(DOMID_SELF);
    facts.push((
        "bad-port-errno",
        raw(ec::EVTCHNOP_SEND, [4095, 0, 0, 0, 0, 0]),
    ));
    facts.push((
        "unmask-bad-port",
        raw(ec::EVTCHNOP_UNMASK, [4095, 0, 0, 0, 0, 0]),
    ));
    facts.push(("close-port-0", raw(ec::EVTCHNOP_CLOSE, [0; 6])));
    // alloc_unbound { dom = 0, remote_dom = DOMID_SELF }: another domain's port.
    facts.push((
        "alloc-unbound-dom0",
        raw(ec::EVTCHNOP_ALLOC_UNBOUND, [self_dom << 16, 0, 0, 0, 0, 0]),
    ));
    // bind_interdomain to a free port of ours, and to a domain that does not exist.
    facts.push((
        "bind-interdomain-free-port",
        raw(ec::EVTCHNOP_BIND_INTERDOMAIN, [self_dom, 1000, 0, 0, 0, 0]),
    ));
    facts.push((
        "bind-interdomain-no-domain",
        raw(ec::EVTCHNOP_BIND_INTERDOMAIN, [0x7000, 1, 0, 0, 0, 0]),
    ));
    // VIRQ_TIMER is bound already (time::init); an unknown VIRQ; a per-vCPU VIRQ on vCPU 1.
    facts.push((
        "bind-virq-timer-again",
        raw(ec::EVTCHNOP_BIND_VIRQ, [ec::VIRQ_TIMER, 0, 0, 0, 0, 0]),
    ));
    facts.push((
        "bind-virq-24",
        raw(ec::EVTCHNOP_BIND_VIRQ, [24, 0, 0, 0, 0, 0]),
    ));
    facts.push((
        "bind-virq-vcpu-1",
        raw(ec::EVTCHNOP_BIND_VIRQ, [ec::VIRQ_DEBUG, 1, 0, 0, 0, 0]),
    ));
    facts.push((
        "bind-ipi-vcpu-1",
        raw(ec::EVTCHNOP_BIND_IPI, [1, 0, 0, 0, 0, 0]),
    ));
    facts.push(("status-dom0", raw(ec::EVTCHNOP_STATUS, [0, 1, 0, 0, 0, 0])));
    measure_costs();
    facts
}

static COST_HITS: AtomicU32 = AtomicU32::new(0);

/// Logs the mean cost of a hypercall round trip (`xen_version`) and of an event sent to a
/// port of this domain until its handler ran (busy wait, no halt).
fn measure_costs() {
    const N: u64 = 200;
    let Ok(t0) = now() else { return };
    for _ in 0..N {
        let _ = hypercall::xen_version();
    }
    let Ok(t1) = now() else { return };
    let Ok((a, b)) = loopback_pair() else { return };
    let bound = events::bind(
        a,
        Box::new(|_| {
            COST_HITS.fetch_add(1, Ordering::SeqCst);
        }),
    );
    let _ = events::take_latched(b);
    let mut delivered = 0u64;
    let Ok(t2) = now() else { return };
    if bound.is_ok() {
        for _ in 0..N {
            let before = COST_HITS.load(Ordering::SeqCst);
            if events::send(b).is_err() {
                break;
            }
            let mut spins = 0u32;
            while COST_HITS.load(Ordering::SeqCst) == before && spins < 10_000_000 {
                spins += 1;
                core::hint::spin_loop();
            }
            delivered += 1;
        }
    }
    let Ok(t3) = now() else { return };
    let _ = close_pair(a, b);
    log::info!(
        "events: hypercall round trip {} ns (mean of {N} xen_version), event delivery {} ns (mean of {delivered} sends to a handler)",
        (t1.as_nanos() - t0.as_nanos()) / N,
        (t3.as_nanos() - t2.as_nanos()) / delivered.max(1)
    );
}
/// Upper bounds for things that take microseconds on an idle host: generous, because QEMU's
/// software emulation on a loaded host can stall the whole machine for seconds.
const WAIT_MS: u64 = 10_000;

fn now() -> Result<Instant, String> {
    time::now().map_err(|e| format!("clock: {e:?}"))
}

fn clock_monotonic() -> TestResult {
    let start = now()?;
    let mut prev = start;
    // Back-to-back reads never go backwards...
    for i in 0..100_000u32 {
        let t = now()?;
        if t < prev {
            return Err(format!(
                "read {i}: {} ns after {} ns",
                t.as_nanos(),
                prev.as_nanos()
            ));
        }
        prev = t;
    }
    // ...and the clock moves: spin (without sleeping) until 2 ms have passed.
    let mut spins = 0u64;
    while now()?.as_nanos() < start.as_nanos() + 2 * MS {
        spins += 1;
        if spins > 50_000_000 {
            return Err(format!("clock stuck near {} ns", prev.as_nanos()));
        }
        core::hint::spin_loop();
    }
    log::info!(
        "clock-monotonic: system time {} ms, 100000 reads in {} us",
        start.as_nanos() / MS,
        (prev.as_nanos() - start.as_nanos()) / 1000
    );
    if start.as_nanos() == 0 {
        return Err("system time is 0".into());
    }
    Ok(())
}

fn timer_sleep() -> TestResult {
    let before = time::stats();
    let t0 = now()?;
    time::sleep_ms(50).map_err(|e| format!("sleep: {e}"))?;
    let t1 = now()?;
    let after = time::stats();
    let slept = t1.as_nanos() - t0.as_nanos();
    log::info!(
        "timer-sleep: 50 ms sleep took {} us, {} timer events, {} halts",
        slept / 1000,
        after.timer_events - before.timer_events,
        after.halts - before.halts
    );
    if slept < 50 * MS {
        return Err(format!("woke early: {} us", slept / 1000));
    }
    if slept > WAIT_MS * MS {
        return Err(format!("woke late: {} us", slept / 1000));
    }
    if after.halts == before.halts {
        return Err("never idled".into());
    }
    if after.timer_events == before.timer_events {
        return Err("no VIRQ_TIMER event".into());
    }
    // The timer also interrupts a vCPU that never idles: armed 5 ms ahead, it must arrive
    // while this loop spins (not before its deadline).
    let spin_before = time::stats().timer_events;
    let t4 = now()?;
    let due = t4.add_millis(5);
    hypercall::set_singleshot_timer(0, due).map_err(|e| format!("singleshot: {e}"))?;
    let mut fired = None;
    while now()?.as_nanos() < t4.as_nanos() + WAIT_MS * MS {
        if time::stats().timer_events > spin_before {
            fired = Some(now()?);
            break;
        }
        core::hint::spin_loop();
    }
    let Some(fired) = fired else {
        return Err("VIRQ_TIMER never interrupted a spinning vCPU".into());
    };
    if fired < due {
        return Err(format!(
            "VIRQ_TIMER {} us before its deadline while spinning",
            (due.as_nanos() - fired.as_nanos()) / 1000
        ));
    }
    log::info!(
        "timer-sleep: a spinning vCPU got VIRQ_TIMER {} us after its deadline",
        (fired.as_nanos() - due.as_nanos()) / 1000
    );
    // A timeout: a condition that never holds ends at its deadline, not before.
    let t2 = now()?;
    let deadline = t2.add_millis(20);
    let held = time::wait_until(deadline, || false).map_err(|e| format!("wait: {e}"))?;
    let t3 = now()?;
    if held || t3 < deadline {
        return Err(format!(
            "20 ms timeout returned {held} after {} us",
            (t3.as_nanos() - t2.as_nanos()) / 1000
        ));
    }
    Ok(())
}

fn wallclock() -> TestResult {
    let a = time::wall_clock().map_err(|e| format!("wall clock: {e:?}"))?;
    time::sleep_ms(20).map_err(|e| format!("sleep: {e}"))?;
    let b = time::wall_clock().map_err(|e| format!("wall clock: {e:?}"))?;
    log::info!("wallclock: {}.{:09} s since the epoch", a.secs, a.nanos);
    // 2020-01-01 .. 2100-01-01: the dom0 clock (QEMU's RTC, the host's time) is set.
    if !(1_577_836_800..4_102_444_800).contains(&a.secs) {
        return Err(format!("implausible wall clock {} s", a.secs));
    }
    let diff = (b.secs * 1_000_000_000 + u64::from(b.nanos))
        .checked_sub(a.secs * 1_000_000_000 + u64::from(a.nanos))
        .ok_or("wall clock went backwards")?;
    if !(20 * MS..WAIT_MS * MS).contains(&diff) {
        return Err(format!(
            "wall clock moved {} us over a 20 ms sleep",
            diff / 1000
        ));
    }
    Ok(())
}

/// An unbound port for this domain and a second port bound to it: `(unbound, bound)`.
fn loopback_pair() -> Result<(Port, Port), String> {
    let a = events::alloc_unbound(DOMID_SELF).map_err(|e| format!("alloc_unbound: {e}"))?;
    match events::status(a).map_err(|e| format!("status: {e}"))? {
        PortStatus::Unbound { .. } => {}
        other => return Err(format!("new port {} is {other:?}", a.get())),
    }
    let b = events::bind_interdomain(DOMID_SELF, a).map_err(|e| {
        let _ = events::close(a);
        format!("bind_interdomain: {e}")
    })?;
    Ok((a, b))
}

fn close_pair(a: Port, b: Port) -> TestResult {
    events::close(a).map_err(|e| format!("close {}: {e}", a.get()))?;
    events::close(b).map_err(|e| format!("close {}: {e}", b.get()))
}

fn wait_hits(hits: &AtomicU32, want: u32, millis: u64) -> Result<bool, String> {
    let deadline = now()?.add_millis(millis);
    time::wait_until(deadline, || hits.load(Ordering::SeqCst) >= want)
        .map_err(|e| format!("wait: {e}"))
}

static LOOP_A: AtomicU32 = AtomicU32::new(0);
static LOOP_B: AtomicU32 = AtomicU32::new(0);

fn evtchn_loopback() -> TestResult {
    let (a, b) = loopback_pair()?;
    let result = loopback_checks(a, b);
    let closed = close_pair(a, b);
    result?;
    closed?;
    match events::status(a).map_err(|e| format!("status after close: {e}"))? {
        PortStatus::Closed => Ok(()),
        other => Err(format!("port {} after close: {other:?}", a.get())),
    }
}

fn loopback_checks(a: Port, b: Port) -> TestResult {
    let sa = events::status(a).map_err(|e| format!("status: {e}"))?;
    let sb = events::status(b).map_err(|e| format!("status: {e}"))?;
    log::info!(
        "evtchn-loopback: ports {} and {}: {sa:?}, {sb:?}",
        a.get(),
        b.get()
    );
    let (PortStatus::Interdomain { port: pa, .. }, PortStatus::Interdomain { port: pb, .. }) =
        (sa, sb)
    else {
        return Err(format!("not connected: {sa:?}, {sb:?}"));
    };
    if pa != b.get() || pb != a.get() {
        return Err(format!("ends cross wrongly: {sa:?}, {sb:?}"));
    }
    LOOP_A.store(0, Ordering::SeqCst);
    LOOP_B.store(0, Ordering::SeqCst);
    let bind = |p: Port, hits: &'static AtomicU32| {
        events::bind(
            p,
            Box::new(move |_| {
                hits.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .map_err(|e| format!("bind {}: {e}", p.get()))
    };
    bind(a, &LOOP_A)?;
    bind(b, &LOOP_B)?;
    // Xen sets the newly bound port pending (event_channel.h): b's handler runs on unmask.
    if !wait_hits(&LOOP_B, 1, WAIT_MS)? {
        return Err("bind_interdomain left the new port not pending".into());
    }
    let sent_before = events::stats().delivered;
    events::send(b).map_err(|e| format!("send: {e}"))?;
    if !wait_hits(&LOOP_A, 1, WAIT_MS)? {
        return Err(format!("handler of port {} did not run", a.get()));
    }
    events::send(a).map_err(|e| format!("send: {e}"))?;
    if !wait_hits(&LOOP_B, 2, WAIT_MS)? {
        return Err(format!("handler of port {} did not run", b.get()));
    }
    let (ha, hb) = (LOOP_A.load(Ordering::SeqCst), LOOP_B.load(Ordering::SeqCst));
    if (ha, hb) != (1, 2) {
        return Err(format!(
            "handlers ran {ha} and {hb} times, expected 1 and 2"
        ));
    }
    if events::stats().delivered < sent_before + 2 {
        return Err("the upcall did not count the deliveries".into());
    }
    Ok(())
}

static MASK_A: AtomicU32 = AtomicU32::new(0);

fn evtchn_mask() -> TestResult {
    let (a, b) = loopback_pair()?;
    let result = mask_checks(a, b);
    let closed = close_pair(a, b);
    result?;
    closed
}

fn mask_checks(a: Port, b: Port) -> TestResult {
    MASK_A.store(0, Ordering::SeqCst);
    events::bind(
        a,
        Box::new(|_| {
            MASK_A.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .map_err(|e| format!("bind: {e}"))?;
    events::mask(a);
    events::send(b).map_err(|e| format!("send: {e}"))?;
    // Masked: the event is held (pending, not delivered) however long we wait.
    time::sleep_ms(20).map_err(|e| format!("sleep: {e}"))?;
    if MASK_A.load(Ordering::SeqCst) != 0 {
        return Err("handler ran while the port was masked".into());
    }
    if !events::is_pending(a) {
        return Err("masked port not pending after send".into());
    }
    events::unmask(a).map_err(|e| format!("unmask: {e}"))?;
    if !wait_hits(&MASK_A, 1, WAIT_MS)? {
        return Err("held event not delivered after unmask".into());
    }
    if events::is_pending(a) {
        return Err("port still pending after delivery".into());
    }
    Ok(())
}
