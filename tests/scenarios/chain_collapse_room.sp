# Rule: a chain left with one dup that still has room collapses back into a
# plain stable node when a search passes through it (with
# stable_node_chains_prune_millisecs 0 every search prunes).  This holds for
# every kernel since chains exist (4.13); see chain_collapse.sp for the case
# of a full dup.
machine nodes=1
set max_page_sharing 4
set stable_node_chains_prune_millisecs 0
set smart_scan 0
mm A
mmap A 0 8 mergeable
fill A 0 8 'k'
set run 1
scan full 2
expect pages_shared 2
expect pages_sharing 6
expect stable_node_chains 1
expect stable_node_dups 2
# dup 2 (pages 4-7) written away entirely, dup 1 loses page 3: it has room
fill A 3 5 random
scan full 1
# p3 leaves dup 1 (3 mappings left); p4 finds dup 2 stale: removed with its
# four mappings.  No search reached the chain (p3..p7 changed).
expect pages_shared 1
expect pages_sharing 2
expect stable_node_chains 1
expect stable_node_dups 1
check
scan full 1
# p3's search meets the chain: one dup, with room -> collapsed
expect stable_node_chains 0
expect stable_node_dups 0
expect pages_shared 1
expect pages_sharing 2
expect pages_unshared 5
expect-shared A 0 A 2
check
# and the plain node takes new mappings again
fill A 3 1 'k'
scan full 2
expect pages_sharing 3
expect-shared A 3 A 0
check
