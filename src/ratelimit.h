/* ratelimit.h - the admission-control core: a sharded lock-free GCRA bucket
 * table (one 64-bit word per tracked key), the keyed hash behind the
 * ip / ip+path / header keys, RateLimit-* and 429 formatting, and the
 * resumable parser of the "<key>\n" -> "OK\n" | "ERROR\n" line protocol.
 * Tiers, clients, bans and the per-request entry point are in rl_clients.h. */
#ifndef RF_RATELIMIT_H
#define RF_RATELIMIT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Bucket word: tag in the top RL_TAG_BITS, theoretical arrival time (TAT,
 * microseconds since the table's epoch) in the low RL_TAT_BITS. 2^48 us is
 * 8.9 years; checks are only made while now < RL_NOW_MAX (4.4 years of
 * table uptime) and policies keep burst * T < RL_TAU_MAX, so a TAT never
 * reaches the tag bits. Past RL_NOW_MAX every check fails open, counted.
 * A slot whose TAT <= now is free for other keys: its bucket is full, so
 * reusing it loses nothing (its own key keeps charging it while it stays).
 *
 * A new key is inserted in two steps: its slot first holds the tag and
 * RL_TAT_PEND (claimed, not yet usable), then the claimer commits the real
 * TAT; a competing claimer of the same key may turn the claim to
 * RL_TAT_DEAD, which only its claimer clears. Real TATs stay below
 * 2^47 + 2^46, so they never meet these two values (ratelimit.c, claim()).
 *
 * False sharing: a key is told apart from the other live keys of its two
 * buckets by the 16-bit tag only. A new key whose buckets hold L live keys
 * matches one of them with probability L / 65536 (L is about 8 at half
 * load: 1.2e-4; at most 16: 2.4e-4). The two keys then share one bucket
 * until it drains: each is limited by their combined use - stricter, never
 * looser, than its own limit, so no one gains tokens from a collision.
 * Microsecond TATs were kept over more tag bits: a coarser clock would
 * distort per-key rates above a few thousand per second. */
#define RL_TAT_BITS     48
#define RL_TAG_BITS     16
#define RL_TAT_MASK     ((1ull << RL_TAT_BITS) - 1)
#define RL_NOW_MAX      (1ull << 47)
#define RL_TAU_MAX      (1ull << 45)
#define RL_TAT_DEAD     (RL_TAT_MASK - 1)       /* a claim turned down */
#define RL_TAT_PEND     RL_TAT_MASK             /* a claim not yet committed */
#define RL_SLOTS        8               /* slots per 64-byte bucket */
#define RL_LINE_MAX     256             /* longest line-protocol key */

/* A limit in GCRA form. Build it with rl_policy_init(), never by hand. */
struct rl_policy {
	uint64_t t_us;          /* emission interval: period / rate, rounded up */
	uint64_t tau_us;        /* tolerance: t_us * (burst - 1) */
	uint32_t burst;         /* requests admissible at once from a fresh state */
	uint32_t quota;         /* RateLimit-Policy: quota per window... */
	uint32_t window_s;      /* ...of this many seconds (w=) */
};

/* What one check decided, with everything the response headers need. */
struct rl_verdict {
	uint8_t allowed;
	uint8_t tracked;        /* 0: no bucket (table full, fail open) */
	uint32_t limit;         /* RateLimit-Limit: the burst */
	uint32_t remaining;     /* requests still admissible right now */
	uint32_t reset_s;       /* seconds until the bucket is full again */
	uint32_t retry_after_s; /* rejected: seconds until one is admitted, >= 1 */
	uint32_t quota;         /* copied from the policy for RateLimit-Policy */
	uint32_t window_s;
	uint32_t burst;
};

enum rl_full_policy { RL_FULL_ALLOW = 0, RL_FULL_DENY = 1 };

/* Per-worker counters, one cache line each so workers never share a line.
 * Written with relaxed atomic adds; readers sum them (rl_table_stats). */
struct rl_counters {
	_Alignas(64) _Atomic uint64_t allowed;
	_Atomic uint64_t limited;
	_Atomic uint64_t table_full;    /* a new key found its bucket full of live keys */
	_Atomic uint64_t clock;         /* checks failed open: clock out of range */
};

struct rl_table_stats {
	uint64_t allowed, limited, table_full, clock;
};

/* The bucket table. Shard s holds buckets [s * nbuckets, (s+1) * nbuckets);
 * the key hash picks the shard (bits 32..47), the first bucket (bits
 * 0..31), the second bucket (a remix of all 64 bits) and the tag (bits
 * 48..63). Any worker reads and updates any shard; nothing is locked. */
struct rl_table {
	_Atomic uint64_t *slots;        /* owned: mmap'd, zero = free */
	size_t bytes;                   /* size of the slots mapping */
	uint64_t max_keys;
	uint64_t epoch_us;              /* the clock value that maps to TAT 0 */
	uint32_t nshards;
	uint32_t nbuckets;              /* buckets per shard */
	uint32_t full_policy;           /* enum rl_full_policy */
	uint32_t ncounters;
	struct rl_counters *counters;   /* owned: one per worker */
	_Atomic uint64_t full_warned_s; /* last "table full" warning, seconds */
};

/* Set up <t> for <max_keys> live keys in <nshards> shards (one per worker;
 * also the number of counter sets). <epoch_us> is the clock value TATs are
 * measured from (the current time). Returns 0, -EINVAL or -ENOMEM. */
int rl_table_init(struct rl_table *t, unsigned nshards, uint64_t max_keys,
		  enum rl_full_policy full, uint64_t epoch_us);
void rl_table_free(struct rl_table *t);

/* Bytes of bucket memory per configured key (8 when max_keys fills whole
 * buckets; the 64-byte rounding of each shard adds at most 56 bytes). */
double rl_table_bytes_per_key(const struct rl_table *t);

/* Make <p> admit <burst> requests at once and then <rate> per <period_us>.
 * burst 0 means burst = rate. Returns 0, or -EINVAL (rate 0, period 0) or
 * -ERANGE (T or burst * T beyond RL_TAU_MAX, about a year). */
int rl_policy_init(struct rl_policy *p, uint32_t rate, uint64_t period_us, uint32_t burst);

/* Same from a client record: <capacity> burst, <rate_per_sec> refill
 * (fractional allowed, e.g. 1.4). Returns 0, -EINVAL or -ERANGE. */
int rl_policy_from_rps(struct rl_policy *p, double rate_per_sec, uint32_t capacity);

/* Admit or reject one request of the key whose hash is <key_hash>, at
 * <now_us> (same clock as the epoch). Lock-free: a CAS on the key's word,
 * retried on contention. Allocation-free. A rejection never writes.
 * <worker> picks the counter set. Fills <v>; returns v->allowed. */
int rl_check(struct rl_table *t, unsigned worker, uint64_t key_hash,
	     const struct rl_policy *p, uint64_t now_us, struct rl_verdict *v);

/* Give back the token an admitted request took (a later limiter rejected
 * it). Returns 0, or -ENOENT when the key holds no live bucket any more. */
int rl_refund(struct rl_table *t, uint64_t key_hash, const struct rl_policy *p,
	      uint64_t now_us);

/* The key's limit changes from <from> to <to> (tier upgrade, client
 * override): keep the tokens it has used, so neither a fresh burst nor a
 * long wait follows from the change. Returns 0 or -ENOENT (no bucket). */
int rl_rescale(struct rl_table *t, uint64_t key_hash, const struct rl_policy *from,
	       const struct rl_policy *to, uint64_t now_us);

/* What rl_check would say, without taking a token (usage lookups). */
void rl_peek(struct rl_table *t, uint64_t key_hash, const struct rl_policy *p,
	     uint64_t now_us, struct rl_verdict *v);

void rl_table_stats(const struct rl_table *t, struct rl_table_stats *out);

/* CLOCK_MONOTONIC in microseconds: the clock rl_check expects. */
uint64_t rl_now_us(void);

/* ---- keys ---- */

enum rl_key_kind {
	RL_KEY_IP = 0,          /* client address */
	RL_KEY_IP_PATH,         /* client address + request path (no query) */
	RL_KEY_HEADER,          /* value of a request header (an API key) */
};

/* A fast keyed hash (wyhash-style 64x64->128 folding, the seed mixed into
 * both multiplicands so no input block can zero the state). The seed is
 * random per process, so clients cannot aim collisions. */
uint64_t rl_hash(const void *p, size_t n, uint64_t seed);

/* Key of a binary client address (4 bytes IPv4, 16 bytes IPv6; v4-mapped
 * IPv6 is folded to its IPv4 form). */
uint64_t rl_key_ip(const void *addr, size_t len, uint64_t seed);

/* Key of a client id as text (line protocol, admin API): an address
 * ("10.0.0.1", "::1") gets the key rl_key_ip() gives it, anything else the
 * key rl_key_header() gives an API key with that value. */
uint64_t rl_key_id(const char *s, size_t n, uint64_t seed);

/* Key of ip+path: <ip_key> from rl_key_ip(), <path> the request target
 * (hashed up to '?', so the query string does not make new keys). */
uint64_t rl_key_ip_path(uint64_t ip_key, const char *path, size_t n, uint64_t seed);

/* Key of a header value (API key). Independent of the header's name. */
uint64_t rl_key_header(const char *v, size_t n, uint64_t seed);

/* The pieces a key can be built from, and the one-call builder. */
struct rl_key_parts {
	const void *ip;         /* binary address, 4 or 16 bytes */
	size_t ip_len;
	const char *path;
	size_t path_len;
	const char *hdr;        /* header value, NULL when absent */
	size_t hdr_len;
};

/* Returns 0 and sets *out, or -ENOENT when the kind needs a missing piece. */
int rl_key_make(enum rl_key_kind kind, const struct rl_key_parts *kp, uint64_t seed,
		uint64_t *out);

/* ---- responses ---- */

/* Write the RateLimit-Limit/-Remaining/-Reset/-Policy lines (each ending in
 * CRLF) and, for a rejection, Retry-After into <out>. Returns the length or
 * -ENOSPC. 160 bytes always suffice. */
int rl_format_headers(const struct rl_verdict *v, char *out, size_t cap);

/* Write the JSON body of a 401, 403 or 429 (with "retry_after" for 429):
 * {"code":429,"message":"rate limit exceeded","retry_after":N}\n
 * Returns the length or -ENOSPC. */
int rl_format_body(int status, const struct rl_verdict *v, char *out, size_t cap);

/* Write a whole 401/403/429 response: status line, Content-Type,
 * Content-Length, RateLimit-* when <headers> (429 only), Retry-After (429),
 * <extra> (pre-formatted header lines, e.g. X-Request-Id, may be NULL),
 * Connection, and the JSON body. Returns the length or -ENOSPC. */
int rl_format_response(int status, const struct rl_verdict *v, int headers,
		       int keepalive, const char *extra, size_t extra_len,
		       char *out, size_t cap);

/* ---- line protocol ---- */

/* Per-connection state of the line protocol; zero it to start. */
struct rl_line {
	uint16_t len;           /* bytes of an unfinished line kept in buf */
	uint8_t closing;        /* an ERROR that ends the connection was written */
	char buf[RL_LINE_MAX + 1];      /* + room for a trailing '\r' */
};

/* Decides one key: returns 1 to admit ("OK"), 0 to reject ("ERROR"). */
typedef int (*rl_line_check_fn)(void *arg, const char *key, size_t len);

/* Feed <n> received bytes. Answers each complete line, in order, by
 * appending "OK\n" or "ERROR\n" to <out> (capacity <cap>, *out_len bytes
 * already used and updated). An empty line gets ERROR. A line longer than
 * RL_LINE_MAX or holding a control byte (other than a final '\r') gets
 * ERROR and sets ls->closing: send what was written, then close. Returns
 * the bytes of <in> consumed: fewer than <n> when <out> is full (call
 * again with the rest after sending) or the connection is closing. */
size_t rl_line_feed(struct rl_line *ls, const char *in, size_t n,
		    char *out, size_t cap, size_t *out_len,
		    rl_line_check_fn check, void *arg);

#endif
