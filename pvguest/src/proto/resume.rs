//! Which of the service's devices came back with the new domain after a resume, known at
//! once: the new domain's config lists its devices (`device/<class>/<id>` under its home,
//! written by the toolstack before the domain runs), so a device the config left out has no
//! node at all, and waiting for its backend would only run out the reconnect deadline. The
//! vif and the disks are asked the same way ([`missing`]); a device whose list could not be
//! read is tried (and waited for) as before.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xenbus::Instant;
use xenbus::frontend;
use xenbus::xenstore::{XsClient, XsTransport};

/// The new domain's devices of `class` (`device/<class>/`), or `None` if the list could not
/// be read (then every device of the class is tried).
pub fn present<T: XsTransport>(
    xs: &mut XsClient<T>,
    class: &str,
    deadline: Instant,
) -> Option<Vec<u32>> {
    frontend::enumerate(xs, class, deadline).ok()
}

/// Why device `name` (`<class>/<id>`) will not come back, if `present` (the new domain's
/// devices of `class`, [`present`]) shows that the new domain has none: the reason, said at
/// once. `None`: try it (it is listed, or the list is unknown, or its id is).
pub fn missing(
    name: &str,
    class: &str,
    id: Option<u32>,
    present: Option<&[u32]>,
) -> Option<String> {
    match (present, id) {
        (Some(ids), Some(id)) if !ids.contains(&id) => Some(format!(
            "the new domain has no {name} (device/{class}/{id})"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenbus::testing::FakeXenstored;

    const DOMID: u16 = 9;

    /// The new domain's home as the toolstack left it: the devices its config names.
    fn domain(devices: &[&str]) -> XsClient<FakeXenstored> {
        let mut xs = XsClient::new(FakeXenstored::new(DOMID));
        for device in devices {
            let home = format!("/local/domain/{DOMID}/device/{device}");
            xs.transport_mut()
                .store
                .set(&format!("{home}/backend-id"), "0");
        }
        xs
    }

    /// A restore whose config left the vif out: the vif is reported missing from the list
    /// alone, as a left-out disk is; with no time to wait at all (the deadline is now), so
    /// nothing waits for a backend.
    #[test]
    fn a_left_out_vif_is_known_at_once_as_a_left_out_disk_is() {
        let mut xs = domain(&["vbd/51712", "vbd/51728"]);
        let now = xs.now();
        let vifs = present(&mut xs, "vif", now);
        assert_eq!(vifs, Some(Vec::new()));
        assert_eq!(
            missing("vif 0", "vif", Some(0), vifs.as_deref()).as_deref(),
            Some("the new domain has no vif 0 (device/vif/0)")
        );
        let vbds = present(&mut xs, "vbd", now);
        assert_eq!(missing("xvda", "vbd", Some(51712), vbds.as_deref()), None);
        assert_eq!(missing("xvdb", "vbd", Some(51728), vbds.as_deref()), None);

        let mut xs = domain(&["vif/0", "vbd/51712"]);
        let vifs = present(&mut xs, "vif", now);
        assert_eq!(missing("vif 0", "vif", Some(0), vifs.as_deref()), None);
        let vbds = present(&mut xs, "vbd", now);
        assert_eq!(
            missing("xvdb", "vbd", Some(51728), vbds.as_deref()).as_deref(),
            Some("the new domain has no xvdb (device/vbd/51728)")
        );
    }

    /// A list that could not be read, or a device without an id, is tried (and waited for).
    #[test]
    fn an_unknown_list_or_id_is_tried() {
        assert_eq!(missing("vif 0", "vif", Some(0), None), None);
        assert_eq!(missing("xvdz", "vbd", None, Some(&[])), None);
    }
}
