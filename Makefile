# bmfredis: PGXS build.  `make && make install`; the test suite is test/run.
MODULE_big = bmfredis
# src/<layer>/*.c, bottom up (docs/design.md); src/bmfredis.c is _PG_init
LAYERS = base wire pool client xact feature worker
SRCROOT := $(dir $(firstword $(MAKEFILE_LIST)))
OBJS = src/bmfredis.o \
	$(patsubst $(SRCROOT)%.c,%.o,$(foreach l,$(LAYERS),$(sort $(wildcard $(SRCROOT)src/$(l)/*.c))))

EXTENSION = bmfredis
DATA = sql/bmfredis--1.0.sql sql/bmfredis--1.1.sql sql/bmfredis--1.0--1.1.sql sql/bmfredis--1.1--1.2.sql
PGFILEDESC = "bmfredis - Redis cache, invalidation, pub/sub and locks for PostgreSQL"

# One regression suite per feature; they need a running Redis (test/run
# starts one and points the server's bmfredis.* settings at it).
REGRESS = cache ttl prefix bad_input admin faults invalidate tags pattern watch partitions cascade schedule bulk publish stats locks cached near_cache
REGRESS_OPTS = --load-extension=bmfredis --inputdir=. --outputdir=results

# Concurrency specs, in test/isolation/specs (run by test/run, and by
# make installcheck: the Debian package's autopkgtest).
ISOLATION = stale_refill rules_reload locks cached_guard
ISOLATION_OPTS = --inputdir=$(srcdir)/test/isolation --load-extension=bmfredis

SHLIB_LINK = -lhiredis -lssl -lcrypto
# PostgreSQL's headers are system headers to us: -Wextra judges our code only.
PG_CPPFLAGS = -I$(srcdir)/src -isystem $(includedir_server) -isystem $(includedir_internal)
# the library knows the version of the SQL objects it was built with (the
# worker logs when a database's objects are older: ALTER EXTENSION UPDATE)
EXTVERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(dir $(firstword $(MAKEFILE_LIST)))bmfredis.control)
PG_CPPFLAGS += -DBMFREDIS_VERSION='"$(EXTVERSION)"'

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# A VPATH build (Debian's pg_buildext builds in build-<version>/) puts the
# objects in a src/ of its own.
ifdef VPATH
$(shell mkdir -p $(addprefix src/,$(LAYERS)))
endif

# PGXS tracks no header dependencies: a struct that changes size in a
# header must rebuild every object that uses it (shared memory layout!).
$(OBJS): $(wildcard $(srcdir)/src/*/*.h)
# the version the library says it is comes from the control file
src/worker/worker.o: $(srcdir)/bmfredis.control

# The Debian packages (debian/), the PostgreSQL team's way:
# deb/postgresql-NN-bmfredis_<version>_amd64.deb for every PostgreSQL NN
# whose postgresql-server-dev-NN is installed (and that debian/pgversions
# allows), debian/control made for them from debian/control.in.  Built in
# a clean copy under deb/ (dpkg-buildpackage writes to the folder above the
# tree it builds: deb/, not the one above this checkout).  test/run package
# runs this, installs one of them, tests it and removes it.
.PHONY: deb
deb:
	rm -rf deb && mkdir -p deb/bmfredis
	if [ -d $(srcdir)/.git ] && command -v git >/dev/null; then \
		git -C $(srcdir) ls-files -co --exclude-standard -z | (cd $(srcdir) && tar -cf - --ignore-failed-read --null -T - 2>/dev/null) | tar -xf - -C deb/bmfredis; \
	else \
		(cd $(srcdir) && tar -cf - --exclude=./.git --exclude=./deb --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
			--exclude=./results --exclude=./bench/out --exclude='./build-[0-9]*' --exclude=./log --exclude=./tmp_check \
			--exclude=regression.diffs --exclude=regression.out --exclude='test/fuzz/*-fuzzer' --exclude='test/fuzz/corpus-*' .) | \
			tar -xf - -C deb/bmfredis; \
	fi
	cd deb/bmfredis && PG_SUPPORTED_VERSIONS=installed pg_buildext updatecontrol
	cd deb/bmfredis && PG_SUPPORTED_VERSIONS=installed dpkg-buildpackage -us -uc
	@ls deb/*.deb

# test/run asks for the suite lists, so they live in one place
.PHONY: print-regress print-isolation
print-regress:
	@echo $(REGRESS)
print-isolation:
	@echo $(ISOLATION)
