"""The lab harness: topology files in, running labs of real routers and our own nodes out."""
