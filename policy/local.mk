# policy build fragment
