# unit tests: agent/ (protocol framing, the event loop)
check_PROGRAMS += tests/unit/test_pgwire tests/unit/test_loop
TESTS += tests/unit/test_pgwire tests/unit/test_loop
tests_unit_test_pgwire_SOURCES = tests/unit/test_pgwire.c agent/pgwire.c agent/pgwire.h
tests_unit_test_pgwire_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_pgwire_LDADD = common/libsluice-common.la $(UNIT_LIBS)
tests_unit_test_loop_SOURCES = tests/unit/test_loop.c agent/loop.c agent/loop.h
tests_unit_test_loop_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_loop_LDADD = common/libsluice-common.la $(UNIT_LIBS)
# The agent's NSS snapshot (rendering, files, gids) and the host check;
# agent/ files compiled in directly, as for test_audit.
check_PROGRAMS += tests/unit/test_agent_nss
TESTS += tests/unit/test_agent_nss
tests_unit_test_agent_nss_SOURCES = tests/unit/test_agent_nss.c \
	agent/nss_snapshot.c agent/nss_snapshot.h agent/nss_gids.c agent/nss_gids.h
tests_unit_test_agent_nss_CFLAGS = $(UNIT_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_agent_nss_LDADD = policy/libsluice-policy.la common/libsluice-common.la $(UNIT_LIBS)
