# Smart scan: each rmap_item has an age, incremented on every visit while the
# page is not a KSM page.  Visits at age 0-2 are never skipped.  From age 3,
# when remaining_skips is 0 the page is scanned and remaining_skips reloaded
# with skip_age(age): age <= 3 -> 1, <= 5 -> 2, <= 8 -> 4, else 8; otherwise
# the page is skipped (counted in pages_skipped, removed from the unstable
# tree, not counted in pages_scanned).
#
# One never-mergeable page, visit v (= pass number) sees age v-1:
#   v1-3 scanned (age 0-2); v4 scanned, reload 1; v5 skip;
#   v6 scanned (age 5), reload 2; v7 v8 skip;
#   v9 scanned (age 8), reload 4; v10-13 skip;
#   v14 scanned (age 13), reload 8; v15-22 skip; v23 scanned, reload 8 ...
# Cumulative skips per page after pass: 4:0 5:1 6:1 8:3 9:3 13:7 14:7 22:15 23:15
# Two KSM pages (merged in pass 2) are scanned every pass and keep the
# passes non-empty.
machine nodes=1
mm A
mmap A 0 12 mergeable
fill A 0 10 random
fill A 10 2 'k'
set run 1
scan full 4
expect smart_scan 1
expect pages_skipped 0
expect pages_scanned 48
expect pages_shared 1
expect pages_sharing 1
expect pages_unshared 10
scan full 1
# pass 5: the 10 random pages skipped
expect full_scans 5
expect pages_skipped 10
expect pages_scanned 50
expect pages_unshared 0
expect pages_volatile 10
scan full 1
# pass 6: scanned again (reload 2), back in the unstable tree
expect pages_skipped 10
expect pages_scanned 62
expect pages_unshared 10
scan full 2
expect pages_skipped 30
expect pages_scanned 66
scan full 1
expect pages_skipped 30
expect pages_scanned 78
scan full 4
expect pages_skipped 70
expect pages_scanned 86
scan full 1
expect pages_skipped 70
expect pages_scanned 98
scan full 8
expect full_scans 22
expect pages_skipped 150
expect pages_scanned 114
scan full 1
expect pages_skipped 150
expect pages_scanned 126
# KSM pages are never skipped: they are in every pass's count
expect pages_shared 1
# smart_scan 0: nothing skipped any more
set smart_scan 0
scan full 1
expect pages_skipped 150
expect pages_scanned 138
check
