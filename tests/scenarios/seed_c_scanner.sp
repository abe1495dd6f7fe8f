# Seed 001, case (c), found by the scanner: the misplaced KSM page is
# discovered when the scanner comes around to one of its rmap_items (any of
# them: here the second, the migration happening after the first was passed).
# Until then a page on the new node cannot find it.
machine nodes=2
set merge_across_nodes 0
set smart_scan 0
mm A node=0
mmap A 0 3 mergeable
fill A 0 3 's'
mm B node=1
mmap B 0 1 mergeable
fill B 0 1 'z'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 2
fill B 0 1 's'
scan full 1
# next pass: A:0 passed while still in place, then the page migrates
scan 1
migrate A 1 1
expect-node A 0 1
# A:1: misplaced node found, re-slotted in node 1's tree
scan 1
expect pages_shared 1
expect pages_sharing 2
expect-shared A 0 A 2
# A:2 (in place now), then B:0 (checksum stable) finds it in node 1's tree
scan 2
expect pages_shared 1
expect pages_sharing 3
expect-shared B 0 A 1
check
