"""cli: thin click commands that parse, call the layers below and print."""
