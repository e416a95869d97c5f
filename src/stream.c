/* stream.c - the byte-stream machinery shared by client connections and
 * backend links: reference-counted chunks and segments, moving bytes
 * between queues without copying, multishot receive with flow control,
 * batched sends, head accumulation across receives, and body framing. */
#include <errno.h>
#include "common.h"
#include "cache.h"
#include "io.h"
#include "worker.h"

struct chunk *chunk_get(struct worker *w)
{
	struct chunk *ck = pool_get_raw(&w->chunk_pool);

	if (!ck)
		return NULL;
	ck->refs = 1;
	ck->cap = (uint32_t)(w->chunk_pool.size - sizeof(*ck));
	ck->heap = 0;
	return ck;
}

void chunk_put(struct worker *w, struct chunk *ck)
{
	if (--ck->refs)
		return;
	if (ck->heap)
		free(ck);
	else
		pool_put(&w->chunk_pool, ck);
}

/* A heap chunk holding a copy of <p, len>, for responses larger than a
 * pooled chunk (admin API). Returns NULL when memory is exhausted. */
struct chunk *chunk_from_bytes(const char *p, size_t len)
{
	struct chunk *ck;

	if (len >= (1u << 31))
		return NULL;
	ck = malloc(sizeof(*ck) + len);
	if (!ck)
		return NULL;
	ck->refs = 1;
	ck->cap = (uint32_t)len;
	ck->heap = 1;
	memcpy(ck->data, p, len);
	return ck;
}

void seg_release(struct worker *w, struct seg *sg)
{
	if (sg->bid >= 0)
		bufring_unref(&w->bufs, sg->bid);
	if (sg->ck)
		chunk_put(w, sg->ck);
	if (sg->ent)
		cache_entry_release(sg->ent);
	pool_put(&w->seg_pool, sg);
}

/* A segment taking over the caller's reference on its memory (a buffer,
 * a chunk or a cache entry); without a node the reference is dropped. */
static struct seg *seg_new(struct worker *w, const char *p, uint32_t len,
			   int32_t bid, struct chunk *ck, const struct cache_entry *ent)
{
	struct seg *sg = pool_get_raw(&w->seg_pool);

	if (!sg) {
		if (bid >= 0)
			bufring_unref(&w->bufs, bid);
		if (ck)
			chunk_put(w, ck);
		if (ent)
			cache_entry_release(ent);
		return NULL;
	}
	sg->next = NULL;
	sg->p = p;
	sg->len = len;
	sg->bid = bid;
	sg->ck = ck;
	sg->ent = ent;
	return sg;
}

static int segq_append(struct segq *q, struct seg *sg)
{
	if (!sg)
		return -ENOMEM;
	if (q->tail)
		q->tail->next = sg;
	else
		q->head = sg;
	q->tail = sg;
	q->n++;
	q->bytes += sg->len;
	return 0;
}

/* Append bytes of a held cache entry; the reference moves to the segment.
 * Returns 0 or -ENOMEM (the reference is then dropped). */
int segq_push_entry(struct worker *w, struct segq *q, const char *p, uint32_t len,
		    const struct cache_entry *e)
{
	return segq_append(q, seg_new(w, p, len, -1, NULL, e));
}

/* Append a segment that takes over the caller's reference on its memory.
 * Returns 0, or -ENOMEM (the reference is then dropped). */
int segq_push(struct worker *w, struct segq *q, const char *p, uint32_t len,
	      int32_t bid, struct chunk *ck)
{
	return segq_append(q, seg_new(w, p, len, bid, ck, NULL));
}

int segq_push_front(struct worker *w, struct segq *q, const char *p,
		    uint32_t len, int32_t bid, struct chunk *ck)
{
	struct seg *sg = seg_new(w, p, len, bid, ck, NULL);

	if (!sg)
		return -ENOMEM;
	sg->next = q->head;
	q->head = sg;
	if (!q->tail)
		q->tail = sg;
	q->n++;
	q->bytes += len;
	return 0;
}

static void segq_pop(struct worker *w, struct segq *q)
{
	struct seg *sg = q->head;

	q->head = sg->next;
	if (!q->head)
		q->tail = NULL;
	q->n--;
	q->bytes -= sg->len;
	seg_release(w, sg);
}

void segq_consume(struct worker *w, struct segq *q, uint32_t n)
{
	while (n && q->head) {
		struct seg *sg = q->head;

		if (n < sg->len) {
			sg->p += n;
			sg->len -= n;
			q->bytes -= n;
			return;
		}
		n -= sg->len;
		segq_pop(w, q);
	}
}

void segq_clear(struct worker *w, struct segq *q)
{
	while (q->head)
		segq_pop(w, q);
}

static void seg_add_ref(struct worker *w, const struct seg *sg)
{
	if (sg->bid >= 0)
		bufring_ref(&w->bufs, sg->bid);
	if (sg->ck)
		sg->ck->refs++;
	if (sg->ent)
		cache_entry_hold(sg->ent);
}

/* Move up to <max> bytes from the front of <from> to the back of <to>.
 * Whole segments move as they are; a split one gains a reference.
 * Returns the bytes moved (fewer than asked only when memory ran out). */
uint32_t segq_move(struct worker *w, struct segq *from, struct segq *to,
		   uint32_t max)
{
	uint32_t moved = 0;

	while (moved < max && from->head) {
		struct seg *sg = from->head;
		uint32_t want = max - moved;

		if (sg->len <= want) {
			from->head = sg->next;
			if (!from->head)
				from->tail = NULL;
			from->n--;
			from->bytes -= sg->len;
			sg->next = NULL;
			if (to->tail)
				to->tail->next = sg;
			else
				to->head = sg;
			to->tail = sg;
			to->n++;
			to->bytes += sg->len;
			moved += sg->len;
			continue;
		}
		seg_add_ref(w, sg);
		if (segq_append(to, seg_new(w, sg->p, want, sg->bid, sg->ck, sg->ent)) < 0)
			break;
		segq_consume(w, from, want);
		moved += want;
	}
	return moved;
}

void sock_init(struct sock *s, struct worker *w, int fd, enum sock_kind kind,
	       timer_cb on_timer)
{
	s->fd = fd;
	s->kind = kind;
	s->w = w;
	timer_init(&s->timer, on_timer);
}

void sock_arm_recv(struct sock *s)
{
	io_recv_multishot(s->w, s->fd, op_data(s, OP_RECV));
	s->inflight++;
	s->rd_armed = 1;
	s->rd_cancelled = 0;
}

/* Keep the receive armed while the input queue has room, cancel it when
 * the queue is full (flow control), re-arm when it drains. */
void sock_update_reading(struct sock *s)
{
	int want = !s->closing && !s->eof && s->in.bytes < IN_HIGH;

	if (want) {
		if (!s->rd_armed && !s->rd_starved)
			sock_arm_recv(s);
	} else if (s->rd_armed && !s->rd_cancelled && !s->closing) {
		io_cancel(s->w, s->fd, op_data(s, OP_RECV));
		s->rd_cancelled = 1;
	}
}

void sock_rearm_starved(struct worker *w)
{
	/* Leave a margin so one socket does not take the last buffers. */
	while (w->starved && w->bufs.avail > 16) {
		struct sock *s = w->starved;

		w->starved = s->starved_next;
		s->starved_next = NULL;
		s->rd_starved = 0;
		sock_update_reading(s);
	}
}

/* Send what the output queue holds: one send, or a sendmsg of its first
 * IOV_MAX_SEND segments (the first segment alone when the worker is out of
 * memory for the sendmsg's vector). */
static __attribute__((noinline)) void sock_send(struct sock *s)
{
	struct seg *sg;
	unsigned n = 0;

	sg = s->out.head;
	if (!sg->next || !(s->sv = pool_get_raw(&s->w->sendv_pool))) {
		io_send(s->w, s->fd, sg->p, sg->len, op_data(s, OP_SEND));
	} else {
		for (; sg && n < IOV_MAX_SEND; sg = sg->next, n++) {
			s->sv->iov[n].iov_base = (void *)sg->p;
			s->sv->iov[n].iov_len = sg->len;
		}
		memset(&s->sv->msg, 0, sizeof(s->sv->msg));
		s->sv->msg.msg_iov = s->sv->iov;
		s->sv->msg.msg_iovlen = n;
		io_sendmsg(s->w, s->fd, &s->sv->msg, op_data(s, OP_SEND));
	}
	s->inflight++;
	s->sending = 1;
}

/* Start a send unless one is in flight: callers flush after every change
 * to the queue, so the nothing-to-do test comes first and costs nothing. */
void sock_flush(struct sock *s)
{
	if (s->sending || s->closing || !s->out.head)
		return;
	sock_send(s);
}

/* Cancel everything pending on the fd, then close it; the owner is
 * recycled once the last CQE (counted in inflight) has arrived. */
void sock_close(struct sock *s)
{
	struct worker *w = s->w;

	if (s->closing)
		return;
	s->closing = 1;
	timer_cancel(&w->wheel, &s->timer);
	if (s->fd < 0)
		return;
	io_close(w, s->fd, s->rd_armed || s->sending, op_data(s, OP_CLOSE));
	s->inflight++;
	s->fd = -1;
}

/* Parse a head from the input queue. The common case - the whole head in
 * the first received segment - is parsed in place; otherwise the bytes are
 * gathered into acc's chunk. On success returns the head length and sets
 * *headp to where it starts (valid until headacc_finish()). */
int headacc_parse_input(struct worker *w, struct headacc *acc, struct segq *in,
			int (*parse)(const char *, size_t, size_t, void *),
			void *arg, uint32_t limit, const char **headp)
{
	int ret;

	if (!acc->ck) {
		struct seg *sg = in->head;

		if (!sg)
			return -EAGAIN;
		ret = parse(sg->p, sg->len, 0, arg);
		if (ret != -EAGAIN) {
			*headp = sg->p;
			return ret;
		}
		acc->ck = chunk_get(w);
		if (!acc->ck)
			return -ENOMEM;
		acc->len = 0;
		acc->last = 0;
	}
	while (in->head) {
		struct seg *sg = in->head;
		uint32_t room = RF_MIN(acc->ck->cap, limit) - acc->len;
		uint32_t n = RF_MIN(room, sg->len);

		if (!n)
			break;
		memcpy(acc->ck->data + acc->len, sg->p, n);
		acc->len += n;
		segq_consume(w, in, n);
	}
	ret = parse(acc->ck->data, acc->len, acc->last, arg);
	acc->last = acc->len;
	if (ret == -EAGAIN && acc->len >= limit)
		ret = -EMSGSIZE;
	*headp = acc->ck->data;
	return ret;
}

/* Drop the parsed head; bytes gathered past it go back to the input. */
void headacc_finish(struct worker *w, struct headacc *acc, struct segq *in,
		    uint32_t head_len)
{
	struct chunk *ck = acc->ck;

	if (!ck) {
		segq_consume(w, in, head_len);
		return;
	}
	acc->ck = NULL;
	if (acc->len > head_len)
		segq_push_front(w, in, ck->data + head_len, acc->len - head_len,
				-1, ck);
	else
		chunk_put(w, ck);
	acc->len = 0;
	acc->last = 0;
}

void headacc_reset(struct worker *w, struct headacc *acc)
{
	if (acc->ck)
		chunk_put(w, acc->ck);
	acc->ck = NULL;
	acc->len = 0;
	acc->last = 0;
}

/* Show the first <n> bytes of <in> to the body's tap. */
static void tap_queue(struct body *b, const struct segq *in, uint32_t n)
{
	const struct seg *sg;

	for (sg = in->head; sg && n; sg = sg->next) {
		uint32_t k = RF_MIN(n, sg->len);

		b->tap(b->tap_arg, sg->p, k);
		n -= k;
	}
}

/* Relay body bytes from <in> to <out> according to <b>'s framing, until
 * the body ends (*done = 1), the input is empty or <out> is full.
 * Returns 0, -EBADMSG on bad chunk framing, -EFBIG when a chunked body
 * passes b->limit, or -ENOMEM. */
int body_relay(struct worker *w, struct body *b, struct segq *in,
	       struct segq *out, int *done)
{
	struct http_span spans[16];

	*done = 0;
	switch (b->kind) {
	case BODY_NONE:
		*done = 1;
		return 0;
	case BODY_LENGTH:
		while (b->left && in->head && out->bytes < OUT_HIGH) {
			uint32_t want = (uint32_t)RF_MIN(b->left, (uint64_t)OUT_HIGH);
			uint32_t n;

			if (b->tap)
				tap_queue(b, in, want);
			n = segq_move(w, in, out, want);

			if (!n)
				return -ENOMEM;
			b->left -= n;
		}
		*done = b->left == 0;
		return 0;
	case BODY_CHUNKED:
	case BODY_DECHUNK:
		while (!b->ck.done && in->head && out->bytes < OUT_HIGH) {
			struct seg *sg = in->head;
			unsigned nspans = 0, i;
			ssize_t used;

			used = http_chunked_feed(&b->ck, sg->p, sg->len, spans,
						 ARRAY_SIZE(spans), &nspans);
			if (used < 0)
				return (int)used;
			if (used == 0)
				break;
			for (i = 0; i < nspans; i++) {
				b->data += spans[i].len;
				if (b->tap)
					b->tap(b->tap_arg, sg->p + spans[i].off, spans[i].len);
			}
			if (b->limit && b->data > b->limit)
				return -EFBIG;
			if (b->kind == BODY_CHUNKED) {
				if (used && segq_move(w, in, out, (uint32_t)used) != (uint32_t)used)
					return -ENOMEM;
				continue;
			}
			for (i = 0; i < nspans; i++) {
				seg_add_ref(w, sg);
				if (segq_append(out, seg_new(w, sg->p + spans[i].off, spans[i].len,
							     sg->bid, sg->ck, sg->ent)) < 0)
					return -ENOMEM;
			}
			segq_consume(w, in, (uint32_t)used);
		}
		*done = b->ck.done;
		return 0;
	case BODY_EOF:
	case BODY_TUNNEL:
		while (in->head && out->bytes < OUT_HIGH) {
			if (b->tap)
				tap_queue(b, in, in->bytes);
			if (!segq_move(w, in, out, in->bytes))
				return -ENOMEM;
		}
		return 0;
	}
	return 0;
}
