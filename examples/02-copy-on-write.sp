# Copy-on-write: writing to a merged page
# ========================================
# A KSM page is mapped read-only.  The first write to it faults, and the
# writer gets its own private copy (copy-on-write); the others keep the
# shared page.  KSM notices on its next visit and drops the mapping from
# the page's "stable node".
#
# Run it:   samepage sim examples/02-copy-on-write.sp

machine nodes=1
mm A
mmap A 0 3 mergeable
fill A 0 3 'k'                  # three pages full of the letter k
set run 1
scan full 2
expect pages_shared 1           # one KSM page ...
expect pages_sharing 2          # ... standing in for three
expect-shared A 0 A 2

echo --- A writes one byte of page 0
write A 0 100 'W'
expect-ksm A 0 no               # page 0 is now a private copy
expect-byte A 0 100 'W'         # with the new byte ...
expect-byte A 0 0 'k'           # ... and the rest of the old content
expect-shared A 1 A 2           # pages 1 and 2 still share

# The counters are only updated when the scanner comes back:
expect pages_sharing 2
scan full 1
expect pages_sharing 1
stats

echo --- even writing the SAME byte breaks the sharing
write A 1 0 'k'
expect-ksm A 1 no
# ... but the content did not change, so the next visit merges it back
scan full 1
expect-shared A 1 A 2
expect pages_sharing 1
check
