/* resp.c - RESP sessions (see resp.h): bounded input and output buffers,
 * the resumable RESP2 / inline parser, and the process loop. The commands
 * themselves are in resp_cmd.c. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "common.h"
#include "resp.h"

#define IN_INITIAL     (16u << 10)
#define OUT_INITIAL    (16u << 10)
#define LINE_MAX_LEN   (64u << 10)  /* "*N" / "$N" lines and inline commands (Redis: 64k) */
#define OUT_RESERVE    256          /* room every command may use without checking */

enum { PS_START = 0, PS_BULKLEN, PS_BULKDATA };

void resp_limits_default(struct resp_limits *lim, uint64_t max_object)
{
	lim->max_bulk = max_object;
	lim->max_args = 1024 * 1024;
	lim->max_query = 2 * max_object + (1u << 20);
	lim->max_out = 2 * max_object + (64u << 10);
}

int resp_init(struct resp_sess *s, struct cache *c, int w, const struct resp_limits *lim)
{
	memset(s, 0, sizeof *s);
	s->c = c;
	s->worker = w;
	s->lim = *lim;
	if (s->lim.max_query > UINT32_MAX)
		s->lim.max_query = UINT32_MAX;   /* argument offsets are 32-bit */
	s->in_cap = RF_MIN(IN_INITIAL, s->lim.max_query);
	s->out_cap = RF_MIN(OUT_INITIAL, s->lim.max_out);
	s->in = malloc(s->in_cap);     /* owner: the session */
	s->out = malloc(s->out_cap);   /* owner: the session */
	if (!s->in || !s->out) {
		resp_free(s);
		return -ENOMEM;
	}
	return 0;
}

void resp_free(struct resp_sess *s)
{
	uint32_t i;

	for (i = 0; i < s->npend; i++)
		cache_req_abandon(s->pend[i]);
	rf_free(&s->pend);
	s->npend = 0;
	rf_free(&s->in);
	rf_free(&s->out);
	rf_free(&s->args);
}

size_t resp_feed(struct resp_sess *s, const char *p, size_t n)
{
	size_t room, cap;
	char *nb;

	if (s->in_pos && s->in_pos == s->in_len) {
		s->in_pos = s->in_len = 0;
	} else if (s->in_pos && s->in_len + n > s->in_cap) {
		/* argument offsets are relative to in_pos: moving is safe */
		memmove(s->in, s->in + s->in_pos, s->in_len - s->in_pos);
		s->in_len -= s->in_pos;
		s->in_pos = 0;
	}
	if (s->in_len + n > s->in_cap && s->in_cap < s->lim.max_query) {
		cap = s->in_cap;
		while (cap < s->in_len + n && cap < s->lim.max_query)
			cap *= 2;
		cap = RF_MIN(cap, s->lim.max_query);
		nb = realloc(s->in, cap);
		if (nb) {
			s->in = nb;
			s->in_cap = cap;
		}
	}
	room = s->in_cap - s->in_len;
	n = RF_MIN(n, room);
	memcpy(s->in + s->in_len, p, n);
	s->in_len += n;
	return n;
}

void resp_out_consumed(struct resp_sess *s, size_t n)
{
	if (n >= s->out_len) {
		s->out_len = 0;
		return;
	}
	memmove(s->out, s->out + n, s->out_len - n);
	s->out_len -= n;
}

/* ---- output ---- */

/* Make room for <n> more bytes, up to max_out; else flag the reply. */
static int out_room(struct resp_sess *s, size_t n)
{
	size_t cap;
	char *nb;

	if (s->oflow)
		return 0;
	if (s->out_len + n <= s->out_cap)
		return 1;
	if (s->out_len + n > s->lim.max_out) {
		s->oflow = 1;
		return 0;
	}
	for (cap = s->out_cap; cap < s->out_len + n; cap *= 2)
		;
	cap = RF_MIN(cap, s->lim.max_out);
	nb = realloc(s->out, cap);
	if (!nb) {
		s->oflow = 1;
		return 0;
	}
	s->out = nb;
	s->out_cap = cap;
	return 1;
}

void resp__raw(struct resp_sess *s, const char *p, size_t n)
{
	if (!out_room(s, n))
		return;
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

static void out_line(struct resp_sess *s, char type, long long v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof tmp, "%c%lld\r\n", type, v);

	resp__raw(s, tmp, (size_t)n);
}

void resp__status(struct resp_sess *s, const char *msg)
{
	resp__raw(s, "+", 1);
	resp__raw(s, msg, strlen(msg));
	resp__raw(s, "\r\n", 2);
}

/* An error line must stay one line: control bytes from the client's own
 * input (echoed in "unknown command") become spaces. */
void resp__err(struct resp_sess *s, const char *msg)
{
	size_t i, n = strlen(msg);

	if (!out_room(s, n + 3))
		return;
	s->out[s->out_len++] = '-';
	for (i = 0; i < n; i++)
		s->out[s->out_len++] = (unsigned char)msg[i] < ' ' ? ' ' : msg[i];
	s->out[s->out_len++] = '\r';
	s->out[s->out_len++] = '\n';
}

void resp__int(struct resp_sess *s, int64_t v)
{
	out_line(s, ':', (long long)v);
}

void resp__bulk(struct resp_sess *s, const char *p, size_t n)
{
	out_line(s, '$', (long long)n);
	resp__raw(s, p, n);
	resp__raw(s, "\r\n", 2);
}

void resp__nil(struct resp_sess *s)
{
	resp__raw(s, "$-1\r\n", 5);
}

void resp__array(struct resp_sess *s, uint64_t n)
{
	out_line(s, '*', (long long)n);
}

/* ---- parser ---- */

const char *resp__arg(const struct resp_sess *s, uint32_t i, size_t *len)
{
	*len = s->args[i].len;
	return s->in + s->in_pos + s->args[i].off;
}

/* Protocol errors end the connection, as in Redis: the stream can no
 * longer be framed. */
static int proto_error(struct resp_sess *s, const char *msg)
{
	char buf[128];

	snprintf(buf, sizeof buf, "ERR Protocol error: %s", msg);
	s->oflow = 0;
	resp__err(s, buf);
	s->closing = 1;
	s->ps = PS_START;
	s->in_pos = s->in_len;   /* drop the rest of the input */
	return -EBADMSG;
}

static int push_arg(struct resp_sess *s, size_t off, size_t len)
{
	struct resp_arg *na;
	uint32_t cap;

	if (s->nargs == s->args_cap) {
		cap = s->args_cap ? s->args_cap * 2 : 16;
		na = realloc(s->args, cap * sizeof *na);   /* owner: the session */
		if (!na)
			return -ENOMEM;
		s->args = na;
		s->args_cap = cap;
	}
	s->args[s->nargs].off = (uint32_t)off;
	s->args[s->nargs].len = (uint32_t)len;
	s->nargs++;
	return 0;
}

/* A "*N" / "$N" header line at <pos>: its value and the offset after its
 * CRLF. Returns 1, 0 when incomplete, -EBADMSG (message already set). */
static int header_line(struct resp_sess *s, size_t pos, int64_t *val, size_t *next,
		       const char *what)
{
	const char *b = s->in + s->in_pos, *p, *cr;
	size_t avail = s->in_len - s->in_pos;
	int64_t v = 0;
	int neg = 0;

	cr = memchr(b + pos, '\r', avail - pos);
	if (!cr) {
		if (avail - pos > LINE_MAX_LEN) {
			char m[64];

			snprintf(m, sizeof m, "too big %s count string", what);
			return proto_error(s, m);
		}
		return 0;
	}
	if ((size_t)(cr - b) + 1 >= avail)
		return 0;   /* the '\n' has not arrived */
	if (cr[1] != '\n')
		return proto_error(s, "expected CRLF");
	p = b + pos + 1;
	if (p < cr && *p == '-') {
		neg = 1;
		p++;
	}
	if (p == cr || cr - p > 18)
		goto bad;
	for (; p < cr; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		v = v * 10 + (*p - '0');
	}
	*val = neg ? -v : v;
	*next = (size_t)(cr - b) + 2;
	return 1;
bad:
	{
		char m[64];

		snprintf(m, sizeof m, "invalid %s length", what);
		return proto_error(s, m);
	}
}

/* Split an inline line in place: words, "double quoted" with \n \r \t \b
 * \a \\ \" \xHH escapes, 'single quoted' with \'. Unquoting only shrinks a
 * word, so it is rewritten over itself. */
static int split_inline(struct resp_sess *s, size_t p, size_t end)
{
	char *b = s->in + s->in_pos;
	size_t ws, w;

	while (p < end) {
		while (p < end && (b[p] == ' ' || b[p] == '\t' || b[p] == '\r'))
			p++;
		if (p == end)
			break;
		ws = w = p;
		if (b[p] != '"' && b[p] != '\'') {
			while (p < end && b[p] != ' ' && b[p] != '\t' && b[p] != '\r')
				p++;
			w = p;
		} else {
			char q = b[p++];

			for (;;) {
				if (p >= end)
					return proto_error(s, "unbalanced quotes in request");
				if (b[p] == q) {
					p++;
					break;
				}
				if (b[p] == '\\' && p + 1 < end && q == '\'') {
					/* single quotes only know \' */
					b[w++] = b[p + 1] == '\'' ? '\'' : '\\';
					p += b[p + 1] == '\'' ? 2 : 1;
				} else if (b[p] == '\\' && p + 3 < end && b[p + 1] == 'x' &&
					   isxdigit((unsigned char)b[p + 2]) &&
					   isxdigit((unsigned char)b[p + 3])) {
					char hx[3] = { b[p + 2], b[p + 3], 0 };

					b[w++] = (char)strtol(hx, NULL, 16);
					p += 4;
				} else if (b[p] == '\\' && p + 1 < end) {
					char c = b[p + 1];

					b[w++] = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' :
						 c == 'b' ? '\b' : c == 'a' ? '\a' : c;
					p += 2;
				} else {
					b[w++] = b[p++];
				}
			}
			/* a closing quote must end the word */
			if (p < end && b[p] != ' ' && b[p] != '\t' && b[p] != '\r')
				return proto_error(s, "unbalanced quotes in request");
		}
		if (push_arg(s, ws, w - ws))
			return proto_error(s, "out of memory");
	}
	return 0;
}

/* Parse the next command from in_pos, resuming where the last call
 * stopped. Returns 1 with args set and s->pos = its length, 0 when more
 * input is needed, 2 for an empty command (skipped), -EBADMSG. */
static int parse_command(struct resp_sess *s)
{
	const char *b = s->in + s->in_pos, *nl;
	size_t avail = s->in_len - s->in_pos, next;
	int64_t v;
	int rc;

	if (s->ps == PS_START) {
		if (!avail)
			return 0;
		s->nargs = 0;
		if (b[0] != '*') {
			nl = memchr(b, '\n', avail);
			if (!nl) {
				if (avail > LINE_MAX_LEN)
					return proto_error(s, "too big inline request");
				return 0;
			}
			s->pos = (size_t)(nl - b) + 1;
			rc = split_inline(s, 0, (size_t)(nl - b));
			if (rc)
				return rc;
			return s->nargs ? 1 : 2;
		}
		rc = header_line(s, 0, &v, &next, "multibulk");
		if (rc <= 0)
			return rc;
		if (v > (int64_t)s->lim.max_args)
			return proto_error(s, "invalid multibulk length");
		s->pos = next;
		if (v <= 0)
			return 2;   /* "*0" and "*-1" are nothing, as in Redis */
		s->nexpect = (uint32_t)v;
		s->ps = PS_BULKLEN;
	}
	while (s->nargs < s->nexpect) {
		if (s->ps == PS_BULKLEN) {
			if (s->pos >= avail)
				return 0;
			if (b[s->pos] != '$') {
				char m[48];

				snprintf(m, sizeof m, "expected '$', got '%c'",
					 (unsigned char)b[s->pos] >= ' ' && b[s->pos] != 0x7f ?
					 b[s->pos] : '?');
				return proto_error(s, m);
			}
			rc = header_line(s, s->pos, &v, &next, "bulk");
			if (rc <= 0)
				return rc;
			if (v < 0 || (uint64_t)v > s->lim.max_bulk)
				return proto_error(s, "invalid bulk length");
			s->bulk = v;
			s->pos = next;
			s->ps = PS_BULKDATA;
		}
		if (avail - s->pos < (uint64_t)s->bulk + 2)
			return 0;
		if (b[s->pos + s->bulk] != '\r' || b[s->pos + s->bulk + 1] != '\n')
			return proto_error(s, "expected CRLF after bulk data");
		if (push_arg(s, s->pos, (size_t)s->bulk))
			return proto_error(s, "out of memory");
		s->pos += (size_t)s->bulk + 2;
		s->ps = PS_BULKLEN;
	}
	s->ps = PS_START;
	return 1;
}

static int all_done(const struct resp_sess *s)
{
	uint32_t i;

	for (i = 0; i < s->npend; i++)
		if (!cache_req_done(s->pend[i]))
			return 0;
	return 1;
}

int resp_process(struct resp_sess *s, int64_t now_ms)
{
	size_t mark;
	int rc;

	if (s->npend) {
		if (!all_done(s))
			return RESP_BLOCKED;
		resp__finish(s);
	}
	for (;;) {
		if (s->closing)
			return RESP_CLOSE;
		/* every command may write OUT_RESERVE bytes unchecked: writes
		 * (SET, INCR...) must never need a retry once applied */
		if (s->out_len && s->out_len + OUT_RESERVE > s->lim.max_out)
			return RESP_OUT_FULL;
		if (!s->ready) {
			rc = parse_command(s);
			if (rc < 0)
				return RESP_CLOSE;
			if (rc == 0) {
				/* a command that cannot fit the input buffer never will */
				if (s->in_pos == 0 && s->in_len >= s->lim.max_query) {
					proto_error(s, "command larger than the input limit");
					return RESP_CLOSE;
				}
				return RESP_NEED_INPUT;
			}
			if (rc == 2) {
				s->in_pos += s->pos;
				continue;
			}
			s->ready = 1;
		}
		mark = s->out_len;
		s->oflow = 0;
		rc = resp__exec(s, now_ms);
		if (s->oflow) {
			/* only reads produce large replies: undo and retry after a flush */
			s->out_len = mark;
			s->oflow = 0;
			if (mark && rc == RESP__DONE)
				return RESP_OUT_FULL;
			resp__err(s, "ERR reply larger than the output limit");
		}
		s->ready = 0;
		s->in_pos += s->pos;
		cache_count_command(s->c, s->worker);
		if (rc == RESP__CLOSE)
			s->closing = 1;
		if (rc == RESP__BLOCKED)
			return RESP_BLOCKED;
	}
}
