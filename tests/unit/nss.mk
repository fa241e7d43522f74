# unit tests: libnss_sluice (nss/), its entry points called directly against
# snapshot files written to a private SLUICE_NSS_DIR; a stress test with
# threads, a file replaced under them and forks; a check of what
# libnss_sluice.so.2 exports, imports and links.
check_PROGRAMS += tests/unit/test_nss tests/unit/test_nss_threads
TESTS += tests/unit/test_nss tests/unit/test_nss_threads tests/unit/nss_exports.sh
NSS_TEST_SOURCES = $(NSS_SLUICE_SOURCES) tests/unit/nss_testdir.c tests/unit/nss_testdir.h
tests_unit_test_nss_SOURCES = tests/unit/test_nss.c $(NSS_TEST_SOURCES)
tests_unit_test_nss_CPPFLAGS = $(NSS_SLUICE_CPPFLAGS)
tests_unit_test_nss_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_nss_LDADD = $(UNIT_LIBS)
tests_unit_test_nss_threads_SOURCES = tests/unit/test_nss_threads.c $(NSS_TEST_SOURCES)
tests_unit_test_nss_threads_CPPFLAGS = $(NSS_SLUICE_CPPFLAGS)
tests_unit_test_nss_threads_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_nss_threads_LDADD = $(UNIT_LIBS)
EXTRA_DIST += tests/unit/nss_exports.sh
