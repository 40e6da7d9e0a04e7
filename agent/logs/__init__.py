"""Stage output: the `StageLog` seam, the writer behind it, masking, timestamps.

Below the engine, executors and deploy targets (which all write through it),
above the bus and the store (which it writes to).
"""

from agent.logs.protocol import Frame, StageLog, write_frames_by_chunk

__all__ = ["Frame", "StageLog", "write_frames_by_chunk"]
