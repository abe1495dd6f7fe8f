# Kernel selftest oracle: 10 pages of 0x2A, two full scans -> shared 1, sharing 9.
machine nodes=1
mm A
mmap A 0 10 mergeable
fill A 0 10 0x2A
set sleep_millisecs 0
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 9
expect pages_unshared 0
expect pages_volatile 0
expect A:ksm_rmap_items 10
expect A:ksm_merging_pages 10
expect-shared A 0 A 9
expect-shared A 3 A 7
expect-byte A 5 4095 0x2A
# A third scan changes nothing: every page is a KSM page already mapped by
# its own stable node (cmp_and_merge_page returns at once).
scan full 1
expect pages_shared 1
expect pages_sharing 9
stats
check
