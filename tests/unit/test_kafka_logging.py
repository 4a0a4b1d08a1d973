"""librdkafka's lines reach Python logging (levels mapped, repeats held back), never fd 2."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from restlake.fetcher.producer import EnvelopeProducer
from restlake.kafka_logging import LibrdkafkaLog, client_config

REFUSED = (
    "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: "
    "Connection refused (after {ms}ms in state CONNECT)"
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when the block ends: connections to it are refused


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_producer_against_a_closed_port_writes_nothing_to_stderr_and_logs_a_warning(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="restlake.fetcher.producer.librdkafka")
    producer = EnvelopeProducer(f"127.0.0.1:{_closed_port()}", extra={"message.timeout.ms": 1000})
    producer.produce_raw("t", b"k", b"v")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not caplog.records:
        producer._producer.poll(0.2)
    for _ in range(5):  # more reconnect attempts: the same line, held back
        producer._producer.poll(0.2)
    out, err = capfd.readouterr()
    assert err == "" and "%3|" not in out
    records = [r for r in caplog.records if r.name == "restlake.fetcher.producer.librdkafka"]
    refused = [r for r in records if "Connection refused" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in records]
    assert refused[0].levelno == logging.WARNING
    assert refused[0].librdkafka_facility == "FAIL"  # type: ignore[attr-defined]


def test_an_identical_line_passes_once_per_interval_with_the_count_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    sink = LibrdkafkaLog(logging.getLogger("t.librdkafka"), interval=10.0, clock=clock)
    caplog.set_level(logging.DEBUG, logger="t.librdkafka")
    for ms in range(5):  # timings differ, the line is the same
        sink.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", REFUSED.format(ms=ms))
        clock.now += 1
    clock.now += 10
    sink.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", REFUSED.format(ms=7))
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [
        (logging.WARNING, "FAIL [rdkafka#producer-1] " + REFUSED.format(ms=0)),
        (
            logging.WARNING,
            "FAIL [rdkafka#producer-1] "
            + REFUSED.format(ms=7)
            + " (4 similar line(s) in the last 15s not shown)",
        ),
    ]


def test_other_errors_keep_their_level_and_debug_is_dropped_when_disabled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = LibrdkafkaLog(logging.getLogger("t2.librdkafka"))
    caplog.set_level(logging.INFO, logger="t2.librdkafka")
    sink.log(logging.ERROR, "%s [%s] %s", "ERROR", "rdkafka#producer-1", "Topic authorization failed")
    sink.log(logging.DEBUG, "%s [%s] %s", "BROKER", "rdkafka#producer-1", "chatter")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "ERROR [rdkafka#producer-1] Topic authorization failed")
    ]


def test_client_config_keeps_a_logger_the_caller_set() -> None:
    mine = logging.getLogger("mine")
    assert client_config({"logger": mine}, "restlake.x")["logger"] is mine
    routed = client_config({"bootstrap.servers": "b"}, "restlake.x")["logger"]
    assert isinstance(routed, LibrdkafkaLog) and routed.logger.name == "restlake.x.librdkafka"


def test_a_producer_id_retry_while_the_broker_starts_is_information(caplog: pytest.LogCaptureFixture) -> None:
    sink = LibrdkafkaLog(logging.getLogger("t3.librdkafka"))
    caplog.set_level(logging.INFO, logger="t3.librdkafka")
    text = "Failed to acquire idempotence PID from broker 1: Coordinator load in progress: retrying"
    sink.log(logging.WARNING, "%s [%s] %s", "GETPID", "rdkafka#producer-1", text)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, f"GETPID [rdkafka#producer-1] {text}")
    ]
