//! The virtual network interface protocol of `xen/io/netif.h`: tx/rx ring entries, extra-info
//! slots, flags, and the optional control ring.
//!
//! The front end owns two rings: on **tx** it sends packets ([`NetifTxRequest`], answered by
//! [`NetifTxResponse`]); on **rx** it posts empty buffers ([`NetifRxRequest`]) that the back end
//! fills ([`NetifRxResponse`]). Both rings have 256 slots in one page. A slot flagged
//! `NETTXF_extra_info` / `NETRXF_extra_info` is followed by a [`NetifExtraInfo`] occupying the
//! next slot of the same ring; [`NetifExtraInfo::to_tx_request`] and friends convert between the
//! two views the way C casts the slot.
//!
//! Beware the flag numbering: checksum-blank and data-validated swap bits between the two
//! directions (`NETTXF_csum_blank` is bit 0, `NETRXF_csum_blank` is bit 1).

use core::fmt;
use core::mem::{align_of, offset_of, size_of};

use crate::grant_table::GrantRef;
use crate::ring::{RingEntry, cast_entry};

/// `XEN_NETIF_NR_SLOTS_MIN`: the number of slots per packet every back end must accept.
pub const XEN_NETIF_NR_SLOTS_MIN: u32 = 18;

// ---------------------------------------------------------------------------------------------
// Control ring (`feature-ctrl-ring`): hash configuration and static grants
// ---------------------------------------------------------------------------------------------

/// `_XEN_NETIF_CTRL_HASH_TYPE_IPV4`: bit number of [`XEN_NETIF_CTRL_HASH_TYPE_IPV4`].
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV4_BIT: u32 = 0;
/// `XEN_NETIF_CTRL_HASH_TYPE_IPV4`: hash over the IPv4 addresses.
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV4: u32 = 1 << XEN_NETIF_CTRL_HASH_TYPE_IPV4_BIT;
/// `_XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP`: bit number of [`XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP`].
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP_BIT: u32 = 1;
/// `XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP`: hash over the IPv4 addresses and TCP ports.
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP: u32 = 1 << XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP_BIT;
/// `_XEN_NETIF_CTRL_HASH_TYPE_IPV6`: bit number of [`XEN_NETIF_CTRL_HASH_TYPE_IPV6`].
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV6_BIT: u32 = 2;
/// `XEN_NETIF_CTRL_HASH_TYPE_IPV6`: hash over the IPv6 addresses.
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV6: u32 = 1 << XEN_NETIF_CTRL_HASH_TYPE_IPV6_BIT;
/// `_XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP`: bit number of [`XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP`].
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP_BIT: u32 = 3;
/// `XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP`: hash over the IPv6 addresses and TCP ports.
pub const XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP: u32 = 1 << XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP_BIT;

/// `XEN_NETIF_CTRL_HASH_ALGORITHM_NONE`: no hashing.
pub const XEN_NETIF_CTRL_HASH_ALGORITHM_NONE: u32 = 0;
/// `XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ`: the Toeplitz hash.
pub const XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ: u32 = 1;

/// `XEN_NETIF_CTRL_TYPE_INVALID`.
pub const XEN_NETIF_CTRL_TYPE_INVALID: u16 = 0;
/// `XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS`.
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS: u16 = 1;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS`.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS: u16 = 2;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_KEY`.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_KEY: u16 = 3;
/// `XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE`.
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE: u16 = 4;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE`.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE: u16 = 5;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING`.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING: u16 = 6;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM`.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM: u16 = 7;
/// `XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE`.
pub const XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE: u16 = 8;
/// `XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING`.
pub const XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING: u16 = 9;
/// `XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING`.
pub const XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING: u16 = 10;

/// `XEN_NETIF_CTRL_STATUS_SUCCESS`.
pub const XEN_NETIF_CTRL_STATUS_SUCCESS: u32 = 0;
/// `XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED`.
pub const XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED: u32 = 1;
/// `XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER`.
pub const XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER: u32 = 2;
/// `XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW`.
pub const XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW: u32 = 3;

/// `struct xen_netif_ctrl_request`: a control-ring request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenNetifCtrlRequest {
    /// Request identifier, echoed in the response.
    pub id: u16,
    /// `type`: one of `XEN_NETIF_CTRL_TYPE_*`.
    pub type_: u16,
    /// Arguments, by type.
    pub data: [u32; 3],
}
const _: () = {
    assert!(size_of::<XenNetifCtrlRequest>() == 16);
    assert!(align_of::<XenNetifCtrlRequest>() == 4);
    assert!(offset_of!(XenNetifCtrlRequest, id) == 0);
    assert!(offset_of!(XenNetifCtrlRequest, type_) == 2);
    assert!(offset_of!(XenNetifCtrlRequest, data) == 4);
};
// SAFETY: integers only, and the asserts above leave no room for padding.
unsafe impl RingEntry for XenNetifCtrlRequest {}

/// `struct xen_netif_ctrl_response`: a control-ring response.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenNetifCtrlResponse {
    /// The request's identifier.
    pub id: u16,
    /// `type`: the request's type.
    pub type_: u16,
    /// One of `XEN_NETIF_CTRL_STATUS_*`.
    pub status: u32,
    /// Result, by type and status.
    pub data: u32,
}
const _: () = {
    assert!(size_of::<XenNetifCtrlResponse>() == 12);
    assert!(align_of::<XenNetifCtrlResponse>() == 4);
    assert!(offset_of!(XenNetifCtrlResponse, id) == 0);
    assert!(offset_of!(XenNetifCtrlResponse, type_) == 2);
    assert!(offset_of!(XenNetifCtrlResponse, status) == 4);
    assert!(offset_of!(XenNetifCtrlResponse, data) == 8);
};
// SAFETY: integers only, and the asserts above leave no room for padding.
unsafe impl RingEntry for XenNetifCtrlResponse {}

/// `_XEN_NETIF_CTRLF_GREF_readonly`: bit number of [`XEN_NETIF_CTRLF_GREF_READONLY`].
pub const XEN_NETIF_CTRLF_GREF_READONLY_BIT: u16 = 0;
/// `XEN_NETIF_CTRLF_GREF_readonly`: map the static grant read-only.
pub const XEN_NETIF_CTRLF_GREF_READONLY: u16 = 1 << XEN_NETIF_CTRLF_GREF_READONLY_BIT;

/// `struct xen_netif_gref`: an entry of the static-grant tables of the control ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenNetifGref {
    /// `ref`: the grant reference.
    pub ref_: GrantRef,
    /// `XEN_NETIF_CTRLF_GREF_*` flags.
    pub flags: u16,
    /// `XEN_NETIF_CTRL_STATUS_*`, written by the back end.
    pub status: u16,
}
const _: () = {
    assert!(size_of::<XenNetifGref>() == 8);
    assert!(align_of::<XenNetifGref>() == 4);
    assert!(offset_of!(XenNetifGref, ref_) == 0);
    assert!(offset_of!(XenNetifGref, flags) == 4);
    assert!(offset_of!(XenNetifGref, status) == 6);
};

// ---------------------------------------------------------------------------------------------
// Transmit
// ---------------------------------------------------------------------------------------------

/// `_NETTXF_csum_blank`: bit number of [`NETTXF_CSUM_BLANK`].
pub const NETTXF_CSUM_BLANK_BIT: u16 = 0;
/// `NETTXF_csum_blank`: the protocol checksum field is blank (checksum offload).
pub const NETTXF_CSUM_BLANK: u16 = 1 << NETTXF_CSUM_BLANK_BIT;
/// `_NETTXF_data_validated`: bit number of [`NETTXF_DATA_VALIDATED`].
pub const NETTXF_DATA_VALIDATED_BIT: u16 = 1;
/// `NETTXF_data_validated`: the data has been validated against its checksum.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << NETTXF_DATA_VALIDATED_BIT;
/// `_NETTXF_more_data`: bit number of [`NETTXF_MORE_DATA`].
pub const NETTXF_MORE_DATA_BIT: u16 = 2;
/// `NETTXF_more_data`: the packet continues in the next request.
pub const NETTXF_MORE_DATA: u16 = 1 << NETTXF_MORE_DATA_BIT;
/// `_NETTXF_extra_info`: bit number of [`NETTXF_EXTRA_INFO`].
pub const NETTXF_EXTRA_INFO_BIT: u16 = 3;
/// `NETTXF_extra_info`: the next slot holds a [`NetifExtraInfo`].
pub const NETTXF_EXTRA_INFO: u16 = 1 << NETTXF_EXTRA_INFO_BIT;

/// `XEN_NETIF_MAX_TX_SIZE`: the largest packet a tx request chain may carry.
pub const XEN_NETIF_MAX_TX_SIZE: u16 = 0xffff;

/// `struct netif_tx_request`: one slot of a packet to send.
///
/// The first request of a packet carries the whole packet's `size`; the others carry their
/// own fragment's size.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxRequest {
    /// Grant of the page holding the data.
    pub gref: GrantRef,
    /// Offset of the data within the page.
    pub offset: u16,
    /// `NETTXF_*` flags.
    pub flags: u16,
    /// Identifier, echoed in the response.
    pub id: u16,
    /// Size of the packet (first slot) or of this fragment.
    pub size: u16,
}
const _: () = {
    assert!(size_of::<NetifTxRequest>() == 12);
    assert!(align_of::<NetifTxRequest>() == 4);
    assert!(offset_of!(NetifTxRequest, gref) == 0);
    assert!(offset_of!(NetifTxRequest, offset) == 4);
    assert!(offset_of!(NetifTxRequest, flags) == 6);
    assert!(offset_of!(NetifTxRequest, id) == 8);
    assert!(offset_of!(NetifTxRequest, size) == 10);
};
// SAFETY: integers only, and the asserts above leave no room for padding.
unsafe impl RingEntry for NetifTxRequest {}

/// `struct netif_tx_response`: the answer to one tx request (or `NETIF_RSP_NULL` for an
/// extra-info slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxResponse {
    /// The request's identifier.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}
const _: () = {
    assert!(size_of::<NetifTxResponse>() == 4);
    assert!(align_of::<NetifTxResponse>() == 2);
    assert!(offset_of!(NetifTxResponse, id) == 0);
    assert!(offset_of!(NetifTxResponse, status) == 2);
};
// SAFETY: integers only, and the asserts above leave no room for padding.
unsafe impl RingEntry for NetifTxResponse {}

// ---------------------------------------------------------------------------------------------
// Extra info
// ---------------------------------------------------------------------------------------------

/// `XEN_NETIF_EXTRA_TYPE_NONE`: never used (invalid).
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_EXTRA_TYPE_GSO`: `u.gso` is valid.
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`: `u.mcast` is valid: add a multicast address.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`: `u.mcast` is valid: remove a multicast address.
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// `XEN_NETIF_EXTRA_TYPE_HASH`: `u.hash` is valid.
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// `XEN_NETIF_EXTRA_TYPE_MAX`: one more than the largest type.
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;

/// `_XEN_NETIF_EXTRA_FLAG_MORE`: bit number of [`XEN_NETIF_EXTRA_FLAG_MORE`].
pub const XEN_NETIF_EXTRA_FLAG_MORE_BIT: u8 = 0;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << XEN_NETIF_EXTRA_FLAG_MORE_BIT;

/// `XEN_NETIF_GSO_TYPE_NONE`: no segmentation offload.
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_GSO_TYPE_TCPV4`: TCP over IPv4 segmentation offload.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// `XEN_NETIF_GSO_TYPE_TCPV6`: TCP over IPv6 segmentation offload.
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// `netif_extra_info.u.gso`: segmentation offload parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfoGso {
    /// Maximum payload size of each segment (the MSS).
    pub size: u16,
    /// `type`: one of `XEN_NETIF_GSO_TYPE_*`.
    pub type_: u8,
    /// Future expansion; zero.
    pub pad: u8,
    /// `XEN_NETIF_GSO_FEAT_*` (none defined); zero.
    pub features: u16,
}
const _: () = {
    assert!(size_of::<NetifExtraInfoGso>() == 6);
    assert!(offset_of!(NetifExtraInfoGso, size) == 0);
    assert!(offset_of!(NetifExtraInfoGso, type_) == 2);
    assert!(offset_of!(NetifExtraInfoGso, pad) == 3);
    assert!(offset_of!(NetifExtraInfoGso, features) == 4);
};

/// `netif_extra_info.u.mcast`: a multicast address to add or remove.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfoMcast {
    /// The Ethernet address.
    pub addr: [u8; 6],
}
const _: () = assert!(size_of::<NetifExtraInfoMcast>() == 6);

/// `netif_extra_info.u.hash`: the hash of a packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfoHash {
    /// `type`: the hash type (`_XEN_NETIF_CTRL_HASH_TYPE_*`, a bit number).
    pub type_: u8,
    /// The algorithm (`XEN_NETIF_CTRL_HASH_ALGORITHM_*`).
    pub algorithm: u8,
    /// The hash value, least significant byte first.
    pub value: [u8; 4],
}
const _: () = {
    assert!(size_of::<NetifExtraInfoHash>() == 6);
    assert!(offset_of!(NetifExtraInfoHash, type_) == 0);
    assert!(offset_of!(NetifExtraInfoHash, algorithm) == 1);
    assert!(offset_of!(NetifExtraInfoHash, value) == 2);
};

/// `netif_extra_info.u`: the type-dependent part of an extra-info slot.
///
/// Every member is exactly 6 bytes of plain integers, so whichever one was written, all bytes
/// are initialised and every member may be read: construct with a member
/// (`NetifExtraInfoU { gso: ... }`), read with the safe accessors.
#[repr(C)]
#[derive(Clone, Copy)]
pub union NetifExtraInfoU {
    /// For `XEN_NETIF_EXTRA_TYPE_GSO`.
    pub gso: NetifExtraInfoGso,
    /// For `XEN_NETIF_EXTRA_TYPE_MCAST_{ADD,DEL}`.
    pub mcast: NetifExtraInfoMcast,
    /// For `XEN_NETIF_EXTRA_TYPE_HASH`.
    pub hash: NetifExtraInfoHash,
    /// The raw contents.
    pub pad: [u16; 3],
}
const _: () = {
    assert!(size_of::<NetifExtraInfoU>() == 6);
    assert!(align_of::<NetifExtraInfoU>() == 2);
};

impl NetifExtraInfoU {
    /// The contents as `u.gso`.
    pub fn gso(&self) -> NetifExtraInfoGso {
        // SAFETY: all members are 6 bytes of integers without padding (asserted above), so
        // every byte is initialised whichever member was written, and any bytes are valid.
        unsafe { self.gso }
    }

    /// The contents as `u.mcast`.
    pub fn mcast(&self) -> NetifExtraInfoMcast {
        // SAFETY: as in `gso`.
        unsafe { self.mcast }
    }

    /// The contents as `u.hash`.
    pub fn hash(&self) -> NetifExtraInfoHash {
        // SAFETY: as in `gso`.
        unsafe { self.hash }
    }

    /// The contents as `u.pad`.
    pub fn raw(&self) -> [u16; 3] {
        // SAFETY: as in `gso`.
        unsafe { self.pad }
    }
}

impl Default for NetifExtraInfoU {
    fn default() -> Self {
        Self { pad: [0; 3] }
    }
}

impl PartialEq for NetifExtraInfoU {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl Eq for NetifExtraInfoU {}

impl fmt::Debug for NetifExtraInfoU {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetifExtraInfoU")
            .field("pad", &self.raw())
            .finish()
    }
}

/// `struct netif_extra_info`: an extra-info slot following a request or response flagged
/// `*_extra_info`; it occupies a whole tx-request or rx-response slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfo {
    /// `type`: one of `XEN_NETIF_EXTRA_TYPE_*`.
    pub type_: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The type-dependent part.
    pub u: NetifExtraInfoU,
}
const _: () = {
    assert!(size_of::<NetifExtraInfo>() == 8);
    assert!(align_of::<NetifExtraInfo>() == 2);
    assert!(offset_of!(NetifExtraInfo, type_) == 0);
    assert!(offset_of!(NetifExtraInfo, flags) == 1);
    assert!(offset_of!(NetifExtraInfo, u) == 2);
    // It must fit in both slot types it travels in.
    assert!(size_of::<NetifExtraInfo>() <= size_of::<NetifTxRequest>());
    assert!(size_of::<NetifExtraInfo>() <= size_of::<NetifRxResponse>());
};
// SAFETY: integers and a union of 6-byte integer structs; 1 + 1 + 6 = 8 bytes, no padding.
unsafe impl RingEntry for NetifExtraInfo {}

impl NetifExtraInfo {
    /// A GSO extra for a TCP/IPv4 packet cut into segments of `size` bytes, no flags (what a
    /// front end puts after a GSO packet's first tx slot, and a back end after its first rx
    /// slot).
    pub const fn gso_tcpv4(size: u16) -> Self {
        Self {
            type_: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: 0,
            u: NetifExtraInfoU {
                gso: NetifExtraInfoGso {
                    size,
                    type_: XEN_NETIF_GSO_TYPE_TCPV4,
                    pad: 0,
                    features: 0,
                },
            },
        }
    }

    /// The tx-request slot holding this extra info (the C cast of the slot); the slot's last
    /// four bytes (`id`, `size`) are zero.
    pub fn to_tx_request(&self) -> NetifTxRequest {
        cast_entry(self)
    }

    /// The extra info held in a tx-request slot.
    pub fn from_tx_request(slot: &NetifTxRequest) -> Self {
        cast_entry(slot)
    }

    /// The rx-response slot holding this extra info.
    pub fn to_rx_response(&self) -> NetifRxResponse {
        cast_entry(self)
    }

    /// The extra info held in an rx-response slot.
    pub fn from_rx_response(slot: &NetifRxResponse) -> Self {
        cast_entry(slot)
    }
}

// ---------------------------------------------------------------------------------------------
// Receive
// ---------------------------------------------------------------------------------------------

/// `struct netif_rx_request`: an empty buffer offered for a received packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxRequest {
    /// Identifier, echoed in the response.
    pub id: u16,
    /// Padding; zero.
    pub pad: u16,
    /// Grant of the buffer page.
    pub gref: GrantRef,
}
const _: () = {
    assert!(size_of::<NetifRxRequest>() == 8);
    assert!(align_of::<NetifRxRequest>() == 4);
    assert!(offset_of!(NetifRxRequest, id) == 0);
    assert!(offset_of!(NetifRxRequest, pad) == 2);
    assert!(offset_of!(NetifRxRequest, gref) == 4);
};
// SAFETY: integers only, and the asserts above leave no room for padding.
unsafe impl RingEntry for NetifRxRequest {}

/// `_NETRXF_data_validated`: bit number of [`NETRXF_DATA_VALIDATED`].
pub const NETRXF_DATA_VALIDATED_BIT: u16 = 0;
/// `NETRXF_data_validated`: the data has been validated against its checksum.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << NETRXF_DATA_VALIDATED_BIT;
/// `_NETRXF_csum_blank`: bit number of [`NETRXF_CSUM_BLANK`].
pub const NETRXF_CSUM_BLANK_BIT: u16 = 1;
/// `NETRXF_csum_blank`: the protocol checksum field is blank.
pub const NETRXF_CSUM_BLANK: u16 = 1 << NETRXF_CSUM_BLANK_BIT;
/// `_NETRXF_more_data`: bit number of [`NETRXF_MORE_DATA`].
pub const NETRXF_MORE_DATA_BIT: u16 = 2;
/// `NETRXF_more_data`: the packet continues in the next response.
pub const NETRXF_MORE_DATA: u16 = 1 << NETRXF_MORE_DATA_BIT;
/// `_NETRXF_extra_info`: bit number of [`NETRXF_EXTRA_INFO`].
pub const NETRXF_EXTRA_INFO_BIT: u16 = 3;
/// `NETRXF_extra_info`: the next slot holds a [`NetifExtraInfo`].
pub const NETRXF_EXTRA_INFO: u16 = 1 << NETRXF_EXTRA_INFO_BIT;
/// `_NETRXF_gso_prefix`: bit number of [`NETRXF_GSO_PREFIX`].
pub const NETRXF_GSO_PREFIX_BIT: u16 = 4;
/// `NETRXF_gso_prefix`: the packet has a GSO prefix (deprecated).
pub const NETRXF_GSO_PREFIX: u16 = 1 << NETRXF_GSO_PREFIX_BIT;

/// `struct netif_rx_response`: a received packet (or fragment) in an offered buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxResponse {
    /// The request's identifier.
    pub id: u16,
    /// Offset of the data within the buffer page.
    pub offset: u16,
    /// `NETRXF_*` flags.
    pub flags: u16,
    /// Length of the data if non-negative, else a `NETIF_RSP_*` error.
    pub status: i16,
}
const _: () = {
    assert!(size_of::<NetifRxResponse>() == 8);
    assert!(align_of::<NetifRxResponse>() == 2);
    assert!(offset_of!(NetifRxResponse, id) == 0);
    assert!(offset_of!(NetifRxResponse, offset) == 2);
    assert!(offset_of!(NetifRxResponse, flags) == 4);
    assert!(offset_of!(NetifRxResponse, status) == 6);
};
// SAFETY: integers only, and the asserts above leave no room for padding.
unsafe impl RingEntry for NetifRxResponse {}

/// `NETIF_RSP_DROPPED`: the packet was dropped.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`: the request failed.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`: the request succeeded.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: no response; the answer to an extra-info slot.
pub const NETIF_RSP_NULL: i16 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::ring_size;

    #[test]
    fn one_page_rings() {
        assert_eq!(ring_size::<NetifTxRequest, NetifTxResponse>(4096), 256);
        assert_eq!(ring_size::<NetifRxRequest, NetifRxResponse>(4096), 256);
        assert_eq!(
            ring_size::<XenNetifCtrlRequest, XenNetifCtrlResponse>(4096),
            128
        );
    }

    #[test]
    fn checksum_flags_swap_between_directions() {
        assert_eq!(NETTXF_CSUM_BLANK, NETRXF_DATA_VALIDATED);
        assert_eq!(NETTXF_DATA_VALIDATED, NETRXF_CSUM_BLANK);
        assert_eq!(NETTXF_EXTRA_INFO, 8);
        assert_eq!(NETRXF_GSO_PREFIX, 16);
    }

    #[test]
    fn extra_info_travels_in_tx_and_rx_slots() {
        let gso = NetifExtraInfo {
            type_: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: XEN_NETIF_EXTRA_FLAG_MORE,
            u: NetifExtraInfoU {
                gso: NetifExtraInfoGso {
                    size: 1448,
                    type_: XEN_NETIF_GSO_TYPE_TCPV4,
                    pad: 0,
                    features: 0,
                },
            },
        };
        let slot = gso.to_tx_request();
        // Bytes 0..4 are type, flags and the little-endian MSS.
        assert_eq!(slot.gref, u32::from_le_bytes([1, 1, 0xa8, 0x05]));
        assert_eq!((slot.offset, slot.flags, slot.id, slot.size), (1, 0, 0, 0));
        assert_eq!(NetifExtraInfo::from_tx_request(&slot), gso);
        assert_eq!(NetifExtraInfo::from_rx_response(&gso.to_rx_response()), gso);
        assert_eq!(gso.u.gso().size, 1448);

        let hash = NetifExtraInfo {
            type_: XEN_NETIF_EXTRA_TYPE_HASH,
            flags: 0,
            u: NetifExtraInfoU {
                hash: NetifExtraInfoHash {
                    type_: u8::try_from(XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP_BIT)
                        .expect("a bit number"),
                    algorithm: u8::try_from(XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ)
                        .expect("an algorithm number"),
                    value: [0x78, 0x56, 0x34, 0x12],
                },
            },
        };
        let rsp = hash.to_rx_response();
        assert_eq!(rsp.offset, u16::from_le_bytes([1, 1]));
        assert_eq!(rsp.status, 0x1234);
        assert_eq!(
            NetifExtraInfo::from_rx_response(&rsp).u.hash(),
            hash.u.hash()
        );
        assert_eq!(hash.u.raw(), [0x0101, 0x5678, 0x1234]);
        assert_eq!(hash.u.mcast().addr, [1, 1, 0x78, 0x56, 0x34, 0x12]);
    }
}
