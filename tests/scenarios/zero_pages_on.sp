# Kernel selftest oracle: 10 zero-filled pages, use_zero_pages=1 ->
# shared 0, sharing 0, ksm_zero_pages 10.
machine nodes=1
set use_zero_pages 1
mm A
mmap A 0 10 mergeable
fill A 0 10 0
set run 1
scan full 1
expect ksm_zero_pages 0
scan full 1
# Pass 2: each page's checksum is unchanged and equals the zero page's, so it
# is replaced by the zero page instead of entering any tree.
expect pages_shared 0
expect pages_sharing 0
expect pages_unshared 0
expect ksm_zero_pages 10
expect A:ksm_zero_pages 10
# The zero page is not a KSM page.
expect-ksm A 0 no
expect-byte A 4 0 0
# The rmap_items stay until the next pass: they now look at a non-anonymous
# page, so that pass frees them (10 volatile meanwhile).
expect A:ksm_rmap_items 10
expect pages_volatile 10
scan full 1
expect A:ksm_rmap_items 0
expect pages_volatile 0
expect ksm_zero_pages 10
# general_profit = (sharing 0 + zero 10) * 4096 - 0 rmap items
expect general_profit 40960
# A write to a KSM-placed zero page gets a private page: ksm_zero_pages drops at once.
write A 3 0 'w'
expect ksm_zero_pages 9
expect A:ksm_zero_pages 9
expect-byte A 3 0 'w'
expect-byte A 3 1 0
check
