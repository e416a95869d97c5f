/* main.c - command line, configuration, listening sockets, worker threads
 * and signals. The main thread only waits for signals; workers do all I/O. */
#include <errno.h>
#include <liburing.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"
#include "config.h"
#include "listen.h"
#include "log.h"
#include "worker.h"

#define RF_VERSION "0.1.0"
#ifndef RF_LIBURING_VERSION
#define RF_LIBURING_VERSION "unknown"
#endif

static void usage(FILE *out)
{
	fputs("usage: ringfront [-t] -c FILE\n"
	      "       ringfront -v | -h\n"
	      "  -c FILE  configuration file (INI)\n"
	      "  -t       check the configuration and exit (0 = valid)\n"
	      "  -v       print the version and io_uring support, then exit\n"
	      "  -h       print this help\n", out);
}

static void print_version(void)
{
	struct io_uring_probe *probe = io_uring_get_probe();

	printf("ringfront %s\nliburing %s\n", RF_VERSION, RF_LIBURING_VERSION);
	if (!probe) {
		printf("io_uring: not available on this kernel\n");
		return;
	}
	printf("io_uring: available (multishot accept %s, send_zc %s)\n",
	       io_uring_opcode_supported(probe, IORING_OP_ACCEPT) ? "yes" : "no",
	       io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) ? "yes" : "no");
	io_uring_free_probe(probe);
}

static uint32_t worker_count(const struct rf_config *cfg)
{
	long n;

	if (cfg->workers)
		return cfg->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (uint32_t)n : 1;
}

/* Raise the descriptor limit to its hard maximum, and warn when
 * max_connections cannot fit (each proxied request may need two fds). */
static void raise_fd_limit(const struct rf_config *cfg)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < (rlim_t)cfg->max_connections + 64)
		log_warn("msg=\"descriptor limit below max_connections\" nofile=%llu max_connections=%u",
			 (unsigned long long)rl.rlim_cur, cfg->max_connections);
}

static int run(struct runtime *rt)
{
	const struct rf_config *cfg = rt->cfg;
	uint32_t nworkers = worker_count(cfg), i, j, started = 0;
	struct endpoint eps[RF_MAX_ENDPOINTS];
	unsigned neps = endpoints_collect(cfg, eps);
	struct worker *workers;
	int *fds, ret = 0, sig;
	sigset_t set;

	workers = aligned_alloc(64, ((sizeof(*workers) * nworkers) + 63) & ~(size_t)63);
	fds = calloc((size_t)nworkers * neps, sizeof(*fds));
	if (!workers || !fds) {
		log_error("msg=\"out of memory at start-up\"");
		return 1;
	}
	for (i = 0; i < nworkers; i++) {
		for (j = 0; j < neps; j++) {
			int fd = endpoint_open(&eps[j], 4096);

			if (fd < 0) {
				log_error("msg=\"cannot listen\" address=%s kind=%s error=\"%s\"",
					  eps[j].addr->text, listen_kind_name(eps[j].kind),
					  strerror(-fd));
				return 1;
			}
			fds[i * neps + j] = fd;
		}
	}
	/* Workers inherit this mask: only the main thread takes signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (i = 0; i < nworkers; i++) {
		ret = worker_start(&workers[i], (int)i, rt, eps, neps, &fds[i * neps]);
		if (ret < 0)
			break;
		started++;
	}
	rf_workers = workers;
	rf_nworkers = started;
	if (started == nworkers) {
		log_info("msg=\"ringfront started\" version=%s workers=%u listen=%s config=%s",
			 RF_VERSION, nworkers, cfg->listen[0].text, cfg->path);
		for (;;) {
			if (sigwait(&set, &sig) != 0)
				continue;
			if (sig == SIGINT || sig == SIGTERM)
				break;
			if (sig == SIGUSR1 && log_open(cfg->log_file) < 0)
				log_error("msg=\"cannot reopen log file\" path=%s", cfg->log_file);
			if (sig == SIGHUP)
				log_warn("msg=\"reload is not supported yet; restart to apply changes\"");
		}
		log_info("msg=\"stopping\" signal=%d shutdown_timeout_ms=%u", sig,
			 cfg->shutdown_timeout_ms);
	}
	atomic_store(&rf_stop_requested, 1);
	for (i = 0; i < started; i++)
		worker_wake(&workers[i]);
	for (i = 0; i < started; i++)
		worker_join(&workers[i]);
	for (i = started; i < nworkers; i++)
		for (j = 0; j < neps; j++)
			close(fds[i * neps + j]);
	free(workers);
	free(fds);
	if (started != nworkers)
		return 1;
	log_info("msg=\"stopped\"");
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	struct rf_config *cfg;
	struct runtime rt;
	char err[512];
	int opt, check = 0, ret, afd = -1;

	while ((opt = getopt(argc, argv, "c:tvh")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'v':
			print_version();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!path) {
		usage(stderr);
		return 2;
	}
	if (config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (check) {
		printf("%s: configuration ok\n", path);
		config_free(cfg);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	rf_log_level = (int)cfg->log_level;
	if (cfg->log_file && (ret = log_open(cfg->log_file)) < 0) {
		fprintf(stderr, "%s: cannot open log_file %s: %s\n", path,
			cfg->log_file, strerror(-ret));
		config_free(cfg);
		return 1;
	}
	if (cfg->access_log) {
		afd = access_log_open(cfg->access_log);
		if (afd < 0) {
			fprintf(stderr, "%s: cannot open access_log %s: %s\n", path,
				cfg->access_log, strerror(-afd));
			config_free(cfg);
			return 1;
		}
	}
	raise_fd_limit(cfg);
	if (runtime_init(&rt, cfg) < 0) {
		fprintf(stderr, "ringfront: out of memory\n");
		return 1;
	}
	rf_access_log_fd = afd;
	ret = run(&rt);
	runtime_free(&rt);
	if (afd >= 0)
		close(afd);
	return ret;
}
