"""Session supervisors: the processes that own a local session's lifetime, independent of any server.

- `records`: process identities, the process tree and a session's record file;
- `channel`: the messages between a server and its supervisors (protocol in CONTRIBUTING.md);
- `limits`: rlimits, the run's cgroup and its disk;
- `spawn`: starting a run's process (and bubblewrap) with exactly what it is given;
- `session`: a supervisor, one session at a time;
- `zygote`: the process that forks supervisors for a server; `__main__` starts it.

Standard library only, with relative imports: a zygote runs this package on its own (`python -I -S
.../supervisor/__main__.py`), without site-packages or the rest of runtimes-mcp. The one exception is `egress`
(the sandbox's egress proxy), which also needs h11 and cryptography: whoever imports it makes them importable.
"""
