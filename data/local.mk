# Installed data: D-Bus policy and introspection, systemd unit, sysusers,
# the example configuration.
dbuspolicy_DATA = data/org.sluice.Agent1.conf
dbusinterfaces_DATA = data/org.sluice.Agent1.xml
systemdsystemunit_DATA = data/sluiced.service
dbussystemservicesdir = $(datadir)/dbus-1/system-services
dbussystemservices_DATA = data/org.sluice.Agent1.service
EXTRA_DIST += data/org.sluice.Agent1.conf data/org.sluice.Agent1.xml data/sluiced.service.in \
	data/org.sluice.Agent1.service.in data/sysusers.conf data/sluice.conf data/nsswitch.conf
CLEANFILES += data/sluiced.service data/org.sluice.Agent1.service

data/sluiced.service: $(srcdir)/data/sluiced.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) data && sed -e 's|@sbindir[@]|$(sbindir)|g' \
	  -e 's|@sysconfdir[@]|$(sysconfdir)|g' $< > $@.tmp && mv $@.tmp $@
data/org.sluice.Agent1.service: $(srcdir)/data/org.sluice.Agent1.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) data && cp $< $@.tmp && mv $@.tmp $@

# sysusers.d/sluice.conf; the example configuration goes to
# $(sysconfdir)/sluice/sluice.conf only when there is none (an admin's
# config is never overwritten), plus an empty conf.d/.
install-data-local:
	$(MKDIR_P) $(DESTDIR)$(sysusersdir)
	$(INSTALL_DATA) $(srcdir)/data/sysusers.conf $(DESTDIR)$(sysusersdir)/sluice.conf
	$(MKDIR_P) $(DESTDIR)$(sysconfdir)/sluice/conf.d
	test -e $(DESTDIR)$(sysconfdir)/sluice/sluice.conf || \
	  $(INSTALL_DATA) $(srcdir)/data/sluice.conf $(DESTDIR)$(sysconfdir)/sluice/sluice.conf
	$(INSTALL_DATA) $(srcdir)/data/sluice.conf $(DESTDIR)$(sysconfdir)/sluice/sluice.conf.example

uninstall-local:
	rm -f $(DESTDIR)$(sysusersdir)/sluice.conf $(DESTDIR)$(sysconfdir)/sluice/sluice.conf.example
	if cmp -s $(srcdir)/data/sluice.conf $(DESTDIR)$(sysconfdir)/sluice/sluice.conf; then \
	  rm -f $(DESTDIR)$(sysconfdir)/sluice/sluice.conf; fi
	-rmdir $(DESTDIR)$(sysconfdir)/sluice/conf.d $(DESTDIR)$(sysconfdir)/sluice 2>/dev/null

# The example PAM service for pam_sluice(8): documentation only, never
# written into /etc/pam.d (an admin's PAM configuration is theirs).
pamexampledir = $(docdir)/pam.d
dist_pamexample_DATA = data/pam.d/sluice
