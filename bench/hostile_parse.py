"""How long hostile mail takes to parse, and whether HTML-to-text stays linear on pathological markup.

Prints seconds per big hostile message (25 MB attachment, 5,000 references, deep nesting...), the time to convert
a newsletter-sized HTML body, and, for each pathological markup, the time at n and 2n characters: a ratio near 2
is linear, near 4 quadratic. (parse_message converts at most HTML_LIMIT characters of a body.)
"""

from __future__ import annotations

import importlib.util
import sys
import time

from _common import TESTS, emit

from mailhelpdesk.core.mail.parse import html_to_text, parse_message


def load_corpus():
    spec = importlib.util.spec_from_file_location("hostile_corpus", TESTS / "fixtures" / "hostile" / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile_corpus"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def seconds(func, *args) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        func(*args)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    result: dict[str, float] = {}
    print("big hostile messages, seconds to parse (best of 3):")
    for case in load_corpus().big():
        took = seconds(parse_message, case.raw)
        result[f"parse_{case.name}_s"] = round(took, 4)
        print(f"  {case.name:32} {len(case.raw) / 1e6:8.2f} MB  {took:8.3f} s")
    newsletter = "<html><head><style>p { color: red }</style></head><body>" + (
        '<div><p>Hello <b>world</b> &amp; friends, <a href="https://example.com/">a link</a>.</p></div>' * 200
    ) + "</body></html>"
    took = seconds(html_to_text, newsletter)
    result["html_newsletter_ms"] = round(took * 1000, 2)
    print(f"html_to_text on a {len(newsletter) // 1000} kB newsletter: {took * 1000:.2f} ms")
    print("html_to_text on pathological markup: seconds at n and 2n, and their ratio (2 = linear):")
    for name, unit, n in (("lt", "<", 500_000), ("script", "<script>", 100_000), ("style", "<style", 100_000),
                          ("a_lt_b", "a<b", 150_000), ("cells", "<td>x", 20_000), ("items", "<li>x", 20_000)):
        one, two = seconds(html_to_text, unit * n), seconds(html_to_text, unit * 2 * n)
        result[f"html_{name}_ratio"] = round(two / one, 2) if one else 0.0
        print(f"  {name:8} n={n:>8}  {one:7.3f} s   2n: {two:7.3f} s   ratio {two / one if one else 0:5.2f}")
    emit("hostile_parse", result)


if __name__ == "__main__":
    main()
