"""attentive-connector: routes Avro customer events from Kafka to Attentive's REST APIs."""

__version__ = "0.1.0"
