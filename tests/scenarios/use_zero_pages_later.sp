# Rule: use_zero_pages may be changed at any time and affects later merges
# only: pages already merged into a KSM page stay there.
machine nodes=1
mm A
mmap A 0 4 mergeable
fill A 0 4 0
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 3
set use_zero_pages 1
expect use_zero_pages 1
scan full 2
expect pages_shared 1
expect pages_sharing 3
expect ksm_zero_pages 0
# a new zero-filled page, merged after the change, goes to the zero page
mm B
mmap B 0 1 mergeable
fill B 0 1 0
scan full 2
expect ksm_zero_pages 1
expect B:ksm_zero_pages 1
expect pages_sharing 3
check
