# common/jose.c, common/oidc.c: OIDC token verification (used by the agent)
common_libsluice_common_la_SOURCES += common/jose.c common/jose.h common/oidc.c common/oidc.h
common_libsluice_common_la_CFLAGS += $(CURL_CFLAGS) $(JANSSON_CFLAGS)
common_libsluice_common_la_LIBADD += $(CURL_LIBS) $(JANSSON_LIBS)
