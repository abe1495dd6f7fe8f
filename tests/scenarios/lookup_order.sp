# Rule: the stable tree is searched first, then the unstable tree.  Two new
# pages equal to an existing KSM page both join that KSM page rather than
# forming a second one among themselves.
machine nodes=1
set smart_scan 0
mm A
mmap A 0 2 mergeable
fill A 0 2 's'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 1
mm B
mmap B 0 1 mergeable
fill B 0 1 's'
mm C
mmap C 0 1 mergeable
fill C 0 1 's'
scan full 1
expect pages_sharing 1
scan full 1
expect pages_shared 1
expect pages_sharing 3
expect pages_unshared 0
expect-shared A 0 B 0
expect-shared A 0 C 0
check
