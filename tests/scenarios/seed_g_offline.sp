# Seed 001/003, case (g): hot-remove of a node holding KSM pages.  Offlining
# migrates the pages away first (a migrated KSM page's stable node only gets
# its kpfn updated: with merge_across_nodes=0 it is now misplaced); then the
# stable nodes still pointing into the removed range -- stale ones whose page
# is already gone -- are removed, in the trees and on migrate_nodes.
machine nodes=2
set merge_across_nodes 0
set smart_scan 0
mm A node=0
mmap A 0 2 mergeable
fill A 0 2 'g'
mm B node=1
mmap B 0 2 mergeable
fill B 0 2 'g'
mm C node=0
mmap C 0 2 mergeable
fill C 0 2 'h'
set run 1
scan full 2
expect pages_shared 3
expect pages_sharing 3
# C writes both its mappings away: its KSM page is freed, its stable node
# (still in node 0's tree) is stale but still counted
write C 0 0 'p'
write C 1 0 'q'
expect pages_shared 3
expect pages_sharing 3
offline 0
# C's stale node pointed into node 0: removed with its two rmap_items
expect pages_shared 2
expect pages_sharing 2
expect-node A 0 1
expect-node C 0 1
expect-shared A 0 A 1
expect-not-shared A 0 B 0
expect-byte A 1 0 'g'
expect-byte C 0 0 'p'
expect-byte C 1 1 'h'
check
stats
# next pass: A's node is misplaced (node 0's tree, page on node 1); node 1
# already has an equal KSM page (B's): A's page, mapped twice, joins that
# content's chain as a dup (Linux since stable_node chains; seed 001 moved
# the mappings one by one)
scan full 1
expect pages_shared 2
expect pages_sharing 2
expect stable_node_chains 1
expect stable_node_dups 2
expect-shared A 0 A 1
expect-not-shared A 0 B 0
expect-node A 0 1
check
scan full 2
expect pages_shared 2
expect pages_sharing 2
check
