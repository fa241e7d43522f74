# unit tests: common/
check_PROGRAMS += tests/unit/test_duration
TESTS += tests/unit/test_duration
tests_unit_test_duration_SOURCES = tests/unit/test_duration.c
tests_unit_test_duration_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_duration_LDADD = common/libsluice-common.la $(UNIT_LIBS)
