# Seed 002, case (e): run=2 while a KSM page lingers in swap cache.  Unmerge
# cannot break COW on a swapped-out pte, the KSM page is not freed (swap cache
# holds it) so its stable node is not stale: the thorough unmerge must still
# remove it (walk the trees, force-remove unmapped leftovers).  Then
# merge_across_nodes switches without EBUSY and without leftovers from the old
# tree, and a later swapin gets a COPY of the right content (the page is no
# longer a KSM page of any stable node).
machine nodes=2
set smart_scan 0
mm A node=0
mmap A 0 4 mergeable
fill A 0 2 'x'
fill A 2 2 'y'
set run 1
scan full 2
expect pages_shared 2
expect pages_sharing 2
swapout A 0
# both mappers now hold swap entries; the page lingers in swap cache
expect pages_shared 2
expect pages_sharing 2
expect-byte A 0 0 'x'
expect-byte A 1 4095 'x'
check
set run 2
expect pages_shared 0
expect pages_sharing 0
expect pages_unshared 0
expect pages_volatile 0
expect full_scans 0
expect stable_node_chains 0
expect stable_node_dups 0
expect-ksm A 2 no
expect-not-shared A 2 A 3
check
stats
set merge_across_nodes 0
expect merge_across_nodes 0
check
# still run=2: a swapin of a KSM page copies (seed 002, cause 3)
swapin A 0
expect-ksm A 0 no
expect-byte A 0 0 'x'
expect-byte A 0 4095 'x'
# run=1 (no scan yet): the page left in swap cache must have lost its back
# pointer when its stable node was removed, so this swapin copies too; a
# leftover node would have it mapped as a KSM page again
set run 1
swapin A 1
expect-ksm A 1 no
expect-not-shared A 0 A 1
expect-byte A 1 0 'x'
check
# back to merging, now with per-node trees
scan full 2
expect pages_shared 2
expect pages_sharing 2
expect-shared A 0 A 1
expect-shared A 2 A 3
check
# Variant: one mapper faulted the swap-cache KSM page back in before run=2
# (not unmerging: no copy needed, it is mapped as the KSM page again).
swapout A 0
swapin A 0
expect-ksm A 0 yes
set run 2
expect pages_shared 0
expect pages_sharing 0
expect-ksm A 0 no
set merge_across_nodes 1
expect merge_across_nodes 1
set run 1
swapin A 1
expect-ksm A 1 no
expect-not-shared A 0 A 1
expect-byte A 1 7 'x'
check
scan full 2
expect pages_shared 2
expect pages_sharing 2
check
