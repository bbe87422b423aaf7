"""What GitOps tools make of an object: the real kstatus library (Flux, kpt) and an Argo CD
health.lua run in Lua 5.1 the way Argo CD runs it. Used by the unit and e2e tiers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from lupa.lua51 import LuaRuntime

REPO_ROOT = Path(__file__).resolve().parents[2]
KSTATUS_BUILD = REPO_ROOT / "hack" / "build-kstatus.sh"
ARGOCD_HEALTH = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
# Argo CD runs a ConfigMap script (no useOpenLibs) in gopher-lua with the base, table and
# package libraries and a safe os: no string library (so no string methods), io, math, debug.
_HIDDEN = ("string", "io", "math", "coroutine", "debug", "dofile", "loadfile")
_SAFE_OS = ("clock", "date", "difftime", "time")


@cache
def kstatus_binary() -> Path | None:
    """hack/build-kstatus.sh's binary (built once, then cached); None without a Go toolchain
    (the script then fails itself when CI=true)."""
    done = subprocess.run(
        ["bash", str(KSTATUS_BUILD)], capture_output=True, text=True, check=False, timeout=1200
    )
    if done.returncode != 0:
        raise RuntimeError(f"hack/build-kstatus.sh failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return Path(lines[-1]) if lines else None


def kstatus(binary: Path, objects: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """kstatus's {status, message} (or {error}) for each object, in one run of `binary`."""
    lines = "".join(json.dumps(obj) + "\n" for obj in objects)
    done = subprocess.run(
        [str(binary)], input=lines, capture_output=True, text=True, check=True, timeout=60
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    if len(answers) != len(objects):
        raise RuntimeError(f"kstatus answered {len(answers)} of {len(objects)}: {done.stderr}")
    return answers


def argocd_health(script: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What Argo CD's ExecuteHealthLua returns for `obj`: the chunk's table, as a dict.
    A Lua error propagates as lupa's LuaError."""
    lua = LuaRuntime()
    sandbox = lua.eval(
        """function(hidden, safe_os)
             debug.setmetatable("", nil)  -- no string library: no ("x"):method() either
             local os_ = {}
             for _, name in ipairs(safe_os) do os_[name] = os[name] end
             os = os_
             for _, name in ipairs(hidden) do _G[name] = nil end
           end"""
    )
    sandbox(lua.table_from(_HIDDEN), lua.table_from(_SAFE_OS))
    lua.globals().obj = lua.table_from(obj, recursive=True)
    returned = lua.execute(script)
    if lua.globals().type(returned) != "table":
        raise TypeError(f"health.lua returned {returned!r}, not a table")
    result = dict(returned.items())
    if result.get("status") not in ARGOCD_HEALTH:
        raise ValueError(f"health.lua returned an invalid health status: {result!r}")
    return result
