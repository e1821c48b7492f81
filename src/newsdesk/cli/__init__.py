"""The `newsdesk` command line: thin commands over the library."""
