# unit tests: agent
