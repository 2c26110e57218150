"""Business time, holidays and due-time wording (mailhelpdesk.core.sla): pure, so every case passes its own `now`."""

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhelpdesk.core.sla import BusinessCalendar, describe_due, parse_business_hours, parse_duration

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MOSCOW = ZoneInfo("Europe/Moscow")

DE = BusinessCalendar.from_settings("Europe/Berlin", holidays_country="DE")
US = BusinessCalendar.from_settings("America/New_York", holidays_country="US")
RU = BusinessCalendar.from_settings("Europe/Moscow", holidays_country="RU")
PLAIN_BERLIN = BusinessCalendar.from_settings("Europe/Berlin")
ALWAYS_BERLIN = BusinessCalendar.from_settings("Europe/Berlin", "24/7")

H = timedelta(hours=1)


def at(tz, *args):
    return datetime(*args, tzinfo=tz)


# ------------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    "text, expected",
    [
        ("90m", timedelta(minutes=90)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(hours=48)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (" 1h 30m ", timedelta(hours=1, minutes=30)),
        ("4H", timedelta(hours=4)),
        ("0m", timedelta(0)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "90", "h", "1.5h", "-1h", "30m1h", "4 hours", "1w", "1h-30m", None])
def test_parse_duration_rejects_with_a_clear_message(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert repr(text) in message and "'1h30m'" in message


# -------------------------------------------------------------------------------------------- business hours

WEEKDAYS_9_18 = ((time(9), time(18)),)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mon-Fri 09:00-18:00", {**{d: WEEKDAYS_9_18 for d in range(5)}, 5: (), 6: ()}),
        (
            "Mon-Fri 09:00-12:00,13:00-18:00; Sat 10:00-14:00",
            {
                **{d: ((time(9), time(12)), (time(13), time(18))) for d in range(5)},
                5: ((time(10), time(14)),),
                6: (),
            },
        ),
        ("24/7", {d: ((time(0), time(0)),) for d in range(7)}),
        (" 24 / 7 ", {d: ((time(0), time(0)),) for d in range(7)}),
        ("Mon,Wed,Fri 08:00-16:00", {0: ((time(8), time(16)),), 1: (), 2: ((time(8), time(16)),), 3: (),
                                     4: ((time(8), time(16)),), 5: (), 6: ()}),
        ("Sun-Thu 09:00-17:00", {**{d: ((time(9), time(17)),) for d in (6, 0, 1, 2, 3)}, 4: (), 5: ()}),
        ("Fri-Mon 9:30-17:45", {**{d: ((time(9, 30), time(17, 45)),) for d in (4, 5, 6, 0)}, 1: (), 2: (), 3: ()}),
        ("mon , TUE 22:00-24:00", {0: ((time(22), time(0)),), 1: ((time(22), time(0)),), 2: (), 3: (), 4: (),
                                   5: (), 6: ()}),
        ("Monday 13:00-18:00; Monday 08:00-12:00", {0: ((time(8), time(12)), (time(13), time(18))), 1: (), 2: (),
                                                    3: (), 4: (), 5: (), 6: ()}),
        ("Sat 00:00-00:00", {0: (), 1: (), 2: (), 3: (), 4: (), 5: ((time(0), time(0)),), 6: ()}),
    ],
)
def test_parse_business_hours(text, expected):
    assert parse_business_hours(text) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "expected"),
        ("09:00-18:00", "needs days and times"),
        ("Mon-Fri", "needs days and times"),
        ("Mon-Fro 09:00-18:00", "unknown day 'Fro'"),
        ("Mon-Fri 9-18", "not a time"),
        ("Mon-Fri 09:00", "not a range"),
        ("Mon-Fri 25:00-26:00", "not a time of day"),
        ("Mon-Fri 09:60-18:00", "not a time of day"),
        ("Mon 24:00-18:00", "not a time of day"),
        ("Mon 18:00-09:00", "wrap past midnight"),
        ("Mon 09:00-09:00", "ends before it starts"),
        ("Mon 09:00-13:00,12:00-18:00", "overlapping hours on Mon"),
        ("Mon-Fri 09:00-12:00; Wed 11:00-13:00", "overlapping hours on Wed"),
        ("Mon,,Tue 09:00-18:00", "empty day"),
        ("24/6", "needs days and times"),
        (None, "expected"),
    ],
)
def test_parse_business_hours_rejects_with_a_clear_message(text, fragment):
    with pytest.raises(ValueError, match="invalid business hours") as info:
        parse_business_hours(text)
    assert fragment in str(info.value)
    assert repr(text) in str(info.value)


# ------------------------------------------------------------------------------------------- calendar set-up


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"timezone": "Europe/Berln"}, "unknown time zone 'Europe/Berln'"),
        ({"timezone": "../etc/passwd"}, "unknown time zone"),
        ({"timezone": "Europe/Berlin", "holidays_country": "XX"}, "unknown holidays country 'XX'"),
        ({"timezone": "Europe/Berlin", "holidays_country": "DE", "holidays_subdivision": "ZZ"},
         "unknown holidays subdivision 'ZZ' for DE"),
        ({"timezone": "Europe/Berlin", "holidays_subdivision": "BY"}, "needs a holidays country"),
        ({"timezone": "Europe/Berlin", "holidays_extra": ["24.12.2026"]}, "invalid holiday date '24.12.2026'"),
        ({"timezone": "Europe/Berlin", "business_hours": "weekdays"}, "invalid business hours"),
    ],
)
def test_from_settings_rejects_with_a_clear_message(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        BusinessCalendar.from_settings(**kwargs)


def test_from_settings_normalises_country_and_subdivision():
    calendar = BusinessCalendar.from_settings("Europe/Berlin", holidays_country="de", holidays_subdivision="by")
    assert (calendar.country, calendar.subdivision) == ("DE", "BY")


@pytest.mark.parametrize(
    "calendar, day, expected",
    [
        (US, date(2026, 11, 26), True),  # Thanksgiving
        (US, date(2026, 12, 25), True),  # Christmas
        (US, date(2026, 7, 3), True),  # Independence Day (observed): the 4th is a Saturday
        (US, date(2021, 12, 31), True),  # New Year 2022 observed on the Friday before, filed under 2021
        (US, date(2026, 11, 27), False),
        (DE, date(2026, 10, 3), True),  # German Unity Day
        (DE, date(2026, 1, 6), False),  # Epiphany is only a holiday in some Länder
        (BusinessCalendar.from_settings("Europe/Berlin", holidays_country="DE", holidays_subdivision="BY"),
         date(2026, 1, 6), True),
        (RU, date(2026, 1, 7), True),  # Orthodox Christmas
        (RU, date(2026, 1, 9), True),  # a day off moved from a weekend
        (RU, date(2026, 1, 12), False),
        (PLAIN_BERLIN, date(2026, 12, 25), False),  # no country, no holidays
        (BusinessCalendar.from_settings("Europe/Berlin", holidays_extra=["2026-12-24", date(2026, 12, 31)]),
         date(2026, 12, 31), True),
    ],
)
def test_is_holiday(calendar, day, expected):
    assert calendar.is_holiday(day) is expected


@pytest.mark.parametrize(
    "moment, expected",
    [
        (at(BERLIN, 2026, 3, 10, 9, 0), True),
        (at(BERLIN, 2026, 3, 10, 17, 59, 59), True),
        (at(BERLIN, 2026, 3, 10, 18, 0), False),
        (at(BERLIN, 2026, 3, 10, 8, 59), False),
        (at(BERLIN, 2026, 3, 14, 12, 0), False),  # Saturday
        (at(UTC, 2026, 3, 10, 8, 30), True),  # 09:30 in Berlin
        (at(BERLIN, 2026, 10, 3, 12, 0), False),  # a Saturday anyway
        (at(BERLIN, 2026, 5, 25, 12, 0), False),  # Whit Monday
    ],
)
def test_is_open(moment, expected):
    assert DE.is_open(moment) is expected


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        DE.add(datetime(2026, 3, 10, 9), H)


# ---------------------------------------------------------------------------------------------------- add()


@pytest.mark.parametrize(
    "calendar, start, duration, expected",
    [
        # inside hours, then across the closing
        (DE, at(BERLIN, 2026, 3, 10, 10), 4 * H, at(BERLIN, 2026, 3, 10, 14)),
        (DE, at(BERLIN, 2026, 3, 10, 16), 4 * H, at(BERLIN, 2026, 3, 11, 11)),
        # time running out exactly at closing gives the closing, not the next opening
        (DE, at(BERLIN, 2026, 3, 10, 9), 9 * H, at(BERLIN, 2026, 3, 10, 18)),
        # before opening, after closing
        (DE, at(BERLIN, 2026, 3, 10, 7), H, at(BERLIN, 2026, 3, 10, 10)),
        (DE, at(BERLIN, 2026, 3, 10, 19), H, at(BERLIN, 2026, 3, 11, 10)),
        # Friday evening -> Monday
        (DE, at(BERLIN, 2026, 3, 13, 17), 2 * H, at(BERLIN, 2026, 3, 16, 10)),
        (DE, at(BERLIN, 2026, 3, 14, 11), 2 * H, at(BERLIN, 2026, 3, 16, 11)),
        # Friday evening before a Monday holiday (Whit Monday; Memorial Day in the US) -> Tuesday
        (DE, at(BERLIN, 2026, 5, 22, 17), 2 * H, at(BERLIN, 2026, 5, 26, 10)),
        (US, at(NEW_YORK, 2026, 5, 22, 17), 2 * H, at(NEW_YORK, 2026, 5, 26, 10)),
        # Thanksgiving, Christmas
        (US, at(NEW_YORK, 2026, 11, 25, 17), 2 * H, at(NEW_YORK, 2026, 11, 27, 10)),
        (US, at(NEW_YORK, 2026, 12, 24, 17), 2 * H, at(NEW_YORK, 2026, 12, 28, 10)),
        # Russian New Year holidays: closed 31 Dec 2025 to 11 Jan 2026
        (RU, at(MOSCOW, 2025, 12, 30, 17), 2 * H, at(MOSCOW, 2026, 1, 12, 10)),
        # ...and a Saturday the government made a working day
        (RU, at(MOSCOW, 2024, 4, 26, 17), 2 * H, at(MOSCOW, 2024, 4, 27, 10)),
        # DST: Berlin falls back on Sunday 25 October 2026, New York springs forward on Sunday 8 March 2026
        (DE, at(BERLIN, 2026, 10, 23, 17), 2 * H, at(BERLIN, 2026, 10, 26, 10)),
        (US, at(NEW_YORK, 2026, 3, 6, 17), 2 * H, at(NEW_YORK, 2026, 3, 9, 10)),
        # 24/7 counts the real hours: the autumn Sunday has 25, the spring Sunday 23
        (ALWAYS_BERLIN, at(BERLIN, 2026, 10, 24, 12), 24 * H, at(BERLIN, 2026, 10, 25, 11)),
        (ALWAYS_BERLIN, at(BERLIN, 2026, 3, 28, 12), 24 * H, at(BERLIN, 2026, 3, 29, 13)),
        (ALWAYS_BERLIN, at(BERLIN, 2026, 3, 28, 12), timedelta(0), at(BERLIN, 2026, 3, 28, 12)),
        # the default 48 h target is 48 / 9 = 5.3 working days
        (PLAIN_BERLIN, at(BERLIN, 2026, 3, 9, 9), 48 * H, at(BERLIN, 2026, 3, 16, 12)),
        # zero: the next open moment, or the start itself when open
        (DE, at(BERLIN, 2026, 3, 13, 19), timedelta(0), at(BERLIN, 2026, 3, 16, 9)),
        (DE, at(BERLIN, 2026, 3, 13, 12), timedelta(0), at(BERLIN, 2026, 3, 13, 12)),
        # the start may be in any time zone
        (DE, at(NEW_YORK, 2026, 3, 13, 12), 2 * H, at(BERLIN, 2026, 3, 16, 10)),  # 17:00 in Berlin
    ],
)
def test_add(calendar, start, duration, expected):
    result = calendar.add(start, duration)
    assert result == expected
    assert result.tzinfo is UTC
    assert calendar.elapsed(start, result) == duration


def test_add_with_lunch_break_and_saturday():
    calendar = BusinessCalendar.from_settings("Europe/Berlin", "Mon-Fri 09:00-12:00,13:00-18:00; Sat 10:00-14:00")
    assert calendar.add(at(BERLIN, 2026, 3, 10, 11), 2 * H) == at(BERLIN, 2026, 3, 10, 14)
    assert calendar.add(at(BERLIN, 2026, 3, 10, 12, 30), H) == at(BERLIN, 2026, 3, 10, 14)
    assert calendar.add(at(BERLIN, 2026, 3, 13, 17), 2 * H) == at(BERLIN, 2026, 3, 14, 11)
    assert calendar.add(at(BERLIN, 2026, 3, 14, 13), 2 * H) == at(BERLIN, 2026, 3, 16, 10)


@pytest.mark.parametrize(
    "tz, hours, day, expected_open, expected_first",
    [
        # New York skips 02:00-03:00 on 8 March 2026: 01:00-04:00 lasts two real hours
        (NEW_YORK, "Sun 01:00-04:00", date(2026, 3, 8), 2 * H, at(UTC, 2026, 3, 8, 6)),
        # an opening inside the skipped hour starts at the jump (03:00 EDT), not half an hour later
        (NEW_YORK, "Sun 02:30-05:00", date(2026, 3, 8), 2 * H, at(UTC, 2026, 3, 8, 7)),
        # Berlin repeats 02:00-03:00 on 25 October 2026: 01:00-04:00 lasts four real hours
        (BERLIN, "Sun 01:00-04:00", date(2026, 10, 25), 4 * H, at(UTC, 2026, 10, 24, 23)),
        (BERLIN, "24/7", date(2026, 10, 25), 25 * H, None),
        (BERLIN, "24/7", date(2026, 3, 29), 23 * H, None),
    ],
)
def test_hours_on_dst_days_count_real_time(tz, hours, day, expected_open, expected_first):
    calendar = BusinessCalendar(tz, parse_business_hours(hours))
    midnight = datetime.combine(day, time(0), tz)
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tz)
    assert calendar.elapsed(midnight, next_midnight) == expected_open
    if expected_first is not None:
        assert calendar.next_open(midnight - timedelta(hours=12)) == expected_first


def test_add_is_fast_for_long_durations():
    start = at(BERLIN, 2026, 1, 1, 12)
    result = DE.add(start, timedelta(days=2000))  # about 22 years of working days
    assert result.year > 2046
    assert DE.elapsed(start, result) == timedelta(days=2000)


def test_a_calendar_that_never_opens_raises_instead_of_looping():
    closed = BusinessCalendar(BERLIN, {day: () for day in range(7)})
    with pytest.raises(ValueError, match="no open time"):
        closed.add(at(BERLIN, 2026, 3, 10, 9), H)
    with pytest.raises(ValueError, match="no open time"):
        closed.next_open(at(BERLIN, 2026, 3, 10, 9))
    assert closed.elapsed(at(BERLIN, 2026, 3, 1), at(BERLIN, 2026, 4, 1)) == timedelta(0)


def test_a_calendar_closed_for_years_raises_instead_of_looping():
    mondays = {date(2026, 3, 9) + timedelta(weeks=n) for n in range(600)}
    calendar = BusinessCalendar(BERLIN, {0: WEEKDAYS_9_18}, frozenset(mondays))
    with pytest.raises(ValueError, match="closed for more than"):
        calendar.add(at(BERLIN, 2026, 3, 9, 9), H)


def test_negative_durations_are_refused():
    with pytest.raises(ValueError, match="negative"):
        DE.add(at(BERLIN, 2026, 3, 10, 9), -H)


# ------------------------------------------------------------------------------------------------ elapsed()


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (at(BERLIN, 2026, 3, 10, 10), at(BERLIN, 2026, 3, 10, 12), 2 * H),
        (at(BERLIN, 2026, 3, 10, 7), at(BERLIN, 2026, 3, 10, 20), 9 * H),
        (at(BERLIN, 2026, 3, 13, 17), at(BERLIN, 2026, 3, 16, 10), 2 * H),
        (at(BERLIN, 2026, 3, 14, 10), at(BERLIN, 2026, 3, 15, 10), timedelta(0)),
        (at(BERLIN, 2026, 3, 10, 12), at(BERLIN, 2026, 3, 10, 10), timedelta(0)),
        (at(BERLIN, 2026, 3, 9, 0), at(BERLIN, 2026, 3, 16, 0), 45 * H),
        (at(BERLIN, 2026, 5, 18, 0), at(BERLIN, 2026, 5, 25, 0), 45 * H),
        (at(BERLIN, 2026, 5, 25, 0), at(BERLIN, 2026, 6, 1, 0), 36 * H),  # Whit Monday
    ],
)
def test_elapsed(start, end, expected):
    assert DE.elapsed(start, end) == expected


CALENDARS = [
    DE,
    US,
    RU,
    ALWAYS_BERLIN,
    BusinessCalendar.from_settings("America/New_York", "Mon-Fri 09:00-12:00,13:00-18:00; Sat 10:00-14:00"),
    BusinessCalendar.from_settings("Asia/Jerusalem", "Sun-Thu 09:00-17:00"),
    BusinessCalendar.from_settings("America/New_York", "Sun 01:00-04:00; Wed 02:30-05:00"),
]

starts = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.sampled_from([BERLIN, NEW_YORK, UTC])
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=400)).map(
    lambda d: d - timedelta(microseconds=d.microseconds)
)


@settings(max_examples=80, deadline=None)
@given(calendar=st.sampled_from(CALENDARS), start=starts, duration=durations)
def test_elapsed_undoes_add(calendar, start, duration):
    end = calendar.add(start, duration)
    assert end >= start
    assert calendar.elapsed(start, end) == duration
    if duration:  # and add() gives the earliest such moment
        assert calendar.elapsed(start, end - timedelta(seconds=1)) < duration
        assert calendar.is_open(end - timedelta(seconds=1))


# -------------------------------------------------------------------------------------------- describe_due()

NOW = at(BERLIN, 2026, 1, 7, 12)  # Wednesday noon, winter time


@pytest.mark.parametrize(
    "due, english, russian",
    [
        (NOW + timedelta(minutes=59), "within the hour", "в течение часа"),
        (NOW - H, "within the hour", "в течение часа"),
        (at(BERLIN, 2026, 1, 7, 15), "today by 15:00 CET", "сегодня до 15:00 CET"),
        (at(BERLIN, 2026, 1, 8, 10), "tomorrow by 10:00 CET", "завтра до 10:00 CET"),
        (at(BERLIN, 2026, 1, 12, 10), "on Monday by 10:00 CET", "в понедельник до 10:00 CET"),
        (at(BERLIN, 2026, 1, 13, 10), "on Tuesday by 10:00 CET", "во вторник до 10:00 CET"),
        (at(BERLIN, 2026, 1, 14, 10), "on 14 January by 10:00 CET", "14 января до 10:00 CET"),
        (at(BERLIN, 2026, 7, 2, 10), "on 2 July by 10:00 CEST", "2 июля до 10:00 CEST"),
        (at(BERLIN, 2027, 1, 2, 10), "on 2 January 2027 by 10:00 CET", "2 января 2027 г. до 10:00 CET"),
    ],
)
def test_describe_due(due, english, russian):
    assert describe_due(due, NOW, BERLIN) == english
    assert describe_due(due, NOW, BERLIN, "ru") == russian


@pytest.mark.parametrize(
    "day, words",
    [
        (9, "в пятницу"),
        (10, "в субботу"),
        (11, "в воскресенье"),
        (12, "в понедельник"),
        (13, "во вторник"),
        (14, "в среду"),
        (15, "в четверг"),
    ],
)
def test_describe_due_russian_weekdays(day, words):
    now = at(MOSCOW, 2026, 1, day - 2, 9)  # two days before
    assert describe_due(at(MOSCOW, 2026, 1, day, 10), now, MOSCOW, "ru") == f"{words} до 10:00 MSK"


@pytest.mark.parametrize("month, genitive", list(enumerate(
    ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября",
     "декабря"], start=1)))
def test_describe_due_russian_months(month, genitive):
    due = at(MOSCOW, 2026, month, 2, 10)
    assert describe_due(due, due - timedelta(days=30), MOSCOW, "ru") == f"2 {genitive} до 10:00 MSK"


def test_describe_due_uses_the_helpdesk_zone_and_its_calendar_days():
    late = at(BERLIN, 2026, 1, 7, 23, 30)
    assert describe_due(at(BERLIN, 2026, 1, 8, 1, 30), late, BERLIN) == "tomorrow by 01:30 CET"
    # a due time given in UTC is told in the helpdesk zone
    assert describe_due(at(UTC, 2026, 1, 7, 14), NOW, BERLIN) == "today by 15:00 CET"
    assert describe_due(at(UTC, 2026, 1, 7, 14), NOW, NEW_YORK) == "today by 09:00 EST"


@pytest.mark.parametrize(
    "language, expected",
    [("ru_RU", "завтра до 10:00 CET"), ("RU-ru", "завтра до 10:00 CET"), ("de", "tomorrow by 10:00 CET"),
     ("", "tomorrow by 10:00 CET")],
)
def test_describe_due_language_fallback(language, expected):
    assert describe_due(at(BERLIN, 2026, 1, 8, 10), NOW, BERLIN, language) == expected


def test_describe_due_zone_without_letters():
    dubai = ZoneInfo("Asia/Dubai")
    assert describe_due(at(dubai, 2026, 1, 8, 10), at(dubai, 2026, 1, 7, 9), dubai) == "tomorrow by 10:00 UTC+04"
