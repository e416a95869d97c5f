/* reload.c - hot reload: build a runtime from the file, publish it with
 * one atomic store, and wake the workers, which switch at the top of their
 * loop. Requests in flight finish on the runtime they started with. What a
 * running process cannot change (listening sockets, workers, buffers, the
 * rate limiter's and cache's own sections) keeps its start-up value, and
 * the log says so. */
#include <errno.h>
#include <pthread.h>
#include "common.h"
#include "log.h"
#include "persist.h"
#include "reload.h"
#include "worker.h"

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t reload_generation = 1;

/* Settings bound to resources created at start-up. */
static void warn_restart_only(const struct rf_config *a, const struct rf_config *b)
{
	static const struct {
		const char *what;
		size_t off;
		size_t len;
	} fields[] = {
#define F(name, field) { name, offsetof(struct rf_config, field), \
			 sizeof(((struct rf_config *)0)->field) }
		F("[server] listen", listen),
		F("[server] workers", workers),
		F("[server] max_connections", max_connections),
		F("[server] max_header_size", max_header_size),
		F("[server] max_uri_size", max_uri_size),
		F("[server] recv_buffers", recv_buffers),
		F("[server] recv_buffer_size", recv_buffer_size),
		F("[admin] listen", admin.listen),
		F("[ratelimit]", ratelimit.enabled),
		F("[cache]", cache.enabled),
#undef F
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fields); i++)
		if (memcmp((const char *)a + fields[i].off, (const char *)b + fields[i].off,
			   fields[i].len))
			log_warn("msg=\"changed setting needs a restart; the running value stays\" setting=\"%s\"",
				 fields[i].what);
}

int reload_config(char *err, size_t errlen)
{
	struct runtime *cur, *nrt;
	struct rf_config *cfg;
	uint32_t i;
	int ret;

	pthread_mutex_lock(&reload_lock);
	cur = atomic_load(&rf_runtime);
	ret = config_load(cur->cfg->path, &cfg, err, errlen);
	if (ret < 0) {
		log_error("msg=\"reload failed, the running configuration stays\" error=\"%s\"", err);
		goto out;
	}
	warn_restart_only(cur->cfg, cfg);
	nrt = runtime_new(cfg, cur->rl, ++reload_generation);
	if (!nrt) {
		snprintf(err, errlen, "%s: out of memory", cur->cfg->path);
		ret = -ENOMEM;
		goto out;
	}
	/* strategy, weight and drain changes made at run time outlive the
	 * reload; admin changes wait until the new runtime is published */
	persist_adopt(nrt);
	/* the published reference moves from the old runtime to the new */
	atomic_store_explicit(&rf_runtime, nrt, memory_order_release);
	persist_adopt_done();
	for (i = 0; i < rf_nworkers; i++)
		worker_wake(&rf_workers[i]);
	runtime_unref(cur);
	log_info("msg=\"configuration reloaded\" generation=%u upstreams=%u routes=%u",
		 nrt->generation, cfg->nupstreams, cfg->nroutes);
out:
	pthread_mutex_unlock(&reload_lock);
	return ret;
}
