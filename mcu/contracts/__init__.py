"""What separate processes agree on: routes, headers and message shapes between them."""
