"""Cron jobs: declaration and validation, schedule arithmetic, cron parsing, overdue skipping."""

from __future__ import annotations

import types
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from functions import (
    InvalidFunctionPath,
    ModuleLoadError,
    action,
    http_action,
    internal_action,
    internal_mutation,
    mutation,
    query,
)
from functions.crons import (
    CronJob,
    Crons,
    CronSchedule,
    DueRuns,
    IntervalSchedule,
    ScheduleKind,
    cron_jobs,
    due_runs,
    find_crons,
    stable_minute,
)


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


@internal_mutation
async def flush(ctx: Any, batch: int = 0) -> None: ...


@internal_mutation
async def tick(ctx: Any) -> None: ...


@internal_action
async def report(ctx: Any) -> None: ...


@mutation
async def public_mutation(ctx: Any) -> None: ...


@action
async def public_action(ctx: Any) -> None: ...


@query
async def a_query(ctx: Any) -> None: ...


@http_action
async def a_http_action(ctx: Any, request: Any) -> None: ...


# -- declaration ------------------------------------------------------------------------------


class TestDeclaration:
    def test_the_documented_crons_py(self) -> None:
        crons = cron_jobs()
        crons.interval("flush", flush, {"batch": 10}, minutes=5)
        crons.hourly("tick", tick, minute_utc=15)
        crons.daily("purge", flush, hour_utc=3, minute_utc=0)
        crons.weekly("report", report, day_of_week="monday", hour_utc=9)
        crons.monthly("bill", public_action, day=1, hour_utc=0, minute_utc=0)
        crons.cron("custom", "*/15 9-17 * * 1-5", tick)

        assert list(crons.jobs) == ["flush", "tick", "purge", "report", "bill", "custom"]
        assert len(crons) == 6 and "tick" in crons and "nope" not in crons
        assert [job.name for job in crons] == list(crons.jobs)
        job = crons.jobs["flush"]
        assert job == CronJob("flush", IntervalSchedule(300), flush, {"batch": 10})
        assert crons.jobs["tick"].schedule == CronSchedule("15 * * * *")
        assert crons.jobs["purge"].schedule == CronSchedule("0 3 * * *")
        assert crons.jobs["report"].schedule == CronSchedule(f"{stable_minute('report')} 9 * * 1")
        assert crons.jobs["bill"].schedule == CronSchedule("0 0 1 * *")
        assert crons.jobs["custom"].schedule == CronSchedule("*/15 9-17 * * mon-fri")
        kinds = [job.schedule.kind for job in crons]
        assert kinds == [
            ScheduleKind.INTERVAL,
            ScheduleKind.HOURLY,
            ScheduleKind.DAILY,
            ScheduleKind.WEEKLY,
            ScheduleKind.MONTHLY,
            ScheduleKind.CRON,
        ]
        assert "flush" in repr(crons)

    def test_declaring_returns_the_job(self) -> None:
        job = cron_jobs().hourly("tick", tick, minute_utc=1)
        assert isinstance(job, CronJob) and job.fn is tick and job.args == {}

    def test_jobs_view_is_read_only(self) -> None:
        crons = cron_jobs()
        crons.hourly("tick", tick, minute_utc=1)
        with pytest.raises(TypeError):
            crons.jobs["x"] = crons.jobs["tick"]  # type: ignore[index]

    @pytest.mark.parametrize("fn", [flush, report, public_mutation, public_action])
    def test_mutations_and_actions_public_or_internal(self, fn: Any) -> None:
        assert cron_jobs().hourly("j", fn, minute_utc=0).fn is fn

    @pytest.mark.parametrize(("fn", "kind"), [(a_query, "Query"), (a_http_action, "HttpAction")])
    def test_other_kinds_rejected(self, fn: Any, kind: str) -> None:
        with pytest.raises(TypeError, match=f"is a {kind}; crons run mutations and actions"):
            cron_jobs().hourly("j", fn, minute_utc=0)

    def test_fn_not_a_function(self) -> None:
        with pytest.raises(TypeError, match="fn must be a mutation or action"):
            cron_jobs().hourly("j", lambda: None, minute_utc=0)  # type: ignore[arg-type]

    def test_fn_as_path_is_canonicalised(self) -> None:
        job = cron_jobs().hourly("j", "cleanup.js:flush", minute_utc=0)
        assert job.fn == "cleanup:flush" and job.function_path == "cleanup:flush"
        assert cron_jobs().hourly("j", "dir/cleanup", minute_utc=0).fn == "dir/cleanup:default"

    def test_fn_bad_path(self) -> None:
        with pytest.raises(InvalidFunctionPath, match="Invalid function path"):
            cron_jobs().hourly("j", "bad path:x", minute_utc=0)

    def test_function_path_of_registered_and_unregistered_functions(self) -> None:
        @internal_mutation
        async def job_fn(ctx: Any) -> None: ...

        job = cron_jobs().hourly("j", job_fn, minute_utc=0)
        with pytest.raises(InvalidFunctionPath, match="is not registered"):
            _ = job.function_path
        job_fn.with_path("cleanup:job_fn")
        assert job.function_path == "cleanup:job_fn"

    def test_args(self) -> None:
        given_args = {"batch": 10}
        job = cron_jobs().hourly("j", flush, given_args, minute_utc=0)
        given_args["batch"] = 11
        assert job.args == {"batch": 10}  # copied at declaration
        assert cron_jobs().hourly("j", flush, None, minute_utc=0).args == {}

    @pytest.mark.parametrize("args", [[1], "batch", 3])
    def test_args_must_be_a_dict(self, args: Any) -> None:
        with pytest.raises(TypeError, match="'j': args must be a dict"):
            cron_jobs().hourly("j", flush, args, minute_utc=0)

    def test_args_keys_must_be_strings(self) -> None:
        with pytest.raises(TypeError, match="argument names must be strings"):
            cron_jobs().hourly("j", flush, {1: 2}, minute_utc=0)  # type: ignore[dict-item]

    def test_duplicate_name(self) -> None:
        crons = cron_jobs()
        crons.hourly("tick", tick, minute_utc=0)
        with pytest.raises(ValueError, match="'tick' is declared twice"):
            crons.interval("tick", flush, seconds=5)
        assert crons.jobs["tick"].schedule.kind is ScheduleKind.HOURLY

    def test_failed_declaration_adds_nothing(self) -> None:
        crons = cron_jobs()
        with pytest.raises(ValueError):
            crons.daily("purge", flush, hour_utc=24)
        assert len(crons) == 0
        crons.daily("purge", flush, hour_utc=23)  # the name is still free

    @pytest.mark.parametrize(
        ("name", "error", "match"),
        [
            ("", ValueError, "must not be empty"),
            ("caf\u00e9", ValueError, "printable ASCII"),
            ("a\nb", ValueError, "printable ASCII"),
            (3, TypeError, "must be a string"),
        ],
    )
    def test_bad_names(self, name: Any, error: type[Exception], match: str) -> None:
        with pytest.raises(error, match=match):
            cron_jobs().hourly(name, tick, minute_utc=0)

    def test_names_may_hold_spaces_and_punctuation(self) -> None:
        assert cron_jobs().hourly("clear messages: table #1", tick, minute_utc=0).name


class TestStableMinute:
    def test_pinned_values(self) -> None:
        # Stored schedules depend on these: changing the derivation moves every job.
        assert stable_minute("purge") == 27
        assert stable_minute("report") == 4

    def test_in_range_and_spread(self) -> None:
        minutes = {stable_minute(f"job {i}") for i in range(200)}
        assert minutes <= set(range(60)) and len(minutes) > 40

    def test_used_when_minute_omitted(self) -> None:
        crons = cron_jobs()
        minute = stable_minute("purge")
        assert crons.hourly("purge", flush).schedule == CronSchedule(f"{minute} * * * *")
        daily = crons.daily("p2", flush, hour_utc=3).schedule
        assert daily == CronSchedule(f"{stable_minute('p2')} 3 * * *")
        monthly = crons.monthly("p3", flush, day=2, hour_utc=3).schedule
        assert monthly == CronSchedule(f"{stable_minute('p3')} 3 2 * *")


# -- interval ---------------------------------------------------------------------------------


class TestInterval:
    @pytest.mark.parametrize(
        ("units", "seconds"),
        [({"seconds": 1}, 1), ({"seconds": 90}, 90), ({"minutes": 5}, 300), ({"hours": 2}, 7200)],
    )
    def test_units(self, units: dict[str, Any], seconds: int) -> None:
        job = cron_jobs().interval("j", flush, **units)
        assert job.schedule == IntervalSchedule(seconds)
        assert str(job.schedule) == f"every {seconds}s"

    @pytest.mark.parametrize(
        ("units", "error", "match"),
        [
            ({}, ValueError, "exactly one of seconds=, minutes=, hours="),
            ({"seconds": 5, "minutes": 1}, ValueError, "exactly one of"),
            ({"seconds": 0}, ValueError, "seconds=0 is out of range"),
            ({"minutes": -1}, ValueError, "minutes=-1 is out of range"),
            ({"seconds": 0.5}, TypeError, "seconds must be an int"),
            ({"hours": 1.0}, TypeError, "hours must be an int"),
            ({"seconds": True}, TypeError, "seconds must be an int"),
        ],
    )
    def test_invalid(self, units: dict[str, Any], error: type[Exception], match: str) -> None:
        with pytest.raises(error, match=match):
            cron_jobs().interval("j", flush, **units)

    def test_schedule_checks_its_seconds(self) -> None:
        with pytest.raises(ValueError, match="at least 1 second, got 0"):
            IntervalSchedule(0)
        with pytest.raises(TypeError, match="whole number of seconds, got 1.5"):
            IntervalSchedule(1.5)  # type: ignore[arg-type]

    def test_first_run_is_registration_time(self) -> None:
        deployed = at(2024, 5, 1, 12, 0, 7, 500)
        assert IntervalSchedule(300).first_run(deployed) == deployed

    def test_next_after_without_anchor(self) -> None:
        t = at(2024, 5, 1, 12, 0, 7)
        assert IntervalSchedule(300).next_after(t) == at(2024, 5, 1, 12, 5, 7)

    def test_next_after_stays_on_the_grid(self) -> None:
        schedule = IntervalSchedule(300)
        last = at(2024, 5, 1, 12, 0, 7)
        assert schedule.next_after(last, last) == at(2024, 5, 1, 12, 5, 7)
        assert schedule.next_after(at(2024, 5, 1, 12, 4), last) == at(2024, 5, 1, 12, 5, 7)
        # t exactly on the grid: strictly after it.
        assert schedule.next_after(at(2024, 5, 1, 12, 5, 7), last) == at(2024, 5, 1, 12, 10, 7)
        assert schedule.next_after(at(2024, 5, 1, 13, 0, 0), last) == at(2024, 5, 1, 13, 0, 7)

    def test_next_after_with_a_future_anchor(self) -> None:
        last = at(2024, 5, 1, 12)
        assert IntervalSchedule(60).next_after(at(2024, 5, 1, 11), last) == at(2024, 5, 1, 12, 1)

    def test_crosses_midnight_and_new_year(self) -> None:
        schedule = IntervalSchedule(3600)
        assert schedule.next_after(at(2023, 12, 31, 23, 30)) == at(2024, 1, 1, 0, 30)

    @given(
        t=st.datetimes(datetime(2000, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)),
        back=st.integers(0, 10**8),
        seconds=st.integers(1, 10**6),
    )
    def test_next_after_property(self, t: datetime, back: int, seconds: int) -> None:
        schedule = IntervalSchedule(seconds)
        last = t - timedelta(seconds=back, microseconds=back % 997)
        following = schedule.next_after(t, last)
        assert t < following <= t + schedule.interval
        assert (following - last) % schedule.interval == timedelta(0)


# -- calendar helpers -------------------------------------------------------------------------


class TestCalendarSchedules:
    def test_hourly(self) -> None:
        schedule = cron_jobs().hourly("j", tick, minute_utc=15).schedule
        assert schedule.next_after(at(2024, 5, 1, 12, 0)) == at(2024, 5, 1, 12, 15)
        assert schedule.next_after(at(2024, 5, 1, 12, 15)) == at(2024, 5, 1, 13, 15)
        assert schedule.next_after(at(2024, 5, 1, 12, 14, 59, 999999)) == at(2024, 5, 1, 12, 15)
        assert schedule.next_after(at(2024, 12, 31, 23, 20)) == at(2025, 1, 1, 0, 15)

    def test_daily(self) -> None:
        schedule = cron_jobs().daily("j", tick, hour_utc=3, minute_utc=0).schedule
        assert schedule.next_after(at(2024, 5, 1, 2, 59)) == at(2024, 5, 1, 3, 0)
        assert schedule.next_after(at(2024, 5, 1, 3, 0)) == at(2024, 5, 2, 3, 0)
        assert schedule.next_after(at(2024, 2, 28, 4)) == at(2024, 2, 29, 3)  # leap day
        assert schedule.next_after(at(2023, 2, 28, 4)) == at(2023, 3, 1, 3)
        assert schedule.next_after(at(2024, 12, 31, 3, 1)) == at(2025, 1, 1, 3)

    @pytest.mark.parametrize(
        ("day", "python_weekday"),
        [
            ("monday", 0),
            ("Monday", 0),
            ("MON", 0),
            (1, 0),
            ("tuesday", 1),
            ("Tue", 1),
            ("saturday", 5),
            (6, 5),
            ("sunday", 6),
            ("sun", 6),
            (0, 6),
            (7, 6),
        ],
    )
    def test_weekly_day_names_and_cron_numbers(self, day: str | int, python_weekday: int) -> None:
        job = cron_jobs().weekly("j", tick, day_of_week=day, hour_utc=9, minute_utc=0)
        following = job.schedule.next_after(at(2024, 5, 1))  # a Wednesday
        assert (following.weekday(), following.hour, following.minute) == (python_weekday, 9, 0)
        assert following - at(2024, 5, 1) < timedelta(days=7)

    def test_weekly_rolls_over_to_next_week_and_year(self) -> None:
        schedule = cron_jobs().weekly("j", tick, day_of_week="monday", hour_utc=9, minute_utc=0)
        assert schedule.schedule.next_after(at(2024, 4, 29, 9)) == at(2024, 5, 6, 9)
        assert schedule.schedule.next_after(at(2024, 12, 31)) == at(2025, 1, 6, 9)

    @pytest.mark.parametrize(
        ("day", "error", "match"),
        [
            ("mondays", ValueError, "is not a day name"),
            ("", ValueError, "is not a day name"),
            (8, ValueError, "day_of_week=8 is out of range 0-7"),
            (-1, ValueError, "out of range"),
            (1.0, TypeError, "day_of_week must be an int"),
            (None, TypeError, "day_of_week must be an int"),
        ],
    )
    def test_weekly_bad_day(self, day: Any, error: type[Exception], match: str) -> None:
        with pytest.raises(error, match=match):
            cron_jobs().weekly("j", tick, day_of_week=day, hour_utc=9)

    def test_monthly(self) -> None:
        schedule = cron_jobs().monthly("j", tick, day=1, hour_utc=0, minute_utc=0).schedule
        assert schedule.next_after(at(2024, 1, 1)) == at(2024, 2, 1)
        assert schedule.next_after(at(2023, 12, 31, 23, 59, 59)) == at(2024, 1, 1)
        assert schedule.next_after(at(2024, 12, 1, 0, 0, 1)) == at(2025, 1, 1)

    def test_monthly_day_31_skips_short_months(self) -> None:
        schedule = cron_jobs().monthly("j", tick, day=31, hour_utc=12, minute_utc=0).schedule
        runs = [at(2024, 1, 1)]
        for _ in range(7):
            runs.append(schedule.next_after(runs[-1]))
        assert [run.month for run in runs[1:]] == [1, 3, 5, 7, 8, 10, 12]
        assert schedule.next_after(runs[-1]) == at(2025, 1, 31, 12)

    def test_monthly_day_29_february_only_in_leap_years(self) -> None:
        schedule = cron_jobs().monthly("j", tick, day=29, hour_utc=0, minute_utc=0).schedule
        assert schedule.next_after(at(2024, 2, 1)) == at(2024, 2, 29)
        assert schedule.next_after(at(2023, 2, 1)) == at(2023, 3, 29)
        assert schedule.next_after(at(2100, 2, 1)) == at(2100, 3, 29)  # 2100 is not leap
        assert schedule.next_after(at(2000, 2, 1)) == at(2000, 2, 29)  # 2000 is

    def test_monthly_day_30_skips_february(self) -> None:
        schedule = cron_jobs().monthly("j", tick, day=30, hour_utc=0, minute_utc=0).schedule
        assert schedule.next_after(at(2024, 1, 30, 1)) == at(2024, 3, 30)

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"day": 0, "hour_utc": 0}, ValueError, "day=0 is out of range 1-31"),
            ({"day": 32, "hour_utc": 0}, ValueError, "day=32 is out of range 1-31"),
            ({"day": 1, "hour_utc": 24}, ValueError, "hour_utc=24 is out of range 0-23"),
            ({"day": 1, "hour_utc": -1}, ValueError, "hour_utc=-1 is out of range"),
            ({"day": 1, "hour_utc": 0, "minute_utc": 60}, ValueError, "minute_utc=60 is out"),
            ({"day": "1", "hour_utc": 0}, TypeError, "day must be an int"),
            ({"day": 1, "hour_utc": False}, TypeError, "hour_utc must be an int"),
        ],
    )
    def test_monthly_invalid(
        self, kwargs: dict[str, Any], error: type[Exception], match: str
    ) -> None:
        with pytest.raises(error, match=match):
            cron_jobs().monthly("bill", tick, **kwargs)

    def test_hourly_and_daily_invalid(self) -> None:
        with pytest.raises(ValueError, match="'j': minute_utc=-1 is out of range 0-59"):
            cron_jobs().hourly("j", tick, minute_utc=-1)
        with pytest.raises(TypeError, match="hour_utc must be an int"):
            cron_jobs().daily("j", tick, hour_utc="3")  # type: ignore[arg-type]

    def test_first_run_is_the_next_matching_minute(self) -> None:
        schedule = CronSchedule("0 3 * * *")
        assert schedule.first_run(at(2024, 5, 1, 2)) == at(2024, 5, 1, 3)
        assert schedule.first_run(at(2024, 5, 1, 3)) == at(2024, 5, 2, 3)


class TestTimezones:
    def test_results_are_utc_whatever_the_input_zone(self) -> None:
        schedule = CronSchedule("0 3 * * *")
        eastern = timezone(timedelta(hours=-5))
        t = datetime(2024, 5, 1, 21, 30, tzinfo=eastern)  # 02:30 UTC on May 2
        following = schedule.next_after(t)
        assert following == at(2024, 5, 2, 3) and following.tzinfo is UTC

    def test_dst_does_not_move_utc_schedules(self) -> None:
        zoneinfo = pytest.importorskip("zoneinfo")
        try:
            new_york = zoneinfo.ZoneInfo("America/New_York")
        except zoneinfo.ZoneInfoNotFoundError:  # pragma: no cover - no tz database
            pytest.skip("no time zone database")
        schedule = CronSchedule("0 3 * * *")
        run = datetime(2024, 3, 9, 12, tzinfo=new_york)  # the day before the spring change
        runs = []
        for _ in range(3):
            run = schedule.next_after(run)
            runs.append(run)
        assert runs == [at(2024, 3, 10, 3), at(2024, 3, 11, 3), at(2024, 3, 12, 3)]
        assert IntervalSchedule(3600).next_after(datetime(2024, 3, 10, 1, 30, tzinfo=new_york)) == (
            at(2024, 3, 10, 7, 30)
        )

    @pytest.mark.parametrize(
        "call",
        [
            lambda: CronSchedule("* * * * *").next_after(datetime(2024, 1, 1)),
            lambda: IntervalSchedule(5).next_after(datetime(2024, 1, 1)),
            lambda: IntervalSchedule(5).next_after(at(2024, 1, 1), datetime(2024, 1, 1)),
            lambda: due_runs(IntervalSchedule(5), datetime(2024, 1, 1), at(2024, 1, 1)),
        ],
    )
    def test_naive_datetimes_rejected(self, call: Any) -> None:
        with pytest.raises(ValueError, match="must be timezone-aware"):
            call()

    def test_non_datetime_rejected(self) -> None:
        with pytest.raises(TypeError, match="t must be a datetime, got date"):
            CronSchedule("* * * * *").next_after(date(2024, 1, 1))  # type: ignore[arg-type]


# -- cron expressions -------------------------------------------------------------------------


class TestCronParsing:
    @pytest.mark.parametrize(
        ("field", "text", "values"),
        [
            ("minutes", "*/15", (0, 15, 30, 45)),
            ("minutes", "5", (5,)),
            ("minutes", "1,2,59", (1, 2, 59)),
            ("minutes", "10/20", (10, 30, 50)),
            ("minutes", "1-10/3", (1, 4, 7, 10)),
            ("minutes", "50-59/20,3", (3, 50)),
            ("minutes", "*/1", tuple(range(60))),
            ("minutes", "*/59", (0, 59)),
            ("minutes", "*/100", (0,)),
            ("hours", "9-17", tuple(range(9, 18))),
            ("hours", "0,12", (0, 12)),
            ("days", "*", tuple(range(1, 32))),
            ("days", "1,15,31", (1, 15, 31)),
            ("months", "jan,MAR-May", (1, 3, 4, 5)),
            ("months", "dec", (12,)),
            ("months", "*/3", (1, 4, 7, 10)),
            ("weekdays", "mon-fri", (1, 2, 3, 4, 5)),
            ("weekdays", "1-5", (1, 2, 3, 4, 5)),
            ("weekdays", "7", (0,)),
            ("weekdays", "5-7", (0, 5, 6)),
            ("weekdays", "sun,sat", (0, 6)),
            ("weekdays", "0-7", tuple(range(7))),
        ],
    )
    def test_fields(self, field: str, text: str, values: tuple[int, ...]) -> None:
        parts = ["*"] * 5
        parts[["minutes", "hours", "days", "months", "weekdays"].index(field)] = text
        assert getattr(CronSchedule(" ".join(parts)), field) == values

    def test_whitespace_is_normalised(self) -> None:
        schedule = CronSchedule("  */15\t9-17 *  * 1-5 ")
        assert schedule.expression == "*/15 9-17 * * 1-5"
        assert str(schedule) == "cron '*/15 9-17 * * 1-5' (UTC)"
        assert "*/15 9-17 * * 1-5" in repr(schedule)

    def test_equality_is_by_matching_times(self) -> None:
        assert CronSchedule("0 9 * * 1-5") == CronSchedule("0 9 * * mon-fri")
        assert CronSchedule("0 9 * * 0") == CronSchedule("0 9 * * 7")
        assert hash(CronSchedule("0 9 * * 0")) == hash(CronSchedule("0 9 * * sun"))
        assert CronSchedule("0 9 * * *") != CronSchedule("0 10 * * *")
        # Same sets, different day rule: 1-31 is restricted (OR with day-of-week), * is not.
        assert CronSchedule("0 0 1-31 * 1") != CronSchedule("0 0 * * 1")
        assert CronSchedule("0 0 * * *") != IntervalSchedule(86400)

    @pytest.mark.parametrize(
        ("expression", "match"),
        [
            ("* * * *", "has 4 fields; expected 5: minute hour day-of-month month day-of-week"),
            ("* * * * * *", "has 6 fields"),
            ("", "has 0 fields"),
            ("60 * * * *", "minute: 60 is out of range 0-59"),
            ("* 24 * * *", "hour: 24 is out of range 0-23"),
            ("* * 0 * *", "day-of-month: 0 is out of range 1-31"),
            ("* * 32 * *", "day-of-month: 32 is out of range 1-31"),
            ("* * * 13 *", "month: 13 is out of range 1-12"),
            ("* * * 0 *", "month: 0 is out of range 1-12"),
            ("* * * * 8", "day-of-week: 8 is out of range 0-7"),
            ("* * * foo *", r"month: 'foo' is not a number or a name \(jan..dec\)"),
            ("* * * * january", "day-of-week: 'january' is not a number or a name"),
            ("* * * * jan", r"day-of-week: 'jan' is not a number or a name \(sun..sat\)"),
            ("mon * * * *", "minute: 'mon' is not a number"),
            ("*/0 * * * *", "minute: step '0' in '\\*/0' must be a positive integer"),
            ("*/x * * * *", "minute: step 'x'"),
            ("*/ * * * *", "minute: step ''"),
            ("1/2/3 * * * *", "minute: step '2/3'"),
            ("5-2 * * * *", "minute: range '5-2' goes backwards"),
            ("* * * * mon-sun", "day-of-week: range 'mon-sun' goes backwards"),
            ("1-2-3 * * * *", "minute: '2-3' is not a number"),
            ("-5 * * * *", "minute: '' is not a number"),
            ("1,,2 * * * *", "minute: empty item in list '1,,2'"),
            ("* * L * *", "day-of-month: 'L' is not a number"),
            ("* * ? * *", "day-of-month: '\\?' is not a number"),
            ("* * * * 1#2", "day-of-week: '1#2' is not a number"),
            ("* * 15W * *", "day-of-month: '15W' is not a number"),
            ("0 0 31 2 *", "day-of-month '31' never occurs in month '2'"),
            ("0 0 30,31 feb *", "never occurs"),
            ("0 0 31 4,6,9,11 *", "never occurs"),
            ("-1 * * * *", "minute: '' is not a number"),
            ("\u0661 * * * *", "minute: '\u0661' is not a number"),
        ],
    )
    def test_invalid(self, expression: str, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            CronSchedule(expression)

    def test_invalid_message_quotes_the_expression(self) -> None:
        with pytest.raises(ValueError, match=r"Invalid cron expression '61 \* \* \* \*': minute"):
            CronSchedule("61 * * * *")

    def test_not_a_string(self) -> None:
        with pytest.raises(TypeError, match="must be a string, got int"):
            CronSchedule(5)  # type: ignore[arg-type]

    def test_possible_rare_days_are_accepted(self) -> None:
        CronSchedule("0 0 29 2 *")  # leap days only
        CronSchedule("0 0 31 2 1")  # day-of-week also restricted: OR, so every Monday in Feb
        CronSchedule("0 0 30,31 2,3 *")

    def test_crons_cron_names_the_job(self) -> None:
        with pytest.raises(ValueError, match="Cron job 'custom': Invalid cron expression .* hour"):
            cron_jobs().cron("custom", "0 25 * * *", tick)
        with pytest.raises(TypeError, match="Cron job 'custom': A cron expression must be"):
            cron_jobs().cron("custom", None, tick)  # type: ignore[arg-type]


class TestCronMatching:
    def test_business_hours(self) -> None:
        schedule = CronSchedule("*/15 9-17 * * 1-5")
        friday = at(2024, 5, 3, 17, 50)
        assert schedule.next_after(friday) == at(2024, 5, 6, 9, 0)  # Monday
        assert schedule.next_after(at(2024, 5, 6, 9, 0)) == at(2024, 5, 6, 9, 15)
        assert schedule.next_after(at(2024, 5, 6, 17, 44)) == at(2024, 5, 6, 17, 45)
        assert schedule.next_after(at(2024, 5, 6, 17, 45)) == at(2024, 5, 7, 9, 0)
        assert schedule.matches(at(2024, 5, 6, 9, 15, 59))
        assert not schedule.matches(at(2024, 5, 4, 9, 15))  # Saturday

    def test_day_of_month_or_day_of_week_when_both_restricted(self) -> None:
        schedule = CronSchedule("0 0 13 * fri")  # the 13th, or any Friday
        runs = [at(2024, 9, 1)]  # a Sunday
        for _ in range(5):
            runs.append(schedule.next_after(runs[-1]))
        assert [run.day for run in runs[1:]] == [6, 13, 20, 27, 4]
        schedule = CronSchedule("0 0 1 * mon")
        assert schedule.next_after(at(2024, 6, 25)) == at(2024, 7, 1)  # the 1st, a Monday
        assert schedule.next_after(at(2024, 7, 1)) == at(2024, 7, 8)
        assert schedule.day_matches(date(2024, 8, 1))  # a Thursday, but the 1st

    def test_step_in_day_of_month_counts_as_restricted(self) -> None:
        schedule = CronSchedule("0 0 */10 * 1")  # 1st, 11th, 21st, 31st, or Mondays
        assert schedule.dom_restricted and schedule.dow_restricted
        assert schedule.day_matches(date(2024, 5, 11))  # a Saturday
        assert schedule.day_matches(date(2024, 5, 13))  # a Monday

    def test_only_one_day_field_restricted_means_and(self) -> None:
        assert CronSchedule("0 0 13 * *").next_after(at(2024, 9, 1)) == at(2024, 9, 13)
        assert CronSchedule("0 0 * * fri").next_after(at(2024, 9, 1)) == at(2024, 9, 6)
        schedule = CronSchedule("0 0 * feb mon")
        assert schedule.next_after(at(2024, 3, 1)) == at(2025, 2, 3)

    def test_month_names_and_year_rollover(self) -> None:
        schedule = CronSchedule("30 6 1 jan,jul *")
        assert schedule.next_after(at(2024, 1, 1, 6, 30)) == at(2024, 7, 1, 6, 30)
        assert schedule.next_after(at(2024, 7, 1, 6, 31)) == at(2025, 1, 1, 6, 30)

    def test_leap_day_only(self) -> None:
        schedule = CronSchedule("0 12 29 2 *")
        assert schedule.next_after(at(2024, 3, 1)) == at(2028, 2, 29, 12)
        assert schedule.next_after(at(2096, 3, 1)) == at(2104, 2, 29, 12)  # 2100 is skipped

    def test_every_minute(self) -> None:
        schedule = CronSchedule("* * * * *")
        assert schedule.next_after(at(2024, 12, 31, 23, 59, 30)) == at(2025, 1, 1)
        assert schedule.next_after(at(2024, 5, 1, 10, 0)) == at(2024, 5, 1, 10, 1)


# -- hypothesis: next_after against a brute-force search ---------------------------------------

FIELD_SPECS = [
    # (low, high, names, base of names)
    (0, 59, None, 0),
    (0, 23, None, 0),
    (1, 31, None, 0),
    (
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        1,
    ),
    (0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"), 0),
]


@st.composite
def cron_field(draw: st.DrawFn, index: int) -> tuple[str, set[int]]:
    low, high, names, base = FIELD_SPECS[index]

    def show(value: int) -> str:
        if names is not None and 0 <= value - base < len(names) and draw(st.booleans()):
            name = names[value - base]
            return draw(st.sampled_from([name, name.upper(), name.capitalize()]))
        return str(value)

    items, values = [], set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["star", "star_step", "value", "range", "range_step", "from"]))
        step = draw(st.integers(1, high - low + 2))
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        if kind == "star":
            items.append("*")
            values |= set(range(low, high + 1))
        elif kind == "star_step":
            items.append(f"*/{step}")
            values |= set(range(low, high + 1, step))
        elif kind == "value":
            items.append(show(a))
            values.add(a)
        elif kind == "range":
            items.append(f"{show(a)}-{show(b)}")
            values |= set(range(a, b + 1))
        elif kind == "range_step":
            items.append(f"{show(a)}-{show(b)}/{step}")
            values |= set(range(a, b + 1, step))
        else:
            items.append(f"{show(a)}/{step}")
            values |= set(range(a, high + 1, step))
    return ",".join(items), values


class Expected:
    """What a generated expression means, computed without the module under test."""

    def __init__(self, fields: list[tuple[str, set[int]]]) -> None:
        self.text = " ".join(text for text, _ in fields)
        self.minutes, self.hours, self.days, self.months, weekdays = (v for _, v in fields)
        self.weekdays = {d % 7 for d in weekdays}
        self.dom_star = fields[2][0] == "*"
        self.dow_star = fields[4][0] == "*"

    def day_ok(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        if not self.dom_star and not self.dow_star:
            return dom or dow
        return dom and dow

    def is_possible(self) -> bool:
        if self.dom_star or not self.dow_star:
            return True
        # Only day-of-month restricts days: some listed day must exist in some listed month
        # (2000 is a leap year, so February has 29 days).
        return any(
            day <= [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
            for month in self.months
            for day in self.days
        )

    def next_after(self, t: datetime) -> datetime:
        start = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.date()
        while True:
            if self.day_ok(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)


expressions = st.tuples(*(cron_field(i) for i in range(5))).map(lambda f: Expected(list(f)))
moments = st.datetimes(datetime(2000, 1, 1), datetime(2090, 12, 31), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(expected=expressions, t=moments)
def test_next_after_is_the_first_matching_minute_after_t(expected: Expected, t: datetime) -> None:
    if not expected.is_possible():
        with pytest.raises(ValueError, match="never occurs"):
            CronSchedule(expected.text)
        return
    schedule = CronSchedule(expected.text)
    assert set(schedule.minutes) == expected.minutes
    assert set(schedule.hours) == expected.hours
    assert set(schedule.days) == expected.days
    assert set(schedule.months) == expected.months
    assert set(schedule.weekdays) == expected.weekdays
    following = schedule.next_after(t)
    assert following > t
    assert schedule.matches(following)
    # Brute force: no matching minute between t and the answer.
    assert following == expected.next_after(t)


# -- due_runs ---------------------------------------------------------------------------------


class TestDueRuns:
    def test_not_yet_due(self) -> None:
        pending = at(2024, 5, 1, 3)
        result = due_runs(CronSchedule("0 3 * * *"), pending, at(2024, 5, 1, 2, 59, 59))
        assert result == DueRuns(None, pending, 0) and not result.is_due
        assert due_runs(IntervalSchedule(60), pending, at(2024, 5, 1, 2)) == (None, pending, 0)

    def test_due_on_time(self) -> None:
        schedule = CronSchedule("0 3 * * *")
        result = due_runs(schedule, at(2024, 5, 1, 3), at(2024, 5, 1, 3, 0, 0, 250))
        assert result == DueRuns(at(2024, 5, 1, 3), at(2024, 5, 2, 3), 0) and result.is_due

    def test_overdue_calendar_runs_are_skipped(self) -> None:
        schedule = CronSchedule("0 3 * * *")
        result = due_runs(schedule, at(2024, 1, 1, 3), at(2024, 1, 4, 5))
        assert result == DueRuns(at(2024, 1, 4, 3), at(2024, 1, 5, 3), 3)

    def test_overdue_hourly_within_one_day(self) -> None:
        schedule = CronSchedule("15 * * * *")
        result = due_runs(schedule, at(2024, 1, 1, 3, 15), at(2024, 1, 1, 6, 14, 59))
        assert result == DueRuns(at(2024, 1, 1, 5, 15), at(2024, 1, 1, 6, 15), 2)

    def test_overdue_interval_runs_are_skipped_and_the_grid_kept(self) -> None:
        pending = at(2024, 5, 1, 12, 0, 7)
        result = due_runs(IntervalSchedule(300), pending, at(2024, 5, 1, 12, 17, 30))
        assert result == DueRuns(at(2024, 5, 1, 12, 15, 7), at(2024, 5, 1, 12, 20, 7), 3)

    def test_interval_due_exactly_on_time(self) -> None:
        pending = at(2024, 5, 1, 12)
        assert due_runs(IntervalSchedule(60), pending, pending) == DueRuns(
            pending, at(2024, 5, 1, 12, 1), 0
        )

    def test_a_year_of_every_minute_is_counted_quickly(self) -> None:
        result = due_runs(CronSchedule("* * * * *"), at(2024, 1, 1), at(2025, 1, 1, 0, 0, 30))
        assert result == DueRuns(at(2025, 1, 1), at(2025, 1, 1, 0, 1), 366 * 24 * 60)

    def test_monthly_downtime_across_february(self) -> None:
        schedule = CronSchedule("0 0 31 * *")
        result = due_runs(schedule, at(2024, 1, 31), at(2024, 4, 1))
        assert result == DueRuns(at(2024, 3, 31), at(2024, 5, 31), 1)

    def test_pending_time_off_the_schedule_still_runs(self) -> None:
        # The job's schedule changed since the pending time was computed.
        schedule = CronSchedule("0 3 * * *")
        assert due_runs(schedule, at(2024, 5, 1, 2), at(2024, 5, 1, 2, 30)) == DueRuns(
            at(2024, 5, 1, 2), at(2024, 5, 1, 3), 0
        )
        assert due_runs(schedule, at(2024, 5, 1, 2), at(2024, 5, 1, 3, 30)) == DueRuns(
            at(2024, 5, 1, 3), at(2024, 5, 2, 3), 1
        )

    def test_pending_time_off_the_minute(self) -> None:
        schedule = CronSchedule("* * * * *")
        pending = at(2024, 5, 1, 2, 0, 30)
        assert due_runs(schedule, pending, at(2024, 5, 1, 2, 0, 45)) == DueRuns(
            pending, at(2024, 5, 1, 2, 1), 0
        )
        assert due_runs(schedule, pending, at(2024, 5, 1, 2, 2, 5)) == DueRuns(
            at(2024, 5, 1, 2, 2), at(2024, 5, 1, 2, 3), 2
        )

    def test_start_to_finish_with_first_run(self) -> None:
        crons = cron_jobs()
        job = crons.interval("flush", flush, minutes=5)
        deployed = at(2024, 5, 1, 12, 0, 7)
        pending = job.schedule.first_run(deployed)
        first = due_runs(job.schedule, pending, deployed)
        assert first == DueRuns(deployed, at(2024, 5, 1, 12, 5, 7), 0)

    @settings(max_examples=60, deadline=None)
    @given(
        expected=expressions.filter(lambda e: e.is_possible()),
        t=moments,
        wait=st.integers(0, 24 * 60 * 60),
    )
    def test_cron_against_stepping_one_run_at_a_time(
        self, expected: Expected, t: datetime, wait: int
    ) -> None:
        schedule = CronSchedule(expected.text)
        pending = schedule.first_run(t)
        now = pending + timedelta(seconds=wait)
        runs = [pending]
        while (following := schedule.next_after(runs[-1])) <= now:
            runs.append(following)
        assert due_runs(schedule, pending, now) == DueRuns(runs[-1], following, len(runs) - 1)

    @given(
        pending=moments,
        wait=st.integers(0, 10**7),
        seconds=st.integers(1, 10**5),
    )
    def test_interval_against_arithmetic(self, pending: datetime, wait: int, seconds: int) -> None:
        now = pending + timedelta(seconds=wait)
        result = due_runs(IntervalSchedule(seconds), pending, now)
        assert result.skipped == wait // seconds
        assert result.run_at == pending + timedelta(seconds=seconds * result.skipped)
        assert result.run_at is not None and result.run_at <= now < result.next_run
        assert result.next_run - result.run_at == timedelta(seconds=seconds)


# -- finding the jobs of a crons.py ------------------------------------------------------------


def module(**values: Any) -> types.ModuleType:
    made = types.ModuleType("_reactor_app_x.crons")
    made.__file__ = "/app/crons.py"
    vars(made).update(values)
    return made


class TestFindCrons:
    def test_crons_variable(self) -> None:
        crons, other = cron_jobs(), cron_jobs()
        assert find_crons(module(crons=crons, other=other)) is crons

    def test_only_instance_under_any_name(self) -> None:
        jobs = cron_jobs()
        assert find_crons(module(jobs=jobs, alias=jobs, crons="not crons")) is jobs

    def test_none(self) -> None:
        with pytest.raises(
            ModuleLoadError, match="must declare its jobs on `crons = cron_jobs"
        ) as info:
            find_crons(module())
        assert info.value.file == "/app/crons.py"

    def test_several(self) -> None:
        with pytest.raises(ModuleLoadError, match=r"several cron_jobs\(\) \(a, b\)"):
            find_crons(module(a=Crons(), b=Crons()))
