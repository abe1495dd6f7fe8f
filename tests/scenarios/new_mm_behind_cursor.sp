# Rule: a new address space is inserted just behind the scan cursor, so it is
# visited only in the NEXT pass (a full pass to settle); registered between
# passes it lands at the end of the list and the next pass reaches it.
machine nodes=1
set smart_scan 0
mm A
mmap A 0 2 mergeable
fill A 0 2 random
mm B
mmap B 0 2 mergeable
fill B 0 2 random
set run 1
# pass 1: A:0, A:1, B:0 -- the cursor is now inside B
scan 3
expect A:ksm_rmap_items 2
expect B:ksm_rmap_items 1
mm N
mmap N 0 2 mergeable
fill N 0 2 'n'
# finish pass 1: only B:1 is left; N sits behind the cursor (before B)
scan full 1
expect full_scans 1
expect B:ksm_rmap_items 2
expect N:ksm_rmap_items 0
# pass 2 visits A, N, B
scan full 1
expect N:ksm_rmap_items 2
expect pages_shared 0
scan full 1
expect pages_shared 1
expect pages_sharing 1
expect-shared N 0 N 1
# registered between passes (cursor at the list head): at the end of the list
mm M
mmap M 0 1 mergeable
fill M 0 1 'n'
scan full 1
expect M:ksm_rmap_items 1
scan full 1
expect pages_sharing 2
expect-shared M 0 N 0
check
