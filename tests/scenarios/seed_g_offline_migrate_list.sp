# Seed 001/003, case (g) on migrate_nodes: memory hot-remove must also drop
# the stale stable nodes parked on migrate_nodes whose page was in the removed
# range -- at once, not at the next pass's prune.
machine nodes=3
set merge_across_nodes 0
set smart_scan 0
mm Z node=0
mmap Z 0 1 mergeable
fill Z 0 1 'y'
mm A node=0
mmap A 0 2 mergeable
fill A 0 2 'x'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 1
fill Z 0 1 'x'
scan full 1
migrate A 0 1
# Z:0's search parks A's misplaced node (see seed_c_search)
scan 1
expect-not-shared Z 0 A 0
# A's KSM page (now a frame of node 1) goes away: its parked node is stale,
# still holding two rmap_items
munmap A 0 2
expect pages_shared 1
expect pages_sharing 1
offline 1
expect pages_shared 0
expect pages_sharing 0
check
scan full 2
expect pages_shared 0
expect A:ksm_rmap_items 0
check
