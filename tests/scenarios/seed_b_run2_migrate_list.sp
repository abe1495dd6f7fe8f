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
# A:0 moves to B's page; A's node stays parked with A:1 and A:2
scan 1
expect-shared A 0 B 0
expect-shared A 1 A 2
expect pages_shared 2
expect pages_sharing 3
set run 2
expect pages_shared 0
expect pages_sharing 0
expect stable_node_dups 0
expect-ksm A 1 no
expect-ksm A 2 no
expect-ksm B 0 no
expect-not-shared A 1 A 2
expect-not-shared A 0 B 0
expect-byte A 2 4095 'b'
check
set merge_across_nodes 1
expect merge_across_nodes 1
check
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 4
check
