"""The broker side of campaigns: queue names, the Celery app, sending cells.

Each device has a queue ``<prefix>.device.<name>``; cells for "any one device having tags
a and b" go to ``<prefix>.tags.a+b``, which every worker whose tags include a and b also
consumes. Queues and messages are durable (a broker restart loses no cell); a worker takes
one cell at a time (prefetch 1) and acknowledges it only when the cell is finished (acks
late), so a worker killed mid-cell has its cell delivered again.

No result backend: results go to the results store, never to Celery.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from wattbench.core.errors import ConfigError, UnavailableError

if TYPE_CHECKING:
    from celery import Celery
    from kombu import Exchange, Queue

#: the Celery task every cell message names
TASK_NAME = "wattbench.fleet.run_cell"
DEFAULT_PREFIX = "wattbench"
#: a worker consumes one queue per non-empty subset of its tags: more tags than this is refused
MAX_WORKER_TAGS = 6
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


def check_name(kind: str, name: str) -> str:
    """Device names, tags and queue prefixes become queue names: keep them plain."""
    if not _NAME.match(name) or "+" in name:
        raise ConfigError(
            f"invalid {kind} {name!r}: use letters, digits, '.', '_', ':' or '-' (at most 100)"
        )
    return name


def device_queue(prefix: str, device: str) -> str:
    return f"{prefix}.device.{device}"


def tags_target(tags: Iterable[str]) -> str:
    """The target of a cell for any one device having all ``tags``: ``tags:a+b``."""
    return "tags:" + "+".join(sorted(set(tags)))


def tags_queue(prefix: str, tags: Iterable[str]) -> str:
    return f"{prefix}.tags.{'+'.join(sorted(set(tags)))}"


def worker_queues(prefix: str, device: str, tags: Sequence[str]) -> list[str]:
    """The queues a worker consumes: its device's, and one per non-empty subset of its tags."""
    if len(set(tags)) > MAX_WORKER_TAGS:
        raise ConfigError(f"a worker takes at most {MAX_WORKER_TAGS} tags (got {len(set(tags))})")
    names = [device_queue(prefix, device)]
    uniq = sorted(set(tags))
    for n in range(1, len(uniq) + 1):
        names.extend(tags_queue(prefix, combo) for combo in itertools.combinations(uniq, n))
    return names


def exchange(prefix: str) -> Exchange:
    from kombu import Exchange

    return Exchange(f"{prefix}.cells", type="direct", durable=True)


def queue(prefix: str, name: str) -> Queue:
    from kombu import Queue

    return Queue(name, exchange(prefix), routing_key=name, durable=True)


def make_app(broker_url: str) -> Celery:
    """The Celery app of campaigns on ``broker_url`` (an AMQP URL)."""
    try:
        from celery import Celery
    except ImportError as exc:
        raise UnavailableError(
            f"campaigns need Celery: pip install 'wattbench[fleet]' ({exc})"
        ) from None
    app = Celery("wattbench.fleet", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # a failed cell is recorded in the store; its message is done with
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_default_delivery_mode="persistent",
        task_create_missing_queues=False,
        # A cell blocks the worker's only thread, so it cannot answer AMQP heartbeats; a
        # dead worker is seen by its closed TCP connection instead (docs/fleet.md).
        broker_heartbeat=0,
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_connection_timeout=5,
        # a redelivered cell is recognised by its run uuid: nothing to cancel on a lost link
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_transport_options={"confirm_publish": True},
    )
    return app


def publish_cells(broker_url: str, prefix: str, cells: Sequence[tuple[int, str, str, int]]) -> None:
    """Send ``(cell_id, campaign_id, queue_name, attempt)`` messages, declaring their queues
    first."""
    if not cells:
        return
    app = make_app(broker_url)
    try:
        with app.connection_for_write() as conn:
            try:
                conn.ensure_connection(max_retries=2, timeout=5)
            except Exception as exc:
                raise UnavailableError(
                    f"cannot reach the broker {conn.as_uri()}: {exc} (check --broker)"
                ) from None
            declared: dict[str, Queue] = {}
            with app.producer_or_acquire() as producer:
                for name in {c[2] for c in cells}:
                    declared[name] = queue(prefix, name)
                    declared[name].bind(conn.default_channel).declare()
                for cell_id, campaign_id, qname, attempt in cells:
                    app.send_task(
                        TASK_NAME,
                        kwargs={"cell_id": cell_id, "campaign_id": campaign_id, "attempt": attempt},
                        exchange=declared[qname].exchange,
                        routing_key=qname,
                        producer=producer,
                        ignore_result=True,
                    )
    finally:
        app.close()


def delete_queues(broker_url: str, prefix: str, names: Iterable[str]) -> None:
    """Delete queues and the prefix's exchange (tests and `campaign` housekeeping)."""
    from kombu import Connection

    with Connection(broker_url, connect_timeout=5) as conn:
        channel = conn.default_channel
        for name in names:
            channel.queue_delete(name)
        channel.exchange_delete(exchange(prefix).name)


def queue_depths(broker_url: str, names: Iterable[str]) -> dict[str, int | None]:
    """Messages ready per queue (None: the queue does not exist)."""
    from kombu import Connection

    out: dict[str, int | None] = {}
    with Connection(broker_url, connect_timeout=5) as conn:
        for name in names:
            channel = conn.channel()
            try:
                out[name] = channel.queue_declare(name, passive=True).message_count
            except Exception:
                out[name] = None
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
    return out


def describe(value: Any) -> str:
    """A broker URL without its password, for messages."""
    text = str(value)
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", text)
