# Rule: when an address space that has rmap_items exits, its mappings go
# away at once but its rmap_items are left for the scanner (the kernel moves
# its mm_slot just after the cursor): the counters drop when the scanner
# passes it.
machine nodes=1
set smart_scan 0
mm A
mmap A 0 1 mergeable
fill A 0 1 'x'
mm B
mmap B 0 2 mergeable
fill B 0 2 'x'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 2
exit B
expect-ksm A 0 yes
expect-byte A 0 0 'x'
expect pages_shared 1
expect pages_sharing 2
check
# The first step of the next pass handles B's slot: its rmap_items leave the
# stable node.  A keeps a KSM page with a single mapping (shared 1, sharing 0).
scan 1
expect pages_shared 1
expect pages_sharing 0
expect pages_volatile 0
expect A:ksm_merging_pages 1
expect-ksm A 0 yes
scan full 1
expect pages_shared 1
expect pages_sharing 0
# an address space without rmap_items simply goes
mm Q
mmap Q 0 1 mergeable
fill Q 0 1 'x'
exit Q
scan full 2
expect pages_sharing 0
check
