# unit tests: policy
