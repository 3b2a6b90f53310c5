//! Virtual block devices by name: `xvd<letter>` and its xenbus device id (for the application
//! and the self-tests alike), and `blk-expect=xvda:<bytes>:r,xvdb:<bytes>:w`, the disks the
//! harness configured, which the `blk` self-tests compare with what the backend reports.

use alloc::vec::Vec;

/// One expected disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedDisk<'a> {
    /// The Linux name (`xvda`).
    pub name: &'a str,
    /// Its xenbus device id (`xvda` = 51712: major 202, minor 16 per letter).
    pub devid: u32,
    /// Size in bytes.
    pub bytes: u64,
    /// Writable (`w`) or read-only (`r`).
    pub writable: bool,
}

/// The xenbus device id of `xvd<letter>` (202 << 8 | index << 4), for `a` to `p`.
pub fn xvd_devid(name: &str) -> Option<u32> {
    let letter = name.strip_prefix("xvd")?;
    let &[c] = letter.as_bytes() else {
        return None;
    };
    (b'a'..=b'p')
        .contains(&c)
        .then(|| (202 << 8) | (u32::from(c - b'a') << 4))
}

/// Parses the value of `blk-expect=`; the error is the first malformed entry's position.
pub fn parse_blk_expect(value: &str) -> Result<Vec<ExpectedDisk<'_>>, usize> {
    value
        .split(',')
        .enumerate()
        .map(|(i, entry)| {
            let mut parts = entry.split(':');
            let (Some(name), Some(bytes), Some(mode), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(i);
            };
            let devid = xvd_devid(name).ok_or(i)?;
            let bytes = bytes.parse().map_err(|_| i)?;
            let writable = match mode {
                "w" => true,
                "r" => false,
                _ => return Err(i),
            };
            Ok(ExpectedDisk {
                name,
                devid,
                bytes,
                writable,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_harness_form() {
        let disks = parse_blk_expect("xvda:1048576:r,xvdb:4194304:w").unwrap();
        assert_eq!(
            disks,
            [
                ExpectedDisk {
                    name: "xvda",
                    devid: 51712,
                    bytes: 1 << 20,
                    writable: false
                },
                ExpectedDisk {
                    name: "xvdb",
                    devid: 51728,
                    bytes: 4 << 20,
                    writable: true
                },
            ]
        );
    }

    #[test]
    fn malformed_entries_are_named() {
        assert_eq!(parse_blk_expect("xvda:1:r,xvdb:x:w"), Err(1));
        assert_eq!(parse_blk_expect("sda:1:r"), Err(0));
        assert_eq!(parse_blk_expect("xvda:1:rw"), Err(0));
        assert_eq!(parse_blk_expect("xvda:1"), Err(0));
        assert_eq!(parse_blk_expect("xvda:1:r:extra"), Err(0));
        assert_eq!(xvd_devid("xvdq"), None);
        assert_eq!(xvd_devid("xvdb"), Some(51728));
    }
}
