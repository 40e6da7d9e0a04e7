"""`make demo`: a demo shop of three services flowing through one Seamless pipeline.

Run it with `python -m agent.demo [--headless] [--keep]` (scripts/demo.sh does).
"""
