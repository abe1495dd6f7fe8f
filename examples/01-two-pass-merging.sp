# Two passes to merge
# ===================
# KSM (Kernel Samepage Merging) finds pages with identical content in memory
# that processes marked "mergeable", and makes them share ONE physical page,
# write-protected.  This is how a host packs many similar virtual machines.
#
# Why does it take two full scans?  The scanner first remembers a checksum
# of each page.  Only a page whose checksum has not changed since the last
# visit is worth comparing: a page that keeps changing would be un-merged by
# the next write anyway (such pages are counted as "volatile").
#
# Run it:   samepage sim examples/01-two-pass-merging.sp

machine nodes=1                 # a simulated machine with one NUMA node

mm vm1                          # two address spaces ("processes")
mm vm2
mmap vm1 0 4 mergeable          # 4 pages at virtual page 0, madvise(MERGEABLE)
mmap vm2 0 4 mergeable
fill vm1 0 4 seq                # page i gets content i ...
fill vm2 0 4 seq                # ... in both: 4 pairs of identical pages

set run 1                       # start the scanner (ksmd)

echo --- after one full scan: only checksums were taken
scan full 1
stats
expect pages_shared 0
expect pages_volatile 8         # 8 rmap items, none in a tree yet

echo --- after the second full scan: every pair shares one page
scan full 1
stats
# pages_shared  = KSM pages in use            -> 4
# pages_sharing = extra mappings of them      -> 4 (the memory saved)
expect pages_shared 4
expect pages_sharing 4
expect-shared vm1 2 vm2 2       # same physical page
expect-ksm vm1 2 yes
expect-not-shared vm1 1 vm1 2   # different content never shares

# Each process's view (like /proc/PID/ksm_stat):
expect vm1:ksm_merging_pages 4
check                           # the consistency checker: all is well
