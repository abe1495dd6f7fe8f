# A full scan that visits only pages smart scan skips is still a full scan:
# the kernel's ksmd completes every pass (one skipped page on a 6.18 machine:
# 4,728 full scans with 4,198 skips).  `scan full 30` used to end after 8
# passes, when two batches in a row had nothing to compare.
machine nodes=1 pages=64
mm A
mmap A 0 1 mergeable
fill A 0 1 random
set smart_scan 1
set run 1
scan full 30
expect full_scans == 30
expect pages_scanned == 8
expect pages_skipped == 22
