/* Logging for the programs (sluiced, sluicectl). Library code in policy/
 * and common/ never calls this: it returns errors for its caller to say.
 * Lines go to stderr with a syslog priority prefix ("<3>") when stderr is
 * the journal, plain otherwise. Never pass a secret to these. */
#pragma once
#include <stdbool.h>
#include <syslog.h>

void log_init(const char *ident, bool debug);
bool log_debug_enabled(void);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
