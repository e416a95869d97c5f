/* test_store.c - the state store: CRC-32C vectors, put/del/get, replay
 * order through the kind table, tombstones, a torn tail and a bad checksum
 * dropped (and the file truncated there), compaction (snapshot + journal
 * restart, a crash between the two, appends during one), notes, kinds
 * this build does not know, a newer format version, the directory lock,
 * and the memory-only store. Each test works in its own temp directory. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test.h"
#include "common.h"
#include "crc32c.h"
#include "log.h"
#include "store.h"

static char dir[64];
static char events[8192];       /* what the apply callbacks saw, in order */

static int on_apply(void *arg, const char *id, const char *json, size_t len)
{
	size_t n = strlen(events);

	snprintf(events + n, sizeof(events) - n, "%s:%s=%s;", (const char *)arg, id,
		 json ? json : "~");
	if (json && len != strlen(json))
		snprintf(events + strlen(events), sizeof(events) - strlen(events), "BADLEN;");
	return 0;
}

static int on_apply_fail(void *arg, const char *id, const char *json, size_t len)
{
	on_apply(arg, id, json, len);
	return -ENOENT;
}

static void mkdir_tmp(void)
{
	snprintf(dir, sizeof(dir), "/tmp/rf-store-XXXXXX");
	if (!mkdtemp(dir))
		abort();
}

static void rm_tmp(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "  cannot remove %s\n", dir);
}

static char *file(const char *name)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static long file_size(const char *name)
{
	struct stat sb;

	return stat(file(name), &sb) == 0 ? (long)sb.st_size : -1;
}

/* Open <dir>/state with kinds "a" then "b", and load it (events cleared). */
static struct store *open_store(int *load_rc, uint64_t journal_max)
{
	static const struct store_kind ka = { "a", on_apply, "a" }, kb = { "b", on_apply, "b" };
	struct store_opts o = { NULL, journal_max, 0, 0, 0 };
	struct store *st = NULL;
	char err[256];
	int rc;

	o.path = file("state");
	rc = store_open(&st, &o, err, sizeof(err));
	CHECK_INT(rc, 0);
	if (rc) {
		fprintf(stderr, "  %s\n", err);
		return NULL;
	}
	CHECK_INT(store_add_kind(st, &ka), 0);
	CHECK_INT(store_add_kind(st, &kb), 0);
	events[0] = 0;
	rc = store_load(st, err, sizeof(err));
	if (load_rc)
		*load_rc = rc;
	else
		CHECK_INT(rc, 0);
	if (rc && !load_rc)
		fprintf(stderr, "  %s\n", err);
	return st;
}

static char *journal_name(void)
{
	static char p[64];

	snprintf(p, sizeof(p), "state/journal");
	return p;
}

static void test_crc32c(void)
{
	static const unsigned char zeros[32], ones[32] = { [0 ... 31] = 0xff };
	unsigned char inc[32];
	int i;

	for (i = 0; i < 32; i++)
		inc[i] = (unsigned char)i;
	CHECK_INT(crc32c(0, "123456789", 9), 0xe3069283u);
	/* RFC 3720 B.4 */
	CHECK_INT(crc32c(0, zeros, 32), 0x8a9136aau);
	CHECK_INT(crc32c(0, ones, 32), 0x62a8ab43u);
	CHECK_INT(crc32c(0, inc, 32), 0x46dd794eu);
	/* continuing over pieces, at any alignment, gives the same */
	CHECK_INT(crc32c(crc32c(0, "12345", 5), "6789", 4), 0xe3069283u);
	CHECK_INT(crc32c(crc32c(0, inc, 3), inc + 3, 29), 0x46dd794eu);
	CHECK_INT(crc32c(0, "", 0), 0);
}

static void test_put_get_replay_order(void)
{
	struct store *st;
	char buf[64];

	mkdir_tmp();
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_INT(store_put(st, "b", "x", "{\"v\":1}", 7), 0);
	CHECK_INT(store_put(st, "a", "y", "{\"v\":2}", 7), 0);
	CHECK_INT(store_put(st, "b", "x", "{\"v\":3}", 7), 0);
	CHECK_INT(store_del(st, "a", "y"), 0);
	CHECK_INT(store_put(st, "a", "z", "[]", 2), 0);
	CHECK_INT(store_put(st, "c", "x", "{}", 2), -EINVAL);   /* no such kind */
	CHECK_INT(store_put(st, "a", "", "{}", 2), -EINVAL);
	CHECK_INT(store_get(st, "b", "x", buf, sizeof(buf)), 7);
	CHECK_STR(buf, "{\"v\":3}");
	CHECK_INT(store_get(st, "a", "y", buf, sizeof(buf)), -ENOENT);
	CHECK_INT(store_get(st, "b", "x", buf, 4), -ENOSPC);
	CHECK_STR(events, "");  /* changes are not applied back */
	store_close(st);

	/* the journal replays every change in the order it was made */
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "b:x={\"v\":1};a:y={\"v\":2};b:x={\"v\":3};a:y=~;a:z=[];");
	CHECK_INT(store_get(st, "a", "z", buf, sizeof(buf)), 2);
	store_close(st);
	rm_tmp();
}

static void test_unchanged_writes_nothing(void)
{
	struct store *st;
	long size;

	mkdir_tmp();
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_INT(store_put(st, "a", "k", "1", 1), 0);
	size = file_size(journal_name());
	CHECK_INT(store_put(st, "a", "k", "1", 1), 0);
	CHECK_INT(store_del(st, "a", "nothing"), 0);
	CHECK_INT(file_size(journal_name()), size);
	CHECK_INT(store_del(st, "a", "k"), 0);
	CHECK(file_size(journal_name()) > size);
	store_close(st);
	rm_tmp();
}

static void test_torn_tail(void)
{
	struct store *st;
	struct store_stats ss;
	long size;
	int fd;

	mkdir_tmp();
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_INT(store_put(st, "a", "1", "\"one\"", 5), 0);
	CHECK_INT(store_put(st, "a", "2", "\"two\"", 5), 0);
	CHECK_INT(store_put(st, "a", "3", "\"three\"", 7), 0);
	store_close(st);
	size = file_size(journal_name());
	/* a write cut short: the last record loses its last 3 bytes */
	CHECK_INT(truncate(file(journal_name()), size - 3), 0);
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "a:1=\"one\";a:2=\"two\";");
	store_stats(st, &ss);
	CHECK_INT(ss.dropped_bytes, 20 + 1 + 1 + 7 - 3);
	/* the file was cut at the tear, so new records follow good ones */
	CHECK_INT(file_size(journal_name()), size - (20 + 1 + 1 + 7));
	CHECK_INT(store_put(st, "a", "4", "\"four\"", 6), 0);
	store_close(st);
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "a:1=\"one\";a:2=\"two\";a:4=\"four\";");
	store_close(st);

	/* a header torn at creation: a new, empty journal */
	fd = open(file(journal_name()), O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, "rfstore\n\1", 9) == 9);
	close(fd);
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "");
	CHECK_INT(file_size(journal_name()), STORE_HDR_SIZE);
	store_close(st);
	rm_tmp();
}

static void test_bad_checksum(void)
{
	struct store *st;
	struct store_stats ss;
	long size;
	int fd;
	char c;

	mkdir_tmp();
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_INT(store_put(st, "a", "1", "\"one\"", 5), 0);
	size = file_size(journal_name());
	CHECK_INT(store_put(st, "a", "2", "\"two\"", 5), 0);
	CHECK_INT(store_put(st, "a", "3", "\"six\"", 5), 0);
	store_close(st);
	/* flip one bit of record 2's value: records 2 and 3 go */
	fd = open(file(journal_name()), O_RDWR);
	CHECK(fd >= 0);
	CHECK(pread(fd, &c, 1, size + 20 + 1 + 1 + 2) == 1);
	c ^= 4;
	CHECK(pwrite(fd, &c, 1, size + 20 + 1 + 1 + 2) == 1);
	close(fd);
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "a:1=\"one\";");
	store_stats(st, &ss);
	CHECK_INT(ss.dropped_bytes, 2 * (20 + 1 + 1 + 5));
	CHECK_INT(file_size(journal_name()), size);
	store_close(st);
	rm_tmp();
}

static void test_compaction(void)
{
	struct store_stats ss;
	struct store *st;
	char id[16], val[32];
	int i;

	mkdir_tmp();
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_INT(store_compact(st, 1), 0);     /* nothing changed yet */
	for (i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "k%d", i % 10);
		snprintf(val, sizeof(val), "{\"n\":%d}", i);
		CHECK_INT(store_put(st, i % 2 ? "b" : "a", id, val, strlen(val)), 0);
	}
	CHECK_INT(store_del(st, "a", "k0"), 0);
	CHECK_INT(store_compact(st, 0), 0);     /* journal_max 0: only when forced */
	CHECK_INT(store_compact(st, 1), 1);
	CHECK(file_size("state/snapshot") > STORE_HDR_SIZE);
	CHECK_INT(file_size(journal_name()), STORE_HDR_SIZE);
	CHECK(file_size("state/snapshot.tmp") < 0 && file_size("state/journal.tmp") < 0);
	store_stats(st, &ss);
	CHECK_INT(ss.records, 9);               /* a k0 (tombstone gone), a/b k1..k9 */
	CHECK_INT(ss.journal_records, 0);
	CHECK_INT(ss.snapshot_seq, 51);
	CHECK_INT(ss.compactions, 1);
	CHECK_INT(store_put(st, "a", "new", "1", 1), 0);
	store_close(st);

	/* the snapshot replays grouped by kind (table order), oldest first,
	 * then the journal */
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "a:k2={\"n\":42};a:k4={\"n\":44};a:k6={\"n\":46};a:k8={\"n\":48};"
		  "b:k1={\"n\":41};b:k3={\"n\":43};b:k5={\"n\":45};b:k7={\"n\":47};"
		  "b:k9={\"n\":49};a:new=1;");
	store_close(st);
	rm_tmp();
}

static void test_compaction_by_size(void)
{
	struct store *st;
	char id[16];
	int i;

	mkdir_tmp();
	st = open_store(NULL, 300);
	if (!st)
		return;
	for (i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		CHECK_INT(store_put(st, "a", id, "1", 1), 0);
		CHECK_INT(store_compact(st, 0), 0);     /* under 300 bytes */
	}
	for (; i < 20 && file_size(journal_name()) <= 300; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		CHECK_INT(store_put(st, "a", id, "1", 1), 0);
	}
	CHECK_INT(store_compact(st, 0), 1);
	CHECK_INT(file_size(journal_name()), STORE_HDR_SIZE);
	store_close(st);
	rm_tmp();
}

/* A crash after the snapshot's rename, before the journal restarted: the
 * old journal's records are in the snapshot and must not apply twice. */
static void test_crash_between_snapshot_and_journal(void)
{
	struct store *st;
	char cmd[256];

	mkdir_tmp();
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_INT(store_put(st, "a", "1", "\"one\"", 5), 0);
	CHECK_INT(store_put(st, "a", "1", "\"uno\"", 5), 0);
	snprintf(cmd, sizeof(cmd), "cp %s/state/journal %s/old", dir, dir);
	CHECK_INT(system(cmd), 0);
	CHECK_INT(store_compact(st, 1), 1);
	store_close(st);
	snprintf(cmd, sizeof(cmd), "mv %s/old %s/state/journal", dir, dir);
	CHECK_INT(system(cmd), 0);
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "a:1=\"uno\";");
	/* and it goes on from there */
	CHECK_INT(store_put(st, "a", "2", "\"dos\"", 5), 0);
	store_close(st);
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "a:1=\"uno\";a:2=\"dos\";");
	store_close(st);
	rm_tmp();
}

struct writer {
	struct store *st;
	int n, failed;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char id[16];
	int i;

	for (i = 0; i < w->n; i++) {
		snprintf(id, sizeof(id), "w%d", i);
		if (store_put(w->st, "b", id, "true", 4) != 0)
			w->failed++;
	}
	return NULL;
}

/* Changes made while a compaction writes its snapshot land in the next
 * journal: nothing is lost whatever the interleaving. */
static void test_appends_during_compaction(void)
{
	struct writer w = { NULL, 150, 0 };
	struct store_stats ss;
	struct store *st;
	pthread_t t;
	char id[16], val[8];
	int i, compactions = 0, missing = 0;

	mkdir_tmp();
	st = open_store(NULL, 0);
	if (!st)
		return;
	for (i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "seed%d", i);
		CHECK_INT(store_put(st, "a", id, "0", 1), 0);
	}
	w.st = st;
	CHECK_INT(pthread_create(&t, NULL, writer_main, &w), 0);
	for (i = 0; i < 30; i++)
		compactions += store_compact(st, 1) == 1;
	pthread_join(t, NULL);
	CHECK_INT(w.failed, 0);
	CHECK(compactions >= 1);
	store_close(st);
	st = open_store(NULL, 0);
	if (!st)
		return;
	for (i = 0; i < w.n; i++) {
		snprintf(id, sizeof(id), "w%d", i);
		missing += store_get(st, "b", id, val, sizeof(val)) != 4;
	}
	CHECK_INT(missing, 0);
	store_stats(st, &ss);
	CHECK_INT(ss.records, 200 + 150);
	store_close(st);
	rm_tmp();
}

static void test_notes_reach_the_snapshot_only(void)
{
	struct store *st;
	char buf[16];

	mkdir_tmp();
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_INT(store_put(st, "a", "1", "\"one\"", 5), 0);
	CHECK_INT(store_put(st, "a", "2", "\"two\"", 5), 0);
	CHECK_INT(store_note(st, "a", "1", "\"ONE\"", 5), 0);
	CHECK_INT(store_get(st, "a", "1", buf, sizeof(buf)), 5);
	CHECK_STR(buf, "\"ONE\"");
	store_close(st);
	/* lost by a crash before a snapshot */
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "a:1=\"one\";a:2=\"two\";");
	CHECK_INT(store_note(st, "a", "1", "\"ONE\"", 5), 0);
	CHECK_INT(store_note(st, "a", "2", NULL, 0), 0);
	CHECK_INT(store_compact(st, 1), 1);
	store_close(st);
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "a:1=\"ONE\";");
	/* a note alone is reason enough to compact */
	CHECK_INT(store_note(st, "a", "3", "3", 1), 0);
	CHECK_INT(store_compact(st, 1), 1);
	store_close(st);
	rm_tmp();
}

static void test_unknown_kinds_and_failed_applies_are_kept(void)
{
	static const struct store_kind kz = { "z", on_apply, "z" };
	static const struct store_kind kf = { "f", on_apply_fail, "f" };
	struct store_opts o = { NULL, 0, 0, 0, 0 };
	struct store *st = NULL;
	char err[256], buf[16];

	mkdir_tmp();
	o.path = file("state");
	CHECK_INT(store_open(&st, &o, err, sizeof(err)), 0);
	if (!st)
		return;
	CHECK_INT(store_add_kind(st, &kz), 0);
	CHECK_INT(store_add_kind(st, &kz), -EEXIST);
	CHECK_INT(store_add_kind(st, &kf), 0);
	CHECK_INT(store_load(st, err, sizeof(err)), 0);
	CHECK_INT(store_put(st, "z", "later", "{\"from\":\"a newer build\"}", 24), 0);
	CHECK_INT(store_put(st, "f", "x", "1", 1), 0);
	store_close(st);
	/* a build without "z", where "f" records do not apply */
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_STR(events, "");
	store_close(st);
	st = NULL;
	CHECK_INT(store_open(&st, &o, err, sizeof(err)), 0);
	if (!st)
		return;
	CHECK_INT(store_add_kind(st, &kf), 0);
	events[0] = 0;
	CHECK_INT(store_load(st, err, sizeof(err)), 0);
	CHECK_STR(events, "f:x=1;");
	CHECK_INT(store_compact(st, 1), 1);     /* the journal's records */
	CHECK_INT(store_compact(st, 1), 0);     /* nothing changed since */
	CHECK_INT(store_put(st, "f", "y", "2", 1), 0);
	CHECK_INT(store_compact(st, 1), 1);
	store_close(st);
	st = open_store(NULL, 0);
	if (!st)
		return;
	store_close(st);
	st = NULL;
	CHECK_INT(store_open(&st, &o, err, sizeof(err)), 0);
	if (!st)
		return;
	CHECK_INT(store_add_kind(st, &kz), 0);
	events[0] = 0;
	CHECK_INT(store_load(st, err, sizeof(err)), 0);
	CHECK_STR(events, "z:later={\"from\":\"a newer build\"};");
	CHECK_INT(store_get(st, "f", "x", buf, sizeof(buf)), 1);    /* kept, unknown here */
	store_close(st);
	rm_tmp();
}

static void test_newer_version_and_foreign_files(void)
{
	unsigned char h[STORE_HDR_SIZE];
	struct store *st;
	char err[256];
	int fd, rc;

	mkdir_tmp();
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_INT(store_put(st, "a", "1", "1", 1), 0);
	store_close(st);
	fd = open(file(journal_name()), O_RDWR);
	CHECK(fd >= 0 && pread(fd, h, sizeof(h), 0) == sizeof(h));
	h[8] = STORE_VERSION + 1;
	CHECK(pwrite(fd, h, sizeof(h), 0) == sizeof(h));
	st = open_store(&rc, 0);
	CHECK_INT(rc, -EPROTONOSUPPORT);
	store_close(st);
	/* a corrupt header is not a torn tail: refuse */
	h[8] = STORE_VERSION;
	h[20] ^= 1;
	CHECK(pwrite(fd, h, sizeof(h), 0) == sizeof(h));
	st = open_store(&rc, 0);
	CHECK_INT(rc, -EBADMSG);
	store_close(st);
	CHECK(pwrite(fd, "something else entirely", 24, 0) == 24);
	close(fd);
	st = open_store(&rc, 0);
	CHECK_INT(rc, -EBADMSG);
	store_close(st);
	/* a corrupt snapshot stops the start (a rename never leaves one torn) */
	unlink(file(journal_name()));
	st = open_store(NULL, 0);
	if (!st)
		return;
	CHECK_INT(store_put(st, "a", "1", "1", 1), 0);
	CHECK_INT(store_compact(st, 1), 1);
	store_close(st);
	CHECK_INT(truncate(file("state/snapshot"), file_size("state/snapshot") - 1), 0);
	st = open_store(&rc, 0);
	CHECK_INT(rc, -EBADMSG);
	store_close(st);
	(void)err;
	rm_tmp();
}

static void test_lock_and_bad_directory(void)
{
	struct store_opts o = { NULL, 0, 0, 0, 0 };
	struct store *st, *st2 = NULL;
	char err[256];
	int rc;

	mkdir_tmp();
	st = open_store(NULL, 0);
	o.path = file("state");
	rc = store_open(&st2, &o, err, sizeof(err));
	CHECK_INT(rc, -EBUSY);
	CHECK(st2 == NULL && strstr(err, "in use by another") != NULL);
	store_close(st);
	o.path = file("missing/parent/state");
	rc = store_open(&st2, &o, err, sizeof(err));
	CHECK_INT(rc, -ENOENT);
	CHECK(strstr(err, "cannot create the directory") != NULL);
	o.path = "/proc/version";      /* a file, not a directory */
	rc = store_open(&st2, &o, err, sizeof(err));
	CHECK(rc < 0 && st2 == NULL);
	rm_tmp();
}

static int count_cb(void *arg, const char *id, const char *json, size_t len)
{
	(*(int *)arg)++;
	return on_apply("m", id, json, len);
}

static void test_memory_only(void)
{
	static const struct store_kind km = { "m", on_apply, "m" };
	static const struct store_kind kf = { "f", on_apply_fail, "f" };
	struct store_opts o = { NULL, 0, 0, 0, 0 };
	struct store_stats ss;
	struct store *st = NULL;
	char err[64];
	int n = 0;

	CHECK_INT(store_open(&st, &o, err, sizeof(err)), 0);
	if (!st)
		return;
	CHECK(store_path(st) == NULL);
	CHECK_INT(store_add_kind(st, &km), 0);
	CHECK_INT(store_load(st, err, sizeof(err)), 0);
	CHECK_INT(store_put(st, "m", "up1", "{\"balance\":\"least_conn\"}", 24), 0);
	CHECK_INT(store_put(st, "m", "up2", "{}", 2), 0);
	CHECK_INT(store_put(st, "m", "up1", "{\"balance\":\"ip_hash\"}", 21), 0);
	CHECK_INT(store_compact(st, 1), 0);
	events[0] = 0;
	CHECK_INT(store_reapply(st, "m"), 0);
	CHECK_STR(events, "m:up2={};m:up1={\"balance\":\"ip_hash\"};");
	CHECK_INT(store_foreach(st, "m", count_cb, &n), 0);
	CHECK_INT(n, 2);
	CHECK_INT(store_reapply(st, "nope"), -EINVAL);
	store_close(st);

	/* a record that does not apply does not stop the others */
	st = NULL;
	CHECK_INT(store_open(&st, &o, err, sizeof(err)), 0);
	if (!st)
		return;
	CHECK_INT(store_add_kind(st, &kf), 0);
	CHECK_INT(store_put(st, "f", "1", "1", 1), 0);
	CHECK_INT(store_put(st, "f", "2", "2", 1), 0);
	events[0] = 0;
	CHECK_INT(store_reapply(st, "f"), 0);
	CHECK_STR(events, "f:1=1;f:2=2;");
	store_stats(st, &ss);
	CHECK_INT(ss.durable, 0);
	CHECK_INT(ss.records, 2);
	store_close(st);
}

int main(void)
{
	rf_log_level = LOG_ERROR;       /* the dropped-tail warnings are expected */
	RUN(test_crc32c);
	RUN(test_put_get_replay_order);
	RUN(test_unchanged_writes_nothing);
	RUN(test_torn_tail);
	RUN(test_bad_checksum);
	RUN(test_compaction);
	RUN(test_compaction_by_size);
	RUN(test_crash_between_snapshot_and_journal);
	RUN(test_appends_during_compaction);
	RUN(test_notes_reach_the_snapshot_only);
	RUN(test_unknown_kinds_and_failed_applies_are_kept);
	RUN(test_newer_version_and_foreign_files);
	RUN(test_lock_and_bad_directory);
	RUN(test_memory_only);
	TEST_REPORT();
}
