"""Code shared by the API and the workers: settings, the cache-key rule, the event codec, clients."""
