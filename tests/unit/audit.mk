# unit tests: audit
check_PROGRAMS += tests/unit/test_auditdb
TESTS += tests/unit/test_auditdb
tests_unit_test_auditdb_SOURCES = tests/unit/test_auditdb.c
tests_unit_test_auditdb_CFLAGS = $(UNIT_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_auditdb_LDADD = common/libsluice-common.la $(UNIT_LIBS)

# agent/audit.c is compiled in directly: sluiced is a program, not a library.
check_PROGRAMS += tests/unit/test_audit
TESTS += tests/unit/test_audit
tests_unit_test_audit_SOURCES = tests/unit/test_audit.c agent/audit.c agent/audit.h
tests_unit_test_audit_CFLAGS = $(UNIT_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_audit_LDADD = common/libsluice-common.la $(UNIT_LIBS)
