# common/jose.c, jwks.c, oidc.c: OIDC token verification (used by the agent)
common_libsluice_common_la_SOURCES += common/jose.c common/jose.h common/jwks.c common/jwks.h \
	common/oidc.c common/oidc.h
common_libsluice_common_la_CFLAGS += $(CURL_CFLAGS) $(JANSSON_CFLAGS)
common_libsluice_common_la_LIBADD += $(CURL_LIBS) $(JANSSON_LIBS)

# bench/oidc_verify: warm-cache verification cost (see bench/README.md).
# Built by `make check`, run by hand.
check_PROGRAMS += bench/oidc_verify
bench_oidc_verify_SOURCES = bench/oidc_verify.c tests/unit/jwt_testsign.c tests/unit/jwt_testsign.h
bench_oidc_verify_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS)
bench_oidc_verify_LDADD = common/libsluice-common.la
