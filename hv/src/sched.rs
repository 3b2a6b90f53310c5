//! hv's scheduler: which domain's vCPU runs next and until when, with time passed in
//! (host-tested; the kernel's run loop asks it before every VMRUN).
//!
//! Round robin over the runnable vCPUs with a time slice of [`SLICE_NS`] (10 ms: credit2's
//! longest run, `sched_credit2_max_timer`) and a rate limit of [`RATELIMIT_NS`] (1 ms, as
//! credit2's `sched_ratelimit_us` default): a vCPU woken from a wait (block, poll, HLT) goes
//! first, as credit's BOOST priority does, and preempts the running vCPU once that one has
//! run for the rate limit, so a woken domain waits at most about 1 ms for a CPU while another
//! spins. The kernel enforces the answers with its local APIC timer: it arms it for the
//! `until` of [`Choice::Run`] (and for the deadlines of waiting vCPUs), and a VMRUN under
//! `V_INTR_MASKING` with host IF=1 exits on that interrupt even when the guest spins with
//! interrupts off.
//!
//! Why 10 ms: hv runs under QEMU's TCG, where one exit costs about 8 µs, so a shorter slice
//! would spend a visible share of the CPU on switches between spinning domains; domains that
//! wait for events (all of pvguest's) give the CPU up long before their slice ends, and the
//! boost keeps their wake-up latency at the rate limit, not the slice.

use alloc::vec::Vec;

/// The longest a vCPU runs while another is runnable (credit2's 10 ms maximum).
pub const SLICE_NS: u64 = 10_000_000;
/// The least a vCPU runs before a woken vCPU preempts it (credit2's 1 ms rate limit).
pub const RATELIMIT_NS: u64 = 1_000_000;

/// What a vCPU is doing, as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// It can run.
    Runnable,
    /// It waits (block, poll, HLT) until an event, or until `deadline` (system time, ns).
    Waiting {
        /// When its timer or poll timeout wakes it, if ever.
        deadline: Option<u64>,
    },
    /// It is paused for good (`on_crash = "preserve"`): never runs again.
    Paused,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    state: RunState,
    /// Woken from a wait and not yet run since: it goes first.
    boosted: bool,
    /// When it was woken (for the wake-up latency).
    woken_at: u64,
}

/// The answer to "what now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Run vCPU `slot`; preempt it at `until` (system time) if it still runs then.
    Run {
        /// The vCPU to run.
        slot: usize,
        /// When to come back and choose again (`None`: no other vCPU wants the CPU).
        until: Option<u64>,
    },
    /// No vCPU can run: wait until `until` (the earliest deadline of a waiting vCPU), or,
    /// with `None`, nothing can ever wake one.
    Idle {
        /// When the first waiting vCPU's deadline falls.
        until: Option<u64>,
    },
}

/// Counts of the scheduler's decisions, printed at the end of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedStats {
    /// Times the CPU went from one vCPU to another.
    pub switches: u64,
    /// Preemptions at the end of a slice.
    pub slice_ends: u64,
    /// Preemptions of a vCPU for a woken one (after the rate limit).
    pub boost_preemptions: u64,
    /// vCPUs woken from a wait.
    pub wakeups: u64,
    /// Sum of wake-up latencies (ns from the wake to the first VMRUN after it).
    pub wake_latency_sum: u64,
    /// The largest wake-up latency seen.
    pub wake_latency_max: u64,
}

/// The scheduler of one CPU: a slot per vCPU (`None` once removed), the vCPU on the CPU and
/// since when.
#[derive(Clone, Debug, Default)]
pub struct Scheduler {
    slots: Vec<Option<Slot>>,
    /// The vCPU that ran last and when its current run began.
    current: Option<(usize, u64)>,
    /// The current vCPU yielded: another runnable one goes next.
    yielded: bool,
    /// Counters.
    pub stats: SchedStats,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a runnable vCPU; its slot number.
    pub fn add(&mut self) -> usize {
        let slot = Slot {
            state: RunState::Runnable,
            boosted: false,
            woken_at: 0,
        };
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            self.slots[i] = Some(slot);
            i
        } else {
            self.slots.push(Some(slot));
            self.slots.len() - 1
        }
    }

    /// Removes `slot` (its domain is gone).
    pub fn remove(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = None;
        }
        if self.current.is_some_and(|(c, _)| c == slot) {
            self.current = None;
        }
    }

    /// The state of `slot` (`None` if there is no such vCPU).
    pub fn state(&self, slot: usize) -> Option<RunState> {
        self.slots.get(slot).copied().flatten().map(|s| s.state)
    }

    /// Whether any vCPU is left that is not paused.
    pub fn any_live(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|s| s.state != RunState::Paused)
    }

    /// The vCPUs that wait, with their deadlines.
    pub fn waiting(&self) -> impl Iterator<Item = (usize, Option<u64>)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.as_ref()?.state {
                RunState::Waiting { deadline } => Some((i, deadline)),
                _ => None,
            })
    }

    /// `slot` waits until an event or `deadline`.
    pub fn wait(&mut self, slot: usize, deadline: Option<u64>) {
        if let Some(Some(s)) = self.slots.get_mut(slot) {
            s.state = RunState::Waiting { deadline };
            s.boosted = false;
        }
    }

    /// `slot`'s wait ended at `at` (its event arrived or its deadline passed): it is runnable
    /// and goes first.
    pub fn wake(&mut self, slot: usize, at: u64) {
        if let Some(Some(s)) = self.slots.get_mut(slot)
            && matches!(s.state, RunState::Waiting { .. })
        {
            s.state = RunState::Runnable;
            s.boosted = true;
            s.woken_at = at;
            self.stats.wakeups = self.stats.wakeups.saturating_add(1);
        }
    }

    /// `slot` is paused for good.
    pub fn pause(&mut self, slot: usize) {
        if let Some(Some(s)) = self.slots.get_mut(slot) {
            s.state = RunState::Paused;
            s.boosted = false;
        }
        if self.current.is_some_and(|(c, _)| c == slot) {
            self.current = None;
        }
    }

    /// `slot`, paused, takes `state` again (`xl unpause`); nothing if it is not paused.
    pub fn unpause(&mut self, slot: usize, state: RunState) {
        if let Some(Some(s)) = self.slots.get_mut(slot)
            && s.state == RunState::Paused
        {
            s.state = state;
        }
    }

    /// `slot` gave up the CPU (`SCHEDOP_yield`): the next choice prefers any other runnable
    /// vCPU, as if its slice had ended.
    pub fn yield_now(&mut self, slot: usize) {
        if self.current.is_some_and(|(c, _)| c == slot) {
            self.yielded = true;
        }
    }

    fn runnable(&self, i: usize) -> bool {
        matches!(
            self.slots.get(i),
            Some(Some(Slot {
                state: RunState::Runnable,
                ..
            }))
        )
    }

    fn boosted(&self, i: usize) -> bool {
        self.runnable(i)
            && self
                .slots
                .get(i)
                .copied()
                .flatten()
                .is_some_and(|s| s.boosted)
    }

    /// The next runnable vCPU after `after` in round-robin order (wrapping, `after` itself
    /// last), a boosted one first.
    fn next_after(&self, after: Option<usize>, skip: Option<usize>) -> Option<usize> {
        let n = self.slots.len();
        let start = after.map_or(0, |a| a + 1);
        // Called before every VMRUN: walked twice rather than collected.
        let order = move || {
            (0..n)
                .map(move |k| (start + k) % n)
                .filter(move |&i| Some(i) != skip)
        };
        order()
            .find(|&i| self.boosted(i))
            .or_else(|| order().find(|&i| self.runnable(i)))
    }

    /// The earliest deadline of a waiting vCPU.
    pub fn earliest_deadline(&self) -> Option<u64> {
        self.waiting().filter_map(|(_, d)| d).min()
    }

    /// Chooses what runs at `now` (system time, ns) and records it as running.
    pub fn pick(&mut self, now: u64) -> Choice {
        let current = self.current.filter(|&(c, _)| self.runnable(c));
        let choice = match current {
            Some((c, since)) => {
                let ran = if self.yielded {
                    u64::MAX
                } else {
                    now.saturating_sub(since)
                };
                let other = self.next_after(Some(c), Some(c));
                let boosted_other = other.filter(|&o| self.boosted(o));
                match (other, boosted_other) {
                    (None, _) => (c, since, None),
                    (Some(o), Some(_)) if ran >= RATELIMIT_NS => {
                        self.stats.boost_preemptions =
                            self.stats.boost_preemptions.saturating_add(1);
                        (o, now, Some(now.saturating_add(SLICE_NS)))
                    }
                    (Some(_), Some(_)) => (c, since, Some(since.saturating_add(RATELIMIT_NS))),
                    (Some(o), None) if ran >= SLICE_NS => {
                        self.stats.slice_ends = self.stats.slice_ends.saturating_add(1);
                        (o, now, Some(now.saturating_add(SLICE_NS)))
                    }
                    (Some(_), None) => (c, since, Some(since.saturating_add(SLICE_NS))),
                }
            }
            None => {
                let last = self.current.map(|(c, _)| c);
                match self.next_after(last, None) {
                    Some(o) => {
                        let others = self.next_after(Some(o), Some(o)).is_some();
                        (o, now, others.then(|| now.saturating_add(SLICE_NS)))
                    }
                    None => {
                        // Keep who ran last, so round robin resumes after it.
                        return Choice::Idle {
                            until: self.earliest_deadline(),
                        };
                    }
                }
            }
        };
        let (slot, since, until) = choice;
        self.yielded = false;
        if self.current.map(|(c, _)| c) != Some(slot) && self.current.is_some() {
            self.stats.switches = self.stats.switches.saturating_add(1);
        }
        if let Some(Some(s)) = self.slots.get_mut(slot)
            && s.boosted
        {
            s.boosted = false;
            let latency = now.saturating_sub(s.woken_at);
            self.stats.wake_latency_sum = self.stats.wake_latency_sum.saturating_add(latency);
            self.stats.wake_latency_max = self.stats.wake_latency_max.max(latency);
        }
        self.current = Some((slot, since));
        Choice::Run { slot, until }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn run(s: &mut Scheduler, now: u64) -> usize {
        match s.pick(now) {
            Choice::Run { slot, .. } => slot,
            other => panic!("expected a run at {now}, got {other:?}"),
        }
    }

    #[test]
    fn one_vcpu_runs_without_a_preemption_timer() {
        let mut s = Scheduler::new();
        let a = s.add();
        assert_eq!(
            s.pick(0),
            Choice::Run {
                slot: a,
                until: None
            }
        );
        assert_eq!(
            s.pick(50 * MS),
            Choice::Run {
                slot: a,
                until: None
            }
        );
        assert_eq!(s.stats.switches, 0);
    }

    #[test]
    fn two_spinners_share_the_cpu_by_slices() {
        let mut s = Scheduler::new();
        let a = s.add();
        let b = s.add();
        assert_eq!(
            s.pick(0),
            Choice::Run {
                slot: a,
                until: Some(SLICE_NS)
            }
        );
        // Exits inside the slice keep a.
        assert_eq!(run(&mut s, 3 * MS), a);
        assert_eq!(
            s.pick(9 * MS),
            Choice::Run {
                slot: a,
                until: Some(SLICE_NS)
            }
        );
        // The slice ends: b, with a slice of its own.
        assert_eq!(
            s.pick(SLICE_NS),
            Choice::Run {
                slot: b,
                until: Some(2 * SLICE_NS)
            }
        );
        assert_eq!(run(&mut s, 2 * SLICE_NS), a);
        assert_eq!(s.stats.switches, 2);
        assert_eq!(s.stats.slice_ends, 2);
    }

    #[test]
    fn a_waiting_vcpu_gives_the_cpu_away_and_idles_when_alone() {
        let mut s = Scheduler::new();
        let a = s.add();
        let b = s.add();
        assert_eq!(run(&mut s, 0), a);
        s.wait(a, Some(5 * MS));
        assert_eq!(
            s.pick(MS),
            Choice::Run {
                slot: b,
                until: None
            }
        );
        s.wait(b, None);
        assert_eq!(
            s.pick(2 * MS),
            Choice::Idle {
                until: Some(5 * MS)
            }
        );
        s.wait(a, None);
        assert_eq!(s.pick(2 * MS), Choice::Idle { until: None });
    }

    #[test]
    fn a_woken_vcpu_preempts_a_spinner_after_the_rate_limit() {
        let mut s = Scheduler::new();
        let spinner = s.add();
        let waiter = s.add();
        assert_eq!(run(&mut s, 0), spinner);
        assert_eq!(run(&mut s, 0), spinner);
        s.wait(waiter, Some(4 * MS));
        // The spinner has the CPU to itself: no preemption timer.
        assert_eq!(
            s.pick(MS),
            Choice::Run {
                slot: spinner,
                until: None
            }
        );
        // The waiter's deadline passes at 4 ms and it is woken then; the spinner has run
        // since 0, past the rate limit: the waiter runs at once.
        s.wake(waiter, 4 * MS);
        assert_eq!(
            s.pick(4 * MS + 100),
            Choice::Run {
                slot: waiter,
                until: Some(4 * MS + 100 + SLICE_NS)
            }
        );
        assert_eq!(s.stats.boost_preemptions, 1);
        assert_eq!(s.stats.wakeups, 1);
        assert_eq!(s.stats.wake_latency_max, 100);
    }

    #[test]
    fn the_rate_limit_protects_a_vcpu_that_just_started() {
        let mut s = Scheduler::new();
        let a = s.add();
        let b = s.add();
        s.wait(b, None);
        assert_eq!(run(&mut s, 10 * MS), a);
        s.wake(b, 10 * MS + 100);
        // a began its run at 10 ms: it keeps the CPU until 11 ms.
        assert_eq!(
            s.pick(10 * MS + 200),
            Choice::Run {
                slot: a,
                until: Some(11 * MS)
            }
        );
        assert_eq!(run(&mut s, 11 * MS), b);
        assert_eq!(s.stats.wake_latency_max, 11 * MS - (10 * MS + 100));
    }

    #[test]
    fn boosted_vcpus_go_before_round_robin_order() {
        let mut s = Scheduler::new();
        let a = s.add();
        let b = s.add();
        let c = s.add();
        s.wait(c, None);
        assert_eq!(run(&mut s, 0), a);
        s.wait(a, None);
        s.wake(c, MS);
        // Round robin would give b; the woken c goes first.
        assert_eq!(run(&mut s, MS), c);
        assert_eq!(run(&mut s, MS + SLICE_NS), b);
    }

    #[test]
    fn yield_passes_the_cpu_to_another_runnable_vcpu_only() {
        let mut s = Scheduler::new();
        let a = s.add();
        assert_eq!(run(&mut s, 0), a);
        s.yield_now(a);
        assert_eq!(run(&mut s, 10), a);
        let b = s.add();
        s.yield_now(a);
        assert_eq!(run(&mut s, 20), b);
    }

    #[test]
    fn removed_and_paused_vcpus_never_run_and_slots_are_reused() {
        let mut s = Scheduler::new();
        let a = s.add();
        let b = s.add();
        assert_eq!(run(&mut s, 0), a);
        s.remove(a);
        assert_eq!(s.state(a), None);
        assert_eq!(
            s.pick(MS),
            Choice::Run {
                slot: b,
                until: None
            }
        );
        s.pause(b);
        assert!(!s.any_live());
        assert_eq!(s.pick(2 * MS), Choice::Idle { until: None });
        assert_eq!(s.add(), a);
        assert!(s.any_live());
        assert_eq!(run(&mut s, 3 * MS), a);
    }

    #[test]
    fn waking_a_vcpu_that_does_not_wait_changes_nothing() {
        let mut s = Scheduler::new();
        let a = s.add();
        s.wake(a, 5);
        s.wake(7, 5);
        assert_eq!(s.stats.wakeups, 0);
        assert_eq!(s.state(a), Some(RunState::Runnable));
    }
}
