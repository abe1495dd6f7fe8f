# Knob rule: run=2 stops the scanner and unmerges everything synchronously:
# all four page counters are 0 when the write returns, full_scans is reset to
# 0, KSM-placed zero pages are unmerged too; the regions stay registered, so
# run=1 merges them again.
machine nodes=1
set use_zero_pages 1
mm A
mmap A 0 6 mergeable
fill A 0 4 'r'
fill A 4 2 random
mm B
mmap B 0 2 mergeable
fill B 0 2 0
set run 1
scan full 2
expect full_scans 2
expect pages_shared 1
expect pages_sharing 3
expect pages_unshared 2
expect ksm_zero_pages 2
# rmap_items 8 - shared 1 - sharing 3 - unshared 2 (B's zero-mapped items wait
# for the next pass to be freed)
expect pages_volatile 2
set run 2
expect run 2
expect full_scans 0
expect pages_shared 0
expect pages_sharing 0
expect pages_unshared 0
expect pages_volatile 0
expect ksm_zero_pages 0
expect B:ksm_zero_pages 0
expect A:ksm_rmap_items 0
expect B:ksm_rmap_items 0
expect A:ksm_merging_pages 0
expect-ksm A 0 no
expect-ksm A 3 no
expect-not-shared A 0 A 1
expect-not-shared A 2 A 3
expect-not-shared B 0 B 1
expect-byte A 0 0 'r'
expect-byte A 3 4095 'r'
expect-byte B 1 0 0
check
# the scanner does nothing while run=2
scan full 2
expect full_scans 0
expect pages_shared 0
# writing the current value does nothing
set run 2
expect pages_shared 0
set run 1
scan full 2
expect full_scans 2
expect pages_shared 1
expect pages_sharing 3
expect ksm_zero_pages 2
check
