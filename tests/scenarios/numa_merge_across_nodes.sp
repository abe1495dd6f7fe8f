# Kernel selftest oracle: one 0x2A page on node 0 and one on node 1;
# merge_across_nodes=1 -> 1/1, merge_across_nodes=0 -> 0/0.
machine nodes=2
mm A node=0
mmap A 0 1 mergeable
fill A 0 1 0x2A
mm B node=1
mmap B 0 1 mergeable
fill B 0 1 0x2A
expect-node A 0 0
expect-node B 0 1
set run 1
scan full 2
expect merge_across_nodes 1
expect pages_shared 1
expect pages_sharing 1
expect-shared A 0 B 0
# Pass 2 visits A:0 first (unstable tree), then B:0 finds it: the page being
# scanned (B's, on node 1) becomes the KSM page and A:0 is remapped to it.
expect-node A 0 1
check
# The procedure to switch: run=2 (unmerge all), change, run=1.
expect-error EBUSY set merge_across_nodes 0
set run 2
expect pages_shared 0
expect pages_sharing 0
expect-not-shared A 0 B 0
set merge_across_nodes 0
expect merge_across_nodes 0
set run 1
scan full 2
# Per-node trees: each page sits alone in its node's unstable tree.
expect pages_shared 0
expect pages_sharing 0
expect pages_unshared 2
expect-not-shared A 0 B 0
expect-byte A 0 0 0x2A
expect-byte B 0 0 0x2A
check
# Two more identical pages, one per node: each node merges its own pair.
mmap A 1 1 mergeable
fill A 1 1 0x2A
mmap B 1 1 mergeable
fill B 1 1 0x2A
scan full 2
expect pages_shared 2
expect pages_sharing 2
expect pages_unshared 0
expect-shared A 0 A 1
expect-shared B 0 B 1
expect-not-shared A 0 B 0
expect-node A 1 0
expect-node B 1 1
check
