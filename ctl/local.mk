# ctl build fragment
