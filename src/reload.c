/* reload.c - building and publishing runtimes after start-up: a reload of
 * the file (SIGHUP, POST /reload) and a change of the dynamic services
 * (/services). Either builds a runtime from the file's text plus the
 * services, carries the running state over (runtime_inherit), publishes
 * it with one atomic store, and wakes the workers, which switch at the top
 * of their loop. Requests in flight finish on the runtime they started
 * with. What a running process cannot change (listening sockets, workers,
 * buffers, the rate limiter's and cache's own sections) keeps its start-up
 * value, and the log says so. */
#include <errno.h>
#include <pthread.h>
#include "common.h"
#include "log.h"
#include "persist.h"
#include "reload.h"
#include "worker.h"

/* Serialises every change; guards <registry> and <generation>. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t reload_generation = 1;
static struct services registry;

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
		F("[server] io", io),
		F("[server] batch_wait_us", batch_wait_us),
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

/* Add the services <svc> to <cfg> (the file's), then build the runtime
 * from them, take the running state over from <cur>, and publish it. Takes
 * <cfg> over. Returns 0 or a negative errno with the message in <err>. */
static int publish(struct runtime *cur, struct rf_config *cfg, const struct services *svc,
		   char *err, size_t errlen)
{
	struct rf_config *dyn;
	struct runtime *nrt;
	uint32_t i;
	int rc;

	rc = services_config(svc, &dyn, err, errlen);
	if (rc == 0 && dyn)
		rc = config_merge(cfg, dyn, err, errlen);
	if (rc < 0) {
		config_free(cfg);
		return rc;
	}
	nrt = runtime_new(cfg, cur->rl, reload_generation + 1);
	if (!nrt) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* the running state carries over; strategy, weight and drain changes
	 * recorded by the store apply on top, and admin changes wait until
	 * the new runtime is published */
	runtime_inherit(nrt, cur);
	persist_adopt(nrt);
	reload_generation++;
	/* the published reference moves from the old runtime to the new;
	 * <cur> stays the caller's to read until it drops the lock */
	cur = runtime_publish(nrt);
	persist_adopt_done();
	for (i = 0; i < rf_nworkers; i++)
		worker_wake(&rf_workers[i]);
	runtime_unref(cur);
	return 0;
}

int reload_config(char *err, size_t errlen, uint32_t *generation)
{
	struct runtime *cur;
	struct rf_config *cfg;
	int ret;

	pthread_mutex_lock(&reload_lock);
	cur = atomic_load(&rf_runtime);
	ret = config_load(cur->cfg->path, &cfg, err, errlen);
	if (ret == 0) {
		warn_restart_only(cur->cfg, cfg);
		ret = publish(cur, cfg, &registry, err, errlen);
	}
	if (ret < 0)
		log_error("msg=\"reload failed, the running configuration stays\" error=\"%s\"", err);
	else
		log_info("msg=\"configuration reloaded\" generation=%u upstreams=%u routes=%u",
			 reload_generation, atomic_load(&rf_runtime)->cfg->nupstreams,
			 atomic_load(&rf_runtime)->cfg->nroutes);
	if (generation)
		*generation = reload_generation;
	pthread_mutex_unlock(&reload_lock);
	return ret;
}

/* The file's text as it was loaded plus the services <svc>, published: a
 * services change is no reload. */
static int rebuild(struct runtime *cur, const struct services *svc, char *err, size_t errlen)
{
	struct rf_config *cfg;
	int ret;

	if (!cur->cfg->source)
		return -ENOTSUP;
	ret = config_parse(cur->cfg->path, cur->cfg->source, cur->cfg->source_len, &cfg, err,
			   errlen);
	if (ret < 0)
		return ret;
	cfg->source = rf_xstrndup(cur->cfg->source, cur->cfg->source_len);
	cfg->source_len = cur->cfg->source_len;
	return publish(cur, cfg, svc, err, errlen);
}

int reload_services_start(char *err, size_t errlen)
{
	int ret = 0;

	pthread_mutex_lock(&reload_lock);
	if (registry.n)
		ret = rebuild(atomic_load(&rf_runtime), &registry, err, errlen);
	if (ret < 0) {
		/* the file may have taken a name or route since: it wins */
		log_error("msg=\"stored services not applied; the file's configuration runs\" "
			  "error=\"%s\"", err);
		services_free(&registry);
	} else if (registry.n) {
		log_info("msg=\"services restored\" count=%u generation=%u", registry.n,
			 reload_generation);
	}
	pthread_mutex_unlock(&reload_lock);
	return ret;
}

int reload_service_restore(const struct service *s, const char *remove)
{
	struct services next;
	int ret;

	pthread_mutex_lock(&reload_lock);
	ret = services_with(&next, &registry, s, remove);
	if (ret == 0) {
		services_free(&registry);
		registry = next;
	}
	pthread_mutex_unlock(&reload_lock);
	return ret == -ENOENT ? 0 : ret;
}

int reload_service(const struct service *s, const char *remove, char *err, size_t errlen)
{
	struct services next;
	struct runtime *cur;
	int ret;

	pthread_mutex_lock(&reload_lock);
	cur = atomic_load(&rf_runtime);
	ret = services_with(&next, &registry, s, remove);
	if (ret == -ENOENT)
		snprintf(err, errlen, "no service '%s'", remove);
	else if (ret == -EEXIST)
		snprintf(err, errlen, "route '%s' exists already", s->route);
	else if (ret < 0)
		snprintf(err, errlen, "out of memory");
	else
		ret = rebuild(cur, &next, err, errlen);
	if (ret == 0) {
		services_free(&registry);
		registry = next;
		log_info("msg=\"service %s\" service=%s generation=%u", s ? "set" : "removed",
			 s ? s->name : remove, reload_generation);
	} else {
		services_free(&next);
	}
	pthread_mutex_unlock(&reload_lock);
	return ret;
}
