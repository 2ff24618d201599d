"""The Attentive endpoints the connector calls, with their paths, spec schemas and default rate limits."""

from __future__ import annotations

import enum


class Endpoint(enum.StrEnum):
    """Names used in rules (``api:``), metrics labels (``endpoint``) and rate-limit settings."""

    PRODUCT_VIEW = "ecommerce.product_view"
    ADD_TO_CART = "ecommerce.add_to_cart"
    PURCHASE = "ecommerce.purchase"
    CUSTOM_EVENT = "custom_event"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    CUSTOM_ATTRIBUTES = "custom_attributes"
    IDENTITY = "identity"
    PRIVACY_DELETE = "privacy.delete"

    @property
    def path(self) -> str:
        return _PATHS[self]

    @property
    def method(self) -> str:
        return "POST"

    @property
    def schema_name(self) -> str:
        """The request-body schema in Attentive's v1 OpenAPI spec (``components.schemas``)."""
        return _SCHEMAS[self]

    @property
    def default_rate_limit(self) -> float:
        """Requests per second Attentive publishes for this endpoint (privacy.delete: a conservative default,
        Attentive publishes none)."""
        return _RATES.get(self, 150.0)


ME_PATH = "/v1/me"

_PATHS: dict[Endpoint, str] = {
    Endpoint.PRODUCT_VIEW: "/v1/events/ecommerce/product-view",
    Endpoint.ADD_TO_CART: "/v1/events/ecommerce/add-to-cart",
    Endpoint.PURCHASE: "/v1/events/ecommerce/purchase",
    Endpoint.CUSTOM_EVENT: "/v1/events/custom",
    Endpoint.SUBSCRIBE: "/v1/subscriptions",
    Endpoint.UNSUBSCRIBE: "/v1/subscriptions/unsubscribe",
    Endpoint.CUSTOM_ATTRIBUTES: "/v1/attributes/custom",
    Endpoint.IDENTITY: "/v1/identity-resolution/user-identifiers",
    Endpoint.PRIVACY_DELETE: "/v1/privacy/delete-request",
}

_SCHEMAS: dict[Endpoint, str] = {
    Endpoint.PRODUCT_VIEW: "ProductViewRequest",
    Endpoint.ADD_TO_CART: "AddToCartRequest",
    Endpoint.PURCHASE: "PurchaseRequest",
    Endpoint.CUSTOM_EVENT: "CustomEventsRequest",
    Endpoint.SUBSCRIBE: "AddSubscriptionsRequestDto",
    Endpoint.UNSUBSCRIBE: "UnsubscribeSubscriptionsRequestDto",
    Endpoint.CUSTOM_ATTRIBUTES: "CustomAttributesRequest",
    Endpoint.IDENTITY: "IdentifyRequestDto",
    Endpoint.PRIVACY_DELETE: "PrivacyRequestAddDeleteEventDto",
}

_RATES: dict[Endpoint, float] = {
    Endpoint.SUBSCRIBE: 10.0,
    Endpoint.UNSUBSCRIBE: 5.0,
    Endpoint.IDENTITY: 10.0,  # published: "Identity: 10 requests per second"
    # Not published for privacy requests. Deletions are rare; 5/s (the lowest limit Attentive publishes for
    # a per-person endpoint, unsubscribe's) is a conservative default that never tests the general 150/s.
    Endpoint.PRIVACY_DELETE: 5.0,
}

BY_PATH: dict[str, Endpoint] = {e.path: e for e in Endpoint}
