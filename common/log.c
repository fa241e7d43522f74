#include "config.h"
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_ident = "sluice";
static bool log_debug_on;
static bool log_journal;

void log_init(const char *ident, bool debug)
{
	log_ident = ident;
	log_debug_on = debug;
	/* systemd sets JOURNAL_STREAM when stderr is connected to the journal;
	 * then the journal adds time and name itself and reads the priority. */
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

bool log_debug_enabled(void)
{
	return log_debug_on;
}

void log_msg(int prio, const char *fmt, ...)
{
	static const char *names[] = { "emerg", "alert", "crit", "error",
				       "warning", "notice", "info", "debug" };
	char line[2048];
	int saved = errno;
	va_list ap;

	if (prio == LOG_DEBUG && !log_debug_on)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_journal) {
		fprintf(stderr, "<%d>%s\n", prio, line);
	} else {
		char ts[32];
		struct timespec now;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &now);
		localtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s[%s]: %s\n", ts, now.tv_nsec / 1000000,
			log_ident, names[prio & 7], line);
	}
	errno = saved;
}
