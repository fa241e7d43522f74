# ctl build fragment
bin_PROGRAMS += ctl/sluicectl
# Pure helpers (argument parsing, times, tables, JSON): also linked into
# the unit tests.
CTL_HELPER_SOURCES = \
	ctl/ctl.h \
	ctl/args.c \
	ctl/timefmt.c \
	ctl/table.c \
	ctl/render.c
ctl_sluicectl_SOURCES = \
	ctl/main.c \
	ctl/bus.c \
	ctl/grants.c \
	ctl/grant_wait.h \
	ctl/grant_wait.c \
	ctl/approvals.c \
	ctl/status.c \
	ctl/audit.c \
	ctl/replay.c \
	ctl/policy_check.c \
	ctl/explain.c \
	ctl/session.c \
	ctl/exec.h \
	ctl/exec.c \
	ctl/exec_session.c \
	ctl/token.h \
	ctl/token.c \
	$(CTL_HELPER_SOURCES)
ctl_sluicectl_CFLAGS = $(AM_CFLAGS) $(DBUS_CFLAGS) $(JANSSON_CFLAGS) $(SQLITE_CFLAGS) $(OPENSSL_CFLAGS) \
	$(PAM_CFLAGS)
ctl_sluicectl_LDADD = policy/libsluice-policy.la common/libsluice-common.la \
	$(DBUS_LIBS) $(JANSSON_LIBS) $(SQLITE_LIBS) $(OPENSSL_LIBS) $(PAM_LIBS)
