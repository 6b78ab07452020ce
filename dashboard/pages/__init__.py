"""One module per page: its layout, the plain logic behind it, and `register_callbacks`."""
