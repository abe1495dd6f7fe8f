# Zero pages
# ==========
# Pages full of zeros are common.  By default KSM merges them like any other
# content (one KSM page of zeros).  With use_zero_pages=1 it maps them to the
# kernel's shared zero page instead: no KSM page, no stable-tree entry;
# they are counted in ksm_zero_pages, not in pages_shared/pages_sharing.
#
# Run it:   samepage sim examples/03-zero-pages.sp

machine nodes=1
mm A
mmap A 0 8 mergeable
fill A 0 8 0                    # 8 zero-filled pages
set run 1
scan full 2
echo --- use_zero_pages=0: one KSM page of zeros
expect pages_shared 1
expect pages_sharing 7
expect ksm_zero_pages 0

set run 2                       # unmerge everything (and reset full_scans)
expect pages_shared 0
set use_zero_pages 1
set run 1
scan full 2
echo --- use_zero_pages=1: all 8 mapped to the zero page
expect pages_shared 0
expect pages_sharing 0
expect ksm_zero_pages 8
expect A:ksm_zero_pages 8
stats

echo --- a write to one of them gets a private page again
write A 5 0 1
expect ksm_zero_pages 7
expect-byte A 5 0 1
expect-byte A 5 1 0
check
