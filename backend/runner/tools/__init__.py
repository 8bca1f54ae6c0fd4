"""The tools of a task run, as PydanticAI toolsets (build.py), each call guarded (guard.py)."""

from backend.runner.tools.build import Toolbox, ToolSource, build_toolsets, model_tool_name

__all__ = ["ToolSource", "Toolbox", "build_toolsets", "model_tool_name"]
