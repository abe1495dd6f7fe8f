# general_profit = (pages_sharing + ksm_zero_pages) * page_size
#                  - rmap_items * sizeof(rmap_item)      (samepage: 48 bytes)
# per mm: ksm_process_profit = (ksm_merging_pages + ksm_zero_pages) * page_size
#                  - ksm_rmap_items * sizeof(rmap_item)
machine nodes=1
set use_zero_pages 1
mm A
mmap A 0 10 mergeable
fill A 0 10 0x2A
mm B
mmap B 0 2 mergeable
fill B 0 2 0x2A
mm C
mmap C 0 3 mergeable
fill C 0 3 0
set run 1
scan full 1
# nothing merged yet: 15 rmap items cost 15 * 48 = 720
expect general_profit -720
expect A:ksm_process_profit -480
scan full 1
# shared 1, sharing 11, zero 3, 15 rmap items (C's still there):
# (11 + 3) * 4096 - 15 * 48 = 57344 - 720 = 56624
expect pages_sharing 11
expect ksm_zero_pages 3
expect general_profit 56624
# A: 10 merging * 4096 - 10 * 48 = 40480; B: 2 * 4096 - 2 * 48 = 8096
# C: 3 zero * 4096 - 3 * 48 = 12144
expect A:ksm_process_profit 40480
expect B:ksm_process_profit 8096
expect C:ksm_process_profit 12144
expect A:ksm_merging_pages 10
expect B:ksm_merging_pages 2
expect C:ksm_merging_pages 0
scan full 1
# C's rmap items (now pointing at the zero page) freed: 57344 - 12 * 48 = 56768
expect C:ksm_rmap_items 0
expect general_profit 56768
expect C:ksm_process_profit 12288
stats
check
