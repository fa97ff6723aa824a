"""Training: the image teacher (teacher.py), the event students and EvDistill (later), and the
pieces they share (common.py)."""
