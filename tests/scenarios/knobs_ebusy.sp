# Knob rules: merge_across_nodes and max_page_sharing change only while no
# page is shared (EBUSY otherwise); writing the current value is always fine;
# use_zero_pages and smart_scan may change at any time.
machine nodes=2
mm A node=0
mmap A 0 3 mergeable
fill A 0 3 'e'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 2
expect-error EBUSY set merge_across_nodes 0
expect-error EBUSY set max_page_sharing 128
expect merge_across_nodes 1
expect max_page_sharing 256
# writing the current value while shared does nothing and succeeds
set merge_across_nodes 1
set max_page_sharing 256
set run 1
set use_zero_pages 1
set use_zero_pages 0
set smart_scan 0
set smart_scan 1
expect pages_shared 1
expect pages_sharing 2
# Still EBUSY with a single mapping left (pages_shared 1, pages_sharing 0).
write A 0 0 'x'
write A 1 0 'y'
scan full 1
expect pages_shared 1
expect pages_sharing 0
expect-error EBUSY set merge_across_nodes 0
expect-error EBUSY set max_page_sharing 2
check
# run 0 keeps the merges: still EBUSY
set run 0
expect pages_shared 1
expect-error EBUSY set max_page_sharing 2
# The documented procedure: run=2, change, run=1.
set run 2
set merge_across_nodes 0
set max_page_sharing 2
expect merge_across_nodes 0
expect max_page_sharing 2
expect-not-shared A 0 A 2
expect-ksm A 2 no
set run 1
# make the three pages identical again: with max_page_sharing 2, p0+p1 form a
# full KSM page and p2 stays in the unstable tree
fill A 0 3 'e'
scan full 2
expect pages_shared 1
expect pages_sharing 1
expect pages_unshared 1
check
