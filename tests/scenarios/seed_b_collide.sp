# Seed 001, case (b): merge_across_nodes=0, a KSM page migrated to a node that
# already has an equal KSM page.  The misplaced stable node is parked on
# migrate_nodes; each later visit of one of its mappings finds the equal page
# in node 1's tree and moves that one mapping to it.  When the last mapping
# has moved, the old KSM page is freed and its node is left stale on
# migrate_nodes (pruned at the start of a later pass).
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
# node 0: one KSM page with 3 mappings (1 shared + 2 sharing);
# node 1: one with 2 mappings (1 + 1)
expect pages_shared 2
expect pages_sharing 3
expect-shared A 0 A 2
expect-shared B 0 B 1
expect-not-shared A 0 B 0
expect-node A 0 0
expect-node B 0 1
migrate A 0 1
expect-node A 1 1
expect-shared A 0 A 1
expect pages_shared 2
expect pages_sharing 3
check
# A:0 moves to B's page: A's node keeps A:1, A:2 (1+1), B's has 3 (1+2)
scan 1
expect-shared A 0 B 0
expect-not-shared A 0 A 1
expect-shared A 1 A 2
expect pages_shared 2
expect pages_sharing 3
expect A:ksm_merging_pages 3
expect B:ksm_merging_pages 2
check
stats
# A:1 moves: A's node keeps A:2 alone (1+0), B's has 4 (1+3)
scan 1
expect-shared A 1 B 0
expect-not-shared A 1 A 2
expect pages_shared 2
expect pages_sharing 3
check
# A:2 moves: A's node has no mapping left (shared - 1), B's has 5 (1+4)
scan 1
expect-shared A 2 B 1
expect pages_shared 1
expect pages_sharing 4
expect A:ksm_merging_pages 3
check
stats
scan full 2
expect pages_shared 1
expect pages_sharing 4
expect-node A 0 1
expect-byte A 0 0 'b'
expect-byte A 2 4095 'b'
check
