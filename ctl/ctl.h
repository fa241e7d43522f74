/* sluicectl: shared options and the command table. Exit codes: 0 ok,
 * 1 denied or failed, 2 usage. */
#pragma once
#include <stdbool.h>

enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

struct ctl {
	const char *config_path; /* --config, $SLUICE_CONFIG, or the default */
	bool json;               /* --json */
};
