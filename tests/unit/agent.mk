# unit tests: agent/ (protocol framing, the event loop)
check_PROGRAMS += tests/unit/test_pgwire tests/unit/test_loop
TESTS += tests/unit/test_pgwire tests/unit/test_loop
tests_unit_test_pgwire_SOURCES = tests/unit/test_pgwire.c agent/pgwire.c agent/pgwire.h
tests_unit_test_pgwire_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_pgwire_LDADD = common/libsluice-common.la $(UNIT_LIBS)
tests_unit_test_loop_SOURCES = tests/unit/test_loop.c agent/loop.c agent/loop.h
tests_unit_test_loop_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_loop_LDADD = common/libsluice-common.la $(UNIT_LIBS)
