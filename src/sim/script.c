/* SPDX-License-Identifier: MIT */
/*
 * script.c - the scenario language of DESIGN.md: one command per line,
 * turned into calls of the typed API (sim.h) and checked expectations.
 *
 * Every command handler returns 0, a negative errno (the operation failed:
 * an expectation failure unless expect-error asked for exactly that), or
 * R_FAILED / R_USAGE with s->err set.  Names that do not resolve (unknown
 * mm, knob, counter, command) are usage errors, so that a typo never turns
 * into a passing expect-error.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sim_internal.h"

#define R_FAILED	SIM_FAILED
#define R_USAGE		SIM_USAGE
#define MAX_TOKENS	32
#define MAX_LINE	SIM_MAX_LINE
#define MAX_SCAN_PAGES	(1ull << 40)
#define MAX_FULL_SCANS	1000000u

struct line {
	int argc;
	char *argv[MAX_TOKENS];
	const char *rest[MAX_TOKENS];	/* raw text from token i to the comment */
	char buf[MAX_LINE + 1];
	char raw[MAX_LINE + 1];
};

static int fail(struct sim *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct sim *s, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return code;
}

const char *sim_error(const struct sim *s)
{
	return s->err;
}

static const struct {
	const char *name;
	int value;
} errnos[] = {
	{ "EPERM", EPERM }, { "ENOENT", ENOENT }, { "ESRCH", ESRCH },
	{ "EINTR", EINTR }, { "EIO", EIO }, { "ENXIO", ENXIO },
	{ "E2BIG", E2BIG }, { "EBADF", EBADF }, { "ECHILD", ECHILD },
	{ "EAGAIN", EAGAIN }, { "ENOMEM", ENOMEM }, { "EACCES", EACCES },
	{ "EFAULT", EFAULT }, { "EBUSY", EBUSY }, { "EEXIST", EEXIST },
	{ "EXDEV", EXDEV }, { "ENODEV", ENODEV }, { "ENOTDIR", ENOTDIR },
	{ "EISDIR", EISDIR }, { "EINVAL", EINVAL }, { "ENFILE", ENFILE },
	{ "EMFILE", EMFILE }, { "ENOSPC", ENOSPC }, { "ERANGE", ERANGE },
	{ "ENOSYS", ENOSYS }, { "EOPNOTSUPP", EOPNOTSUPP },
	{ "EOVERFLOW", EOVERFLOW }, { "ETIMEDOUT", ETIMEDOUT },
	{ "ENOTSUP", ENOTSUP }, { "EWOULDBLOCK", EWOULDBLOCK },
};

const char *sim_errno_name(int err)
{
	if (err < 0)
		err = -err;
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (errnos[i].value == err)
			return errnos[i].name;
	return NULL;
}

int sim_errno_value(const char *name)
{
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (!strcmp(errnos[i].name, name))
			return errnos[i].value;
	return 0;
}

static const char *errname(int err, char *buf, size_t len)
{
	const char *n = sim_errno_name(err);

	if (n)
		return n;
	snprintf(buf, len, "errno %d", err < 0 ? -err : err);
	return buf;
}

/* ---- tokens -------------------------------------------------------------- */

static int tokenize(struct sim *s, const char *text, struct line *l)
{
	size_t n = strlen(text);
	char *p;

	l->argc = 0;
	if (n > MAX_LINE)
		return fail(s, R_USAGE, "line longer than %d characters", MAX_LINE);
	memcpy(l->raw, text, n + 1);
	memcpy(l->buf, text, n + 1);
	/* the comment ends the line; a quoted '#' is a character */
	for (size_t i = 0; i < n; i++) {
		if (l->raw[i] == '\'') {
			if (i + 2 < n && l->raw[i + 1] == '\\')
				i += 3;
			else
				i += 2;
			continue;
		}
		if (l->raw[i] == '#') {
			l->raw[i] = l->buf[i] = '\0';
			n = i;
			break;
		}
	}
	while (n && isspace((unsigned char)l->raw[n - 1]))
		l->raw[--n] = '\0';
	p = l->buf;
	for (;;) {
		char *start;

		while (*p && isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		if (l->argc == MAX_TOKENS)
			return fail(s, R_USAGE, "more than %d words", MAX_TOKENS);
		start = p;
		l->rest[l->argc] = l->raw + (start - l->buf);
		l->argv[l->argc++] = start;
		if (*p == '\'') {
			/* 'c' or '\c', which may be a space */
			p += p[1] == '\\' ? 2 : 1;
			if (!*p || p[1] != '\'')
				return fail(s, R_USAGE, "unterminated character %s", start);
			p += 2;
			if (*p && !isspace((unsigned char)*p))
				return fail(s, R_USAGE, "junk after character literal");
		} else {
			while (*p && !isspace((unsigned char)*p))
				p++;
		}
		if (*p)
			*p++ = '\0';
	}
	return 0;
}

static bool parse_u64(const char *t, uint64_t *v)
{
	uint64_t x = 0;
	int base = 10;

	if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
		base = 16;
		t += 2;
	}
	if (!*t)
		return false;
	for (; *t; t++) {
		int d;

		if (*t >= '0' && *t <= '9')
			d = *t - '0';
		else if (base == 16 && *t >= 'a' && *t <= 'f')
			d = *t - 'a' + 10;
		else if (base == 16 && *t >= 'A' && *t <= 'F')
			d = *t - 'A' + 10;
		else
			return false;
		if (x > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return false;
		x = x * (uint64_t)base + (uint64_t)d;
	}
	*v = x;
	return true;
}

static bool parse_i64(const char *t, int64_t *v)
{
	bool neg = *t == '-';
	uint64_t x;

	if (!parse_u64(neg ? t + 1 : t, &x))
		return false;
	if (neg) {
		if (x > (uint64_t)INT64_MAX + 1)
			return false;
		*v = x == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)x;
	} else {
		if (x > INT64_MAX)
			return false;
		*v = (int64_t)x;
	}
	return true;
}

/* A VALUE: a byte as a number, or a quoted character. */
static bool parse_byte(const char *t, uint8_t *v)
{
	uint64_t x;

	if (t[0] == '\'') {
		if (t[1] == '\\' && t[2] && t[3] == '\'' && !t[4]) {
			switch (t[2]) {
			case 'n': *v = '\n'; return true;
			case 't': *v = '\t'; return true;
			case 'r': *v = '\r'; return true;
			case '0': *v = 0; return true;
			case '\\': *v = '\\'; return true;
			case '\'': *v = '\''; return true;
			default: return false;
			}
		}
		if (t[1] && t[2] == '\'' && !t[3]) {
			*v = (uint8_t)t[1];
			return true;
		}
		return false;
	}
	if (!parse_u64(t, &x) || x > 255)
		return false;
	*v = (uint8_t)x;
	return true;
}

/* ---- argument helpers ------------------------------------------------------ */

static int want_args(struct sim *s, const struct line *l, int min, int max,
		     const char *usage)
{
	if (l->argc < min || l->argc > max)
		return fail(s, R_USAGE, "usage: %s", usage);
	return 0;
}

static int arg_u64(struct sim *s, const char *t, const char *what, uint64_t *v)
{
	if (!parse_u64(t, v))
		return fail(s, R_USAGE, "%s: not a number: '%s'", what, t);
	return 0;
}

static int arg_node(struct sim *s, const char *t, int *node)
{
	uint64_t v;

	if (arg_u64(s, t, "NODE", &v))
		return R_USAGE;
	*node = v > INT_MAX ? INT_MAX : (int)v;
	return 0;
}

static int arg_mm(struct sim *s, const char *t, struct sim_mm **mm)
{
	*mm = mm_find(s, t);
	if (!*mm)
		return fail(s, R_USAGE, "no mm named '%s'", t);
	return 0;
}

static int arg_byte(struct sim *s, const char *t, uint8_t *v)
{
	if (!parse_byte(t, v))
		return fail(s, R_USAGE, "VALUE: not a byte: '%s'", t);
	return 0;
}

/* ---- commands ----------------------------------------------------------------- */

static int cmd_machine(struct sim *s, struct line *l)
{
	uint64_t nodes = 0, pages = 65536, ps = 4096;
	bool have_nodes = false;
	int err;

	if (s->have_machine)
		return fail(s, R_USAGE, "there is a machine already");
	if (l->argc < 2 || l->argc > 4)
		return fail(s, R_USAGE, "usage: machine nodes=N [pages=P] [page_size=B]");
	for (int i = 1; i < l->argc; i++) {
		char *eq = strchr(l->argv[i], '=');
		uint64_t v;

		if (!eq || !parse_u64(eq + 1, &v))
			return fail(s, R_USAGE, "machine: bad argument '%s'", l->argv[i]);
		*eq = '\0';
		if (!strcmp(l->argv[i], "nodes")) {
			nodes = v;
			have_nodes = true;
		} else if (!strcmp(l->argv[i], "pages")) {
			pages = v;
		} else if (!strcmp(l->argv[i], "page_size")) {
			ps = v;
		} else {
			return fail(s, R_USAGE, "machine: unknown parameter '%s'", l->argv[i]);
		}
	}
	if (!have_nodes)
		return fail(s, R_USAGE, "machine: nodes=N is required");
	if (nodes < 1 || nodes > SIM_MAX_NODES || pages < 1 ||
	    pages > SIM_MAX_FRAMES || nodes * pages > SIM_MAX_FRAMES)
		return fail(s, R_USAGE, "machine: 1..%d nodes, at most %lu frames in all",
			    SIM_MAX_NODES, (unsigned long)SIM_MAX_FRAMES);
	if (ps < SIM_MIN_PAGE_SIZE || ps > SIM_MAX_PAGE_SIZE || (ps & (ps - 1)))
		return fail(s, R_USAGE, "machine: page_size must be a power of two "
			    "in %d..%d", SIM_MIN_PAGE_SIZE, SIM_MAX_PAGE_SIZE);
	err = sim_machine(s, (int)nodes, (unsigned long)pages, (size_t)ps);
	if (err)
		return fail(s, R_USAGE, "machine: cannot create it: %s", strerror(-err));
	return 0;
}

static int cmd_mm(struct sim *s, struct line *l)
{
	uint64_t node = 0;

	if (want_args(s, l, 2, 3, "mm NAME [node=K]"))
		return R_USAGE;
	if (l->argc == 3 && (strncmp(l->argv[2], "node=", 5) ||
			     !parse_u64(l->argv[2] + 5, &node)))
		return fail(s, R_USAGE, "mm: bad argument '%s'", l->argv[2]);
	if (mm_find(s, l->argv[1]))
		return fail(s, R_USAGE, "there is an mm named '%s' already", l->argv[1]);
	if (node >= (uint64_t)s->nr_nodes)
		return fail(s, R_USAGE, "mm: no node %" PRIu64, node);
	switch (sim_mm_new(s, l->argv[1], (int)node)) {
	case 0:
		return 0;
	case -EINVAL:
		return fail(s, R_USAGE, "bad mm name '%s' (letters, digits, _ - .; "
			    "at most %d)", l->argv[1], SIM_NAME_MAX - 1);
	default:
		return -ENOMEM;
	}
}

/* NAME VPN NPAGES, shared by mmap, madvise, munmap, fill. */
static int args_range(struct sim *s, struct line *l, struct sim_mm **mm,
		      uint64_t *vpn, uint64_t *npages)
{
	if (arg_mm(s, l->argv[1], mm) || arg_u64(s, l->argv[2], "VPN", vpn) ||
	    arg_u64(s, l->argv[3], "NPAGES", npages))
		return R_USAGE;
	return 0;
}

static int cmd_mmap(struct sim *s, struct line *l)
{
	struct sim_mm *mm;
	uint64_t vpn, n;

	if (want_args(s, l, 4, 5, "mmap NAME VPN NPAGES [mergeable]") ||
	    args_range(s, l, &mm, &vpn, &n))
		return R_USAGE;
	if (l->argc == 5 && strcmp(l->argv[4], "mergeable"))
		return fail(s, R_USAGE, "mmap: '%s' is not 'mergeable'", l->argv[4]);
	return sim_mmap(s, mm->name, vpn, n, l->argc == 5);
}

static int cmd_madvise(struct sim *s, struct line *l)
{
	struct sim_mm *mm;
	uint64_t vpn, n;
	enum sim_advice adv;

	if (want_args(s, l, 5, 5, "madvise NAME VPN NPAGES mergeable|unmergeable") ||
	    args_range(s, l, &mm, &vpn, &n))
		return R_USAGE;
	if (!strcmp(l->argv[4], "mergeable"))
		adv = SIM_MERGEABLE;
	else if (!strcmp(l->argv[4], "unmergeable"))
		adv = SIM_UNMERGEABLE;
	else
		return fail(s, R_USAGE, "madvise: '%s' is not mergeable|unmergeable",
			    l->argv[4]);
	return sim_madvise(s, mm->name, vpn, n, adv);
}

static int cmd_munmap(struct sim *s, struct line *l)
{
	struct sim_mm *mm;
	uint64_t vpn, n;

	if (want_args(s, l, 4, 4, "munmap NAME VPN NPAGES") ||
	    args_range(s, l, &mm, &vpn, &n))
		return R_USAGE;
	return sim_munmap(s, mm->name, vpn, n);
}

static int cmd_fill(struct sim *s, struct line *l)
{
	enum sim_fill_kind kind = SIM_FILL_BYTE;
	struct sim_mm *mm;
	uint64_t vpn, n;
	uint8_t v = 0;

	if (want_args(s, l, 5, 5, "fill NAME VPN NPAGES VALUE|seq|random") ||
	    args_range(s, l, &mm, &vpn, &n))
		return R_USAGE;
	if (!strcmp(l->argv[4], "seq"))
		kind = SIM_FILL_SEQ;
	else if (!strcmp(l->argv[4], "random"))
		kind = SIM_FILL_RANDOM;
	else if (arg_byte(s, l->argv[4], &v))
		return R_USAGE;
	return sim_fill(s, mm->name, vpn, n, kind, v);
}

static int cmd_write(struct sim *s, struct line *l)
{
	struct sim_mm *mm;
	uint64_t vpn, off;
	uint8_t v;

	if (want_args(s, l, 5, 5, "write NAME VPN OFFSET VALUE") ||
	    arg_mm(s, l->argv[1], &mm) || arg_u64(s, l->argv[2], "VPN", &vpn) ||
	    arg_u64(s, l->argv[3], "OFFSET", &off) || arg_byte(s, l->argv[4], &v))
		return R_USAGE;
	if (off >= s->page_size)
		return -EINVAL;
	return sim_write(s, mm->name, vpn, (size_t)off, v);
}

static bool valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= SIM_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_-.", name[i]))
			return false;
	return true;
}

static int cmd_fork(struct sim *s, struct line *l)
{
	struct sim_mm *mm;
	int err;

	if (want_args(s, l, 3, 3, "fork PARENT CHILD") || arg_mm(s, l->argv[1], &mm))
		return R_USAGE;
	if (mm_find(s, l->argv[2]))
		return fail(s, R_USAGE, "there is an mm named '%s' already", l->argv[2]);
	if (!valid_name(l->argv[2]))
		return fail(s, R_USAGE, "bad mm name '%s'", l->argv[2]);
	err = sim_fork(s, mm->name, l->argv[2]);
	return err;
}

static int cmd_exit(struct sim *s, struct line *l)
{
	struct sim_mm *mm;

	if (want_args(s, l, 2, 2, "exit NAME") || arg_mm(s, l->argv[1], &mm))
		return R_USAGE;
	return sim_exit(s, mm->name);
}

static bool is_knob(const char *name)
{
	const char *k;

	for (unsigned int i = 0; (k = ksm_knob_name(i)); i++)
		if (!strcmp(k, name))
			return true;
	return false;
}

static int cmd_set(struct sim *s, struct line *l)
{
	uint64_t v;

	if (want_args(s, l, 3, 3, "set KNOB VALUE"))
		return R_USAGE;
	if (!is_knob(l->argv[1]))
		return fail(s, R_USAGE, "no knob named '%s'", l->argv[1]);
	if (arg_u64(s, l->argv[2], "VALUE", &v))
		return R_USAGE;
	if (v > ULONG_MAX)
		return -EINVAL;
	return sim_set(s, l->argv[1], (unsigned long)v);
}

static int cmd_scan(struct sim *s, struct line *l)
{
	uint64_t n = 1;

	if (want_args(s, l, 2, 3, "scan NPAGES | scan full [N]"))
		return R_USAGE;
	if (!strcmp(l->argv[1], "full")) {
		if (l->argc == 3 && arg_u64(s, l->argv[2], "N", &n))
			return R_USAGE;
		if (n > MAX_FULL_SCANS)
			return fail(s, R_USAGE, "scan full: at most %u scans", MAX_FULL_SCANS);
		return sim_scan_full(s, (unsigned int)n);
	}
	if (l->argc != 2 || arg_u64(s, l->argv[1], "NPAGES", &n))
		return l->argc != 2 ? fail(s, R_USAGE, "usage: scan NPAGES | scan full [N]")
				    : R_USAGE;
	if (n > MAX_SCAN_PAGES)
		return fail(s, R_USAGE, "scan: at most %llu pages", MAX_SCAN_PAGES);
	return sim_scan(s, (unsigned long)n);
}

static int cmd_migrate(struct sim *s, struct line *l)
{
	struct sim_mm *mm;
	uint64_t vpn;
	int node;

	if (want_args(s, l, 4, 4, "migrate NAME VPN NODE") ||
	    arg_mm(s, l->argv[1], &mm) || arg_u64(s, l->argv[2], "VPN", &vpn) ||
	    arg_node(s, l->argv[3], &node))
		return R_USAGE;
	return sim_migrate(s, mm->name, vpn, node);
}

static int cmd_offline(struct sim *s, struct line *l)
{
	int node;

	if (want_args(s, l, 2, 2, "offline NODE") || arg_node(s, l->argv[1], &node))
		return R_USAGE;
	return sim_offline(s, node);
}

static int cmd_swap(struct sim *s, struct line *l)
{
	bool out = !strcmp(l->argv[0], "swapout");
	struct sim_mm *mm;
	uint64_t vpn;

	if (want_args(s, l, 3, 3, out ? "swapout NAME VPN" : "swapin NAME VPN") ||
	    arg_mm(s, l->argv[1], &mm) || arg_u64(s, l->argv[2], "VPN", &vpn))
		return R_USAGE;
	return out ? sim_swapout(s, mm->name, vpn) : sim_swapin(s, mm->name, vpn);
}

/* ---- expectations ------------------------------------------------------------ */

static const char *const mm_fields[] = {
	"ksm_rmap_items", "ksm_merging_pages", "ksm_zero_pages",
	"ksm_process_profit", NULL,
};

static bool is_ghost(const struct sim *s, const char *name);

static int cmd_expect(struct sim *s, struct line *l)
{
	static const char *const ops[] = { "==", "!=", "<", "<=", ">", ">=", NULL };
	const char *op = "==", *name = l->argv[1];
	int64_t want;
	long got = 0;
	bool ok = false;
	int i, err;

	if (want_args(s, l, 3, 4, "expect NAME [OP] VALUE"))
		return R_USAGE;
	if (l->argc == 4) {
		op = l->argv[2];
		for (i = 0; ops[i] && strcmp(ops[i], op); i++)
			;
		if (!ops[i])
			return fail(s, R_USAGE, "expect: unknown operator '%s'", op);
	}
	if (!parse_i64(l->argv[l->argc - 1], &want))
		return fail(s, R_USAGE, "expect: not a number: '%s'", l->argv[l->argc - 1]);

	const char *colon = strchr(name, ':');

	if (colon) {
		char mmname[SIM_NAME_MAX];
		size_t n = (size_t)(colon - name);
		struct sim_mm *mm;

		for (i = 0; mm_fields[i] && strcmp(mm_fields[i], colon + 1); i++)
			;
		if (!mm_fields[i])
			return fail(s, R_USAGE, "expect: no per-mm field '%s'", colon + 1);
		if (n == 0 || n >= sizeof(mmname))
			return fail(s, R_USAGE, "expect: bad mm in '%s'", name);
		memcpy(mmname, name, n);
		mmname[n] = '\0';
		mm = mm_find(s, mmname);
		if (!mm && !is_ghost(s, mmname))
			return fail(s, R_USAGE, "no mm named '%s'", mmname);
		if (mm && ksm_mm_registered(s->ksm, mm)) {
			err = ksm_mm_get(s->ksm, mm, colon + 1, &got);
			if (err == -ENOENT)
				got = 0;
			else if (err)
				return err;
		}
	} else {
		err = ksm_get(s->ksm, name, &got);
		if (err == -ENOENT)
			return fail(s, R_USAGE, "no counter or knob named '%s'", name);
		if (err)
			return err;
	}
	if (!strcmp(op, "=="))
		ok = got == want;
	else if (!strcmp(op, "!="))
		ok = got != want;
	else if (!strcmp(op, "<"))
		ok = got < want;
	else if (!strcmp(op, "<="))
		ok = got <= want;
	else if (!strcmp(op, ">"))
		ok = got > want;
	else
		ok = got >= want;
	if (!ok)
		return fail(s, R_FAILED, "expected %s %s %" PRId64 ", got %ld",
			    name, op, want, got);
	return 0;
}

static int cmd_expect_byte(struct sim *s, struct line *l)
{
	struct sim_mm *mm;
	uint64_t vpn, off;
	uint8_t want, got;
	int err;

	if (want_args(s, l, 5, 5, "expect-byte NAME VPN OFFSET VALUE") ||
	    arg_mm(s, l->argv[1], &mm) || arg_u64(s, l->argv[2], "VPN", &vpn) ||
	    arg_u64(s, l->argv[3], "OFFSET", &off) || arg_byte(s, l->argv[4], &want))
		return R_USAGE;
	if (off >= s->page_size)
		return -EINVAL;
	err = sim_read(s, mm->name, vpn, (size_t)off, &got);
	if (err)
		return err;
	if (got != want)
		return fail(s, R_FAILED, "expected byte 0x%02x at %s:%" PRIu64 "+%" PRIu64
			    ", got 0x%02x", want, mm->name, vpn, off, got);
	return 0;
}

/* Describe what backs a virtual page, for messages. */
static void describe(struct sim_page_info *pi, char *buf, size_t len)
{
	switch (pi->kind) {
	case SIM_PTE_PRESENT:
	case SIM_PTE_SWAP:
		snprintf(buf, len, "%s%s frame %" PRIu64 " on node %d",
			 pi->kind == SIM_PTE_SWAP ? "swapped " : "",
			 pi->ksm ? "KSM" : "anon", pi->pfn, pi->nid);
		break;
	case SIM_PTE_ZERO:
		snprintf(buf, len, "the zero page%s", pi->ksm_zero ? " (placed by KSM)" : "");
		break;
	default:
		snprintf(buf, len, "no page");
		break;
	}
}

static int page_arg(struct sim *s, struct line *l, int i, struct sim_mm **mm,
		    uint64_t *vpn, struct sim_page_info *pi)
{
	if (arg_mm(s, l->argv[i], mm) || arg_u64(s, l->argv[i + 1], "VPN", vpn))
		return R_USAGE;
	return sim_page_info(s, (*mm)->name, *vpn, pi);
}

static int cmd_expect_shared(struct sim *s, struct line *l)
{
	bool want = !strcmp(l->argv[0], "expect-shared");
	struct sim_page_info a, b;
	struct sim_mm *ma, *mb;
	uint64_t va, vb;
	char da[96], db[96];
	bool shared;
	int err;

	if (want_args(s, l, 5, 5, want ? "expect-shared NAME VPN NAME2 VPN2" :
			  "expect-not-shared NAME VPN NAME2 VPN2"))
		return R_USAGE;
	err = page_arg(s, l, 1, &ma, &va, &a);
	if (!err)
		err = page_arg(s, l, 3, &mb, &vb, &b);
	if (err)
		return err;
	if (a.kind == SIM_PTE_NONE || b.kind == SIM_PTE_NONE)
		shared = false;
	else if (a.kind == SIM_PTE_ZERO || b.kind == SIM_PTE_ZERO)
		shared = a.kind == b.kind;
	else
		shared = a.pfn == b.pfn;
	if (shared == want)
		return 0;
	describe(&a, da, sizeof(da));
	describe(&b, db, sizeof(db));
	return fail(s, R_FAILED, "expected %s:%" PRIu64 " and %s:%" PRIu64 " %s, got %s and %s",
		    ma->name, va, mb->name, vb,
		    want ? "to share a page" : "not to share a page", da, db);
}

static int cmd_expect_ksm(struct sim *s, struct line *l)
{
	struct sim_page_info pi;
	struct sim_mm *mm;
	uint64_t vpn;
	char d[96];
	bool want, is;
	int err;

	if (want_args(s, l, 4, 4, "expect-ksm NAME VPN yes|no"))
		return R_USAGE;
	if (!strcmp(l->argv[3], "yes"))
		want = true;
	else if (!strcmp(l->argv[3], "no"))
		want = false;
	else
		return fail(s, R_USAGE, "expect-ksm: '%s' is not yes|no", l->argv[3]);
	err = page_arg(s, l, 1, &mm, &vpn, &pi);
	if (err)
		return err;
	is = (pi.kind == SIM_PTE_PRESENT || pi.kind == SIM_PTE_SWAP) && pi.ksm;
	if (is == want)
		return 0;
	describe(&pi, d, sizeof(d));
	return fail(s, R_FAILED, "expected %s:%" PRIu64 " %s a KSM page, got %s",
		    mm->name, vpn, want ? "to be" : "not to be", d);
}

static int cmd_expect_node(struct sim *s, struct line *l)
{
	struct sim_page_info pi;
	struct sim_mm *mm;
	uint64_t vpn;
	char d[96];
	int node, err;

	if (want_args(s, l, 4, 4, "expect-node NAME VPN NODE") ||
	    arg_node(s, l->argv[3], &node))
		return R_USAGE;
	err = page_arg(s, l, 1, &mm, &vpn, &pi);
	if (err)
		return err;
	if ((pi.kind == SIM_PTE_PRESENT || pi.kind == SIM_PTE_SWAP) && pi.nid == node)
		return 0;
	describe(&pi, d, sizeof(d));
	return fail(s, R_FAILED, "expected %s:%" PRIu64 " on node %d, got %s",
		    mm->name, vpn, node, d);
}

struct check_ctx {
	struct sim *s;
	int n;
	size_t used;
	char first[sizeof(((struct sim *)0)->err) - 64];
};

static void collect_finding(void *arg, const char *finding)
{
	struct check_ctx *c = arg;

	if (c->s->diag)
		fprintf(c->s->diag, "check: %s\n", finding);
	if (c->n++ == 0)
		snprintf(c->first, sizeof(c->first), "%s", finding);
}

static int cmd_check(struct sim *s, struct line *l)
{
	struct check_ctx c = { .s = s };

	if (want_args(s, l, 1, 1, "check"))
		return R_USAGE;
	if (s->in_resched)
		return -EBUSY;
	if (sim_check(s, collect_finding, &c) == 0 && c.n == 0)
		return 0;
	return fail(s, R_FAILED, "expected a consistent machine, got %d finding%s "
		    "(first: %s)", c.n, c.n == 1 ? "" : "s", c.first);
}

static int cmd_stats(struct sim *s, struct line *l)
{
	const char *name;

	if (want_args(s, l, 1, 1, "stats"))
		return R_USAGE;
	for (unsigned int i = 0; (name = ksm_counter_name(i)); i++) {
		long v = 0;

		ksm_get(s->ksm, name, &v);
		if (s->out)
			fprintf(s->out, "%s: %ld\n", name, v);
	}
	if (s->out)
		fflush(s->out);
	return 0;
}

static int cmd_echo(struct sim *s, struct line *l)
{
	if (s->out) {
		fprintf(s->out, "%s\n", l->argc > 1 ? l->rest[1] : "");
		fflush(s->out);
	}
	return 0;
}

static int run_tokens(struct sim *s, struct line *l, int first);

static int cmd_expect_error(struct sim *s, struct line *l)
{
	char b1[32], b2[32];
	int want, ret;

	if (l->argc < 3)
		return fail(s, R_USAGE, "usage: expect-error ERRNAME COMMAND...");
	want = sim_errno_value(l->argv[1]);
	if (!want)
		return fail(s, R_USAGE, "expect-error: unknown error name '%s'", l->argv[1]);
	if (s->depth > 4)
		return fail(s, R_USAGE, "expect-error: nested too deep");
	s->depth++;
	ret = run_tokens(s, l, 2);
	s->depth--;
	if (ret == R_USAGE)
		return R_USAGE;
	if (ret == -want)
		return 0;
	if (ret == 0)
		return fail(s, R_FAILED, "expected %s, got success", l->argv[1]);
	if (ret == R_FAILED)
		return fail(s, R_FAILED, "expected %s, got a failed expectation", l->argv[1]);
	return fail(s, R_FAILED, "expected %s, got %s", errname(want, b1, sizeof(b1)),
		    errname(ret, b2, sizeof(b2)));
}

/* ---- dispatch ---------------------------------------------------------------- */

static const struct command {
	const char *name;
	int (*fn)(struct sim *s, struct line *l);
} commands[] = {
	{ "machine", cmd_machine },
	{ "mm", cmd_mm },
	{ "mmap", cmd_mmap },
	{ "madvise", cmd_madvise },
	{ "munmap", cmd_munmap },
	{ "fill", cmd_fill },
	{ "write", cmd_write },
	{ "fork", cmd_fork },
	{ "exit", cmd_exit },
	{ "set", cmd_set },
	{ "scan", cmd_scan },
	{ "migrate", cmd_migrate },
	{ "offline", cmd_offline },
	{ "swapout", cmd_swap },
	{ "swapin", cmd_swap },
	{ "expect", cmd_expect },
	{ "expect-byte", cmd_expect_byte },
	{ "expect-shared", cmd_expect_shared },
	{ "expect-not-shared", cmd_expect_shared },
	{ "expect-ksm", cmd_expect_ksm },
	{ "expect-node", cmd_expect_node },
	{ "expect-error", cmd_expect_error },
	{ "check", cmd_check },
	{ "stats", cmd_stats },
	{ "echo", cmd_echo },
};

/* Run the command in argv[first..]; 0, -errno, R_FAILED or R_USAGE. */
static int run_tokens(struct sim *s, struct line *l, int first)
{
	const struct command *c = NULL;
	struct line sub;
	int ret;

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, l->argv[first]))
			c = &commands[i];
	if (!c)
		return fail(s, R_USAGE, "unknown command '%s'", l->argv[first]);
	if (!s->have_machine && c->fn != cmd_machine && c->fn != cmd_echo)
		return fail(s, R_USAGE, "no machine yet: the first command must be "
			    "'machine nodes=N ...'");
	if (first == 0)
		return c->fn(s, l);
	/* a shifted view of the same line (expect-error's COMMAND...) */
	sub.argc = l->argc - first;
	for (int i = 0; i < sub.argc; i++) {
		sub.argv[i] = l->argv[first + i];
		sub.rest[i] = l->rest[first + i];
	}
	ret = c->fn(s, &sub);
	return ret;
}

static int run_line(struct sim *s, const char *text)
{
	struct line *l = malloc(sizeof(*l));
	char b[32];
	int ret;

	if (!l)
		return fail(s, R_FAILED, "out of memory");
	s->err[0] = '\0';
	ret = tokenize(s, text, l);
	if (!ret && l->argc)
		ret = run_tokens(s, l, 0);
	if (ret < 0)
		ret = fail(s, R_FAILED, "expected success, got %s", errname(ret, b, sizeof(b)));
	free(l);
	return ret;
}

int sim_run_line(struct sim *s, const char *line)
{
	size_t n = strcspn(line, "\r\n");
	char *copy;
	int ret;

	if (line[n] == '\0')
		return run_line(s, line);
	/* one line only: stop at the end of the first */
	copy = strndup(line, n);
	if (!copy)
		return fail(s, R_FAILED, "out of memory");
	ret = run_line(s, copy);
	free(copy);
	return ret;
}

/* ---- whole scripts --------------------------------------------------------------- */

static void prefix_error(struct sim *s, const char *name, unsigned long lineno)
{
	char msg[sizeof(s->err)];
	int n;

	memcpy(msg, s->err, sizeof(msg));
	n = snprintf(s->err, sizeof(s->err), "%.200s:%lu: ", name, lineno);
	if (n > 0 && (size_t)n < sizeof(s->err))
		memcpy(s->err + n, msg, sizeof(s->err) - (size_t)n - 1);
	s->err[sizeof(s->err) - 1] = '\0';
}

int sim_run_string(struct sim *s, const char *name, const char *text)
{
	unsigned long lineno = 0;
	const char *p = text;

	while (*p) {
		size_t n = strcspn(p, "\n");
		char *line = strndup(p, n);
		int ret;

		lineno++;
		if (!line) {
			fail(s, R_FAILED, "out of memory");
			prefix_error(s, name, lineno);
			return R_FAILED;
		}
		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';
		s->lineno = lineno;
		ret = run_line(s, line);
		free(line);
		if (ret) {
			prefix_error(s, name, lineno);
			return ret;
		}
		p += n;
		if (*p == '\n')
			p++;
	}
	s->lineno = lineno;
	return SIM_OK;
}

int sim_open_script(const char *path, FILE **fp)
{
	struct stat st;
	FILE *f;

	if (!strcmp(path, "-")) {
		*fp = stdin;
		return 0;
	}
	f = fopen(path, "r");
	if (!f)
		return -errno;
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return -EISDIR;
	}
	*fp = f;
	return 0;
}

int sim_read_line(FILE *f, char *buf, size_t size)
{
	size_t len = 0;
	bool nul = false;
	int c;

	if (size < 2)
		return -EINVAL;
	for (;;) {
		c = getc(f);
		if (c == EOF) {
			if (ferror(f))
				return errno ? -errno : -EIO;
			if (!len)
				return 0;
			break;
		}
		if (c == '\n')
			break;
		if (len + 1 >= size || len >= SIM_MAX_LINE)
			return -E2BIG;
		if (c == 0)
			nul = true;
		buf[len++] = (char)c;
	}
	buf[len] = 0;
	return nul ? -EILSEQ : 1;
}

int sim_run_file(struct sim *s, const char *path)
{
	const char *name = strcmp(path, "-") ? path : "<stdin>";
	char line[MAX_LINE + 1];
	unsigned long lineno = 0;
	int ret = SIM_OK, err;
	FILE *f;

	err = sim_open_script(path, &f);
	if (err) {
		fail(s, R_USAGE, "%s: %s", path, err == -EISDIR ? "is a directory" :
		     strerror(-err));
		return R_USAGE;
	}
	for (;;) {
		errno = 0;
		err = sim_read_line(f, line, sizeof(line));
		if (err == 0)
			break;
		lineno++;
		s->lineno = lineno;
		if (err == -E2BIG) {
			fail(s, R_USAGE, "line longer than %d characters", MAX_LINE);
			ret = R_USAGE;
		} else if (err == -EILSEQ) {
			fail(s, R_USAGE, "NUL byte in the line");
			ret = R_USAGE;
		} else if (err < 0) {
			fail(s, R_USAGE, "%s: read error: %s", path, strerror(-err));
			ret = R_USAGE;
		} else {
			size_t n = strlen(line);

			while (n && line[n - 1] == '\r')
				line[--n] = '\0';
			ret = run_line(s, line);
		}
		if (ret) {
			prefix_error(s, name, lineno);
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	return ret;
}

/* ---- names of mms that exited (their MM:field reads 0) ----------------------------- */

static bool is_ghost(const struct sim *s, const char *name)
{
	for (size_t i = 0; i < s->nr_ghosts; i++)
		if (!strcmp(s->ghosts[i], name))
			return true;
	return false;
}
