"""Accelerator targets of the mobile formats, and the probes that ask each accelerator's own tool where an
artifact's operators run."""
