//! The emulated local APIC of a PVH domU's vCPU, as Xen 4.17's `xen/arch/x86/hvm/vlapic.c`
//! provides it: the registers behind the xAPIC MMIO page ([`Vlapic::mmio_read`],
//! [`Vlapic::mmio_write`]) and the x2APIC MSRs 0x800..=0x8ff ([`Vlapic::msr_read`],
//! [`Vlapic::msr_write`], with Xen's `#GP` checks), the timer in one-shot and periodic
//! modes, IPIs to itself through the ICR (or x2APIC `SELF_IPI`), interrupt acceptance (the
//! highest IRR above PPR) and EOI. Time is passed in (system time, ns); the kernel fires
//! the timer ([`Vlapic::fire_timer`]) and injects [`Vlapic::pending`].
//!
//! Where hv differs from Xen: one vCPU, so an IPI reaches this vCPU or none; NMI, INIT,
//! SIPI, SMI and remote-read IPIs are dropped (Xen injects an NMI, resets or starts a vCPU,
//! ignores SMI/remote read, crashes the domain on ExtINT); a periodic timer that missed
//! ticks fires once and re-arms one period after `now` (Xen's default
//! `delay_for_missed_ticks` mode does the same for a descheduled vCPU); the TSC-deadline
//! mode is stored but its MSR is not offered (hv hides TSC-deadline in CPUID).

/// `APIC_DEFAULT_PHYS_BASE`: where the xAPIC page is (Xen refuses to move it while enabled).
pub const DEFAULT_BASE: u64 = 0xfee0_0000;
/// `VLAPIC_VERSION`: version 0x14, six LVT entries (max LVT 5).
pub const VERSION: u32 = 0x0005_0014;
/// `APIC_BUS_CYCLE_NS`: Xen's vLAPIC counts at 100 MHz.
pub const BUS_CYCLE_NS: u64 = 10;
/// vpt's floor for a periodic timer's period (`create_periodic_time`: 0.1 ms).
pub const MIN_PERIOD_NS: u64 = 100_000;
/// The first x2APIC MSR (`MSR_X2APIC_FIRST`).
pub const MSR_X2APIC_FIRST: u32 = 0x800;
/// The last x2APIC MSR (`MSR_X2APIC_LAST`).
pub const MSR_X2APIC_LAST: u32 = 0x8ff;

/// Register offsets in the xAPIC page (the x2APIC MSR is `0x800 + offset / 16`).
pub mod reg {
    /// Local APIC ID.
    pub const ID: u32 = 0x20;
    /// Version.
    pub const LVR: u32 = 0x30;
    /// Task priority.
    pub const TPR: u32 = 0x80;
    /// Processor priority.
    pub const PPR: u32 = 0xa0;
    /// End of interrupt.
    pub const EOI: u32 = 0xb0;
    /// Logical destination.
    pub const LDR: u32 = 0xd0;
    /// Destination format (xAPIC only).
    pub const DFR: u32 = 0xe0;
    /// Spurious interrupt vector (bit 8: software enable).
    pub const SPIV: u32 = 0xf0;
    /// In-service, 8 registers.
    pub const ISR: u32 = 0x100;
    /// Trigger mode, 8 registers.
    pub const TMR: u32 = 0x180;
    /// Interrupt request, 8 registers.
    pub const IRR: u32 = 0x200;
    /// Error status.
    pub const ESR: u32 = 0x280;
    /// LVT CMCI.
    pub const CMCI: u32 = 0x2f0;
    /// Interrupt command, low half.
    pub const ICR: u32 = 0x300;
    /// Interrupt command, high half (xAPIC only).
    pub const ICR2: u32 = 0x310;
    /// LVT timer.
    pub const LVTT: u32 = 0x320;
    /// LVT thermal.
    pub const LVTTHMR: u32 = 0x330;
    /// LVT performance counter.
    pub const LVTPC: u32 = 0x340;
    /// LVT LINT0.
    pub const LVT0: u32 = 0x350;
    /// LVT LINT1.
    pub const LVT1: u32 = 0x360;
    /// LVT error.
    pub const LVTERR: u32 = 0x370;
    /// Timer initial count.
    pub const TMICT: u32 = 0x380;
    /// Timer current count.
    pub const TMCCT: u32 = 0x390;
    /// Timer divide configuration.
    pub const TDCR: u32 = 0x3e0;
    /// Self IPI (x2APIC only, write-only).
    pub const SELF_IPI: u32 = 0x3f0;
}

const LVT_MASKED: u32 = 1 << 16;
const SEND_PENDING: u32 = 1 << 12;
const VECTOR_MASK: u32 = 0xff;
const MODE_MASK: u32 = 0x700;
const LVT_MASK: u32 = LVT_MASKED | SEND_PENDING | VECTOR_MASK;
const LINT_MASK: u32 = LVT_MASK | MODE_MASK | (1 << 13) | (1 << 14) | (1 << 15);
const TIMER_MODE_MASK: u32 = 3 << 17;
const TIMER_ONESHOT: u32 = 0;
const TIMER_PERIODIC: u32 = 1 << 17;
const TIMER_TSC_DEADLINE: u32 = 2 << 17;
/// `vlapic_lvt_mask`: the writable bits of LVTT, thermal, PMC, LINT0, LINT1, error.
const LVT_WRITABLE: [u32; 6] = [
    LVT_MASK | TIMER_MODE_MASK,
    LVT_MASK | MODE_MASK,
    LVT_MASK | MODE_MASK,
    LINT_MASK,
    LINT_MASK,
    LVT_MASK,
];
const SPIV_ENABLED: u32 = 1 << 8;
const SPIV_FOCUS_DISABLED: u32 = 1 << 9;
const ESR_SEND_ILLEGAL: u32 = 0x20;
const ESR_RECEIVE_ILLEGAL: u32 = 0x40;
const ICR_DEST_LOGICAL: u32 = 0x800;
const ICR_ASSERT: u32 = 0x4000;
const ICR_LEVEL: u32 = 0x8000;
const SHORT_MASK: u32 = 0xc_0000;
const SHORT_SELF: u32 = 0x4_0000;
const SHORT_ALL_INCLUDING: u32 = 0x8_0000;
const DM_FIXED: u32 = 0;
const DM_LOWEST: u32 = 0x100;
const TDCR_WRITABLE: u32 = 0xb;

/// The x2APIC registers an RDMSR may read (`guest_rdmsr_x2apic`'s `readable`), by
/// `offset / 16`.
const X2APIC_READABLE: u64 = {
    const fn r(o: u32) -> u64 {
        1u64 << (o >> 4)
    }
    r(reg::ID)
        | r(reg::LVR)
        | r(reg::TPR)
        | r(reg::PPR)
        | r(reg::LDR)
        | r(reg::SPIV)
        | r(reg::ESR)
        | r(reg::ICR)
        | r(reg::CMCI)
        | r(reg::LVTT)
        | r(reg::LVTTHMR)
        | r(reg::LVTPC)
        | r(reg::LVT0)
        | r(reg::LVT1)
        | r(reg::LVTERR)
        | r(reg::TMICT)
        | r(reg::TMCCT)
        | r(reg::TDCR)
        | (0xff << (reg::ISR >> 4))
        | (0xff << (reg::TMR >> 4))
        | (0xff << (reg::IRR >> 4))
};

/// The vector in a register's low byte.
fn vector(value: u32) -> u8 {
    value.to_le_bytes()[0]
}

/// One vCPU's local APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vlapic {
    vcpu_id: u32,
    /// `MSR_APIC_BASE.EN`.
    hw_enabled: bool,
    /// `MSR_APIC_BASE.EXTD`.
    x2apic: bool,
    /// The registers, by `offset / 16` (0..=0x3f0).
    regs: [u32; 64],
    /// `hw.timer_divisor`.
    divisor: u32,
    /// `timer_last_update`: when the running count started (or the last periodic tick).
    last_update: Option<u64>,
    /// When the timer fires next.
    deadline: Option<u64>,
    /// The period of a periodic timer (0: one-shot).
    period: u64,
}

impl Vlapic {
    /// The APIC of vCPU `vcpu_id` after `vlapic_init`: enabled in xAPIC mode at the default
    /// base, software-disabled, everything masked.
    pub fn new(vcpu_id: u32) -> Self {
        let mut v = Self {
            vcpu_id,
            hw_enabled: true,
            x2apic: false,
            regs: [0; 64],
            divisor: 2,
            last_update: None,
            deadline: None,
            period: 0,
        };
        v.reset();
        v
    }

    fn get(&self, offset: u32) -> u32 {
        self.regs[(offset as usize >> 4) & 63]
    }

    fn set(&mut self, offset: u32, value: u32) {
        self.regs[(offset as usize >> 4) & 63] = value;
    }

    /// `vlapic_reset`: the ID, then `vlapic_do_init`.
    fn reset(&mut self) {
        self.set(reg::ID, self.vcpu_id.wrapping_mul(2) << 24);
        self.set(reg::LVR, VERSION);
        for i in 0..8 {
            self.set(reg::IRR + 16 * i, 0);
            self.set(reg::ISR + 16 * i, 0);
            self.set(reg::TMR + 16 * i, 0);
        }
        for r in [reg::ICR, reg::ICR2, reg::TPR, reg::TMICT, reg::TMCCT] {
            self.set(r, 0);
        }
        if !self.x2apic {
            self.set(reg::LDR, 0);
        }
        self.set_tdcr(0);
        self.set(reg::DFR, 0xffff_ffff);
        for i in 0..6 {
            self.set(reg::LVTT + 16 * i, LVT_MASKED);
        }
        self.set(reg::SPIV, 0xff);
        self.stop_timer();
    }

    /// `MSR_APIC_BASE` changed from `old` to `new` (checked by the caller as
    /// `guest_wrmsr_apic_base` does): enabling resets the APIC, disabling turns it off,
    /// EXTD switches to x2APIC mode (the ID becomes `vcpu * 2` and the LDR derived).
    pub fn base_changed(&mut self, old: u64, new: u64) {
        const ENABLE: u64 = 1 << 11;
        const EXTD: u64 = 1 << 10;
        if (old ^ new) & ENABLE != 0 {
            if new & ENABLE != 0 {
                self.x2apic = false;
                self.reset();
                self.hw_enabled = true;
            } else {
                self.hw_enabled = false;
            }
        }
        self.x2apic = new & EXTD != 0;
        if self.x2apic {
            let id = self.vcpu_id;
            self.set(reg::ID, id.wrapping_mul(2));
            self.set(reg::LDR, ((id & !0xf) << 12) | (1 << (id & 0xf)));
        }
    }

    /// The xAPIC page answers (enabled, not in x2APIC mode: `vlapic_range`).
    pub fn mmio_enabled(&self) -> bool {
        self.hw_enabled && !self.x2apic
    }

    /// In x2APIC mode.
    pub fn x2apic_mode(&self) -> bool {
        self.hw_enabled && self.x2apic
    }

    fn sw_enabled(&self) -> bool {
        self.get(reg::SPIV) & SPIV_ENABLED != 0
    }

    /// `vlapic_enabled`: hardware- and software-enabled.
    pub fn enabled(&self) -> bool {
        self.hw_enabled && self.sw_enabled()
    }

    fn timer_mode(&self) -> u32 {
        self.get(reg::LVTT) & TIMER_MODE_MASK
    }

    fn set_tdcr(&mut self, value: u32) {
        let v = value & TDCR_WRITABLE;
        self.set(reg::TDCR, v);
        let shift = ((v & 3) | ((v & 8) >> 1)) + 1;
        self.divisor = 1 << (shift & 7);
    }

    /// The highest vector set in the bitmap at `base` (ISR, TMR or IRR).
    fn highest(&self, base: u32) -> Option<u8> {
        (0..8u32).rev().find_map(|i| {
            let word = self.get(base + 16 * i);
            (word != 0).then(|| vector(i * 32 + 31 - word.leading_zeros()))
        })
    }

    fn set_bit(&mut self, base: u32, vector: u8, on: bool) {
        let offset = base + 16 * (u32::from(vector) / 32);
        let bit = 1u32 << (vector % 32);
        let word = self.get(offset);
        self.set(offset, if on { word | bit } else { word & !bit });
    }

    /// `vlapic_get_ppr`.
    fn ppr(&self) -> u32 {
        let tpr = self.get(reg::TPR);
        let isr = u32::from(self.highest(reg::ISR).unwrap_or(0));
        if tpr & 0xf0 >= isr & 0xf0 {
            tpr & 0xff
        } else {
            isr & 0xf0
        }
    }

    /// `vlapic_error`.
    fn error(&mut self, mask: u32) {
        let esr = self.get(reg::ESR);
        if esr & mask != mask {
            self.set(reg::ESR, esr | mask);
            let lvterr = self.get(reg::LVTERR);
            if lvterr & LVT_MASKED == 0 {
                self.set_irq(vector(lvterr));
            }
        }
    }

    /// `vlapic_set_irq` (edge): the vector becomes pending.
    fn set_irq(&mut self, vector: u8) {
        if vector < 16 {
            self.error(ESR_RECEIVE_ILLEGAL);
            return;
        }
        self.set_bit(reg::TMR, vector, false);
        self.set_bit(reg::IRR, vector, true);
    }

    /// `vlapic_has_interrupt`: the highest pending vector whose priority class is above
    /// PPR, if the APIC is enabled.
    pub fn pending(&self) -> Option<u8> {
        if !self.enabled() {
            return None;
        }
        let irr = self.highest(reg::IRR)?;
        (u32::from(irr) & 0xf0 > self.ppr()).then_some(irr)
    }

    /// `vlapic_set_irq(vlapic, vector, 0)` from outside the APIC (an event channel's upcall
    /// on the vCPU's own vector, `hvm_assert_evtchn_irq`): the vector becomes pending,
    /// edge-triggered, whether or not the APIC is enabled (it is delivered once it is); a
    /// vector below 16 sets ESR's receive-illegal bit instead.
    pub fn assert_edge(&mut self, vector: u8) {
        self.set_irq(vector);
    }

    /// Whether `vector` is pending (in IRR) and would be delivered now: the APIC is enabled
    /// and the vector's priority class is above PPR (a higher vector pending would go first,
    /// and this one after it).
    pub fn would_deliver(&self, vector: u8) -> bool {
        self.accepts(vector)
            && self.get(reg::IRR + 16 * (u32::from(vector) / 32)) & (1 << (vector % 32)) != 0
    }

    /// Whether the APIC would deliver `vector` if it became pending now: enabled, and the
    /// vector's priority class above PPR.
    pub fn accepts(&self, vector: u8) -> bool {
        self.enabled() && u32::from(vector) & 0xf0 > self.ppr()
    }

    /// The vector was delivered: from IRR to ISR (`vlapic_ack_pending_irq`).
    pub fn ack(&mut self, vector: u8) {
        self.set_bit(reg::ISR, vector, true);
        self.set_bit(reg::IRR, vector, false);
    }

    /// `vlapic_EOI_set`: the highest in-service vector is done.
    fn eoi(&mut self) {
        if let Some(v) = self.highest(reg::ISR) {
            self.set_bit(reg::ISR, v, false);
        }
    }

    /// `vlapic_get_tmcct`.
    fn current_count(&self, now: u64) -> u32 {
        let tmict = self.get(reg::TMICT);
        let Some(last) = self.last_update else {
            return 0;
        };
        if tmict == 0 {
            return 0;
        }
        let mut passed = now.saturating_sub(last) / (BUS_CYCLE_NS * u64::from(self.divisor));
        if self.timer_mode() == TIMER_PERIODIC {
            passed %= u64::from(tmict);
        }
        u32::try_from(u64::from(tmict).saturating_sub(passed)).unwrap_or(0)
    }

    /// `vlapic_read_aligned`: register `offset` (a multiple of 16).
    fn read_aligned(&self, offset: u32, now: u64) -> u32 {
        let counting = matches!(self.timer_mode(), TIMER_ONESHOT | TIMER_PERIODIC);
        match offset {
            reg::PPR => self.ppr(),
            reg::TMCCT if counting => self.current_count(now),
            reg::TMCCT | reg::TMICT if !counting => 0,
            _ => self.get(offset),
        }
    }

    /// `vlapic_mmio_read`: an access of `len` bytes at `offset` in the page; one that does
    /// not fit inside a 32-bit register, or lies beyond TDCR, reads 0.
    pub fn mmio_read(&self, offset: u32, len: u8, now: u64) -> u32 {
        let alignment = offset & 0xf;
        if alignment + u32::from(len) > 4 || offset > reg::TDCR + 3 {
            return 0;
        }
        let r = self.read_aligned(offset & !0xf, now) >> (8 * alignment);
        match len {
            1 => r & 0xff,
            2 => r & 0xffff,
            _ => r,
        }
    }

    /// `vlapic_mmio_write`: a write of `len` bytes at `offset`; one that does not fit inside
    /// a 32-bit register, or lies beyond TDCR, is dropped.
    pub fn mmio_write(&mut self, offset: u32, len: u8, value: u32, now: u64) {
        let alignment = offset & 0xf;
        let offset = offset & !0xf;
        if alignment + u32::from(len) > 4 || offset > reg::TDCR {
            return;
        }
        let value = if len < 4 {
            let old = self.read_aligned(offset, now);
            let shift = 8 * alignment;
            let mask = if len == 1 { 0xffu32 } else { 0xffff } << shift;
            (old & !mask) | ((value << shift) & mask)
        } else {
            value
        };
        self.reg_write(offset, value, now);
    }

    /// `vlapic_reg_write`.
    fn reg_write(&mut self, offset: u32, value: u32, now: u64) {
        match offset {
            reg::ID => self.set(reg::ID, value),
            reg::TPR => self.set(reg::TPR, value & 0xff),
            reg::EOI => self.eoi(),
            reg::LDR => self.set(reg::LDR, value & 0xff00_0000),
            reg::DFR => self.set(reg::DFR, value | 0x0fff_ffff),
            reg::SPIV => {
                self.set(reg::SPIV, value & 0x3ff);
                if value & SPIV_ENABLED == 0 {
                    for i in 0..6 {
                        let o = reg::LVTT + 16 * i;
                        self.set(o, self.get(o) | LVT_MASKED);
                    }
                }
            }
            reg::ICR => {
                let value = value & !SEND_PENDING;
                self.ipi(value, self.get(reg::ICR2));
                self.set(reg::ICR, value);
            }
            reg::ICR2 => self.set(reg::ICR2, value & 0xff00_0000),
            reg::LVTT..=reg::LVTERR => {
                let mut value = value;
                if offset == reg::LVTT {
                    let tdt = |v: u32| v & TIMER_MODE_MASK == TIMER_TSC_DEADLINE;
                    if tdt(self.get(reg::LVTT)) != tdt(value) {
                        self.set(reg::TMICT, 0);
                    }
                    self.update_timer(value, false, self.divisor, now);
                }
                if !self.sw_enabled() {
                    value |= LVT_MASKED;
                }
                let index = ((offset - reg::LVTT) >> 4) as usize;
                self.set(offset, value & LVT_WRITABLE[index.min(5)]);
            }
            reg::TMICT => {
                if matches!(self.timer_mode(), TIMER_ONESHOT | TIMER_PERIODIC) {
                    self.set(reg::TMICT, value);
                    self.update_timer(self.get(reg::LVTT), true, self.divisor, now);
                }
            }
            reg::TDCR => {
                let old = self.divisor;
                self.set_tdcr(value);
                self.update_timer(self.get(reg::LVTT), false, old, now);
            }
            // ESR and the read-only registers: nothing.
            _ => {}
        }
    }

    /// `vlapic_ipi` with one vCPU: Fixed and lowest-priority IPIs that name this APIC
    /// become pending; a vector below 16 sets ESR's send-illegal bit instead.
    fn ipi(&mut self, low: u32, high: u32) {
        let mode = low & MODE_MASK;
        if !matches!(mode, DM_FIXED | DM_LOWEST) {
            return;
        }
        if low & VECTOR_MASK < 16 {
            self.error(ESR_SEND_ILLEGAL);
            return;
        }
        let dest = if self.x2apic { high } else { high >> 24 };
        let hits = match low & SHORT_MASK {
            0 if low & ICR_DEST_LOGICAL != 0 => self.logical_match(dest),
            0 => {
                let (broadcast, id) = if self.x2apic {
                    (0xffff_ffff, self.get(reg::ID))
                } else {
                    (0xff, self.get(reg::ID) >> 24)
                };
                dest == broadcast || dest == id
            }
            SHORT_SELF | SHORT_ALL_INCLUDING => true,
            _ => false,
        };
        if hits && self.enabled() {
            self.set_irq(vector(low));
        }
    }

    /// `vlapic_match_logical_addr`.
    fn logical_match(&self, mda: u32) -> bool {
        let ldr = self.get(reg::LDR);
        if self.x2apic {
            return ldr >> 16 == mda >> 16 && (ldr & mda) & 0xffff != 0;
        }
        let id = ldr >> 24;
        let mda = mda & 0xff;
        match self.get(reg::DFR) {
            0xffff_ffff => id & mda != 0,
            0x0fff_ffff => id >> 4 == mda >> 4 && id & mda & 0xf != 0,
            _ => false,
        }
    }

    fn stop_timer(&mut self) {
        self.deadline = None;
        self.period = 0;
        self.last_update = None;
    }

    /// `vlapic_update_timer`: TMICT (already set) or the divisor (`old_divisor` before) or
    /// the timer mode (`lvtt`, set after) changed.
    fn update_timer(&mut self, lvtt: u32, tmict_updated: bool, old_divisor: u32, now: u64) {
        let periodic = lvtt & TIMER_MODE_MASK == TIMER_PERIODIC;
        let oneshot = lvtt & TIMER_MODE_MASK == TIMER_ONESHOT;
        let tmict = u64::from(self.get(reg::TMICT));
        let mut period = tmict * BUS_CYCLE_NS * u64::from(old_divisor);
        let mut delta = 0;
        if tmict_updated {
            delta = period;
        } else if let Some(last) = self.last_update.filter(|_| period != 0) {
            let mut passed = now.saturating_sub(last);
            if self.timer_mode() == TIMER_PERIODIC {
                passed %= period;
            }
            if passed < period {
                delta = period - passed;
            }
        }
        if delta == 0 || !(oneshot || periodic) {
            self.stop_timer();
            return;
        }
        if self.divisor != old_divisor {
            period = tmict * BUS_CYCLE_NS * u64::from(self.divisor);
            delta = delta * u64::from(self.divisor) / u64::from(old_divisor);
        }
        self.deadline = Some(now.saturating_add(delta));
        self.period = if periodic {
            period.max(MIN_PERIOD_NS)
        } else {
            0
        };
        let mut last = now;
        if !tmict_updated {
            last = last.saturating_sub(period - delta.min(period));
        }
        self.last_update = Some(last);
    }

    /// When the timer fires next (system time), if it runs.
    pub fn timer_deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// Fires the timer if its deadline has passed at `now`: its vector becomes pending
    /// (unless LVTT is masked or the APIC disabled), a periodic timer re-arms one period
    /// after the deadline (or after `now` if it fell behind). True if it fired.
    pub fn fire_timer(&mut self, now: u64) -> bool {
        let Some(deadline) = self.deadline.filter(|&d| d <= now) else {
            return false;
        };
        if self.period != 0 {
            let next = deadline.saturating_add(self.period);
            self.deadline = Some(if next <= now {
                now.saturating_add(self.period)
            } else {
                next
            });
            self.last_update = Some(deadline.max(now.saturating_sub(self.period)));
        } else {
            self.deadline = None;
        }
        let lvtt = self.get(reg::LVTT);
        if self.enabled() && lvtt & LVT_MASKED == 0 {
            self.set_irq(vector(lvtt));
        }
        true
    }

    /// `guest_rdmsr_x2apic`: RDMSR of x2APIC MSR `msr`, or `None` for `#GP` (not in x2APIC
    /// mode, or a register not readable there: DFR, ICR2, EOI, SELF_IPI, the reserved).
    pub fn msr_read(&self, msr: u32, now: u64) -> Option<u64> {
        let index = msr.checked_sub(MSR_X2APIC_FIRST)?;
        if !self.x2apic_mode() || index >= 64 || X2APIC_READABLE & (1 << index) == 0 {
            return None;
        }
        let offset = index << 4;
        let high = if offset == reg::ICR {
            u64::from(self.get(reg::ICR2)) << 32
        } else {
            0
        };
        Some(high | u64::from(self.read_aligned(offset, now)))
    }

    /// `guest_wrmsr_x2apic`: WRMSR of x2APIC MSR `msr`; false for `#GP` (not in x2APIC
    /// mode, a read-only register, a reserved bit set, a non-zero EOI or ESR write).
    pub fn msr_write(&mut self, msr: u32, value: u64, now: u64) -> bool {
        let Some(index) = msr.checked_sub(MSR_X2APIC_FIRST) else {
            return false;
        };
        if !self.x2apic_mode() || index > 0xff {
            return false;
        }
        let fits = |allowed: u32| value & !u64::from(allowed) == 0;
        let mut offset = index << 4;
        let mut low = u32::try_from(value & 0xffff_ffff).unwrap_or(0);
        let ok = match offset {
            reg::TPR => fits(0xff),
            reg::SPIV => fits(VECTOR_MASK | SPIV_ENABLED | SPIV_FOCUS_DISABLED),
            reg::LVTT => fits(LVT_MASK | TIMER_MODE_MASK),
            reg::LVTTHMR | reg::LVTPC | reg::CMCI => fits(LVT_MASK | MODE_MASK),
            reg::LVT0 | reg::LVT1 => fits(LINT_MASK),
            reg::LVTERR => fits(LVT_MASK),
            reg::TMICT => true,
            reg::TDCR => fits(TDCR_WRITABLE),
            reg::ICR => {
                let allowed = VECTOR_MASK
                    | MODE_MASK
                    | ICR_DEST_LOGICAL
                    | ICR_ASSERT
                    | ICR_LEVEL
                    | SHORT_MASK;
                let ok = low & !allowed == 0;
                if ok {
                    self.set(reg::ICR2, u32::try_from(value >> 32).unwrap_or(0));
                }
                ok
            }
            reg::SELF_IPI => {
                offset = reg::ICR;
                low = SHORT_SELF | (low & VECTOR_MASK);
                fits(VECTOR_MASK)
            }
            reg::EOI | reg::ESR => value == 0,
            _ => false,
        };
        if ok {
            self.reg_write(offset, low, now);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = DEFAULT_BASE | (1 << 11) | (1 << 8);
    const X2: u64 = BASE | (1 << 10);

    fn enabled_xapic() -> Vlapic {
        let mut v = Vlapic::new(0);
        v.mmio_write(reg::SPIV, 4, 0x1ff, 0);
        v
    }

    #[test]
    fn reset_values_as_xen_gives_them() {
        let v = Vlapic::new(1);
        assert_eq!(v.mmio_read(reg::ID, 4, 0), 2 << 24, "vcpu_id * 2");
        assert_eq!(v.mmio_read(reg::LVR, 4, 0), 0x0005_0014);
        assert_eq!(v.mmio_read(reg::SPIV, 4, 0), 0xff);
        assert_eq!(v.mmio_read(reg::DFR, 4, 0), 0xffff_ffff);
        assert_eq!(v.mmio_read(reg::LVTT, 4, 0), LVT_MASKED);
        assert_eq!(v.mmio_read(reg::LVTERR, 4, 0), LVT_MASKED);
        assert_eq!(
            v.mmio_read(reg::LVR + 2, 1, 0),
            5,
            "a byte inside a register"
        );
        assert_eq!(
            v.mmio_read(reg::LVR + 2, 4, 0),
            0,
            "across the register's end"
        );
        assert_eq!(v.mmio_read(reg::SELF_IPI, 4, 0), 0, "beyond TDCR");
        assert!(!v.enabled(), "software-disabled at reset");
        assert!(v.mmio_enabled());
    }

    #[test]
    fn xapic_writes_keep_xens_bits() {
        let mut v = Vlapic::new(0);
        // Software-disabled: an LVT write stays masked.
        v.mmio_write(reg::LVT0, 4, 0x700, 0);
        assert_eq!(v.mmio_read(reg::LVT0, 4, 0), 0x1_0700);
        v.mmio_write(reg::SPIV, 4, 0xffff_ffff, 0);
        assert_eq!(v.mmio_read(reg::SPIV, 4, 0), 0x3ff);
        v.mmio_write(reg::LVTERR, 4, 0xffff_ffff, 0);
        assert_eq!(v.mmio_read(reg::LVTERR, 4, 0), LVT_MASK);
        v.mmio_write(reg::TPR, 4, 0x1234, 0);
        assert_eq!(v.mmio_read(reg::TPR, 4, 0), 0x34);
        v.mmio_write(reg::LDR, 4, 0x1234_5678, 0);
        assert_eq!(v.mmio_read(reg::LDR, 4, 0), 0x1200_0000);
        v.mmio_write(reg::DFR, 4, 0, 0);
        assert_eq!(v.mmio_read(reg::DFR, 4, 0), 0x0fff_ffff);
        v.mmio_write(reg::ICR2, 4, 0x1234_5678, 0);
        assert_eq!(v.mmio_read(reg::ICR2, 4, 0), 0x1200_0000);
        v.mmio_write(reg::TDCR, 4, 0xff, 0);
        assert_eq!(v.mmio_read(reg::TDCR, 4, 0), 0xb);
        v.mmio_write(reg::LVR, 4, 0, 0);
        assert_eq!(v.mmio_read(reg::LVR, 4, 0), VERSION, "read-only");
        // Clearing SPIV's enable masks every LVT.
        v.mmio_write(reg::LVTERR, 4, 0x33, 0);
        assert_eq!(v.mmio_read(reg::LVTERR, 4, 0), 0x33);
        v.mmio_write(reg::SPIV, 4, 0xff, 0);
        assert_eq!(v.mmio_read(reg::LVTERR, 4, 0), 0x1_0033);
    }

    #[test]
    fn self_ipi_eoi_and_priorities() {
        let mut v = enabled_xapic();
        v.mmio_write(reg::ICR, 4, SHORT_SELF | 0x41, 0);
        v.mmio_write(reg::ICR, 4, SHORT_SELF | 0x62, 0);
        assert_eq!(v.mmio_read(reg::IRR + 0x30, 4, 0), 1 << 2);
        assert_eq!(v.pending(), Some(0x62));
        v.ack(0x62);
        assert_eq!(v.mmio_read(reg::PPR, 4, 0), 0x60);
        assert_eq!(v.pending(), None, "0x41 is below the in-service class");
        v.mmio_write(reg::EOI, 4, 0, 0);
        assert_eq!(v.mmio_read(reg::ISR + 0x30, 4, 0), 0);
        assert_eq!(v.pending(), Some(0x41));
        v.mmio_write(reg::TPR, 4, 0x40, 0);
        assert_eq!(v.pending(), None, "TPR class 4 blocks 0x41");
        v.mmio_write(reg::TPR, 4, 0x3f, 0);
        assert_eq!(v.pending(), Some(0x41));
        // Physical destination: own ID or broadcast; another ID misses.
        v.mmio_write(reg::ICR2, 4, 0x0200_0000, 0);
        v.mmio_write(reg::ICR, 4, 0x80, 0);
        assert_eq!(v.mmio_read(reg::IRR + 0x40, 4, 0), 0);
        v.mmio_write(reg::ICR2, 4, 0xff00_0000, 0);
        v.mmio_write(reg::ICR, 4, 0x80 | SEND_PENDING, 0);
        assert_eq!(v.mmio_read(reg::IRR + 0x40, 4, 0), 1);
        assert_eq!(v.mmio_read(reg::ICR, 4, 0), 0x80, "delivery status clear");
        // A vector below 16: send-illegal in ESR, nothing pending.
        v.mmio_write(reg::ICR, 4, SHORT_SELF | 0x5, 0);
        assert_eq!(v.mmio_read(reg::ESR, 4, 0), ESR_SEND_ILLEGAL);
        // Software-disabled: a self-IPI is dropped.
        let mut off = Vlapic::new(0);
        off.mmio_write(reg::ICR, 4, SHORT_SELF | 0x41, 0);
        assert_eq!(off.pending(), None);
        assert_eq!(off.mmio_read(reg::IRR + 0x20, 4, 0), 0);
    }

    #[test]
    fn an_upcall_vector_asserted_from_outside_waits_for_the_apic_and_its_eoi() {
        // Asserted while the APIC is software-disabled: held in IRR, delivered once enabled.
        let mut v = Vlapic::new(0);
        v.assert_edge(0xf3);
        assert_eq!(v.pending(), None);
        assert!(!v.accepts(0xf3) && !v.would_deliver(0xf3));
        v.mmio_write(reg::SPIV, 4, 0x1ff, 0);
        assert!(v.would_deliver(0xf3));
        assert_eq!(v.pending(), Some(0xf3));
        v.ack(0xf3);
        // In service: a second assertion waits for the guest's EOI.
        v.assert_edge(0xf3);
        assert!(!v.accepts(0xf3) && !v.would_deliver(0xf3));
        assert_eq!(v.pending(), None);
        v.mmio_write(reg::EOI, 4, 0, 0);
        assert_eq!(v.pending(), Some(0xf3));
        v.ack(0xf3);
        v.mmio_write(reg::EOI, 4, 0, 0);
        assert_eq!(v.pending(), None, "one assertion, one delivery");
        assert!(v.accepts(0xf3) && !v.would_deliver(0xf3));
        // A vector below 16 is refused as vlapic_set_irq refuses it.
        v.assert_edge(0x0f);
        assert_eq!(v.mmio_read(reg::ESR, 4, 0), ESR_RECEIVE_ILLEGAL);
        assert_eq!(v.pending(), None);
    }

    #[test]
    fn one_shot_and_periodic_timer() {
        let mut v = enabled_xapic();
        v.mmio_write(reg::LVTT, 4, 0xe0, 0);
        v.mmio_write(reg::TDCR, 4, 0xb, 0); // divide by 1: 10 ns a count
        v.mmio_write(reg::TMICT, 4, 1000, 100);
        assert_eq!(v.timer_deadline(), Some(10_100));
        assert_eq!(v.mmio_read(reg::TMCCT, 4, 5100), 500);
        assert!(!v.fire_timer(10_099));
        assert!(v.fire_timer(10_100));
        assert_eq!(v.pending(), Some(0xe0));
        assert_eq!(v.timer_deadline(), None, "one-shot");
        assert_eq!(v.mmio_read(reg::TMCCT, 4, 20_000), 0);
        v.ack(0xe0);
        v.mmio_write(reg::EOI, 4, 0, 0);
        // Periodic, divide by 2 (the reset value 0): 20 ns a count, 200 us.
        v.mmio_write(reg::TDCR, 4, 0, 0);
        v.mmio_write(reg::LVTT, 4, TIMER_PERIODIC | 0xe1, 0);
        v.mmio_write(reg::TMICT, 4, 10_000, 1_000);
        assert_eq!(v.timer_deadline(), Some(201_000));
        assert!(v.fire_timer(201_000));
        assert_eq!(v.timer_deadline(), Some(401_000));
        assert_eq!(v.mmio_read(reg::TMCCT, 4, 301_000), 5_000);
        assert!(v.fire_timer(401_500));
        assert_eq!(v.pending(), Some(0xe1));
        // Masked: the timer runs, nothing becomes pending.
        let mut m = enabled_xapic();
        m.mmio_write(reg::LVTT, 4, LVT_MASKED | 0xe0, 0);
        m.mmio_write(reg::TMICT, 4, 1, 0);
        assert!(m.fire_timer(1_000));
        assert_eq!(m.pending(), None);
        // TMICT 0 stops it; a tiny periodic period is raised to vpt's floor.
        m.mmio_write(reg::LVTT, 4, TIMER_PERIODIC | 0xe0, 0);
        m.mmio_write(reg::TMICT, 4, 1, 0);
        assert!(m.fire_timer(20));
        assert_eq!(m.timer_deadline(), Some(20 + MIN_PERIOD_NS));
        m.mmio_write(reg::TMICT, 4, 0, 30);
        assert_eq!(m.timer_deadline(), None);
    }

    #[test]
    fn x2apic_msrs_as_xen_checks_them() {
        let mut v = Vlapic::new(0);
        assert_eq!(v.msr_read(0x802, 0), None, "#GP in xAPIC mode");
        assert!(!v.msr_write(0x808, 0, 0));
        v.base_changed(BASE, X2);
        assert!(v.x2apic_mode() && !v.mmio_enabled());
        assert_eq!(
            v.msr_read(0x802, 0),
            Some(0),
            "x2APIC ID = vcpu * 2, unshifted"
        );
        assert_eq!(v.msr_read(0x803, 0), Some(u64::from(VERSION)));
        assert_eq!(v.msr_read(0x80d, 0), Some(1), "LDR cluster 0, bit 0");
        for gp in [0x80b, 0x80e, 0x831, 0x83f, 0x840, 0x8ff] {
            assert_eq!(v.msr_read(gp, 0), None, "{gp:#x} is not readable");
        }
        assert!(!v.msr_write(0x802, 0, 0), "ID is read-only");
        assert!(!v.msr_write(0x808, 0x100, 0), "TPR reserved bits");
        assert!(!v.msr_write(0x80b, 1, 0), "EOI takes 0 only");
        assert!(!v.msr_write(0x80f, 0x400, 0), "SPIV reserved bits");
        assert!(v.msr_write(0x80f, 0x1ff, 0));
        assert!(
            !v.msr_write(0x83f, 0x100, 0),
            "SELF_IPI takes a vector only"
        );
        assert!(v.msr_write(0x83f, 0x51, 0));
        assert_eq!(v.pending(), Some(0x51));
        v.ack(0x51);
        assert_eq!(v.msr_read(0x810 + 2, 0), Some(1 << 17), "ISR word 2");
        assert!(v.msr_write(0x80b, 0, 0));
        assert_eq!(v.pending(), None);
        assert!(!v.msr_write(0x830, 1 << 20, 0), "ICR reserved bit");
        assert!(v.msr_write(0x830, 0x52, 0), "to ID 0");
        assert_eq!(v.msr_read(0x830, 0), Some(0x52));
        assert_eq!(v.pending(), Some(0x52));
        assert!(!v.msr_write(0x83e, 0x10, 0), "TDCR reserved bits");
        assert!(!v.msr_write(0x832, 0x8_0000, 0), "LVTT reserved bits");
        assert!(v.msr_write(0x832, 0x2_00f0, 0), "periodic");
        assert!(v.msr_write(0x838, 100, 0));
        assert_eq!(
            v.timer_deadline(),
            Some(2000),
            "the first delta is not raised"
        );
        // Disabling through APIC_BASE turns it off; enabling again resets it.
        v.base_changed(X2, BASE & !(1 << 11));
        assert!(!v.x2apic_mode() && !v.mmio_enabled());
        v.base_changed(BASE & !(1 << 11), BASE);
        assert_eq!(v.mmio_read(reg::SPIV, 4, 0), 0xff);
        assert_eq!(v.timer_deadline(), None);
    }
}
