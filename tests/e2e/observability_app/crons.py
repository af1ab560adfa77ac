"""An hourly cron: interval jobs first run at deploy time, so each server start runs it once."""

from functions.crons import cron_jobs

from . import notes

crons = cron_jobs()
crons.interval("hourly tick", notes.tick, {}, hours=1)
