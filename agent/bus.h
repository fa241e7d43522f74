/* The agent on the system bus: org.sluice.Agent1 at /org/sluice/Agent1
 * (data/org.sluice.Agent1.xml), driven by the agent's event loop. The bus
 * address comes from DBUS_SYSTEM_BUS_ADDRESS when set. Every caller is
 * identified by the uid the bus daemon reports for its connection. */
#pragma once
#include <stddef.h>
#include "agent/agent.h"

struct bus;

/* Connect, claim the name and start serving; err says why not. */
int bus_open(struct agent *a, struct bus **out, char *err, size_t errlen) WUR;
struct bus *bus_close(struct bus *b);
