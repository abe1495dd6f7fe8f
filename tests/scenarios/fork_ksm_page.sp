# Rule: a forked child starts with ksm_merging_pages 0 (no rmap_items); its
# mappings of a KSM page are recognised through the page's back pointer to
# its stable node -- no checksum pass, no tree search -- and join the stable
# node on the scanner's first visit.
machine nodes=1
set smart_scan 0
mm A
mmap A 0 2 mergeable
fill A 0 2 'f'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 1
fork A C
expect C:ksm_merging_pages 0
expect C:ksm_rmap_items 0
expect-shared A 0 C 0
expect-shared A 0 C 1
expect-ksm C 0 yes
expect pages_shared 1
expect pages_sharing 1
check
# C was registered while the cursor sat between passes: it is at the end of
# the list, so the next pass reaches it.
scan full 1
expect C:ksm_rmap_items 2
expect C:ksm_merging_pages 2
expect pages_shared 1
expect pages_sharing 3
# the child's write gets a private copy; the parent keeps the KSM page
write C 0 0 'g'
expect-ksm C 0 no
expect-byte C 0 0 'g'
expect-byte A 0 0 'f'
scan full 1
expect pages_sharing 2
expect C:ksm_merging_pages 1
check
