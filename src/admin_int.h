/* admin_int.h - what the admin API's files share: the request context a
 * handler gets, the route registry (one row per {method, path pattern}
 * with the metadata /openapi.json is generated from), and the helpers
 * that read parameters and JSON bodies and write JSON errors. */
#ifndef RF_ADMIN_INT_H
#define RF_ADMIN_INT_H

#include "admin.h"
#include "json.h"
#include "outbuf.h"
#include "worker.h"

#define ADMIN_PATH_MAX   256
#define ADMIN_QUERY_MAX  512
#define ADMIN_MAX_PARAMS 3
#define ADMIN_JSON_TOKENS 1024  /* values in one request body */

/* State of one admin request while its body arrives. Owner: the conn. */
struct admin_req {
	uint8_t meth;
	uint8_t authorized;
	char path[ADMIN_PATH_MAX];
	char query[ADMIN_QUERY_MAX];
	struct outbuf body;
	struct segq scratch;            /* decoded body bytes before copying */
};

/* One request being answered: the handler fills <out> (JSON unless it sets
 * ctype) and <status>; admin_error() replaces whatever was written. */
struct admin_ctx {
	struct conn *c;
	struct worker *w;
	struct runtime *rt;             /* the worker's current runtime */
	struct admin_req *ar;
	int status;
	const char *ctype;
	const char *extra;              /* extra header lines (static text), or NULL */
	uint8_t sse;                    /* an event stream: no length, ends by close */
	char allow[64];                 /* methods the path takes, for 405 */
	uint32_t nparams;
	char params[ADMIN_MAX_PARAMS][ADMIN_PATH_MAX];  /* {name} segments, decoded */
	struct json_doc doc;            /* the body, after admin_body_object() */
	struct json_tok *toks;          /* owned, ADMIN_JSON_TOKENS */
	struct outbuf out;
};

typedef void (*admin_fn)(struct admin_ctx *x);

/* A route. <path> is a pattern: "{name}" matches one non-empty segment,
 * percent-decoded into x->params in order. The other fields describe the
 * operation for /openapi.json. */
struct admin_route {
	uint8_t meth;                   /* enum http_method */
	const char *path;
	admin_fn fn;
	const char *tag;
	const char *summary;
	const char *body;               /* schema name of the JSON body, NULL = none */
	uint16_t ok;                    /* success status */
	const char *resp;               /* schema name, or a media type with a '/' */
	const char *query;              /* query parameters, "name:description|..." */
	const char *errors;             /* error statuses besides 401, e.g. "400 404" */
};

extern const struct admin_route admin_routes[];
extern const size_t admin_nroutes;

/* Paths served twice: /v1/api/clients/... answers as /clients/... */
#define ADMIN_ALIAS_FROM "/v1/api/clients"
#define ADMIN_ALIAS_TO   "/clients"

/* ---- helpers (admin.c) ---- */

/* Answer <status> with {"code":N,"message":"..."} (printf-style message). */
void admin_error(struct admin_ctx *x, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The decoded value of query parameter <name> in <buf>; returns its length,
 * or -ENOENT when absent, -ENOSPC when longer than <cap> - 1. */
int admin_query(const struct admin_ctx *x, const char *name, char *buf, size_t cap);

/* Parse the body as a JSON object into x->doc (token 0). On failure the
 * 400 (with the error's byte offset) is already written: returns < 0. */
int admin_body_object(struct admin_ctx *x);
/* The same for any JSON value (an array, say). */
int admin_body_json(struct admin_ctx *x);

/* Read member <key> of the body object. Each returns 1 when present and
 * valid, 0 when absent (or null), and < 0 after writing a 400 naming the
 * field. Strings must be non-empty and fit <cap> - 1 bytes. */
int admin_field_str(struct admin_ctx *x, const char *key, char *buf, size_t cap);
int admin_field_u32(struct admin_ctx *x, const char *key, uint32_t min, uint32_t max,
		    uint32_t *out);
int admin_field_double(struct admin_ctx *x, const char *key, double min, double max,
		       double *out);
int admin_field_bool(struct admin_ctx *x, const char *key, int *out);

/* The first of several accepted names for one field that is present:
 * same returns as admin_field_str. */
int admin_field_str_any(struct admin_ctx *x, const char *const *keys, char *buf,
			size_t cap);

/* A JSON string literal of <n> bytes: controls escaped, invalid UTF-8
 * replaced by U+FFFD, and < > & escaped so the text is safe inside an
 * HTML <script> too. */
void admin_json_str(struct outbuf *o, const char *s, size_t n);

/* JSON numbers: a finite double with enough digits, or 0. */
void admin_json_double(struct outbuf *o, double v);

/* Prometheus label value: quotes, backslashes and newlines escaped. */
void admin_label(struct outbuf *o, const char *s);

/* ---- handlers ---- */

/* admin_stats.c */
void admin_get_stats(struct admin_ctx *x);
void admin_get_metrics(struct admin_ctx *x);
void admin_get_logs(struct admin_ctx *x);
void admin_get_events(struct admin_ctx *x);
/* The live figures object of /events and the dashboard, as seen from
 * worker <w>, with the <nlogs> newest log lines. */
void admin_write_live(struct worker *w, struct outbuf *o, unsigned nlogs);

/* admin_ops.c */
void admin_post_strategy(struct admin_ctx *x);
void admin_post_reload(struct admin_ctx *x);
void admin_post_cache_purge(struct admin_ctx *x);
void admin_get_upstreams(struct admin_ctx *x);
void admin_get_upstream(struct admin_ctx *x);
void admin_get_server(struct admin_ctx *x);
void admin_patch_server(struct admin_ctx *x);
void admin_list_clients(struct admin_ctx *x);
void admin_create_client(struct admin_ctx *x);
void admin_get_client(struct admin_ctx *x);
void admin_put_client(struct admin_ctx *x);
void admin_patch_client(struct admin_ctx *x);
void admin_patch_client_body(struct admin_ctx *x);
void admin_delete_client(struct admin_ctx *x);
void admin_get_usage(struct admin_ctx *x);
void admin_get_tiers(struct admin_ctx *x);
void admin_post_tier(struct admin_ctx *x);
void admin_post_block(struct admin_ctx *x);
void admin_post_unblock(struct admin_ctx *x);

/* admin_services.c */
void admin_list_services(struct admin_ctx *x);
void admin_get_service(struct admin_ctx *x);
void admin_put_service(struct admin_ctx *x);
void admin_delete_service(struct admin_ctx *x);

/* admin_openapi.c, admin_dash.c */
void admin_get_openapi(struct admin_ctx *x);
void admin_get_dashboard(struct admin_ctx *x);

/* Write one upstream's JSON object (as in /stats) at <now_ms>. */
void admin_write_upstream(struct outbuf *o, const struct upstream *up, uint64_t now_ms);
/* Write one server's JSON object (as in /stats). */
void admin_write_server(struct outbuf *o, const struct server *s, uint64_t now_ms);

#endif
