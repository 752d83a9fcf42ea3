"""In-memory stand-ins for the Azure services the deploy targets call (only the network boundary is fake)."""
