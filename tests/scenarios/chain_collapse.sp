# Rule: a chain left with one dup collapses back into a plain stable node.
# Since Linux 6.11 (mm/ksm: optimize the chain()/chain_prune() interfaces)
# stable_node_dup() collapses a chain whenever a search through it finds a
# single dup left -- even a FULL one (hlist_is_singular_node), prune interval
# or not.  Checked on this machine's kernel (6.18): 8 pages, M=4, pages 4-7
# written away, a few scans later: shared 1 sharing 3 chains 0 dups 0.
# (chain_collapse_room.sp: the case where the dup left has room.)
machine nodes=1
set max_page_sharing 4
set stable_node_chains_prune_millisecs 0
set smart_scan 0
mm A
mmap A 0 8 mergeable
fill A 0 8 'k'
set run 1
scan full 2
# dup 1 = p0..p3 (full), dup 2 = p4..p7 (full)
expect pages_shared 2
expect pages_sharing 6
expect stable_node_chains 1
expect stable_node_dups 2
# Write dup 2's four mappings away, each with its own content: its KSM page is
# freed, dup 2 is now stale.
fill A 4 4 random
expect-ksm A 4 no
expect-ksm A 7 no
expect-shared A 0 A 3
scan full 1
# Visiting p4 removes its rmap_item from dup 2, which is found stale and
# removed with all four mappings: 1 dup left, but the chain itself is only
# collapsed by a search passing through it (none this pass: p4..p7 changed).
expect pages_shared 1
expect pages_sharing 3
expect stable_node_chains 1
expect stable_node_dups 1
check
scan full 1
# p4..p7 (checksums now stable) search the stable tree: the search meets the
# chain with a single dup and collapses it.
expect stable_node_chains 0
expect stable_node_dups 0
expect pages_shared 1
expect pages_sharing 3
expect pages_unshared 4
expect-shared A 0 A 3
check
