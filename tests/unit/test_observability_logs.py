"""Log formats, PII masking and secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from connector.observability import logs
from connector.observability.logs import configure_logging, mask, redact, register_secret, scrub


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    with logs._secrets_lock:
        logs._secrets.clear()


def capture(fmt: logs.LogFormat = "json", level: str = "DEBUG") -> io.StringIO:
    buf = io.StringIO()
    configure_logging(fmt, level, stream=buf)
    return buf


def json_lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


# -- mask -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+15551232368", "+1******2368"),
        ("+447911123456", "+4*******3456"),
        ("+1 555 123 2368", "+1******2368"),
        ("+1 (555) 123-2368", "+1******2368"),
        ("+33 6 12 34 56 78", "+3******5678"),
        ("(555) 123-2368", "******2368"),
        ("555-123-2368", "******2368"),
        ("555.123.2368", "******2368"),
        ("1-555-123-2368", "*******2368"),
        ("5557232368", "******2368"),
        ("15557232368", "*******2368"),
    ],
)
def test_mask_phones(raw: str, masked: str) -> None:
    assert mask(f"phone={raw} done") == f"phone={masked} done"


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("taylor@gmail.com", "t***@gmail.com"),
        ("first.last+tag@mail.example.co.uk", "f***@mail.example.co.uk"),
        ("5551232368@txt.att.net", "5***@txt.att.net"),
    ],
)
def test_mask_emails(raw: str, masked: str) -> None:
    assert mask(f"<{raw}>") == f"<{masked}>"


@pytest.mark.parametrize(
    "text",
    [
        "created at 1732651234 (unix seconds)",  # timestamps start with 1: not a NANP area code
        "timestamp_ms=1732651234567",
        "orders/2/184467",
        "took 0.25 s, 3 retries, status 503",
        "date 2025-11-26 12:30:00",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "version 1.2.3, port 9400",
    ],
)
def test_mask_leaves_ordinary_numbers_alone(text: str) -> None:
    assert mask(text) == text


# -- redact ---------------------------------------------------------------------------------------


def test_redact_bearer_tokens_any_case() -> None:
    text = "headers={'Authorization': 'Bearer abc.DEF-123_x/y+z=='} and bearer   sk_live_9"
    out = redact(text)
    assert "abc.DEF" not in out and "sk_live_9" not in out
    assert out == "headers={'Authorization': 'Bearer [REDACTED]'} and bearer   [REDACTED]"


def test_registered_secret_is_redacted_and_short_values_ignored(root_restored: None) -> None:
    register_secret("sandbox-test-key-3f9c2a")
    register_secret("abc")  # too short to redact safely
    assert redact("key sandbox-test-key-3f9c2a abc") == "key [REDACTED] abc"


def test_scrub_does_both() -> None:
    assert scrub("Bearer tok123 for taylor@gmail.com +15551232368") == (
        "Bearer [REDACTED] for t***@gmail.com +1******2368"
    )


# -- JSON format ----------------------------------------------------------------------------------


def test_json_line_has_envelope_record_id_and_extras(root_restored: None) -> None:
    buf = capture("json")
    logging.getLogger("connector.delivery").info(
        "delivered %s",
        "purchase",
        extra={"record_id": "orders/1/42", "endpoint": "ecommerce.purchase", "n": 2},
    )
    (line,) = json_lines(buf)
    assert line["level"] == "INFO"
    assert line["logger"] == "connector.delivery"
    assert line["message"] == "delivered purchase"
    assert line["record_id"] == "orders/1/42"
    assert line["endpoint"] == "ecommerce.purchase"
    assert line["n"] == 2
    assert isinstance(line["ts"], str) and line["ts"].endswith("+00:00")


def test_json_masks_message_args_extras_and_traceback(root_restored: None) -> None:
    buf = capture("json")
    log = logging.getLogger("t")
    try:
        raise ValueError("bad phone +15551232368 for taylor@gmail.com")
    except ValueError:
        log.exception(
            "rejected %s",
            "+15551232368",
            extra={
                "body": {
                    "phone": "+15551232368",
                    "emails": ["taylor@gmail.com"],
                    "token": "Bearer secret-tok",
                },
                "record_id": "orders/0/5551232368",  # ours, not PII: left intact
            },
        )
    raw = buf.getvalue()
    assert "5551232368@" not in raw
    assert "+15551232368" not in raw
    assert "taylor@" not in raw
    assert "secret-tok" not in raw
    (line,) = json_lines(buf)
    assert line["message"] == "rejected +1******2368"
    assert line["body"] == {
        "phone": "+1******2368",
        "emails": ["t***@gmail.com"],
        "token": "Bearer [REDACTED]",
    }
    assert line["record_id"] == "orders/0/5551232368"
    assert "ValueError: bad phone +1******2368 for t***@gmail.com" in str(line["exc"])


def test_json_extra_cannot_overwrite_envelope_and_odd_values_survive(root_restored: None) -> None:
    buf = capture("json")

    class Thing:
        def __str__(self) -> str:
            return "thing with taylor@gmail.com"

    logging.getLogger("t").warning("x", extra={"level_name": 1, "obj": Thing(), "ids": (1, 2)})
    logging.getLogger("t").warning("y", extra={"ts_": None})
    a, b = json_lines(buf)
    assert a["obj"] == "thing with t***@gmail.com"
    assert a["ids"] == [1, 2]
    assert b["ts_"] is None


@pytest.mark.parametrize("formatter", [logs.JsonFormatter(), logs.TextFormatter()])
def test_bad_format_args_keep_the_line(formatter: logging.Formatter) -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "count %d for +15551232368", ("x",), None)
    assert logs.RedactFilter().filter(record)  # must not raise either
    assert "count %d for +1******2368 (log formatting failed: TypeError)" in formatter.format(record)


def test_level_filters(root_restored: None) -> None:
    buf = capture("json", "WARNING")
    logging.getLogger("t").info("hidden")
    logging.getLogger("t").warning("shown")
    assert [line["message"] for line in json_lines(buf)] == ["shown"]


# -- text format ----------------------------------------------------------------------------------


def test_text_format_is_one_readable_line_with_extras(root_restored: None) -> None:
    buf = capture("text")
    logging.getLogger("connector.x").warning(
        "retry for +15551232368", extra={"record_id": "orders/0/7", "attempt": 2, "body": {"e": "a@b.io"}}
    )
    line = buf.getvalue().rstrip("\n")
    assert "\n" not in line
    assert " WARNING connector.x: retry for +1******2368 " in line
    assert line.endswith('attempt=2 body={"e": "a***@b.io"} record_id=orders/0/7')
    assert line[:4].isdigit() and line[23] == "Z"


def test_text_format_appends_masked_traceback(root_restored: None) -> None:
    buf = capture("text")
    try:
        raise RuntimeError("auth header Bearer xyz987 rejected")
    except RuntimeError:
        logging.getLogger("t").error("failed", exc_info=True, stack_info=True)
    out = buf.getvalue()
    assert "xyz987" not in out
    assert "RuntimeError: auth header Bearer [REDACTED] rejected" in out
    assert "Stack (most recent call last)" in out


# -- configure_logging --------------------------------------------------------------------------


def test_reconfigure_replaces_only_our_handler(root_restored: None) -> None:
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    first = io.StringIO()
    second = io.StringIO()
    configure_logging("json", "INFO", stream=first)
    configure_logging("text", "INFO", stream=second)
    logging.getLogger("t").info("once")
    assert first.getvalue() == ""
    assert "once" in second.getvalue()
    assert other in logging.getLogger().handlers


def test_redact_filter_protects_foreign_handlers_too(root_restored: None) -> None:
    handler = configure_logging("json", "INFO", stream=io.StringIO())
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "token %s", ("Bearer abcdef",), None)
    assert handler.filter(record)
    assert record.getMessage() == "token Bearer [REDACTED]"


def test_noisy_libraries_are_quieted(root_restored: None) -> None:
    configure_logging("json", "DEBUG", stream=io.StringIO())
    assert logging.getLogger("aiohttp.access").level == logging.WARNING
    configure_logging("json", "ERROR", stream=io.StringIO())
    assert logging.getLogger("httpx").level == logging.ERROR


@pytest.mark.parametrize(("fmt", "level", "match"), [("xml", "INFO", "format"), ("json", "LOUD", "level")])
def test_bad_arguments_are_clear_errors(fmt: str, level: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        configure_logging(fmt, level)  # type: ignore[arg-type]
