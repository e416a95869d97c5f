/* resp.h - the Redis-protocol port over the cache store: a resumable,
 * bounded RESP2 + inline command parser and an executor that writes RESP
 * replies into a bounded output buffer (resp.c: session, parser, output;
 * resp_cmd.c: the commands).
 *
 * Inline commands (a line of words, as telnet and seed 000's clients send
 * them: "GET k\n", "SET k v\n", "DEL k\n") are answered in RESP like real
 * Redis: "$-1\r\n" for a missing key rather than "NIL", "+OK\r\n" for SET,
 * ":1\r\n" for DEL. redis-cli and redis-benchmark need exactly that.
 *
 * Flow for one client connection (one session, on one worker):
 *   resp_feed()    copy received bytes in (takes less when the input buffer
 *                  is at its limit: feed the rest after processing);
 *   resp_process() run the buffered commands;
 *   resp_out()     send the reply bytes, then resp_out_consumed().
 * Do not call resp_process() or resp_feed() while a send of the output
 * buffer is in flight: the buffer may move when it grows. */
#ifndef RF_RESP_H
#define RF_RESP_H

#include <stddef.h>
#include <stdint.h>
#include "cache.h"

struct resp_limits {
	uint64_t max_bulk;      /* largest bulk string: the cache's max_object_size */
	uint32_t max_args;      /* elements of one command array */
	uint64_t max_query;     /* input bytes buffered; one command must fit */
	uint64_t max_out;       /* reply bytes buffered before the caller must send */
};

/* Limits derived from the cache's max_object_size: 1M arguments, input of
 * 2 * max_object + 1m, output of 2 * max_object + 64k. */
void resp_limits_default(struct resp_limits *lim, uint64_t max_object);

enum resp_status {
	RESP_NEED_INPUT = 0,    /* all buffered commands done: receive more */
	RESP_OUT_FULL,          /* send the output, then call resp_process() again */
	RESP_BLOCKED,           /* a write waits for another worker's shard: call
				 * resp_process() again when this worker is woken */
	RESP_CLOSE,             /* QUIT or a protocol error: send the output, close */
};

struct resp_arg {
	uint32_t off;           /* from the start of the current command */
	uint32_t len;
};

/* Private to resp*.c, in the header so a connection can embed it. */
struct resp_sess {
	struct cache *c;
	int worker;
	struct resp_limits lim;

	char *in;               /* owned: received bytes, command at in_pos */
	size_t in_pos, in_len, in_cap;
	uint8_t ps;             /* parser state */
	uint8_t ready;          /* a parsed command waits to run (output was full) */
	uint8_t closing;        /* close once the output is sent */
	uint8_t oflow;          /* the reply being written did not fit */
	uint32_t nexpect;       /* elements of the current array */
	uint32_t nargs;
	int64_t bulk;           /* length of the bulk string being read */
	size_t pos;             /* parse position from in_pos */
	struct resp_arg *args;  /* owned, args_cap */
	uint32_t args_cap;

	char *out;              /* owned: replies not yet sent */
	size_t out_len, out_cap;

	struct cache_req **pend;        /* owned: writes of the blocked command */
	uint32_t npend, pend_cap;
	uint8_t fin;            /* how to answer once they are done */
};

/* Set up a session of worker <w> over <c>. Returns 0 or -ENOMEM. */
int resp_init(struct resp_sess *s, struct cache *c, int w, const struct resp_limits *lim);

/* Free buffers; writes still queued at other shards are abandoned (their
 * owners free them). */
void resp_free(struct resp_sess *s);

/* Copy up to <n> received bytes. Returns how many were taken. */
size_t resp_feed(struct resp_sess *s, const char *p, size_t n);

/* Run buffered commands at <now_ms> (wall clock). Returns enum resp_status. */
int resp_process(struct resp_sess *s, int64_t now_ms);

static inline const char *resp_out(const struct resp_sess *s, size_t *len)
{
	*len = s->out_len;
	return s->out;
}

/* <n> output bytes were sent. */
void resp_out_consumed(struct resp_sess *s, size_t n);

/* ---- shared by resp.c and resp_cmd.c ---- */

enum { RESP__DONE = 0, RESP__BLOCKED, RESP__CLOSE };

const char *resp__arg(const struct resp_sess *s, uint32_t i, size_t *len);
int resp__exec(struct resp_sess *s, int64_t now_ms);      /* RESP__* */
void resp__finish(struct resp_sess *s);                   /* answer a completed block */

void resp__raw(struct resp_sess *s, const char *p, size_t n);
void resp__status(struct resp_sess *s, const char *msg);  /* +msg */
void resp__err(struct resp_sess *s, const char *msg);     /* -msg (sanitized) */
void resp__int(struct resp_sess *s, int64_t v);
void resp__bulk(struct resp_sess *s, const char *p, size_t n);
void resp__nil(struct resp_sess *s);
void resp__array(struct resp_sess *s, uint64_t n);

#endif
