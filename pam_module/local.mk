# pam_sluice.so, installed to $(pammoddir) (--with-pammoddir, default
# $(libdir)/security). It links libpam and libdbus only: common/dbusc.c and
# common/util.c are compiled into it (libsluice-common would drag sqlite,
# curl and OpenSSL into every program that runs a PAM stack). No -pthread:
# the module starts no threads. Only pam_sm_* are exported (version script
# plus -fvisibility=hidden).
pammod_LTLIBRARIES = pam_module/pam_sluice.la
PAM_SLUICE_HELPER_SOURCES = \
	pam_module/args.c pam_module/args.h \
	pam_module/token_file.c pam_module/token_file.h
pam_module_pam_sluice_la_SOURCES = \
	pam_module/pam_sluice.c \
	pam_module/agent_call.c pam_module/agent_call.h \
	$(PAM_SLUICE_HELPER_SOURCES) \
	common/dbusc.c common/dbusc.h \
	common/util.c common/util.h
pam_module_pam_sluice_la_CFLAGS = -std=gnu11 -fvisibility=hidden $(WARN_CFLAGS) $(HARDEN_CFLAGS) \
	$(DBUS_CFLAGS) $(PAM_CFLAGS)
# -z nodelete: libpam dlcloses modules at pam_end; unloading libdbus with us
# would lose the few hundred bytes of its global state on every handle of a
# long-running program (LeakSanitizer shows them), so both stay loaded.
pam_module_pam_sluice_la_LDFLAGS = $(HARDEN_LDFLAGS) -module -avoid-version -shared -no-undefined \
	-Wl,-z,nodelete -Wl,--version-script=$(srcdir)/pam_module/pam_sluice.map
pam_module_pam_sluice_la_LIBADD = $(DBUS_LIBS) $(PAM_LIBS)
EXTRA_pam_module_pam_sluice_la_DEPENDENCIES = pam_module/pam_sluice.map
EXTRA_DIST += pam_module/pam_sluice.map

# A PAM module is loaded by its .so name; libtool's .la is of no use there.
install-exec-hook: install-exec-hook-pam-sluice
install-exec-hook-pam-sluice:
	rm -f $(DESTDIR)$(pammoddir)/pam_sluice.la
uninstall-hook: uninstall-hook-pam-sluice
uninstall-hook-pam-sluice:
	rm -f $(DESTDIR)$(pammoddir)/pam_sluice.so
.PHONY: install-exec-hook-pam-sluice uninstall-hook-pam-sluice
