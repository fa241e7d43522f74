# common/auditdb.c: the session database schema, chain and queries
