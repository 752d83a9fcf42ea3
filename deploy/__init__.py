"""Deployment targets for the forecasting service: start it, wait for health, describe it, tear it down."""
