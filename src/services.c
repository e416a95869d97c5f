/* services.c - the dynamic services registry (see services.h). A service
 * becomes configuration text, parsed by the same tables as the file, so
 * its addresses and strategy are checked exactly as a file's would be. */
#include <errno.h>
#include <stdio.h>
#include "common.h"
#include "config.h"
#include "outbuf.h"
#include "services.h"

/* Printable, no space or quote: one token of an INI value. */
static int plain_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f || *s == ';' || *s == '#' || *s == '"')
			return 0;
	return 1;
}

void service_free(struct service *s)
{
	free(s->name);
	free(s->servers);
	free(s->route);
	free(s->balance);
	memset(s, 0, sizeof(*s));
}

int service_make(struct service *s, const char *name, const char *const *addrs,
		 uint32_t naddrs, const char *route, const char *balance, char *err,
		 size_t errlen)
{
	struct outbuf list;
	uint32_t i;

	memset(s, 0, sizeof(*s));
	if (!plain_token(name) || strlen(name) >= RF_NAME_MAX || strchr(name, '/')) {
		snprintf(err, errlen, "service name must be 1-%d characters without spaces or '/'",
			 RF_NAME_MAX - 1);
		return -EINVAL;
	}
	if (!naddrs || naddrs > SERVICE_MAX_SERVERS) {
		snprintf(err, errlen, "a service needs 1 to %d addresses", SERVICE_MAX_SERVERS);
		return -EINVAL;
	}
	if (route && (route[0] != '/' || !plain_token(route))) {
		snprintf(err, errlen, "route must be a path prefix starting with '/'");
		return -EINVAL;
	}
	if (balance && !plain_token(balance)) {
		snprintf(err, errlen, "balance must be a strategy name");
		return -EINVAL;
	}
	ob_init(&list, 64 * 1024);
	for (i = 0; i < naddrs; i++) {
		const char *a = addrs[i];
		size_t n;

		if (!strncmp(a, "http://", 7))
			a += 7;
		n = strlen(a);
		if (n && a[n - 1] == '/')
			n--;
		if (!n || memchr(a, ' ', n) || !plain_token(a)) {
			snprintf(err, errlen, "address %u is not host:port", i);
			ob_free(&list);
			return -EINVAL;
		}
		ob_printf(&list, "%s%.*s", i ? " " : "", (int)n, a);
	}
	ob_put(&list, "", 1);
	s->name = rf_xstrdup(name);
	s->servers = list.failed ? NULL : rf_xstrdup(list.p);
	ob_free(&list);
	if (!s->servers) {
		service_free(s);
		snprintf(err, errlen, "addresses too long");
		return -EINVAL;
	}
	if (route) {
		s->route = rf_xstrdup(route);
	} else {
		s->route = rf_xcalloc(1, strlen(name) + 3);
		snprintf(s->route, strlen(name) + 3, "/%s/", name);
	}
	s->balance = balance ? rf_xstrdup(balance) : NULL;
	return 0;
}

static void service_copy(struct service *d, const struct service *s)
{
	d->name = rf_xstrdup(s->name);
	d->servers = rf_xstrdup(s->servers);
	d->route = rf_xstrdup(s->route);
	d->balance = s->balance ? rf_xstrdup(s->balance) : NULL;
}

int services_with(struct services *dst, const struct services *src, const struct service *s,
		  const char *remove)
{
	const char *skip = s ? s->name : remove;
	uint32_t i, found = 0;

	dst->n = 0;
	dst->v = NULL;
	for (i = 0; s && i < src->n; i++)
		if (strcmp(src->v[i].name, s->name) && !strcmp(src->v[i].route, s->route))
			return -EEXIST;
	dst->v = calloc(src->n + 1, sizeof(*dst->v));
	if (!dst->v)
		return -ENOMEM;
	for (i = 0; i < src->n; i++) {
		if (strcmp(src->v[i].name, skip))
			service_copy(&dst->v[dst->n++], &src->v[i]);
		else if ((found = 1) && s)
			service_copy(&dst->v[dst->n++], s);     /* replaced in place */
	}
	if (s && !found)
		service_copy(&dst->v[dst->n++], s);
	if (!s && !found) {
		services_free(dst);
		return -ENOENT;
	}
	return 0;
}

void services_free(struct services *r)
{
	uint32_t i;

	for (i = 0; i < r->n; i++)
		service_free(&r->v[i]);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

int services_config(const struct services *r, struct rf_config **out, char *err,
		    size_t errlen)
{
	struct outbuf text;
	uint32_t i;
	int rc;

	*out = NULL;
	if (!r->n)
		return 0;
	ob_init(&text, 4 << 20);
	for (i = 0; i < r->n; i++) {
		ob_printf(&text, "[upstream %s]\nservers = %s\n", r->v[i].name, r->v[i].servers);
		if (r->v[i].balance)
			ob_printf(&text, "balance = %s\n", r->v[i].balance);
	}
	ob_puts(&text, "[route]\n");
	for (i = 0; i < r->n; i++)
		ob_printf(&text, "%s = %s\n", r->v[i].route, r->v[i].name);
	rc = text.failed ? -ENOMEM : config_parse("services", text.p, text.len, out, err, errlen);
	ob_free(&text);
	for (i = 0; !rc && i < (*out)->nupstreams; i++)
		(*out)->upstreams[i].dynamic = 1;
	return rc;
}
