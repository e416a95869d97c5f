/* replay.c - run inputs through a fuzz target without libFuzzer: the
 * regression runner for saved crash inputs and corpora, and a way to debug
 * one input under gdb or valgrind.
 *
 *   build/fuzz/replay_http_request tests/fuzz/corpus/http_request crash-1234
 *
 * Every argument is a file or a directory (its regular files, sorted). Built
 * by tests/fuzz/run.sh with -DFUZZ_REPLAY next to each fuzz_NAME.c; the unit
 * test tests/unit/test_fuzz_corpus.c includes it with FUZZ_UNIT for
 * fuzz_replay_path() alone. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef int (*fuzz_one_fn)(const uint8_t *data, size_t size);

/* Read <path> whole into a malloc'd buffer of exactly its size (so ASan
 * catches a read past the end). Returns 0 or -errno. */
static int fuzz_read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL, *nb;
	size_t n = 0, cap = 0, got;

	if (!f)
		return -errno;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	/* shrink to the exact size: bytes past the input are out of bounds */
	nb = malloc(n ? n : 1);
	if (!nb) {
		free(buf);
		return -ENOMEM;
	}
	if (n)
		memcpy(nb, buf, n);
	free(buf);
	*out = nb;
	*len = n;
	return 0;
}

static int fuzz_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run <path> (a file, or every regular file of a directory in name order)
 * through <fn>. <each> is called before every input with its name, so a
 * caller can report which one failed. Returns the number of inputs run,
 * or -errno when <path> cannot be read. */
static long fuzz_replay_path(const char *path, fuzz_one_fn fn,
			     void (*each)(const char *name, void *arg), void *arg)
{
	struct stat st;
	struct dirent *de;
	char **names = NULL, **nn, full[4096];
	size_t nnames = 0, cap = 0, i;
	long count = 0;
	uint8_t *data;
	size_t len;
	DIR *d;
	int rc;

	if (stat(path, &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		if ((rc = fuzz_read_file(path, &data, &len)) != 0)
			return rc;
		if (each)
			each(path, arg);
		fn(data, len);
		free(data);
		return 1;
	}
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (nnames == cap) {
			cap = cap ? cap * 2 : 64;
			nn = realloc(names, cap * sizeof *names);
			if (!nn)
				break;
			names = nn;
		}
		names[nnames] = strdup(de->d_name);
		if (names[nnames])
			nnames++;
	}
	closedir(d);
	if (nnames)
		qsort(names, nnames, sizeof *names, fuzz_cmp);
	for (i = 0; i < nnames; i++) {
		snprintf(full, sizeof full, "%s/%s", path, names[i]);
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode) &&
		    fuzz_read_file(full, &data, &len) == 0) {
			if (each)
				each(full, arg);
			fn(data, len);
			free(data);
			count++;
		}
		free(names[i]);
	}
	free(names);
	return count;
}

#ifdef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_print_name(const char *name, void *arg)
{
	if (*(int *)arg)
		fprintf(stderr, "replay: %s\n", name);
}

int main(int argc, char **argv)
{
	long n, total = 0;
	int i, verbose = getenv("FUZZ_VERBOSE") != NULL;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++) {
		n = fuzz_replay_path(argv[i], LLVMFuzzerTestOneInput, fuzz_print_name, &verbose);
		if (n < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror((int)-n));
			return 2;
		}
		total += n;
	}
	printf("replay: %ld inputs passed\n", total);
	return 0;
}
#endif
