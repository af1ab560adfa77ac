"""Function log lines: what a handler prints becomes its ``[LOG]`` lines, within limits."""

from __future__ import annotations

import asyncio
import sys

import pytest

from reactor.engine.log_lines import MAX_LINE_BYTES, MAX_LINES, capture


def test_printed_lines_become_log_lines() -> None:
    with capture() as captured:
        print("hello")
        print("two", "words", 3)

    assert captured.lines == ("[LOG] hello", "[LOG] two words 3")


def test_lines_are_available_only_once_the_block_ends() -> None:
    with capture() as captured:
        print("hello")
        during = captured.lines

    assert during == ()
    assert captured.lines == ("[LOG] hello",)


def test_nothing_printed_is_no_lines() -> None:
    with capture() as captured:
        pass

    assert captured.lines == ()


def test_fragments_are_joined_and_empty_lines_dropped() -> None:
    with capture() as captured:
        print("a", end="")
        print("b")
        print()
        sys.stdout.write("c\n\nd")

    assert captured.lines == ("[LOG] ab", "[LOG] c", "[LOG] d")


def test_captured_output_does_not_reach_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with capture():
        print("inside")
    print("outside")

    assert capsys.readouterr().out == "outside\n"


def test_lines_are_kept_when_the_handler_raises() -> None:
    with pytest.raises(ValueError, match="boom"), capture() as captured:
        print("before")
        raise ValueError("boom")

    assert captured.lines == ("[LOG] before",)


def test_a_nested_capture_takes_its_own_lines() -> None:
    with capture() as outer:
        print("outer 1")
        with capture() as inner:
            print("inner")
        print("outer 2")

    assert inner.lines == ("[LOG] inner",)
    assert outer.lines == ("[LOG] outer 1", "[LOG] outer 2")


def test_a_long_line_is_truncated_to_the_byte_limit() -> None:
    with capture() as captured:
        print("x" * (MAX_LINE_BYTES + 10))
        print("y" * MAX_LINE_BYTES)

    assert captured.lines == (
        "[LOG] " + "x" * MAX_LINE_BYTES + " (truncated)",
        "[LOG] " + "y" * MAX_LINE_BYTES,
    )


def test_truncation_never_splits_a_character() -> None:
    with capture() as captured:
        print("a" + "\u00e9" * MAX_LINE_BYTES)  # 1 + 2 bytes each: the cut falls inside one

    assert captured.lines == ("[LOG] a" + "\u00e9" * (MAX_LINE_BYTES // 2 - 1) + " (truncated)",)


def test_lines_past_the_limit_are_dropped_with_a_warning() -> None:
    with capture() as captured:
        for n in range(MAX_LINES + 3):
            print(n)

    assert len(captured.lines) == MAX_LINES + 1
    assert captured.lines[0] == "[LOG] 0"
    assert captured.lines[MAX_LINES - 1] == f"[LOG] {MAX_LINES - 1}"
    assert captured.lines[-1] == "[WARN] 3 more log lines were dropped"


def test_exactly_the_limit_has_no_warning() -> None:
    with capture() as captured:
        for n in range(MAX_LINES):
            print(n)

    assert len(captured.lines) == MAX_LINES
    assert not any(line.startswith("[WARN]") for line in captured.lines)


@pytest.mark.anyio
async def test_concurrent_functions_never_mix_their_lines() -> None:
    turn = asyncio.Event()

    async def handler(name: str) -> tuple[str, ...]:
        with capture() as captured:
            for n in range(3):
                print(f"{name} {n}")
                await asyncio.sleep(0)  # let the other handler print in between
        await turn.wait()
        return captured.lines

    first = asyncio.create_task(handler("a"))
    second = asyncio.create_task(handler("b"))
    for _ in range(5):
        await asyncio.sleep(0)
    turn.set()

    assert await first == ("[LOG] a 0", "[LOG] a 1", "[LOG] a 2")
    assert await second == ("[LOG] b 0", "[LOG] b 1", "[LOG] b 2")


def test_stdout_keeps_the_attributes_of_the_stream_it_wraps() -> None:
    with capture():
        pass

    assert isinstance(sys.stdout.encoding, str)
    sys.stdout.flush()
