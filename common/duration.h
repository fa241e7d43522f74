/* Durations as the configuration and CLI write them: "90s", "15m", "1h",
 * "2d", combinations ("1h30m"), or a bare number of seconds. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

/* Parse into seconds; at most 10 years. Returns 0 or -EINVAL / -ERANGE. */
int duration_parse(const char *s, uint64_t *seconds) WUR;
/* The shortest exact spelling: 5400 -> "1h30m", 0 -> "0s". */
void duration_format(uint64_t seconds, char *buf, size_t n);
