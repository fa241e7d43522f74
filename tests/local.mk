# Unit tests (cmocka), one fragment per part so each owner edits only its own.
# Integration tests (pytest) are run by scripts/check, not by `make check`:
# they need root, a PostgreSQL cluster and a private bus.
if HAVE_CMOCKA
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
UNIT_LIBS = $(CMOCKA_LIBS)
include tests/unit/common.mk
include tests/unit/policy.mk
include tests/unit/classify.mk
include tests/unit/decide.mk
include tests/unit/audit.mk
include tests/unit/agent.mk
include tests/unit/pgauth.mk
include tests/unit/ctl.mk
include tests/unit/oidc.mk
include tests/unit/pam.mk
include tests/unit/nss.mk
include tests/unit/maskval.mk
include tests/unit/maskplan.mk
endif
EXTRA_DIST += tests/integration tests/unit/configs tests/dbus-system-test.conf.in
# pytest leaves bytecode next to the tests; it is not part of a release.
dist-hook:
	find $(distdir)/tests -name __pycache__ -type d -prune -exec rm -rf {} +
