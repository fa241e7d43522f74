/* nss/nss_sluice.h: the entry points of libnss_sluice.so.2, as glibc (and
 * nss_wrapper, and the unit tests) call them. See nss_sluice(8). */
#ifndef SLUICE_NSS_SLUICE_H
#define SLUICE_NSS_SLUICE_H

#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <sys/types.h>

enum nss_status _nss_sluice_getpwnam_r(const char *name, struct passwd *pw, char *buffer, size_t buflen,
				       int *errnop);
enum nss_status _nss_sluice_getpwuid_r(uid_t uid, struct passwd *pw, char *buffer, size_t buflen,
				       int *errnop);
enum nss_status _nss_sluice_getgrnam_r(const char *name, struct group *gr, char *buffer, size_t buflen,
				       int *errnop);
enum nss_status _nss_sluice_getgrgid_r(gid_t gid, struct group *gr, char *buffer, size_t buflen,
				       int *errnop);
enum nss_status _nss_sluice_setpwent(void);
enum nss_status _nss_sluice_getpwent_r(struct passwd *pw, char *buffer, size_t buflen, int *errnop);
enum nss_status _nss_sluice_endpwent(void);
enum nss_status _nss_sluice_setgrent(void);
enum nss_status _nss_sluice_getgrent_r(struct group *gr, char *buffer, size_t buflen, int *errnop);
enum nss_status _nss_sluice_endgrent(void);
enum nss_status _nss_sluice_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
					   gid_t **groupsp, long limit, int *errnop);

#endif
