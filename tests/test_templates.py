"""The message templates, English and Russian: every one renders with the contexts the engine and the digests build,
subjects are single lines, Russian mail is Russian, customer text is escaped in HTML and kept verbatim in text.
Then the same through the engine with `language = "ru"`, and a `[helpdesk] templates_dir` override."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, unquote, urlparse

import pytest

from mailhelpdesk.config import config_from_dict
from mailhelpdesk.core.duties.digests import yesterday
from mailhelpdesk.core.engine import Engine
from mailhelpdesk.core.mail.factory import hours_text as _hours
from mailhelpdesk.model import HistoryEntry, Priority, State, Status, Ticket
from mailhelpdesk.core.judge.mail_commands import known_commands
from mailhelpdesk.core.judge.rating import RATINGS
from mailhelpdesk.core.mail.render import PACKAGE_TEMPLATES, render
from test_workflow import FRIDAY_EVENING, at, command_mail, question, reminders, workflow_desk

NOW = datetime(2027, 1, 20, 11, 0, tzinfo=UTC)  # a Wednesday
HOSTILE = "<script>alert(1)</script>"
NAMES = ["acknowledgement", "assigned", "reminder", "resolution", "command_rejected", "digest", "lead_digest"]
WITH_KEY = {"acknowledgement", "assigned", "reminder", "resolution"}  # the English subject carries [KEY]
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
# phrases of the English templates that must not leak into Russian mail
ENGLISH = ("Hello", "Best regards", "Customer:", "Priority:", "Subject:", "helpdesk", "Thank you", "ticket",
           "due soon", "waiting for", "Yesterday", "carried out", "OVERDUE", "solved")


def make_config(language="ru", **sections):
    data = {
        "helpdesk": {"address": "support@shop.example", "name": "Shop Support", "language": language,
                     "timezone": "Europe/Moscow"},
        "mailbox": {"backend": "local"},
        "agents": [{"name": "Alice", "email": "alice@shop.example"}, {"name": "Bob", "email": "bob@shop.example"}],
        "sla": {"escalate_to": ["lead@shop.example"]},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_from_dict(data)


def ticket(number=1, customer_name="Анна Петрова", **changes) -> Ticket:
    created = NOW - timedelta(hours=3)
    values = dict(
        key=f"HD-{number}", number=number, customer=f"c{number}@customer.example", subject="Счёт 1042: неверный НДС",
        created_at=created, customer_name=customer_name, due_at=NOW + timedelta(days=1, hours=2),
        waiting_since=created, assignee="Alice", message_ids=(f"<q{number}@customer.example>",),
    )
    values.update(changes)
    return Ticket(**values)


def contexts(language="ru", customer_name="Анна Петрова", subject="Счёт 1042: неверный НДС", gmail=False) -> dict:
    """Each template's context, shaped as Engine._reminder, _resolution_notice, ... and digest._digest build it."""
    engine = Engine(make_config(language))
    t = ticket(customer_name=customer_name, subject=subject, priority=Priority.URGENT,
               thread_ids=("18c0ffee",) if gmail else ())
    base = engine.ctx.mail.context(t, NOW)
    older = [
        ticket(7, status=Status.CLOSED, created_at=NOW - timedelta(days=40), subject="Доставка"),
        ticket(4, status=Status.PENDING, created_at=NOW - timedelta(days=60), subject="Возврат"),
    ]
    link = (f"https://mail.google.com/mail/u/support@shop.example/#all/{t.thread_ids[0]}" if gmail
            else f"search your mail client for {t.key} (subject tag [{t.key}])")
    support = "support@shop.example"
    ratings = {r: f"mailto:{support}?subject={quote(f'[{t.key}] rating: {r}')}&body={quote('(you may add a comment here)')}"
               for r in RATINGS}
    mine = [
        t,
        ticket(2, status=Status.PENDING, waiting_since=None, priority=Priority.LOW),
        ticket(3, priority=Priority.HIGH, due_at=NOW + timedelta(days=9)),
    ]
    overdue_one = ticket(5, due_at=NOW - timedelta(hours=1), assignee=None, customer_name=customer_name, subject=subject)
    state = State()
    for x in (*mine, overdue_one):
        state.tickets[x.key] = x
    rated = ticket(9, status=Status.RESOLVED, rating="good", created_at=NOW - timedelta(days=1, hours=2),
                   first_response_at=NOW - timedelta(days=1, hours=1), resolved_at=NOW - timedelta(days=1),
                   history=(HistoryEntry(NOW - timedelta(days=1), "rated", "good"),))
    state.tickets[rated.key] = rated
    digest_base = dict(engine.ctx.mail.context_base(NOW), day=NOW.astimezone(engine.config.helpdesk.tz).date(), now=NOW,
                       link=engine.ctx.mail.link)
    return {
        "acknowledgement": base,
        "assigned": dict(base, agent=engine.config.agents[0], earlier=older),
        **{f"reminder:{step}": dict(base, step=step, waited=_hours(timedelta(hours=24, minutes=1)),
                                    waited_wall=_hours(timedelta(days=3, minutes=5)), link=link, target="1h")
           for step in ("warn", "breach", "lead")},
        **{f"resolution:{ask}": dict(base, ask_rating=ask, ratings=ratings, close_after="3d") for ask in (True, False)},
        "command_rejected": {"helpdesk": engine.config.helpdesk, "subject": f"Re: [HD-1] {subject}",
                             "problem": "#assign 'zoe': no such agent (agents: Alice, Bob)",
                             "commands": ["#assign zoe", "#close"], "known": known_commands(language)},
        "digest": dict(digest_base, agent=engine.config.agents[0], tickets=[overdue_one, *mine], overdue=[overdue_one]),
        "digest:calm": dict(digest_base, agent=engine.config.agents[1], tickets=mine[1:], overdue=[]),
        "lead_digest": dict(digest_base, unassigned=[overdue_one], overdue=[overdue_one],
                            figures=yesterday(state, engine.config.helpdesk.tz, NOW)),
        "lead_digest:quiet": dict(digest_base, unassigned=[], overdue=[],
                                  figures=yesterday(State(), engine.config.helpdesk.tz, NOW)),
    }


def assert_russian(text: str) -> None:
    assert CYRILLIC.search(text), text
    assert "{{" not in text and "}}" not in text and "{%" not in text and "%}" not in text, text
    leaked = [w for w in ENGLISH if w in text]
    assert not leaked, f"English left in Russian mail: {leaked}\n{text}"


def test_every_english_template_has_a_russian_version():
    english = {p.name for p in (PACKAGE_TEMPLATES / "en").iterdir()}
    russian = {p.name for p in (PACKAGE_TEMPLATES / "ru").iterdir()}
    assert english == russian
    assert {f"{n}.txt.j2" for n in NAMES} <= english


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("case", list(contexts()))
def test_every_template_renders_with_the_engines_context(language, case):
    name = case.split(":")[0]
    context = contexts(language)[case]
    rendered = render(name, context, templates_dir="", language=language)
    assert rendered.subject and "\n" not in rendered.subject and "\r" not in rendered.subject
    assert not rendered.text.lower().startswith("subject:") and rendered.text.strip()
    if name in WITH_KEY:
        assert "HD-1" in rendered.subject
    for part in (rendered.subject, rendered.text, rendered.html or ""):
        assert "{{" not in part and "{%" not in part
    if language == "ru":
        assert_russian(rendered.subject)
        assert_russian(rendered.text)
        if rendered.html:
            assert_russian(rendered.html)
    else:
        assert not CYRILLIC.search(rendered.subject.replace(context.get("ticket", ticket()).subject, ""))
    if name == "resolution":
        assert rendered.html is not None and rendered.html.lstrip().startswith("<!doctype html>")
        assert (context["ratings"]["good"] in rendered.text) is context["ask_rating"]
        assert ("mailto:" in rendered.html) is context["ask_rating"]
    else:
        assert rendered.html is None


@pytest.mark.parametrize("language", ["en", "ru"])
def test_customer_text_is_escaped_in_html_and_verbatim_in_text(language):
    context = contexts(language, customer_name=HOSTILE, subject=f"Hi {HOSTILE} & <b>bye</b>")["resolution:True"]
    rendered = render("resolution", context, language=language)
    assert rendered.html is not None
    assert "<script>" not in rendered.html and "<b>bye</b>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html and "&amp; &lt;b&gt;bye" in rendered.html
    assert HOSTILE in rendered.text and f"Hi {HOSTILE} & <b>bye</b>" in rendered.text
    assert f"Hi {HOSTILE} & <b>bye</b>" in rendered.subject
    # the rating links stay intact inside href="..." (only & is escaped, as HTML wants)
    assert context["ratings"]["good"].replace("&", "&amp;") in rendered.html
    for case in ("acknowledgement", "assigned", "reminder:breach", "digest", "lead_digest"):
        text = render(case.split(":")[0], contexts(language, customer_name=HOSTILE, subject=HOSTILE)[case],
                      language=language)
        assert HOSTILE in text.text


def test_a_subject_with_a_line_break_stays_one_line():
    for language in ("en", "ru"):
        for case, context in contexts(language, subject="Hi\r\nBcc: victim@evil.example").items():
            rendered = render(case.split(":")[0], context, language=language)
            assert "\n" not in rendered.subject and "\r" not in rendered.subject


def test_russian_texts_read_naturally():
    c = contexts("ru")
    ack = render("acknowledgement", c["acknowledgement"], language="ru")
    assert ack.text.startswith("Здравствуйте, Анна Петрова!")
    assert "срочное" in ack.text and "завтра до 16:00 MSK" in ack.text
    assigned = render("assigned", c["assigned"], language="ru")
    assert "Приоритет:   срочный" in assigned.text and "Срок ответа: завтра до 16:00 MSK" in assigned.text
    assert "HD-7  закрыто" in assigned.text and "HD-4  ждёт клиента" in assigned.text
    assert (NOW - timedelta(days=40)).strftime("%d.%m.%Y") in assigned.text
    warn = render("reminder", c["reminder:warn"], language="ru")
    assert warn.subject.startswith("[HD-1] скоро истекает срок ответа")
    assert "ответить нужно завтра до 16:00 MSK" in warn.text
    assert "Ожидает:    24 ч 01 мин рабочего времени (всего 72 ч 05 мин)" in warn.text
    assert "поищите HD-1 в почтовом клиенте" in warn.text
    breach = render("reminder", c["reminder:breach"], language="ru")
    assert breach.subject.startswith("[HD-1] ПРОСРОЧЕНО") and "(1 ч рабочего времени) истёк" in breach.text
    lead = render("reminder", c["reminder:lead"], language="ru")
    assert "эскалация" in lead.subject and "Исполнитель: Alice" in lead.text
    gmail = render("reminder", contexts("ru", gmail=True)["reminder:lead"], language="ru")
    assert "Где найти:  https://mail.google.com/mail/u/support@shop.example/#all/18c0ffee\n" in gmail.text
    unassigned = dict(c["reminder:lead"], ticket=ticket(assignee=None))
    assert "Исполнитель: не назначен" in render("reminder", unassigned, language="ru").text
    resolution = render("resolution", c["resolution:True"], language="ru")
    assert "вопрос решён" in resolution.subject and "Хорошо:     mailto:" in resolution.text
    assert "Хорошо" not in render("resolution", c["resolution:False"], language="ru").text
    rejected = render("command_rejected", c["command_rejected"], language="ru")
    assert rejected.subject == "Команды не выполнены: Re: [HD-1] Счёт 1042: неверный НДС"
    assert "  #assign zoe\n  #close\n" in rejected.text and "Причина: #assign 'zoe': no such agent" in rejected.text
    for command in ("#close", "#resolve", "#reopen", "#pending", "#assign ", "#unassign", "#priority urgent|high|normal|low",
                    "#note "):
        assert command in rejected.text


def test_russian_digests_use_russian_words_and_plural_forms():
    c = contexts("ru")
    digest = render("digest", c["digest"], language="ru")
    assert digest.subject == "У вас 4 открытых обращения (из них 1 просрочено) — 20.01.2027"
    assert "1 ваше обращение просрочено — оно стоит в начале списка." in digest.text
    lines = [line for line in digest.text.splitlines() if line.startswith("  HD-")]
    assert [line.split()[0] for line in lines] == ["HD-5", "HD-1", "HD-2", "HD-3"]
    assert "ждём ответа клиента" in lines[2] and "ждёт клиента" in lines[2] and "низкий" in lines[2]
    assert "срок чт 21 янв 16:00" in lines[1] and "срочный" in lines[1]
    assert "срок пт 29 янв" in lines[3] and "высокий" in lines[3]
    calm = render("digest", c["digest:calm"], language="ru")
    assert calm.subject == "У вас 2 открытых обращения — 20.01.2027" and "просроч" not in calm.text
    lead = render("lead_digest", c["lead_digest"], language="ru")
    assert lead.subject == "Сводка поддержки на 20.01.2027: 1 просроченное обращение, 1 без исполнителя"
    assert "Вчера (19.01.2027):" in lead.text and "новых обращений:     1" in lead.text
    assert "(медиана 1 ч 00 мин)" in lead.text and "оценки:              хорошо" in lead.text
    assert "Просроченные (1):\n  HD-5     обычный  без исполнителя  c5@customer.example" in lead.text
    quiet = render("lead_digest", c["lead_digest:quiet"], language="ru")
    assert quiet.subject.endswith(": 0 просроченных обращений, 0 без исполнителя")
    assert quiet.text.count("  нет\n") == 2 and "оценки:              —" in quiet.text


@pytest.mark.parametrize(
    "count, tickets, overdue",
    [
        (1, "1 открытое обращение", "(из них 1 просрочено)"),
        (2, "2 открытых обращения", "(из них 2 просрочены)"),
        (4, "4 открытых обращения", "(из них 4 просрочены)"),
        (5, "5 открытых обращений", "(из них 5 просрочено)"),
        (11, "11 открытых обращений", "(из них 11 просрочено)"),
        (12, "12 открытых обращений", "(из них 12 просрочено)"),
        (21, "21 открытое обращение", "(из них 21 просрочено)"),
        (22, "22 открытых обращения", "(из них 22 просрочены)"),
        (111, "111 открытых обращений", "(из них 111 просрочено)"),
    ],
)
def test_russian_plural_forms(count, tickets, overdue):
    late = [ticket(n, due_at=NOW - timedelta(hours=1)) for n in range(1, count + 1)]
    context = dict(contexts("ru")["digest"], tickets=late, overdue=late)
    rendered = render("digest", context, language="ru")
    assert rendered.subject.startswith(f"У вас {tickets} {overdue}")
    first = rendered.text.splitlines()[2]
    assert first.startswith(f"{count} ")
    assert ("оно стоит" in first) is (count in (1, 21))
    context = dict(contexts("ru")["lead_digest"], overdue=late)
    noun = tickets.replace("открыт", "просроченн")
    assert f": {noun}, 1 без исполнителя" in render("lead_digest", context, language="ru").subject


# --- through the engine -----------------------------------------------------------------------------------------


def russian_desk(**extra):
    return workflow_desk(helpdesk={"timezone": "America/New_York", "language": "ru"}, **extra)


def test_the_engine_acknowledges_and_assigns_in_russian():
    desk = russian_desk()
    desk.feed(question(FRIDAY_EVENING), now=FRIDAY_EVENING + timedelta(minutes=1))
    desk.tick(FRIDAY_EVENING + timedelta(minutes=1))
    (ack,) = desk.sends("acknowledgement")
    assert ack.subject == "[HD-1] Export fails"
    assert ack.body.startswith("Здравствуйте, Anna!") and "в четверг до 15:00 EST" in ack.body
    assert_russian(ack.body)
    (assigned,) = desk.sends("assignment")
    assert assigned.to == "alice@shop.example" and assigned.subject == "[HD-1] назначено вам: Export fails"
    assert "Срок ответа: в четверг до 15:00 EST" in assigned.body
    assert_russian(assigned.body)


def test_the_engine_sends_russian_reminders():
    desk = russian_desk()
    desk.feed(question(FRIDAY_EVENING), now=FRIDAY_EVENING)
    desk.tick(FRIDAY_EVENING)  # the pass that made the ticket ends: the assignment notice goes on its own
    desk.tick(at(20, 18, 0))
    desk.tick(at(21, 15, 1))
    desk.tick(at(22, 10, 0))
    warn, breach, lead = reminders(desk)
    assert warn.subject == "[HD-1] скоро истекает срок ответа: Export fails"
    assert "ответить нужно завтра до 15:00 EST" in warn.body
    assert breach.subject == "[HD-1] ПРОСРОЧЕНО: Export fails"
    assert "(24 ч рабочего времени)" in breach.body and "Ожидает:    24 ч 01 мин рабочего времени" in breach.body
    assert lead.to == "lead@shop.example" and "эскалация" in lead.subject and "Исполнитель: Alice" in lead.body
    for mail in (warn, breach, lead):
        assert_russian(mail.subject)
        assert_russian(mail.body)


def test_the_engines_russian_resolution_notice_rating_link_still_records_the_rating():
    desk = russian_desk()
    desk.feed(question(at(19, 9)), ref="INBOX:1:1", now=at(19, 9))
    applied = frozenset(desk.ticket().labels_applied)
    resolved = (applied - {"Helpdesk/Status/Open"}) | {"Helpdesk/Status/Resolved"}
    desk.state.merge(desk.engine.on_labels(desk.state, [("INBOX:1:1", resolved)], at(19, 11)))
    desk.tick(at(19, 11))
    (notice,) = desk.sends("resolution")
    assert notice.subject == "[HD-1] вопрос решён: Export fails"
    assert_russian(notice.body)
    assert notice.html and "Хорошо</a>" in notice.html and "mailto:" in notice.html
    good = next(line.split()[-1] for line in notice.body.splitlines() if line.strip().startswith("Хорошо:"))
    link = urlparse(good)
    assert link.scheme == "mailto" and link.path == "support@shop.example"
    from mailhelpdesk.model import SentRecord

    desk.state.sent[notice.message_id] = SentRecord(notice.key, notice.message_id, notice.to, notice.kind, "HD-1",
                                                    at(19, 11), True)
    desk.state.index[notice.message_id] = "HD-1"
    rating = (
        f"From: Anna <anna@customer.example>\r\nTo: support@shop.example\r\nSubject: {parse_qs(link.query)['subject'][0]}\r\n"
        f"Date: Tue, 19 Jan 2027 12:00:00 -0500\r\nMessage-ID: <ru-rating@customer.example>\r\n"
        f"In-Reply-To: {notice.message_id}\r\n\r\n{unquote(parse_qs(link.query)['body'][0])}\r\n"
    ).encode()
    desk.feed(rating, now=at(19, 12, 1))
    assert (desk.ticket().rating, desk.ticket().status) == ("good", Status.RESOLVED)


def test_the_engine_sends_russian_digests():
    desk = russian_desk()
    desk.feed(question(at(18, 9)), now=at(18, 9))
    desk.feed(question(at(19, 9), "<ru2@c.example>", "ben@c.example", "URGENT: shop is down"), now=at(19, 9))
    desk.feed(question(at(19, 10), "<ru3@c.example>", "cy@c.example", "Question"), now=at(19, 10))
    desk.tick(at(19, 10))
    desk.tick(at(20, 9, 5))
    digests = {a.to: a for a in desk.sends() if "digest" in a.kind}
    assert set(digests) == {"alice@shop.example", "bob@shop.example", "lead@shop.example"}
    alice, bob, lead = digests["alice@shop.example"], digests["bob@shop.example"], digests["lead@shop.example"]
    assert alice.subject == "У вас 2 открытых обращения — 20.01.2027"
    assert alice.body.index("HD-1") < alice.body.index("HD-3")
    assert bob.subject == "У вас 1 открытое обращение (из них 1 просрочено) — 20.01.2027"
    assert "1 ваше обращение просрочено" in bob.body and "срочный" in bob.body
    assert lead.subject == "Сводка поддержки на 20.01.2027: 1 просроченное обращение, 0 без исполнителя"
    assert "Просроченные (1):" in lead.body and "Без исполнителя (0):\n  нет\n" in lead.body and "новых обращений:     2" in lead.body
    for mail in (alice, bob, lead):
        assert_russian(mail.subject)
        assert_russian(mail.body)


def test_the_engine_rejects_commands_in_russian():
    desk = russian_desk()
    desk.feed(question(at(19, 9)), now=at(19, 9))
    desk.feed(command_mail("bob@shop.example", "#assign zoe"), now=at(19, 10))
    (reply,) = desk.sends("command rejected")
    assert reply.subject == "Команды не выполнены: Re: [HD-1] Export fails"
    assert "  #assign zoe\n" in reply.body and "no such agent" in reply.body and "Alice, Bob" in reply.body


# --- [helpdesk] templates_dir --------------------------------------------------------------------------------------


def test_templates_dir_overrides_one_template_and_the_rest_come_from_the_package(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "acknowledgement.txt.j2").write_text(
        "Subject: Got it [{{ ticket.key }}]\nCustom ack for {{ ticket.customer }} from {{ helpdesk.name }}.\n",
        encoding="utf-8")
    desk = workflow_desk(helpdesk={"timezone": "America/New_York", "templates_dir": str(tmp_path)})
    desk.feed(question(at(19, 9)), ref="INBOX:1:1", now=at(19, 9))
    desk.tick(at(19, 9))
    (ack,) = desk.sends("acknowledgement")
    assert ack.subject == "Got it [HD-1]" and ack.body == "Custom ack for anna@customer.example from Shop Support.\n"
    (assigned,) = desk.sends("assignment")
    assert assigned.subject == "[HD-1] assigned to you: Export fails"  # from the package
    applied = frozenset(desk.ticket().labels_applied)
    desk.state.merge(desk.engine.on_labels(desk.state, [("INBOX:1:1", applied | {"Helpdesk/Status/Resolved"})],
                                           at(19, 11)))
    desk.tick(at(19, 11))
    (notice,) = desk.sends("resolution")
    assert "solved" in notice.subject and notice.html and "<!doctype html>" in notice.html


def test_templates_dir_override_for_russian(tmp_path):
    (tmp_path / "ru").mkdir()
    (tmp_path / "ru" / "acknowledgement.txt.j2").write_text(
        "Subject: Приняли [{{ ticket.key }}]\nСвоё подтверждение, ответ {{ due_text }}.\n", encoding="utf-8")
    context = contexts("ru")
    rendered = render("acknowledgement", context["acknowledgement"], templates_dir=str(tmp_path), language="ru")
    assert rendered.subject == "Приняли [HD-1]" and rendered.text == "Своё подтверждение, ответ завтра до 16:00 MSK.\n"
    other = render("resolution", context["resolution:True"], templates_dir=str(tmp_path), language="ru")
    assert other.subject.startswith("[HD-1] вопрос решён") and other.html and "Хорошо" in other.html
    english = render("acknowledgement", contexts("en")["acknowledgement"], templates_dir=str(tmp_path), language="en")
    assert english.text.startswith("Hello Анна Петрова,")  # the Russian override is not used for English
