/* Small helpers shared by every part: cleanup attributes, number parsing,
 * clocks, randomness, secrets. Nothing here logs. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define WUR __attribute__((warn_unused_result))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void freep(void *p) { free(*(void **)p); }
#define _cleanup_free_ _cleanup_(freep)
void closep(int *fd);
#define _cleanup_close_ _cleanup_(closep)

/* Parse an unsigned decimal number in [min, max]; the whole string must be
 * the number. Returns 0 or -EINVAL / -ERANGE; *out untouched on failure. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) WUR;

/* Wall-clock and monotonic time in microseconds. */
int64_t now_us(void);
int64_t mono_us(void);

/* RFC 3339 UTC with seconds ("2026-11-23T09:20:39Z") into buf (>= 21 bytes). */
void format_rfc3339(int64_t us, char *buf, size_t n);

/* Fill p with n bytes from the kernel's CSPRNG. */
int random_bytes(void *p, size_t n) WUR;

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const void *p, size_t n, char *out);

/* Wipe and free a secret of known length; accepts NULL. */
void secret_free(void *p, size_t n);
/* Wipe and free a NUL-terminated secret; accepts NULL. */
void secret_free_str(char *s);

/* strdup that returns NULL on NULL. */
char *strdup_or_null(const char *s);

/* vasprintf into *out: 0, or -ENOMEM with *out NULL (vasprintf leaves it
 * undefined), so a caller may keep the NULL as "no message". */
int str_vprintf(char **out, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* True when s is a safe name: [A-Za-z0-9._-], 1..max bytes, not "." or "..". */
bool name_is_safe(const char *s, size_t max);

/* Set O_NONBLOCK on fd. */
int fd_set_nonblock(int fd) WUR;
