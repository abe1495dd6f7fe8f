# Seed 001, case (b): merge_across_nodes=0, a KSM page migrated to a node that
# already has an equal KSM page.  The misplaced stable node is parked on
# migrate_nodes.  Seed 001 moved its mappings onto the equal page one by one;
# since stable_node chains (Linux 4.13) a migrated KSM page mapped more than
# once joins the content's chain as a dup instead, keeping its mappings
# (stable_tree_search: folio_mapcount > 1 -> chain_append).  samepage follows
# the kernel; `make numa` shows the kernel doing it on a real two-node machine.
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
# the parked node (3 mappings) meets B's equal page on node 1: one chain,
# two dups, every mapping where it was
scan 1
expect stable_node_chains 1
expect stable_node_dups 2
expect-shared A 0 A 2
expect-not-shared A 0 B 0
expect pages_shared 2
expect pages_sharing 3
expect A:ksm_merging_pages 3
expect B:ksm_merging_pages 2
check
scan full 2
expect pages_shared 2
expect pages_sharing 3
expect stable_node_chains 1
expect stable_node_dups 2
expect-node A 0 1
expect-byte A 0 0 'b'
expect-byte A 2 4095 'b'
check
