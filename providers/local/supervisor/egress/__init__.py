"""The egress proxy of a sandbox in `allowlist` network mode (issue #33): the sandbox's only way out.

- `policy`: the allow-list, the fixed name → address map and the secrets, parsed and checked;
- `addresses`: name resolution by the proxy itself, and which addresses a sandbox may not reach;
- `ca`: the per-data-directory CA for the HTTPS the proxy must read to add a secret, and the trust bundle;
- `substitute`: placeholders replaced by the secrets' values, for their own hosts only;
- `http1`, `forward`, `proxy`: HTTP/1.1 (h11) over asyncio, one request through, the server;
- `service`: `start_proxy` (a thread of its own, for synchronous callers) and `sandbox_environment`.

Runs inside a session supervisor: relative imports only, and of third-party packages only h11 and cryptography.
"""
