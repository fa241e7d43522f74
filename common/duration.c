#include "config.h"
#include "common/duration.h"

#include <errno.h>
#include <stdio.h>

#define DURATION_MAX (10ULL * 366 * 86400)

int duration_parse(const char *s, uint64_t *seconds)
{
	uint64_t total = 0;
	const char *p = s;
	int last_rank = 5;

	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		uint64_t v = 0, mult;
		int rank, digits = 0;

		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (uint64_t)(*p - '0');
			if (v > DURATION_MAX)
				return -ERANGE;
			p++;
			digits++;
		}
		if (digits == 0)
			return -EINVAL;
		switch (*p) {
		case '\0':
			/* A bare number is seconds, but only on its own. */
			if (p - s != digits)
				return -EINVAL;
			mult = 1, rank = 0;
			break;
		case 's': mult = 1, rank = 1; p++; break;
		case 'm': mult = 60, rank = 2; p++; break;
		case 'h': mult = 3600, rank = 3; p++; break;
		case 'd': mult = 86400, rank = 4; p++; break;
		default:
			return -EINVAL;
		}
		/* Units must go from large to small, each at most once. */
		if (rank >= last_rank)
			return -EINVAL;
		last_rank = rank;
		if (v > DURATION_MAX / mult)
			return -ERANGE;
		total += v * mult;
		if (total > DURATION_MAX)
			return -ERANGE;
	}
	*seconds = total;
	return 0;
}

void duration_format(uint64_t seconds, char *buf, size_t n)
{
	static const struct { uint64_t mult; char unit; } units[] = {
		{ 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' },
	};
	size_t off = 0;

	if (n == 0)
		return;
	buf[0] = '\0';
	if (seconds == 0) {
		snprintf(buf, n, "0s");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t q = seconds / units[i].mult;
		int w;

		if (q == 0)
			continue;
		seconds -= q * units[i].mult;
		w = snprintf(buf + off, n - off, "%llu%c", (unsigned long long)q, units[i].unit);
		if (w < 0 || (size_t)w >= n - off)
			return;
		off += (size_t)w;
	}
}
