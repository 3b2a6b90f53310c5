//! Property tests of `abi::byte_ring`, the console's and xenstore's byte-ring arithmetic.

use abi::byte_ring::ByteRing;
use proptest::prelude::*;

proptest! {
    /// A producer and a consumer moving arbitrary chunks through a ring whose indexes
    /// start anywhere in `u32`: the bytes come out in order, none lost or repeated, and
    /// every slot is inside the ring.
    #[test]
    fn transfers_match_a_model_of_the_ring_from_any_start_index(
        start in any::<u32>(),
        size_log in 2u32..8,
        steps in proptest::collection::vec((any::<bool>(), 0usize..300), 0..60),
    ) {
        let ring = ByteRing::new(1 << size_log).unwrap();
        let mut mem = vec![0u8; ring.size() as usize];
        let (mut cons, mut prod) = (start, start);
        let (mut sent, mut got) = (Vec::new(), Vec::new());
        let mut next = 0u8;
        for (write, want) in steps {
            let t = if write {
                ring.produce(cons, prod, want).unwrap()
            } else {
                ring.consume(cons, prod, want).unwrap()
            };
            prop_assert_eq!(t.first.len() + t.second.len(), t.len);
            prop_assert!(t.first.end <= mem.len() && t.second.end <= mem.len());
            prop_assert!(t.second.is_empty() || t.first.end == mem.len());
            for slot in t.first.clone().chain(t.second.clone()) {
                if write {
                    mem[slot] = next;
                    sent.push(next);
                    next = next.wrapping_add(1);
                } else {
                    got.push(mem[slot]);
                }
            }
            if write { prod = t.new_index } else { cons = t.new_index }
            prop_assert!(ring.used(cons, prod).is_ok());
        }
        prop_assert_eq!(&sent[..got.len()], &got[..]);
        prop_assert_eq!(ring.used(cons, prod).unwrap() as usize, sent.len() - got.len());
    }
}
