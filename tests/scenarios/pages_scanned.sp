# pages_scanned counts the pages passed to compare-and-merge (KSM pages
# included; pages skipped by smart scan are not).
machine nodes=1
set smart_scan 0
mm A
mmap A 0 10 mergeable
fill A 0 8 random
fill A 8 2 'p'
set run 1
scan full 3
expect pages_scanned 30
scan 7
expect pages_scanned 37
expect full_scans 3
scan full 1
expect pages_scanned 40
expect full_scans 4
check
