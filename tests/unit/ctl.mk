# unit tests: ctl/
