# unit tests: policy
check_PROGRAMS += tests/unit/test_policy_corpus tests/unit/test_policy_values tests/unit/test_policy_load
TESTS += tests/unit/test_policy_corpus tests/unit/test_policy_values tests/unit/test_policy_load
POLICY_TEST_LIBS = policy/libsluice-policy.la common/libsluice-common.la $(UNIT_LIBS)

tests_unit_test_policy_corpus_SOURCES = tests/unit/test_policy_corpus.c
tests_unit_test_policy_corpus_CPPFLAGS = $(AM_CPPFLAGS) \
	-DCONFIG_CORPUS='"$(abs_top_srcdir)/tests/unit/configs"' \
	-DDATA_DIR='"$(abs_top_srcdir)/data"'
tests_unit_test_policy_corpus_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_policy_corpus_LDADD = $(POLICY_TEST_LIBS)

tests_unit_test_policy_values_SOURCES = tests/unit/test_policy_values.c
tests_unit_test_policy_values_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_policy_values_LDADD = $(POLICY_TEST_LIBS)

tests_unit_test_policy_load_SOURCES = tests/unit/test_policy_load.c
tests_unit_test_policy_load_CPPFLAGS = $(AM_CPPFLAGS) \
	-DCONFIG_CORPUS='"$(abs_top_srcdir)/tests/unit/configs"'
tests_unit_test_policy_load_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_policy_load_LDADD = $(POLICY_TEST_LIBS)
