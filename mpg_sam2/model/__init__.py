"""The MPG-SAM 2 network, one file per concept of the paper."""
