"""Developer tools run by the Makefile (not deployed with the Function App)."""
