# unit tests: agent/pgauth.c, agent/tls.c
