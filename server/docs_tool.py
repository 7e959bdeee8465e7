"""getDocs and the docs:// resources: the documentation topics, browsable by an agent."""

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from docs_topics import Topic, render
from docs_topics.model import Availability
from providers.services import DescribesItself
from tools.build import strict_tool


class TopicEntry(BaseModel):
    topic: str
    title: str
    summary: str


class DocsResult(BaseModel):
    topic: str | None = None
    markdown: str
    topics: list[TopicEntry] = Field(default_factory=list)


def table_of_contents(topics: dict[str, Topic]) -> tuple[str, list[TopicEntry]]:
    entries = [TopicEntry(topic=t.topic, title=t.title, summary=t.summary) for t in topics.values()]
    lines = ["# Documentation topics", "", "Call getDocs with one of these topics:", ""]
    lines += [f"- `{e.topic}`: {e.summary}" for e in entries]
    return "\n".join(lines) + "\n", entries


def this_server(topic: str, state: Any) -> str:
    """What a provider's topic says about it on the server that serves it (the local sandbox's status)."""
    client = state.opened.get(topic) if state is not None else None
    if not isinstance(client, DescribesItself):
        return ""
    return "\n## This server\n" + "".join(f"- {name}: {value}\n" for name, value in client.this_server().items())


def docs_tool(availability: Availability, topics: dict[str, Topic]) -> Tool:
    TopicName = Literal[tuple(topics)]  # type: ignore[valid-type]

    async def getDocs(
        ctx: Context[Any, Any],
        topic: Annotated[
            TopicName | None,  # type: ignore[valid-type]
            Field(description="Leave out for the table of contents."),
        ] = None,
        detail: Annotated[
            Literal["compact", "full"], Field(description="full: with parameters, schemas, examples.")
        ] = "compact",
    ) -> Annotated[CallToolResult, DocsResult]:
        if topic is None:
            markdown, entries = table_of_contents(topics)
            result = DocsResult(markdown=markdown, topics=entries)
        else:
            markdown = render(topics[topic], detail, availability)
            markdown += this_server(topic, ctx.request_context.lifespan_context)
            result = DocsResult(topic=topic, markdown=markdown)
        # The markdown is the readable content; the same data is in structuredContent.
        return CallToolResult(
            content=[TextContent(type="text", text=result.markdown)],
            structured_content=result.model_dump(mode="json", exclude_none=True),
        )

    return strict_tool(
        getDocs,
        name="getDocs",
        description="Guides: no topic lists them; a topic returns one.",
        annotations=ToolAnnotations(read_only_hint=True),
    )


class ServerFacts:
    """What the docs resources say about this server; the lifespan fills `state` in once it is open
    (a static resource gets no request context)."""

    state: Any = None


def register_docs_resource(
    server: MCPServer[Any], topic: Topic, facts: ServerFacts, availability: Availability
) -> None:
    def read() -> str:
        return render(topic, "full", availability) + this_server(topic.topic, facts.state)

    server.resource(
        f"docs://{topic.topic}",
        name=topic.topic,
        title=topic.title,
        description=topic.summary,
        mime_type="text/markdown",
    )(read)
