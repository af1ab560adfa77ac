from functions.crons import cron_jobs

from . import notifications

crons = cron_jobs()
crons.daily(
    "purge read notifications", notifications.purge_read, {"batch": 100}, hour_utc=4, minute_utc=0
)
