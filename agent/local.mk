# agent build fragment
