/* admin_services.c - /services: seed 002's dynamic service registry. A
 * service is an upstream plus its route ("/NAME/" unless given) made at
 * run time; reload.c rebuilds the runtime with it, so health checks,
 * balancing and metrics treat it as a configured upstream. */
#include <errno.h>
#include "common.h"
#include "admin_int.h"
#include "persist.h"
#include "reload.h"

#define SERVICE_ADDR_MAX 300

/* The route that sends traffic to upstream <i>. */
static const char *route_of(const struct rf_config *cfg, uint32_t i)
{
	uint32_t r;

	for (r = 0; r < cfg->nroutes; r++)
		if (cfg->routes[r].upstream == i)
			return cfg->routes[r].prefix;
	return "";
}

static void write_service(struct admin_ctx *x, const struct upstream *up)
{
	const char *route = route_of(x->rt->cfg, up->index);
	uint32_t j;

	ob_puts(&x->out, "{\"name\":");
	admin_json_str(&x->out, up->conf->name, strlen(up->conf->name));
	ob_puts(&x->out, ",\"route\":");
	admin_json_str(&x->out, route, strlen(route));
	ob_puts(&x->out, ",\"servers\":[");
	for (j = 0; j < up->nservers; j++) {
		const char *a = up->servers[j].conf->addr.text;

		if (j)
			ob_puts(&x->out, ",");
		admin_json_str(&x->out, a, strlen(a));
	}
	ob_puts(&x->out, "],\"upstream\":");
	admin_write_upstream(&x->out, up, x->w->wheel.now);
	ob_puts(&x->out, "}");
}

static const struct upstream *find_service(const struct runtime *rt, const char *name)
{
	uint32_t i;

	for (i = 0; i < rt->cfg->nupstreams; i++)
		if (rt->ups[i].conf->dynamic && !strcmp(rt->ups[i].conf->name, name))
			return &rt->ups[i];
	return NULL;
}

void admin_list_services(struct admin_ctx *x)
{
	uint32_t i, n = 0;

	ob_puts(&x->out, "{\"services\":[");
	for (i = 0; i < x->rt->cfg->nupstreams; i++) {
		if (!x->rt->ups[i].conf->dynamic)
			continue;
		if (n++)
			ob_puts(&x->out, ",");
		write_service(x, &x->rt->ups[i]);
	}
	ob_puts(&x->out, "]}\n");
}

void admin_get_service(struct admin_ctx *x)
{
	const struct upstream *up = find_service(x->rt, x->params[0]);

	if (!up) {
		admin_error(x, 404, "no service '%s'", x->params[0]);
		return;
	}
	write_service(x, up);
	ob_puts(&x->out, "\n");
}

/* The addresses: the body itself (seed 002's ["host:port", ...]) or its
 * "servers" member. Returns how many were read into <addrs>, < 0 after a
 * 400. */
static int read_addrs(struct admin_ctx *x, char (*addrs)[SERVICE_ADDR_MAX])
{
	const struct json_doc *d = &x->doc;
	int arr = 0, t;
	uint32_t i;

	if (json_type(d, 0) == JSON_OBJECT)
		arr = json_get(d, 0, "servers");
	if (json_type(d, arr) != JSON_ARRAY) {
		admin_error(x, 400, "the body must be an array of addresses, or an object with "
			    "one in 'servers'");
		return -EINVAL;
	}
	if (d->toks[arr].size > SERVICE_MAX_SERVERS) {
		admin_error(x, 400, "at most %d addresses", SERVICE_MAX_SERVERS);
		return -EINVAL;
	}
	for (i = 0, t = json_child(arr); i < d->toks[arr].size; i++, t = json_next(d, t))
		if (json_str(d, t, addrs[i], SERVICE_ADDR_MAX) <= 0) {
			admin_error(x, 400, "address %u must be a \"host:port\" string", i);
			return -EINVAL;
		}
	return (int)d->toks[arr].size;
}

/* The service the body describes, named {name}. Returns 0, or < 0 after
 * writing the 400. */
static int read_service(struct admin_ctx *x, struct service *s)
{
	char (*addrs)[SERVICE_ADDR_MAX] = malloc(SERVICE_MAX_SERVERS * sizeof(*addrs));
	const char *ptrs[SERVICE_MAX_SERVERS];
	char route[ADMIN_PATH_MAX], balance[32], err[256];
	int n, has_route = 0, has_bal = 0, i, rc = -EINVAL;

	if (!addrs) {
		admin_error(x, 503, "out of memory");
		return -ENOMEM;
	}
	n = read_addrs(x, addrs);
	if (n >= 0 && json_type(&x->doc, 0) == JSON_OBJECT &&
	    ((has_route = admin_field_str(x, "route", route, sizeof(route))) < 0 ||
	     (has_bal = admin_field_str(x, "balance", balance, sizeof(balance))) < 0))
		n = -EINVAL;
	for (i = 0; i < n; i++)
		ptrs[i] = addrs[i];
	if (n >= 0) {
		rc = service_make(s, x->params[0], ptrs, (uint32_t)n, has_route ? route : NULL,
				  has_bal ? balance : NULL, err, sizeof(err));
		if (rc < 0)
			admin_error(x, 400, "%s", err);
	}
	free(addrs);
	return rc;
}

void admin_put_service(struct admin_ctx *x)
{
	char err[512];
	struct service s;
	const char *a;
	int rc, existed;
	uint32_t i;

	if (admin_body_json(x) < 0 || read_service(x, &s) < 0)
		return;
	existed = find_service(x->rt, s.name) != NULL;
	rc = reload_service(&s, NULL, err, sizeof(err));
	if (rc == 0 && (rc = persist_set_service(&s, NULL)) < 0) {
		admin_error(x, 503, "service applied, but the store could not record it: %s",
			    strerror(-rc));
	} else if (rc == 0) {
		/* from the definition: the worker's runtime is still the old one */
		x->status = existed ? 200 : 201;
		ob_puts(&x->out, "{\"name\":");
		admin_json_str(&x->out, s.name, strlen(s.name));
		ob_puts(&x->out, ",\"route\":");
		admin_json_str(&x->out, s.route, strlen(s.route));
		ob_puts(&x->out, ",\"servers\":[");
		for (i = 0, a = s.servers; *a; i++) {
			size_t n = strcspn(a, " ");

			ob_puts(&x->out, i ? "," : "");
			admin_json_str(&x->out, a, n);
			a += n + (a[n] == ' ');
		}
		ob_printf(&x->out, "],\"created\":%s}\n", existed ? "false" : "true");
	} else if (rc == -ENOTSUP) {
		admin_error(x, 409, "started without a configuration file to build on");
	} else {
		admin_error(x, rc == -EEXIST ? 409 : rc == -ENOMEM ? 503 : 400, "%s", err);
	}
	service_free(&s);
}

void admin_delete_service(struct admin_ctx *x)
{
	char err[512];
	int rc = reload_service(NULL, x->params[0], err, sizeof(err));

	if (rc == 0 && (rc = persist_set_service(NULL, x->params[0])) < 0)
		admin_error(x, 503, "service removed, but the store could not record it: %s",
			    strerror(-rc));
	else if (rc == 0)
		x->status = 204;
	else
		admin_error(x, rc == -ENOENT ? 404 : rc == -ENOMEM ? 503 : 409, "%s", err);
}
