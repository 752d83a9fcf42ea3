"""Load and judge stage: Locust profiles, exact latency recording, the promotion judge and its reports."""
