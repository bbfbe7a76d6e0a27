"""Load tests: many concurrent activities, outages under load, slow consumers."""
