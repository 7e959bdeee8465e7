"""ComputeSDK events: store, read back and follow a sandbox's events."""

from providers import capabilities as c
from providers.computesdk.endpoints import ENDPOINTS
from providers.provider import Provider, Resource, Serves, Setting

ACCESS_TOKEN = Setting("COMPUTESDK_ACCESS_TOKEN", "access_token", "Sandbox access token (stores events).")
API_KEY = Setting("COMPUTESDK_API_KEY", "api_key", "Project API key (reads and follows events).")
GATEWAY_URL = Setting(
    "COMPUTESDK_GATEWAY_URL", "gateway_url", "Events gateway base URL.", "https://events.computesdk.com"
)
PUBSUB_HOST = Setting("COMPUTESDK_PUBSUB_HOST", "pubsub_host", "Pub/sub host.", "events.computesdk.com")
PUBSUB_PORT = Setting("COMPUTESDK_PUBSUB_PORT", "pubsub_port", "Pub/sub TCP port.", 6380, minimum=1, maximum=65535)

PROVIDER = Provider(
    name="computesdk",
    title="ComputeSDK events",
    summary="Sandbox events: store, read back, subscribe.",
    client="providers.computesdk.client:ComputeSDKEventsClient",
    capabilities={
        c.STORE_EVENT: Serves(("type", "data"), ACCESS_TOKEN),
        c.GET_EVENTS: Serves(("sandbox_id", "type?", "since?", "limit?"), API_KEY),
    },
    settings=(ACCESS_TOKEN, API_KEY, GATEWAY_URL, PUBSUB_HOST, PUBSUB_PORT),
    endpoints=ENDPOINTS,
    opens="providers.computesdk.client:open_client",
    resources=(
        Resource(
            "events://computesdk/{sandbox_id}",
            "computesdk-events",
            "Live events of a ComputeSDK sandbox",
            "Events received over ComputeSDK pub/sub since the first read; subscribe for updates.",
            "application/json",
            "providers.computesdk.client:read_live_events",
            ACCESS_TOKEN,
        ),
    ),
)
