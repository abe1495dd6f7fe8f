# Kernel selftest oracle (test_unmerge_zero_pages): 2 MiB of zeros with
# use_zero_pages=1 -> per-mm ksm_zero_pages 512; MADV_UNMERGEABLE on the
# first half -> 256 (drops at once); write the second half -> 0.
machine nodes=1
set use_zero_pages 1
mm A
mmap A 0 512 mergeable
fill A 0 512 0
set run 1
scan full 2
expect A:ksm_zero_pages 512
expect ksm_zero_pages 512
expect pages_shared 0
expect pages_sharing 0
madvise A 0 256 unmergeable
expect A:ksm_zero_pages 256
expect ksm_zero_pages 256
expect-byte A 0 0 0
expect-byte A 255 4095 0
fill A 256 256 'z'
expect A:ksm_zero_pages 0
expect ksm_zero_pages 0
expect-byte A 300 0 'z'
check
