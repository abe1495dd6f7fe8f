# Seed 001, case (d): stale nodes on migrate_nodes are pruned once per full
# scan -- at the start of each pass -- whereas stale nodes in the trees are
# pruned by searches brushing past them.  Here a KSM page is parked by a
# search (like seed_c_search), then all its mappings are unmapped: its node
# is stale on migrate_nodes and still holds two rmap_items, so the counters
# still show it.  Nothing in the rest of that pass touches it; the start of
# the next pass prunes it, before the scanner reaches A's old rmap_items.
machine nodes=2
set merge_across_nodes 0
set smart_scan 0
mm A node=0
mmap A 0 12 mergeable
fill A 0 10 random
fill A 10 2 'x'
mm Z node=0
mmap Z 0 1 mergeable
fill Z 0 1 'y'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 1
expect pages_unshared 11
fill Z 0 1 'x'
scan full 1
expect pages_unshared 10
# next pass: all of A first (A:10, A:11 are the KSM page, left in place)
scan 12
migrate A 10 1
# Z:0 (checksum stable) searches node 0's tree, meets the misplaced node: parked
scan 1
expect-not-shared Z 0 A 10
expect pages_unshared 11
munmap A 10 2
# the KSM page is gone: its node on migrate_nodes is stale, nobody noticed yet
expect pages_shared 1
expect pages_sharing 1
check
stats
# finish this pass: nothing was left to visit, nothing pruned at its end
scan full 1
expect full_scans 4
expect pages_shared 1
expect pages_sharing 1
# the next pass starts by pruning migrate_nodes; its first page is A:0, far
# from A's stale rmap_items (freed only after A:9)
scan 1
expect pages_shared 0
expect pages_sharing 0
# A's rmap_items for the unmapped pages still exist (no longer in a tree):
# rmap_items 13 - unshared 11 = 2 volatile
expect A:ksm_rmap_items 12
expect pages_volatile 2
check
scan full 1
expect A:ksm_rmap_items 10
expect pages_volatile 0
expect pages_unshared 11
check
