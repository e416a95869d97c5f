/* demo-backend - the "application server" behind ringfront in the demo, the
 * tests and the benchmark: a single-threaded epoll HTTP/1.1 server with
 * keep-alive, pipelining, streamed bodies, delays and fault injection. With
 * --ratelimit and --cache it is also the seeds' application: /users/<id>
 * asks ringfront's line-protocol limiter for admission and reads through
 * ringfront's Redis-protocol cache. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP      (64 * 1024)     /* a request head or chunk line must fit */
#define OUT_HIGH    (64 * 1024)     /* stop queueing responses above this */
#define OUT_KEEP    (256 * 1024)    /* free bigger buffers once drained */
#define MAX_HEADERS 128
#define CHUNK_MAX   1000            /* /chunked/<n> chunk size */
#define MAX_GEN     (1ULL << 30)    /* /bytes and /chunked upper bound */
#define MAX_SLOW_MS 600000ULL
#define LINGER_MS   1000            /* drain input this long after close */
#define FNV_OFF     0xcbf29ce484222325ULL
#define FNV_PRIME   0x100000001b3ULL
#define S(lit)      lit, sizeof(lit) - 1   /* a literal and its length */

typedef unsigned long long ull;

enum kind { K_LISTEN, K_SIGNAL, K_CONN };
enum state { ST_HEAD, ST_BODY, ST_READY, ST_WAIT, ST_LINGER };
enum body { B_NONE, B_LENGTH, B_CHUNKED };
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };
enum route {
	R_NOTFOUND, R_BAD, R_USERS, R_HEALTH, R_ECHO, R_BYTES, R_CHUNKED,
	R_SLOW, R_STATUS, R_HEADERS, R_CLOSE, R_CACHE, R_STATS,
};

struct tag { enum kind kind; };
struct sbuf { char *p; size_t len, cap; };
struct hdr { const char *n, *v; size_t nl, vl; };

struct req {
	enum route route;
	uint64_t arg;               /* id, size, ms or status from the path */
	bool head, http10, keep_alive, delayed;
	enum body body;
	enum chunk_state ch;
	uint64_t body_left;         /* Content-Length or chunk bytes to go */
	uint64_t body_bytes, hash;
	struct sbuf text;           /* /headers body, or the escaped target */
	char client[64];            /* last X-Forwarded-For entry: the proxy's peer */
};

struct conn {
	struct tag tag;
	int fd;
	enum state st;
	bool rd_ready, wr_ready, rd_eof, closing, timed;
	bool rd_hup;                    /* epoll saw the peer's FIN or an error */
	bool broken;                    /* answered an error: input may follow */
	struct conn *tprev, *tnext;     /* timer list links, when timed */
	uint64_t deadline;
	char *in;
	size_t in_off, in_len, out_off;
	struct sbuf out;
	struct req req;
	bool gen_active, gen_chunked;   /* streamed /bytes or /chunked body */
	uint64_t gen_left, gen_pos;
};

static struct {
	const char *host;
	int port;
	uint64_t delay_ms;
	double fail_rate;
	bool health_fail, quiet;
	const char *ratelimit, *cache;  /* host:port of the seeds' services, or NULL */
} opt = { .host = "127.0.0.1" };

static int ep, listen_fd, spare_fd = -1;
static struct tag listen_tag = { K_LISTEN }, signal_tag = { K_SIGNAL };
static uint64_t stat_requests, stat_conns, cache_seq, rng;
static char served_by[32];
static char pattern[OUT_HIGH + 26];
static struct sbuf scratch;
static struct conn *timers_head, *timers_tail;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* xorshift64*, seeded by the port: a failing run replays exactly. */
static double rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (double)((rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

/* ---- growable byte buffers ---- */

/* Buffers stay small (bounded input, bounded queued output), so running
 * out of memory means the machine is in trouble: fail loudly. */
static void sb_reserve(struct sbuf *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : 1024;

	if (b->len + extra <= b->cap)
		return;
	while (cap < b->len + extra)
		cap *= 2;
	if (!(b->p = realloc(b->p, cap))) {
		fprintf(stderr, "demo-backend: out of memory\n");
		exit(1);
	}
	b->cap = cap;
}

static void sb_add(struct sbuf *b, const void *s, size_t n)
{
	sb_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Every format here is short, so one bounded vsnprintf is enough. */
__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	sb_reserve(b, 512);
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, 512, fmt, ap);
	va_end(ap);
	b->len += n > 0 && n < 512 ? (size_t)n : 0;
}

/* JSON string. Bytes outside printable ASCII become \u00XX, so the output
 * is always valid JSON and a test recovers the raw bytes via latin-1. */
static void sb_json_str(struct sbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *d;

	sb_reserve(b, n * 6 + 2);
	d = b->p + b->len;
	*d++ = '"';
	for (; n; n--, s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			*d++ = '\\';
			*d++ = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			memcpy(d, "\\u00", 4);
			d[4] = hex[ch >> 4];
			d[5] = hex[ch & 15];
			d += 6;
		} else {
			*d++ = (char)ch;
		}
	}
	*d++ = '"';
	b->len = (size_t)(d - b->p);
}

/* ---- timers: connections waiting out a delay or a linger ---- */

/* A list sorted by deadline. Deadlines are mostly now + a fixed delay, so
 * the insertion scan from the tail nearly always stops at once. */
static void timer_add(struct conn *c, uint64_t deadline)
{
	struct conn *p = timers_tail;

	while (p && p->deadline > deadline)
		p = p->tprev;
	c->deadline = deadline;
	c->tprev = p;
	c->tnext = p ? p->tnext : timers_head;
	*(c->tnext ? &c->tnext->tprev : &timers_tail) = c;
	*(p ? &p->tnext : &timers_head) = c;
	c->timed = true;
}

static void timer_del(struct conn *c)
{
	if (!c->timed)
		return;
	*(c->tprev ? &c->tprev->tnext : &timers_head) = c->tnext;
	*(c->tnext ? &c->tnext->tprev : &timers_tail) = c->tprev;
	c->timed = false;
}

/* ---- request parsing ---- */

static bool parse_u64(const char *p, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 19)
		return false;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return v <= max;
}

static bool ieq(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

static bool tokens_ok(const char *p, size_t n)
{
	for (; n; n--, p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || (*p && strchr("!#$%&'*+-.^_`|~", *p))))
			return false;
	return true;
}

static void trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t'))
		(*p)++, (*n)--;
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

/* Is tok an item of the comma list? With last, only as the final item. */
static bool list_has(const char *v, size_t n, const char *tok, bool last)
{
	bool found = false;

	while (n) {
		const char *comma = memchr(v, ',', n), *s = v;
		size_t len = comma ? (size_t)(comma - v) : n, item = len;

		trim(&s, &item);
		found = ieq(s, item, tok);
		if ((found && !last) || !comma)
			break;
		v = comma + 1;
		n -= len + 1;
	}
	return found;
}

/* Length of the head including its blank line, or 0 while incomplete. */
static size_t head_len(const char *p, size_t n)
{
	const char *q = p, *end = p + n, *nl;

	while (q < end && (nl = memchr(q, '\n', (size_t)(end - q)))) {
		if (q != p && (nl == q || (nl == q + 1 && *q == '\r')))
			return (size_t)(nl + 1 - p);
		q = nl + 1;
	}
	return 0;
}

static const char *next_line(const char **q, const char *end, size_t *len)
{
	const char *s = *q, *nl = memchr(s, '\n', (size_t)(end - s));

	if (!nl)
		nl = end;
	*len = (size_t)(nl - s);
	if (*len && s[*len - 1] == '\r')
		(*len)--;
	*q = nl < end ? nl + 1 : end;
	return s;
}

/* Does p start with pre? Then *k is the length of pre. */
static bool prefix(const char *p, size_t n, const char *pre, size_t *k)
{
	*k = strlen(pre);
	return n >= *k && memcmp(p, pre, *k) == 0;
}

static void route_target(struct req *r, const char *p, size_t n)
{
	const char *q;
	size_t k;

	/* absolute-form: route on the path after scheme://authority */
	if (prefix(p, n, "http://", &k) || prefix(p, n, "https://", &k)) {
		q = memchr(p + k, '/', n - k);
		n = q ? n - (size_t)(q - p) : 1;
		p = q ? q : "/";
	}
	if ((q = memchr(p, '?', n)))
		n = (size_t)(q - p);

	r->route = R_NOTFOUND;
	if (n == 7 && !memcmp(p, "/health", 7))
		r->route = R_HEALTH;
	else if (n == 8 && !memcmp(p, "/__stats", 8))
		r->route = R_STATS;
	else if (n == 8 && !memcmp(p, "/headers", 8))
		r->route = R_HEADERS;
	else if (n == 6 && !memcmp(p, "/close", 6))
		r->route = R_CLOSE;
	else if (prefix(p, n, "/echo", &k))
		r->route = R_ECHO;
	else if (prefix(p, n, "/cache/", &k))
		r->route = R_CACHE;
	else if (prefix(p, n, "/users/", &k))
		r->route = parse_u64(p + k, n - k, UINT64_MAX / 2, &r->arg) ? R_USERS : R_NOTFOUND;
	else if (prefix(p, n, "/bytes/", &k))
		r->route = parse_u64(p + k, n - k, MAX_GEN, &r->arg) ? R_BYTES : R_BAD;
	else if (prefix(p, n, "/chunked/", &k))
		r->route = parse_u64(p + k, n - k, MAX_GEN, &r->arg) ? R_CHUNKED : R_BAD;
	else if (prefix(p, n, "/slow/", &k))
		r->route = parse_u64(p + k, n - k, MAX_SLOW_MS, &r->arg) ? R_SLOW : R_BAD;
	else if (prefix(p, n, "/status/", &k))
		r->route = parse_u64(p + k, n - k, 599, &r->arg) && r->arg >= 200 ? R_STATUS : R_BAD;
}

/* {"method":..,"target":..,"version":..,"headers":[[name,value],..]} */
static void headers_json(struct sbuf *b, const struct hdr *rl, const struct hdr *h, size_t nh)
{
	size_t i;

	sb_add(b, S("{\"method\":"));
	sb_json_str(b, rl[0].n, rl[0].nl);
	sb_add(b, S(",\"target\":"));
	sb_json_str(b, rl[0].v, rl[0].vl);
	sb_add(b, S(",\"version\":"));
	sb_json_str(b, rl[1].n, rl[1].nl);
	sb_add(b, S(",\"headers\":["));
	for (i = 0; i < nh; i++) {
		sb_add(b, i ? ",[" : "[", i ? 2 : 1);
		sb_json_str(b, h[i].n, h[i].nl);
		sb_add(b, S(","));
		sb_json_str(b, h[i].v, h[i].vl);
		sb_add(b, S("]"));
	}
	sb_add(b, S("]}"));
}

/* Parse one complete head into c->req. Returns 0 or an HTTP error status. */
static int start_request(struct conn *c, const char *p, size_t n)
{
	struct req *r = &c->req;
	struct hdr h[MAX_HEADERS], rl[2];   /* rl: {method, target}, {version} */
	const char *q = p, *end = p + n, *line, *sp1, *sp2;
	size_t nh = 0, ll;
	bool have_cl = false, expect = false;
	uint64_t cl = 0;

	r->text.len = 0;
	r->arg = r->body_left = r->body_bytes = 0;
	r->hash = FNV_OFF;
	r->client[0] = 0;
	r->body = B_NONE;
	r->ch = CH_SIZE;
	r->delayed = false;

	/* request line: METHOD SP TARGET SP HTTP/1.x */
	line = next_line(&q, end, &ll);
	sp1 = memchr(line, ' ', ll);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line + ll - sp1 - 1)) : NULL;
	if (!sp2 || sp1 == line || sp2 == sp1 + 1 || !tokens_ok(line, (size_t)(sp1 - line)))
		return 400;
	rl[0] = (struct hdr){ line, sp1 + 1, (size_t)(sp1 - line), (size_t)(sp2 - sp1 - 1) };
	rl[1] = (struct hdr){ sp2 + 1, NULL, (size_t)(line + ll - sp2 - 1), 0 };
	if (rl[1].nl != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) || sp2[8] < '0' || sp2[8] > '9')
		return rl[1].nl >= 5 && !memcmp(sp2 + 1, "HTTP/", 5) ? 505 : 400;
	r->http10 = sp2[8] == '0';
	r->keep_alive = !r->http10;
	r->head = rl[0].nl == 4 && !memcmp(line, "HEAD", 4);

	while (q < end) {
		const char *colon, *val;
		size_t nl, vl;

		line = next_line(&q, end, &ll);
		if (ll == 0)
			break;
		colon = memchr(line, ':', ll);
		if (!colon || colon == line || !tokens_ok(line, (size_t)(colon - line)))
			return 400;     /* includes obsolete line folding */
		nl = (size_t)(colon - line);
		val = colon + 1;
		vl = ll - nl - 1;
		trim(&val, &vl);
		if (nh == MAX_HEADERS)
			return 431;
		h[nh++] = (struct hdr){ line, val, nl, vl };

		if (ieq(line, nl, "connection")) {
			if (list_has(val, vl, "close", false))
				r->keep_alive = false;
			else if (list_has(val, vl, "keep-alive", false))
				r->keep_alive = true;
		} else if (ieq(line, nl, "content-length")) {
			uint64_t x;

			if (!parse_u64(val, vl, UINT64_MAX / 2, &x) || (have_cl && x != cl))
				return 400;
			have_cl = true;
			cl = x;
		} else if (ieq(line, nl, "transfer-encoding")) {
			if (!list_has(val, vl, "chunked", true))
				return 400;
			r->body = B_CHUNKED;
		} else if (ieq(line, nl, "expect")) {
			expect = ieq(val, vl, "100-continue");
		} else if (ieq(line, nl, "x-forwarded-for")) {
			const char *last = val;
			size_t ln = vl;

			while ((colon = memchr(last, ',', ln))) {
				ln -= (size_t)(colon + 1 - last);
				last = colon + 1;
			}
			trim(&last, &ln);
			if (ln < sizeof(r->client)) {
				memcpy(r->client, last, ln);
				r->client[ln] = 0;
			}
		}
	}
	/* Transfer-Encoding wins over Content-Length, but such a connection is
	 * never reused: the sender and a proxy may disagree about framing. */
	if (r->body == B_CHUNKED && have_cl) {
		r->keep_alive = false;
	} else if (cl > 0) {
		r->body = B_LENGTH;
		r->body_left = cl;
	}
	if (expect && !r->http10 && r->body != B_NONE)
		sb_add(&c->out, S("HTTP/1.1 100 Continue\r\n\r\n"));

	route_target(r, rl[0].v, rl[0].vl);
	if (r->route == R_HEADERS)
		headers_json(&r->text, rl, h, nh);
	else if (r->route == R_CACHE || r->route == R_NOTFOUND)
		sb_json_str(&r->text, rl[0].v, rl[0].vl);
	return 0;
}

/* Consume body bytes from the input buffer. Returns 1 when the body is
 * complete, 0 when more input is needed, -1 on a framing error. */
static int consume_body(struct conn *c)
{
	struct req *r = &c->req;

	for (;;) {
		char *p = c->in + c->in_off, *nl, *hex_end;
		size_t avail = c->in_len - c->in_off, take, len, i;
		uint64_t size;

		if (r->body == B_NONE)
			return 1;
		if (r->body == B_LENGTH || r->ch == CH_DATA) {
			take = avail < r->body_left ? avail : (size_t)r->body_left;
			for (i = 0; i < take; i++)
				r->hash = (r->hash ^ (unsigned char)p[i]) * FNV_PRIME;
			r->body_bytes += take;
			r->body_left -= take;
			c->in_off += take;
			if (r->body_left)
				return 0;
			if (r->body == B_LENGTH)
				return 1;
			r->ch = CH_DATA_END;
			continue;
		}
		/* every other chunked state needs one whole line */
		if (!(nl = memchr(p, '\n', avail)))
			return avail == IN_CAP ? -1 : 0;
		len = (size_t)(nl - p);
		if (len && p[len - 1] == '\r')
			len--;
		c->in_off += (size_t)(nl + 1 - p);
		if (r->ch == CH_DATA_END) {
			if (len)
				return -1;
			r->ch = CH_SIZE;
		} else if (r->ch == CH_TRAILER) {
			if (!len)
				return 1;
		} else {
			/* hex size, then the end or a ;chunk-extension; the
			 * '\n' found above stops strtoull inside the buffer */
			size = strtoull(p, &hex_end, 16);
			if (!isxdigit((unsigned char)*p) || hex_end - p > 15 ||
			    (hex_end - p < (long)len && !strchr("; \t", *hex_end)))
				return -1;
			r->body_left = size;
			r->ch = size ? CH_DATA : CH_TRAILER;
		}
	}
}

/* ---- responses ---- */

static const char *reason(int code)
{
	static const struct { int code; const char *text; } t[] = {
		{ 200, "OK" }, { 201, "Created" }, { 202, "Accepted" }, { 204, "No Content" },
		{ 301, "Moved Permanently" }, { 302, "Found" }, { 304, "Not Modified" },
		{ 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" }, { 408, "Request Timeout" },
		{ 413, "Content Too Large" }, { 429, "Too Many Requests" },
		{ 431, "Request Header Fields Too Large" }, { 500, "Internal Server Error" },
		{ 501, "Not Implemented" }, { 502, "Bad Gateway" }, { 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" }, { 505, "HTTP Version Not Supported" },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].code == code)
			return t[i].text;
	return "Status";
}

/* ---- the seeds' application: admission and read-through cache ---- */

/* A blocking request/reply client of a service on this machine. Short
 * timeouts bound how long a dead service can stall the loop; a failure
 * drops the connection, the next call reconnects, and the application
 * goes on without the service (admits, computes) as the seed's does. */
struct svc {
	const char *name;
	struct sockaddr_in addr;
	int fd;
	bool warned;
};

static struct svc svc_rl = { "ratelimit", .fd = -1 }, svc_cache = { "cache", .fd = -1 };
static struct sbuf svc_reply;

static bool svc_init(struct svc *s, const char *text)
{
	const char *colon = strrchr(text, ':');
	char host[64];
	long port = strtol(colon ? colon + 1 : text, NULL, 10);
	size_t hl = colon ? (size_t)(colon - text) : 0;

	if (port <= 0 || port > 65535 || hl >= sizeof(host))
		return false;
	memcpy(host, text, hl);
	host[hl] = 0;
	s->addr.sin_family = AF_INET;
	s->addr.sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, hl ? host : "127.0.0.1", &s->addr.sin_addr) == 1;
}

static void svc_fail(struct svc *s)
{
	if (!s->warned && !opt.quiet)
		fprintf(stderr, "demo-backend: %s service unreachable, going on without it\n",
			s->name);
	s->warned = true;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Bytes of the first complete reply in p[0..n), 0 when incomplete. */
typedef size_t (*reply_fn)(const char *p, size_t n);

static size_t line_reply(const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);

	return nl ? (size_t)(nl - p) + 1 : 0;
}

static size_t resp_reply(const char *p, size_t n)
{
	size_t head = line_reply(p, n);
	long long len;

	if (!head || p[0] != '$' || (len = strtoll(p + 1, NULL, 10)) < 0)
		return head;
	return n >= head + (size_t)len + 2 ? head + (size_t)len + 2 : 0;
}

static bool svc_call(struct svc *s, const char *q, size_t qn, reply_fn complete)
{
	struct timeval tv = { 0, 200000 };
	int one = 1;
	ssize_t k;

	if (s->fd < 0) {
		s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s->fd < 0)
			return false;
		setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(s->fd, (struct sockaddr *)&s->addr, sizeof(s->addr)) < 0)
			goto fail;
		s->warned = false;
	}
	if (write(s->fd, q, qn) != (ssize_t)qn)
		goto fail;
	svc_reply.len = 0;
	do {
		sb_reserve(&svc_reply, 4096);
		k = read(s->fd, svc_reply.p + svc_reply.len, svc_reply.cap - svc_reply.len);
		if (k <= 0)
			goto fail;
		svc_reply.len += (size_t)k;
	} while (!complete(svc_reply.p, svc_reply.len));
	return true;
fail:
	svc_fail(s);
	return false;
}

/* "<client>\n" -> "OK\n" or "ERROR\n" on ringfront's [ratelimit] listen. */
static bool app_admit(const struct req *r)
{
	char q[80];
	int n = snprintf(q, sizeof(q), "%s\n", r->client[0] ? r->client : "unknown");

	if (!opt.ratelimit || !svc_call(&svc_rl, q, (size_t)n, line_reply))
		return true;
	return svc_reply.len >= 2 && !memcmp(svc_reply.p, "OK", 2);
}

/* GET user:<id> on ringfront's [cache] listen; the value goes into b. */
static bool app_cache_get(ull id, struct sbuf *b)
{
	char q[96], key[32];
	int kl = snprintf(key, sizeof(key), "user:%llu", id);
	int n = snprintf(q, sizeof(q), "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl, key);
	size_t head;

	if (!opt.cache || !svc_call(&svc_cache, q, (size_t)n, resp_reply) ||
	    svc_reply.p[0] != '$' || svc_reply.p[1] == '-')
		return false;
	head = line_reply(svc_reply.p, svc_reply.len);
	sb_add(b, svc_reply.p + head, svc_reply.len - head - 2);
	return true;
}

/* SET user:<id> <value> EX 300: the next read is a hit for five minutes. */
static void app_cache_set(ull id, const char *v, size_t vn)
{
	char key[32];
	int kl = snprintf(key, sizeof(key), "user:%llu", id);
	struct sbuf q = { 0 };

	if (!opt.cache)
		return;
	sb_printf(&q, "*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%zu\r\n", kl, key, vn);
	sb_add(&q, v, vn);
	sb_add(&q, S("\r\n$2\r\nEX\r\n$3\r\n300\r\n"));
	svc_call(&svc_cache, q.p, q.len, resp_reply);
	free(q.p);
}

/* /users/<id>: admission, then the cache, then the "database". */
static void render_user(const struct req *r, struct sbuf *b, int *code, const char **extra)
{
	ull id = r->arg;

	if (!app_admit(r)) {
		*code = 429;
		sb_add(b, S("{\"error\":\"rate limited\"}"));
		return;
	}
	if (app_cache_get(id, b)) {
		*extra = "X-Cache-Status: HIT\r\n";
		return;
	}
	sb_printf(b, "{\"id\":%llu,\"name\":\"user-%llu\",\"email\":"
		  "\"user%llu@example.com\",\"served_by\":\"%s\"}", id, id, id, served_by);
	if (opt.cache) {
		app_cache_set(id, b->p, b->len);
		*extra = "X-Cache-Status: MISS\r\n";
	}
}

/* The body of c->req's response into b; sets code and the extras. */
static void render_body(struct conn *c, struct sbuf *b, int *code, const char **ctype,
			const char **extra, bool *gen)
{
	struct req *r = &c->req;
	ull arg = r->arg;

	if (r->route != R_STATS && r->route != R_HEALTH && opt.fail_rate > 0 &&
	    rnd() < opt.fail_rate) {
		*code = 500;
		sb_printf(b, "{\"error\":\"injected failure\",\"served_by\":\"%s\"}", served_by);
		return;
	}
	switch (r->route) {
	case R_USERS:
		render_user(r, b, code, extra);
		break;
	case R_HEALTH:
		*code = opt.health_fail ? 503 : 200;
		sb_printf(b, "{\"status\":\"%s\"}", opt.health_fail ? "failing" : "ok");
		break;
	case R_ECHO:
		sb_printf(b, "{\"bytes\":%llu,\"sha\":\"%016llx\"}", (ull)r->body_bytes, (ull)r->hash);
		break;
	case R_BYTES:
	case R_CHUNKED:
		*ctype = "text/plain";
		*gen = true;
		break;
	case R_SLOW:
		sb_printf(b, "{\"slept_ms\":%llu}", arg);
		break;
	case R_STATUS:
		*code = (int)arg;
		sb_printf(b, "{\"status\":%d}", *code);
		break;
	case R_HEADERS:
		sb_add(b, r->text.p, r->text.len);
		break;
	case R_CLOSE:
		r->keep_alive = false;
		sb_printf(b, "{\"closing\":true,\"served_by\":\"%s\"}", served_by);
		break;
	case R_CACHE:
		*extra = "Cache-Control: max-age=60\r\n";
		sb_add(b, S("{\"path\":"));
		sb_add(b, r->text.p, r->text.len);
		sb_printf(b, ",\"seq\":%llu,\"served_by\":\"%s\"}", (ull)++cache_seq, served_by);
		break;
	case R_STATS:
		sb_printf(b, "{\"requests\":%llu,\"connections\":%llu}",
			  (ull)stat_requests, (ull)stat_conns);
		break;
	case R_BAD:
		*code = 400;
		sb_add(b, S("{\"error\":\"bad request\"}"));
		break;
	case R_NOTFOUND:
		*code = 404;
		sb_add(b, S("{\"error\":\"not found\",\"path\":"));
		sb_add(b, r->text.p, r->text.len);
		sb_add(b, S("}"));
		break;
	}
}

/* Queue the response to c->req, or its first part for a streamed body. */
static void emit(struct conn *c)
{
	struct req *r = &c->req;
	struct sbuf *out = &c->out;
	const char *ctype = "application/json", *extra = "";
	bool gen = false, chunked, nobody;
	int code = 200;
	uint64_t len;

	if (r->route != R_STATS)
		stat_requests++;
	scratch.len = 0;
	render_body(c, &scratch, &code, &ctype, &extra, &gen);
	/* HTTP/1.0 cannot take chunked framing: it gets a Content-Length */
	chunked = r->route == R_CHUNKED && gen && !r->http10;
	len = gen ? r->arg : scratch.len;
	nobody = code == 204 || code == 304;   /* no body, no length: RFC 9110 */
	sb_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", code, reason(code), ctype);
	if (chunked && !nobody)
		sb_add(out, S("Transfer-Encoding: chunked\r\n"));
	else if (!nobody)
		sb_printf(out, "Content-Length: %llu\r\n", (ull)len);
	sb_printf(out, "X-Handled-By: %s\r\n%s%s\r\n", served_by, extra,
		  !r->keep_alive ? "Connection: close\r\n" :
		  r->http10 ? "Connection: keep-alive\r\n" : "");
	if (!r->head && !nobody && gen) {
		c->gen_active = chunked || len > 0;
		c->gen_chunked = chunked;
		c->gen_left = len;
		c->gen_pos = 0;
	} else if (!r->head && !nobody) {
		sb_add(out, scratch.p, scratch.len);
	}
	if (!r->keep_alive)
		c->closing = true;
	if (r->text.cap > OUT_KEEP) {
		free(r->text.p);
		r->text = (struct sbuf){ 0 };
	}
}

/* Append the next piece of a streamed body: raw, or 1000-byte chunks. */
static void gen_fill(struct conn *c)
{
	struct sbuf *out = &c->out;
	char hdr[24];

	while (c->gen_active && out->len < OUT_HIGH) {
		size_t n = c->gen_left < OUT_HIGH ? (size_t)c->gen_left : OUT_HIGH;

		if (c->gen_chunked && n == 0) {
			sb_add(out, S("0\r\n\r\n"));
			c->gen_active = false;
			return;
		}
		if (c->gen_chunked) {
			n = n < CHUNK_MAX ? n : CHUNK_MAX;
			sb_add(out, hdr, (size_t)snprintf(hdr, sizeof(hdr), "%zx\r\n", n));
		}
		sb_add(out, pattern + c->gen_pos % 26, n);
		if (c->gen_chunked)
			sb_add(out, S("\r\n"));
		c->gen_pos += n;
		c->gen_left -= n;
		if (!c->gen_left && !c->gen_chunked)
			c->gen_active = false;
	}
}

/* Answer a broken request with code and close the connection after it. */
static void error_response(struct conn *c, int code)
{
	c->req.route = R_STATUS;
	c->req.arg = (uint64_t)code;
	c->req.keep_alive = false;
	c->req.head = false;
	c->st = ST_HEAD;
	c->broken = true;
	emit(c);
}

/* ---- connection state machine ---- */

static void conn_close(struct conn *c)
{
	timer_del(c);
	close(c->fd);
	free(c->in);
	free(c->out.p);
	free(c->req.text.p);
	free(c);
}

/* Each step returns 1 on progress, 0 when blocked, -1 to drop the conn. */
static int conn_read(struct conn *c)
{
	size_t room;
	ssize_t n;

	if (!c->rd_ready || c->rd_eof)
		return 0;
	if (c->st == ST_LINGER)
		c->in_off = c->in_len = 0;
	if (c->in_off) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (!(room = IN_CAP - c->in_len))
		return 0;
	n = recv(c->fd, c->in + c->in_len, room, 0);
	if (n > 0) {
		c->in_len += (size_t)n;
		/* A short read drained the socket and new data is a new edge;
		 * but a FIN that epoll already reported brings no new edge. */
		c->rd_ready = (size_t)n == room || c->rd_hup;
		return 1;
	}
	if (n == 0) {
		c->rd_eof = true;
		return 1;
	}
	if (errno != EAGAIN && errno != EINTR)
		return -1;
	c->rd_ready = errno == EINTR;
	return 0;
}

static int conn_process(struct conn *c)
{
	struct req *r = &c->req;
	size_t avail, hl, before;
	uint64_t delay;
	int prog = 0, rc;

	for (;;) {
		switch (c->st) {
		case ST_HEAD:
			if (c->closing || c->gen_active || c->out.len - c->out_off >= OUT_HIGH)
				return prog;
			/* tolerate stray CRLFs between requests */
			while (c->in_off < c->in_len && strchr("\r\n", c->in[c->in_off]))
				c->in_off++, prog = 1;
			if (!(avail = c->in_len - c->in_off))
				return prog;
			if (!(hl = head_len(c->in + c->in_off, avail))) {
				if (avail < IN_CAP)
					return prog;
				c->in_off = c->in_len;
				error_response(c, 431);
				return 1;
			}
			rc = start_request(c, c->in + c->in_off, hl);
			c->in_off += hl;
			prog = 1;
			if (rc)
				error_response(c, rc);
			else
				c->st = ST_BODY;
			break;
		case ST_BODY:
			before = c->in_off;
			rc = consume_body(c);
			prog |= c->in_off != before;
			if (rc < 0) {
				error_response(c, 400);
				return 1;
			}
			if (!rc)
				return prog;
			c->st = ST_READY;
			break;
		case ST_READY:
			delay = r->route == R_STATS ? 0 : opt.delay_ms;
			if (r->route == R_SLOW)
				delay += r->arg;
			if (delay && !r->delayed) {
				/* send what is queued first, then start the clock */
				if (c->out.len > c->out_off || c->gen_active)
					return prog;
				r->delayed = true;
				c->st = ST_WAIT;
				timer_add(c, now_ms() + delay);
				return 1;
			}
			emit(c);
			c->st = ST_HEAD;
			prog = 1;
			break;
		case ST_WAIT:
		case ST_LINGER:
			return prog;
		}
	}
}

static int conn_write(struct conn *c)
{
	struct sbuf *out = &c->out;
	size_t want;
	ssize_t n;
	int prog = 0;

	if (c->gen_active && out->len - c->out_off < OUT_HIGH / 4) {
		if (c->out_off) {
			memmove(out->p, out->p + c->out_off, out->len - c->out_off);
			out->len -= c->out_off;
			c->out_off = 0;
		}
		gen_fill(c);
		prog = 1;
	}
	want = out->len - c->out_off;
	if (!want || !c->wr_ready)
		return prog;
	n = send(c->fd, out->p + c->out_off, want, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		c->wr_ready = errno == EINTR;
		return prog;
	}
	c->wr_ready = (size_t)n == want;   /* a short write filled the socket */
	c->out_off += (size_t)n;
	if (c->out_off == out->len) {
		c->out_off = out->len = 0;
		if (out->cap > OUT_KEEP) {
			free(out->p);
			*out = (struct sbuf){ 0 };
		}
	}
	return 1;
}

/* Read, parse, answer and write until the connection has to wait. */
static void conn_run(struct conn *c)
{
	for (;;) {
		int prog = 0, rc, pending = 0;
		bool idle;

		if ((rc = conn_read(c)) < 0)
			break;
		prog |= rc;
		if (c->st == ST_LINGER) {
			if (c->rd_eof)
				break;
			if (!prog)
				return;
			continue;
		}
		if ((rc = conn_process(c)) < 0)
			break;
		prog |= rc;
		if ((rc = conn_write(c)) < 0)
			break;
		prog |= rc;

		idle = c->out.len == c->out_off && !c->gen_active;
		if (idle && c->closing) {
			/* Unread input makes close() send a RST that can destroy
			 * the response before the peer read it: half-close and
			 * drain the input for a while instead. */
			if (c->rd_eof || (!c->broken && c->in_off == c->in_len &&
					  (ioctl(c->fd, FIONREAD, &pending) < 0 || !pending)))
				break;
			shutdown(c->fd, SHUT_WR);
			timer_add(c, now_ms() + LINGER_MS);
			c->st = ST_LINGER;
			continue;
		}
		if (!prog) {
			/* the peer is gone and nothing is left to answer */
			if (idle && c->rd_eof && (c->st == ST_HEAD || c->st == ST_BODY))
				break;
			return;
		}
	}
	conn_close(c);
}

/* ---- event loop ---- */

static void do_accept(void)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
		struct conn *c;

		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0 && (errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
			/* out of fds: shed one pending connection rather than spin */
			close(spare_fd);
			if ((fd = accept(listen_fd, NULL, NULL)) >= 0)
				close(fd);
			spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			continue;
		}
		if (fd < 0)
			return;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if ((c = calloc(1, sizeof(*c))))
			c->in = malloc(IN_CAP);
		if (!c || !c->in) {
			free(c);
			close(fd);
			continue;
		}
		c->tag.kind = K_CONN;
		c->fd = fd;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			conn_close(c);
			continue;
		}
		stat_conns++;
	}
}

static void run_timers(void)
{
	uint64_t now = now_ms();

	while (timers_head && timers_head->deadline <= now) {
		struct conn *c = timers_head;

		timer_del(c);
		if (c->st == ST_WAIT) {
			c->st = ST_READY;
			conn_run(c);
		} else {
			conn_close(c);  /* the linger is over */
		}
	}
}

static int next_timeout(void)
{
	uint64_t now = now_ms();

	if (!timers_head)
		return -1;
	return timers_head->deadline <= now ? 0 : (int)(timers_head->deadline - now);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: demo-backend --port N [--host A] [--delay-ms N] [--fail-rate F]\n"
		"                    [--health-fail] [--quiet] [--ratelimit HOST:PORT]\n"
		"                    [--cache HOST:PORT]\n"
		"  --fail-rate F answers that share of requests with 500 (never /health\n"
		"  or /__stats); the sequence is deterministic for a given port.\n"
		"  --ratelimit asks a line-protocol limiter (\"<client>\\n\" -> OK|ERROR)\n"
		"  before /users/<id>; --cache reads /users/<id> through a Redis-protocol\n"
		"  cache (X-Cache-Status: HIT|MISS).\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'h' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "fail-rate", required_argument, NULL, 'f' },
		{ "health-fail", no_argument, NULL, 'H' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "ratelimit", required_argument, NULL, 'r' },
		{ "cache", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	char *end = NULL;
	long v;
	int o;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (o == 'p' && (v = strtol(optarg, &end, 10)) > 0 && v < 65536 && !*end)
			opt.port = (int)v;
		else if (o == 'h')
			opt.host = optarg;
		else if (o == 'd' && (v = strtol(optarg, &end, 10)) >= 0 &&
			 (uint64_t)v <= MAX_SLOW_MS && !*end)
			opt.delay_ms = (uint64_t)v;
		else if (o == 'f' && (opt.fail_rate = strtod(optarg, &end)) >= 0 &&
			 opt.fail_rate <= 1 && !*end)
			continue;
		else if (o == 'H')
			opt.health_fail = true;
		else if (o == 'q')
			opt.quiet = true;
		else if (o == 'r' && svc_init(&svc_rl, optarg))
			opt.ratelimit = optarg;
		else if (o == 'c' && svc_init(&svc_cache, optarg))
			opt.cache = optarg;
		else
			usage();
	}
	if (!opt.port || optind != argc)
		usage();
}

static int open_listener(void)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai;
	char port[8];
	int fd, one = 1, rc;

	snprintf(port, sizeof(port), "%d", opt.port);
	if ((rc = getaddrinfo(opt.host, port, &hints, &ai))) {
		fprintf(stderr, "demo-backend: %s: %s\n", opt.host, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "demo-backend: cannot listen on %s:%d: %s\n",
			opt.host, opt.port, strerror(errno));
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

int main(int argc, char **argv)
{
	struct epoll_event evs[256], ev = { .events = EPOLLIN };
	sigset_t mask;
	int sfd, i, n;

	parse_args(argc, argv);
	snprintf(served_by, sizeof(served_by), "app-server-%d", opt.port);
	rng = (uint64_t)opt.port * 0x9E3779B97F4A7C15ULL | 1;
	for (i = 0; i < (int)sizeof(pattern); i++)
		pattern[i] = (char)('a' + i % 26);

	/* a parent shell may have left SIGINT ignored: take it via signalfd */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

	if ((listen_fd = open_listener()) < 0)
		return 1;
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.ptr = &listen_tag;
	if (ep < 0 || sfd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev) < 0) {
		perror("demo-backend: epoll/signalfd");
		return 1;
	}
	ev.data.ptr = &signal_tag;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	if (!opt.quiet)
		fprintf(stderr, "demo-backend listening on %s:%d\n", opt.host, opt.port);

	for (;;) {
		n = epoll_wait(ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), next_timeout());
		if (n < 0 && errno != EINTR) {
			perror("demo-backend: epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++) {
			struct tag *tg = evs[i].data.ptr;
			struct conn *c = (struct conn *)tg;
			uint32_t e = evs[i].events;

			if (tg->kind == K_LISTEN) {
				do_accept();
				continue;
			}
			if (tg->kind == K_SIGNAL) {
				if (!opt.quiet)
					fprintf(stderr, "demo-backend on port %d: %llu requests, "
						"%llu connections, exiting\n", opt.port,
						(ull)stat_requests, (ull)stat_conns);
				return 0;
			}
			if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				c->rd_ready = true;
			if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				c->rd_hup = true;
			if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
				c->wr_ready = true;
			conn_run(c);
		}
		run_timers();
	}
}
