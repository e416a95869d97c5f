/* fuzz_config.c - libFuzzer target for the INI loader, config_parse().
 *
 * A parse either fails with a negative errno and a one-line message that
 * starts with the file name ("fuzz.ini:LINE: ..." or "fuzz.ini: ..."), or
 * succeeds with a configuration whose cross-references hold: every route
 * names an existing upstream and starts with '/', routes are sorted
 * longest prefix first, every upstream has servers with weights 1..1000,
 * listen counts are within their arrays, API keys point at real tiers,
 * max_uri_size <= max_header_size. config_free() must release it all
 * (LeakSanitizer checks). Parsing the same text twice gives the same
 * answer.
 *
 * Host names would be resolved through DNS: getaddrinfo() is interposed
 * here to resolve numeric addresses and "localhost" only, so the target
 * never touches the network and stays deterministic. */
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *,
			      struct addrinfo **);
	static gai_fn real;
	struct addrinfo h;

	if (!real) {
		void *sym = dlsym(RTLD_NEXT, "getaddrinfo");

		if (!sym)
			return EAI_FAIL;
		memcpy(&real, &sym, sizeof real);
	}
	if (node && !strcmp(node, "localhost"))
		node = "127.0.0.1";
	memset(&h, 0, sizeof h);
	if (hints)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST;
	return real(node, service, &h, res);
}

static void cfg_check_ok(const struct rf_config *c)
{
	uint32_t i, j;

	FUZZ_CHECK(c->nlisten >= 1 && c->nlisten <= RF_MAX_LISTEN);
	for (i = 0; i < c->nlisten; i++)
		FUZZ_CHECK(c->listen[i].len > 0 &&
			   (c->listen[i].ss.ss_family == AF_INET ||
			    c->listen[i].ss.ss_family == AF_INET6));
	FUZZ_CHECK(c->max_uri_size <= c->max_header_size);
	FUZZ_CHECK(c->admin.nlisten <= 1 && c->ratelimit.nlisten <= 1 && c->cache.nlisten <= 1);
	FUZZ_CHECK(c->recv_buffers && !(c->recv_buffers & (c->recv_buffers - 1)));
	for (i = 0; i < c->nupstreams; i++) {
		const struct rf_upstream_conf *u = &c->upstreams[i];

		FUZZ_CHECK(u->name[0] && memchr(u->name, 0, sizeof u->name));
		FUZZ_CHECK(u->nservers >= 1 && u->servers);
		for (j = 0; j < u->nservers; j++) {
			FUZZ_CHECK(u->servers[j].weight >= 1 && u->servers[j].weight <= 1000);
			FUZZ_CHECK(u->servers[j].addr.len > 0);
		}
		FUZZ_CHECK(!u->health_path || u->health_path[0] == '/');
		for (j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(c->upstreams[j].name, u->name) != 0);
	}
	for (i = 0; i < c->nroutes; i++) {
		FUZZ_CHECK(c->routes[i].prefix && c->routes[i].prefix[0] == '/');
		FUZZ_CHECK(c->routes[i].upstream < c->nupstreams);
		if (i)
			FUZZ_CHECK(strlen(c->routes[i - 1].prefix) >= strlen(c->routes[i].prefix));
	}
	for (i = 0; i < c->ratelimit.napi_keys; i++) {
		FUZZ_CHECK(c->ratelimit.api_keys[i].key);
		FUZZ_CHECK(c->ratelimit.api_keys[i].tier < c->ratelimit.ntiers);
	}
	for (i = 0; i < c->ratelimit.ntiers; i++)
		FUZZ_CHECK(c->ratelimit.tiers[i].rate.count > 0 &&
			   c->ratelimit.tiers[i].rate.period_ms > 0);
	if (c->ratelimit.enabled)
		FUZZ_CHECK(c->ratelimit.rate.count > 0 && c->ratelimit.rate.period_ms > 0);
}

static void cfg_check_err(const char *err, size_t cap, int rc)
{
	size_t n = strnlen(err, cap);

	FUZZ_CHECK(rc < 0);
	FUZZ_CHECK(n < cap);
	FUZZ_CHECK(n > 9 && !strncmp(err, "fuzz.ini:", 9));
	FUZZ_CHECK(!memchr(err, '\n', n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rf_config *c1 = NULL, *c2 = NULL;
	char err1[512], err2[512];
	char *b = fuzz_dup(data, size);
	int rc1, rc2;

	err1[0] = err2[0] = 0;
	rc1 = config_parse("fuzz.ini", b, size, &c1, err1, sizeof err1);
	if (rc1 == 0) {
		FUZZ_CHECK(c1 != NULL);
		cfg_check_ok(c1);
	} else {
		cfg_check_err(err1, sizeof err1, rc1);
	}
	rc2 = config_parse("fuzz.ini", b, size, &c2, err2, sizeof err2);
	FUZZ_CHECK(rc1 == rc2);
	if (rc1)
		FUZZ_CHECK(!strcmp(err1, err2));
	else
		FUZZ_CHECK(c1->nupstreams == c2->nupstreams && c1->nroutes == c2->nroutes);
	if (c1)
		config_free(c1);
	if (c2)
		config_free(c2);
	free(b);
	return 0;
}
