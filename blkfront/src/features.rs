//! The optional parts of the protocol this front end may use, each negotiated with the backend
//! and each able to be switched off (the guest's command line does), so the plain path stays
//! tested.

/// Segments per indirect request this front end uses at most: Linux blkfront's default
/// (`xen_blkif_max_segments`), 128 KiB a request.
pub const FRONT_MAX_INDIRECT_SEGMENTS: u32 = 32;

/// Which optional features the front end may use (each still needs the backend's offer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// `BLKIF_OP_INDIRECT` for requests of more than 11 segments, when the backend offers
    /// `feature-max-indirect-segments` above 11.
    pub indirect: bool,
    /// `feature-persistent`: data goes through a set of pages granted once and kept while
    /// connected, when the backend offers it too.
    pub persistent: bool,
    /// `feature-discard`: `BLKIF_OP_DISCARD` may be sent, when the backend offers it.
    pub discard: bool,
}

impl Features {
    /// Every feature off: the protocol of the one-page, 11-segment request only.
    pub const NONE: Self = Self {
        indirect: false,
        persistent: false,
        discard: false,
    };
}

impl Default for Features {
    /// Every feature the backend offers is used.
    fn default() -> Self {
        Self {
            indirect: true,
            persistent: true,
            discard: true,
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

#[cfg(test)]
mod tests {
    use super::*;

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
