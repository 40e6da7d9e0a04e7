"""Placeholder: the lead is writing the run engine here (see docs/api.md for what it serves)."""
