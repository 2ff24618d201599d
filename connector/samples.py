"""Realistic sample events for the four topics, and ``attentive-connector produce-samples``.

:func:`generate` yields records in the decoded representation (``Decimal`` prices, UTC ``datetime`` s, ``date``
birthdays) for ``orders``, ``loyalty``, ``signups`` or ``privacy`` (deletion requests): a small population of customers (phones written the
ways people type them, emails, some with only one of the two), a realistic mix of event kinds, recent
``occurred_at`` s. Every record routes cleanly through the shipped ``config/rules.yaml`` (a test checks it), so a
demo shows deliveries rather than dead letters; ``invalid_ratio`` mixes in records whose phone cannot be
normalised, for showing the dead-letter path.

:func:`produce` encodes records the way the topic is configured (raw or Confluent wire format, via
:class:`~connector.avro.encoder.Encoder`) and publishes them with the customer id as key.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from confluent_kafka import KafkaException, Producer

from connector.avro.encoder import Encoder
from connector.avro.registry import RegistryClient
from connector.avro.schema import load_schema
from connector.config import ConnectorConfig, load_config
from connector.errors import ConfigError, EncodeError, KafkaUnreachableError, RegistryUnavailableError
from connector.observability.logs import configure_logging, kafka_client_logger
from connector.rules.expressions import Expr
from connector.source.probe import cluster_topics

KINDS = ("orders", "loyalty", "signups", "privacy")
# Schema record name -> sample kind, so a topic with any name but one of our schemas gets the right samples.
KIND_BY_SCHEMA = {
    "OrderEvent": "orders",
    "LoyaltyEvent": "loyalty",
    "SignupEvent": "signups",
    "PrivacyDeleteRequest": "privacy",
}

_FIRST = (
    "Ava",
    "Liam",
    "Maya",
    "Noah",
    "Zoe",
    "Ethan",
    "Chloé",
    "Mateo",
    "Aisha",
    "Kenji",
    "Olivia",
    "Lucas",
)
_LAST = ("Smith", "García", "Chen", "Okafor", "Müller", "Rossi", "Nguyen", "Kowalski", "Silva", "Brown")
# Valid numbers (libphonenumber) in the shapes customers type them; US numbers without +1 rely on the
# connector's default_region.
_PHONE_SHAPES: tuple[Callable[[int], str], ...] = (
    lambda n: f"(201) 555-{n:04d}",
    lambda n: f"212-555-{n:04d}",
    lambda n: f"+1 415 555 {n:04d}",
    lambda n: f"617555{n:04d}",
    lambda n: f"+1-312-555-{n:04d}",
    lambda n: f"+44 7911 12{n:04d}",
)
_INVALID_PHONES = ("555-0100", "12345", "+1 000 000 0000", "call me")
_PRODUCTS = (
    ("TEE-001", "Organic Cotton Tee", "24.00", ("S", "M", "L")),
    ("HOOD-014", "Fleece Hoodie", "68.50", ("M", "L", "XL")),
    ("SNK-220", "Trail Sneaker", "119.99", ("9", "10", "11")),
    ("CAP-007", "Canvas Cap", "19.95", ("OS",)),
    ("BAG-310", "Weekender Bag", "145.00", ("OS",)),
    ("SCK-100", "Merino Socks 3-Pack", "21.00", ("M", "L")),
)
_ORDER_KINDS = (
    ("PRODUCT_VIEWED", 35),
    ("ADDED_TO_CART", 25),
    ("ORDER_PLACED", 15),
    ("ORDER_SHIPPED", 10),
    ("ORDER_DELIVERED", 8),
    ("ORDER_CANCELLED", 4),
    ("ORDER_REFUNDED", 3),
)
_LOYALTY_KINDS = (
    ("POINTS_EARNED", 55),
    ("POINTS_REDEEMED", 20),
    ("POINTS_EXPIRED", 10),
    ("TIER_CHANGED", 15),
)
_TIERS = ("BRONZE", "SILVER", "GOLD", "PLATINUM")
_CARRIERS = ("UPS", "USPS", "FEDEX", "DHL")
_INTERESTS = ("running", "outdoors", "streetwear", "travel", "yoga", "sneakers")
_LOCALES = ("en-US", "en-US", "en-US", "fr-CA", "en-CA")


class _Customer:
    def __init__(self, rng: random.Random, index: int, invalid_ratio: float) -> None:
        self.id = f"cust-{index:05d}"
        self.first = rng.choice(_FIRST)
        self.last = rng.choice(_LAST)
        n = 100 + index % 9000
        has = rng.random()
        self.phone: str | None = _PHONE_SHAPES[index % len(_PHONE_SHAPES)](n) if has < 0.85 else None
        self.email: str | None = (
            f"{self.first.lower().replace('é', 'e')}.{self.last.lower().replace('ü', 'u')}{index}@example.com"
            if has > 0.15
            else None
        )
        self.invalid_ratio = invalid_ratio
        self.shopify_id = str(7_000_000_000 + index) if rng.random() < 0.4 else None

    def as_record(self, rng: random.Random) -> dict[str, Any]:
        phone = self.phone
        if phone is not None and self.invalid_ratio and rng.random() < self.invalid_ratio:
            phone = rng.choice(_INVALID_PHONES)
        return {"id": self.id, "phone": phone, "email": self.email}


def generate(
    topic: str,
    count: int,
    *,
    seed: int = 0,
    now: datetime | None = None,
    invalid_ratio: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """``count`` sample records for ``topic`` (``orders``, ``loyalty`` or ``signups``), reproducible per seed
    (and ``now``, which defaults to the current time; ``occurred_at`` s fall in the hour before it)."""
    kind = KIND_BY_SCHEMA.get(topic, topic)
    if kind not in KINDS:
        raise ValueError(f"no samples for topic {topic!r}; known: {', '.join(KINDS)}")
    rng = random.Random(f"{kind}:{seed}")
    now = now or datetime.now(UTC)
    customers = [_Customer(rng, i, invalid_ratio) for i in range(max(5, count // 4))]
    make = {"orders": _order, "loyalty": _loyalty, "signups": _signup, "privacy": _privacy}[kind]
    for _ in range(count):
        occurred = (now - timedelta(seconds=rng.uniform(0, 3600))).replace(microsecond=0)
        occurred = occurred.replace(microsecond=rng.randrange(0, 1000) * 1000)
        yield make(rng, rng.choice(customers), occurred)


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in weighted], weights=[w for _, w in weighted])[0]


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _money(amount: Decimal, currency: str = "USD") -> dict[str, Any]:
    return {"amount": amount.quantize(Decimal("0.01")), "currency": currency}


def _order(rng: random.Random, customer: _Customer, occurred: datetime) -> dict[str, Any]:
    kind = _pick(rng, _ORDER_KINDS)
    browsing = kind in ("PRODUCT_VIEWED", "ADDED_TO_CART")
    lines = rng.sample(_PRODUCTS, 1 if browsing else rng.randint(1, 3))
    items: list[dict[str, Any]] = []
    for pid, name, price, variants in lines:
        variant = rng.choice(variants)
        items.append(
            {
                "product_id": pid,
                "variant_id": f"{pid}-{variant}",
                "name": f"{name} ({variant})" if variant != "OS" else name,
                "unit_price": _money(Decimal(price)),
                "quantity": 1 if browsing else rng.randint(1, 3),
                "image_url": f"https://cdn.example.com/img/{pid.lower()}.jpg" if rng.random() < 0.9 else None,
                "product_url": f"https://shop.example.com/p/{pid.lower()}",
            }
        )
    order_id = None if browsing else f"ORD-{rng.randrange(100000, 999999)}"
    subtotal = sum((i["unit_price"]["amount"] * i["quantity"] for i in items), Decimal("0"))
    tax = (subtotal * Decimal("0.08")).quantize(Decimal("0.01"))
    shipping = Decimal("0.00") if subtotal >= 100 else Decimal("7.95")
    totals = None
    if kind in ("ORDER_PLACED", "ORDER_CANCELLED", "ORDER_REFUNDED"):
        totals = {
            "subtotal": _money(subtotal),
            "tax": _money(tax),
            "shipping": _money(shipping),
            "total": _money(subtotal + tax + shipping),
        }
    shipment = None
    if kind in ("ORDER_SHIPPED", "ORDER_DELIVERED"):
        carrier = rng.choice(_CARRIERS)
        tracking = f"{carrier[:2]}{rng.randrange(10**11, 10**12)}"
        shipment = {
            "carrier": carrier,
            "tracking_number": tracking,
            "tracking_url": f"https://track.example.com/{carrier.lower()}/{tracking}",
            "estimated_delivery": occurred.date() + timedelta(days=rng.randint(1, 5)),
        }
    return {
        "event_id": _event_id(rng),
        "kind": kind,
        "order_id": order_id,
        "customer": customer.as_record(rng),
        "items": items,
        "totals": totals,
        "shipment": shipment,
        "refund_amount": _money(subtotal) if kind == "ORDER_REFUNDED" else None,
        "cancel_reason": rng.choice(("customer request", "payment declined", "out of stock"))
        if kind == "ORDER_CANCELLED"
        else None,
        "order_status_url": f"https://shop.example.com/orders/{order_id}" if order_id else None,
        "channel": rng.choice(("WEB", "WEB", "IOS_APP", "ANDROID_APP")),
        "occurred_at": occurred,
    }


def _loyalty(rng: random.Random, customer: _Customer, occurred: datetime) -> dict[str, Any]:
    kind = _pick(rng, _LOYALTY_KINDS)
    tier_i = rng.randrange(len(_TIERS) - 1) if kind == "TIER_CHANGED" else rng.randrange(len(_TIERS))
    delta = {
        "POINTS_EARNED": rng.randrange(10, 500),
        "POINTS_REDEEMED": -rng.randrange(100, 1000),
        "POINTS_EXPIRED": -rng.randrange(10, 300),
        "TIER_CHANGED": 0,
    }[kind]
    return {
        "event_id": _event_id(rng),
        "kind": kind,
        "customer": customer.as_record(rng),
        "points_delta": delta,
        "balance": rng.randrange(0, 20000),
        "tier": _TIERS[tier_i + 1] if kind == "TIER_CHANGED" else _TIERS[tier_i],
        "previous_tier": _TIERS[tier_i] if kind == "TIER_CHANGED" else None,
        "reason": {"POINTS_EARNED": "purchase", "POINTS_REDEEMED": "reward redeemed"}.get(kind),
        "order_id": f"ORD-{rng.randrange(100000, 999999)}" if kind == "POINTS_EARNED" else None,
        "occurred_at": occurred,
    }


def _signup(rng: random.Random, customer: _Customer, occurred: datetime) -> dict[str, Any]:
    # The channel follows what the customer gave: SMS needs a phone, email an email.
    if customer.phone and customer.email:
        channel = rng.choice(("SMS", "EMAIL"))
    else:
        channel = "SMS" if customer.phone else "EMAIL"
    opt_in = rng.random() < 0.85
    source = f"{rng.choice((402117, 402118, 511902))}" if rng.random() < 0.6 else None
    record = customer.as_record(rng)
    record["shopify_id"] = customer.shopify_id
    return {
        "event_id": _event_id(rng),
        "customer": record,
        "channel": channel,
        "consent": {
            "type": "MARKETING" if rng.random() < 0.8 else "TRANSACTIONAL",
            "status": "OPT_IN" if opt_in else "OPT_OUT",
            "single_opt_in": False,
        },
        "sign_up_source_id": source,
        "locale": rng.choice(_LOCALES) if source is None or rng.random() < 0.5 else None,
        "first_name": customer.first if rng.random() < 0.8 else None,
        "last_name": customer.last if rng.random() < 0.5 else None,
        "birthday": date(rng.randrange(1960, 2005), rng.randrange(1, 13), rng.randrange(1, 29))
        if rng.random() < 0.5
        else None,
        "interests": rng.sample(_INTERESTS, rng.randrange(0, 3)),
        "attributes": {"utm_source": rng.choice(("instagram", "google", "newsletter"))}
        if rng.random() < 0.5
        else {},
        "occurred_at": occurred,
    }


def _privacy(rng: random.Random, customer: _Customer, occurred: datetime) -> dict[str, Any]:
    # Deletion requests name the person by what the privacy form collected; some only by the customer id.
    record = customer.as_record(rng)
    if rng.random() < 0.15:
        record.update(phone=None, email=None)
    return {
        "request_id": f"DSR-{rng.randrange(100000, 999999)}",
        "customer": record,
        "regulation": rng.choice(("CCPA", "CCPA", "GDPR", "OTHER")),
        "source": rng.choice(("privacy-portal", "support", None)),
        "occurred_at": occurred,
    }


# --- producing ----------------------------------------------------------------------------------------


def producer_config(config: ConnectorConfig, bootstrap: str) -> dict[str, Any]:
    """librdkafka settings for a producer of samples: the config's client settings, the given bootstrap."""
    return {
        **config.kafka.client,
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": 20,
        # A broker that goes away mid-run fails the command within 30 s, not librdkafka's 5 minutes.
        "message.timeout.ms": 30000,
        # librdkafka's lines through our logging, rate-limited, instead of raw on stderr.
        "logger": kafka_client_logger(),
    }


def produce(
    config: ConnectorConfig,
    topic: str,
    records: Iterable[Mapping[str, Any]],
    *,
    bootstrap: str,
    registry_client: RegistryClient | None = None,
    producer: Any = None,
    timeout_s: float = 45.0,
) -> int:
    """Encode ``records`` for ``topic`` as configured and publish them (key = the topic's ``key_field``, else
    ``customer.id``). Waits until every record is acknowledged; returns how many were. Raises
    ``KafkaUnreachableError`` when no broker answers within 10 s, ``KafkaException`` if any delivery failed."""
    encoder = Encoder.for_topic(config, topic, registry_client=registry_client)
    key_expr = Expr(config.topics[topic].key_field or "customer.id")

    acked = 0
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal acked
        if err is None:
            acked += 1
        else:
            failures.append(str(err))

    for record in records:
        key = key_expr.search(record)
        value = encoder.encode(record)  # the first one registers the schema (confluent encoding)
        if producer is None:
            # Fail in ~10 s with one line when no broker answers, rather than retrying for a minute.
            cluster_topics(producer_config(config, bootstrap))
            producer = Producer(producer_config(config, bootstrap))
        while True:
            try:
                producer.produce(
                    topic,
                    key=None if key is None else str(key).encode("utf-8"),
                    value=value,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
        producer.poll(0)
    if producer is None:
        return 0
    remaining = producer.flush(timeout_s)
    if remaining:
        failures.append(f"{remaining} records not acknowledged within {timeout_s:.0f}s")
    if failures:
        raise KafkaException(f"producing to {topic} failed: {failures[0]} ({len(failures)} failures)")
    return acked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="config/connector.yaml",
        metavar="FILE",
        help="connector config (default: %(default)s)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        metavar="T",
        help="topic to publish to (repeatable; default: every configured topic)",
    )
    parser.add_argument(
        "--count", type=int, default=100, metavar="N", help="records per topic (default: 100)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--invalid-ratio",
        type=float,
        default=0.0,
        metavar="R",
        help="share of records with a phone that cannot be normalised, to see dead-lettering (default: 0)",
    )
    parser.add_argument(
        "--bootstrap-servers", metavar="HOSTS", help="Kafka bootstrap servers (default: from the config)"
    )


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    # Warnings and errors only: this command's own output is one line per topic.
    configure_logging(config.logging.format, max(logging.WARNING, logging.getLevelName(config.logging.level)))
    topics = args.topic or list(config.topics)
    bootstrap = args.bootstrap_servers or config.kafka.bootstrap_servers
    if args.count < 0:
        raise ConfigError("--count must be 0 or more")
    for topic in topics:
        if topic not in config.topics:
            raise ConfigError(f"--topic {topic!r} is not configured (configured: {', '.join(config.topics)})")
    for topic in topics:
        schema = load_schema(config.resolve(config.topics[topic].schema_file))
        kind = KIND_BY_SCHEMA.get(schema.name)
        if kind is None:
            raise ConfigError(f"topic {topic!r} uses schema {schema.name}, for which there are no samples")
        try:
            n = produce(
                config,
                topic,
                generate(kind, args.count, seed=args.seed, invalid_ratio=args.invalid_ratio),
                bootstrap=bootstrap,
            )
        except KafkaUnreachableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (KafkaException, RegistryUnavailableError, EncodeError) as exc:
            print(f"error: {topic}: {exc}", file=sys.stderr)
            return 1
        print(f"produced {n} records to {topic}", flush=True)
    return 0
