"""Business time: opening hours, holidays and SLA due times. Pure: no I/O, no clock reads.

Business hours are wall-clock hours in the helpdesk time zone, so "09:00-18:00" stays 09:00-18:00 across a
daylight-saving change; business time is the real time that passes while the helpdesk is open.  An interval that
touches a DST transition counts the hours that really pass (a 24/7 desk has 23 hours on the spring-forward day).

Hours are ``{weekday: ((start, end), ...)}`` with ``weekday`` 0 = Monday; an ``end`` of ``time(0, 0)`` means
midnight at the end of that day ("24:00").  Every instant this module returns is an aware datetime in UTC.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


__all__ = [
    "BusinessCalendar",
    "DEFAULT_BUSINESS_HOURS",
    "answer_by",
    "describe_due",
    "parse_business_hours",
    "parse_duration",
]

UTC = timezone.utc
DEFAULT_BUSINESS_HOURS = "Mon-Fri 09:00-18:00"
_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)
_SECOND = timedelta(seconds=1)
_MIDNIGHT = time(0, 0)
# A calendar that stays closed this long in a row is treated as one that never opens (add() must terminate).
_MAX_CLOSED_DAYS = 3660

Hours = dict[int, tuple[tuple[time, time], ...]]

# --------------------------------------------------------------------------------------------------- durations

_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_FORM = "a whole number with a unit, units in the order d, h, m, s (e.g. '90m', '4h', '2d', '1h30m', '45s')"


def _duration_parts(text: str) -> tuple[int, int, int, int]:
    """'1h30m' -> (days, hours, minutes, seconds), or ValueError saying what to write."""
    if not isinstance(text, str):
        raise ValueError(f"duration {text!r} must be text: {_DURATION_FORM}")
    compact = re.sub(r"\s+", "", text).lower()
    match = _DURATION_RE.fullmatch(compact)
    if not compact or match is None or not any(match.groups()):
        raise ValueError(f"invalid duration {text!r}: use {_DURATION_FORM}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return days, hours, minutes, seconds


def parse_duration(text: str) -> timedelta:
    """'90m', '4h', '2d', '1h30m', '45s' -> timedelta.  A day is 24 hours of business time, not a working day."""
    days, hours, minutes, seconds = _duration_parts(text)
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class Target:
    """A response target: whole working days, then business time.

    ``1d`` is the same clock time on the next working day (practice 4: nobody waits past that), not 24 business
    hours, which would tell a Tuesday customer "Friday"; ``4h`` is four hours of business time.
    """

    days: int = 0
    business: timedelta = timedelta(0)

    def __str__(self) -> str:
        return f"{self.days}d" * bool(self.days) + (f"{self.business}" if self.business or not self.days else "")


@functools.lru_cache(maxsize=64)  # asked for every due time of every ticket; the config holds a handful
def parse_target(text: str) -> Target:
    """'1d' -> one working day; '4h', '90m' -> business time; '1d4h' -> both."""
    days, hours, minutes, seconds = _duration_parts(text)  # the same form and errors as every other duration
    return Target(days=days, business=timedelta(hours=hours, minutes=minutes, seconds=seconds))


# ---------------------------------------------------------------------------------------------- business hours

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS_FORM = (
    "'<days> HH:MM-HH:MM[,HH:MM-HH:MM]' groups separated by ';' "
    "(e.g. 'Mon-Fri 09:00-12:00,13:00-18:00; Sat 10:00-14:00'), or '24/7'"
)
_CLOCK_RE = re.compile(r"(\d{1,2}):(\d{2})")


def _day_index(name: str, text: str) -> int:
    key = name.strip().lower()
    if key in _DAY_NAMES:
        return _DAY_NAMES.index(key)
    if key in _DAY_FULL:
        return _DAY_FULL.index(key)
    raise ValueError(
        f"invalid business hours {text!r}: unknown day {name.strip()!r} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)"
    )


def _parse_days(spec: str, text: str) -> list[int]:
    days: list[int] = []
    for item in spec.split(","):
        if not item.strip():
            raise ValueError(f"invalid business hours {text!r}: empty day in {spec.strip()!r}; expected {_HOURS_FORM}")
        if "-" in item:
            first, _, last = item.partition("-")
            lo, hi = _day_index(first, text), _day_index(last, text)
            # Day ranges may wrap across the week: Sun-Thu, Fri-Mon.
            days.extend((lo + i) % 7 for i in range((hi - lo) % 7 + 1))
        else:
            days.append(_day_index(item, text))
    return days


def _parse_clock(value: str, text: str, *, is_end: bool) -> tuple[time, int]:
    """'09:30' -> (time, minutes since midnight).  '24:00' is allowed as an end only."""
    match = _CLOCK_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"invalid business hours {text!r}: {value!r} is not a time; use HH:MM (24-hour clock)")
    hour, minute = int(match.group(1)), int(match.group(2))
    if is_end and (hour, minute) in ((24, 0), (0, 0)):
        return _MIDNIGHT, 24 * 60
    if hour > 23 or minute > 59:
        raise ValueError(
            f"invalid business hours {text!r}: {value!r} is not a time of day (00:00-23:59, or 24:00 as an end)"
        )
    return time(hour, minute), hour * 60 + minute


def parse_business_hours(text: str) -> Hours:
    """'Mon-Fri 09:00-18:00' -> {0: ((09:00, 18:00),), ..., 5: (), 6: ()}; every weekday is a key.

    Also: 'Mon-Fri 09:00-12:00,13:00-18:00; Sat 10:00-14:00', 'Mon,Wed,Fri 08:00-16:00', 'Sun-Thu 09:00-17:00',
    '24/7'.  An interval may not wrap past midnight; an end of 24:00 (or 00:00) is returned as time(0, 0).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"invalid business hours {text!r}: expected {_HOURS_FORM}")
    if re.sub(r"\s+", "", text) == "24/7":
        return {day: ((_MIDNIGHT, _MIDNIGHT),) for day in range(7)}
    minutes: dict[int, list[tuple[int, int, time, time]]] = {day: [] for day in range(7)}
    for group in text.split(";"):
        if not group.strip():
            continue
        first_digit = re.search(r"\d", group)
        if first_digit is None or not group[: first_digit.start()].strip():
            raise ValueError(
                f"invalid business hours {text!r}: {group.strip()!r} needs days and times; expected {_HOURS_FORM}"
            )
        days = _parse_days(group[: first_digit.start()], text)
        for span in re.sub(r"\s+", "", group[first_digit.start() :]).split(","):
            start_text, dash, end_text = span.partition("-")
            if not dash:
                raise ValueError(f"invalid business hours {text!r}: {span!r} is not a range; use HH:MM-HH:MM")
            start, start_min = _parse_clock(start_text, text, is_end=False)
            end, end_min = _parse_clock(end_text, text, is_end=True)
            if end_min <= start_min:
                raise ValueError(
                    f"invalid business hours {text!r}: {span!r} ends before it starts; hours may not wrap past "
                    "midnight inside a day (split it, e.g. 'Mon 22:00-24:00; Tue 00:00-06:00')"
                )
            for day in days:
                minutes[day].append((start_min, end_min, start, end))
    result: Hours = {}
    for day, spans in minutes.items():
        spans.sort()
        for (_, prev_end, _, _), (next_start, _, _, _) in zip(spans, spans[1:]):
            if next_start < prev_end:
                raise ValueError(f"invalid business hours {text!r}: overlapping hours on {_DAY_NAMES[day].title()}")
        result[day] = tuple((start, end) for _, _, start, end in spans)
    if not any(result.values()):
        raise ValueError(f"invalid business hours {text!r}: no open hours at all; expected {_HOURS_FORM}")
    return result


# ---------------------------------------------------------------------------------------------------- holidays


@functools.lru_cache(maxsize=256)
def _country_year(country: str, subdivision: str | None, year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(holidays, weekend working days) of one country and year; the holidays object is built once per year."""
    import holidays  # imported when a country is configured: it is the slowest import of a command's start

    table = holidays.country_holidays(country, subdiv=subdivision, years=year)
    workdays = getattr(table, "weekend_workdays", ()) or ()
    return frozenset(table), frozenset(d for d in workdays if d.year == year)


@functools.lru_cache(maxsize=1)
def _supported_countries() -> dict[str, list[str]]:
    import holidays

    return holidays.list_supported_countries()


def _resolve_country(country: str, subdivision: str | None) -> tuple[str, str | None]:
    """Canonical spelling of a country code and subdivision, or a ValueError a founder can act on."""
    supported = _supported_countries()
    code = country.strip().upper()
    if code not in supported:
        raise ValueError(
            f"unknown holidays country {country!r}: use an ISO 3166 code supported by the 'holidays' package, "
            "e.g. 'US', 'DE', 'RU'"
        )
    if subdivision is None or not subdivision.strip():
        return code, None
    by_key = {s.lower(): s for s in supported[code]}
    canonical = by_key.get(subdivision.strip().lower())
    if canonical is None:
        known = ", ".join(supported[code][:20]) + (", ..." if len(supported[code]) > 20 else "")
        raise ValueError(f"unknown holidays subdivision {subdivision!r} for {code}: use one of {known or '(none)'}")
    return code, canonical


def _parse_extra_date(value: str | date) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"invalid holiday date {value!r}: use YYYY-MM-DD, e.g. '2026-12-24'") from None


# ----------------------------------------------------------------------------------------------- time helpers


def _as_utc(value: datetime, name: str = "datetime") -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


@functools.lru_cache(maxsize=512)
def _since_midnight(moment: time) -> timedelta:
    return timedelta(hours=moment.hour, minutes=moment.minute, seconds=moment.second)


def _wall_to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """The instant a naive wall-clock time in ``tz`` happens.

    Ambiguous times (the repeated hour in autumn) take the first occurrence.  Times skipped in spring (they never
    happen) map to the instant of the jump, so the mapping never runs backwards.
    """
    before, after = wall.replace(tzinfo=tz).utcoffset(), wall.replace(tzinfo=tz, fold=1).utcoffset()
    if before >= after:  # an ordinary time, or an ambiguous one (fold=0 is the first occurrence)
        return (wall - before).replace(tzinfo=UTC)
    # In a gap the clock jumps forward: fold=0 reads the wall time with the offset before the jump (landing after
    # the jump), fold=1 with the offset after it (landing before the jump).
    lo = math.floor((wall - after).replace(tzinfo=UTC).timestamp())
    hi = math.ceil((wall - before).replace(tzinfo=UTC).timestamp())
    while hi - lo > 1:  # smallest second whose wall clock already reads past `wall`
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) > wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


# ------------------------------------------------------------------------------------------------ the calendar


@dataclass(frozen=True)
class BusinessCalendar:
    """Opening hours in a time zone, minus holidays.  Build it with :meth:`from_settings`."""

    tz: ZoneInfo
    hours: Hours
    holiday_dates: frozenset[date] = frozenset()  # extra closed dates on top of the country's holidays
    country: str | None = None
    subdivision: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tz, tzinfo):
            raise ValueError(f"tz must be a ZoneInfo, got {self.tz!r}")
        if set(self.hours) - set(range(7)):
            raise ValueError(f"hours keys must be weekdays 0 (Monday) to 6 (Sunday), got {sorted(self.hours)!r}")
        object.__setattr__(self, "holiday_dates", frozenset(self.holiday_dates))
        if self.country is not None:
            country, subdivision = _resolve_country(self.country, self.subdivision)
            object.__setattr__(self, "country", country)
            object.__setattr__(self, "subdivision", subdivision)
        elif self.subdivision is not None:
            raise ValueError(f"holidays subdivision {self.subdivision!r} needs a holidays country")

    @classmethod
    def from_settings(
        cls,
        timezone: str,
        business_hours: str = DEFAULT_BUSINESS_HOURS,
        holidays_country: str | None = None,
        holidays_subdivision: str | None = None,
        holidays_extra: Iterable[str | date] = (),
    ) -> BusinessCalendar:
        """Validate config values and build a calendar; a bad value raises ValueError saying what to write."""
        try:
            tz = ZoneInfo(str(timezone).strip())
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(
                f"unknown time zone {timezone!r}: use an IANA name such as 'Europe/Berlin' or 'America/New_York'"
            ) from None
        extra = frozenset(_parse_extra_date(value) for value in holidays_extra)
        country = holidays_country if holidays_country and holidays_country.strip() else None
        subdivision = holidays_subdivision if holidays_subdivision and holidays_subdivision.strip() else None
        return cls(tz, parse_business_hours(business_hours), extra, country, subdivision)  # checks the country

    # -- days

    def is_holiday(self, d: date) -> bool:
        """A country holiday (observed days included) or one of the extra dates."""
        if d in self.holiday_dates:
            return True
        return self.country is not None and d in _country_year(self.country, self.subdivision, d.year)[0]

    def _is_weekend_workday(self, d: date) -> bool:
        return self.country is not None and d in _country_year(self.country, self.subdivision, d.year)[1]

    def _day_hours(self, d: date) -> tuple[tuple[time, time], ...]:
        if self.is_holiday(d):
            return ()
        spans = self.hours.get(d.weekday(), ())
        if not spans and self._is_weekend_workday(d):
            # A weekend day the government made a working day (RU and others): the first open weekday's hours.
            spans = next((self.hours[day] for day in range(7) if self.hours.get(day)), ())
        return spans

    def _day_intervals(self, d: date) -> tuple[tuple[datetime, datetime], ...]:
        """The open intervals (UTC) of one day; computed once per day (every waiting ticket asks, every pass)."""
        cache = self.__dict__.setdefault("_day_cache", {})
        spans = cache.get(d)
        if spans is None:
            midnight = datetime.combine(d, _MIDNIGHT)
            spans = cache[d] = tuple(
                (u0, u1) for start, end in self._day_hours(d)
                if (u1 := _wall_to_utc(midnight + (_since_midnight(end) or _DAY), self.tz))
                > (u0 := _wall_to_utc(midnight + _since_midnight(start), self.tz)))
        return spans

    def _intervals(self, start: datetime, end: datetime | None = None) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals (UTC) after ``start``, clipped to it, in order; up to ``end`` if given, else forever.

        Without an end, a calendar that never opens raises ValueError instead of looping.
        """
        if end is None and not any(self.hours.values()):
            raise ValueError("the business hours have no open time at all, so no due time can be computed")
        day = start.astimezone(self.tz).date() - _DAY
        last = end.astimezone(self.tz).date() + _DAY if end is not None else None
        closed_run = 0
        while last is None or day <= last:
            found = False
            for u0, u1 in self._day_intervals(day):
                if u1 > start:
                    found = True
                    yield max(u0, start), u1
            closed_run = 0 if found else closed_run + 1
            if last is None and closed_run > _MAX_CLOSED_DAYS:
                raise ValueError(f"the calendar is closed for more than {_MAX_CLOSED_DAYS} days in a row after {start}")
            day += _DAY

    # -- instants

    def is_open(self, at: datetime) -> bool:
        at = _as_utc(at, "at")
        return any(u0 <= at < u1 for u0, u1 in self._intervals(at, at))

    def in_hours(self, at: datetime) -> bool:
        """Open at ``at``, or closing just then: a due time may be a closing (``add`` returns it when the time
        runs out there), and "by 18:00" is an honest promise of a desk that closes at 18:00."""
        at = _as_utc(at, "at")
        return any(u0 <= at <= u1 for u0, u1 in self._intervals(at - _SECOND, at))

    def next_open(self, at: datetime) -> datetime:
        """``at`` (in UTC) if the helpdesk is open then, else the next opening."""
        at = _as_utc(at, "at")
        for u0, _ in self._intervals(at):
            return u0
        raise AssertionError("unreachable: _intervals() never ends without raising")  # pragma: no cover

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant (UTC) when ``duration`` of business time has passed since ``start``.

        Outside hours the clock starts at the next opening.  If the time runs out exactly at a closing, the
        closing is returned, not the next opening.  A zero duration gives :meth:`next_open`.
        """
        start = _as_utc(start, "start")
        if duration < timedelta(0):
            raise ValueError(f"duration must not be negative, got {duration}")
        if not duration:
            return self.next_open(start)
        remaining = duration
        for u0, u1 in self._intervals(start):
            if u1 - u0 >= remaining:
                return u0 + remaining
            remaining -= u1 - u0
        raise AssertionError("unreachable: _intervals() never ends without raising")  # pragma: no cover

    def add_target(self, start: datetime, target: Target) -> datetime:
        """When a response is due: the same clock time ``target.days`` working days after ``start`` (a request
        that came in on Tuesday at 14:00, or at 20:00, is due on Wednesday by that time, so nobody waits past it),
        then ``target.business`` of business time.

        The deadline never lies after that clock time: on a day whose hours end earlier it is the (last) closing
        before it; only a clock time before the day's opening gives the opening. Days without hours (weekends,
        holidays) do not count.
        """
        moment = _as_utc(start, "start")
        if not target.days:
            moment = self.next_open(moment)
        else:
            local = moment.astimezone(self.tz)
            day = local.date()
            for _ in range(target.days):
                day += _DAY
                while not self._day_hours(day):
                    day += _DAY
                    if (day - local.date()).days > _MAX_CLOSED_DAYS:
                        raise ValueError(f"the calendar is closed for more than {_MAX_CLOSED_DAYS} days after {start}")
            wanted = _wall_to_utc(datetime.combine(day, local.time().replace(tzinfo=None)), self.tz)
            spans = list(self._day_intervals(day))
            if wanted < spans[0][0]:
                wanted = spans[0][0]
            elif not any(u0 <= wanted <= u1 for u0, u1 in spans):
                wanted = max(u1 for u0, u1 in spans if u1 <= wanted)
            moment = wanted
        return self.add(moment, target.business) if target.business else moment

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants; zero if ``end <= start``."""
        start, end = _as_utc(start, "start"), _as_utc(end, "end")
        total = timedelta(0)
        if end <= start:
            return total
        for u0, u1 in self._intervals(start, end):
            if u0 >= end:
                break
            total += min(u1, end) - u0
        return total


# ---------------------------------------------------------------------------------------------- customer words

_WORDS = {
    "en": {
        "soon": "within the hour",
        "today": "today by {time}",
        "tomorrow": "tomorrow by {time}",
        "weekday": "on {weekday} by {time}",
        "date": "on {day} {month} by {time}",
        "date_year": "on {day} {month} {year} by {time}",
        "weekdays": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        "months": (
            "January", "February", "March", "April", "May", "June",
            "July", "August", "September", "October", "November", "December",
        ),
    },
    "ru": {
        "soon": "в течение часа",
        "today": "сегодня до {time}",
        "tomorrow": "завтра до {time}",
        "weekday": "{weekday} до {time}",
        "date": "{day} {month} до {time}",
        "date_year": "{day} {month} {year} г. до {time}",
        # Accusative with its preposition: "в понедельник", "во вторник", "в среду"...
        "weekdays": (
            "в понедельник", "во вторник", "в среду", "в четверг", "в пятницу", "в субботу", "в воскресенье",
        ),
        # Genitive: "2 января".
        "months": (
            "января", "февраля", "марта", "апреля", "мая", "июня",
            "июля", "августа", "сентября", "октября", "ноября", "декабря",
        ),
    },
}


def _zone_abbreviation(moment: datetime) -> str:
    name = moment.tzname() or ""
    if name.startswith(("+", "-")):
        return f"UTC{name}"  # zones without a letter abbreviation (Asia/Dubai says "+04")
    return name


def answer_by(due: datetime, now: datetime, calendar: BusinessCalendar) -> datetime:
    """When a customer can really expect an answer, in working hours: a due time already past, or one that fell
    outside the hours (a priority or hours change moves it there), is no moment anybody answers at.

    - due later and within the hours (a closing counts): the due time itself;
    - due now or already past: one hour of business time from now (now + 1 h while open; at 21:46, or on
      Saturday, the end of the first hour after the next opening, 10:00 for a desk opening at 09:00);
    - due later but outside the hours: the end of the first hour of business time after it.
    """
    due, now = _as_utc(due, "due"), _as_utc(now, "now")
    if due > now and calendar.in_hours(due):
        return due
    return calendar.add(max(due, now), _HOUR)


def describe_due(due: datetime, now: datetime, tz: tzinfo, language: str = "en", *,
                 calendar: BusinessCalendar | None = None) -> str:
    """When the customer can expect an answer, in their words, in the helpdesk time zone.

    "within the hour", "today by 15:00 CET", "tomorrow by 10:00 CET", "on Monday by 10:00 CET" (up to 6 days
    ahead), "on 2 January by 10:00 CET" (the year is added when the date is more than 300 days away).
    ``language`` "ru" (or "ru_RU", "ru-RU") gives Russian; anything else English.

    Without ``calendar`` the due time is told as it is, and "within the hour" also when it is already past.
    With the helpdesk's ``calendar`` the words tell :func:`answer_by`, and "within the hour" only while the
    helpdesk is open now and that moment is within the hour: a backlog ticket past due at 21:46 on a Thursday reads
    "tomorrow by 10:00 CET" (its first hour of work), on Friday night "on Monday by 10:00 CET"; at 08:30 it
    reads "today by 10:00 CET". The helpdesk's hours and holidays count, not agents' own shifts: due times are
    computed in the same hours.
    """
    due, now = _as_utc(due, "due"), _as_utc(now, "now")
    lang = re.split(r"[-_]", (language or "en").strip().lower())[0]
    words = _WORDS.get(lang, _WORDS["en"])
    if calendar is not None:
        due = answer_by(due, now, calendar)
        if due - now <= _HOUR and calendar.is_open(now):
            return words["soon"]
    elif due - now < _HOUR:
        return words["soon"]
    local_due, local_now = due.astimezone(tz), now.astimezone(tz)
    clock = f"{local_due:%H:%M} {_zone_abbreviation(local_due)}".rstrip()
    days_ahead = (local_due.date() - local_now.date()).days
    if days_ahead <= 0:
        return words["today"].format(time=clock)
    if days_ahead == 1:
        return words["tomorrow"].format(time=clock)
    if days_ahead <= 6:
        return words["weekday"].format(weekday=words["weekdays"][local_due.weekday()], time=clock)
    key = "date_year" if days_ahead > 300 else "date"
    return words[key].format(
        day=local_due.day, month=words["months"][local_due.month - 1], year=local_due.year, time=clock
    )
