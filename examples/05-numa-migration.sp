# NUMA: merge_across_nodes=0 and a migrated KSM page
# ==================================================
# On a NUMA machine, sharing a page between nodes makes some processes read
# remote memory.  With merge_across_nodes=0 KSM keeps one stable tree and one
# unstable tree per node and merges pages only with pages of the same node.
#
# What if a KSM page is then MIGRATED to another node?  (Linux commit
# "ksm: make !merge_across_nodes migration safe".)  Migration only tells the
# stable node where its page went.  On its next visit the scanner sees the
# node is misplaced, parks it on the "migrate_nodes" list, and looks in the
# new node's tree:
#   - no equal KSM page there: the node is slotted in, all mappings with it;
#   - an equal KSM page there: the seed patch moved the mappings to it one
#     by one; since stable_node chains (Linux 4.13) a page mapped more than
#     once joins that content's chain as one more dup, keeping its mappings.
#     A page mapped once is not moved either: the kernel cannot remap a page
#     that is already a KSM page (it locates a mapping through the page's
#     anon_vma, which a KSM page lacks), so that mapping just leaves the
#     stable tree and stays on its own page.  samepage does what the kernel
#     does; `make numa` shows both on a real two-node machine.
#
# Run it:   samepage sim examples/05-numa-migration.sp

machine nodes=2
set merge_across_nodes 0        # only while nothing is shared (else EBUSY)
set smart_scan 0
mm east node=0                  # allocates on node 0
mm west node=1                  # allocates on node 1
mmap east 0 2 mergeable
mmap west 0 2 mergeable
fill east 0 2 'n'
fill west 0 2 'n'
set run 1
scan full 2
echo --- same content on both nodes, but one KSM page PER NODE
expect pages_shared 2
expect pages_sharing 2
expect-not-shared east 0 west 0
expect-node east 0 0
expect-node west 0 1

echo --- east's KSM page migrates to node 1, where west already has one
migrate east 0 1
expect-node east 0 1
stats

scan 1                          # the scanner visits east:0
echo --- east's page (2 mappings) joins the chain of that content on node 1
expect-shared east 0 east 1
expect-not-shared east 0 west 0
expect-node east 0 1
expect pages_shared 2
expect pages_sharing 2
expect stable_node_chains 1
expect stable_node_dups 2
stats
check
