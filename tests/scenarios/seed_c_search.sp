# Seed 001, case (c), found by a search: the misplaced stable node is reached
# by ANOTHER page's stable-tree search.  That page (on node 0) must not be
# merged with the misplaced KSM page (now on node 1): the node is taken out of
# node 0's tree onto migrate_nodes and the search returns nothing, so the page
# goes to node 0's unstable tree.  The scanner later re-slots the parked node
# into node 1's tree.
machine nodes=2
set merge_across_nodes 0
set smart_scan 0
# C is first in the scan order, so its search comes before A is revisited
mm C node=0
mmap C 0 1 mergeable
fill C 0 1 'y'
mm A node=0
mmap A 0 2 mergeable
fill A 0 2 'x'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 1
expect pages_unshared 1
fill C 0 1 'x'
# C:0 changed: this pass only records its checksum
scan full 1
expect pages_shared 1
expect pages_sharing 1
expect pages_unshared 0
migrate A 0 1
# next pass, first page: C:0 searches node 0's tree, meets the equal but
# misplaced node: parked, no merge; C:0 inserted in node 0's unstable tree
scan 1
expect-ksm C 0 no
expect-not-shared C 0 A 0
expect pages_shared 1
expect pages_sharing 1
expect pages_unshared 1
check
stats
# A:0: its node is already parked; node 1's tree is empty -> slotted there
scan 1
expect pages_shared 1
expect pages_sharing 1
expect-shared A 0 A 1
expect-ksm A 0 yes
check
scan full 2
expect pages_shared 1
expect pages_sharing 1
expect pages_unshared 1
expect-not-shared C 0 A 0
# a node-1 page with the same content now finds A's page in node 1's tree
mm D node=1
mmap D 0 1 mergeable
fill D 0 1 'x'
scan full 2
expect pages_shared 1
expect pages_sharing 2
expect-shared D 0 A 0
expect-not-shared C 0 A 0
check
