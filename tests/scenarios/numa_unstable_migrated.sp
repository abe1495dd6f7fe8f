# Rule (merge_across_nodes=0): an unstable-tree match whose page has been
# migrated to another node is not merged (and the searching page is not
# inserted either: unstable_tree_search_insert returns NULL).
machine nodes=2
set merge_across_nodes 0
set smart_scan 0
mm A node=0
mmap A 0 1 mergeable
fill A 0 1 'u'
mm B node=0
mmap B 0 1 mergeable
fill B 0 1 'u'
set run 1
scan full 1
# pass 2, first page: A:0 goes into node 0's unstable tree
scan 1
expect pages_unshared 1
migrate A 0 1
expect-node A 0 1
# B:0 searches node 0's unstable tree, finds A:0 equal but now on node 1
scan 1
expect pages_shared 0
expect pages_sharing 0
expect pages_unshared 1
expect-not-shared A 0 B 0
scan full 1
expect full_scans 2
# next pass: A:0 in node 1's tree, B:0 in node 0's: never merged
scan full 1
expect pages_unshared 2
expect pages_shared 0
expect-not-shared A 0 B 0
check
