# unit tests: audit
