"""Cron jobs: what an app's ``crons.py`` declares, and when each job is next due.

Owns the declaration API (``crons = cron_jobs()``, then ``crons.interval/hourly/daily/weekly/
monthly/cron``), the schedules (``IntervalSchedule``, ``CronSchedule`` with its 5-field parser)
and the pure time arithmetic (``next_after``, ``first_run``, ``due_runs``). It does not read
clocks, store job state or run functions: the runtime passes times in and schedules the calls.

Decisions (all times are timezone-aware UTC ``datetime`` objects; calendar schedules have minute
resolution and return times on the minute):

* ``weekly(day_of_week=...)`` takes an English day name (``"monday"``, ``"Mon"``; any case) or
  a cron day number, ``0``-``6`` with Sunday ``0`` (``7`` is Sunday too). It is *not* Python's
  ``date.weekday()`` numbering.
* ``monthly(day=29..31)`` skips the months that lack that day, as cron does: ``day=31`` runs in
  seven months a year, ``day=29`` in February only in leap years. It never clamps.
* An omitted ``minute_utc`` becomes a stable minute derived from the job name (a SHA-256 of it,
  modulo 60), the same on every machine and every deploy, to spread jobs over the hour.
* Interval jobs first run at registration (deploy) time, then every interval after the previous
  *scheduled* time, so the grid never drifts; calendar jobs first run at the next matching
  minute strictly after registration.
* Overdue runs are skipped, not replayed: ``due_runs`` picks only the latest due time to run now,
  counts the others as skipped, and returns the next time strictly after ``now``.
* In a ``cron()`` expression, when day-of-month and day-of-week are both other than ``*``, a day
  matches if *either* matches (the classic cron rule); otherwise both must. ``*/n`` counts as
  restricted. Expressions that can never match (``0 0 31 2 *``) are rejected.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType, ModuleType
from typing import Any, NamedTuple, TypeAlias

from functions.decorators import FunctionKind, FunctionSpec
from functions.errors import ModuleLoadError
from functions.paths import FunctionPath, canonicalize, reference_path

__all__ = [
    "CronJob",
    "CronSchedule",
    "Crons",
    "DueRuns",
    "IntervalSchedule",
    "Schedule",
    "ScheduleKind",
    "cron_jobs",
    "due_runs",
    "find_crons",
    "stable_minute",
]

_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)
# Any expression that passes validation matches within 8 years (Feb 29 across a skipped leap
# year, 2096 -> 2104); searching further means a bug, not a rare schedule.
_SEARCH_YEARS = 9

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FULL_DAY_NAMES = (
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
)
# The longest each month can be (February in a leap year).
_MONTH_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class ScheduleKind(enum.Enum):
    """How a job's schedule was declared; the value is Convex's name for it."""

    INTERVAL = "interval"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    CRON = "cron"


def _utc(t: Any, what: str = "time") -> datetime:
    if not isinstance(t, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {t.isoformat()}")
    return t.astimezone(UTC)


def stable_minute(name: str) -> int:
    """The minute (0-59) a job named ``name`` runs at when its declaration omits one."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 60


@dataclass(frozen=True)
class IntervalSchedule:
    """Every ``seconds`` seconds, starting when the job is registered."""

    seconds: int

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int):
            raise TypeError(f"An interval is a whole number of seconds, got {self.seconds!r}")
        if self.seconds < 1:
            raise ValueError(f"An interval must be at least 1 second, got {self.seconds}")

    @property
    def kind(self) -> ScheduleKind:
        return ScheduleKind.INTERVAL

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def first_run(self, registered_at: datetime) -> datetime:
        """When a job registered at ``registered_at`` first runs: at once (Convex: at deploy)."""
        return _utc(registered_at, "registered_at")

    def next_after(self, t: datetime, last_run: datetime | None = None) -> datetime:
        """The first time strictly after ``t`` on the grid ``last_run + k * interval`` (k >= 1).

        Without ``last_run`` the grid is anchored at ``t``, so the answer is ``t + interval``.
        """
        t = _utc(t, "t")
        anchor = t if last_run is None else _utc(last_run, "last_run")
        if anchor > t:
            return anchor + self.interval
        steps = (t - anchor) // self.interval + 1
        return anchor + steps * self.interval

    def __str__(self) -> str:
        return f"every {self.seconds}s"


class CronSchedule:
    """A 5-field cron expression in UTC: ``minute hour day-of-month month day-of-week``.

    Fields accept ``*``, numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (``a`` to
    the field's maximum), and comma lists of these. Month names ``jan``-``dec`` and day names
    ``sun``-``sat`` (any case) work in their fields, also in ranges; day-of-week ``0`` and ``7``
    are both Sunday. ``L``, ``W``, ``#`` and ``?`` are not supported.

    Equality compares the sets of matching times, not the text or the kind.
    """

    def __init__(self, expression: str, *, kind: ScheduleKind = ScheduleKind.CRON) -> None:
        if not isinstance(expression, str):
            raise TypeError(f"A cron expression must be a string, got {type(expression).__name__}")
        fields = expression.split()
        if len(fields) != 5:
            raise ValueError(
                f"Invalid cron expression {expression!r}: it has {len(fields)} fields; expected "
                "5: minute hour day-of-month month day-of-week"
            )
        self.expression = " ".join(fields)
        self.kind = kind
        try:
            self.minutes = _parse_field(fields[0], "minute", 0, 59)
            self.hours = _parse_field(fields[1], "hour", 0, 23)
            self.days = _parse_field(fields[2], "day-of-month", 1, 31)
            self.months = _parse_field(fields[3], "month", 1, 12, _MONTH_NAMES, 1)
            weekdays = _parse_field(fields[4], "day-of-week", 0, 7, _DAY_NAMES, 0)
        except ValueError as exc:
            raise ValueError(f"Invalid cron expression {expression!r}: {exc}") from None
        self.weekdays = tuple(sorted({d % 7 for d in weekdays}))
        self.dom_restricted = fields[2] != "*"
        self.dow_restricted = fields[4] != "*"
        self._either_day = self.dom_restricted and self.dow_restricted
        self._month_set = frozenset(self.months)
        self._day_set = frozenset(self.days)
        self._weekday_set = frozenset(self.weekdays)
        self._per_day = len(self.hours) * len(self.minutes)
        if self.dom_restricted and not self._either_day:
            possible = any(day <= _MONTH_MAX_DAYS[m - 1] for m in self.months for day in self.days)
            if not possible:
                raise ValueError(
                    f"Invalid cron expression {expression!r}: day-of-month {fields[2]!r} never "
                    f"occurs in month {fields[3]!r}, so it would never run"
                )

    def _key(self) -> tuple[Any, ...]:
        return (self.minutes, self.hours, self.days, self.months, self.weekdays, self._either_day)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronSchedule):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, kind={self.kind})"

    def __str__(self) -> str:
        return f"cron {self.expression!r} (UTC)"

    def day_matches(self, day: date) -> bool:
        """Whether the job runs at some minute of ``day`` (a UTC date)."""
        if day.month not in self._month_set:
            return False
        in_days = day.day in self._day_set
        in_weekdays = day.isoweekday() % 7 in self._weekday_set
        return in_days or in_weekdays if self._either_day else in_days and in_weekdays

    def matches(self, t: datetime) -> bool:
        """Whether the minute containing ``t`` is a scheduled time."""
        t = _utc(t, "t")
        return t.minute in self.minutes and t.hour in self.hours and self.day_matches(t.date())

    def first_run(self, registered_at: datetime) -> datetime:
        """When a job registered at ``registered_at`` first runs: its next matching minute."""
        return self.next_after(registered_at)

    def next_after(self, t: datetime, last_run: datetime | None = None) -> datetime:
        """The first matching minute strictly after ``t``; ``last_run`` is ignored."""
        start = _utc(t, "t").replace(second=0, microsecond=0) + _MINUTE
        day, hour, minute = start.date(), start.hour, start.minute
        limit = start.year + _SEARCH_YEARS
        while day.year <= limit:
            if day.month not in self._month_set:
                day = _first_of_next_month(day)
                hour = minute = 0
                continue
            if self.day_matches(day):
                found = self._first_time_from(hour, minute)
                if found is not None:
                    return datetime(day.year, day.month, day.day, *found, tzinfo=UTC)
            day += _DAY
            hour = minute = 0
        raise RuntimeError(f"{self} has no run within {_SEARCH_YEARS} years of {t}")  # unreachable

    def _first_time_from(self, hour: int, minute: int) -> tuple[int, int] | None:
        """The earliest scheduled (hour, minute) of a day at or after ``hour:minute``."""
        i = bisect.bisect_left(self.hours, hour)
        if i < len(self.hours) and self.hours[i] == hour:
            j = bisect.bisect_left(self.minutes, minute)
            if j < len(self.minutes):
                return hour, self.minutes[j]
            i += 1
        if i < len(self.hours):
            return self.hours[i], self.minutes[0]
        return None

    def _times_up_to(self, hour: int, minute: int) -> tuple[int, tuple[int, int] | None]:
        """How many scheduled times of a day are at or before ``hour:minute``, and the last."""
        i = bisect.bisect_right(self.hours, hour)
        count = i * len(self.minutes)
        if i and self.hours[i - 1] == hour:
            j = bisect.bisect_right(self.minutes, minute)
            count -= len(self.minutes) - j
            if j:
                return count, (hour, self.minutes[j - 1])
            i -= 1
        if i:
            return count, (self.hours[i - 1], self.minutes[-1])
        return count, None

    def scan(self, start: datetime, end: datetime) -> tuple[int, datetime | None]:
        """How many scheduled minutes lie in ``[start, end]``, and the latest of them.

        Both ends are taken at minute resolution (the minute containing each); the cost is one
        step per day in matching months, so a year of downtime costs a few hundred steps.
        """
        first = _utc(start, "start").replace(second=0, microsecond=0)
        last = _utc(end, "end").replace(second=0, microsecond=0)
        count, latest = 0, None
        day = first.date()
        while day <= last.date():
            if day.month not in self._month_set:
                day = _first_of_next_month(day)
                continue
            if self.day_matches(day):
                if day == last.date():
                    n, top = self._times_up_to(last.hour, last.minute)
                else:
                    n, top = self._per_day, (self.hours[-1], self.minutes[-1])
                if day == first.date() and (first.hour or first.minute):
                    n -= self._times_up_to(*_minute_before(first.hour, first.minute))[0]
                if n > 0 and top is not None:
                    count += n
                    latest = datetime(day.year, day.month, day.day, *top, tzinfo=UTC)
            day += _DAY
        return count, latest


def _minute_before(hour: int, minute: int) -> tuple[int, int]:
    return (hour, minute - 1) if minute else (hour - 1, 59)


def _first_of_next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _parse_value(
    text: str, field: str, low: int, high: int, names: tuple[str, ...] | None, base: int
) -> int:
    if _is_number(text):
        value = int(text)
    elif names is not None and text.lower() in names:
        value = names.index(text.lower()) + base
    else:
        if names is not None:
            expected = f"a number or a name ({names[0]}..{names[-1]})"
        else:
            expected = "a number"
        raise ValueError(f"{field}: {text!r} is not {expected}")
    if not low <= value <= high:
        raise ValueError(f"{field}: {value} is out of range {low}-{high}")
    return value


def _parse_field(
    text: str,
    field: str,
    low: int,
    high: int,
    names: tuple[str, ...] | None = None,
    base: int = 0,
) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"{field}: empty item in list {text!r}")
        body, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _is_number(step_text) or int(step_text) == 0:
                raise ValueError(
                    f"{field}: step {step_text!r} in {item!r} must be a positive integer"
                )
            step = int(step_text)
        if body == "*":
            start, stop = low, high
        elif "-" in body:
            first, _, second = body.partition("-")
            start = _parse_value(first, field, low, high, names, base)
            stop = _parse_value(second, field, low, high, names, base)
            if start > stop:
                raise ValueError(f"{field}: range {body!r} goes backwards")
        else:
            start = _parse_value(body, field, low, high, names, base)
            stop = high if slash else start
        values.update(range(start, stop + 1, step))
    return tuple(sorted(values))


Schedule: TypeAlias = IntervalSchedule | CronSchedule
"""What ``CronJob.schedule`` holds: both kinds offer ``first_run`` and ``next_after``."""


class DueRuns(NamedTuple):
    """What ``due_runs`` decided.

    Attributes:
        run_at: the scheduled time of the run to execute now (the latest due one), or None
            when nothing is due yet.
        next_run: the next scheduled time, strictly after ``now``; store it as pending.
        skipped: how many overdue scheduled times were dropped (not run; log them).
    """

    run_at: datetime | None
    next_run: datetime
    skipped: int

    @property
    def is_due(self) -> bool:
        return self.run_at is not None


def due_runs(schedule: Schedule, next_run: datetime, now: datetime) -> DueRuns:
    """Decide what to run at ``now`` for a job whose pending scheduled time is ``next_run``.

    Overdue runs are skipped, never replayed in a burst: of all scheduled times in
    ``[next_run, now]`` only the latest runs and the rest count as skipped, and the job's next
    time is the first scheduled time strictly after ``now``. Call it when the pending time has
    arrived and no run of the job is in progress (Convex runs at most one at a time), then store
    ``next_run``. Intervals stay on the grid anchored at the first run.

    Args:
        schedule: the job's schedule.
        next_run: the job's pending scheduled time (``first_run`` after a deploy, then the
            ``next_run`` of the previous call).
        now: the current time.
    """
    pending = _utc(next_run, "next_run")
    now = _utc(now, "now")
    if now < pending:
        return DueRuns(None, pending, 0)
    if isinstance(schedule, IntervalSchedule):
        steps = (now - pending) // schedule.interval
        run_at = pending + steps * schedule.interval
        return DueRuns(run_at, run_at + schedule.interval, steps)
    on_minute = pending.second == pending.microsecond == 0
    # Scheduled minutes in [pending, now]; a pending time off the minute is not one itself.
    count, latest = schedule.scan(pending if on_minute else pending + _MINUTE, now)
    if latest is None:
        return DueRuns(pending, schedule.next_after(now), 0)
    # A pending time no longer on the schedule (the schedule changed) still counts as due.
    total = count if on_minute and schedule.matches(pending) else count + 1
    return DueRuns(latest, schedule.next_after(now), total - 1)


@dataclass(frozen=True)
class CronJob:
    """One declared job: run ``fn`` with ``args`` on ``schedule``.

    ``fn`` is the registered mutation or action, or its canonical path string.
    """

    name: str
    schedule: Schedule
    fn: FunctionSpec | str
    args: dict[str, Any]

    @property
    def function_path(self) -> FunctionPath:
        """The canonical path of ``fn``.

        Raises:
            InvalidFunctionPath: ``fn`` is a function no app module exports.
        """
        return reference_path(self.fn)


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"A cron job name must be a string, got {type(name).__name__}")
    if not name:
        raise ValueError("A cron job name must not be empty")
    if not all(" " <= ch <= "~" for ch in name):
        raise ValueError(f"Invalid cron job name {name!r}: use printable ASCII characters only")
    return name


def _check_int(job: str, option: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Cron job {job!r}: {option} must be an int, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"Cron job {job!r}: {option}={value} is out of range {low}-{high}")
    return value


def _check_fn(job: str, fn: Any) -> FunctionSpec | str:
    if isinstance(fn, str):
        return canonicalize(fn)
    if not isinstance(fn, FunctionSpec):
        raise TypeError(
            f"Cron job {job!r}: fn must be a mutation or action (or its path), got {fn!r}"
        )
    if fn.kind not in (FunctionKind.MUTATION, FunctionKind.ACTION):
        raise TypeError(
            f"Cron job {job!r}: {fn!r} is a {fn.kind.value}; crons run mutations and actions"
        )
    return fn


def _check_args(job: str, args: Any) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise TypeError(f"Cron job {job!r}: args must be a dict, got {type(args).__name__}")
    for key in args:
        if not isinstance(key, str):
            raise TypeError(f"Cron job {job!r}: argument names must be strings, got {key!r}")
    return dict(args)


def _day_of_week(job: str, value: Any) -> int:
    if isinstance(value, str):
        lowered = value.lower()
        for number, (full, short) in enumerate(zip(_FULL_DAY_NAMES, _DAY_NAMES, strict=True)):
            if lowered in (full, short):
                return number
        raise ValueError(
            f"Cron job {job!r}: day_of_week={value!r} is not a day name (sunday..saturday)"
        )
    return _check_int(job, "day_of_week", value, 0, 7) % 7


class Crons:
    """The jobs an app's ``crons.py`` declares, by name, in declaration order.

    Each declaring method validates everything at once (so a bad ``crons.py`` fails to import)
    and returns the new ``CronJob``. ``args`` defaults to ``{}``.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, CronJob] = {}

    @property
    def jobs(self) -> Mapping[str, CronJob]:
        """Read-only view: job name -> ``CronJob``."""
        return MappingProxyType(self._jobs)

    def __iter__(self) -> Iterator[CronJob]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __repr__(self) -> str:
        return f"<Crons {list(self._jobs)}>"

    def _add(self, name: str, schedule: Schedule, fn: Any, args: Any) -> CronJob:
        job = CronJob(name, schedule, _check_fn(name, fn), _check_args(name, args))
        self._jobs[name] = job
        return job

    def _start(self, name: Any) -> str:
        checked = _check_name(name)
        if checked in self._jobs:
            raise ValueError(f"Cron job {checked!r} is declared twice: job names must be unique")
        return checked

    def interval(
        self,
        name: str,
        fn: FunctionSpec | str,
        args: Mapping[str, Any] | None = None,
        *,
        seconds: int | None = None,
        minutes: int | None = None,
        hours: int | None = None,
    ) -> CronJob:
        """Run every ``seconds``, ``minutes`` or ``hours`` (exactly one, a positive int).

        The first run is at registration (deploy) time.
        """
        name = self._start(name)
        given = {
            unit: value
            for unit, value in (("seconds", seconds), ("minutes", minutes), ("hours", hours))
            if value is not None
        }
        if len(given) != 1:
            raise ValueError(
                f"Cron job {name!r}: interval() takes exactly one of seconds=, minutes=, hours="
            )
        ((unit, value),) = given.items()
        value = _check_int(name, unit, value, 1, 10**9)
        factor = {"seconds": 1, "minutes": 60, "hours": 3600}[unit]
        return self._add(name, IntervalSchedule(value * factor), fn, args)

    def hourly(
        self,
        name: str,
        fn: FunctionSpec | str,
        args: Mapping[str, Any] | None = None,
        *,
        minute_utc: int | None = None,
    ) -> CronJob:
        """Run every hour at ``minute_utc`` (default: the job's stable minute)."""
        name = self._start(name)
        minute = self._minute(name, minute_utc)
        return self._add(
            name, CronSchedule(f"{minute} * * * *", kind=ScheduleKind.HOURLY), fn, args
        )

    def daily(
        self,
        name: str,
        fn: FunctionSpec | str,
        args: Mapping[str, Any] | None = None,
        *,
        hour_utc: int,
        minute_utc: int | None = None,
    ) -> CronJob:
        """Run every day at ``hour_utc:minute_utc`` UTC."""
        name = self._start(name)
        hour = _check_int(name, "hour_utc", hour_utc, 0, 23)
        minute = self._minute(name, minute_utc)
        schedule = CronSchedule(f"{minute} {hour} * * *", kind=ScheduleKind.DAILY)
        return self._add(name, schedule, fn, args)

    def weekly(
        self,
        name: str,
        fn: FunctionSpec | str,
        args: Mapping[str, Any] | None = None,
        *,
        day_of_week: str | int,
        hour_utc: int,
        minute_utc: int | None = None,
    ) -> CronJob:
        """Run every week on ``day_of_week`` at ``hour_utc:minute_utc`` UTC.

        ``day_of_week`` is a day name (``"monday"`` or ``"mon"``, any case) or a cron day
        number: 0-6 with Sunday 0 (7 is Sunday too).
        """
        name = self._start(name)
        weekday = _day_of_week(name, day_of_week)
        hour = _check_int(name, "hour_utc", hour_utc, 0, 23)
        minute = self._minute(name, minute_utc)
        schedule = CronSchedule(f"{minute} {hour} * * {weekday}", kind=ScheduleKind.WEEKLY)
        return self._add(name, schedule, fn, args)

    def monthly(
        self,
        name: str,
        fn: FunctionSpec | str,
        args: Mapping[str, Any] | None = None,
        *,
        day: int,
        hour_utc: int,
        minute_utc: int | None = None,
    ) -> CronJob:
        """Run every month on ``day`` (1-31) at ``hour_utc:minute_utc`` UTC.

        Months without that day are skipped (``day=31`` skips April; ``day=29`` skips February
        except in leap years); the run is never moved to the month's last day.
        """
        name = self._start(name)
        day = _check_int(name, "day", day, 1, 31)
        hour = _check_int(name, "hour_utc", hour_utc, 0, 23)
        minute = self._minute(name, minute_utc)
        schedule = CronSchedule(f"{minute} {hour} {day} * *", kind=ScheduleKind.MONTHLY)
        return self._add(name, schedule, fn, args)

    def cron(
        self,
        name: str,
        expression: str,
        fn: FunctionSpec | str,
        args: Mapping[str, Any] | None = None,
    ) -> CronJob:
        """Run on a 5-field cron expression in UTC (see ``CronSchedule``)."""
        name = self._start(name)
        try:
            schedule = CronSchedule(expression)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"Cron job {name!r}: {exc}") from None
        return self._add(name, schedule, fn, args)

    @staticmethod
    def _minute(name: str, minute_utc: int | None) -> int:
        if minute_utc is None:
            return stable_minute(name)
        return _check_int(name, "minute_utc", minute_utc, 0, 59)


def cron_jobs() -> Crons:
    """A new, empty set of jobs; ``crons.py`` does ``crons = cron_jobs()`` and declares on it."""
    return Crons()


def find_crons(module: ModuleType) -> Crons:
    """The ``Crons`` an imported ``crons.py`` declares.

    The module-level variable ``crons`` when it is a ``Crons``; otherwise the only ``Crons``
    among the module's globals.

    Raises:
        ModuleLoadError: the module holds no ``Crons``, or several and none named ``crons``.
    """
    file = getattr(module, "__file__", None)
    named = getattr(module, "crons", None)
    if isinstance(named, Crons):
        return named
    found: dict[int, tuple[str, Crons]] = {}
    for attribute, value in vars(module).items():
        if isinstance(value, Crons):
            found.setdefault(id(value), (attribute, value))
    if len(found) == 1:
        return next(iter(found.values()))[1]
    if not found:
        raise ModuleLoadError(
            "crons.py must declare its jobs on `crons = cron_jobs()` at module level", file=file
        )
    names = ", ".join(sorted(attribute for attribute, _ in found.values()))
    raise ModuleLoadError(
        f"crons.py defines several cron_jobs() ({names}); name the one to run `crons`", file=file
    )
