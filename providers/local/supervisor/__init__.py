"""Session supervisors: the processes that own a local session's lifetime, independent of any server (its modules:
CONTRIBUTING.md).

Standard library only, with relative imports: a zygote runs this package on its own (`python -I -S
.../supervisor/__main__.py`), without site-packages or the rest of runtimes-mcp. The one exception is `egress`
(the sandbox's egress proxy), which also needs h11 and cryptography: whoever imports it makes them importable.
"""
