# Rule: the unstable tree is emptied at the start of every full scan; an item
# inserted in the previous pass cannot be matched before it is re-inserted.
# Observable through which page becomes the KSM page: the page being scanned
# becomes the KSM page and the unstable-tree page is remapped to it.
machine nodes=2
set smart_scan 0
mm B node=1
mmap B 0 1 mergeable
fill B 0 1 'z'
mm A node=0
mmap A 0 1 mergeable
fill A 0 1 'r'
set run 1
scan full 1
fill B 0 1 'r'
# pass 2: B:0 changed (checksum recorded, not inserted); A:0 inserted
scan full 1
expect pages_unshared 1
expect pages_volatile 1
# pass 3: B:0 (visited first) finds an EMPTY unstable tree and is inserted;
# then A:0 finds B:0 and A's page (node 0) becomes the KSM page.
scan full 1
expect pages_shared 1
expect pages_sharing 1
expect-shared A 0 B 0
expect-node B 0 0
expect-node A 0 0
check
