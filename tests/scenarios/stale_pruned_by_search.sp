# Rule: a stable node holds no reference on its page; a node whose page went
# away is stale and is removed when a search brushes past it (the walk then
# restarts from the root) -- before the scanner comes back to its own rmap_items.
machine nodes=1
set smart_scan 0
# B is first in the scan order: its search comes before A is revisited
mm B
mmap B 0 1 mergeable
fill B 0 1 'q'
mm A
mmap A 0 2 mergeable
fill A 0 2 'a'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 1
expect pages_unshared 1
# both mappings written away: the KSM page is freed, its node is stale
write A 0 0 'x'
write A 1 0 'y'
expect pages_shared 1
expect pages_sharing 1
# B:0 (unchanged) searches the stable tree: the stale root is removed with its
# two rmap_items, the walk restarts on an empty tree, B:0 goes unstable
scan 1
expect pages_shared 0
expect pages_sharing 0
expect pages_unshared 1
check
scan full 1
expect pages_shared 0
expect pages_volatile 2
check
