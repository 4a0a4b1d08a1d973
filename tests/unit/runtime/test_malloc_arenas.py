import ctypes
import sys

import pytest

from restlake.runtime import malloc_arenas


def test_an_arena_cap_from_the_environment_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert malloc_arenas.cap_malloc_arenas() is False


@pytest.mark.skipif(sys.platform != "linux", reason="mallopt is glibc's")
def test_glibc_takes_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018 - only glibc has it
    except AttributeError:
        pytest.skip("not glibc")
    assert malloc_arenas.cap_malloc_arenas() is True


def test_without_mallopt_nothing_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)

    class NoMallopt:
        def __init__(self, name: object) -> None:
            pass

    monkeypatch.setattr(malloc_arenas.ctypes, "CDLL", NoMallopt)
    assert malloc_arenas.cap_malloc_arenas() is False
