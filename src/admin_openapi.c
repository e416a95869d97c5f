/* admin_openapi.c - GET /openapi.json: an OpenAPI 3 description generated
 * from the route registry (so it cannot drift from the real routes) plus
 * the schemas of the bodies below, written by hand beside the code that
 * produces them (admin_stats.c, admin_ops.c). */
#include <ctype.h>
#include "common.h"
#include "admin_int.h"

/* Reusable pieces of the schemas. */
#define T_INT  "{\"type\":\"integer\",\"minimum\":0}"
#define T_NUM  "{\"type\":\"number\"}"
#define T_STR  "{\"type\":\"string\"}"
#define T_BOOL "{\"type\":\"boolean\"}"
#define REF(n) "{\"$ref\":\"#/components/schemas/" n "\"}"
#define ARR(s) "{\"type\":\"array\",\"items\":" s "}"

static const char schemas[] =
	"\"Error\":{\"type\":\"object\",\"required\":[\"code\",\"message\"],\"properties\":{"
	  "\"code\":" T_INT ",\"message\":" T_STR ",\"offset\":{\"type\":\"integer\","
	  "\"description\":\"400 for a JSON syntax error: byte offset of the error\"}}},"
	"\"OpenAPI\":{\"type\":\"object\",\"description\":\"This document\"},"
	"\"Worker\":{\"type\":\"object\",\"properties\":{\"id\":" T_INT ",\"accepted\":" T_INT
	  ",\"requests\":" T_INT ",\"errors\":" T_INT ",\"rejected_connections\":" T_INT
	  ",\"active\":" T_INT "}},"
	"\"Server\":{\"type\":\"object\",\"required\":[\"address\",\"state\",\"weight\"],"
	  "\"properties\":{\"address\":" T_STR ",\"weight\":" T_INT
	  ",\"state\":{\"type\":\"string\",\"enum\":[\"up\",\"down\",\"ejected\"]}"
	  ",\"circuit\":{\"type\":\"string\",\"enum\":[\"closed\",\"open\",\"half_open\"]}"
	  ",\"draining\":" T_BOOL ",\"held\":" T_BOOL ",\"active\":" T_INT
	  ",\"max_conns\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"0 = unlimited\"}"
	  ",\"requests\":" T_INT ",\"failures\":" T_INT
	  ",\"outcomes\":{\"type\":\"object\",\"additionalProperties\":" T_INT "}"
	  ",\"response_time_us\":{\"type\":\"integer\",\"description\":\"moving average\"}"
	  ",\"response_time_avg_us\":{\"type\":\"integer\",\"description\":\"mean since start\"}"
	  ",\"consecutive_failures\":" T_INT ",\"slow_start_permille\":" T_INT "}},"
	"\"Upstream\":{\"type\":\"object\",\"required\":[\"name\",\"balance\",\"servers\"],"
	  "\"properties\":{\"name\":" T_STR ",\"balance\":" REF("Strategy")
	  ",\"active\":" T_INT ",\"requests\":" T_INT ",\"failures\":" T_INT
	  ",\"responses\":{\"type\":\"integer\",\"description\":\"complete responses, "
	  "the latency histogram's count\"},\"latency_sum_us\":" T_INT
	  ",\"response_time_avg_us\":" T_INT ",\"queue\":" REF("Queue")
	  ",\"servers\":" ARR(REF("Server")) "}},"
	"\"Queue\":{\"type\":\"object\",\"description\":\"requests waiting for a server "
	  "under max_conns\",\"properties\":{\"length\":" T_INT ",\"size\":" T_INT
	  ",\"timeout_ms\":" T_INT ",\"timeouts\":" T_INT ",\"rejected\":" T_INT
	  ",\"served\":" T_INT "}},"
	"\"UpstreamList\":{\"type\":\"object\",\"properties\":{\"upstreams\":"
	  ARR(REF("Upstream")) "}},"
	"\"RateLimitStats\":{\"type\":\"object\",\"required\":[\"enabled\"],\"properties\":{"
	  "\"enabled\":" T_BOOL ",\"allowed\":" T_INT ",\"limited\":" T_INT ",\"banned\":" T_INT
	  ",\"blocked\":" T_INT ",\"unauthorized\":" T_INT ",\"bans\":" T_INT ",\"clients\":" T_INT
	  ",\"tiers\":" T_INT ",\"table_full\":" T_INT "}},"
	"\"CacheStats\":{\"type\":\"object\",\"required\":[\"enabled\"],\"properties\":{"
	  "\"enabled\":" T_BOOL ",\"hits\":" T_INT ",\"misses\":" T_INT ",\"hit_ratio\":" T_NUM
	  ",\"bytes\":" T_INT ",\"entries\":" T_INT ",\"limit\":" T_INT ",\"inserts\":" T_INT
	  ",\"evictions\":" T_INT ",\"expired\":" T_INT ",\"bypass\":" T_INT "}},"
	"\"StoreStats\":{\"type\":\"object\",\"required\":[\"enabled\"],\"properties\":{"
	  "\"enabled\":" T_BOOL ",\"path\":" T_STR ",\"records\":" T_INT
	  ",\"journal_bytes\":" T_INT ",\"journal_records\":" T_INT ",\"sequence\":" T_INT
	  ",\"snapshot_sequence\":" T_INT ",\"compactions\":" T_INT ",\"dropped_bytes\":" T_INT
	  ",\"write_errors\":" T_INT "}},"
	"\"Stats\":{\"type\":\"object\",\"required\":[\"workers\",\"upstreams\"],\"properties\":{"
	  "\"uptime_s\":" T_INT ",\"io\":{\"type\":\"string\",\"enum\":[\"uring\",\"epoll\"]}"
	  ",\"generation\":" T_INT ",\"connections\":" T_INT
	  ",\"totals\":" REF("Worker") ",\"workers\":" ARR(REF("Worker"))
	  ",\"upstreams\":" ARR(REF("Upstream")) ",\"ratelimit\":" REF("RateLimitStats")
	  ",\"cache\":" REF("CacheStats") ",\"store\":" REF("StoreStats") "}},"
	"\"LogLine\":{\"type\":\"object\",\"properties\":{\"seq\":" T_INT
	  ",\"level\":{\"type\":\"string\",\"enum\":[\"error\",\"warn\",\"info\",\"debug\"]}"
	  ",\"text\":" T_STR "}},"
	"\"Logs\":{\"type\":\"object\",\"properties\":{\"last_seq\":" T_INT
	  ",\"lines\":" ARR(REF("LogLine")) "}},"
	"\"Strategy\":{\"type\":\"string\",\"enum\":[\"round_robin\",\"weighted\",\"least_conn\","
	  "\"ip_hash\",\"least_time\",\"adaptive\",\"random2\"]},"
	"\"StrategyChange\":{\"type\":\"object\",\"properties\":{\"upstream\":{\"type\":\"string\","
	  "\"description\":\"may be left out when there is one upstream\"},"
	  "\"balance\":{\"type\":\"string\",\"description\":\"a Strategy; least_connections, "
	  "weighted_round_robin, least_response_time and sticky are accepted too\"},"
	  "\"strategy\":{\"type\":\"string\",\"description\":\"same as balance\"}}},"
	"\"StrategyResult\":{\"type\":\"object\",\"properties\":{\"upstream\":" T_STR
	  ",\"balance\":" REF("Strategy") ",\"previous\":" REF("Strategy") "}},"
	"\"ReloadResult\":{\"type\":\"object\",\"properties\":{\"reloaded\":{\"type\":\"boolean\"},"
	  "\"generation\":" T_INT "}},"
	"\"PurgeRequest\":{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\","
	  "\"description\":\"exact cache key, e.g. http://host:80/path\"},\"prefix\":" T_STR
	  ",\"tag\":{\"type\":\"string\",\"description\":\"a Surrogate-Key or Cache-Tag value\"},"
	  "\"all\":{\"type\":\"boolean\"}}},"
	"\"PurgeResult\":{\"type\":\"object\",\"properties\":{\"purged\":" T_STR "}},"
	"\"ServerChange\":{\"type\":\"object\",\"properties\":{\"weight\":{\"type\":\"integer\","
	  "\"minimum\":1,\"maximum\":1000},\"drain\":{\"type\":\"boolean\",\"description\":"
	  "\"true: no new requests (those in flight finish); false: back in rotation\"}}},"
	"\"Service\":{\"type\":\"object\",\"required\":[\"name\",\"route\",\"servers\"],"
	  "\"properties\":{\"name\":" T_STR ",\"route\":" T_STR ",\"servers\":" ARR(T_STR)
	  ",\"upstream\":" REF("Upstream") "}},"
	"\"ServiceList\":{\"type\":\"object\",\"properties\":{\"services\":"
	  ARR(REF("Service")) "}},"
	"\"ServiceChange\":{\"oneOf\":[" ARR(T_STR) ",{\"type\":\"object\",\"required\":"
	  "[\"servers\"],\"properties\":{\"servers\":" ARR(T_STR) ",\"route\":{\"type\":"
	  "\"string\",\"description\":\"path prefix, default /NAME/\"},\"balance\":"
	  REF("Strategy") "}}],\"description\":\"addresses host:port (http:// is accepted)\"},"
	"\"ServiceResult\":{\"type\":\"object\",\"properties\":{\"name\":" T_STR
	  ",\"route\":" T_STR ",\"servers\":" ARR(T_STR) ",\"created\":" T_BOOL "}},"
	"\"ClientCreate\":{\"type\":\"object\",\"required\":[\"client_id\"],\"properties\":{"
	  "\"client_id\":{\"type\":\"string\",\"description\":\"API key or client address; "
	  "id, api_key, key, ip_address and ip are accepted too\"},"
	  "\"capacity\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"burst; "
	  "default: the tier's or the [ratelimit] one\"},"
	  "\"rate_per_sec\":{\"type\":\"number\",\"exclusiveMinimum\":true,\"minimum\":0,"
	  "\"description\":\"refill; rate_per_second is accepted too\"},"
	  "\"tier\":" T_STR "}},"
	"\"ClientChange\":{\"type\":\"object\",\"properties\":{"
	  "\"capacity\":{\"type\":\"integer\",\"minimum\":1,\"nullable\":true},"
	  "\"rate_per_sec\":{\"type\":\"number\",\"nullable\":true},"
	  "\"tier\":{\"type\":\"string\",\"nullable\":true,\"description\":\"null: no tier\"}}},"
	"\"Client\":{\"type\":\"object\",\"required\":[\"id\",\"capacity\",\"rate_per_sec\"],"
	  "\"properties\":{\"id\":" T_STR ",\"client_id\":" T_STR
	  ",\"kind\":{\"type\":\"string\",\"enum\":[\"api_key\",\"address\"]}"
	  ",\"client\":{\"type\":\"boolean\",\"description\":\"false: only on the block list\"}"
	  ",\"blocked\":" T_BOOL ",\"tier\":{\"type\":\"string\",\"nullable\":true}"
	  ",\"override\":{\"type\":\"boolean\",\"description\":\"its own capacity or rate\"}"
	  ",\"capacity\":" T_INT ",\"rate_per_sec\":" T_NUM
	  ",\"tokens\":{\"type\":\"integer\",\"description\":\"requests admissible now\"}"
	  ",\"reset_s\":" T_INT ",\"banned\":" T_BOOL ",\"ban_left_s\":" T_INT "}},"
	"\"ClientList\":{\"type\":\"object\",\"properties\":{\"total\":" T_INT
	  ",\"offset\":" T_INT ",\"clients\":" ARR(REF("Client")) "}},"
	"\"Usage\":{\"type\":\"object\",\"properties\":{\"id\":" T_STR
	  ",\"kind\":{\"type\":\"string\",\"enum\":[\"api_key\",\"address\"]}"
	  ",\"client\":" T_BOOL ",\"blocked\":" T_BOOL ",\"tier\":{\"type\":\"string\","
	  "\"nullable\":true},\"limit\":" T_INT ",\"remaining\":" T_INT ",\"reset_s\":" T_INT
	  ",\"quota\":" T_INT ",\"window_s\":" T_INT ",\"tracked\":" T_BOOL
	  ",\"rejections\":" T_INT ",\"ban_level\":" T_INT ",\"banned\":" T_BOOL
	  ",\"ban_left_s\":" T_INT "}},"
	"\"Tier\":{\"type\":\"object\",\"properties\":{\"name\":" T_STR ",\"capacity\":" T_INT
	  ",\"rate_per_sec\":" T_NUM ",\"quota\":" T_INT ",\"window_s\":" T_INT "}},"
	"\"TierList\":{\"type\":\"object\",\"properties\":{\"default\":" REF("Tier")
	  ",\"tiers\":" ARR(REF("Tier")) "}},"
	"\"TierChange\":{\"type\":\"object\",\"required\":[\"api_key\",\"tier\"],\"properties\":{"
	  "\"api_key\":{\"type\":\"string\",\"description\":\"key, id and client_id are "
	  "accepted too\"},\"tier\":" T_STR "}},"
	"\"KeyRef\":{\"type\":\"object\",\"properties\":{\"api_key\":" T_STR
	  ",\"ip\":" T_STR ",\"key\":" T_STR ",\"id\":" T_STR "},\"description\":"
	  "\"one of the fields: an API key or a client address\"},"
	"\"BlockResult\":{\"type\":\"object\",\"properties\":{\"id\":" T_STR
	  ",\"blocked\":" T_BOOL "}}";

static const char *param_help(const char *name, size_t n)
{
	if (n == 4 && !memcmp(name, "name", 4))
		return "upstream name";
	if (n == 4 && !memcmp(name, "addr", 4))
		return "server address as configured, host:port";
	return "API key or client address";
}

/* operationId: method and path, non-alphanumerics folded to '_'. */
static void op_id(struct outbuf *o, const char *meth, const char *path)
{
	int under = 1;

	ob_puts(o, "\"operationId\":\"");
	for (; *meth; meth++) {
		char c = (char)tolower((unsigned char)*meth);

		ob_put(o, &c, 1);
	}
	for (; *path; path++) {
		if (isalnum((unsigned char)*path)) {
			if (under)
				ob_put(o, "_", 1);
			ob_put(o, path, 1);
			under = 0;
		} else {
			under = 1;
		}
	}
	ob_puts(o, "\",");
}

static void parameters(struct outbuf *o, const struct admin_route *r)
{
	const char *p = r->path, *q = r->query, *e, *bar;
	int first = 1;

	ob_puts(o, "\"parameters\":[");
	while ((p = strchr(p, '{'))) {
		e = strchr(p, '}');
		ob_printf(o, "%s{\"name\":\"%.*s\",\"in\":\"path\",\"required\":true,"
			  "\"schema\":{\"type\":\"string\"},\"description\":\"%s\"}",
			  first ? "" : ",", (int)(e - p - 1), p + 1, param_help(p + 1, e - p - 1));
		first = 0;
		p = e;
	}
	while (q && *q) {
		e = strchr(q, ':');
		bar = strchr(q, '|');
		if (!bar)
			bar = q + strlen(q);
		ob_printf(o, "%s{\"name\":\"%.*s\",\"in\":\"query\",\"required\":false,"
			  "\"schema\":{\"type\":\"string\"},\"description\":",
			  first ? "" : ",", (int)(e - q), q);
		admin_json_str(o, e + 1, (size_t)(bar - e - 1));
		ob_puts(o, "}");
		first = 0;
		q = *bar ? bar + 1 : bar;
	}
	ob_puts(o, "],");
}

static void success(struct outbuf *o, const struct admin_route *r)
{
	if (r->ok == 204) {
		ob_puts(o, "\"204\":{\"description\":\"Done, no content\"}");
		return;
	}
	ob_printf(o, "\"%u\":{\"description\":\"%s\",\"content\":{", r->ok,
		  r->ok == 201 ? "Created" : "OK");
	if (strchr(r->resp, '/'))
		ob_printf(o, "\"%s\":{\"schema\":{\"type\":\"string\"}}}}", r->resp);
	else
		ob_printf(o, "\"application/json\":{\"schema\":"
			  "{\"$ref\":\"#/components/schemas/%s\"}}}}", r->resp);
}

static void operation(struct outbuf *o, const struct admin_route *r, const char *path)
{
	static const char *const meths[] = { "other", "get", "head", "post", "put",
		"delete", "patch", "options", "connect", "trace" };
	const char *m = r->meth < ARRAY_SIZE(meths) ? meths[r->meth] : "other";
	const char *e = r->errors;
	char code[4];

	ob_printf(o, "\"%s\":{\"tags\":[\"%s\"],\"summary\":", m, r->tag);
	admin_json_str(o, r->summary, strlen(r->summary));
	ob_puts(o, ",");
	op_id(o, m, path);
	parameters(o, r);
	if (r->body)
		ob_printf(o, "\"requestBody\":{\"required\":true,\"content\":{\"application/json\":"
			  "{\"schema\":{\"$ref\":\"#/components/schemas/%s\"}}}},", r->body);
	ob_puts(o, "\"responses\":{");
	success(o, r);
	ob_puts(o, ",\"401\":{\"$ref\":\"#/components/responses/Error\"}");
	while (e && *e) {
		memcpy(code, e, 3);
		code[3] = 0;
		ob_printf(o, ",\"%s\":{\"$ref\":\"#/components/responses/Error\"}", code);
		e += e[3] ? 4 : 3;
	}
	if (r->body)
		ob_puts(o, ",\"413\":{\"$ref\":\"#/components/responses/Error\"}");
	ob_puts(o, "}}");
}

/* Every route with pattern <pat>, as one path item named <name>. */
static void path_item(struct outbuf *o, const char *pat, const char *name, int *first)
{
	size_t i;
	int n = 0;

	ob_printf(o, "%s\"%s\":{", *first ? "" : ",", name);
	*first = 0;
	for (i = 0; i < admin_nroutes; i++) {
		if (strcmp(admin_routes[i].path, pat))
			continue;
		if (n++)
			ob_puts(o, ",");
		operation(o, &admin_routes[i], name);
	}
	ob_puts(o, "}");
}

void admin_get_openapi(struct admin_ctx *x)
{
	struct outbuf *o = &x->out;
	size_t al = strlen(ADMIN_ALIAS_TO), i, j;
	char alias[ADMIN_PATH_MAX];
	int first = 1, seen;

	ob_puts(o, "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"ringfront admin API\","
		"\"version\":\"1\",\"description\":\"JSON over HTTP on [admin] listen. With a "
		"token configured, every request carries Authorization: Bearer TOKEN (GET may "
		"use ?access_token=TOKEN instead). Errors are {code, message}. "
		ADMIN_ALIAS_FROM "/ serves the same as " ADMIN_ALIAS_TO ".\"},"
		"\"security\":[{\"bearer\":[]}],\"paths\":{");
	for (i = 0; i < admin_nroutes; i++) {
		const char *pat = admin_routes[i].path;

		for (seen = 0, j = 0; j < i && !seen; j++)
			seen = !strcmp(admin_routes[j].path, pat);
		if (seen)
			continue;
		path_item(o, pat, pat, &first);
	}
	/* the alias mount, in the seed's spelling (with the trailing slash) */
	for (i = 0; i < admin_nroutes; i++) {
		const char *pat = admin_routes[i].path;

		if (strncmp(pat, ADMIN_ALIAS_TO, al) || (pat[al] && pat[al] != '/'))
			continue;
		for (seen = 0, j = 0; j < i && !seen; j++)
			seen = !strcmp(admin_routes[j].path, pat);
		if (seen)
			continue;
		snprintf(alias, sizeof(alias), "%s%s", ADMIN_ALIAS_FROM, pat[al] ? pat + al : "/");
		path_item(o, pat, alias, &first);
	}
	ob_puts(o, "},\"components\":{\"securitySchemes\":{\"bearer\":{\"type\":\"http\","
		"\"scheme\":\"bearer\"}},\"responses\":{\"Error\":{\"description\":"
		"\"An error: 400 bad input (with the offset of a JSON syntax error), 401 no or "
		"wrong token, 404 no such thing, 409 conflict, 413 body too large\","
		"\"content\":{\"application/json\":{\"schema\":"
		"{\"$ref\":\"#/components/schemas/Error\"}}}}},\"schemas\":{");
	ob_put(o, schemas, sizeof(schemas) - 1);
	ob_puts(o, "}}}\n");
}
