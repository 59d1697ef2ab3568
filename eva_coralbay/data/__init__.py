"""Everything between a file on disk and a standardised tensor: readers, profiles, adapters."""
