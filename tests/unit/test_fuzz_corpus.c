/* test_fuzz_corpus.c - replay every checked-in fuzz input (tests/fuzz/
 * corpus/NAME/: seeds and the crash inputs of fixed bugs) through the fuzz
 * targets' LLVMFuzzerTestOneInput, with their invariant checks, on every
 * `make test`. The targets are the same files libFuzzer builds (`make
 * fuzz`); here each is included under its own name. A failed invariant
 * names the input; a crash or sanitizer report fails the binary. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_UNIT 1

#define LLVMFuzzerTestOneInput fuzz_one_http_request
#include "../fuzz/fuzz_http_request.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_http_response
#include "../fuzz/fuzz_http_response.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_chunked
#include "../fuzz/fuzz_chunked.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_config
#include "../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_resp
#include "../fuzz/fuzz_resp.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_rl_line
#include "../fuzz/fuzz_rl_line.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_one_json
#include "../fuzz/fuzz_json.c"
#undef LLVMFuzzerTestOneInput

#include "../fuzz/replay.c"
#include "test.h"

static const char *corpus_root;
static const char *cur_input;

static void note_input(const char *name, void *arg)
{
	(void)arg;
	cur_input = name;
}

/* Run one target over its corpus directory; a failed invariant longjmps
 * back here with the input's name in cur_input. */
static void replay(const char *name, fuzz_one_fn fn, long min_inputs)
{
	static jmp_buf jb;
	char dir[512];
	volatile long n = 0;

	snprintf(dir, sizeof dir, "%s/%s", corpus_root, name);
	cur_input = NULL;
	fuzz_unit_jmp = &jb;
	if (setjmp(jb) == 0) {
		n = fuzz_replay_path(dir, fn, note_input, NULL);
	} else {
		fprintf(stderr, "  %s: invariant failed on %s\n", name, cur_input ? cur_input : "?");
		CHECK(!"invariant holds for every corpus input");
		n = min_inputs;
	}
	fuzz_unit_jmp = NULL;
	if (n < min_inputs)
		fprintf(stderr, "  %s: %ld inputs in %s, expected at least %ld\n", name, n, dir,
			min_inputs);
	CHECK(n >= min_inputs);
}

static void test_http_request_corpus(void)  { replay("http_request", fuzz_one_http_request, 10); }
static void test_http_response_corpus(void) { replay("http_response", fuzz_one_http_response, 10); }
static void test_chunked_corpus(void)       { replay("chunked", fuzz_one_chunked, 10); }
static void test_config_corpus(void)        { replay("config", fuzz_one_config, 10); }
static void test_resp_corpus(void)          { replay("resp", fuzz_one_resp, 10); }
static void test_rl_line_corpus(void)       { replay("rl_line", fuzz_one_rl_line, 5); }
static void test_json_corpus(void)          { replay("json", fuzz_one_json, 10); }

int main(void)
{
	corpus_root = getenv("RF_FUZZ_CORPUS");
	if (!corpus_root)
		corpus_root = "tests/fuzz/corpus";
	RUN(test_http_request_corpus);
	RUN(test_http_response_corpus);
	RUN(test_chunked_corpus);
	RUN(test_config_corpus);
	RUN(test_resp_corpus);
	RUN(test_rl_line_corpus);
	RUN(test_json_corpus);
	TEST_REPORT();
}
