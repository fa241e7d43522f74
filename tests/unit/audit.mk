# unit tests: audit
check_PROGRAMS += tests/unit/test_auditdb
TESTS += tests/unit/test_auditdb
tests_unit_test_auditdb_SOURCES = tests/unit/test_auditdb.c
tests_unit_test_auditdb_CFLAGS = $(UNIT_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_auditdb_LDADD = common/libsluice-common.la $(UNIT_LIBS)
