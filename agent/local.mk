# sluiced, the agent
sbin_PROGRAMS += agent/sluiced
agent_sluiced_SOURCES = \
	agent/main.c \
	agent/agent.c agent/agent.h \
	agent/api.c agent/api.h \
	agent/identity.c agent/identity.h \
	agent/session.c agent/session.h \
	agent/nss.c agent/nss.h \
	agent/nss_snapshot.c agent/nss_snapshot.h \
	agent/nss_gids.c agent/nss_gids.h \
	agent/verify.c agent/verify.h \
	agent/bus.c agent/bus.h \
	agent/busmsg.c agent/busmsg.h \
	agent/loop.c agent/loop.h \
	agent/resolve.c agent/resolve.h \
	agent/grant.c agent/grant.h agent/proto.h \
	agent/approval.c agent/approval.h \
	agent/webhook.c agent/webhook.h \
	agent/audit.c agent/audit.h \
	agent/pgwire.c agent/pgwire.h \
	agent/pgconn.h \
	agent/pgproxy.c \
	agent/pgupstream.c \
	agent/pgtrack.c \
	agent/pgrecord.h agent/pgrecord.c \
	agent/maskwire.h agent/maskwire.c \
	agent/pgclient.c \
	agent/guard.c agent/guard.h \
	agent/pgauth.c agent/pgauth.h \
	agent/tls.c agent/tls.h
nodist_agent_sluiced_SOURCES = agent/introspect.c
agent_sluiced_CFLAGS = $(AM_CFLAGS) $(DBUS_CFLAGS) $(SQLITE_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS)
agent_sluiced_LDADD = policy/libsluice-policy.la common/libsluice-common.la \
	$(DBUS_LIBS) $(SQLITE_LIBS) $(OPENSSL_LIBS) $(JANSSON_LIBS) $(CURL_LIBS) $(PG_QUERY_LIBS) -lanl -lpthread
CLEANFILES += agent/introspect.c

# The introspection data is the installed XML, compiled in.
agent/introspect.c: $(srcdir)/data/org.sluice.Agent1.xml
	$(AM_V_GEN)$(MKDIR_P) agent && { \
	  echo '/* Generated from data/org.sluice.Agent1.xml. */'; \
	  echo 'extern const char agent_introspection_xml[];'; \
	  echo 'const char agent_introspection_xml[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@.tmp && mv $@.tmp $@
