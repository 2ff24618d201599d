"""Avro: topic schemas, decoding (raw or Confluent wire format), encoding, and JSON forms of records."""

from connector.avro.decoder import Decoder, confluent_schema_id
from connector.avro.encoder import Encoder
from connector.avro.jsonrecords import from_json, jsonable, to_json
from connector.avro.registry import RegistryClient, WriterSchemas, make_registry_client
from connector.avro.schema import AvroType, TopicSchema, load_schema
from connector.errors import EncodeError

__all__ = [
    "AvroType",
    "Decoder",
    "EncodeError",
    "Encoder",
    "RegistryClient",
    "TopicSchema",
    "WriterSchemas",
    "confluent_schema_id",
    "from_json",
    "jsonable",
    "load_schema",
    "make_registry_client",
    "to_json",
]
