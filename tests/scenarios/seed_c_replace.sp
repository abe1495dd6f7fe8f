# Seed 001: a parked node's search meets an equal node that is ITSELF
# misplaced: the parked node replaces it in the tree and the found node is
# parked in turn.  Two KSM pages of equal content swap nodes; afterwards each
# node's tree holds the one now on that node, and nothing merged across nodes.
machine nodes=2
set merge_across_nodes 0
set smart_scan 0
mm A node=0
mmap A 0 2 mergeable
fill A 0 2 'r'
mm B node=1
mmap B 0 2 mergeable
fill B 0 2 'r'
set run 1
scan full 2
expect pages_shared 2
expect pages_sharing 2
migrate A 0 1
migrate B 0 0
expect-node A 0 1
expect-node B 0 0
check
# A:0: A's node parked, node 1's tree holds B's node, equal but misplaced:
# A's node takes its place, B's node is parked.
scan 1
expect pages_shared 2
expect pages_sharing 2
expect-shared A 0 A 1
expect-not-shared A 0 B 0
check
# A:1 (in place), B:0: B's parked node finds node 0's tree empty: slotted there
scan 3
expect pages_shared 2
expect pages_sharing 2
expect-shared B 0 B 1
expect-not-shared A 0 B 0
check
scan full 1
# new pages find the right KSM page on their own node
mm C node=0
mmap C 0 1 mergeable
fill C 0 1 'r'
mm D node=1
mmap D 0 1 mergeable
fill D 0 1 'r'
scan full 2
expect pages_shared 2
expect pages_sharing 4
expect-shared C 0 B 0
expect-shared D 0 A 0
expect-node C 0 0
expect-node D 0 1
check
