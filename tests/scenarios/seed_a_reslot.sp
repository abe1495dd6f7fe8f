# Seed 001, case (a): merge_across_nodes=0, a KSM page migrated to a node that
# has no equal KSM page.  Migration only updates the stable node's kpfn; the
# scanner's next visit to one of its pages finds the node misplaced (page on
# node 1, node in node 0's tree), parks it on migrate_nodes, searches node 1's
# tree, finds no equal page and slots the node right there -- bringing all of
# its mappings with it.  A page later written on node 1 with the same content
# merges with it; one written on node 0 does not.
machine nodes=2
set merge_across_nodes 0
set smart_scan 0
mm A node=0
mmap A 0 3 mergeable
fill A 0 3 'a'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 2
expect-node A 0 0
migrate A 0 1
# all mappers followed the page; counters untouched
expect-node A 0 1
expect-node A 2 1
expect-shared A 0 A 2
expect-ksm A 1 yes
expect pages_shared 1
expect pages_sharing 2
check
stats
# next pass, first page: A:0 -> misplaced -> migrate_nodes -> re-slotted in
# node 1's tree with its three mappings (kpage == page, nothing to merge)
scan 1
expect pages_shared 1
expect pages_sharing 2
expect A:ksm_merging_pages 3
expect-shared A 0 A 1
expect-shared A 0 A 2
expect-ksm A 2 yes
check
stats
scan full 1
expect pages_shared 1
expect pages_sharing 2
expect full_scans 3
check
# a page on node 1 with the same content joins it (found in node 1's tree)
mm B node=1
mmap B 0 1 mergeable
fill B 0 1 'a'
scan full 2
expect pages_shared 1
expect pages_sharing 3
expect-shared B 0 A 0
expect-node B 0 1
# pages on node 0 with the same content merge among themselves, not with it
mm C node=0
mmap C 0 2 mergeable
fill C 0 2 'a'
scan full 2
expect pages_shared 2
expect pages_sharing 4
expect-shared C 0 C 1
expect-not-shared C 0 A 0
expect-node C 0 0
expect-byte C 1 4095 'a'
expect-byte A 2 4095 'a'
stats
check
