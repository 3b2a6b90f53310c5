//! The offloads: the keys each one writes, scatter-gather on tx, checksum offload both ways,
//! GSO receive, and a hostile backend's flags and extras refused without harm.

use super::traffic::tcp_frame;
use super::*;
use abi::io::netif::{
    NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NetifExtraInfo, NetifExtraInfoGso, NetifExtraInfoU,
    XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};
use smoltcp::phy::{Checksum, Device as _};

fn gso(size: u16, type_: u8) -> NetifExtraInfo {
    NetifExtraInfo {
        type_: XEN_NETIF_EXTRA_TYPE_GSO,
        flags: 0,
        u: NetifExtraInfoU {
            gso: NetifExtraInfoGso {
                size,
                type_,
                pad: 0,
                features: 0,
            },
        },
    }
}

fn with(offloads: Offloads) -> Config {
    Config {
        offloads,
        ..Config::default()
    }
}

#[test]
fn each_offload_writes_its_key_and_each_switch_turns_one_off() {
    let keys = |rig: &Rig| {
        ["feature-no-csum-offload", "feature-sg", "feature-gso-tcpv4"].map(|k| key(&rig.xs, k))
    };
    let rig = Rig::with(Some("1500"), Config::default());
    assert_eq!(keys(&rig), ["0", "1", "1"]);
    // The fake backend offers neither split channels nor queues.
    let in_use = Offloads {
        split: false,
        multi_queue: false,
        ..Offloads::ALL
    };
    assert_eq!(rig.dev.offloads(), in_use);
    assert!(matches!(
        rig.dev.capabilities().checksum.tcp,
        Checksum::None
    ));
    let no_csum = Offloads {
        csum: false,
        ..Offloads::ALL
    };
    let rig = Rig::with(Some("1500"), with(no_csum));
    // GSO receive needs checksum offload: it goes too.
    assert_eq!(keys(&rig), ["1", "1", "0"]);
    assert!(matches!(
        rig.dev.capabilities().checksum.tcp,
        Checksum::Both
    ));
    let no_sg = Offloads {
        sg: false,
        ..Offloads::ALL
    };
    let rig = Rig::with(Some("1500"), with(no_sg));
    assert_eq!(keys(&rig), ["0", "0", "0"]);
    let no_gso = Offloads {
        gso_rx: false,
        ..Offloads::ALL
    };
    let rig = Rig::with(Some("1500"), with(no_gso));
    assert_eq!(keys(&rig), ["0", "1", "0"]);
}

#[test]
fn with_sg_a_large_frame_takes_several_slots_and_arrives_whole() {
    let mut rig = Rig::with(Some("9000"), Config::default());
    assert_eq!(rig.dev.config().mtu, 9000);
    let big = frame(4, 9014);
    rig.dev.send(&big).unwrap();
    rig.dev.send(&frame(5, 60)).unwrap();
    rig.dev.flush().unwrap();
    rig.backend();
    assert_eq!(
        rig.back.from_guest.drain(..).collect::<Vec<_>>(),
        vec![big, frame(5, 60)]
    );
    assert_eq!((rig.back.tx_multi_slot, rig.back.tx_violations), (1, 0));
    let stats = rig.dev.stats();
    assert_eq!((stats.tx_multi_slot, stats.tx_requests), (1, 4));
    // Every buffer came back.
    rig.dev.poll();
    assert_eq!(rig.dev.tx_in_flight(), 0);
    assert!(rig.dev.send(&frame(6, 9015)).is_err(), "over the MTU");
}

#[test]
fn offloaded_tcp_frames_leave_blank_and_netback_completes_them() {
    let mut rig = Rig::new();
    let good = tcp_frame(b"checksum left to netback");
    let mut blank = good.clone();
    // What smoltcp leaves without tx checksums.
    blank[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&[0, 0]);
    rig.dev.send(&blank).unwrap();
    // Not TCP: sent as it is, unflagged.
    rig.dev.send(&frame(1, 60)).unwrap();
    rig.dev.flush().unwrap();
    rig.backend();
    assert_eq!(
        rig.back.from_guest.drain(..).collect::<Vec<_>>(),
        vec![good, frame(1, 60)]
    );
    assert_eq!(rig.back.tx_csum_blank, 1);
    assert_eq!(rig.dev.stats().tx_csum_offloaded, 1);

    let mut rig = Rig::with(Some("1500"), NO_OFFLOADS);
    rig.dev.send(&tcp_frame(b"x")).unwrap();
    rig.dev.flush().unwrap();
    rig.backend();
    assert_eq!(rig.back.tx_csum_blank, 0);
    assert_eq!(rig.dev.stats().tx_csum_offloaded, 0);
}

#[test]
fn received_tcp_is_trusted_when_flagged_and_checked_here_when_not() {
    let mut rig = Rig::new();
    let good = tcp_frame(b"checked by dom0");
    let mut wrong = good.clone();
    wrong[14 + 20 + 16] ^= 0xff;
    // Flagged: trusted as it is (smoltcp checks no TCP checksum on this device).
    rig.back.rx_flags = NETRXF_DATA_VALIDATED;
    rig.back.to_guest.push_back(wrong.clone());
    rig.backend();
    assert_eq!(rig.received(), vec![wrong.clone()]);
    // Unflagged: checked here; the wrong one is dropped, the right one delivered.
    rig.back.rx_flags = 0;
    rig.back.to_guest.push_back(wrong);
    rig.back.to_guest.push_back(good.clone());
    rig.backend();
    assert_eq!(rig.received(), vec![good]);
    let s = rig.dev.stats();
    assert_eq!(
        (s.rx_csum_trusted, s.rx_csum_verified, s.rx_csum_bad),
        (1, 2, 1)
    );
}

#[test]
fn checksum_flags_on_a_frame_too_short_for_them_drop_it_and_the_device_goes_on() {
    let mut rig = Rig::new();
    let full = tcp_frame(b"");
    // IPv4 says TCP, but the frame ends inside the TCP header.
    let mut short = full[..14 + 20 + 10].to_vec();
    short[16..18].copy_from_slice(&30u16.to_be_bytes());
    for flags in [
        NETRXF_DATA_VALIDATED,
        NETRXF_CSUM_BLANK,
        NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED,
    ] {
        rig.back.rx_flags = flags;
        rig.back.to_guest.push_back(short.clone());
        rig.back.to_guest.push_back(full.clone());
        rig.backend();
        assert_eq!(rig.received(), vec![full.clone()], "flags {flags:#x}");
    }
    let s = rig.dev.stats();
    assert_eq!((s.rx_csum_bad, s.rx_dropped, s.rx_packets), (3, 3, 3));
    assert!(rig.dev.ended().is_none());
    assert_eq!(rig.dev.rx_posted(), 128);
}

#[test]
fn gso_frames_arrive_in_many_slots_and_absurd_ones_are_refused() {
    let mut rig = Rig::new();
    rig.back.rx_slot_bytes = 4096;
    let payload: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let big = tcp_frame(&payload);
    rig.back.rx_flags = NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
    rig.back.rx_extras = vec![gso(1448, XEN_NETIF_GSO_TYPE_TCPV4)];
    rig.back.to_guest.push_back(big.clone());
    rig.backend();
    assert_eq!(rig.received(), vec![big.clone()]);
    let s = rig.dev.stats();
    assert_eq!((s.rx_gso, s.rx_multi_slot, s.rx_dropped), (1, 1, 0));
    assert_eq!(s.rx_largest_frame, big.len() as u64);

    // A segment size of 0, one above the MTU, a type not negotiated: each refused, and the
    // frame after each arrives.
    rig.back.rx_flags = 0;
    for extra in [
        gso(0, XEN_NETIF_GSO_TYPE_TCPV4),
        gso(60_000, XEN_NETIF_GSO_TYPE_TCPV4),
        gso(1448, XEN_NETIF_GSO_TYPE_TCPV6),
    ] {
        rig.back.rx_extras = vec![extra];
        rig.back.to_guest.push_back(big.clone());
        rig.back.to_guest.push_back(frame(2, 100));
        rig.backend();
        assert_eq!(rig.received(), vec![frame(2, 100)]);
    }
    let s = rig.dev.stats();
    assert_eq!((s.rx_gso, s.rx_dropped), (1, 3));
    // A frame over the MTU without a GSO extra is refused too.
    rig.back.to_guest.push_back(big);
    rig.backend();
    assert_eq!(rig.received(), Vec::<Vec<u8>>::new());
    assert_eq!(rig.dev.stats().rx_dropped, 4);
    assert_eq!(rig.dev.rx_posted(), 128);
}
