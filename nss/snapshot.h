/* nss/snapshot.h: one parsed NSS snapshot file (passwd or group), as
 * sluiced publishes it under <runtime_dir>/nss/ (see nss_sluice(8)).
 *
 * Pure: no I/O, no locks, no globals. The parser takes a buffer holding the
 * whole file, checks every line against the snapshot contract, cuts the
 * good ones in place into NUL-terminated fields and builds sorted indexes
 * (name, id, and for groups member -> group), so a lookup is a binary
 * search. Bad lines are skipped and counted, never fatal. */
#ifndef SLUICE_NSS_SNAPSHOT_H
#define SLUICE_NSS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

/* Reader caps of the contract. */
#define SNAP_FILE_MAX (16u * 1024 * 1024)	/* larger: not read at all */
#define SNAP_LINE_MAX 4096u			/* longer (without '\n'): skipped */
#define SNAP_MEMBERS_MAX 65536u		/* more members: the group is skipped */
#define SNAP_NAME_MAX 32u
#define SNAP_MEMBER_MAX 256u		/* LOGIN_NAME_MAX, with its NUL */

enum snap_kind {
	SNAP_PASSWD,
	SNAP_GROUP,
};

/* The password field is always "x" (a line with anything else is
 * skipped), so it is not stored. */
struct snap_pw {
	const char *name;
	const char *gecos;
	const char *dir;
	const char *shell;
	uint32_t uid;
	uint32_t gid;
};

/* mem: nmem names, each NUL-terminated, one right after the other. */
struct snap_gr {
	const char *name;
	const char *mem;
	uint32_t gid;
	uint32_t nmem;
};

struct snap_name_key {
	const char *name;
	uint32_t idx;		/* entry (or group, for members) in file order */
};

struct snap_id_key {
	uint32_t id;
	uint32_t idx;
};

struct snap {
	enum snap_kind kind;
	char *buf;		/* the file, owned; fields point into it */
	size_t len;
	struct snap_pw *pw;	/* SNAP_PASSWD: entries in file order */
	struct snap_gr *gr;	/* SNAP_GROUP */
	uint32_t n;		/* entries */
	uint32_t skipped;	/* lines that were not comments, blank or good */
	struct snap_name_key *by_name;	/* n keys, by name then file order */
	struct snap_id_key *by_id;	/* n keys, by id then file order */
	struct snap_name_key *members;	/* SNAP_GROUP: by member then file order */
	size_t nmembers;
};

/* Parses buf[0..len) (len <= SNAP_FILE_MAX) into s, which takes buf
 * (malloc'd) in every case: on failure it is freed and s is left empty.
 * Returns 0 or -ENOMEM / -EFBIG. */
__attribute__((warn_unused_result))
int snap_parse(struct snap *s, enum snap_kind kind, char *buf, size_t len);

/* Frees what s holds and leaves it empty; safe on an empty snap. */
void snap_clear(struct snap *s);

/* 1 when name is a name the contract allows: 1..32 bytes of [a-z0-9_.-],
 * starting with [a-z_], optionally ending with '$'. User and group names
 * are held to it; group members (local accounts) to a looser rule. */
int snap_name_valid(const char *name, size_t len);

/* The first entry (file order) with that key, or NULL. */
const struct snap_pw *snap_pw_by_name(const struct snap *s, const char *name);
const struct snap_pw *snap_pw_by_uid(const struct snap *s, uint32_t uid);
const struct snap_gr *snap_gr_by_name(const struct snap *s, const char *name);
const struct snap_gr *snap_gr_by_gid(const struct snap *s, uint32_t gid);

/* The groups user is a member of: *first is set to the first matching key
 * of s->members (its idx is the group's), the count is returned. */
size_t snap_groups_of(const struct snap *s, const char *user, size_t *first);

#endif
