"""The soak benchmark's parts: the activity cycle, resource sampling and the growth verdict."""
