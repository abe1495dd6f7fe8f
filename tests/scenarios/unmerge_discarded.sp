# Kernel selftest oracle (test_unmerge_discarded): a merged range, half of it
# discarded (here: unmapped), then MADV_UNMERGEABLE on the rest: no two pages
# share a physical page, content intact.
machine nodes=1
mm A
mmap A 0 8 mergeable
fill A 0 8 'd'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 7
munmap A 4 4
madvise A 0 4 unmergeable
expect-ksm A 0 no
expect-ksm A 3 no
expect-not-shared A 0 A 1
expect-not-shared A 0 A 3
expect-not-shared A 2 A 3
expect-byte A 0 0 'd'
expect-byte A 3 4095 'd'
check
scan full 1
expect pages_shared 0
expect pages_sharing 0
expect A:ksm_rmap_items 0
check
