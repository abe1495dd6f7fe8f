/* SPDX-License-Identifier: MIT */
/*
 * samepage.h - Kernel Samepage Merging for a process's own memory.
 *
 * An application marks ranges of its private anonymous memory mergeable; a
 * scanner finds pages with identical content and makes them share one
 * physical page, copy-on-write.  Knobs and counters carry the names of the
 * kernel's /sys/kernel/mm/ksm files.  Every call returns 0 or a negative
 * errno unless stated; none sets errno except samepage_alloc().  After a
 * failure, samepage_last_error() says in words what went wrong.
 *
 * Memory that a device or the kernel may write behind the CPU's back (pinned
 * for O_DIRECT, io_uring fixed buffers, RDMA, VFIO) must never be registered:
 * a merged pinned page would silently lose the device's writes.
 */
#ifndef SAMEPAGE_H
#define SAMEPAGE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * SAMEPAGE_API marks the public functions: libsamepage is built with hidden
 * visibility (and a version script), so that only these are exported from
 * the shared library and no symbol of its own can be taken over by, or
 * clash with, one of the application's.  Every function declared here
 * carries it.
 */
#if defined(__GNUC__) || defined(__clang__)
#define SAMEPAGE_API __attribute__((visibility("default")))
#else
#define SAMEPAGE_API
#endif

#define SAMEPAGE_VERSION_MAJOR 0
#define SAMEPAGE_VERSION_MINOR 1

/* advice for samepage_madvise() */
#define SAMEPAGE_MERGEABLE	1
#define SAMEPAGE_UNMERGEABLE	2

struct samepage;

SAMEPAGE_API int   samepage_open(struct samepage **sp, unsigned int flags);
/* A client of the daemon (`samepage daemon`): this process's memory merges
 * with every process of its merge domain ($SAMEPAGE_DOMAIN, default empty,
 * and the user).  @socket_path NULL: $SAMEPAGE_SOCKET, else
 * /run/samepage/samepage.sock for root, else $XDG_RUNTIME_DIR/samepage.sock.
 * Every other call then works through the daemon (samepage(3)). */
SAMEPAGE_API int   samepage_connect(struct samepage **sp, const char *socket_path);
SAMEPAGE_API int   samepage_close(struct samepage *sp);
SAMEPAGE_API int   samepage_madvise(struct samepage *sp, void *addr, size_t len, int advice);
SAMEPAGE_API void *samepage_alloc(struct samepage *sp, size_t len);
SAMEPAGE_API int   samepage_free(struct samepage *sp, void *addr, size_t len);
/* MADV_DONTNEED for registered memory: the range reads zeros afterwards,
 * merged or not, and stays registered (plain MADV_DONTNEED on a merged page
 * brings back its merged content) */
SAMEPAGE_API int   samepage_discard(struct samepage *sp, void *addr, size_t len);
SAMEPAGE_API int   samepage_set(struct samepage *sp, const char *knob, unsigned long value);
SAMEPAGE_API int   samepage_get(struct samepage *sp, const char *name, long *value);
SAMEPAGE_API int   samepage_scan(struct samepage *sp, unsigned long npages);
SAMEPAGE_API int   samepage_scan_full(struct samepage *sp, unsigned int nscans);
SAMEPAGE_API const char *samepage_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* SAMEPAGE_H */
