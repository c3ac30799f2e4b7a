"""Pure rules with no I/O: key format, request fingerprints, job presentation."""
