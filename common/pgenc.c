#include "config.h"
#include "common/pgenc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *pg, *iconv;
} names[] = {
	{ "LATIN1", "ISO-8859-1" }, { "LATIN2", "ISO-8859-2" }, { "LATIN3", "ISO-8859-3" },
	{ "LATIN4", "ISO-8859-4" }, { "LATIN5", "ISO-8859-9" }, { "LATIN6", "ISO-8859-10" },
	{ "LATIN7", "ISO-8859-13" }, { "LATIN8", "ISO-8859-14" }, { "LATIN9", "ISO-8859-15" },
	{ "LATIN10", "ISO-8859-16" }, { "ISO_8859_5", "ISO-8859-5" }, { "ISO_8859_6", "ISO-8859-6" },
	{ "ISO_8859_7", "ISO-8859-7" }, { "ISO_8859_8", "ISO-8859-8" },
	{ "WIN866", "CP866" }, { "WIN874", "CP874" }, { "WIN1250", "WINDOWS-1250" },
	{ "WIN1251", "WINDOWS-1251" }, { "WIN1252", "WINDOWS-1252" }, { "WIN1253", "WINDOWS-1253" },
	{ "WIN1254", "WINDOWS-1254" }, { "WIN1255", "WINDOWS-1255" }, { "WIN1256", "WINDOWS-1256" },
	{ "WIN1257", "WINDOWS-1257" }, { "WIN1258", "WINDOWS-1258" },
	{ "KOI8R", "KOI8-R" }, { "KOI8U", "KOI8-U" },
	{ "EUC_JP", "EUC-JP" }, { "EUC_CN", "EUC-CN" }, { "EUC_KR", "EUC-KR" }, { "EUC_TW", "EUC-TW" },
	{ "EUC_JIS_2004", "EUC-JISX0213" }, { "SJIS", "SHIFT_JIS" }, { "SHIFT_JIS_2004", "SHIFT_JISX0213" },
	{ "BIG5", "BIG5" }, { "GBK", "GBK" }, { "GB18030", "GB18030" }, { "UHC", "CP949" },
	{ "JOHAB", "JOHAB" },
};

const char *pgenc_iconv_name(const char *pg)
{
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcasecmp(pg, names[i].pg) == 0)
			return names[i].iconv;
	return NULL;
}

int pgenc_to_utf8(iconv_t cd, const char *in, size_t n, char **out, size_t *outlen)
{
	/* A character of these encodings is at most 4 bytes of UTF-8, and at
	 * least one byte in: 4n + 1 always fits. */
	size_t cap = 4 * n + 1, left = 4 * n;
	char *buf = malloc(cap), *dst = buf, *src = (char *)in;
	size_t inleft = n;

	if (!buf)
		return -ENOMEM;
	iconv(cd, NULL, NULL, NULL, NULL);
	if (iconv(cd, &src, &inleft, &dst, &left) == (size_t)-1) {
		int r = -errno;
		free(buf);
		return r == -E2BIG ? -ENOMEM : r;
	}
	*dst = '\0';
	*out = buf;
	*outlen = (size_t)(dst - buf);
	return 0;
}
