/* store.c - the state store (see store.h): an in-memory map of the live
 * records, the journal it is made durable with, compaction into a
 * snapshot, and replay at start-up. One mutex guards the map and the
 * journal; the writers are admin handlers and the main thread's ticks. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "crc32c.h"
#include "log.h"
#include "store.h"

#define MAGIC           "rfstore\n"
#define TYPE_JOURNAL    1
#define TYPE_SNAPSHOT   2
#define FLAG_TOMB       1
#define MAX_REC         (STORE_REC_HDR + STORE_KIND_MAX + STORE_ID_MAX + STORE_VALUE_MAX)
#define LOG_APPLY_MAX   10      /* failed records logged one by one at load */

/* One live record. Owner: the map. data = kind NUL id NUL value NUL. */
struct rec {
	struct rec *next;       /* hash chain */
	uint64_t hash;
	uint64_t seq;           /* the change that wrote it */
	uint32_t vlen;
	uint16_t idlen;
	uint8_t klen;
	char data[];
};

static inline const char *rec_kind(const struct rec *r) { return r->data; }
static inline const char *rec_id(const struct rec *r) { return r->data + r->klen + 1; }
static inline const char *rec_val(const struct rec *r)
{
	return r->data + r->klen + 1 + r->idlen + 1;
}

/* A growable byte buffer (the snapshot image, the appends made while a
 * compaction writes it). */
struct buf {
	char *p;                /* owned */
	size_t len, cap;
	int failed;             /* an append did not fit in memory */
};

struct store {
	pthread_mutex_t lock;
	char *path;             /* owned; NULL = memory only */
	int dirfd, lockfd, jfd; /* -1 when closed */
	int chown;
	uid_t uid;
	gid_t gid;
	uint64_t journal_max;
	uint64_t joff;          /* valid journal bytes: appends go here */
	uint64_t jrecs;         /* records in the journal after the snapshot's */
	uint64_t last_seq, snap_seq;
	int dirty;              /* notes not in a snapshot yet */
	int broken;             /* the journal's tail is unknown: refuse appends */
	int compacting;         /* a snapshot is being written outside the lock */
	struct buf pending;     /* appends made meanwhile: the next journal's start */
	uint64_t pending_recs;
	struct store_kind kinds[STORE_KINDS];
	uint32_t nkinds;
	struct rec **tab;       /* owned: chains, mask + 1 heads */
	uint64_t mask, nrec;
	uint64_t compactions, dropped, write_errors;
};

/* ---- encoding ---- */

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void put_le64(unsigned char *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const unsigned char *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void hdr_encode(unsigned char *h, uint32_t type, uint64_t seq, uint32_t count)
{
	memcpy(h, MAGIC, 8);
	put_le32(h + 8, STORE_VERSION);
	put_le32(h + 12, type);
	put_le64(h + 16, seq);
	put_le32(h + 24, count);
	put_le32(h + 28, crc32c(0, h, 28));
}

/* A record's encoding at <p> (rec_size() bytes). */
static size_t rec_size(size_t klen, size_t idlen, size_t vlen)
{
	return STORE_REC_HDR + klen + idlen + vlen;
}

static void rec_encode(unsigned char *p, const char *kind, size_t klen, const char *id,
		       size_t idlen, const char *val, size_t vlen, int tomb, uint64_t seq)
{
	put_le32(p + 4, (uint32_t)vlen);
	p[8] = (unsigned char)klen;
	p[9] = tomb ? FLAG_TOMB : 0;
	p[10] = (unsigned char)idlen;
	p[11] = (unsigned char)(idlen >> 8);
	put_le64(p + 12, seq);
	memcpy(p + STORE_REC_HDR, kind, klen);
	memcpy(p + STORE_REC_HDR + klen, id, idlen);
	if (vlen)
		memcpy(p + STORE_REC_HDR + klen + idlen, val, vlen);
	put_le32(p, crc32c(0, p + 4, rec_size(klen, idlen, vlen) - 4));
}

/* A decoded record: views into the file image. */
struct rview {
	const char *kind, *id, *val;
	size_t klen, idlen, vlen;
	int tomb;
	uint64_t seq;
};

/* Decode the record at <p> with <avail> bytes left. Returns its size, 0
 * when it is cut short (a torn write), or -EBADMSG (bad lengths, flags or
 * checksum). */
static long rec_decode(const unsigned char *p, size_t avail, struct rview *v)
{
	size_t n;

	if (avail < STORE_REC_HDR)
		return 0;
	v->vlen = get_le32(p + 4);
	v->klen = p[8];
	v->idlen = (size_t)p[10] | (size_t)p[11] << 8;
	v->tomb = p[9] & FLAG_TOMB;
	v->seq = get_le64(p + 12);
	if (!v->klen || v->klen > STORE_KIND_MAX || !v->idlen || v->idlen > STORE_ID_MAX ||
	    v->vlen > STORE_VALUE_MAX || (p[9] & ~FLAG_TOMB) || (v->tomb && v->vlen))
		return -EBADMSG;
	n = rec_size(v->klen, v->idlen, v->vlen);
	if (n > avail)
		return 0;
	if (crc32c(0, p + 4, n - 4) != get_le32(p))
		return -EBADMSG;
	v->kind = (const char *)p + STORE_REC_HDR;
	v->id = v->kind + v->klen;
	v->val = v->id + v->idlen;
	if (memchr(v->kind, 0, v->klen) || memchr(v->id, 0, v->idlen) ||
	    memchr(v->val, 0, v->vlen))
		return -EBADMSG;        /* the map keeps them as C strings */
	return (long)n;
}

/* Make room for <n> more bytes. Returns 0 or -ENOMEM (and b->failed). */
static int buf_reserve(struct buf *b, size_t n)
{
	size_t cap;
	char *np;

	if (b->failed)
		return -ENOMEM;
	if (b->len + n > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->failed = 1;
			return -ENOMEM;
		}
		b->p = np;
		b->cap = cap;
	}
	return 0;
}

static int buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -ENOMEM;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- the map ---- */

static uint64_t key_hash(const char *kind, size_t klen, const char *id, size_t idlen)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < klen; i++)
		h = (h ^ (unsigned char)kind[i]) * 0x100000001b3ull;
	h = (h ^ 0xff) * 0x100000001b3ull;
	for (i = 0; i < idlen; i++)
		h = (h ^ (unsigned char)id[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static struct rec **map_slot(struct store *st, const char *kind, size_t klen, const char *id,
			     size_t idlen, uint64_t h)
{
	struct rec **pp = &st->tab[h & st->mask], *r;

	for (; (r = *pp) != NULL; pp = &r->next)
		if (r->hash == h && r->klen == klen && r->idlen == idlen &&
		    !memcmp(rec_kind(r), kind, klen) && !memcmp(rec_id(r), id, idlen))
			return pp;
	return pp;
}

static int map_grow(struct store *st)
{
	uint64_t size = (st->mask + 1) * 2, i;
	struct rec **nt = calloc(size, sizeof(*nt)), *r, *next;

	if (!nt)
		return -ENOMEM;
	for (i = 0; i <= st->mask; i++) {
		for (r = st->tab[i]; r; r = next) {
			next = r->next;
			r->next = nt[r->hash & (size - 1)];
			nt[r->hash & (size - 1)] = r;
		}
	}
	free(st->tab);
	st->tab = nt;
	st->mask = size - 1;
	return 0;
}

/* Set (val != NULL) or delete a record in the map. Returns 0 or -ENOMEM. */
static int map_set(struct store *st, const char *kind, size_t klen, const char *id,
		   size_t idlen, const char *val, size_t vlen, uint64_t seq)
{
	uint64_t h = key_hash(kind, klen, id, idlen);
	struct rec **pp = map_slot(st, kind, klen, id, idlen, h), *old = *pp, *r;

	if (!val) {
		if (old) {
			*pp = old->next;
			free(old);
			st->nrec--;
		}
		return 0;
	}
	r = malloc(sizeof(*r) + klen + idlen + vlen + 3);
	if (!r)
		return -ENOMEM;
	r->hash = h;
	r->seq = seq;
	r->klen = (uint8_t)klen;
	r->idlen = (uint16_t)idlen;
	r->vlen = (uint32_t)vlen;
	memcpy(r->data, kind, klen);
	r->data[klen] = 0;
	memcpy(r->data + klen + 1, id, idlen);
	r->data[klen + 1 + idlen] = 0;
	memcpy(r->data + klen + idlen + 2, val, vlen);
	r->data[klen + idlen + 2 + vlen] = 0;
	if (old) {
		r->next = old->next;
		*pp = r;
		free(old);
		return 0;
	}
	r->next = NULL;
	*pp = r;
	st->nrec++;
	if (st->nrec > st->mask + 1)
		map_grow(st);   /* a failure only lengthens the chains */
	return 0;
}

static struct rec *map_find(struct store *st, const char *kind, const char *id)
{
	size_t klen = strlen(kind), idlen = strlen(id);

	return *map_slot(st, kind, klen, id, idlen, key_hash(kind, klen, id, idlen));
}

static int kind_index(const struct store *st, const char *kind, size_t klen)
{
	uint32_t i;

	for (i = 0; i < st->nkinds; i++)
		if (strlen(st->kinds[i].name) == klen && !memcmp(st->kinds[i].name, kind, klen))
			return (int)i;
	return -1;
}

/* A record with its kind's place in the table, for sorting. */
struct srec {
	struct rec *r;
	uint32_t k;             /* kind index; STORE_KINDS for kinds not in the table */
};

static int cmp_srec(const void *a, const void *b)
{
	const struct srec *x = a, *y = b;
	int c;

	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	if (x->k == STORE_KINDS && (c = strcmp(rec_kind(x->r), rec_kind(y->r))) != 0)
		return c;
	return x->r->seq < y->r->seq ? -1 : x->r->seq > y->r->seq;
}

/* The live records (of <kind> only, unless NULL) grouped by kind in table
 * order, unknown kinds last, each group oldest first: the order a replay
 * needs, since a kind may refer to one registered before it. Caller holds
 * the lock and frees the array. */
static struct srec *map_sorted(struct store *st, const char *kind, uint64_t *n)
{
	struct srec *v = malloc((st->nrec ? st->nrec : 1) * sizeof(*v));
	uint64_t i, k = 0;
	struct rec *r;
	int ki;

	if (!v)
		return NULL;
	for (i = 0; i <= st->mask; i++) {
		for (r = st->tab[i]; r; r = r->next) {
			if (kind && strcmp(rec_kind(r), kind))
				continue;
			ki = kind_index(st, rec_kind(r), r->klen);
			v[k].r = r;
			v[k++].k = ki < 0 ? STORE_KINDS : (uint32_t)ki;
		}
	}
	qsort(v, k, sizeof(*v), cmp_srec);
	*n = k;
	return v;
}

/* ---- files ---- */

static int serr(char *err, size_t errlen, const struct store *st, int rc, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int serr(char *err, size_t errlen, const struct store *st, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(err, errlen, "store %s: ", st->path ? st->path : "(memory)");
	if (n < 0 || (size_t)n >= errlen)
		return rc;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return rc;
}

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
	const char *s = p;
	ssize_t w;

	while (n) {
		w = pwrite(fd, s, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		s += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Read all of <name> into a malloc'd buffer. Returns 0, -ENOENT, -errno. */
static int read_file(struct store *st, const char *name, unsigned char **out, size_t *len)
{
	struct stat sb;
	unsigned char *p;
	size_t got = 0;
	ssize_t r;
	int fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	p = malloc((size_t)sb.st_size + 1);
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)sb.st_size) {
		r = pread(fd, p + got, (size_t)sb.st_size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : 0;
			break;  /* shrank meanwhile: what was read is the file */
		}
		got += (size_t)r;
	}
	close(fd);
	if (rc) {
		free(p);
		return rc;
	}
	*out = p;
	*len = got;
	return 0;
}

static void own(const struct store *st, int fd)
{
	if (st->chown && fchown(fd, st->uid, st->gid) < 0)
		log_warn("msg=\"store: cannot hand a file to the run-time user\" path=%s error=\"%s\"",
			 st->path, strerror(errno));
}

/* Write <name>.tmp with <hdr> then <body>, fsync it, rename it over <name>
 * and fsync the directory. Returns the open descriptor of the new file
 * (when <keep>) or 0, else -errno (the temp file is removed). */
static int replace_file(struct store *st, const char *name, const unsigned char *hdr,
			const void *body, size_t len, int keep)
{
	char tmp[64];
	int fd, rc;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(st->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	own(st, fd);
	rc = write_all(fd, hdr, STORE_HDR_SIZE, 0);
	if (!rc && len)
		rc = write_all(fd, body, len, STORE_HDR_SIZE);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (!rc && renameat(st->dirfd, tmp, st->dirfd, name) < 0)
		rc = -errno;
	if (!rc && fsync(st->dirfd) < 0)
		rc = -errno;
	if (rc) {
		close(fd);
		unlinkat(st->dirfd, tmp, 0);
		return rc;
	}
	if (keep)
		return fd;
	close(fd);
	return 0;
}

/* Check a file header. Returns 0, or a negative errno with <err> set. */
static int hdr_check(struct store *st, const char *name, const unsigned char *p, size_t len,
		     uint32_t type, char *err, size_t errlen)
{
	uint32_t v;

	if (len < 12 || memcmp(p, MAGIC, 8))
		return serr(err, errlen, st, -EBADMSG, "%s is not a ringfront store file", name);
	v = get_le32(p + 8);
	if (v > STORE_VERSION)
		return serr(err, errlen, st, -EPROTONOSUPPORT,
			    "%s has format version %u, newer than this ringfront's (%u): "
			    "run the newer ringfront, or move the directory away", name, v,
			    STORE_VERSION);
	if (len < STORE_HDR_SIZE || get_le32(p + 28) != crc32c(0, p, 28) || !v ||
	    get_le32(p + 12) != type)
		return serr(err, errlen, st, -EBADMSG, "%s has a corrupt header", name);
	return 0;
}

/* ---- open, load ---- */

int store_open(struct store **out, const struct store_opts *o, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	int rc;

	*out = NULL;
	if (!st)
		return -ENOMEM;
	pthread_mutex_init(&st->lock, NULL);
	st->dirfd = st->lockfd = st->jfd = -1;
	st->mask = 63;
	st->tab = calloc(st->mask + 1, sizeof(*st->tab));
	if (!st->tab) {
		store_close(st);
		return -ENOMEM;
	}
	st->journal_max = o->journal_max;
	st->chown = o->chown;
	st->uid = o->uid;
	st->gid = o->gid;
	if (!o->path || !*o->path) {
		*out = st;
		return 0;
	}
	st->path = strdup(o->path);
	if (!st->path) {
		store_close(st);
		return -ENOMEM;
	}
	if (mkdir(st->path, 0700) == 0) {
		if (st->chown && chown(st->path, st->uid, st->gid) < 0)
			log_warn("msg=\"store: cannot hand the directory to the run-time user\" "
				 "path=%s error=\"%s\"", st->path, strerror(errno));
	} else if (errno != EEXIST) {
		rc = serr(err, errlen, st, -errno, "cannot create the directory: %s",
			  strerror(errno));
		store_close(st);
		return rc;
	}
	st->dirfd = open(st->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd < 0) {
		rc = serr(err, errlen, st, -errno, "cannot open the directory: %s",
			  strerror(errno));
		store_close(st);
		return rc;
	}
	st->lockfd = openat(st->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lockfd < 0) {
		rc = serr(err, errlen, st, -errno, "cannot open the lock file: %s",
			  strerror(errno));
		store_close(st);
		return rc;
	}
	own(st, st->lockfd);
	if (flock(st->lockfd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		serr(err, errlen, st, rc, rc == -EBUSY ? "in use by another ringfront process" :
		     "cannot lock: %s", strerror(-rc));
		store_close(st);
		return rc;
	}
	*out = st;
	return 0;
}

int store_add_kind(struct store *st, const struct store_kind *k)
{
	size_t n = k->name ? strlen(k->name) : 0;

	if (!n || n > STORE_KIND_MAX || !k->apply)
		return -EINVAL;
	if (kind_index(st, k->name, n) >= 0)
		return -EEXIST;
	if (st->nkinds == STORE_KINDS)
		return -ENOSPC;
	st->kinds[st->nkinds++] = *k;
	return 0;
}

struct load_ctx {
	uint64_t applied, failed, unknown;
};

/* Apply one replayed record through its kind (unknown kinds are kept). */
static void apply_one(struct store *st, struct load_ctx *lc, const struct rview *v)
{
	char kind[STORE_KIND_MAX + 1];
	struct rec *r;
	int k = kind_index(st, v->kind, v->klen), rc;

	if (k < 0) {
		lc->unknown++;
		return;
	}
	/* the map holds NUL-terminated copies: apply from those */
	memcpy(kind, v->kind, v->klen);
	kind[v->klen] = 0;
	if (v->tomb) {
		char id[STORE_ID_MAX + 1];

		memcpy(id, v->id, v->idlen);
		id[v->idlen] = 0;
		rc = st->kinds[k].apply(st->kinds[k].arg, id, NULL, 0);
	} else {
		r = *map_slot(st, v->kind, v->klen, v->id, v->idlen,
			      key_hash(v->kind, v->klen, v->id, v->idlen));
		rc = r ? st->kinds[k].apply(st->kinds[k].arg, rec_id(r), rec_val(r), r->vlen)
		       : -ENOMEM;
	}
	if (!rc) {
		lc->applied++;
		return;
	}
	if (++lc->failed <= LOG_APPLY_MAX)
		log_warn("msg=\"stored record not applied, kept\" kind=%s id=\"%.*s\" error=\"%s\"",
			 kind, (int)RF_MIN(v->idlen, 200u), v->id, strerror(-rc));
}

static int load_snapshot(struct store *st, struct load_ctx *lc, char *err, size_t errlen)
{
	unsigned char *p;
	size_t len, off = STORE_HDR_SIZE;
	uint32_t count, i;
	struct rview v;
	long n;
	int rc = read_file(st, "snapshot", &p, &len);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return serr(err, errlen, st, rc, "cannot read the snapshot: %s", strerror(-rc));
	rc = hdr_check(st, "snapshot", p, len, TYPE_SNAPSHOT, err, errlen);
	if (rc < 0)
		goto out;
	st->snap_seq = get_le64(p + 16);
	count = get_le32(p + 24);
	/* all of it is checked before anything is applied */
	for (i = 0; i < count; i++, off += (size_t)n) {
		n = rec_decode(p + off, len - off, &v);
		if (n <= 0 || v.tomb) {
			rc = serr(err, errlen, st, -EBADMSG, "snapshot record %u at byte %zu is "
				  "corrupt; move the snapshot away to start without it", i, off);
			goto out;
		}
		rc = map_set(st, v.kind, v.klen, v.id, v.idlen, v.val, v.vlen, v.seq);
		if (rc < 0) {
			serr(err, errlen, st, rc, "out of memory");
			goto out;
		}
		st->last_seq = RF_MAX(st->last_seq, v.seq);
	}
	if (off != len) {
		rc = serr(err, errlen, st, -EBADMSG, "snapshot has %zu bytes after its %u records",
			  len - off, count);
		goto out;
	}
	st->last_seq = RF_MAX(st->last_seq, st->snap_seq);
	for (off = STORE_HDR_SIZE, i = 0; i < count; i++, off += (size_t)n) {
		n = rec_decode(p + off, len - off, &v);
		apply_one(st, lc, &v);
	}
out:
	free(p);
	return rc;
}

static int new_journal(struct store *st, const void *body, size_t len)
{
	unsigned char h[STORE_HDR_SIZE];
	int fd;

	hdr_encode(h, TYPE_JOURNAL, st->last_seq, 0);
	fd = replace_file(st, "journal", h, body, len, 1);
	if (fd < 0)
		return fd;
	if (st->jfd >= 0)
		close(st->jfd);
	st->jfd = fd;
	st->joff = STORE_HDR_SIZE + len;
	return 0;
}

static int load_journal(struct store *st, struct load_ctx *lc, char *err, size_t errlen)
{
	unsigned char *p = NULL;
	size_t len = 0, off = STORE_HDR_SIZE;
	uint64_t prev = 0;
	struct rview v;
	long n = 0;
	int rc = read_file(st, "journal", &p, &len);

	if (rc == -ENOENT || (rc == 0 && len < STORE_HDR_SIZE && (len < 8 || !memcmp(p, MAGIC, 8)))) {
		/* none yet, or a header that never made it whole */
		if (rc == 0 && len) {
			log_warn("msg=\"store: journal header torn, starting a new journal\" "
				 "path=%s dropped_bytes=%zu", st->path, len);
			st->dropped += len;
		}
		free(p);
		rc = new_journal(st, NULL, 0);
		return rc < 0 ? serr(err, errlen, st, rc, "cannot create the journal: %s",
				     strerror(-rc)) : 0;
	}
	if (rc < 0)
		return serr(err, errlen, st, rc, "cannot read the journal: %s", strerror(-rc));
	rc = hdr_check(st, "journal", p, len, TYPE_JOURNAL, err, errlen);
	if (rc < 0)
		goto out;
	for (; off < len; off += (size_t)n) {
		n = rec_decode(p + off, len - off, &v);
		if (n <= 0 || v.seq <= prev)
			break;          /* torn, corrupt, or out of order: the tail goes */
		prev = v.seq;
		if (v.seq <= st->snap_seq)
			continue;       /* compaction stopped before the journal restarted */
		rc = map_set(st, v.kind, v.klen, v.id, v.idlen, v.tomb ? NULL : v.val, v.vlen,
			     v.seq);
		if (rc < 0) {
			serr(err, errlen, st, rc, "out of memory");
			goto out;
		}
		st->last_seq = v.seq;
		st->jrecs++;
		apply_one(st, lc, &v);
	}
	st->jfd = openat(st->dirfd, "journal", O_RDWR | O_CLOEXEC);
	if (st->jfd < 0) {
		rc = serr(err, errlen, st, -errno, "cannot open the journal: %s", strerror(errno));
		goto out;
	}
	st->joff = off;
	if (off < len) {
		st->dropped += len - off;
		log_warn("msg=\"store: torn or corrupt journal tail dropped\" path=%s "
			 "dropped_bytes=%zu kept_bytes=%zu", st->path, len - off, off);
		if (ftruncate(st->jfd, (off_t)off) < 0 || fdatasync(st->jfd) < 0) {
			rc = serr(err, errlen, st, -errno, "cannot truncate the journal: %s",
				  strerror(errno));
			goto out;
		}
	}
out:
	free(p);
	return rc;
}

int store_load(struct store *st, char *err, size_t errlen)
{
	struct load_ctx lc = { 0, 0, 0 };
	int rc;

	if (!st->path)
		return 0;
	rc = load_snapshot(st, &lc, err, errlen);
	if (!rc)
		rc = load_journal(st, &lc, err, errlen);
	if (rc < 0)
		return rc;
	if (lc.failed > LOG_APPLY_MAX)
		log_warn("msg=\"stored records not applied, kept\" count=%llu",
			 (unsigned long long)lc.failed);
	if (lc.unknown)
		log_warn("msg=\"stored records of kinds this ringfront does not know, kept\" count=%llu",
			 (unsigned long long)lc.unknown);
	log_info("msg=\"state store loaded\" path=%s records=%llu applied=%llu journal_records=%llu "
		 "journal_bytes=%llu", st->path, (unsigned long long)st->nrec,
		 (unsigned long long)lc.applied, (unsigned long long)st->jrecs,
		 (unsigned long long)st->joff);
	return 0;
}

/* ---- changes ---- */

/* Append one record to the journal and wait for it to be on disk. Caller
 * holds the lock. Returns 0 and the record's sequence number, or -errno. */
static int journal_append(struct store *st, const char *kind, size_t klen, const char *id,
			  size_t idlen, const char *val, size_t vlen, int tomb, uint64_t *seq)
{
	unsigned char small[1024], *p = small;
	size_t n = rec_size(klen, idlen, vlen);
	int rc;

	*seq = st->last_seq + 1;
	if (!st->path)
		return 0;
	if (st->broken)
		return -EIO;
	if (n > sizeof(small) && !(p = malloc(n)))
		return -ENOMEM;
	rec_encode(p, kind, klen, id, idlen, val, vlen, tomb, *seq);
	rc = write_all(st->jfd, p, n, st->joff);
	if (rc < 0 && ftruncate(st->jfd, (off_t)st->joff) < 0)
		st->broken = 1;
	/* after a failed fdatasync the page cache may say anything: stop
	 * trusting the file until a compaction replaces it */
	if (!rc && fdatasync(st->jfd) < 0) {
		rc = -errno;
		st->broken = 1;
	}
	if (rc < 0) {
		st->write_errors++;
		log_error("msg=\"store: journal write failed, change refused\" path=%s error=\"%s\"",
			  st->path, strerror(-rc));
		rc = -EIO;
	} else {
		st->joff += n;
		st->jrecs++;
		if (st->compacting && buf_add(&st->pending, p, n) == 0)
			st->pending_recs++;
	}
	if (p != small)
		free(p);
	return rc;
}

static int check_key(const char *kind, const char *id, size_t *klen, size_t *idlen)
{
	*klen = kind ? strlen(kind) : 0;
	*idlen = id ? strlen(id) : 0;
	return *klen && *klen <= STORE_KIND_MAX && *idlen && *idlen <= STORE_ID_MAX ? 0 : -EINVAL;
}

/* store_put (tomb 0), store_del (tomb 1), store_note (journal 0). */
static int change(struct store *st, const char *kind, const char *id, const char *json,
		  size_t len, int journal)
{
	size_t klen, idlen;
	uint64_t seq;
	struct rec *r;
	int rc;

	if (check_key(kind, id, &klen, &idlen) < 0 || len > STORE_VALUE_MAX ||
	    (json && memchr(json, 0, len)))
		return -EINVAL;
	pthread_mutex_lock(&st->lock);
	rc = kind_index(st, kind, klen) < 0 ? -EINVAL : 0;
	r = rc ? NULL : map_find(st, kind, id);
	if (rc || (!json && !r) ||
	    (json && r && r->vlen == len && !memcmp(rec_val(r), json, len)))
		goto out;       /* nothing changes */
	if (journal) {
		rc = journal_append(st, kind, klen, id, idlen, json, json ? len : 0, !json, &seq);
		if (rc < 0)
			goto out;
	} else {
		seq = st->last_seq + 1;
		st->dirty = 1;
	}
	st->last_seq = seq;
	rc = map_set(st, kind, klen, id, idlen, json, len, seq);
	if (rc < 0 && journal) {
		/* durable but not in memory: the next snapshot would lose it */
		st->broken = 1;
		rc = -EIO;
	}
out:
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_put(struct store *st, const char *kind, const char *id, const char *json, size_t len)
{
	return json ? change(st, kind, id, json, len, 1) : -EINVAL;
}

int store_del(struct store *st, const char *kind, const char *id)
{
	return change(st, kind, id, NULL, 0, 1);
}

int store_note(struct store *st, const char *kind, const char *id, const char *json, size_t len)
{
	return change(st, kind, id, json, len, 0);
}

int store_get(struct store *st, const char *kind, const char *id, char *buf, size_t cap)
{
	struct rec *r;
	int rc;

	pthread_mutex_lock(&st->lock);
	r = map_find(st, kind, id);
	rc = !r ? -ENOENT : r->vlen >= cap ? -ENOSPC : (int)r->vlen;
	if (rc >= 0)
		memcpy(buf, rec_val(r), r->vlen + 1);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_foreach(struct store *st, const char *kind, store_apply_fn fn, void *arg)
{
	struct rec **copy;
	struct srec *v;
	uint64_t n = 0, i;
	int rc = 0;

	pthread_mutex_lock(&st->lock);
	v = map_sorted(st, kind, &n);
	copy = v ? calloc(n ? n : 1, sizeof(*copy)) : NULL;
	for (i = 0; copy && i < n; i++) {
		size_t sz = sizeof(struct rec) + v[i].r->klen + v[i].r->idlen + v[i].r->vlen + 3;

		copy[i] = malloc(sz);
		if (!copy[i]) {
			rc = -ENOMEM;
			break;
		}
		memcpy(copy[i], v[i].r, sz);
	}
	pthread_mutex_unlock(&st->lock);
	free(v);
	if (!copy)
		return -ENOMEM;
	for (i = 0; !rc && i < n; i++)
		rc = fn(arg, rec_id(copy[i]), rec_val(copy[i]), copy[i]->vlen);
	for (i = 0; i < n; i++)
		free(copy[i]);
	free(copy);
	return rc < 0 ? rc : 0;
}

struct reapply_ctx {
	const struct store_kind *k;
	uint32_t failed;
};

/* One record that does not apply (its upstream left the configuration)
 * must not keep the others from applying. */
static int reapply_one(void *arg, const char *id, const char *json, size_t len)
{
	struct reapply_ctx *rc = arg;
	int err = rc->k->apply(rc->k->arg, id, json, len);

	if (err < 0 && ++rc->failed <= LOG_APPLY_MAX)
		log_info("msg=\"stored record not applied, kept\" kind=%s id=\"%s\" error=\"%s\"",
			 rc->k->name, id, strerror(-err));
	return 0;
}

int store_reapply(struct store *st, const char *kind)
{
	int k = kind_index(st, kind, strlen(kind));
	struct reapply_ctx rc;

	if (k < 0)
		return -EINVAL;
	rc.k = &st->kinds[k];
	rc.failed = 0;
	return store_foreach(st, kind, reapply_one, &rc);
}

/* ---- compaction ---- */

/* The snapshot image of every live record. Caller holds the lock. */
static int snapshot_image(struct store *st, struct buf *b, uint32_t *count)
{
	struct srec *v;
	uint64_t n = 0, i;
	size_t sz;
	int rc = 0;

	v = map_sorted(st, NULL, &n);
	if (!v || n > UINT32_MAX) {
		free(v);
		return -ENOMEM;
	}
	for (i = 0; i < n && !rc; i++) {
		struct rec *r = v[i].r;

		sz = rec_size(r->klen, r->idlen, r->vlen);
		rc = buf_reserve(b, sz);
		if (rc)
			break;
		rec_encode((unsigned char *)b->p + b->len, rec_kind(r), r->klen, rec_id(r),
			   r->idlen, rec_val(r), r->vlen, 0, r->seq);
		b->len += sz;
	}
	free(v);
	*count = (uint32_t)n;
	return rc;
}

int store_compact(struct store *st, int force)
{
	unsigned char h[STORE_HDR_SIZE];
	struct buf img = { NULL, 0, 0, 0 };
	uint64_t seq;
	uint32_t count = 0;
	size_t bytes;
	int rc;

	if (!st->path)
		return 0;
	pthread_mutex_lock(&st->lock);
	if (st->compacting || (!st->jrecs && !st->dirty && !st->broken) ||
	    (!force && (!st->journal_max || st->joff <= st->journal_max))) {
		pthread_mutex_unlock(&st->lock);
		return 0;
	}
	rc = snapshot_image(st, &img, &count);
	if (rc < 0) {
		pthread_mutex_unlock(&st->lock);
		buf_free(&img);
		return rc;
	}
	seq = st->last_seq;
	st->dirty = 0;
	st->compacting = 1;
	buf_free(&st->pending);
	st->pending_recs = 0;
	pthread_mutex_unlock(&st->lock);

	/* the big write happens without the lock: admin changes go on into
	 * the journal and, for the next one, into st->pending */
	hdr_encode(h, TYPE_SNAPSHOT, seq, count);
	rc = replace_file(st, "snapshot", h, img.p, img.len, 0);
	bytes = STORE_HDR_SIZE + img.len;
	buf_free(&img);

	pthread_mutex_lock(&st->lock);
	if (rc == 0) {
		st->snap_seq = seq;
		if (st->pending.failed) {
			rc = -ENOMEM;   /* the old journal stays: it holds everything */
		} else {
			/* new_journal() writes the header with last_seq; records
			 * after seq follow it */
			rc = new_journal(st, st->pending.p, st->pending.len);
			if (rc == 0) {
				st->jrecs = st->pending_recs;
				st->broken = 0;
			}
		}
	} else {
		st->dirty = 1;
	}
	st->compacting = 0;
	buf_free(&st->pending);
	st->pending_recs = 0;
	if (rc == 0)
		st->compactions++;
	pthread_mutex_unlock(&st->lock);
	if (rc < 0) {
		log_error("msg=\"store: compaction failed, the journal goes on\" path=%s error=\"%s\"",
			  st->path, strerror(-rc));
		return rc;
	}
	log_info("msg=\"store compacted\" path=%s records=%u snapshot_bytes=%zu",
		 st->path, count, bytes);
	return 1;
}

/* ---- the rest ---- */

void store_stats(struct store *st, struct store_stats *out)
{
	pthread_mutex_lock(&st->lock);
	out->durable = st->path != NULL;
	out->records = st->nrec;
	out->journal_bytes = st->joff;
	out->journal_records = st->jrecs;
	out->last_seq = st->last_seq;
	out->snapshot_seq = st->snap_seq;
	out->compactions = st->compactions;
	out->dropped_bytes = st->dropped;
	out->write_errors = st->write_errors;
	pthread_mutex_unlock(&st->lock);
}

const char *store_path(const struct store *st)
{
	return st->path;
}

void store_close(struct store *st)
{
	struct rec *r, *next;
	uint64_t i;

	if (!st)
		return;
	if (st->jfd >= 0)
		close(st->jfd);
	if (st->lockfd >= 0)
		close(st->lockfd);      /* releases the flock */
	if (st->dirfd >= 0)
		close(st->dirfd);
	for (i = 0; st->tab && i <= st->mask; i++) {
		for (r = st->tab[i]; r; r = next) {
			next = r->next;
			free(r);
		}
	}
	free(st->tab);
	buf_free(&st->pending);
	free(st->path);
	pthread_mutex_destroy(&st->lock);
	free(st);
}
