# Kernel selftest oracle: two merged pages of 0x2A; write byte 0 of each with
# different values; one more full scan -> shared 0, sharing 0.
machine nodes=1
mm A
mmap A 0 2 mergeable
fill A 0 2 0x2A
set run 1
scan full 2
expect pages_shared 1
expect pages_sharing 1
write A 0 0 0x01
# the write got a private copy (COW); the other page is still the KSM page
expect-ksm A 0 no
expect-ksm A 1 yes
expect-not-shared A 0 A 1
write A 1 0 0x02
expect-ksm A 1 no
# Content intact: only byte 0 changed.
expect-byte A 0 0 0x01
expect-byte A 0 1 0x2A
expect-byte A 1 0 0x02
expect-byte A 1 4095 0x2A
# The counters move only when the scanner comes back: the stable node holds no
# reference, so it is still counted until the scanner notices it went stale.
expect pages_shared 1
expect pages_sharing 1
scan full 1
# Visiting page 0: its rmap_item is removed from the stable node, which is
# found stale (the KSM page was freed with its last mapping) and removed with
# both its rmap_items -> 0/0 after a single scan.  Both checksums changed, so
# neither page enters the unstable tree: 2 volatile.
expect pages_shared 0
expect pages_sharing 0
expect pages_unshared 0
expect pages_volatile 2
expect A:ksm_merging_pages 0
stats
check
