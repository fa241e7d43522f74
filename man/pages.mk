# one line per page that exists: dist_man_MANS += man/NAME.N
dist_man_MANS += man/sluice.conf.5
dist_man_MANS += man/sluicectl.1 man/sluiced.8
dist_man_MANS += man/pam_sluice.8
dist_man_MANS += man/nss_sluice.8
