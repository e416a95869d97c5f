/* config_int.h - what the INI loader's three files share: the key-table
 * row (struct key_def) and its value setters' error report (struct why),
 * the section table row and the parser state, and the helpers one file
 * defines for another. config_values.c turns text into fields,
 * config_sections.c holds the tables and the section handlers, config.c
 * reads the lines. Nothing else includes it. */
#ifndef RF_CONFIG_INT_H
#define RF_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define DAY_MS          86400000u
#define RF_MAX_CONNS_MAX 1000000u   /* max_conns and queue_size */

enum key_type {
	KT_U32,         /* plain number, stored uint32_t */
	KT_SIZE32,      /* bytes with optional k/m/g suffix, stored uint32_t */
	KT_SIZE64,      /* same, stored uint64_t */
	KT_MS,          /* duration (ms/s/m/h, bare = seconds), stored uint32_t ms */
	KT_STRING,      /* owned char *, empty -> NULL */
	KT_ENUM,        /* one of names[] -> uint32_t index */
	KT_ADDRS,       /* host:port list into struct rf_addr[max], count at aux */
	KT_CUSTOM,      /* only ->set knows the storage */
};

#define KF_OWNED 1u     /* field is a malloc'd pointer that config_free() frees */
#define KF_AUTO  2u     /* number that also takes "auto", stored as 0 */
#define KF_POW2  4u     /* number that must be a power of two */
#define KF_PATH  8u     /* string that is empty or an absolute URL path */
#define KF_TOKEN 16u    /* string that is empty or an HTTP token (a header name) */

/* What a value parser says about a bad value: the offending token (when it
 * is not the whole value) and the text for the parentheses. */
struct why {
	char tok[96];
	char msg[160];
};

struct key_def;
typedef int (*set_fn)(const struct key_def *k, void *base, const char *val, struct why *w);

struct key_def {
	const char *name;
	enum key_type type;
	size_t off;                  /* target field in the section's struct */
	uint64_t min, max;           /* bounds for numbers, count for KT_ADDRS */
	const char *def;             /* default, parsed like user input; NULL = required */
	const char *help;
	const char *const *names;    /* KT_ENUM: NULL terminated */
	size_t aux;                  /* KT_ADDRS: offset of the uint32_t count */
	set_fn set;                  /* replaces the type's parser */
	unsigned flags;
};

struct parser;

enum { SEC_SERVER, SEC_UPSTREAM, SEC_ROUTE, SEC_ADMIN, SEC_RATELIMIT, SEC_TIER, SEC_API_KEYS,
       SEC_CACHE, SEC_STORE, SEC_CLUSTER, SEC_COUNT };

struct section_def {
	const char *name;
	int named;                   /* header carries a name: [upstream app] */
	const struct key_def *keys;  /* NULL: free-form keys, handled by ->entry */
	size_t nkeys;
	const char *help;
	int (*begin)(struct parser *p, const char *arg);    /* NULL: rows write into cfg */
	int (*entry)(struct parser *p, const char *key, const char *val);
	int (*end)(struct parser *p);
	const char *example;         /* for config_dump_keys(): a name if named, else lines */
};

struct parser {
	const char *name;            /* file name for messages */
	char *err;
	size_t errlen;
	struct rf_config *cfg;
	int line;
	const struct section_def *sec;   /* NULL before the first header */
	void *base;                  /* struct the current section's rows point into */
	int sec_line;
	int key_line[32];            /* where each row was given in this section, 0 = not */
	int first[SEC_COUNT];        /* first header line of each section, 0 = none yet */
	uint32_t up_cap, route_cap, name_cap;
	char **route_up;             /* upstream name per route, resolved at the end */
	uint32_t tier_cap, apikey_cap;
};

/* Compile-time check that a row's type matches the field it writes. */
#define OFF(st, f, T) (offsetof(st, f) + 0 * sizeof(char[_Generic(((st *)0)->f, T: 1)]))
#define FIELD(base, k) ((void *)((char *)(base) + (k)->off))
#define ULL(x) ((unsigned long long)(x))

/* ---- config_values.c: text -> field ---- */

extern const char *const balance_names[];   /* enum rf_balance order, NULL terminated */

/* Fill w->msg with the reason a value is bad. Returns <rc>. */
__attribute__((format(printf, 3, 4)))
int why(struct why *w, int rc, const char *fmt, ...);
int is_ws(char c);
/* Skip leading and cut trailing whitespace of <s> in place. Returns the new start. */
char *trim(char *s);
/* 1 when <s> holds a space or a control character, else 0. */
int has_space_or_ctl(const char *s);
/* Parse <val> by row <k> into <base> (k->set, else by k->type). Returns 0,
 * or -EINVAL / -ERANGE with <w> saying why. */
int set_value(const struct key_def *k, void *base, const char *val, struct why *w);
/* KT_CUSTOM setters named in the tables; same contract as set_value(). */
int set_servers(const struct key_def *k, void *base, const char *val, struct why *w);
int set_rate(const struct key_def *k, void *base, const char *val, struct why *w);
int set_route_rate(const struct key_def *k, void *base, const char *val, struct why *w);
int set_rl_key(const struct key_def *k, void *base, const char *val, struct why *w);
int set_opt_addrs(const struct key_def *k, void *base, const char *val, struct why *w);
int set_retry_on(const struct key_def *k, void *base, const char *val, struct why *w);

/* ---- config.c: messages and row helpers for the section handlers ---- */

/* "FILE:LINE: message" into p->err. Returns <rc>. */
__attribute__((format(printf, 4, 5)))
int perr(struct parser *p, int line, int rc, const char *fmt, ...);
/* Set every row of <keys> that has a default. Returns 0 or -EINVAL (a bad
 * default, a bug in the table). */
int apply_defaults(struct parser *p, const struct key_def *keys, size_t n, void *base);
/* "[name]" or "[name arg]" of the current section, in <buf>. Returns <buf>. */
const char *sec_label(const struct parser *p, char *buf, size_t n);
/* The row of <s> called <name>, or NULL. */
const struct key_def *find_key(const struct section_def *s, const char *name);

/* ---- config_sections.c: the tables and the whole-file checks ---- */

extern const struct section_def sections[SEC_COUNT];

/* Resolve routes against upstreams (or add the implicit "/" route) and sort
 * them longest prefix first. Returns 0 or -EINVAL with p->err set. */
int route_finish(struct parser *p);
/* Check tiers and API keys against [ratelimit] and each other. Returns 0 or
 * -EINVAL with p->err set. */
int ratelimit_finish(struct parser *p);

#endif
