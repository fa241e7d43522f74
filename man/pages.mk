# one line per page that exists: dist_man_MANS += man/NAME.N
