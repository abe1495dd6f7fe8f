# Smart scan must not keep two equal pages apart for ever.  Page A has been
# alone for 30 passes: it is looked at on one pass in nine.  Page B, equal
# to it, is mapped afterwards and ages on its own schedule.  In the kernel
# (6.18, its own KSM, scripts/kernel-smart-scan-phase.c: one page aged 30
# passes, the equal page mapped 0-8 passes later) 3 or 4 of the 9 pairs
# were still apart 120 passes later: each page was in the unstable tree
# only on passes the other skipped.  samepage puts every page that reached the longest back-off on
# the same passes (the pass count modulo nine), so B meets A once it is as
# old; here the three late pages merge within 30 passes.
machine nodes=1
set smart_scan 1
mm A
mmap A 0 3 mergeable
fill A 0 1 'x'
fill A 1 1 'y'
fill A 2 1 'z'
set run 1
scan full 30
expect pages_shared 0
mm B
mmap B 0 3 mergeable
fill B 0 1 'x'
scan full 2
fill B 1 1 'y'
scan full 1
fill B 2 1 'z'
scan full 40
expect pages_shared 3
expect pages_sharing 3
expect-shared A 0 B 0
expect-shared A 1 B 1
expect-shared A 2 B 2
check
