# Seeds 001+002: run=2 must remove the stable nodes parked on migrate_nodes as
# well as those in the trees (remove_all_stable_nodes walks both); after it
# merge_across_nodes switches back without EBUSY and the checker is clean.
machine nodes=2
set merge_across_nodes 0
set smart_scan 0
mm A node=0
mmap A 0 3 mergeable
fill A 0 3 'b'
mm B node=1
mmap B 0 2 mergeable
fill B 0 2 'b'
set run 1
scan full 2
expect pages_shared 2
expect pages_sharing 3
migrate A 0 1
# A's node is parked on migrate_nodes until a scan meets one of its pages
expect-shared A 0 A 2
expect pages_shared 2
expect pages_sharing 3
# A's parked KSM page goes to swap cache (A:0..A:2 hold swap entries):
# run=2 cannot unmap it, yet must remove its node from migrate_nodes
swapout A 1
expect pages_shared 2
set run 2
expect pages_shared 0
expect pages_sharing 0
expect stable_node_dups 0
expect-ksm B 0 no
expect-not-shared A 0 B 0
expect-byte A 2 4095 'b'
check
set merge_across_nodes 1
expect merge_across_nodes 1
check
# with run=1 a swapin maps a KSM page again only if its stable node still
# exists: the parked node must be gone, so these are copies
set run 1
swapin A 0
swapin A 1
swapin A 2
expect-ksm A 0 no
expect-ksm A 1 no
expect-ksm A 2 no
expect-not-shared A 1 A 2
expect-byte A 2 4095 'b'
check
scan full 2
expect pages_shared 1
expect pages_sharing 4
check
