"""The deployed forecasting service: build stage (`python -m service.build`) and scoring entry script (score.py)."""
