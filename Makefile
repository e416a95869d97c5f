# ringfront - quiet, hand-written Makefile. `make help` lists the targets.
#
# BUILD selects the flavour: release (default), debug (ASan+UBSan), tsan,
# profile. Each flavour has its own object directory; ./ringfront is a copy
# of the last flavour built, re-linked whenever the flavour changes.

BUILD ?= release
CC ?= cc
V ?= 0

ifeq ($(V),0)
Q := @
msg = @printf '  %-7s %s\n' $(1) $(2);
else
Q :=
msg =
endif

WARN := -Wall -Wextra -Werror -Wundef -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASE := -std=c11 -D_GNU_SOURCE -g -fno-omit-frame-pointer -pthread -MMD -MP -Isrc $(WARN)

ifeq ($(BUILD),release)
  OPT := -O2
else ifeq ($(BUILD),profile)
  OPT := -O2 -fno-inline-functions-called-once
else ifeq ($(BUILD),debug)
  OPT := -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -DRF_DEBUG=1
else ifeq ($(BUILD),tsan)
  OPT := -O1 -fsanitize=thread -DRF_DEBUG=1
else
  $(error BUILD must be release, debug, tsan or profile)
endif

URING_VERSION := $(shell pkg-config --modversion liburing 2>/dev/null || echo unknown)
CFLAGS_ALL := $(BASE) $(OPT) $(CFLAGS)
LDFLAGS_ALL := $(OPT) -pthread $(LDFLAGS)
LIBS := -luring

OUT := build/$(BUILD)
SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:src/%.c=$(OUT)/%.o)
LIB_OBJS := $(filter-out $(OUT)/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(OUT)/tests/%)
TOOL_BINS := build/demo-backend build/fleet

.PHONY: all debug tsan profile release run test test-unit test-integration test-epoll \
        test-tsan test-idle bench bench-keys bench-resp bench-idle clean help deps deps-test FORCE

all: ringfront $(TOOL_BINS)

help:
	@echo 'make               build ./ringfront (release) and the demo tools'
	@echo 'make debug         build with AddressSanitizer + UndefinedBehaviorSanitizer'
	@echo 'make tsan          build with ThreadSanitizer'
	@echo 'make profile       build with symbols and frame pointers for perf'
	@echo 'make run           start the demo stack: two demo backends + ringfront on :8080'
	@echo 'make test          run every unit and integration test (BUILD=debug to sanitize),'
	@echo '                   then most integration tests again on the epoll backend'
	@echo 'make test-epoll    every test on the epoll backend (= make test IO=epoll)'
	@echo 'make test-tsan     ThreadSanitizer: unit tests, cross-worker integration tests, a short soak'
	@echo 'make test-idle     50,000 idle keep-alive connections (or the fd limit) within 500 MB RSS'
	@echo 'make bench         side-by-side benchmark against HAProxy and nginx'
	@echo 'make bench-keys    memory per rate-limit key against HAProxy and nginx'
	@echo 'make bench-resp    the Redis-protocol port against redis-server (redis-benchmark)'
	@echo 'make bench-idle    RSS per idle keep-alive connection against HAProxy and nginx'
	@echo 'make fuzz          libFuzzer targets under ASan+UBSan, FUZZ_TIME s each (60)'
	@echo 'make soak          mixed traffic against the ASan build for SOAK_TIME s (600)'
	@echo 'make clean         remove build outputs'
	@echo 'make install       install binary, man pages, unit, example config (PREFIX=/usr/local DESTDIR=)'
	@echo 'make uninstall     remove what make install installed (an edited config stays)'
	@echo 'V=1                show the full commands'

debug release tsan profile:
	$(Q)$(MAKE) --no-print-directory BUILD=$@ all

# Install build dependencies (liburing) when they are missing.
deps:
	$(Q)tools/install-deps.sh build

deps-test:
	$(Q)tools/install-deps.sh test

# ./ringfront is re-linked when the flavour differs from the last one built.
# Copy then rename: a running ./ringfront keeps its old inode.
ringfront: $(OUT)/ringfront build/.flavour-$(BUILD)
	$(Q)cp $(OUT)/ringfront $@.tmp && mv -f $@.tmp $@

build/.flavour-$(BUILD):
	$(Q)mkdir -p build && rm -f build/.flavour-* && touch $@

$(OUT)/ringfront: $(OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(OBJS) $(LIBS)

$(OUT)/main.o: CFLAGS_ALL += -DRF_LIBURING_VERSION='"$(URING_VERSION)"'

$(OUT)/%.o: src/%.c | deps-stamp
	@mkdir -p $(dir $@)
	$(call msg,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) -c -o $@ $<

.PHONY: deps-stamp
deps-stamp:
	$(Q)test -f /usr/include/liburing.h || tools/install-deps.sh build

$(OUT)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(LIB_OBJS) $(LDFLAGS_ALL) $(LIBS)

# The demo tools are plain C with no sanitizers: they are fixtures, not the
# code under test, and must stay fast enough to drive benchmarks.
build/%: tools/%.c src/common.h
	@mkdir -p build
	$(call msg,CC,$<)
	$(Q)$(CC) -std=c11 -D_GNU_SOURCE -O2 -g -pthread $(WARN) -Isrc -o $@ $<

build/demo-backend: tools/demo-backend.c
build/fleet: tools/fleet.c

run: all
	$(Q)tools/demo.sh

# IO=uring|epoll|auto runs the integration tests on that backend ([server]
# io of every configuration they start; tests/run.sh).
test: deps-test all $(UNIT_BINS)
	$(Q)BUILD=$(BUILD) RF_IO=$(IO) tests/run.sh $(OUT)/tests

test-epoll:
	$(Q)$(MAKE) --no-print-directory test IO=epoll

test-unit: $(UNIT_BINS)
	$(Q)BUILD=$(BUILD) tests/run.sh --unit-only $(OUT)/tests

# ThreadSanitizer over the whole binary: the unit tests (their two-thread
# hammers), the integration tests where workers share state (2 workers,
# reloads and services, cache and rate-limit shards, health, the stop
# paths) and a TSAN_SOAK_TIME s soak of mixed traffic, all against
# build/tsan/ringfront (./ringfront is left alone). Any report fails it:
# the harness fails a test whose ringfront printed one or exited 66. No
# suppressions: liburing's rings are read with acquire/release atomics and
# the kernel's writes are invisible to TSan, so they raise no false
# reports. About 3 minutes on 2 cores (TSAN_TESTS picks other tests).
TSAN_TESTS ?= test_signals.test_sigterm_after_sighup_and_twice \
	test_signals.test_second_sigterm_stops_at_once test_signals.test_sigterm_under_load \
	test_reload test_admin.test_services_registry test_admin.test_metrics_exposition_format \
	test_admin.test_stats_and_metrics_follow_traffic test_cache.test_concurrent_misses_coalesce \
	test_cache.test_redis_port test_cache.test_miss_then_hit test_ratelimit.test_two_workers \
	test_failures.test_two_workers_share_load test_failures.test_graceful_shutdown \
	test_proxy.test_keepalive_pooling test_abuse.test_connection_flood \
	test_balancing.test_backend_killed_under_load test_faults.test_backend_kill_restart
TSAN_SOAK_TIME ?= 45
TSAN_ENV = RINGFRONT=build/tsan/ringfront TSAN_OPTIONS="halt_on_error=0 exitcode=66 $(TSAN_OPTIONS)"
test-tsan:
	$(Q)$(MAKE) --no-print-directory BUILD=tsan test-unit
	$(Q)$(MAKE) --no-print-directory BUILD=tsan build/tsan/ringfront $(TOOL_BINS)
	$(Q)$(TSAN_ENV) python3 -u tests/integration/run.py $(TSAN_TESTS)
	$(Q)$(TSAN_ENV) SOAK_TIME=$(TSAN_SOAK_TIME) SOAK_RSS_GROWTH=1 python3 -u tests/soak/soak.py

# Issue 8's idle-connection target (tests/idle/idle.py): IDLE_CONNS (50,000,
# or what RLIMIT_NOFILE allows, then projected) idle keep-alive clients on
# ./ringfront within IDLE_RSS_MB (500). About 30 s.
test-idle: all
	$(Q)python3 -u tests/idle/idle.py

# BENCH_ARGS go to the script of the target: e.g.
# make bench-resp BENCH_ARGS="--quick"
bench: all
	$(Q)bench/wrk/run.sh $(BENCH_ARGS)

bench-keys: all
	$(Q)bench/keys/run.sh $(BENCH_ARGS)

bench-resp: all
	$(Q)bench/resp/run.sh $(BENCH_ARGS)

bench-idle: all
	$(Q)bench/idle/run.sh $(BENCH_ARGS)

# Fuzzing and the soak test (tests/README.md). `make fuzz` builds the
# libFuzzer targets of tests/fuzz/ with clang into build/fuzz/ and runs each
# for FUZZ_TIME seconds (FUZZ_TARGETS to pick some); crash inputs go to
# tests/fuzz/crashes/. `make soak` runs tests/soak/soak.sh for SOAK_TIME s.
FUZZ_TIME ?= 60
SOAK_TIME ?= 600
.PHONY: fuzz soak
fuzz:
	$(Q)FUZZ_TIME=$(FUZZ_TIME) tests/fuzz/run.sh $(FUZZ_TARGETS)

soak:
	$(Q)SOAK_TIME=$(SOAK_TIME) tests/soak/soak.sh

# test_fuzz_corpus #includes the fuzz targets: rebuild it when they change
$(OUT)/tests/test_fuzz_corpus: $(wildcard tests/fuzz/*.c tests/fuzz/*.h)

clean:
	rm -rf build ringfront

# ---- install / uninstall: PREFIX (default /usr/local) and DESTDIR as usual.
# The files and their places are listed in ringfront(8), FILES. With
# PREFIX=/usr the configuration goes to /etc, otherwise to PREFIX/etc. The
# unit file is rewritten for the chosen paths. An existing configuration is
# never overwritten, and uninstall keeps it when it differs from the example.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/ringfront
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALL ?= install
CONF_DEST := $(DESTDIR)$(SYSCONFDIR)/ringfront/ringfront.ini
EXAMPLES := $(DESTDIR)$(DOCDIR)/examples

.PHONY: install uninstall
install: ringfront
	$(Q)$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
		$(EXAMPLES) $(DESTDIR)$(SYSCONFDIR)/ringfront $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	$(Q)$(INSTALL) -m 755 ringfront $(DESTDIR)$(SBINDIR)/ringfront
	$(Q)$(INSTALL) -m 644 doc/ringfront.8 $(DESTDIR)$(MANDIR)/man8/ringfront.8
	$(Q)$(INSTALL) -m 644 doc/ringfront.ini.5 $(DESTDIR)$(MANDIR)/man5/ringfront.ini.5
	$(Q)$(INSTALL) -m 644 conf/default.ini $(EXAMPLES)/ringfront.ini
	$(Q)$(INSTALL) -m 644 tools/logrotate.ringfront $(EXAMPLES)/logrotate.ringfront
	$(Q)test -e $(CONF_DEST) || $(INSTALL) -m 644 conf/default.ini $(CONF_DEST)
	$(Q)sed -e 's|/usr/sbin/ringfront|$(SBINDIR)/ringfront|g' \
		-e 's|/etc/ringfront/|$(SYSCONFDIR)/ringfront/|g' tools/ringfront.service \
		> $(DESTDIR)$(UNITDIR)/ringfront.service.tmp
	$(Q)chmod 644 $(DESTDIR)$(UNITDIR)/ringfront.service.tmp
	$(Q)mv -f $(DESTDIR)$(UNITDIR)/ringfront.service.tmp $(DESTDIR)$(UNITDIR)/ringfront.service
	$(Q)$(INSTALL) -m 644 tools/ringfront.sysusers $(DESTDIR)$(SYSUSERSDIR)/ringfront.conf

uninstall:
	$(Q)if [ -e $(CONF_DEST) ] && ! cmp -s $(CONF_DEST) $(EXAMPLES)/ringfront.ini; then \
		echo "kept $(CONF_DEST): it differs from the installed example"; \
	else rm -f $(CONF_DEST); rmdir $(DESTDIR)$(SYSCONFDIR)/ringfront 2>/dev/null || true; fi
	$(Q)rm -f $(DESTDIR)$(SBINDIR)/ringfront $(DESTDIR)$(MANDIR)/man8/ringfront.8 \
		$(DESTDIR)$(MANDIR)/man5/ringfront.ini.5 $(EXAMPLES)/ringfront.ini \
		$(EXAMPLES)/logrotate.ringfront $(DESTDIR)$(UNITDIR)/ringfront.service \
		$(DESTDIR)$(SYSUSERSDIR)/ringfront.conf
	$(Q)rmdir $(EXAMPLES) $(DESTDIR)$(DOCDIR) 2>/dev/null || true

-include $(OBJS:.o=.d)
