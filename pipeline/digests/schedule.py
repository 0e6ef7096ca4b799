"""Cron schedules in an IANA time zone, parsed and iterated by croniter (never by hand): validation with a message a
person can act on, the shortest interval a schedule fires at, the next fire time and the fire times in a gap.
Times in and out are aware UTC datetimes; the cron expression is read in the schedule's own zone (so "0 7 * * 1" is
07:00 on Mondays in Berlin, summer and winter)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from pipeline.errors import PipelineError

SAMPLES = 400  # consecutive fire times looked at for the shortest interval (a year of weekly, 100 h of 15-minute)


class InvalidSchedule(PipelineError):
    """A digest schedule's cron expression or time zone is malformed, or fires more often than allowed."""


@dataclass(frozen=True)
class Cron:
    expression: str
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_after(self, when: datetime) -> datetime:
        """The first fire time strictly after `when` (UTC)."""
        it = croniter(self.expression, when.astimezone(self.zone))
        return it.get_next(datetime).astimezone(UTC)

    def fires_until(self, first: datetime, now: datetime, limit: int = 100_000) -> tuple[datetime, datetime]:
        """From fire time `first` (<= now): the last fire time <= `now`, and the first one after it."""
        last, nxt = first, self.next_after(first)
        for _ in range(limit):
            if nxt > now:
                break
            last, nxt = nxt, self.next_after(nxt)
        return last, nxt

    def shortest_interval(self, start: datetime) -> timedelta:
        it = croniter(self.expression, start.astimezone(self.zone))
        times = [it.get_next(datetime).astimezone(UTC) for _ in range(SAMPLES)]
        return min(b - a for a, b in zip(times, times[1:]))


def parse_cron(expression: str, timezone: str, *, min_interval: float, now: datetime | None = None) -> Cron:
    """A checked schedule, or InvalidSchedule naming what is wrong (and the limit, for one that fires too often)."""
    expression = " ".join(expression.split())
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise InvalidSchedule(f"cron {expression!r} is not a 5-field cron expression (minute hour day-of-month month "
                              "day-of-week), e.g. \"0 7 * * 1\" for Mondays at 07:00")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(f"time zone {timezone!r} is not an IANA time zone name, e.g. Europe/Berlin or UTC"
                              ) from None
    cron = Cron(expression, timezone)
    shortest = cron.shortest_interval(now or datetime.now(UTC))
    if shortest.total_seconds() < min_interval:
        raise InvalidSchedule(
            f"cron {expression!r} fires every {_span(shortest.total_seconds())} at times; the shortest interval "
            f"allowed is {_span(min_interval)} (WHOLEDOC_DIGEST_MIN_INTERVAL)")
    return cron


def _span(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
