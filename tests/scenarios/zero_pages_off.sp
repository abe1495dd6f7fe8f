# Kernel selftest oracle: 10 zero-filled pages, use_zero_pages=0 -> 1/9
# (zero pages merge like any other content).
machine nodes=1
mm A
mmap A 0 10 mergeable
fill A 0 10 0
set run 1
scan full 2
expect use_zero_pages 0
expect pages_shared 1
expect pages_sharing 9
expect ksm_zero_pages 0
expect A:ksm_zero_pages 0
expect-ksm A 0 yes
expect-shared A 0 A 9
expect-byte A 9 100 0
check
