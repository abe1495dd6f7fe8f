# Kernel selftest oracle (test_unmerge): after MADV_UNMERGEABLE on a merged
# range no two virtual pages share a physical page, and the content is intact.
# Like the kernel, the rmap_items stay until the scanner passes: the counters
# drop after the next scan.
machine nodes=1
mm A
mmap A 0 10 mergeable
fill A 0 5 'a'
fill A 5 5 'b'
set run 1
scan full 2
expect pages_shared 2
expect pages_sharing 8
madvise A 0 10 unmergeable
expect-ksm A 0 no
expect-ksm A 1 no
expect-ksm A 2 no
expect-ksm A 3 no
expect-ksm A 4 no
expect-ksm A 5 no
expect-ksm A 6 no
expect-ksm A 7 no
expect-ksm A 8 no
expect-ksm A 9 no
expect-not-shared A 0 A 1
expect-not-shared A 0 A 4
expect-not-shared A 1 A 2
expect-not-shared A 3 A 4
expect-not-shared A 5 A 6
expect-not-shared A 5 A 9
expect-not-shared A 8 A 9
expect-byte A 0 0 'a'
expect-byte A 4 4095 'a'
expect-byte A 5 0 'b'
expect-byte A 9 4095 'b'
# rmap_items are left for the scanner
expect A:ksm_rmap_items 10
expect pages_shared 2
expect pages_sharing 8
check
scan full 1
# The range is no longer mergeable: the pass frees A's rmap_items, finding
# both stable nodes stale.
expect pages_shared 0
expect pages_sharing 0
expect A:ksm_rmap_items 0
expect pages_volatile 0
# and nothing merges again
scan full 2
expect pages_shared 0
expect-not-shared A 0 A 1
check
