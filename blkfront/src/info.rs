//! What blkback publishes about the disk, parsed and checked.
//!
//! Linux's blkback and blkfront count `sectors` in 512-byte units whatever `sector-size` says
//! (the 4.17 header's comment differs); so does this crate.

use crate::error::BlkError;
use abi::io::blkif::{VDISK_CDROM, VDISK_READONLY, VDISK_REMOVABLE};
use alloc::string::String;

/// Bytes in the unit `sectors` and request sector numbers count.
pub const SECTOR: u64 = 512;

/// How the disk makes writes durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushMode {
    /// `feature-flush-cache`: `BLKIF_OP_FLUSH_DISKCACHE`.
    FlushCache,
    /// Only `feature-barrier`: `BLKIF_OP_WRITE_BARRIER` (an empty barrier flushes).
    Barrier,
    /// Neither: the backend completes writes synchronously (write-through).
    WriteThrough,
}

/// What the backend says of discards (`feature-discard` = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discard {
    /// `discard-granularity`: bytes of the backend's discard unit (0: not said).
    pub granularity: u32,
    /// `discard-alignment`: bytes from the disk's start to the first whole unit.
    pub alignment: u32,
    /// `discard-secure`: `BLKIF_DISCARD_SECURE` may be asked for.
    pub secure: bool,
}

/// The disk as the backend describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// Logical sector size in bytes (a power of two, 512..=4096).
    pub sector_size: u32,
    /// Physical sector size in bytes (defaults to the logical one).
    pub physical_sector_size: u32,
    /// `VDISK_*` bits of `info`.
    pub info: u32,
    /// Read-only (`mode` = `r` or `VDISK_READONLY`).
    pub readonly: bool,
    /// How writes are made durable.
    pub flush: FlushMode,
    /// `feature-max-indirect-segments`: segments the backend takes in one indirect request
    /// (0: no indirect requests).
    pub max_indirect_segments: u32,
    /// `feature-persistent`: the backend keeps the front end's grants mapped.
    pub persistent: bool,
    /// `feature-discard` and its parameters (None: not offered).
    pub discard: Option<Discard>,
}

impl DiskInfo {
    /// Size in bytes (saturating).
    pub fn bytes(&self) -> u64 {
        self.sectors.saturating_mul(SECTOR)
    }

    /// Whether the backend called it a CD-ROM.
    pub fn is_cdrom(&self) -> bool {
        self.info & VDISK_CDROM != 0
    }

    /// Whether the backend called it removable.
    pub fn is_removable(&self) -> bool {
        self.info & VDISK_REMOVABLE != 0
    }

    /// Parses the backend's keys; `read(key)` gives a key's value if present.
    pub fn parse(mut read: impl FnMut(&str) -> Option<String>) -> Result<Self, BlkError> {
        let number = |key: &'static str, text: Option<String>| -> Result<Option<u64>, BlkError> {
            match text {
                None => Ok(None),
                Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t
                    .parse()
                    .map(Some)
                    .map_err(|_| BlkError::BadBackendValue(key)),
                Some(_) => Err(BlkError::BadBackendValue(key)),
            }
        };
        let sectors =
            number("sectors", read("sectors"))?.ok_or(BlkError::BadBackendValue("sectors"))?;
        let size_of = |key: &'static str, v: Option<u64>| -> Result<Option<u32>, BlkError> {
            match v {
                None => Ok(None),
                Some(v) if (512..=4096).contains(&v) && v.is_power_of_two() => u32::try_from(v)
                    .map(Some)
                    .map_err(|_| BlkError::BadBackendValue(key)),
                Some(_) => Err(BlkError::BadBackendValue(key)),
            }
        };
        let sector_size = size_of("sector-size", number("sector-size", read("sector-size"))?)?
            .ok_or(BlkError::BadBackendValue("sector-size"))?;
        let physical_sector_size = size_of(
            "physical-sector-size",
            number("physical-sector-size", read("physical-sector-size"))?,
        )?
        .unwrap_or(sector_size);
        let info = number("info", read("info"))?.unwrap_or(0);
        let info = u32::try_from(info).map_err(|_| BlkError::BadBackendValue("info"))?;
        let readonly = match read("mode").as_deref() {
            None | Some("w") => false,
            Some("r") => true,
            Some(_) => return Err(BlkError::BadBackendValue("mode")),
        } || info & VDISK_READONLY != 0;
        let feature = |text: Option<String>| text.as_deref() == Some("1");
        let flush = if feature(read("feature-flush-cache")) {
            FlushMode::FlushCache
        } else if feature(read("feature-barrier")) {
            FlushMode::Barrier
        } else {
            FlushMode::WriteThrough
        };
        let max_indirect_segments = number(
            "feature-max-indirect-segments",
            read("feature-max-indirect-segments"),
        )?
        .unwrap_or(0);
        let max_indirect_segments = u32::try_from(max_indirect_segments)
            .map_err(|_| BlkError::BadBackendValue("feature-max-indirect-segments"))?;
        let discard = if feature(read("feature-discard")) {
            let mut bytes = |key: &'static str| -> Result<u32, BlkError> {
                let v = number(key, read(key))?.unwrap_or(0);
                u32::try_from(v).map_err(|_| BlkError::BadBackendValue(key))
            };
            let granularity = bytes("discard-granularity")?;
            let alignment = bytes("discard-alignment")?;
            if !granularity.is_multiple_of(512) {
                return Err(BlkError::BadBackendValue("discard-granularity"));
            }
            if granularity != 0 && alignment >= granularity {
                return Err(BlkError::BadBackendValue("discard-alignment"));
            }
            Some(Discard {
                granularity,
                alignment,
                secure: feature(read("discard-secure")),
            })
        } else {
            None
        };
        Ok(Self {
            sectors,
            sector_size,
            physical_sector_size,
            info,
            readonly,
            flush,
            max_indirect_segments,
            persistent: feature(read("feature-persistent")),
            discard,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::string::ToString;

    fn parse(keys: &[(&str, &str)]) -> Result<DiskInfo, BlkError> {
        let map: BTreeMap<String, String> = keys
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DiskInfo::parse(|k| map.get(k).cloned())
    }

    #[test]
    fn linux_blkback_keys_parse() {
        let info = parse(&[
            ("sectors", "2048"),
            ("sector-size", "512"),
            ("physical-sector-size", "4096"),
            ("info", "0"),
            ("mode", "w"),
            ("feature-flush-cache", "1"),
            ("feature-barrier", "1"),
        ])
        .unwrap();
        assert_eq!(info.bytes(), 1 << 20);
        assert_eq!((info.sector_size, info.physical_sector_size), (512, 4096));
        assert_eq!((info.readonly, info.flush), (false, FlushMode::FlushCache));
        assert_eq!(info.max_indirect_segments, 0, "not offered");
        assert!(!info.persistent, "not offered");
        let persistent = parse(&[
            ("sectors", "8"),
            ("sector-size", "512"),
            ("feature-persistent", "1"),
        ])
        .unwrap();
        assert!(persistent.persistent);
        assert_eq!(persistent.discard, None, "not offered");
        let discard = parse(&[
            ("sectors", "8"),
            ("sector-size", "512"),
            ("feature-discard", "1"),
            ("discard-granularity", "4096"),
            ("discard-alignment", "512"),
            ("discard-secure", "1"),
        ])
        .unwrap();
        assert_eq!(
            discard.discard,
            Some(Discard {
                granularity: 4096,
                alignment: 512,
                secure: true
            })
        );
        let bare = parse(&[
            ("sectors", "8"),
            ("sector-size", "512"),
            ("feature-discard", "1"),
        ]);
        assert_eq!(
            bare.unwrap().discard,
            Some(Discard {
                granularity: 0,
                alignment: 0,
                secure: false
            })
        );
        let indirect = parse(&[
            ("sectors", "8"),
            ("sector-size", "512"),
            ("feature-max-indirect-segments", "256"),
        ])
        .unwrap();
        assert_eq!(indirect.max_indirect_segments, 256);
        let ro = parse(&[("sectors", "8"), ("sector-size", "512"), ("mode", "r")]).unwrap();
        assert_eq!(
            (ro.readonly, ro.flush, ro.physical_sector_size),
            (true, FlushMode::WriteThrough, 512)
        );
        let ro_info = parse(&[
            ("sectors", "8"),
            ("sector-size", "4096"),
            ("info", "4"),
            ("feature-barrier", "1"),
        ])
        .unwrap();
        assert_eq!(
            (ro_info.readonly, ro_info.flush),
            (true, FlushMode::Barrier)
        );
    }

    #[test]
    fn hostile_keys_are_refused_by_name() {
        for (keys, key) in [
            (&[("sector-size", "512")][..], "sectors"),
            (&[("sectors", "-1"), ("sector-size", "512")], "sectors"),
            (
                &[
                    ("sectors", "99999999999999999999999"),
                    ("sector-size", "512"),
                ],
                "sectors",
            ),
            (&[("sectors", "8")], "sector-size"),
            (&[("sectors", "8"), ("sector-size", "513")], "sector-size"),
            (&[("sectors", "8"), ("sector-size", "8192")], "sector-size"),
            (
                &[
                    ("sectors", "8"),
                    ("sector-size", "512"),
                    ("physical-sector-size", "0"),
                ],
                "physical-sector-size",
            ),
            (
                &[
                    ("sectors", "8"),
                    ("sector-size", "512"),
                    ("info", "4294967296"),
                ],
                "info",
            ),
            (
                &[("sectors", "8"), ("sector-size", "512"), ("mode", "rw")],
                "mode",
            ),
            (
                &[
                    ("sectors", "8"),
                    ("sector-size", "512"),
                    ("feature-max-indirect-segments", "lots"),
                ],
                "feature-max-indirect-segments",
            ),
            (
                &[
                    ("sectors", "8"),
                    ("sector-size", "512"),
                    ("feature-max-indirect-segments", "-32"),
                ],
                "feature-max-indirect-segments",
            ),
            (
                &[
                    ("sectors", "8"),
                    ("sector-size", "512"),
                    ("feature-max-indirect-segments", "4294967296"),
                ],
                "feature-max-indirect-segments",
            ),
        ] {
            assert_eq!(parse(keys), Err(BlkError::BadBackendValue(key)), "{keys:?}");
        }
        for (value, key) in [
            ("100", "discard-granularity"),
            ("x", "discard-granularity"),
            ("4294967296", "discard-granularity"),
            ("-512", "discard-granularity"),
        ] {
            let keys = [
                ("sectors", "8"),
                ("sector-size", "512"),
                ("feature-discard", "1"),
                (key, value),
            ];
            assert_eq!(parse(&keys), Err(BlkError::BadBackendValue(key)), "{value}");
        }
        for (granularity, alignment) in [("4096", "4096"), ("4096", "lots")] {
            let keys = [
                ("sectors", "8"),
                ("sector-size", "512"),
                ("feature-discard", "1"),
                ("discard-granularity", granularity),
                ("discard-alignment", alignment),
            ];
            assert_eq!(
                parse(&keys),
                Err(BlkError::BadBackendValue("discard-alignment")),
                "{alignment}"
            );
        }
    }
}
