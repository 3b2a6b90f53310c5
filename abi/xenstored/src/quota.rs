//! C xenstored 4.17's quotas (`tools/xenstore/xenstored_core.c`, `xenstored_domain.c`,
//! `xenstored_transaction.c`, `xenstored_watch.c`), their default values, and the sizes the
//! memory quota charges.
//!
//! Every quota binds unprivileged domains only: domain 0 is never refused (C
//! `domain_is_unprivileged`). Each is checked before the request changes or allocates
//! anything that outlives it, so a domain within its quotas never makes the heap grow beyond
//! what [`MEMORY_HARD`] and the counts allow (see the crate documentation for the rule).

use crate::tree::Node;

/// Nodes a domain may own (C `quota_nb_entry_per_domain`): creating one more answers
/// `ENOSPC`. As in C, the count is the owner's committed nodes, checked before each node is
/// created; a transaction is checked at its commit, where the count it would leave must stay
/// below the quota (C `transaction_fix_domains`: `>=` fails).
pub const ENTRIES_PER_DOMAIN: usize = 1000;

/// The size bound of one node record (C `quota_max_entry_size`): a write leaving the record
/// (C `write_node_raw`'s size, see the crate documentation) at this size or above answers
/// `ENOSPC`.
pub const ENTRY_SIZE_MAX: usize = 2048;

/// Permission entries of one `XS_SET_PERMS` (C `quota_nb_perms_per_node`): more answers
/// `ENOSPC`, before the list is parsed.
pub const PERMS_PER_NODE: usize = 5;

/// Watches of one domain (C `quota_nb_watch_per_domain`): `XS_WATCH` answers `E2BIG` once the
/// domain holds *more* than this many (C compares with `>`, so 129 fit).
pub const WATCHES_PER_DOMAIN: usize = 128;

/// Open transactions of one domain (C `quota_max_transaction`): `XS_TRANSACTION_START`
/// answers `ENOSPC` once *more* than this many are open (C compares with `>`, so 11 fit).
pub const TRANSACTIONS_PER_DOMAIN: usize = 10;

/// Nodes one transaction may touch (C `quota_trans_nodes`): touching one more answers
/// `ENOSPC` and marks the transaction failed (its commit answers `ENOMEM`).
pub const NODES_PER_TRANSACTION: usize = 1024;

/// Requests of one domain answered but not yet delivered (C `quota_req_outstanding`): the
/// connection layer stops reading a domain's requests at this many. Not used in this crate.
pub const REQUESTS_OUTSTANDING: usize = 20;

/// The longest path below a domain's home, and the longest other path (C
/// `quota_max_path_len`, `XENSTORE_REL_PATH_MAX`): longer paths are `EINVAL`.
pub const PATH_LEN_MAX: usize = 2048;

/// C `quota_memory_per_domain_soft`: above it C only logs; [`crate::Store::memory_soft_exceeded`]
/// tells.
pub const MEMORY_SOFT: usize = 2 * 1024 * 1024;

/// C `quota_memory_per_domain_hard`: a node write that would bring the owner's charge to it
/// or above answers `EIO` (C `write_node_raw` turns the accounting's `ENOMEM` into `EIO`); a
/// watch answers `ENOMEM`; so does a request whose reply is longer than 16 bytes (a read of
/// a big value: C charges the reply while it is queued); a watch event for the domain is
/// dropped; and while the domain's
/// charge is at it or above (reads inside a transaction are charged without a check, as in C)
/// the connection layer reads no request of the domain (C `domain_can_read`).
pub const MEMORY_HARD: usize = 2 * 1024 * 1024 + 512 * 1024;

/// The quotas C xenstored's command line sets (`--entry-nb <n>`, `--quota
/// transaction-nodes=<n>`, `--quota memory=<n>`); [`Quotas::default`] is C's defaults, which
/// a [`crate::Store`] keeps unless it is made with [`crate::Store::with_quotas`] (a test
/// setting: smaller quotas cost fewer requests to reach, on C xenstored and here alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// [`ENTRIES_PER_DOMAIN`] (`--entry-nb`).
    pub entries_per_domain: usize,
    /// [`NODES_PER_TRANSACTION`] (`--quota transaction-nodes=`).
    pub nodes_per_transaction: usize,
    /// [`MEMORY_HARD`] (`--quota memory=`).
    pub memory_hard: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            entries_per_domain: ENTRIES_PER_DOMAIN,
            nodes_per_transaction: NODES_PER_TRANSACTION,
            memory_hard: MEMORY_HARD,
        }
    }
}

/// The heap one unprivileged domain can make the store hold at most, pushing every quota
/// as far as it goes (measured by `tests/heap_per_domain.rs` with a counting allocator, with
/// a margin): what the committed nodes it owns, its transactions, watches and queued events
/// cost in Rust's collections, not C's accounting. A host running this store sizes its heap
/// as what domain 0's own keys need plus this much per domain.
pub const HEAP_PER_DOMAIN: usize = 16 * 1024 * 1024;

/// C's `struct xs_tdb_record_hdr` (generation, three counts, padded to 8).
const RECORD_HEADER: usize = 24;
/// C's `struct xs_permissions` (two `unsigned int`s).
const PERM_RECORD: usize = 8;
/// The header of a queued message (C `sizeof(bdata->hdr)`).
pub(crate) const MESSAGE_HEADER: usize = 16;
/// Replies up to this size are charged without a check (C `DEFAULT_BUFFER_SIZE`).
pub(crate) const REPLY_UNCHECKED: usize = 16;

/// The size C xenstored stores for a node (`write_node_raw`'s `data.dsize`): the header, 8
/// bytes per permission, the value and each child name with its nul.
pub(crate) fn record_size(node: &Node) -> usize {
    record_size_of(
        node.perms.len(),
        node.value.len(),
        node.children.iter().map(|c| c.len() + 1).sum(),
    )
}

/// [`record_size`] from the counts.
pub(crate) const fn record_size_of(perms: usize, value: usize, children: usize) -> usize {
    RECORD_HEADER + PERM_RECORD * perms + value + children
}

/// What one domain has in the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Committed nodes it owns.
    pub entries: usize,
    /// Bytes charged: each owned node's record and path (C `do_tdb_write`).
    pub memory: usize,
}
