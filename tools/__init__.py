"""Development tools (not installed): the eva config generator."""
