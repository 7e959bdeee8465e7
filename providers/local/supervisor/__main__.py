"""`python -I -S .../providers/local/supervisor/__main__.py zygote FD DATA_DIR LIMITS_JSON` (by runtimes-mcp)."""

import importlib
import importlib.util
import json
import os
import sys

if __name__ == "__main__":
    # This package alone, as the top-level package `supervisor`: nothing of site-packages (-S) or of the rest
    # of runtimes-mcp is importable here (-I puts neither this directory nor the working one on sys.path).
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "supervisor", os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    assert spec is not None and spec.loader is not None
    sys.modules["supervisor"] = package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)

    if len(sys.argv) != 5 or sys.argv[1] != "zygote":
        sys.exit("usage: supervisor zygote FD DATA_DIR LIMITS_JSON (started by runtimes-mcp)")
    zygote = importlib.import_module("supervisor.zygote").zygote
    zygote(int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]))
