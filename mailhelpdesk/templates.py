"""Jinja2 rendering of the messages we send. Sandboxed; a template's first line is its Subject."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import ConfigError

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None = None


@lru_cache(maxsize=8)
def _environment(templates_dir: str, language: str) -> jinja2.Environment:
    roots = [Path(templates_dir)] if templates_dir else []
    roots.append(PACKAGE_TEMPLATES)
    search = [str(root / lang) for root in roots for lang in dict.fromkeys((language, "en"))]
    return ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(search),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, context: dict[str, Any], templates_dir: str = "", language: str = "en") -> Rendered:
    """Render `name`.txt.j2 (and `name`.html.j2 when it exists). The first line, `Subject: ...`, is the subject."""
    env = _environment(templates_dir, language)
    try:
        text = env.get_template(f"{name}.txt.j2").render(context)
    except jinja2.TemplateNotFound:
        raise ConfigError(f"template {name}.txt.j2 not found (looked in {templates_dir or 'the package'})") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template {name}.txt.j2: {exc}") from None
    except Exception as exc:  # a user's template must never take the daemon down
        raise ConfigError(f"template {name}.txt.j2 failed: {type(exc).__name__}: {exc}") from None
    subject, body = _split_subject(text, name)
    try:
        html = env.get_template(f"{name}.html.j2").render(context)
    except jinja2.TemplateNotFound:
        html = None
    except Exception as exc:
        raise ConfigError(f"template {name}.html.j2 failed: {type(exc).__name__}: {exc}") from None
    return Rendered(subject=subject, text=body, html=html)


def _split_subject(text: str, name: str) -> tuple[str, str]:
    first, _, rest = text.partition("\n")
    if not first.lower().startswith("subject:"):
        raise ConfigError(f"template {name}.txt.j2 must start with a line 'Subject: ...'")
    return one_line(first[len("subject:"):]), rest.lstrip("\n")


def one_line(text: str) -> str:
    """Header-safe text: customer text can never add a header line."""
    return re.sub(r"[\r\n\t\x00-\x1f\x7f]+", " ", text).strip()
