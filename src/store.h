/* store.h - the embedded state store: what the admin API changes survives
 * a restart and kill -9. State is a set of records (kind, id, JSON value);
 * a tombstone deletes one. Every change is appended to a journal, one
 * record with a CRC-32C each, and fdatasync'ed before store_put() returns;
 * the journal is compacted into a snapshot from time to time. On start-up
 * the snapshot and then the journal are replayed through the apply
 * callback of each record's kind (a table the owner fills), so a new kind
 * of state (the services registry, a Redis replica) is one more row.
 *
 * Files in the store directory (one process at a time, flock on "lock"):
 *   snapshot  header + the live records, grouped by kind, oldest first
 *   journal   header + records appended since that snapshot
 * Both begin with a 32-byte header: "rfstore\n", version, type, sequence,
 * record count, CRC-32C of the header. A record is
 *   crc32c u32 | value length u32 | kind length u8 | flags u8 |
 *   id length u16 | sequence u64 | kind | id | value
 * little-endian, the CRC covering everything after itself. Sequence
 * numbers grow by one per change; the snapshot header holds the newest
 * one it includes, and journal records at or below it are skipped, which
 * makes every step of compaction crash-safe. */
#ifndef RF_STORE_H
#define RF_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_VERSION    1
#define STORE_KIND_MAX   31             /* bytes of a kind name */
#define STORE_ID_MAX     1024           /* bytes of an id */
#define STORE_VALUE_MAX  (1u << 20)     /* bytes of a JSON value */
#define STORE_KINDS      16             /* rows in the kind table */
#define STORE_HDR_SIZE   32
#define STORE_REC_HDR    20

struct store;

/* Apply one record to the running process: <json> (<len> bytes, NUL
 * terminated) is its value, NULL for a tombstone. Returns 0 or a negative
 * errno; a record that does not apply is logged and kept. */
typedef int (*store_apply_fn)(void *arg, const char *id, const char *json, size_t len);

struct store_kind {
	const char *name;               /* static; 1..STORE_KIND_MAX bytes */
	store_apply_fn apply;
	void *arg;
};

struct store_opts {
	const char *path;               /* directory, created if missing; NULL/"" = memory only */
	uint64_t journal_max;           /* store_compact(st, 0) compacts beyond this; 0 = never */
	int chown;                      /* files created now go to uid:gid (started as root) */
	uid_t uid;
	gid_t gid;
};

struct store_stats {
	uint8_t durable;                /* has a directory */
	uint64_t records;               /* live (kind, id) pairs */
	uint64_t journal_bytes;
	uint64_t journal_records;       /* appended since the last snapshot */
	uint64_t last_seq;
	uint64_t snapshot_seq;          /* newest change the snapshot holds */
	uint64_t compactions;
	uint64_t dropped_bytes;         /* torn or corrupt journal tail dropped at load */
	uint64_t write_errors;
};

/* Open the store at o->path (or a memory-only one): create the directory
 * when missing, take its lock. Reads nothing yet. Returns 0, or a negative
 * errno with "store PATH: message" in <err>: -EBUSY when another process
 * holds it, the errno of mkdir/open otherwise. */
int store_open(struct store **out, const struct store_opts *o, char *err, size_t errlen);

/* Add a row to the kind table (before store_load). Returns 0, -EINVAL
 * (bad name) -EEXIST or -ENOSPC. */
int store_add_kind(struct store *st, const struct store_kind *k);

/* Replay the snapshot, then the journal, through the kinds' apply
 * callbacks, in the order the changes were made; drop (and log) a torn or
 * corrupt journal tail and truncate the file there; make the journal ready
 * for appends. Records of kinds not in the table are kept as they are.
 * Returns 0, or a negative errno with a message in <err>:
 * -EPROTONOSUPPORT (written by a newer format version), -EBADMSG (snapshot
 * corrupt, not a store file), or an I/O errno. */
int store_load(struct store *st, char *err, size_t errlen);

/* Record <kind>/<id> = <json> (<len> bytes) and make it durable: the
 * journal record is written and fdatasync'ed before this returns. Called
 * by admin handlers on a worker's thread: the synchronous write is fine
 * for admin traffic and must never happen on the request path. Unchanged
 * values write nothing. Returns 0, -EINVAL (unknown kind, sizes), -ENOMEM,
 * or -EIO after a failed write (the journal is left as it was; once its
 * state is unknown every later write fails until a compaction succeeds). */
int store_put(struct store *st, const char *kind, const char *id, const char *json, size_t len);

/* Delete <kind>/<id> (a tombstone in the journal); nothing to delete
 * writes nothing. Returns as store_put(). */
int store_del(struct store *st, const char *kind, const char *id);

/* Change <kind>/<id> in memory only (<json> NULL deletes): the next
 * snapshot has it, a crash before that loses it. For derived state that
 * may be lost, such as last-use times and expiry. Returns 0, -EINVAL,
 * -ENOMEM. */
int store_note(struct store *st, const char *kind, const char *id, const char *json,
	       size_t len);

/* Copy the value of <kind>/<id> into <buf> (NUL terminated). Returns its
 * length, -ENOENT, or -ENOSPC. */
int store_get(struct store *st, const char *kind, const char *id, char *buf, size_t cap);

/* Call <fn> for every live record of <kind>, oldest change first, on a
 * copy taken under the lock (fn may call the store). Returns 0, -ENOMEM,
 * or the first negative value fn returns (which stops the walk). */
int store_foreach(struct store *st, const char *kind, store_apply_fn fn, void *arg);

/* store_foreach() with the kind's own apply callback: re-applies its
 * state, e.g. to a runtime built by a configuration reload. A record that
 * does not apply is logged and skipped. Returns 0, -EINVAL (unknown kind)
 * or -ENOMEM. */
int store_reapply(struct store *st, const char *kind);

/* Write a snapshot of every live record (temp file, fsync, rename,
 * directory fsync), then restart the journal the same way. With <force>
 * 0 only when the journal holds more than journal_max bytes; with 1
 * whenever anything changed since the last snapshot. Appends go on
 * meanwhile: the file writes happen outside the lock. Returns 1 (written),
 * 0 (nothing to do, or memory only) or a negative errno. */
int store_compact(struct store *st, int force);

void store_stats(struct store *st, struct store_stats *out);

/* The directory, or NULL for a memory-only store. */
const char *store_path(const struct store *st);

/* Close the files, release the lock, free everything. */
void store_close(struct store *st);

#endif
