# Rule: rmap_items of unmapped memory stay until a pass does not revisit
# them; then they are freed (and leave their stable node).
machine nodes=1
set smart_scan 0
mm A
mmap A 0 6 mergeable
fill A 0 6 'u'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 5
munmap A 2 2
expect pages_shared 1
expect pages_sharing 5
expect A:ksm_rmap_items 6
expect-byte A 1 0 'u'
expect-byte A 4 0 'u'
check
scan full 1
# the items of pages 2 and 3 were skipped over by the cursor and freed
expect pages_shared 1
expect pages_sharing 3
expect A:ksm_rmap_items 4
expect A:ksm_merging_pages 4
munmap A 4 2
scan full 1
# trailing items (past the last mergeable page) freed at the end of the mm
expect pages_shared 1
expect pages_sharing 1
expect A:ksm_rmap_items 2
expect-shared A 0 A 1
munmap A 0 2
scan full 1
expect pages_shared 0
expect pages_sharing 0
expect A:ksm_rmap_items 0
check
