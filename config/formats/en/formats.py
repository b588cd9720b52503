# Dates as the admin shows them (see config/formats/__init__.py): ISO order, 24-hour clock, no seconds.
# Only display formats are set; input formats stay Django's English ones (which accept these).
DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
MONTH_DAY_FORMAT = "j F"
YEAR_MONTH_FORMAT = "F Y"
