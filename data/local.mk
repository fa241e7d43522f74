# data build fragment
