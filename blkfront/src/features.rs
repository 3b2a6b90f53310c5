//! The optional parts of the protocol this front end may use, each negotiated with the backend
//! and each able to be switched off (the guest's command line does), so the plain path stays
//! tested.

/// Segments per indirect request this front end uses at most: Linux blkfront's default
/// (`xen_blkif_max_segments`), 128 KiB a request.
pub const FRONT_MAX_INDIRECT_SEGMENTS: u32 = 32;

/// The largest ring-page order this front end uses (4 pages, 128 slots): above Linux
/// blkfront's default of one page, below Linux blkback's offer of 16 pages. More than the guest
/// keeps in flight, and each page of a ring is one more of domain 0's grant mappings.
pub const FRONT_MAX_RING_PAGE_ORDER: u32 = 2;

/// The most queues (rings, each with its own event channel) this front end asks for: Linux
/// blkfront's default (`xen_blkif_max_queues`, 4). Linux also caps it at the guest's vCPUs;
/// this front end spreads requests over its queues whatever the vCPUs, so that a guest of
/// one vCPU still uses (and tests) them.
pub const FRONT_MAX_QUEUES: u32 = 4;

/// Which optional features the front end may use (each still needs the backend's offer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// The largest `ring-page-order` to ask for when the backend offers
    /// `max-ring-page-order` (0: a ring of one page, the multi-page ring switched off).
    pub max_ring_page_order: u32,
    /// `BLKIF_OP_INDIRECT` for requests of more than 11 segments, when the backend offers
    /// `feature-max-indirect-segments` above 11.
    pub indirect: bool,
    /// `feature-persistent`: data goes through a set of pages granted once and kept while
    /// connected, when the backend offers it too.
    pub persistent: bool,
    /// `feature-discard`: `BLKIF_OP_DISCARD` may be sent, when the backend offers it.
    pub discard: bool,
    /// The most queues to ask for when the backend offers `multi-queue-max-queues` (1: one
    /// ring, multiple queues switched off; at most [`FRONT_MAX_QUEUES`]).
    pub max_queues: u32,
}

impl Features {
    /// Every feature off: the protocol of the one-page ring of 11-segment requests only.
    pub const NONE: Self = Self {
        max_ring_page_order: 0,
        indirect: false,
        persistent: false,
        discard: false,
        max_queues: 1,
    };
}

impl Default for Features {
    /// Every feature the backend offers is used.
    fn default() -> Self {
        Self {
            max_ring_page_order: FRONT_MAX_RING_PAGE_ORDER,
            indirect: true,
            persistent: true,
            discard: true,
            max_queues: FRONT_MAX_QUEUES,
        }
    }
}

/// Segments per request to use with indirect descriptors: the backend's offer capped at
/// [`FRONT_MAX_INDIRECT_SEGMENTS`], or 0 (indirect unused) when switched off or when the
/// offer is no better than a direct request's 11 segments.
pub fn indirect_segments(wanted: bool, offered: u32) -> u32 {
    let segments = offered.min(FRONT_MAX_INDIRECT_SEGMENTS);
    let direct = abi::io::blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST;
    if wanted && usize::try_from(segments).is_ok_and(|s| s > direct) {
        segments
    } else {
        0
    }
}

/// The ring-page order to use, as Linux blkfront's `talk_to_blkback` picks it: the smaller of
/// ours and the backend's `max-ring-page-order` (absent or malformed: 0), never above
/// [`abi::ring::MAX_RING_PAGE_ORDER`].
pub fn ring_page_order(ours: u32, offered: Option<&str>) -> u32 {
    let offered = offered
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u32>().ok())
        .unwrap_or(0);
    ours.min(offered).min(abi::ring::MAX_RING_PAGE_ORDER)
}

/// The queues to use, as Linux blkfront's `negotiate_mq` picks them: the smaller of ours
/// (capped at [`FRONT_MAX_QUEUES`]) and the backend's `multi-queue-max-queues` (absent,
/// malformed or 0: 1), never 0.
pub fn queue_count(ours: u32, offered: Option<&str>) -> u32 {
    let offered = offered
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u32>().ok())
        .unwrap_or(1);
    ours.min(FRONT_MAX_QUEUES).min(offered).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_count_is_the_smaller_offer_and_one_without_one() {
        assert_eq!(queue_count(4, Some("2")), 2);
        assert_eq!(queue_count(4, Some("8")), 4);
        assert_eq!(queue_count(9, Some("9")), FRONT_MAX_QUEUES);
        assert_eq!(queue_count(1, Some("4")), 1);
        assert_eq!(queue_count(4, None), 1);
        assert_eq!(queue_count(0, Some("4")), 1);
        for bad in ["", "0", "-2", "x", "4294967296"] {
            assert_eq!(queue_count(4, Some(bad)), 1, "{bad:?}");
        }
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn ring_page_order_is_the_smaller_offer_and_zero_without_one() {
        assert_eq!(ring_page_order(2, Some("4")), 2);
        assert_eq!(ring_page_order(4, Some("4")), 4);
        assert_eq!(ring_page_order(4, Some("1")), 1);
        assert_eq!(ring_page_order(9, Some("9")), 4);
        assert_eq!(ring_page_order(2, None), 0);
        assert_eq!(ring_page_order(0, Some("4")), 0);
        for bad in ["", "-1", "x", "4294967296", "2 "] {
            let want = if bad == "2 " { 2 } else { 0 };
            assert_eq!(ring_page_order(2, Some(bad)), want, "{bad:?}");
        }
    }

    #[test]
    fn indirect_segments_are_the_smaller_offer_and_only_above_eleven() {
        assert_eq!(indirect_segments(true, 256), 32);
        assert_eq!(indirect_segments(true, 32), 32);
        assert_eq!(indirect_segments(true, 12), 12);
        assert_eq!(indirect_segments(true, 11), 0);
        assert_eq!(indirect_segments(true, 0), 0);
        assert_eq!(indirect_segments(true, u32::MAX), 32);
        assert_eq!(indirect_segments(false, 256), 0);
    }
}
