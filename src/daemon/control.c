/* SPDX-License-Identifier: MIT */
/*
 * control.c - the daemon's control surface: merge domains (one engine and
 * one store each), knobs with the kernel's rules for every engine at once,
 * counters summed over the domains, synchronous scans, and the figures of
 * `samepage ctl stat` as text, JSON and Prometheus text exposition.
 * Every name comes from the engine's lists (ksm_knob_name,
 * ksm_counter_name, ksm_mm_stat_name) or SD_COUNTERS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

/* ------------------------------------------------------------------------
 * Domains.
 * --------------------------------------------------------------------- */
static void domain_free(struct sd_domain *dom)
{
	if (dom->ksm)
		ksm_destroy(dom->ksm);
	sd_store_fini(dom);
	free(dom);
}

/* The domain (@uid, @name), made if new; counts one more client. */
struct sd_domain *sd_domain_get(struct sd_daemon *d, uid_t uid, const char *name)
{
	struct sd_domain *dom;

	for (dom = d->domains; dom; dom = dom->next)
		if (dom->uid == uid && !strcmp(dom->name, name))
			break;
	if (!dom) {
		dom = calloc(1, sizeof(*dom));
		if (!dom)
			return NULL;
		dom->d = d;
		dom->id = ++d->next_dom_id;
		dom->uid = uid;
		snprintf(dom->name, sizeof(dom->name), "%s", name);
		dom->backend = (struct sp_backend){
			.ops = &sd_remote_ops, .be = dom, .page_size = d->page,
			.nr_node_ids = d->nr_nodes,
		};
		if (sd_store_init(dom) || ksm_create(&dom->ksm, &dom->backend)) {
			domain_free(dom);
			return NULL;
		}
		/* the daemon's knob values */
		const char *k;

		for (unsigned int i = 0; (k = ksm_knob_name(i)); i++) {
			long v;

			if (ksm_get(d->knobs, k, &v) == 0)
				(void)ksm_set(dom->ksm, k, (unsigned long)v);
		}
		dom->next = d->domains;
		d->domains = dom;
	}
	dom->nclients++;
	return dom;
}

/* One client of @dom less; the last one takes the domain along (its
 * engine, its stores: the memory of spent store pages returns). */
void sd_domain_put(struct sd_daemon *d, struct sd_domain *dom)
{
	if (--dom->nclients > 0)
		return;
	for (struct sd_domain **pp = &d->domains; *pp; pp = &(*pp)->next) {
		if (*pp == dom) {
			*pp = dom->next;
			break;
		}
	}
	domain_free(dom);
}

/* ------------------------------------------------------------------------
 * Knobs and counters.
 * --------------------------------------------------------------------- */
static bool in_list(const char *(*list)(unsigned int), const char *name)
{
	const char *n;

	for (unsigned int i = 0; (n = list(i)); i++)
		if (!strcmp(n, name))
			return true;
	return false;
}

/* A counter of the engines, over every domain. */
static long counter_sum(struct sd_daemon *d, const char *name)
{
	bool min = !strcmp(name, "full_scans");
	long total = 0, v;
	bool any = false;

	for (struct sd_domain *dom = d->domains; dom; dom = dom->next) {
		if (ksm_get(dom->ksm, name, &v))
			continue;
		if (min)
			total = any && total < v ? total : v;
		else
			total += v;
		any = true;
	}
	return total;
}

int sd_get(struct sd_daemon *d, struct sd_client *c, const char *name, long *value)
{
	if (in_list(ksm_knob_name, name))
		return ksm_get(d->knobs, name, value);
	if (in_list(ksm_counter_name, name)) {
		*value = counter_sum(d, name);
		return 0;
	}
	if (in_list(ksm_mm_stat_name, name)) {
		if (!c->dom)
			return -ENOENT;	/* (a control connection has no figures) */
		return ksm_mm_get(c->dom->ksm, (void *)(uintptr_t)c->id, name, value);
	}
#define SD_GET(n, expr)			\
	if (!strcmp(name, #n)) {	\
		*value = (expr);	\
		return 0;		\
	}
	SD_COUNTERS(SD_GET)
#undef SD_GET
	return -ENOENT;
}

/* Every engine gets the value, with the kernel's rules; on an error none. */
int sd_set(struct sd_daemon *d, const char *name, unsigned long value)
{
	long old;
	int err;

	if (!in_list(ksm_knob_name, name))
		return in_list(ksm_counter_name, name) ? -EACCES : -ENOENT;
	if (ksm_get(d->knobs, name, &old))
		return -ENOENT;
	err = ksm_set(d->knobs, name, value);
	if (err)
		return err;
	for (struct sd_domain *dom = d->domains; dom; dom = dom->next) {
		err = ksm_set(dom->ksm, name, value);
		if (!err)
			continue;
		(void)ksm_set(d->knobs, name, (unsigned long)old);
		for (struct sd_domain *o = d->domains; o != dom; o = o->next)
			(void)ksm_set(o->ksm, name, (unsigned long)old);
		return err;
	}
	return 0;
}

int sd_scan(struct sd_daemon *d, bool full, unsigned long n)
{
	int err = 0;

	if (full && n > 1000000)
		return -EINVAL;
	for (struct sd_domain *dom = d->domains; dom; dom = dom->next) {
		int e = full ? ksm_scan_full(dom->ksm, (unsigned int)n) :
			       ksm_do_scan(dom->ksm, n, NULL);

		if (e && !err)
			err = e;
	}
	return err;
}

/* run=2 for every domain (SIGTERM): every page private again. */
int sd_unmerge_all(struct sd_daemon *d)
{
	int err = 0;

	(void)ksm_set(d->knobs, "run", KSM_RUN_STOP);
	for (struct sd_domain *dom = d->domains; dom; dom = dom->next) {
		(void)ksm_set(dom->ksm, "run", KSM_RUN_STOP);
		int e = ksm_set(dom->ksm, "run", KSM_RUN_UNMERGE);

		if (e && !err)
			err = e;
	}
	return err;
}

/* ------------------------------------------------------------------------
 * ctl stat: text, JSON, Prometheus.
 * --------------------------------------------------------------------- */
struct out {
	char *buf;
	size_t len, n;
	bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;

	if (o->full)
		return;
	va_start(ap, fmt);
	int k = vsnprintf(o->buf + o->n, o->len - o->n, fmt, ap);

	va_end(ap);
	if (k < 0 || (size_t)k >= o->len - o->n)
		o->full = true;
	else
		o->n += (size_t)k;
}

/* @s with " and \ escaped (JSON strings and Prometheus label values). */
static const char *esc(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	for (; *s && n + 2 < len; s++) {
		if (*s == '"' || *s == '\\')
			buf[n++] = '\\';
		buf[n++] = *s;
	}
	buf[n] = 0;
	return buf;
}

static bool visible(struct sd_daemon *d, struct sd_client *c, uid_t uid)
{
	return c->uid == 0 || c->uid == d->uid || c->uid == uid;
}

static void text(struct sd_daemon *d, struct sd_client *c, struct out *o)
{
	const char *n;
	long v;

	put(o, "[knobs]\n");
	for (unsigned int i = 0; (n = ksm_knob_name(i)); i++)
		if (ksm_get(d->knobs, n, &v) == 0)
			put(o, "%s: %ld\n", n, v);
	put(o, "[counters]\n");
	for (unsigned int i = 0; (n = ksm_counter_name(i)); i++)
		put(o, "%s: %ld\n", n, counter_sum(d, n));
#define SD_TEXT(nm, expr) put(o, "%s: %ld\n", #nm, (long)(expr));
	SD_COUNTERS(SD_TEXT)
#undef SD_TEXT
	for (struct sd_domain *dom = d->domains; dom; dom = dom->next) {
		if (!visible(d, c, dom->uid))
			continue;
		put(o, "[domain uid=%u name=\"%s\"]\n", (unsigned)dom->uid, dom->name);
		put(o, "processes: %d\n", dom->nclients);
		put(o, "store_pages: %ld\n", dom->store_pages);
		for (unsigned int i = 0; (n = ksm_counter_name(i)); i++)
			if (ksm_get(dom->ksm, n, &v) == 0)
				put(o, "%s: %ld\n", n, v);
		for (struct sd_client *p = d->clients; p; p = p->next) {
			if (p->dom != dom || p->dead)
				continue;
			put(o, "[process pid=%d uid=%u domain=\"%s\"]\n", (int)p->pid,
			    (unsigned)p->uid, dom->name);
			for (unsigned int i = 0; (n = ksm_mm_stat_name(i)); i++)
				if (ksm_mm_get(dom->ksm, (void *)(uintptr_t)p->id, n, &v) == 0)
					put(o, "%s: %ld\n", n, v);
		}
	}
}

static void json(struct sd_daemon *d, struct sd_client *c, struct out *o)
{
	const char *n;
	char e[2 * SP_NAME_MAX];
	long v;
	const char *sep = "";

	put(o, "{\"knobs\":{");
	for (unsigned int i = 0; (n = ksm_knob_name(i)); i++, sep = ",")
		if (ksm_get(d->knobs, n, &v) == 0)
			put(o, "%s\"%s\":%ld", sep, n, v);
	put(o, "},\"counters\":{");
	sep = "";
	for (unsigned int i = 0; (n = ksm_counter_name(i)); i++, sep = ",")
		put(o, "%s\"%s\":%ld", sep, n, counter_sum(d, n));
#define SD_JSON(nm, expr) put(o, ",\"%s\":%ld", #nm, (long)(expr));
	SD_COUNTERS(SD_JSON)
#undef SD_JSON
	put(o, "},\"domains\":[");
	const char *dsep = "";

	for (struct sd_domain *dom = d->domains; dom; dom = dom->next) {
		if (!visible(d, c, dom->uid))
			continue;
		put(o, "%s{\"uid\":%u,\"name\":\"%s\",\"store_pages\":%ld,\"counters\":{", dsep,
		    (unsigned)dom->uid, esc(dom->name, e, sizeof(e)), dom->store_pages);
		dsep = ",";
		sep = "";
		for (unsigned int i = 0; (n = ksm_counter_name(i)); i++)
			if (ksm_get(dom->ksm, n, &v) == 0) {
				put(o, "%s\"%s\":%ld", sep, n, v);
				sep = ",";
			}
		put(o, "},\"processes\":[");
		const char *psep = "";

		for (struct sd_client *p = d->clients; p; p = p->next) {
			if (p->dom != dom || p->dead)
				continue;
			put(o, "%s{\"pid\":%d,\"uid\":%u", psep, (int)p->pid, (unsigned)p->uid);
			psep = ",";
			for (unsigned int i = 0; (n = ksm_mm_stat_name(i)); i++)
				if (ksm_mm_get(dom->ksm, (void *)(uintptr_t)p->id, n, &v) == 0)
					put(o, ",\"%s\":%ld", n, v);
			put(o, "}");
		}
		put(o, "]}");
	}
	put(o, "]}\n");
}

static void metrics(struct sd_daemon *d, struct sd_client *c, struct out *o)
{
	const char *n;
	char e[2 * SP_NAME_MAX];
	long v;

	for (unsigned int i = 0; (n = ksm_knob_name(i)); i++)
		if (ksm_get(d->knobs, n, &v) == 0)
			put(o, "# HELP samepage_%s The knob %s.\n# TYPE samepage_%s gauge\n"
			    "samepage_%s %ld\n", n, n, n, n, v);
	for (unsigned int i = 0; (n = ksm_counter_name(i)); i++)
		put(o, "# HELP samepage_%s The counter %s, all domains.\n"
		    "# TYPE samepage_%s gauge\nsamepage_%s %ld\n", n, n, n, n,
		    counter_sum(d, n));
#define SD_PROM(nm, expr) put(o, "# TYPE samepage_%s gauge\nsamepage_%s %ld\n", #nm, #nm, \
			      (long)(expr));
	SD_COUNTERS(SD_PROM)
#undef SD_PROM
	for (unsigned int i = 0; (n = ksm_counter_name(i)); i++) {
		put(o, "# HELP samepage_domain_%s The counter %s of one merge domain.\n"
		    "# TYPE samepage_domain_%s gauge\n", n, n, n);
		for (struct sd_domain *dom = d->domains; dom; dom = dom->next)
			if (visible(d, c, dom->uid) && ksm_get(dom->ksm, n, &v) == 0)
				put(o, "samepage_domain_%s{uid=\"%u\",domain=\"%s\"} %ld\n", n,
				    (unsigned)dom->uid, esc(dom->name, e, sizeof(e)), v);
	}
	for (unsigned int i = 0; (n = ksm_mm_stat_name(i)); i++) {
		put(o, "# HELP samepage_process_%s /proc/PID/ksm_stat %s of one process.\n"
		    "# TYPE samepage_process_%s gauge\n", n, n, n);
		for (struct sd_client *p = d->clients; p; p = p->next)
			if (p->dom && !p->dead && visible(d, c, p->dom->uid) &&
			    ksm_mm_get(p->dom->ksm, (void *)(uintptr_t)p->id, n, &v) == 0)
				put(o, "samepage_process_%s{pid=\"%d\",uid=\"%u\",domain=\"%s\"} "
				    "%ld\n", n, (int)p->pid, (unsigned)p->dom->uid,
				    esc(p->dom->name, e, sizeof(e)), v);
	}
}

/* The figures @c may see, in @format; returns the length or -E2BIG. */
int sd_stat(struct sd_daemon *d, struct sd_client *c, int format, char *buf, size_t len)
{
	struct out o = { .buf = buf, .len = len - sizeof(struct sp_msg) };

	if (format == SP_STAT_JSON)
		json(d, c, &o);
	else if (format == SP_STAT_METRICS)
		metrics(d, c, &o);
	else
		text(d, c, &o);
	return o.full ? -E2BIG : (int)o.n;
}
