"""An hourly cron: interval jobs first run at deploy time, so the Schedules page shows a run."""

from functions.crons import cron_jobs

from . import tasks

crons = cron_jobs()
crons.interval("hourly count", tasks.count_open, {}, hours=1)
