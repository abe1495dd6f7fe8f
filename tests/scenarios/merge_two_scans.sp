# Rule: a page is looked up in the trees only when its checksum is unchanged
# since the previous visit, so identical pages merge only on the SECOND full scan.
machine nodes=1
set smart_scan 0
mm A
mmap A 0 2 mergeable
fill A 0 2 'm'
set run 1
scan full 1
# Pass 1 only recorded the checksums: nothing is in any tree yet, every rmap
# item is "volatile" (rmap_items 2 - shared 0 - sharing 0 - unshared 0).
expect full_scans 1
expect pages_shared 0
expect pages_sharing 0
expect pages_unshared 0
expect pages_volatile 2
expect A:ksm_rmap_items 2
expect-ksm A 0 no
expect-not-shared A 0 A 1
check
scan full 1
# Pass 2: page 0 (checksum unchanged) goes into the unstable tree, page 1 finds
# it there and the two become one KSM page.
expect full_scans 2
expect pages_shared 1
expect pages_sharing 1
expect pages_unshared 0
expect pages_volatile 0
expect-ksm A 0 yes
expect-ksm A 1 yes
expect-shared A 0 A 1
expect A:ksm_merging_pages 2
stats
check
