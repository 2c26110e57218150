"""Jinja2 rendering of the messages we send. Sandboxed; a template's first line is its Subject."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailhelpdesk.errors import ConfigError
from mailhelpdesk.core.mail.parse import one_line

PACKAGE_TEMPLATES = Path(__file__).parents[2] / "templates"  # mailhelpdesk/templates


class UnsafeTemplate(ConfigError):
    """A template tried to leave the sandbox: never a mistake of one ticket's data; the pass stops."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None = None


def search_path(templates_dir: str, language: str) -> list[Path]:
    """Where templates are looked up, first match wins: the user's folder, then the package; the language, then English."""
    roots = [Path(templates_dir)] if templates_dir else []
    roots.append(PACKAGE_TEMPLATES)
    return [root / lang for root in roots for lang in dict.fromkeys((language, "en"))]


SUBJECT_CLIP = 120  # characters of a customer's subject we echo in ours (`clip`)
SUBJECT_LIMIT = 200  # characters of any subject we send, whatever a user's template makes of it


def clip(text: Any, length: int = SUBJECT_CLIP) -> str:
    """`{{ ticket.subject|clip }}`: a subject we echo, cut to `length` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= length else text[: max(1, length - 1)].rstrip() + "…"


def _make_environment(search: list[Path]) -> jinja2.Environment:
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(folder) for folder in search]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clip"] = clip
    return env


@lru_cache(maxsize=8)
def _environment(templates_dir: str, language: str) -> jinja2.Environment:
    return _make_environment(search_path(templates_dir, language))


def render(name: str, context: dict[str, Any], templates_dir: str = "", language: str = "en") -> Rendered:
    """Render `name`.txt.j2 (and `name`.html.j2 when it exists). The first line, `Subject: ...`, is the subject."""
    env = _environment(templates_dir, language)
    try:
        text = env.get_template(f"{name}.txt.j2").render(context)
    except jinja2.TemplateNotFound:
        raise ConfigError(f"template {name}.txt.j2 not found (looked in {templates_dir or 'the package'})") from None
    except jinja2.exceptions.SecurityError as exc:
        raise UnsafeTemplate(template_problem(exc, f"template {name}.txt.j2")) from None
    except Exception as exc:  # a user's template must never take the daemon down
        raise ConfigError(template_problem(exc, f"template {name}.txt.j2")) from None
    subject, body = _split_subject(text, name)
    try:
        html = env.get_template(f"{name}.html.j2").render(context)
    except jinja2.TemplateNotFound:
        html = None
    except jinja2.exceptions.SecurityError as exc:
        raise UnsafeTemplate(template_problem(exc, f"template {name}.html.j2")) from None
    except Exception as exc:
        raise ConfigError(template_problem(exc, f"template {name}.html.j2")) from None
    return Rendered(subject=subject, text=body, html=html)


def template_problem(exc: BaseException, fallback: str) -> str:
    """One line for a template that failed: '<file>, line N: what', from a syntax error or from the template's
    own frame in the traceback (Jinja2 puts the template file and line there); `fallback` names it otherwise."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = exc.filename or fallback
        return f"{where}, line {exc.lineno}: {one_line(exc.message or str(exc))}"
    where, line = fallback, 0
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            where, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    what = one_line(str(exc)) if isinstance(exc, jinja2.TemplateError) else f"{type(exc).__name__}: {one_line(str(exc))}"
    return f"{where}" + (f", line {line}" if line else "") + f": {what}"


def check_templates(templates_dir: str, language: str, contexts: dict[str, list[dict[str, Any]]]) -> tuple[int, list[str]]:
    """Render every template file on the search path (the user's folder and the package's, the language and
    English) with the sample contexts of its name; a file no code renders is only parsed. Returns how many
    files were checked and one line per broken file ('<file>, line N: what')."""
    problems: list[str] = []
    if templates_dir:
        root = Path(templates_dir)
        if not root.is_dir():
            return 0, [f"[helpdesk] templates_dir {root} is not a folder: create it or correct templates_dir"]
        if not any((root / lang).is_dir() for lang in (language, "en")):
            return 0, [f"[helpdesk] templates_dir {root} has no {language}/ folder: put the templates in "
                       f"{root / language}/ (they are looked up by language)"]
    search = search_path(templates_dir, language)
    checked = 0
    for index, folder in enumerate(search):
        if not folder.is_dir() or folder in search[:index]:
            continue
        env = _make_environment(search[index:])  # this very file first; its includes as the daemon finds them
        for path in sorted(folder.glob("*.j2")):
            checked += 1
            name = path.name.removesuffix(".j2").rsplit(".", 1)[0]
            try:
                template = env.get_template(path.name)
                for context in contexts.get(name, []):
                    text = template.render(context)
                    if path.name.endswith(".txt.j2") and not text.lower().startswith("subject:"):
                        problems.append(f"{path}, line 1: must start with a line 'Subject: ...'")
                        break
            except Exception as exc:
                problems.append(template_problem(exc, str(path)))
    return checked, problems


def _split_subject(text: str, name: str) -> tuple[str, str]:
    first, _, rest = text.partition("\n")
    if not first.lower().startswith("subject:"):
        raise ConfigError(f"template {name}.txt.j2 must start with a line 'Subject: ...'")
    return clip(one_line(first[len("subject:"):]), SUBJECT_LIMIT), rest.lstrip("\n")
