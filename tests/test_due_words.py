"""What an acknowledgement promises at night, on weekends and on holidays (sla.describe_due with the helpdesk's
calendar): never "within the hour" when nobody works, the first hour of work instead. Every case has its own `now`."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailhelpdesk.core.sla import BusinessCalendar, answer_by, describe_due

BERLIN = ZoneInfo("Europe/Berlin")
MOSCOW = ZoneInfo("Europe/Moscow")
DE = BusinessCalendar.from_settings("Europe/Berlin", "Mon-Fri 09:00-18:00", holidays_country="DE")
RU = BusinessCalendar.from_settings("Europe/Moscow", "Mon-Fri 09:00-18:00", holidays_country="RU")
LUNCH = BusinessCalendar.from_settings("Europe/Berlin", "Mon-Fri 09:00-12:00,13:00-18:00")
ALWAYS = BusinessCalendar.from_settings("Europe/Berlin", "24/7")


def berlin(*args):
    return datetime(*args, tzinfo=BERLIN)


def moscow(*args):
    return datetime(*args, tzinfo=MOSCOW)


# 2026-01-07 is a Wednesday; 2026-01-09 a Friday; 2026-12-25 and 26 are German holidays (Friday, Saturday).
@pytest.mark.parametrize(
    "now, due, english, russian",
    [
        # closed now, already past due or due within the hour: the first hour after the next opening
        (berlin(2026, 1, 8, 21, 46), berlin(2026, 1, 8, 20), "tomorrow by 10:00 CET", "завтра до 10:00 CET"),
        (berlin(2026, 1, 9, 21, 46), berlin(2026, 1, 9, 22), "on Monday by 10:00 CET", "в понедельник до 10:00 CET"),
        (berlin(2026, 1, 10, 11), berlin(2026, 1, 9, 15), "on Monday by 10:00 CET", "в понедельник до 10:00 CET"),
        (berlin(2026, 12, 24, 19), berlin(2026, 12, 24, 18), "on Monday by 10:00 CET", "в понедельник до 10:00 CET"),
        (berlin(2026, 1, 7, 3), berlin(2026, 1, 6, 17), "today by 10:00 CET", "сегодня до 10:00 CET"),
        (berlin(2026, 1, 7, 8, 30), berlin(2026, 1, 7, 8), "today by 10:00 CET", "сегодня до 10:00 CET"),
        # the weekend the clocks go forward: Monday's opening is in summer time
        (berlin(2026, 3, 27, 21, 46), berlin(2026, 3, 27, 17), "on Monday by 10:00 CEST", "в понедельник до 10:00 CEST"),
        # closed now, due within the hour but in working hours: that time, not "within the hour"
        (berlin(2026, 1, 7, 8, 30), berlin(2026, 1, 7, 9, 15), "today by 09:15 CET", "сегодня до 09:15 CET"),
        # open now and for the next hour: "within the hour", also when already past due
        (berlin(2026, 1, 7, 12), berlin(2026, 1, 7, 12, 30), "within the hour", "в течение часа"),
        (berlin(2026, 1, 7, 12), berlin(2026, 1, 7, 11), "within the hour", "в течение часа"),
        (berlin(2026, 1, 7, 17), berlin(2026, 1, 7, 16), "within the hour", "в течение часа"),
        # 17:30, closing at 18:00: a due time before the closing is kept; a past one gets the next hour of work
        (berlin(2026, 1, 7, 17, 30), berlin(2026, 1, 7, 17, 55), "within the hour", "в течение часа"),
        (berlin(2026, 1, 7, 17, 30), berlin(2026, 1, 7, 18), "within the hour", "в течение часа"),
        (berlin(2026, 1, 7, 17, 30), berlin(2026, 1, 7, 17), "tomorrow by 09:30 CET", "завтра до 09:30 CET"),
        # a due time later than the hour and in working hours is told as it is
        (berlin(2026, 1, 7, 12), berlin(2026, 1, 7, 15), "today by 15:00 CET", "сегодня до 15:00 CET"),
        (berlin(2026, 1, 7, 21, 46), berlin(2026, 1, 8, 9, 30), "tomorrow by 09:30 CET", "завтра до 09:30 CET"),
        # a due time outside working hours (a priority or hours change): the first hour after it
        (berlin(2026, 1, 7, 12), berlin(2026, 1, 7, 19), "tomorrow by 10:00 CET", "завтра до 10:00 CET"),
        (berlin(2026, 1, 7, 17, 30), berlin(2026, 1, 7, 18, 15), "tomorrow by 10:00 CET", "завтра до 10:00 CET"),
        (berlin(2026, 1, 7, 12), berlin(2026, 1, 10, 12), "on Monday by 10:00 CET", "в понедельник до 10:00 CET"),
    ],
)
def test_words_follow_the_working_hours(now, due, english, russian):
    assert describe_due(due, now, BERLIN, "en", calendar=DE) == english
    assert describe_due(due, now, BERLIN, "ru", calendar=DE) == russian


@pytest.mark.parametrize(
    "now, due, words",
    [
        # Friday 8 May 2026: Victory Day falls on Saturday and is observed on Monday 11 May
        (moscow(2026, 5, 8, 21), moscow(2026, 5, 8, 17), "во вторник до 10:00 MSK"),
        (moscow(2026, 6, 11, 21, 46), moscow(2026, 6, 11, 22), "в понедельник до 10:00 MSK"),  # Russia Day, Friday
        (moscow(2026, 6, 10, 21, 46), moscow(2026, 6, 10, 17), "завтра до 10:00 MSK"),
        (moscow(2026, 6, 10, 12), moscow(2026, 6, 10, 11), "в течение часа"),
    ],
)
def test_russian_holidays(now, due, words):
    assert describe_due(due, now, MOSCOW, "ru", calendar=RU) == words


@pytest.mark.parametrize(
    "calendar, now, due, expected",
    [
        (LUNCH, berlin(2026, 1, 7, 11, 30), berlin(2026, 1, 7, 11), "today by 13:30 CET"),  # 30 min before lunch
        (LUNCH, berlin(2026, 1, 7, 12, 15), berlin(2026, 1, 7, 12), "today by 14:00 CET"),  # at lunch
        (LUNCH, berlin(2026, 1, 7, 11, 30), berlin(2026, 1, 7, 12), "within the hour"),  # due at the lunch closing
        (ALWAYS, berlin(2026, 1, 8, 21, 46), berlin(2026, 1, 8, 20), "within the hour"),  # a 24/7 desk is open
    ],
)
def test_other_hours(calendar, now, due, expected):
    assert describe_due(due, now, BERLIN, calendar=calendar) == expected


@pytest.mark.parametrize(
    "now, due",
    [
        (berlin(2026, 1, 8, 21, 46), berlin(2026, 1, 8, 20)),
        (berlin(2026, 1, 10, 11), berlin(2026, 1, 10, 11, 30)),
    ],
)
def test_without_a_calendar_the_words_are_as_before(now, due):
    assert describe_due(due, now, BERLIN) == "within the hour"
    assert describe_due(due, now, BERLIN, "ru") == "в течение часа"


@pytest.mark.parametrize(
    "now, due, expected",
    [
        (berlin(2026, 1, 7, 12), berlin(2026, 1, 7, 15), berlin(2026, 1, 7, 15)),  # in hours: kept
        (berlin(2026, 1, 7, 12), berlin(2026, 1, 7, 18), berlin(2026, 1, 7, 18)),  # the closing itself: kept
        (berlin(2026, 1, 7, 12), berlin(2026, 1, 7, 11), berlin(2026, 1, 7, 13)),  # past, open: an hour from now
        (berlin(2026, 1, 9, 21, 46), berlin(2026, 1, 9, 17), berlin(2026, 1, 12, 10)),  # past, Friday night
        (berlin(2026, 1, 7, 12), berlin(2026, 1, 7, 18, 1), berlin(2026, 1, 8, 10)),  # a minute after closing
    ],
)
def test_answer_by(now, due, expected):
    assert answer_by(due, now, DE) == expected


@pytest.mark.parametrize(
    "moment, expected",
    [
        (berlin(2026, 1, 7, 9), True),  # the opening
        (berlin(2026, 1, 7, 12), True),
        (berlin(2026, 1, 7, 18), True),  # the closing: a due time there is honest
        (berlin(2026, 1, 7, 18) + timedelta(seconds=1), False),
        (berlin(2026, 1, 7, 8, 59), False),
        (berlin(2026, 1, 10, 12), False),  # Saturday
        (berlin(2026, 12, 25, 12), False),  # Christmas Day
    ],
)
def test_in_hours(moment, expected):
    assert DE.in_hours(moment) is expected
