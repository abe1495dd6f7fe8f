# Counter formula: pages_volatile = rmap_items - shared - sharing - unshared.
# Pages that keep changing between visits never enter a tree: volatile.
machine nodes=1
set smart_scan 0
mm A
mmap A 0 9 mergeable
fill A 0 4 'v'
fill A 4 3 random
fill A 7 2 random
set run 1
scan full 1
expect A:ksm_rmap_items 9
expect pages_volatile 9
fill A 7 2 random
scan full 1
# 4 'v' pages -> shared 1 + sharing 3; 3 stable random pages -> unshared 3;
# the 2 rewritten pages -> volatile: 9 - 1 - 3 - 3 = 2
expect pages_shared 1
expect pages_sharing 3
expect pages_unshared 3
expect pages_volatile 2
fill A 7 2 random
scan full 1
expect pages_unshared 3
expect pages_volatile 2
# left alone, they settle into the unstable tree
scan full 1
expect pages_unshared 5
expect pages_volatile 0
check
