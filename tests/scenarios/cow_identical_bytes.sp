# Rule: writing the same bytes still breaks COW (the page gets a private copy);
# the page may re-merge later.  Here it re-merges on the very next visit:
# its checksum did not change, so it is searched in the stable tree at once.
machine nodes=1
set smart_scan 0
mm A
mmap A 0 2 mergeable
fill A 0 2 'c'
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 1
write A 0 7 'c'
expect-ksm A 0 no
expect-ksm A 1 yes
expect-not-shared A 0 A 1
expect-byte A 0 7 'c'
check
scan 1
# Page 0 visited: it leaves its stable node (sharing 1 -> 0), its checksum is
# the one recorded before the merge, so stable_tree_search finds the KSM page
# still mapped by page 1 and merges page 0 back: sharing 1 again.
expect pages_shared 1
expect pages_sharing 1
expect-shared A 0 A 1
expect-ksm A 0 yes
scan full 1
expect pages_shared 1
expect pages_sharing 1
check
