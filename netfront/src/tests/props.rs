//! Property tests of response parsing: whatever the backend writes, the checks hold and
//! nothing panics.

use super::netback::Fault;
use super::*;
use crate::rx::{RxSlot, check_rx_response};
use crate::tx::{TxStatus, check_tx_response};
use abi::io::netif::{NetifRxResponse, NetifTxResponse};
use proptest::prelude::*;

fn any_rx_response() -> impl Strategy<Value = NetifRxResponse> {
    // Plausible values most of the time, so that every check is reached; anything else too.
    (
        any::<u16>(),
        prop_oneof![0u16..4096, any::<u16>()],
        prop_oneof![0u16..16, any::<u16>()],
        prop_oneof![-3i16..4097, any::<i16>()],
    )
        .prop_map(|(id, offset, flags, status)| NetifRxResponse {
            id,
            offset,
            flags,
            status,
        })
}

proptest! {
    #[test]
    fn an_accepted_rx_slot_stays_inside_its_page(
        mut response in any_rx_response(),
        other_id in proptest::option::weighted(0.2, any::<u16>()),
        first in any::<bool>(),
    ) {
        // Mostly the id posted, so that the other checks are reached.
        let expected = response.id;
        if let Some(id) = other_id {
            response.id = id;
        }
        match check_rx_response(&response, expected, first) {
            Ok(RxSlot::Data { offset, size, flags }) => {
                prop_assert_eq!(response.id, expected);
                prop_assert!(usize::from(offset) + usize::from(size) <= 4096);
                prop_assert_eq!(flags & !0xf, 0);
                prop_assert!(first || flags & 8 == 0);
            }
            Ok(RxSlot::Error { status, .. }) => {
                prop_assert!(status == -1 || status == -2);
            }
            Err(_) => {}
        }
    }

    #[test]
    fn an_accepted_tx_response_names_a_buffer_in_flight(
        id in any::<u16>(),
        status in any::<i16>(),
        in_flight in proptest::collection::vec(any::<bool>(), 0..300),
    ) {
        let response = NetifTxResponse { id, status };
        if let Ok((got, outcome)) = check_tx_response(&response, &in_flight) {
            prop_assert_eq!(got, id);
            prop_assert!(in_flight[usize::from(id)]);
            prop_assert!(matches!(outcome, TxStatus::Okay) == (status == 0));
            prop_assert!((-2..=0).contains(&status));
        }
    }

    /// A backend mixing every fault into real traffic: the device never panics, keeps its
    /// buffers posted and its grants constant, and delivers only frames the backend sent.
    #[test]
    fn the_device_survives_any_mix_of_faults(
        faults in proptest::collection::vec(
            prop_oneof![
                Just(None),
                (0u16..400).prop_map(|d| Some(Fault::IdOffset(d))),
                Just(Some(Fault::Duplicate)),
                // Error codes and nonsense (a size is the backend's word: another size than
                // it wrote delivers other bytes, though never any from outside the page).
                (i16::MIN..0).prop_map(|s| Some(Fault::Status(s))),
                any::<u16>().prop_map(|o| Some(Fault::Offset(o))),
                any::<u16>().prop_map(|f| Some(Fault::Flags(f))),
            ],
            1..40,
        ),
        slot_bytes in 200usize..2000,
    ) {
        let mut rig = Rig::with(Some("1500"), Config { tx_buffers: 8, rx_buffers: 16 , ..Config::default()});
        let grants = rig.dev.stats().grants_in_use;
        rig.back.rx_slot_bytes = slot_bytes;
        let sent: Vec<Vec<u8>> = (0..faults.len()).map(|n| frame(n as u8, 100 + n * 30)).collect();
        for (fault, f) in faults.iter().zip(&sent) {
            if let Some(fault) = fault {
                rig.back.rx_faults.push_back(*fault);
                rig.back.tx_faults.push_back(match fault {
                    Fault::Offset(_) | Fault::Flags(_) => Fault::IdOffset(0),
                    other => *other,
                });
            } else {
                rig.back.rx_faults.push_back(Fault::IdOffset(0));
                rig.back.tx_faults.push_back(Fault::IdOffset(0));
            }
            rig.back.to_guest.push_back(f.clone());
            let _ = rig.dev.send(f);
            let _ = rig.dev.flush();
            rig.backend();
            for got in rig.received() {
                prop_assert!(sent.contains(&got), "a frame nobody sent: {} bytes {:?}", got.len(), &got[..got.len().min(16)]);
            }
        }
        prop_assert_eq!(rig.dev.ended(), None);
        prop_assert_eq!(rig.dev.rx_posted(), 16);
        prop_assert_eq!(rig.dev.stats().grants_in_use, grants);
    }
}
