# libnss_sluice.so.2, installed to $(libdir) like glibc's own NSS modules
# (glibc dlopens "libnss_<service>.so.2"). libtool builds it as a module
# named .so.2 (-shrext), soname included. Links libc only: no
# libsluice-common, no -pthread (glibc >= 2.34 has pthread in libc), and
# it starts no threads. Only _nss_sluice_* are exported (version script
# plus -fvisibility=hidden). The directory it reads is compiled in
# (--with-nss-dir, default /run/sluice/nss, matching sluiced's default
# runtime_dir); SLUICE_NSS_DIR overrides it for tests (secure_getenv).
nssmoddir = $(libdir)
nssmod_LTLIBRARIES = nss/libnss_sluice.la
NSS_SLUICE_SOURCES = nss/nss_sluice.c nss/nss_sluice.h nss/snapshot.c nss/snapshot.h
NSS_SLUICE_CPPFLAGS = $(AM_CPPFLAGS) -DSLUICE_NSS_DIR='"$(nssdir)"'
nss_libnss_sluice_la_SOURCES = $(NSS_SLUICE_SOURCES)
nss_libnss_sluice_la_CPPFLAGS = $(NSS_SLUICE_CPPFLAGS)
nss_libnss_sluice_la_CFLAGS = -std=gnu11 -fvisibility=hidden $(WARN_CFLAGS) $(HARDEN_CFLAGS)
# -z nodelete: glibc never unloads an NSS module, but nss_wrapper and
# others dlclose theirs; the cached snapshot would then be lost memory.
nss_libnss_sluice_la_LDFLAGS = $(HARDEN_LDFLAGS) -module -avoid-version -shrext .so.2 -shared \
	-no-undefined -Wl,-z,nodelete -Wl,--version-script=$(srcdir)/nss/nss_sluice.map
EXTRA_nss_libnss_sluice_la_DEPENDENCIES = nss/nss_sluice.map
EXTRA_DIST += nss/nss_sluice.map

# glibc loads the module by its .so.2 name; libtool's .la is of no use.
# A data hook: automake installs a directory whose name lacks "exec" with
# install-data, after install-exec-hook has run.
install-data-hook: install-data-hook-nss-sluice
install-data-hook-nss-sluice:
	rm -f $(DESTDIR)$(nssmoddir)/libnss_sluice.la
uninstall-hook: uninstall-hook-nss-sluice
uninstall-hook-nss-sluice:
	rm -f $(DESTDIR)$(nssmoddir)/libnss_sluice.so.2
.PHONY: install-data-hook-nss-sluice uninstall-hook-nss-sluice

# bench/nss_lookup: getpwnam_r through the module with 1,000 entries, next
# to glibc's files module (see bench/README.md). Built by `make check`,
# run by hand from the build directory.
check_PROGRAMS += bench/nss_lookup
bench_nss_lookup_SOURCES = bench/nss_lookup.c $(NSS_SLUICE_SOURCES)
bench_nss_lookup_CPPFLAGS = $(NSS_SLUICE_CPPFLAGS)
