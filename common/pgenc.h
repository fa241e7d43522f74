/* Client encodings: the audit stores SQL as UTF-8, whatever client_encoding
 * the client chose, so what it shows is the text the server executed; replay
 * converts recorded results the same way. */
#pragma once
#include <iconv.h>
#include <stddef.h>
#include "common/util.h"

/* The iconv name for a PostgreSQL client_encoding; NULL when no conversion
 * is needed (UTF8, SQL_ASCII: stored as sent) or the encoding is unknown. */
const char *pgenc_iconv_name(const char *pg_encoding);

/* Convert n bytes with cd (from the client's encoding to UTF-8) into a new
 * NUL-terminated string. -EILSEQ/-EINVAL when the bytes are not valid in
 * that encoding, -ENOMEM. */
int pgenc_to_utf8(iconv_t cd, const char *in, size_t n, char **out, size_t *outlen) WUR;
