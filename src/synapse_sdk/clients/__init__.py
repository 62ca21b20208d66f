"""HTTP clients of the Synap backend.

:class:`BackendV2Client` and :class:`AsyncBackendV2Client` speak the backend v2 API (cursor
pagination, bulk fetch with 207 partial failures, original files); their transport
(:mod:`synapse_sdk.clients._transport`) is the one place where HTTP answers and httpx/OS errors
become the SDK's error tree.
"""

from synapse_sdk.clients._transport import ClientStats, Response
from synapse_sdk.clients.backend_v2 import (
    BULK_FETCH_LIMIT,
    AsyncBackendV2Client,
    AsyncResource,
    BackendV2Client,
    BulkAnswer,
    Item,
    Page,
    Resource,
    succeeded_items,
)

__all__ = [
    "BULK_FETCH_LIMIT",
    "AsyncBackendV2Client",
    "AsyncResource",
    "BackendV2Client",
    "BulkAnswer",
    "ClientStats",
    "Item",
    "Page",
    "Resource",
    "Response",
    "succeeded_items",
]
