"""ComputeSDK sandbox events."""

from docs_topics.model import Topic, schema_of
from providers import models as m
from providers.computesdk import endpoints as e

COMPUTESDK = Topic(
    topic="computesdk",
    title="ComputeSDK: sandbox events",
    description=(
        "ComputeSDK keeps a log of events per sandbox. storeEvent writes one with the sandbox's access token "
        "(`COMPUTESDK_ACCESS_TOKEN`; the token names the sandbox). getEvents reads them back "
        "with the API key (`COMPUTESDK_API_KEY`), filtered by type, `since` (unix ms) and limit (1 to 1000, "
        "default 100). Live events arrive over a pub/sub connection; this server exposes them as the resource "
        "`events://computesdk/{sandbox_id}`."
    ),
    ai_hints=[
        "storeEvent needs only type and data: the sandbox comes from the access token.",
        "getEvents needs the sandbox_id and the API key, not the access token.",
        "Timestamps are unix milliseconds.",
        "A getEvents page holds at most 262,144 characters of event data (one event at least), oldest first: "
        "without since the newest that fit, with since the first after it. When truncated is true, message "
        "says how to read on (since=<the last timestamp>). The same holds for the local provider.",
    ],
    endpoints=[e.COMPUTESDK_STORE_EVENT, e.COMPUTESDK_GET_EVENTS],
    schemas={"StoredEvent": schema_of(m.StoredEvent), "Event": schema_of(m.Event)},
    related_topics=["local", "run-and-watch"],
)

TOPICS = (COMPUTESDK,)
