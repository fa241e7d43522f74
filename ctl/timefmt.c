#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/duration.h"

#define US_PER_S 1000000LL

/* Read exactly n digits at *p into *v and advance. */
static bool digits(const char **p, int n, int *v)
{
	int x = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		x = x * 10 + (c - '0');
	}
	*p += n;
	*v = x;
	return true;
}

static int days_in_month(int year, int month)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

/* "YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][Z|±HH:MM]": RFC 3339 when a zone is
 * given, local time otherwise. */
static int parse_timestamp(const char *s, int64_t *out)
{
	const char *p = s;
	int year, mon, day, hour = 0, min = 0, sec = 0, frac_us = 0;
	bool has_zone = false;
	long offset = 0; /* seconds east of UTC */
	struct tm tm = { 0 };
	time_t t;

	if (!digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &mon) || *p++ != '-' ||
	    !digits(&p, 2, &day))
		return -EINVAL;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!digits(&p, 2, &hour) || *p++ != ':' || !digits(&p, 2, &min))
			return -EINVAL;
		if (*p == ':') {
			p++;
			if (!digits(&p, 2, &sec))
				return -EINVAL;
			if (*p == '.') {
				int n = 0;
				p++;
				if (*p < '0' || *p > '9')
					return -EINVAL;
				while (*p >= '0' && *p <= '9') {
					if (n < 6) {
						frac_us = frac_us * 10 + (*p - '0');
						n++;
					}
					p++;
				}
				for (; n < 6; n++)
					frac_us *= 10;
			}
		}
		if (*p == 'Z' || *p == 'z') {
			has_zone = true;
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p == '-' ? -1 : 1, oh, om;
			p++;
			if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 ||
			    om > 59)
				return -EINVAL;
			has_zone = true;
			offset = sign * (oh * 3600L + om * 60L);
		}
	}
	if (*p != '\0')
		return -EINVAL;
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) ||
	    hour > 23 || min > 59 || sec > 60)
		return -ERANGE;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	if (has_zone) {
		t = timegm(&tm);
		if (t == (time_t)-1)
			return -ERANGE;
		t -= offset;
	} else {
		tm.tm_isdst = -1;
		t = mktime(&tm);
		if (t == (time_t)-1)
			return -ERANGE;
	}
	if (t < 0)
		return -ERANGE;
	*out = (int64_t)t * US_PER_S + frac_us;
	return 0;
}

int ctl_parse_since(const char *s, int64_t now, int64_t *out)
{
	uint64_t secs;

	if (!s || !*s)
		return -EINVAL;
	if (duration_parse(s, &secs) == 0) {
		int64_t back = (int64_t)secs * US_PER_S; /* at most ten years */
		*out = now > back ? now - back : 0;
		return 0;
	}
	return parse_timestamp(s, out);
}

static time_t seconds_of(int64_t us)
{
	/* floor, so times before a whole second stay in that second */
	return (time_t)(us >= 0 ? us / US_PER_S : -((-us + US_PER_S - 1) / US_PER_S));
}

void ctl_format_local_time(int64_t us, char *buf, size_t n)
{
	time_t t = seconds_of(us);
	struct tm tm;

	if (n == 0)
		return;
	if (!localtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, n, "?");
}

void ctl_format_utc(int64_t us, bool with_us, char *buf, size_t n)
{
	time_t t = seconds_of(us);
	struct tm tm;
	char base[32];

	if (n == 0)
		return;
	if (!gmtime_r(&t, &tm) || strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(buf, n, "?");
		return;
	}
	if (with_us)
		snprintf(buf, n, "%s.%06lldZ", base, (long long)(us - (int64_t)t * US_PER_S));
	else
		snprintf(buf, n, "%sZ", base);
}

void ctl_format_remaining(int64_t until_us, int64_t now, char *buf, size_t n)
{
	char d[64];
	int64_t diff = until_us - now;

	if (n == 0)
		return;
	if (diff >= US_PER_S) {
		duration_format((uint64_t)(diff / US_PER_S), d, sizeof(d));
		snprintf(buf, n, "in %s", d);
	} else if (diff > -US_PER_S) {
		snprintf(buf, n, "now");
	} else {
		duration_format((uint64_t)(-(diff / US_PER_S)), d, sizeof(d));
		snprintf(buf, n, "%s ago", d);
	}
}

void ctl_format_elapsed(int64_t us, char *buf, size_t n)
{
	if (n == 0)
		return;
	if (us < 0) {
		snprintf(buf, n, "-");
	} else if (us < 10000) {
		snprintf(buf, n, "%lld.%lldms", (long long)(us / 1000), (long long)(us % 1000 / 100));
	} else if (us < US_PER_S) {
		snprintf(buf, n, "%lldms", (long long)(us / 1000));
	} else if (us < 60 * US_PER_S) {
		snprintf(buf, n, "%lld.%02llds", (long long)(us / US_PER_S),
			 (long long)(us % US_PER_S / 10000));
	} else {
		duration_format((uint64_t)(us / US_PER_S), buf, n);
	}
}
