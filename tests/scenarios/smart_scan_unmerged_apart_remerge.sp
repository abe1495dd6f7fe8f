# A pair that was merged, written apart one pass from the other, and later
# made equal again merges again.  A KSM page is never skipped and does not
# age, so the page written first starts back-off one pass before the other.
# In the kernel (6.18, its own KSM, both pages written in the same pass /
# 1 / 2 / 3 passes apart, then equal again) the pair merged again only when
# both were written in the same pass: 300 passes later the others were
# still apart.  samepage aligns the longest back-off to the pass count, so
# both are looked at on the same passes.
machine nodes=1
set smart_scan 1
mm A
mmap A 0 2 mergeable
fill A 0 1 'a'
fill A 1 1 'b'
set run 1
scan full 20
fill A 0 2 'm'
scan full 20
expect pages_shared 1
expect pages_sharing 1
fill A 0 1 'p'
scan full 1
fill A 1 1 'q'
scan full 30
expect pages_shared 0
expect pages_sharing 0
fill A 0 2 'r'
scan full 40
expect pages_shared 1
expect pages_sharing 1
expect-shared A 0 A 1
check
